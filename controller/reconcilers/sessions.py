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
from controller.api_error import ApiError
from controller.events import NORMAL, WARNING
from controller.names import (
    ANNOTATION_DESIRED_PHASE,
    ANNOTATION_START_REQUESTED_AT,
    ANNOTATION_STOP_REASON,
    ANNOTATION_STOP_REQUESTED_AT,
    name_problem,
    runner_job_name,
    session_service_name,
)
from controller.platform.inactivity import effective_timeout, seconds_left
from controller.platform.project_settings import SINGLETON, inactivity_timeout_seconds
from controller.reconcile import Key, Result, sooner
from controller.reconcilers import copied_secrets
from controller.reconcilers.annotations import patch_annotations
from controller.reconcilers.api_errors import report_api_error, server_message
from controller.reconcilers.context import Context, owned_by
from controller.reconcilers.provision import provision
from controller.reconcilers.session_children import LOOP
from controller.reconcilers.spec import validate_spec
from controller.resources import JOBS, SERVICES, SESSIONS
from controller.status import StatusDraft
from controller.watchers.quarantine import SPEC_TOO_COMPLEX, rejection

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
        if not stopping:
            patch_annotations(
                ctx, session, {ANNOTATION_DESIRED_PHASE: None, ANNOTATION_START_REQUESTED_AT: None}
            )
        # While stopping, a start request is kept: once Stopped, it restarts the session.
    if desired == c.STOPPED or stopping:
        if phase in c.TERMINAL_PHASES and not stopping:
            clear_stop_request(ctx, session)
            return Result.done()
        return stop(ctx, session)
    if phase in c.TERMINAL_PHASES and not _spec_fixed_after_invalid(session, conditions):
        copied_secrets.release(ctx, session)
        return Result.done()

    refusal = refuse(session)
    if refusal is not None and phase == c.RUNNING:
        # The runner keeps the last valid spec; runner sync reports the refused edit.
        return inactivity(ctx, session)
    if refusal is not None:
        return reject(ctx, session, *refusal)
    try:
        result = provision(ctx, session, conditions)
    except ApiError as exc:
        if exc.conflict:
            raise
        handled = report_api_error(ctx, session, conditions, exc)
        if handled is not None:
            return handled
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
        and failed.reason in c.SPEC_REASONS
        and reconciled is not None
        and reconciled.observed_generation != generation
    )


def report_provisioning_error(ctx: Context, session: Mapping[str, Any], exc: ApiError) -> None:
    """An API error while creating children is shown on the session, not only logged; it is retried."""
    message = f"creating the session's objects failed: {server_message(exc)}"

    def describe(draft: StatusDraft) -> None:
        draft.set_condition(c.RECONCILED, c.FALSE, PROVISIONING_FAILED, message + " (retrying)")

    ctx.write_status(session, LOOP, describe)
    ctx.recorder.record(session, WARNING, PROVISIONING_FAILED, message)


# -- what cannot be provisioned --------------------------------------------------------------------


def refuse(session: Mapping[str, Any]) -> tuple[str, str] | None:
    """(reason, message) when nothing can be provisioned for this session as it is, else None.

    In order: the cache could not hold it whole, its name maps to no valid Service name, its spec
    is invalid. Each is terminal (Failed) until the session is replaced or its spec edited.
    """
    rejected = rejection(session)
    if rejected is not None:
        reason, message = rejected
        return (c.SPEC_TOO_COMPLEX if reason == SPEC_TOO_COMPLEX else c.INVALID_SPEC), message
    problem = name_problem(str((session.get("metadata") or {}).get("name") or ""))
    if problem is not None:
        return c.INVALID_NAME, problem
    problems = validate_spec(session)
    if problems:
        return c.INVALID_SPEC, "; ".join(f"{p.field}: {p.message}" for p in problems)
    return None


def reject(ctx: Context, session: Mapping[str, Any], reason: str, message: str) -> Result:
    """Fails the session for a cause only a person can fix, with an Event; never retried."""

    def describe(draft: StatusDraft) -> None:
        draft.set_reconciled(c.FALSE, reason, message, draft.generation)
        if draft.get("completionTime") is None:
            draft.set("completionTime", c.now_rfc3339())

    ctx.write_status(session, LOOP, describe)
    ctx.recorder.record(session, WARNING, reason, message)
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
        # The idle clock starts again with the new run (as the platform's ResetToPending does).
        draft.set("lastActivityTime", None)

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
    """Clears the stop request; a start request made meanwhile (desired-phase Running) stays."""
    desired = ((session.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_DESIRED_PHASE)
    changes: dict[str, str | None] = {ANNOTATION_STOP_REQUESTED_AT: None, ANNOTATION_STOP_REASON: None}
    if desired != c.RUNNING:
        changes[ANNOTATION_DESIRED_PHASE] = None
    patch_annotations(ctx, session, changes)


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
    """Stops a Running session idle longer than its timeout; otherwise one requeue at the expiry.

    The timeout follows the platform's precedence (controller.platform.inactivity). A backend
    activity write changes the session, which brings a reconcile that moves the expiry.
    """
    meta = session.get("metadata") or {}
    timeout = effective_timeout(
        session, _project_timeout(ctx, str(meta.get("namespace"))), ctx.config.default_inactivity_timeout
    )
    left = seconds_left(session, timeout, datetime.datetime.now(datetime.UTC))
    if left is None:
        return Result.done()
    if left[1] > 0:
        return Result.after(left[1] + 0.5)
    # The cache may lag an activity write: decide on a fresh read, as the platform does.
    fresh = ctx.kube.get_or_none(SESSIONS, str(meta.get("namespace")), str(meta.get("name")))
    if fresh is None:
        return Result.done()
    left = seconds_left(fresh, timeout, datetime.datetime.now(datetime.UTC))
    if left is None:
        return Result.done()
    if left[1] > 0:
        return Result.after(left[1] + 0.5)
    idle = left[0]
    if patch_annotations(
        ctx, fresh, {ANNOTATION_DESIRED_PHASE: c.STOPPED, ANNOTATION_STOP_REASON: "inactivity"}
    ):
        ctx.recorder.record(
            session,
            NORMAL,
            "InactivityTimeout",
            f"no activity for {idle:.0f}s (inactivity timeout {timeout.seconds}s from {timeout.source}): "
            "stopping the session",
        )
    return Result.done()


def _project_timeout(ctx: Context, namespace: str) -> int | None:
    cache = ctx.caches.project_settings
    if cache is None:
        return None
    return inactivity_timeout_seconds(cache.get(namespace, SINGLETON))
