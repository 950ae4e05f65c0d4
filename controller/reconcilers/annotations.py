"""Annotation writes on a session: merge patches guarded by resourceVersion, retried on conflict.

Annotations carry a person's requests (stop, restart, show the workspace), so each key is changed
compare-and-swap: only while it still holds the value the reconcile decided on. A request made
after that decision (say, a restart asked for while the stop is being acknowledged) survives the
write, and its own event brings the next reconcile.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.reconcilers.context import Context
from controller.resources import SESSIONS
from controller.retry import patch_with_retry


def patch_annotations(
    ctx: Context, session: Mapping[str, Any], changes: Mapping[str, str | None]
) -> Mapping[str, Any] | None:
    """Sets (or with None, removes) annotations that still hold the values seen in `session`.

    Writes nothing when every key already is as asked or has been changed by someone else since.
    Returns the session as written (also cached), or None when nothing was written.
    """
    meta = session.get("metadata") or {}
    seen = meta.get("annotations") or {}

    def mutate(current: Mapping[str, Any]) -> dict[str, Any] | None:
        existing = (current.get("metadata") or {}).get("annotations") or {}
        wanted = {
            key: value
            for key, value in changes.items()
            if existing.get(key) != value and existing.get(key) == seen.get(key)
        }
        return {"metadata": {"annotations": wanted}} if wanted else None

    written = patch_with_retry(
        ctx.kube, SESSIONS, str(meta.get("namespace")), str(meta.get("name")), mutate, cached=session
    )
    if written is None:
        return None
    ctx.remember(written)
    return written
