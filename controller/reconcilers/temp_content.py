"""The temporary content pods loop: workspace access while a session is not running.

On request (annotation) a finished or stopped session gets one pod mounting its workspace, plus a
Service. The pod is deleted when it has been idle past the TTL (an exact RequeueAfter, not a scan)
and whenever the session is asked to run again: a ReadWriteOnce volume cannot serve two pods, so
the sessions loop creates the runner Job only after this pod is gone.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from typing import Any

from controller import conditions as c
from controller.events import NORMAL
from controller.names import (
    ANNOTATION_DESIRED_PHASE,
    ANNOTATION_TEMP_CONTENT_LAST_ACCESSED,
    ANNOTATION_TEMP_CONTENT_REQUESTED,
    name_problem,
    temp_content_pod_name,
    temp_content_service_name,
)
from controller.reconcile import Key, Result
from controller.reconcilers.annotations import patch_annotations
from controller.reconcilers.children import build_temp_content_pod, build_temp_content_service
from controller.reconcilers.context import Context, Ensured, ensure_child, owned_by
from controller.resources import PODS, SERVICES
from controller.status import StatusDraft
from controller.watchers.store import Delta

log = logging.getLogger("controller.reconcilers.temp_content")

LOOP = "temp-content"
ELIGIBLE_PHASES = frozenset({c.STOPPED, c.COMPLETED, c.FAILED})


def wanted(session: Mapping[str, Any]) -> bool:
    meta = session.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    phase = str((session.get("status") or {}).get("phase") or "")
    return (
        annotations.get(ANNOTATION_TEMP_CONTENT_REQUESTED) == "true"
        and phase in ELIGIBLE_PHASES
        and annotations.get(ANNOTATION_DESIRED_PHASE) != c.RUNNING
        and not meta.get("deletionTimestamp")
        # A session whose name maps to no Service name never had a workspace (InvalidName).
        and name_problem(str(meta.get("name") or "")) is None
    )


def concerns(ctx: Context, delta: Delta) -> bool:
    """Whether a session event can give this loop anything to do (controller-runtime's predicate).

    Only a session that asks for a content pod, or still has one (its pod, its Service, or a
    condition saying it is ready), has: every other session's reconcile here returns at once, and a
    cold start over 10,000 sessions would make 10,000 of them. Pod and Service events reach the
    loop on their own.
    """
    for session in (delta.old, delta.new):
        if session is not None and (
            ((session.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_TEMP_CONTENT_REQUESTED)
        ):
            return True
    current = delta.new if delta.new is not None else delta.old
    meta = (current or {}).get("metadata") or {}
    namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    if ctx.caches.pods.get(namespace, temp_content_pod_name(name)) is not None:
        return True
    if ctx.caches.services.get(namespace, temp_content_service_name(name)) is not None:
        return True
    conditions = ((current or {}).get("status") or {}).get("conditions") or ()
    return any(
        isinstance(x, Mapping) and x.get("type") == c.TEMP_CONTENT_POD_READY and x.get("status") == c.TRUE
        for x in conditions
    )


def idle_expiry(session: Mapping[str, Any], pod: Mapping[str, Any], ttl: float) -> datetime.datetime | None:
    """When the pod expires: TTL after the last access the backend recorded, else after its creation."""
    annotations = (session.get("metadata") or {}).get("annotations") or {}
    last = c.parse_time(annotations.get(ANNOTATION_TEMP_CONTENT_LAST_ACCESSED)) or c.parse_time(
        (pod.get("metadata") or {}).get("creationTimestamp")
    )
    return None if last is None else last + datetime.timedelta(seconds=ttl)


def pod_readiness(pod: Mapping[str, Any]) -> tuple[str, str, str]:
    status = pod.get("status") or {}
    for cond in status.get("conditions") or ():
        if cond.get("type") == "Ready" and cond.get("status") == "True":
            return c.TRUE, "PodReady", "the content pod is ready on port 8080"
    for container in status.get("containerStatuses") or ():
        waiting = (container.get("state") or {}).get("waiting")
        if waiting:
            return c.FALSE, str(waiting.get("reason") or "Waiting"), str(waiting.get("message") or "")
    scheduled = next((x for x in status.get("conditions") or () if x.get("type") == "PodScheduled"), None)
    if scheduled is not None and scheduled.get("status") == "False":
        return c.FALSE, str(scheduled.get("reason") or "Unschedulable"), str(scheduled.get("message") or "")
    return c.FALSE, str(status.get("phase") or "Pending"), "the content pod is starting"


def _set_condition(ctx: Context, session: Mapping[str, Any], status: str, reason: str, message: str) -> None:
    def describe(draft: StatusDraft) -> None:
        draft.set_condition(c.TEMP_CONTENT_POD_READY, status, reason, message)

    ctx.write_status(session, LOOP, describe)


def _delete(ctx: Context, session: Mapping[str, Any], pod: Mapping[str, Any] | None) -> None:
    meta = session["metadata"]
    namespace, name, uid = meta["namespace"], meta["name"], meta.get("uid", "")
    if pod is not None and owned_by(pod, uid) and not pod["metadata"].get("deletionTimestamp"):
        ctx.kube.delete_ignore_missing(PODS, namespace, temp_content_pod_name(name))
    service = ctx.caches.services.get(namespace, temp_content_service_name(name))
    if service is not None and owned_by(service, uid) and not service["metadata"].get("deletionTimestamp"):
        ctx.kube.delete_ignore_missing(SERVICES, namespace, temp_content_service_name(name))


def reconcile(ctx: Context, key: Key) -> Result:
    namespace, name = key
    session = ctx.caches.sessions.get(namespace, name)
    if session is None:
        return Result.done()
    pod = ctx.caches.pods.get(namespace, temp_content_pod_name(name))
    uid = str(session["metadata"].get("uid", ""))
    conditions = c.parse_conditions(session.get("status"))
    if not wanted(session):
        _delete(ctx, session, pod)
        if pod is not None and owned_by(pod, uid):
            ctx.recorder.record(
                session,
                NORMAL,
                "TempContentPodDeleted",
                "the temporary content pod was deleted: the session no longer needs it",
            )
        current = conditions.get(c.TEMP_CONTENT_POD_READY)
        if current is not None and current.is_true:
            _set_condition(ctx, session, c.FALSE, "Deleted", "the temporary content pod was deleted")
        return Result.done()

    if pod is None:
        state = ensure_child(ctx, ctx.caches.pods, PODS, build_temp_content_pod(session, ctx.config), uid)
        ensure_child(ctx, ctx.caches.services, SERVICES, build_temp_content_service(session), uid)
        if state is Ensured.CREATED:
            ctx.recorder.record(
                session,
                NORMAL,
                "TempContentPodCreated",
                f"created pod {temp_content_pod_name(name)} to serve the workspace",
            )
            _set_condition(ctx, session, c.FALSE, "PodCreated", "the temporary content pod was created")
        return Result.done()
    if not owned_by(pod, uid):
        _set_condition(
            ctx,
            session,
            c.FALSE,
            c.NAME_CONFLICT,
            f"pod {temp_content_pod_name(name)} exists and is not owned by this session",
        )
        return Result.done()
    ensure_child(ctx, ctx.caches.services, SERVICES, build_temp_content_service(session), uid)

    expiry = idle_expiry(session, pod, ctx.config.temp_content_ttl)
    now = datetime.datetime.now(datetime.UTC)
    if expiry is not None and now >= expiry:
        _delete(ctx, session, pod)
        ctx.recorder.record(
            session,
            NORMAL,
            "TempContentIdle",
            f"the temporary content pod was idle for {ctx.config.temp_content_ttl:.0f}s and was deleted",
        )
        _set_condition(
            ctx,
            session,
            c.FALSE,
            "IdleTimeout",
            f"deleted after {ctx.config.temp_content_ttl:.0f}s without access",
        )
        patch_annotations(
            ctx,
            session,
            {ANNOTATION_TEMP_CONTENT_REQUESTED: None, ANNOTATION_TEMP_CONTENT_LAST_ACCESSED: None},
        )
        return Result.done()
    _set_condition(ctx, session, *pod_readiness(pod))
    return Result.after((expiry - now).total_seconds() + 0.5) if expiry is not None else Result.done()
