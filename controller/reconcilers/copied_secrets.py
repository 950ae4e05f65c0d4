"""Platform Secrets copied from the backend namespace into a session's namespace (§7).

A copy is made when a runner needs it: Vertex credentials, the Langfuse and MLflow settings, and the
shared S3 credentials. It carries the annotation `vteam.ambient-code/copied-from` and an owner
reference to every session that used it, so garbage collection removes it with the last of them.
A copy is updated when its source changes (the source's content hash is kept on the copy), and
deleted once no other session of the namespace is Pending, Creating or Running. A same-named Secret
without the annotation is the namespace's own: it is used as it is and never changed or deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from controller import conditions as c
from controller.api_error import ApiError
from controller.platform.secrets import ANNOTATION_COPIED_FROM, ANNOTATION_SOURCE_HASH, COPIED, data_hash
from controller.reconcilers.children import owner_reference
from controller.reconcilers.context import Context
from controller.resources import SECRETS
from controller.retry import retry_on_conflict

log = logging.getLogger("controller.reconcilers.copied_secrets")

ACTIVE_PHASES = frozenset({"", c.PENDING, c.CREATING, c.RUNNING})


def source(ctx: Context, name: str) -> Mapping[str, Any] | None:
    cache = ctx.platform.sources
    return None if cache is None else cache.get(ctx.config.platform_namespace, name)


def _cached_copy(ctx: Context, namespace: str, name: str) -> Mapping[str, Any] | None:
    cache = ctx.platform.namespace_secrets
    return None if cache is None else cache.get(namespace, name)


def _is_copy(secret: Mapping[str, Any] | None) -> bool:
    return bool(((secret or {}).get("metadata") or {}).get("annotations", {}).get(ANNOTATION_COPIED_FROM))


def _used_by(secret: Mapping[str, Any] | None, uid: str) -> bool:
    owners = ((secret or {}).get("metadata") or {}).get("ownerReferences") or ()
    return _is_copy(secret) and any(r.get("uid") == uid for r in owners)


def ensure(ctx: Context, session: Mapping[str, Any], name: str) -> bool:
    """Makes the Secret available in the session's namespace; False when its source does not exist.

    In steady state (the cached copy is ours, owned by this session and of the current source) this
    makes no request.
    """
    meta = session["metadata"]
    namespace, uid = meta["namespace"], meta.get("uid", "")
    if namespace == ctx.config.platform_namespace:
        return source(ctx, name) is not None
    cached = _cached_copy(ctx, namespace, name)
    if cached is not None and not _is_copy(cached):
        return True  # the namespace's own Secret
    origin = source(ctx, name)
    if origin is None:
        return cached is not None
    digest = data_hash(origin)
    if cached is not None:
        annotations = (cached.get("metadata") or {}).get("annotations") or {}
        owners = (cached.get("metadata") or {}).get("ownerReferences") or ()
        if annotations.get(ANNOTATION_SOURCE_HASH) == digest and any(r.get("uid") == uid for r in owners):
            return True
    _write(ctx, session, name, origin, digest, known_missing=cached is None)
    return True


def _write(
    ctx: Context,
    session: Mapping[str, Any],
    name: str,
    origin: Mapping[str, Any],
    digest: str,
    known_missing: bool,
) -> None:
    namespace = session["metadata"]["namespace"]
    ref = owner_reference(session)
    copied_from = f"{ctx.config.platform_namespace}/{name}"

    def attempt(number: int) -> None:
        current = None if known_missing and number == 1 else ctx.kube.get_or_none(SECRETS, namespace, name)
        if current is None:
            body = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": dict((origin.get("metadata") or {}).get("labels") or {}),
                    "annotations": {ANNOTATION_COPIED_FROM: copied_from, ANNOTATION_SOURCE_HASH: digest},
                    "ownerReferences": [ref],
                },
                "type": origin.get("type") or "Opaque",
                "data": dict(origin.get("data") or {}),
            }
            try:
                ctx.kube.create(SECRETS, namespace, body)
            except ApiError as exc:
                if exc.already_exists:
                    raise ApiError(409, "Conflict", "created concurrently") from exc
                raise
            log.info("copied Secret %s into namespace %s", copied_from, namespace)
            return
        meta = current.get("metadata") or {}
        if not (meta.get("annotations") or {}).get(ANNOTATION_COPIED_FROM):
            return  # became the namespace's own meanwhile
        owners = list(meta.get("ownerReferences") or [])
        if not any(r.get("uid") == ref["uid"] for r in owners):
            owners.append({**ref, "controller": not any(r.get("controller") for r in owners)})
        meta["ownerReferences"] = owners
        meta.setdefault("annotations", {}).update(
            {ANNOTATION_COPIED_FROM: copied_from, ANNOTATION_SOURCE_HASH: digest}
        )
        current["data"] = dict(origin.get("data") or {})
        ctx.kube.replace(SECRETS, namespace, name, current)

    retry_on_conflict(attempt)


def release(ctx: Context, session: Mapping[str, Any]) -> None:
    """Deletes the copies this session used unless another session of the namespace may still start
    or run.

    Called when the session stops or ends; the count reads the sessions cache, so this makes no
    request unless a copy is really deleted.
    """
    meta = session["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    if namespace == ctx.config.platform_namespace:
        return
    uid = meta.get("uid", "")
    copies = [n for n in sorted(COPIED) if _used_by(_cached_copy(ctx, namespace, n), uid)]
    if not copies:
        return  # this session used none: nothing of its to release (and no scan of the namespace)
    for other in ctx.caches.sessions.list(namespace):
        other_meta = other.get("metadata") or {}
        if other_meta.get("name") == name or other_meta.get("deletionTimestamp"):
            continue
        if str((other.get("status") or {}).get("phase") or "") in ACTIVE_PHASES:
            return
    for secret in copies:
        if ctx.kube.delete_ignore_missing(SECRETS, namespace, secret):
            log.info("deleted copied Secret %s/%s: no session of the namespace needs it", namespace, secret)
