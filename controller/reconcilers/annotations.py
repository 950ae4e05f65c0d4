"""Annotation writes on a session: merge patches guarded by resourceVersion, retried on conflict."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.kube import SESSIONS
from controller.reconcilers.context import Context
from controller.retry import patch_with_retry


def patch_annotations(ctx: Context, session: Mapping[str, Any], changes: Mapping[str, str | None]) -> bool:
    """Sets (or with None, removes) annotations; writes nothing when they already are as asked."""
    meta = session.get("metadata") or {}

    def mutate(current: dict[str, Any]) -> dict[str, Any] | None:
        existing = (current.get("metadata") or {}).get("annotations") or {}
        wanted = {k: v for k, v in changes.items() if existing.get(k) != v}
        return {"metadata": {"annotations": wanted}} if wanted else None

    written = patch_with_retry(
        ctx.kube, SESSIONS, str(meta.get("namespace")), str(meta.get("name")), mutate, cached=session
    )
    if written is None:
        return False
    ctx.remember(written)
    return True
