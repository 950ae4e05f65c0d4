"""Builds the operator: caches, the four loops, and the handlers that map events to session keys.

Each loop has its own queue, workers and metrics label; all are keyed by session namespace/name,
so a burst of child events for one session collapses into one reconcile per loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from controller.config import OperatorConfig
from controller.events import EventRecorder
from controller.kube import Kube
from controller.loop import Loop
from controller.manager import Manager
from controller.names import COMPONENT_TEMP_CONTENT, LABEL_COMPONENT
from controller.platform.models_source import ConfigMapModels, FileModels, ModelsSource
from controller.reconcile import Key
from controller.reconcilers import jobs, sessions, temp_content, token_secrets
from controller.reconcilers.context import Caches, Context
from controller.reconcilers.model_gate import waiting_for_model
from controller.reconcilers.token_budget import RefreshBudget
from controller.watchers import kinds
from controller.watchers.informer import WatchSettings
from controller.watchers.store import Delta, object_key
from controller.watchers.transforms import session_of


def _session_keys(delta: Delta) -> list[Key]:
    obj = delta.new if delta.new is not None else delta.old
    keys = []
    for value in session_of(obj or {}):
        namespace, _, name = value.partition("/")
        keys.append((namespace, name))
    return keys


def _to(loops: Iterable[Loop]) -> Callable[[Delta], None]:
    targets = list(loops)

    def handler(delta: Delta) -> None:
        for key in _session_keys(delta):
            for loop in targets:
                loop.enqueue(key)

    return handler


# Seconds the loops wait, at start, for the models manifest's first LIST.
MODELS_SYNC_TIMEOUT = 30.0


def enqueue_all(loop: Loop, keys: Iterable[Key]) -> None:
    for key in keys:
        loop.enqueue(key)


def build(config: OperatorConfig, kube: Kube) -> tuple[Manager, Context]:
    manager = Manager(config, kube, WatchSettings(inactivity_timeout=config.watch_inactivity_timeout))
    caches = Caches(
        sessions=manager.cache("sessions", kinds.SESSION_SPEC),
        jobs=manager.cache("jobs", kinds.JOB_SPEC),
        pods=manager.cache("pods", kinds.POD_SPEC),
        secrets=manager.cache("secrets", kinds.SECRET_SPEC),
        services=manager.cache("services", kinds.SERVICE_SPEC),
        pvcs=manager.cache("pvcs", kinds.PVC_SPEC),
        service_accounts=manager.cache("serviceaccounts", kinds.SERVICE_ACCOUNT_SPEC),
        roles=manager.cache("roles", kinds.ROLE_SPEC),
        role_bindings=manager.cache("rolebindings", kinds.ROLE_BINDING_SPEC),
    )
    recorder = EventRecorder(kube)
    manager.on_shutdown.append(recorder.flush)
    models: ModelsSource
    if config.models_manifest_path:
        models = FileModels(config.models_manifest_path)
    else:
        watched = ConfigMapModels(
            kube,
            config.models_namespace or config.operator_namespace,
            recorder,
            manager.settings,
            on_change=lambda: enqueue_all(session_loop, waiting_for_model(caches.sessions)),
        )
        manager.on_leading.append(lambda: watched.start(MODELS_SYNC_TIMEOUT))
        manager.on_shutdown.append(watched.stop)
        models = watched
    ctx = Context(config=config, kube=kube, recorder=recorder, caches=caches, models=models)
    monitors = jobs.JobMonitors()
    session_loop = manager.add_loop(
        Loop("sessions", lambda key: sessions.reconcile(ctx, key), config.workers("sessions"))
    )
    jobs_loop = manager.add_loop(
        Loop("jobs", lambda key: jobs.reconcile(ctx, monitors, key), config.workers("jobs"))
    )
    temp_loop = manager.add_loop(
        Loop("temp-content", lambda key: temp_content.reconcile(ctx, key), config.workers("temp-content"))
    )
    refresh_budget = RefreshBudget(config.token_refresh_rate, config.token_refresh_burst)
    token_loop = manager.add_loop(
        Loop(
            "token-secrets",
            lambda key: token_secrets.reconcile(ctx, key, refresh_budget),
            config.workers("token-secrets"),
        )
    )

    every_loop = (session_loop, jobs_loop, temp_loop, token_loop)

    def on_session(delta: Delta) -> None:
        obj = delta.new if delta.new is not None else delta.old
        key = object_key(obj or {})
        for loop in every_loop:
            loop.enqueue(key)

    caches.sessions.add_handler(on_session)
    caches.jobs.add_handler(_to((session_loop, jobs_loop)))
    runner_pods, temp_pods = _to((jobs_loop, session_loop)), _to((temp_loop, session_loop))

    def on_pod(delta: Delta) -> None:
        obj = delta.new if delta.new is not None else delta.old
        labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
        (temp_pods if labels.get(LABEL_COMPONENT) == COMPONENT_TEMP_CONTENT else runner_pods)(delta)

    caches.pods.add_handler(on_pod)
    caches.secrets.add_handler(_to((token_loop,)))
    caches.service_accounts.add_handler(_to((session_loop, token_loop)))
    for cache in (caches.pvcs, caches.roles, caches.role_bindings):
        cache.add_handler(_to((session_loop,)))
    caches.services.add_handler(_to((session_loop, temp_loop)))
    return manager, ctx
