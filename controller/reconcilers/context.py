"""What every loop's reconcile reads from and writes through: caches, the API, Events, config."""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.config import OperatorConfig
from controller.events import EventRecorder
from controller.kube import ApiError, Kube, Resource
from controller.status import StatusDraft, write_status
from controller.watchers.cache import KindCache
from controller.watchers.transforms import BY_SESSION

log = logging.getLogger("controller.reconcilers")


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

    def children(self, cache: KindCache, namespace: str, session_name: str) -> list[Mapping[str, Any]]:
        return cache.by_index(BY_SESSION, f"{namespace}/{session_name}")

    def write_status(
        self, session: Mapping[str, Any], loop: str, describe: Callable[[StatusDraft], None]
    ) -> tuple[str, str] | None:
        """Writes the session's status (see controller.status) and caches what was written."""
        return write_status(self.kube, session, loop, describe, self.recorder, self.remember)

    def remember(self, written: Mapping[str, Any]) -> None:
        self.caches.sessions.store.upsert(self.caches.sessions.spec.transform(dict(written)))


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


def ensure_child(
    ctx: Context,
    cache: KindCache | None,
    resource: Resource,
    manifest: Mapping[str, Any],
    session_uid: str,
) -> Ensured:
    """Creates the child unless it exists; AlreadyExists counts as success when the child is ours."""
    meta = manifest["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    if cache is not None:
        cached = cache.get(namespace, name)
        if cached is not None:
            ctx.expectations.observed(resource.kind, namespace, name)
            return _ownership(cached, session_uid)
        if ctx.expectations.pending(resource.kind, namespace, name):
            return Ensured.EXISTS
    try:
        ctx.kube.create(resource, namespace, dict(manifest))
        ctx.expectations.created(resource.kind, namespace, name)
        return Ensured.CREATED
    except ApiError as exc:
        if not exc.already_exists:
            raise
    existing = ctx.kube.get(resource, namespace, name)
    return _ownership(existing, session_uid)
