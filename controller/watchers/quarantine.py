"""Poison objects: what the cache keeps of an object it cannot hold whole.

Transform and freeze run on objects written by anyone. When one of them fails on an object (it nests
deeper than the cache's limit, or is shaped in a way no transform expected), that object alone is
isolated: the cache keeps a reduced form of it, its identity and metadata with every other field
dropped and a rejection marker naming the cause, and the rest of the LIST or watch goes on. The loop
that owns the object then reports the cause on it (the sessions loop fails such a session with
SpecTooComplex) instead of the operator going blind to a namespace.

Each poison object is logged once and counted in agentic_operator_poison_objects_total{kind}.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from controller import metrics
from controller.safe_json import MAX_DEPTH
from controller.watchers.store import FrozenDict, TooComplex, freeze

log = logging.getLogger("controller.watchers")

# Top-level key of a reduced object; no Kubernetes object has it. Its value: {"reason", "message"}.
REJECTED = "x-agentic-operator-rejected"
SPEC_TOO_COMPLEX = "SpecTooComplex"
UNREADABLE = "Unreadable"

_KEPT_METADATA = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
)
# Objects already reported, so a relist or an update does not log and count the same one again.
_REPORTED_MAX = 10_000
_reported: set[tuple[str, str]] = set()
_reported_lock = threading.Lock()


def rejection(obj: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """(reason, message) when `obj` is a reduced form, else None."""
    marker = obj.get(REJECTED) if isinstance(obj, Mapping) else None
    if not isinstance(marker, Mapping):
        return None
    return str(marker.get("reason") or UNREADABLE), str(marker.get("message") or "")


def _describe(exc: Exception) -> tuple[str, str]:
    """Why the object could not be cached; never quotes the object."""
    if isinstance(exc, TooComplex):
        return SPEC_TOO_COMPLEX, (
            f"the object nests JSON deeper than {MAX_DEPTH} levels, the most the operator reads; "
            "flatten the deeply nested field (for example spec.mcpServers)"
        )
    return UNREADABLE, f"the operator could not read the object ({type(exc).__name__})"


def _safe(value: Any) -> Any:
    """A field of metadata or status frozen within the limit counted from the object's root."""
    try:
        return freeze(value, 2)
    except Exception:
        return None


def _readable_fields(source: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    """The named fields of a mapping that freeze within the limits; the others are left out."""
    if not isinstance(source, Mapping):
        return {}
    kept = {}
    for key in keys:
        if key in source:
            value = _safe(source[key])
            if value is not None:
                kept[key] = value
    return kept


def reduced(obj: Any, reason: str, message: str) -> FrozenDict:
    """The object's identity and metadata, the readable fields of its status, and the marker."""
    source: Mapping[str, Any] = obj if isinstance(obj, Mapping) else {}
    slim: dict[str, Any] = {
        key: source[key] for key in ("apiVersion", "kind") if isinstance(source.get(key), str)
    }
    slim["metadata"] = _readable_fields(source.get("metadata"), _KEPT_METADATA)
    status = source.get("status")
    if isinstance(status, Mapping):
        # Field by field: the loops compare what they write with what is there, and a status they
        # could not see at all would be written again on every event its own write causes.
        slim["status"] = _readable_fields(status, tuple(k for k in status if isinstance(k, str)))
    slim[REJECTED] = {"reason": reason, "message": message}
    frozen: FrozenDict = freeze(slim)
    return frozen


def _first_report(kind: str, obj: Mapping[str, Any]) -> bool:
    found = obj.get("metadata")
    meta: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    identity = str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")
    with _reported_lock:
        if (kind, identity) in _reported:
            return False
        if len(_reported) >= _REPORTED_MAX:
            _reported.clear()
        _reported.add((kind, identity))
        return True


def admit(
    kind: str, obj: dict[str, Any], transform: Callable[[dict[str, Any]], dict[str, Any]] | None
) -> Mapping[str, Any]:
    """The frozen, transformed object for the cache, or its reduced form when that fails."""
    try:
        slim = transform(obj) if transform is not None else obj
        admitted: Mapping[str, Any] = freeze(slim)
        return admitted
    except Exception as exc:
        reason, message = _describe(exc)
        found = reduced(obj, reason, message)
        meta = found["metadata"]
        if _first_report(kind, found):
            metrics.poison_objects_total.labels(kind).inc()
            log.warning(
                "%s %s/%s cannot be cached whole (%s: %s); keeping its metadata only",
                kind,
                meta.get("namespace", ""),
                meta.get("name", ""),
                reason,
                message,
            )
        return found
