"""Cache transforms: keep only what the loops read.

Memory grows with the cluster, so children are cached as their metadata plus the few status fields
the loops decide on. Job and Pod specs carry the runner env (an initial prompt can be 100 KiB) and
Secrets carry tokens: neither is ever kept in memory.
"""

from __future__ import annotations

from typing import Any

from controller.names import ANNOTATION_SESSION_NAME, LABEL_COMPONENT
from controller.watchers.store import controller_owner_name

_KEPT_METADATA = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
    "labels",
    "annotations",
    "ownerReferences",
)
# The labels the loops read of a child: which component it is, and a runner pod's Job. The rest
# (the session label, and the job-name/controller-uid labels the Job controller adds to its pods) only
# select objects, which the server does.
_KEPT_LABELS = (LABEL_COMPONENT, "job-name")
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


def trim_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    """A child's metadata as the loops read it: identity, ownership, and the operator's own marks."""
    meta = obj.get("metadata") or {}
    kept = {k: meta[k] for k in _KEPT_METADATA if k in meta}
    labels = _pick(kept.pop("labels", None), _KEPT_LABELS)
    if labels:
        kept["labels"] = labels
    annotations = kept.pop("annotations", None)
    if isinstance(annotations, dict):
        ours = {k: v for k, v in annotations.items() if k.startswith(_KEPT_ANNOTATION_PREFIX)}
        if ours:
            kept["annotations"] = ours
    if "ownerReferences" in kept:
        kept["ownerReferences"] = _pick_each(kept["ownerReferences"], _KEPT_OWNER_REFERENCE)
    return kept


def metadata_only(obj: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": trim_metadata(obj)}


def pod(obj: dict[str, Any]) -> dict[str, Any]:
    """A pod as the loops read it: phase, conditions and each container's state (not its image or IDs)."""
    slim = metadata_only(obj)
    slim["spec"] = _pick(obj.get("spec"), ("nodeName", "restartPolicy"))
    status = obj.get("status")
    if isinstance(status, dict):
        kept = _pick(status, ("phase", "reason", "message"))
        conditions = status.get("conditions")
        if isinstance(conditions, list):
            kept["conditions"] = _pick_each(
                [x for x in conditions if isinstance(x, dict) and x.get("type") in _KEPT_POD_CONDITIONS],
                _KEPT_CONDITION,
            )
        if "containerStatuses" in status:
            kept["containerStatuses"] = _pick_each(status["containerStatuses"], ("name", "state"))
        slim["status"] = kept
    return slim


def job(obj: dict[str, Any]) -> dict[str, Any]:
    """A Job as the loops read it: its conditions decide the runner's end."""
    slim = metadata_only(obj)
    slim["spec"] = _pick(
        obj.get("spec"), ("activeDeadlineSeconds", "backoffLimit", "ttlSecondsAfterFinished")
    )
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
