"""Cache transforms: keep only what the loops read.

Memory grows with the cluster, so children are cached as their metadata plus the few status fields
the loops decide on. Job and Pod specs carry the runner env (an initial prompt can be 100 KiB) and
Secrets carry tokens: neither is ever kept in memory.
"""

from __future__ import annotations

from typing import Any

from controller.names import ANNOTATION_SESSION_NAME
from controller.watchers.store import LAST_APPLIED, controller_owner_name

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
)


def trim_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    kept = {k: meta[k] for k in _KEPT_METADATA if k in meta}
    annotations = kept.get("annotations")
    if isinstance(annotations, dict) and LAST_APPLIED in annotations:
        kept["annotations"] = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
    return kept


def metadata_only(obj: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": trim_metadata(obj)}


def with_status(obj: dict[str, Any]) -> dict[str, Any]:
    slim = metadata_only(obj)
    if "status" in obj:
        slim["status"] = obj["status"]
    return slim


def pod(obj: dict[str, Any]) -> dict[str, Any]:
    slim = with_status(obj)
    spec = obj.get("spec") or {}
    slim["spec"] = {k: spec[k] for k in ("nodeName", "restartPolicy") if k in spec}
    return slim


def job(obj: dict[str, Any]) -> dict[str, Any]:
    slim = with_status(obj)
    spec = obj.get("spec") or {}
    slim["spec"] = {
        k: spec[k] for k in ("activeDeadlineSeconds", "backoffLimit", "ttlSecondsAfterFinished") if k in spec
    }
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
