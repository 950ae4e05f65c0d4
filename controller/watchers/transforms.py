"""Cache transforms: keep only what the loops read.

Memory grows with the cluster, so children are cached as their metadata plus the few status fields
the loops decide on. Job and Pod specs carry the runner env (an initial prompt can be 100 KiB) and
Secrets carry tokens: neither is ever kept in memory.
"""

from __future__ import annotations

from typing import Any

from controller.names import ANNOTATION_SESSION_NAME, LABEL_COMPONENT
from controller.watchers.store import controller_owner_name, shared

# Identity and ownership: what the loops read of every child.
_IDENTITY = ("name", "namespace", "uid", "resourceVersion", "deletionTimestamp")
# The labels the loops read of a pod: which component it is, and a runner pod's Job. The rest (the
# session label, the labels the Job controller adds) only select objects, which the server does.
_KEPT_POD_LABELS = (LABEL_COMPONENT, "job-name")
# The annotations the loops read of a child are all the operator's own.
_KEPT_ANNOTATION_PREFIX = "ambient-code.io/"
# What the loops read of an owner reference: which session or Job controls the child.
_KEPT_OWNER_REFERENCE = ("kind", "name", "uid", "controller")
# What the loops read of a condition (pods and Jobs).
_KEPT_CONDITION = ("type", "status", "reason", "message", "lastTransitionTime")
# The pod conditions the loops read: whether it was scheduled, and whether a content pod is ready.
_KEPT_POD_CONDITIONS = ("PodScheduled", "Ready")


def _pick(source: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(source, dict):
        return {}
    return {k: source[k] for k in keys if k in source}


def _pick_each(items: Any, keys: tuple[str, ...]) -> list[dict[str, Any]]:
    return [_pick(item, keys) for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def trim_metadata(
    obj: dict[str, Any], *, labels: tuple[str, ...] = (), annotations: bool = False, created: bool = False
) -> dict[str, Any]:
    """A child's identity and owners, plus the named labels, the operator's annotations, its age."""
    meta = obj.get("metadata") or {}
    kept = _pick(meta, _IDENTITY)
    if created and "creationTimestamp" in meta:
        kept["creationTimestamp"] = meta["creationTimestamp"]
    picked = _pick(meta.get("labels"), labels)
    if picked:
        kept["labels"] = picked
    found = meta.get("annotations")
    if annotations and isinstance(found, dict):
        ours = {k: v for k, v in found.items() if k.startswith(_KEPT_ANNOTATION_PREFIX)}
        if ours:
            kept["annotations"] = ours
    refs = _pick_each(meta.get("ownerReferences"), _KEPT_OWNER_REFERENCE)
    if refs:
        kept["ownerReferences"] = [
            shared(ref["uid"], ref)
            if ref.get("kind") == "AgenticSession" and isinstance(ref.get("uid"), str)
            else ref
            for ref in refs
        ]
    return kept


def _child(obj: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    """apiVersion and kind are kept when present (items of a LIST of a built-in kind carry neither)."""
    slim = _pick(obj, ("apiVersion", "kind"))
    slim["metadata"] = metadata
    return slim


def _container_state(status: Any) -> dict[str, Any]:
    """A container's name and state: since when it runs, why it waits, or how it ended."""
    state = status.get("state") if isinstance(status, dict) else None
    kept: dict[str, Any] = {}
    if isinstance(state, dict):
        if "running" in state:
            kept["running"] = _pick(state["running"], ("startedAt",))
        if "waiting" in state:
            kept["waiting"] = _pick(state["waiting"], ("reason", "message"))
        if "terminated" in state:
            kept["terminated"] = _pick(state["terminated"], ("exitCode", "reason", "message"))
    return {"name": status.get("name"), "state": kept} if isinstance(status, dict) else {}


def owned_child(obj: dict[str, Any]) -> dict[str, Any]:
    """A PVC, ServiceAccount, Role or RoleBinding: the loops ask only if it exists and is ours.

    Its metadata alone, so the same object gives the same entry whether it came whole (a watch
    shared with a cache that reads whole objects) or as PartialObjectMetadata, whose apiVersion and
    kind name the metadata type, not the object's.
    """
    return {"metadata": trim_metadata(obj)}


def service(obj: dict[str, Any]) -> dict[str, Any]:
    """A Service: ownership, and each port's name and number (how the runner is reached)."""
    slim = _child(obj, trim_metadata(obj))
    ports = (obj.get("spec") or {}).get("ports") if isinstance(obj.get("spec"), dict) else None
    slim["spec"] = {"ports": _pick_each(ports, ("name", "port"))}
    return slim


def token_secret(obj: dict[str, Any]) -> dict[str, Any]:
    """A token Secret: ownership and the refresh annotations. Its data (the tokens) is never kept."""
    return _child(obj, trim_metadata(obj, annotations=True))


def pod(obj: dict[str, Any]) -> dict[str, Any]:
    """A pod as the loops read it: phase, conditions and each container's state (not its image or IDs).

    Its owner is its Job, so its session is known by the operator's session-name annotation.
    """
    slim = _child(obj, trim_metadata(obj, labels=_KEPT_POD_LABELS, annotations=True, created=True))
    slim["spec"] = _pick(obj.get("spec"), ("nodeName",))
    status = obj.get("status")
    if isinstance(status, dict):
        kept = _pick(status, ("phase", "reason", "message"))
        conditions = status.get("conditions")
        if isinstance(conditions, list):
            kept["conditions"] = _pick_each(
                [x for x in conditions if isinstance(x, dict) and x.get("type") in _KEPT_POD_CONDITIONS],
                _KEPT_CONDITION,
            )
        statuses = status.get("containerStatuses")
        if isinstance(statuses, list):
            kept["containerStatuses"] = [_container_state(x) for x in statuses if isinstance(x, dict)]
        slim["status"] = kept
    return slim


def job(obj: dict[str, Any]) -> dict[str, Any]:
    """A Job as the loops read it: its conditions decide the runner's end; its run, whose it is."""
    slim = _child(obj, trim_metadata(obj, annotations=True))
    spec = ("activeDeadlineSeconds", "backoffLimit", "ttlSecondsAfterFinished")
    slim["spec"] = _pick(obj.get("spec"), spec)
    status = obj.get("status")
    if isinstance(status, dict):
        slim["status"] = {"conditions": _pick_each(status.get("conditions"), _KEPT_CONDITION)}
    return slim


def session_of(obj: Any) -> list[str]:
    """Index 'namespace/session' for a child: the session-name annotation, else its controller owner."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace") or ""
    name = (meta.get("annotations") or {}).get(ANNOTATION_SESSION_NAME)
    if not name:
        refs = meta.get("ownerReferences") or ()
        if any(r.get("kind") == "AgenticSession" and r.get("controller") for r in refs):
            name = controller_owner_name(obj)
    return [f"{namespace}/{name}"] if name else []


BY_SESSION = "by-session"
