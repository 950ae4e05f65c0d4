"""Builds the operator: caches, the six loops, and the handlers that map events to session keys.

Each loop has its own queue, workers and metrics label. The session loops are keyed by session
namespace/name, so a burst of child events for one session collapses into one reconcile per loop;
the projects loop is keyed by namespace.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from controller import conditions as c
from controller import session_metrics
from controller.config import OperatorConfig
from controller.events import WARNING, EventRecorder
from controller.kube import Kube
from controller.loop import Loop
from controller.manager import Manager
from controller.names import COMPONENT_TEMP_CONTENT, LABEL_COMPONENT
from controller.platform import secrets as platform_secrets
from controller.platform.models_source import ConfigMapModels, FileModels, ModelsSource
from controller.platform.project_settings import inactivity_timeout_seconds
from controller.platform.registry import AgentRegistry
from controller.platform.runner_client import RunnerClient
from controller.platform.state import PlatformCaches
from controller.reconcile import Key
from controller.reconcilers import jobs, projects, runner_sync, sessions, temp_content, token_secrets
from controller.reconcilers.context import Caches, Context
from controller.reconcilers.model_gate import waiting_for_model
from controller.reconcilers.token_budget import RefreshBudget
from controller.watchers import kinds
from controller.watchers.cache import KindCache
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
    caches.project_settings = manager.cache("projectsettings", kinds.PROJECT_SETTINGS_SPEC)
    caches.project_objects = {
        name: manager.cache(f"project-{name}", spec) for name, spec in kinds.PROJECT_OBJECT_SPECS.items()
    }
    # Sessions by phase are counted from the cache at scrape time, by the leader only.
    session_metrics.watch_sessions(lambda: caches.sessions.list() if manager.started_loops.is_set() else None)
    recorder = EventRecorder(kube)
    manager.on_shutdown.append(recorder.flush)
    models: ModelsSource
    if config.models_manifest_path:
        models = FileModels(config.models_manifest_path)
    else:
        watched = ConfigMapModels(
            kube,
            config.models_namespace or config.platform_namespace,
            recorder,
            manager.settings,
            on_change=lambda: enqueue_all(session_loop, waiting_for_model(caches.sessions)),
        )
        # Watched from the start on every replica, as the other caches: warm when the loops start.
        manager.on_caches_started.append(watched.start_watch)
        manager.on_leading.append(lambda: watched.wait_loaded(MODELS_SYNC_TIMEOUT))
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

    runner_client = RunnerClient(config, kube, caches.services, caches.secrets)
    sync_state = runner_sync.SyncState()
    sync_loop = manager.add_loop(
        Loop(
            "runner-sync",
            lambda key: runner_sync.reconcile(ctx, runner_client, sync_state, key),
            config.workers("runner-sync"),
        )
    )

    every_loop = (session_loop, jobs_loop, token_loop, sync_loop)

    def on_session(delta: Delta) -> None:
        obj = delta.new if delta.new is not None else delta.old
        key = object_key(obj or {})
        for loop in every_loop:
            loop.enqueue(key)
        if temp_content.concerns(ctx, delta):
            temp_loop.enqueue(key)

    caches.sessions.add_handler(on_session)
    caches.jobs.add_handler(_to((session_loop, jobs_loop)))
    runner_pods, temp_pods = _to((jobs_loop, session_loop, sync_loop)), _to((temp_loop, session_loop))

    def on_pod(delta: Delta) -> None:
        obj = delta.new if delta.new is not None else delta.old
        labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
        (temp_pods if labels.get(LABEL_COMPONENT) == COMPONENT_TEMP_CONTENT else runner_pods)(delta)

    caches.pods.add_handler(on_pod)
    caches.secrets.add_handler(_to((token_loop, sync_loop)))
    caches.service_accounts.add_handler(_to((session_loop, token_loop)))
    for cache in (caches.pvcs, caches.roles, caches.role_bindings):
        cache.add_handler(_to((session_loop,)))
    caches.services.add_handler(_to((session_loop, temp_loop, sync_loop)))
    _wire_platform(manager, ctx, session_loop)
    wire_projects(manager, ctx)
    assert caches.project_settings is not None
    caches.project_settings.add_handler(_on_project_timeout(ctx, session_loop))
    return manager, ctx


def _on_project_timeout(ctx: Context, session_loop: Loop) -> Callable[[Delta], None]:
    """A project's inactivity timeout changed: its sessions' idle deadlines move with it."""

    def handler(delta: Delta) -> None:
        timeouts = [
            inactivity_timeout_seconds(obj) if obj is not None else None for obj in (delta.old, delta.new)
        ]
        if delta.old is not None and delta.new is not None and timeouts[0] == timeouts[1]:
            return
        obj = delta.new if delta.new is not None else delta.old
        namespace = str(((obj or {}).get("metadata") or {}).get("namespace") or "")
        for session in ctx.caches.sessions.list(namespace):
            session_loop.enqueue(object_key(session))

    return handler


def wire_projects(manager: Manager, ctx: Context) -> None:
    """The projects loop, keyed by namespace: fed by managed namespaces and everything it writes."""
    loop = manager.add_loop(
        Loop(
            projects.LOOP,
            lambda key: projects.reconcile(ctx, manager.managed_namespaces, key),
            ctx.config.workers(projects.LOOP),
        )
    )

    def on_namespace(namespace: str) -> None:
        loop.enqueue(projects.project_key(namespace))

    def on_object(delta: Delta) -> None:
        obj = delta.new if delta.new is not None else delta.old
        namespace = ((obj or {}).get("metadata") or {}).get("namespace")
        if namespace:
            loop.enqueue(projects.project_key(str(namespace)))

    manager.on_namespace_added.append(on_namespace)
    manager.on_namespace_removed.append(on_namespace)

    def on_registry(_: object) -> None:
        # The runner NetworkPolicy opens the registry's ports: a registry change reshapes every one.
        for namespace in manager.managed_namespaces():
            on_namespace(namespace)

    if ctx.platform.registry is not None:
        ctx.platform.registry.add_listener(on_registry)
    assert ctx.caches.project_settings is not None
    ctx.caches.project_settings.add_handler(on_object)
    for cache in ctx.caches.project_objects.values():
        cache.add_handler(on_object)


PLATFORM_SYNC_TIMEOUT = 10.0


def _wire_platform(manager: Manager, ctx: Context, session_loop: Loop) -> None:
    """The platform's objects: the agent registry and the Secrets and CA bundle a runner pod uses.

    The registry ConfigMap and the copied Secrets' sources live in the backend namespace, which need
    not be managed: their informers watch that one namespace, started with the caches on every
    replica; the registry is applied (and its problems reported) by the leader only. Whatever
    changes there wakes the sessions still waiting for a runner (and, for a source, the sessions
    whose copies it feeds); a running runner is never touched.
    """
    config, kube = ctx.config, ctx.kube
    platform_ns = config.platform_namespace
    registry_name = config.agent_registry_configmap
    registry_object = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": registry_name, "namespace": platform_ns},
    }
    registry = AgentRegistry(
        config,
        on_problem=lambda message: ctx.recorder.record(
            registry_object, WARNING, "AgentRegistryUnavailable", message
        ),
    )
    registry_cache = KindCache(kube, platform_secrets.registry_spec(config), manager.settings)
    if isinstance(ctx.models, ConfigMapModels) and ctx.models.namespace == platform_ns:
        registry_cache.follow(ctx.models.cache)  # one watch of the backend namespace's ConfigMaps
    sources = KindCache(kube, platform_secrets.SOURCE_SECRETS_SPEC, manager.settings)
    namespace_secrets = manager.cache("platform-secrets", platform_secrets.NAMESPACE_SECRETS_SPEC)
    # One metadata-only watch of the managed namespaces' Secrets, for the platform's (by name) and
    # the runner tokens (by the operator's label, matched in the process).
    ctx.caches.secrets.follow(namespace_secrets)
    ctx.platform = PlatformCaches(
        registry=registry,
        namespace_secrets=namespace_secrets,
        ca_bundles=manager.cache("ca-bundles", platform_secrets.CA_BUNDLE_SPEC),
        sources=sources,
        registry_configmaps=registry_cache,
    )
    sessions = ctx.caches.sessions

    def waiting(namespace: str | None) -> None:
        for session in sessions.list(namespace):
            if str((session.get("status") or {}).get("phase") or "") in ("", c.PENDING):
                session_loop.enqueue(object_key(session))

    def active(_: Delta) -> None:
        for session in sessions.list():
            if str((session.get("status") or {}).get("phase") or "") not in c.TERMINAL_PHASES:
                session_loop.enqueue(object_key(session))

    def on_namespace_secret(delta: Delta) -> None:
        obj = delta.new if delta.new is not None else delta.old
        waiting(str(((obj or {}).get("metadata") or {}).get("namespace") or ""))

    registry.add_listener(lambda _: waiting(None))

    leading = threading.Event()

    def on_registry(_: Delta) -> None:
        if leading.is_set():
            registry.apply_configmap(registry_cache.get(platform_ns, registry_name))

    registry_cache.add_handler(on_registry)
    sources.add_handler(active)
    assert ctx.platform.namespace_secrets is not None
    ctx.platform.namespace_secrets.add_handler(on_namespace_secret)

    def start_watches() -> None:
        for cache in (registry_cache, sources):
            cache.start_namespace(platform_ns)

    def start() -> None:
        start_watches()  # no-op when started with the caches (see on_caches_started)
        deadline = time.monotonic() + PLATFORM_SYNC_TIMEOUT
        while not (registry_cache.synced() and sources.synced()) and time.monotonic() < deadline:
            time.sleep(0.05)
        leading.set()
        registry.apply_configmap(registry_cache.get(platform_ns, registry_name))

    def stop(_: float) -> None:
        registry_cache.stop()
        sources.stop()

    manager.on_caches_started.insert(0, start_watches)
    manager.on_leading.insert(0, start)
    manager.on_shutdown.append(stop)
