"""The sessions loop: spec validation, child provisioning, stop and restart.

Level-based: each reconcile reads the session and its children from the caches, decides what the
world should look like for the session's desired phase, converges one step, and records the result
in the conditions this loop owns. It never depends on which event woke it up.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from typing import Any

from controller import conditions as c
from controller.events import NORMAL, WARNING
from controller.kube import JOBS, SERVICES, ApiError
from controller.names import (
    ANNOTATION_DESIRED_PHASE,
    ANNOTATION_START_REQUESTED_AT,
    ANNOTATION_STOP_REASON,
    ANNOTATION_STOP_REQUESTED_AT,
    runner_job_name,
    session_service_name,
)
from controller.reconcile import Key, Result, sooner
from controller.reconcilers import copied_secrets
from controller.reconcilers.annotations import patch_annotations
from controller.reconcilers.context import Context, owned_by
from controller.reconcilers.provision import LOOP, provision
from controller.reconcilers.spec import validate_spec
from controller.status import StatusDraft

log = logging.getLogger("controller.reconcilers.sessions")

STOP_REASONS = ("user", "inactivity", "run-finished", "timeout")
PROVISIONING_FAILED = "ProvisioningFailed"


def reconcile(ctx: Context, key: Key) -> Result:
    namespace, name = key
    session = ctx.caches.sessions.get(namespace, name)
    if session is None or (session.get("metadata") or {}).get("deletionTimestamp"):
        return Result.done()
    annotations = (session.get("metadata") or {}).get("annotations") or {}
    status = session.get("status") if isinstance(session.get("status"), Mapping) else {}
    phase = str((status or {}).get("phase") or "")
    conditions = c.parse_conditions(status)
    desired = annotations.get(ANNOTATION_DESIRED_PHASE)
    job_condition = conditions.get(c.JOB_CREATED)
    stopping = job_condition is not None and job_condition.reason == c.STOPPING_REASON

    if desired == c.RUNNING:
        if phase in c.TERMINAL_PHASES:
            return restart(ctx, session)
        patch_annotations(ctx, session, {ANNOTATION_DESIRED_PHASE: None, ANNOTATION_START_REQUESTED_AT: None})
    if desired == c.STOPPED or stopping:
        if phase in c.TERMINAL_PHASES and not stopping:
            clear_stop_request(ctx, session)
            return Result.done()
        return stop(ctx, session)
    if phase in c.TERMINAL_PHASES and not _spec_fixed_after_invalid(session, conditions):
        copied_secrets.release(ctx, session)
        return Result.done()

    problems = validate_spec(session)
    if problems:
        return reject_spec(ctx, session, problems)
    try:
        result = provision(ctx, session, conditions)
    except ApiError as exc:
        if exc.conflict:
            raise
        report_provisioning_error(ctx, session, exc)
        raise
    if phase == c.RUNNING:
        return sooner(result, inactivity(ctx, session))
    return result


def _spec_fixed_after_invalid(session: Mapping[str, Any], conditions: Mapping[str, c.Condition]) -> bool:
    """A session that failed only for its spec is re-validated once a new generation arrives."""
    reconciled = conditions.get(c.RECONCILED)
    generation = int((session.get("metadata") or {}).get("generation") or 0)
    failed = c.failure(conditions)
    return (
        failed is not None
        and failed.reason == c.INVALID_SPEC
        and reconciled is not None
        and reconciled.observed_generation != generation
    )


def report_provisioning_error(ctx: Context, session: Mapping[str, Any], exc: ApiError) -> None:
    """An API error while creating children is shown on the session, not only logged; it is retried."""
    message = f"creating the session's objects failed: {exc.status} {exc.reason}: {exc.message}"[:1024]

    def describe(draft: StatusDraft) -> None:
        draft.set_condition(c.RECONCILED, c.FALSE, PROVISIONING_FAILED, message + " (retrying)")

    ctx.write_status(session, LOOP, describe)
    ctx.recorder.record(session, WARNING, PROVISIONING_FAILED, message)


# -- spec ------------------------------------------------------------------------------------------


def reject_spec(ctx: Context, session: Mapping[str, Any], problems: list[Any]) -> Result:
    message = "; ".join(f"{p.field}: {p.message}" for p in problems)

    def describe(draft: StatusDraft) -> None:
        draft.set_condition(c.RECONCILED, c.FALSE, c.INVALID_SPEC, message)
        draft.set("observedGeneration", draft.generation)
        if draft.get("completionTime") is None:
            draft.set("completionTime", c.now_rfc3339())

    ctx.write_status(session, LOOP, describe)
    ctx.recorder.record(session, WARNING, c.INVALID_SPEC, message)
    return Result.done()


# -- restart and stop ------------------------------------------------------------------------------


def restart(ctx: Context, session: Mapping[str, Any]) -> Result:
    def describe(draft: StatusDraft) -> None:
        if draft.old_phase not in c.TERMINAL_PHASES:
            return
        draft.reset_conditions()
        previous = draft.get("restartCount")
        draft.set("restartCount", (previous if isinstance(previous, int) else 0) + 1)
        draft.set("startTime", c.now_rfc3339())
        draft.set("completionTime", None)
        draft.set("stoppedReason", None)

    ctx.write_status(session, LOOP, describe)
    ctx.recorder.record(session, NORMAL, "Restarting", "restart requested: provisioning the runner again")
    patch_annotations(
        ctx,
        session,
        {
            ANNOTATION_DESIRED_PHASE: None,
            ANNOTATION_START_REQUESTED_AT: None,
            ANNOTATION_STOP_REASON: None,
            ANNOTATION_STOP_REQUESTED_AT: None,
        },
    )
    return Result.done()


def clear_stop_request(ctx: Context, session: Mapping[str, Any]) -> None:
    patch_annotations(
        ctx,
        session,
        {
            ANNOTATION_DESIRED_PHASE: None,
            ANNOTATION_STOP_REQUESTED_AT: None,
            ANNOTATION_STOP_REASON: None,
        },
    )


def _runner_pods(ctx: Context, namespace: str, name: str) -> list[Mapping[str, Any]]:
    job_name = runner_job_name(name)
    return [
        p
        for p in ctx.children(ctx.caches.pods, namespace, name)
        if ((p.get("metadata") or {}).get("labels") or {}).get("job-name") == job_name
    ]


def stop(ctx: Context, session: Mapping[str, Any]) -> Result:
    meta = session["metadata"]
    namespace, name, uid = meta["namespace"], meta["name"], meta.get("uid", "")
    job = ctx.caches.jobs.get(namespace, runner_job_name(name))
    if job is not None and owned_by(job, uid) and not (job.get("metadata") or {}).get("deletionTimestamp"):
        ctx.kube.delete_ignore_missing(JOBS, namespace, runner_job_name(name), propagation="Background")
    service = ctx.caches.services.get(namespace, session_service_name(name))
    if service is not None and owned_by(service, uid):
        ctx.kube.delete_ignore_missing(SERVICES, namespace, session_service_name(name))
    still_running = (job is not None and owned_by(job, uid)) or bool(_runner_pods(ctx, namespace, name))
    reason = (meta.get("annotations") or {}).get(ANNOTATION_STOP_REASON)
    stopped_reason = reason if reason in STOP_REASONS else "user"

    def describe(draft: StatusDraft) -> None:
        if still_running:
            draft.set_condition(
                c.JOB_CREATED,
                c.FALSE,
                c.STOPPING_REASON,
                "stop requested: deleting the runner Job and its pod; the workspace is kept",
            )
            return
        draft.set_condition(
            c.JOB_CREATED, c.FALSE, c.STOPPED_REASON, f"stopped ({stopped_reason}); the workspace is kept"
        )
        draft.set("stoppedReason", stopped_reason)
        if draft.get("completionTime") is None:
            draft.set("completionTime", c.now_rfc3339())

    ctx.write_status(session, LOOP, describe)
    if not still_running:
        clear_stop_request(ctx, session)
        copied_secrets.release(ctx, session)
    return Result.done()


# -- inactivity ------------------------------------------------------------------------------------


def inactivity(ctx: Context, session: Mapping[str, Any]) -> Result:
    """Auto-stop a Running session idle longer than spec.inactivityTimeout (0 or unset: never)."""
    timeout = (session.get("spec") or {}).get("inactivityTimeout")
    if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout <= 0:
        return Result.done()
    status = session.get("status") or {}
    last = c.parse_time(status.get("lastActivityTime")) or c.parse_time(status.get("startTime"))
    if last is None:
        return Result.done()
    idle = (datetime.datetime.now(datetime.UTC) - last).total_seconds()
    if idle < timeout:
        return Result.after(timeout - idle + 0.5)
    ctx.recorder.record(
        session,
        NORMAL,
        "InactivityTimeout",
        f"no activity for {idle:.0f}s (inactivityTimeout {timeout}s): stopping the session",
    )
    patch_annotations(
        ctx, session, {ANNOTATION_DESIRED_PHASE: c.STOPPED, ANNOTATION_STOP_REASON: "inactivity"}
    )
    return Result.done()
