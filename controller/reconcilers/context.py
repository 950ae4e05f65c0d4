"""What every loop's reconcile reads from and writes through: caches, the API, Events, config."""

from __future__ import annotations

import contextvars
import enum
import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from controller.api_error import ApiError
from controller.config import OperatorConfig
from controller.events import EventRecorder
from controller.fanout import Fanout
from controller.kube import Kube
from controller.platform.models_source import ModelsSource, StaticModels
from controller.platform.state import PlatformCaches
from controller.resources import Resource
from controller.status import StatusDraft, write_status
from controller.watchers.cache import KindCache
from controller.watchers.transforms import BY_SESSION

log = logging.getLogger("controller.reconcilers")

T = TypeVar("T")
# Requests one reconcile may have in flight at once while creating independent children.
FANOUT_THREADS = 16


@dataclass
class Caches:
    sessions: KindCache
    jobs: KindCache
    pods: KindCache
    secrets: KindCache
    services: KindCache
    pvcs: KindCache
    service_accounts: KindCache
    roles: KindCache
    role_bindings: KindCache
    # The projects loop's caches; None in a build without it (unit tests of the session loops).
    project_settings: KindCache | None = field(default=None, kw_only=True)
    project_objects: Mapping[str, KindCache] = field(default_factory=dict, kw_only=True)


class Expectations:
    """Objects we created that the cache may not show yet (controller-runtime's 'expectations').

    Without this, a reconcile that runs between our create and its watch event would think the
    child is missing and create or recreate it again.
    """

    def __init__(self, ttl: float = 60.0):
        self.ttl = ttl
        self._created: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()

    def created(self, kind: str, namespace: str, name: str) -> None:
        with self._lock:
            self._created[(kind, namespace, name)] = time.monotonic()

    def pending(self, kind: str, namespace: str, name: str) -> bool:
        with self._lock:
            at = self._created.get((kind, namespace, name))
            if at is None:
                return False
            if time.monotonic() - at > self.ttl:
                del self._created[(kind, namespace, name)]
                return False
            return True

    def observed(self, kind: str, namespace: str, name: str) -> None:
        with self._lock:
            self._created.pop((kind, namespace, name), None)


@dataclass
class Context:
    config: OperatorConfig
    kube: Kube
    recorder: EventRecorder
    caches: Caches
    expectations: Expectations = field(default_factory=Expectations)
    platform: PlatformCaches = field(default_factory=PlatformCaches)
    fanout: Fanout = field(default_factory=lambda: Fanout(FANOUT_THREADS))
    # The models manifest as currently known; without one configured, no manifest is in use.
    models: ModelsSource = field(default_factory=StaticModels)

    def parallel(self, calls: Sequence[Callable[[], T]]) -> list[T]:
        """Runs independent steps of one reconcile at once; returns their results in order.

        Creating a session's independent children one after another costs a round trip each; at
        once, the reconcile costs the slowest. Every call finishes before this returns (nothing of a
        reconcile outlives it), and the first failure is then raised. The first call runs on the
        caller's thread, the others in copies of its context, so their API spans stay children of
        the reconcile's span.
        """
        if len(calls) <= 1:
            return [call() for call in calls]
        # The first call runs on the caller's thread, which would otherwise only wait.
        futures = [
            self.fanout.submit(functools.partial(contextvars.copy_context().run, call)) for call in calls[1:]
        ]
        first: T | None = None
        first_error: BaseException | None = None
        try:
            first = calls[0]()
        except Exception as exc:
            first_error = exc
        errors = [first_error, *(f.exception() for f in futures)]
        for error in errors:
            if error is not None:
                raise error
        return [cast(T, first), *(f.result() for f in futures)]

    def children(self, cache: KindCache, namespace: str, session_name: str) -> list[Mapping[str, Any]]:
        return cache.by_index(BY_SESSION, f"{namespace}/{session_name}")

    def write_status(
        self, session: Mapping[str, Any], loop: str, describe: Callable[[StatusDraft], None]
    ) -> tuple[str, str] | None:
        """Writes the session's status (see controller.status) and caches what was written."""
        return write_status(self.kube, session, loop, describe, self.recorder, self.remember)

    def remember(self, written: Mapping[str, Any]) -> None:
        self.caches.sessions.remember(dict(written))


class Ensured(enum.Enum):
    EXISTS = "exists"
    CREATED = "created"
    WAITING = "waiting"  # held by a previous session of the same name, being garbage collected
    CONFLICT = "conflict"  # a same-named object that is not ours


def owned_by(obj: Mapping[str, Any], session_uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or ()
    return any(r.get("uid") == session_uid and r.get("controller") for r in refs)


def _ownership(obj: Mapping[str, Any], session_uid: str) -> Ensured:
    if owned_by(obj, session_uid):
        return Ensured.EXISTS
    refs = (obj.get("metadata") or {}).get("ownerReferences") or ()
    if any(r.get("kind") == "AgenticSession" and r.get("controller") for r in refs):
        return Ensured.WAITING
    return Ensured.CONFLICT


def cached_child(
    ctx: Context, cache: KindCache | None, resource: Resource, namespace: str, name: str, session_uid: str
) -> Ensured | None:
    """What the cache tells of a child without a request; None when it must be created."""
    if cache is None:
        return None
    cached = cache.get(namespace, name)
    if cached is not None:
        ctx.expectations.observed(resource.kind, namespace, name)
        return _ownership(cached, session_uid)
    if ctx.expectations.pending(resource.kind, namespace, name):
        return Ensured.EXISTS
    return None


def create_child(ctx: Context, resource: Resource, manifest: Mapping[str, Any], session_uid: str) -> Ensured:
    """Creates the child; AlreadyExists counts as success when the existing child is ours."""
    meta = manifest["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    try:
        ctx.kube.create(resource, namespace, dict(manifest))
        ctx.expectations.created(resource.kind, namespace, name)
        return Ensured.CREATED
    except ApiError as exc:
        if not exc.already_exists:
            raise
    existing = ctx.kube.get(resource, namespace, name)
    return _ownership(existing, session_uid)


def ensure_child(
    ctx: Context,
    cache: KindCache | None,
    resource: Resource,
    manifest: Mapping[str, Any],
    session_uid: str,
) -> Ensured:
    """Creates the child unless the cache (or a create of ours it has not shown yet) has it."""
    meta = manifest["metadata"]
    state = cached_child(ctx, cache, resource, meta["namespace"], meta["name"], session_uid)
    return state if state is not None else create_child(ctx, resource, manifest, session_uid)
