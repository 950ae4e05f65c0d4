"""The runner jobs loop: the one monitor of each runner Job, turning runner state into status.

Event-driven, keyed by session: Job and Pod events (label-selected to runner objects) and session
events wake it, it reads the Job and its pod from the caches and writes only the runner conditions
(PodScheduled, RunnerStarted, RunnerFinished) with the derived phase. Nothing polls: a steady
Running session costs no request. A session never stays Running when its runner is gone.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Mapping
from typing import Any

from controller import conditions as c
from controller import metrics
from controller.events import NORMAL, WARNING
from controller.names import ANNOTATION_DESIRED_PHASE, runner_job_name, session_service_name
from controller.reconcile import Key, Result
from controller.reconcilers.context import Context, owned_by
from controller.reconcilers.runner_state import Observation, Outcome, job_finished, observe
from controller.resources import JOBS, SERVICES
from controller.status import StatusDraft

log = logging.getLogger("controller.reconcilers.jobs")

LOOP = "jobs"


class JobMonitors:
    """Which runner Job each session's monitor follows: at most one per Job, by construction.

    Keyed by session and holding the Job's uid, it cannot hold two entries for one Job, however
    many events arrive; after an operator restart it is rebuilt from the caches by the first
    reconcile of every session.
    """

    def __init__(self) -> None:
        self._jobs: dict[Key, str] = {}
        self._lock = threading.Lock()

    def follow(self, key: Key, job_uid: str) -> None:
        with self._lock:
            self._jobs[key] = job_uid
            metrics.monitored_jobs.set(len(self._jobs))

    def release(self, key: Key) -> None:
        with self._lock:
            if self._jobs.pop(key, None) is not None:
                metrics.monitored_jobs.set(len(self._jobs))

    def count(self) -> int:
        with self._lock:
            return len(self._jobs)


def runner_pods(ctx: Context, namespace: str, name: str, job_uid: str) -> list[Mapping[str, Any]]:
    pods = [p for p in ctx.children(ctx.caches.pods, namespace, name) if owned_by(p, job_uid)]
    return sorted(
        pods, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or ""), reverse=True
    )


def reconcile(ctx: Context, monitors: JobMonitors, key: Key) -> Result:
    namespace, name = key
    session = ctx.caches.sessions.get(namespace, name)
    if session is None:
        monitors.release(key)
        return Result.done()
    meta = session.get("metadata") or {}
    uid = str(meta.get("uid", ""))
    status = session.get("status") if isinstance(session.get("status"), Mapping) else {}
    phase = str((status or {}).get("phase") or "")
    conditions = c.parse_conditions(status)
    job = ctx.caches.jobs.get(namespace, runner_job_name(name))
    if job is not None and not owned_by(job, uid):
        job = None
    if job is not None and not job_finished(job) and not (job.get("metadata") or {}).get("deletionTimestamp"):
        monitors.follow(key, str(job["metadata"].get("uid")))
    else:
        monitors.release(key)

    if phase in (c.COMPLETED, c.FAILED):
        clean_up(ctx, session, job)
        return Result.done()
    job_condition = conditions.get(c.JOB_CREATED)
    desired = (meta.get("annotations") or {}).get(ANNOTATION_DESIRED_PHASE)
    if (
        phase in (c.STOPPED, c.STOPPING)
        or desired == c.STOPPED
        or (job_condition is not None and job_condition.reason in (c.STOPPING_REASON, c.STOPPED_REASON))
    ):
        return Result.done()

    if job is not None and (job_condition is None or not job_condition.is_true):
        # The sessions loop records the Job it created in the same status write that starts
        # Creating; runner observations come after that write, which brings us back here.
        return Result.done()
    started = conditions.get(c.RUNNER_STARTED)
    was_running = started is not None and started.is_true
    now = datetime.datetime.now(datetime.UTC)
    if job is None:
        if was_running and not ctx.expectations.pending("Job", namespace, runner_job_name(name)):
            return finish(ctx, session, None, Observation(finished=_lost_job(name)))
        return creating_deadline(ctx, session, phase, now)
    observation = observe(
        job,
        runner_pods(ctx, namespace, name, str(job["metadata"].get("uid"))),
        was_running=was_running,
        now=now,
        waiting_grace=ctx.config.image_pull_grace,
        unschedulable_grace=ctx.config.unschedulable_grace,
    )
    if observation.finished is not None:
        return finish(ctx, session, job, observation)

    def describe(draft: StatusDraft) -> None:
        apply_observation(draft, observation)

    ctx.write_status(session, LOOP, describe)
    scheduled = observation.scheduled
    if scheduled is not None and scheduled.status == c.FALSE:
        ctx.recorder.record(
            session, WARNING, scheduled.reason, f"the runner pod cannot be scheduled: {scheduled.message}"
        )
    deadline = (
        creating_deadline(ctx, session, phase, now)
        if not (observation.started and observation.started.status == c.TRUE)
        else Result.done()
    )
    delays = [d for d in (observation.recheck_after, deadline.requeue_after) if d is not None]
    return Result.after(min(delays)) if delays else Result.done()


def _lost_job(name: str) -> Outcome:
    return Outcome(c.RUNNER_LOST, f"the runner Job {runner_job_name(name)} was deleted while the session ran")


def apply_observation(draft: StatusDraft, observation: Observation) -> None:
    if observation.scheduled is not None:
        s = observation.scheduled
        draft.set_condition(c.POD_SCHEDULED, s.status, s.reason, s.message)
    if observation.started is not None:
        s = observation.started
        draft.set_condition(c.RUNNER_STARTED, s.status, s.reason, s.message)


def finish(
    ctx: Context, session: Mapping[str, Any], job: Mapping[str, Any] | None, observation: Observation
) -> Result:
    outcome = observation.finished
    assert outcome is not None

    def describe(draft: StatusDraft) -> None:
        if c.RUNNER_FINISHED in draft.conditions and draft.conditions[c.RUNNER_FINISHED].is_true:
            return  # the first recorded end is the cause; later symptoms do not overwrite it
        apply_observation(draft, observation)
        if outcome.succeeded:
            draft.set_condition(c.RUNNER_FINISHED, c.TRUE, c.SUCCEEDED, outcome.message)
        else:
            draft.set_condition(c.RUNNER_FINISHED, c.TRUE, outcome.reason, outcome.message)
        started = draft.conditions.get(c.RUNNER_STARTED)
        if started is not None and started.is_true:
            draft.set_condition(c.RUNNER_STARTED, c.FALSE, "RunnerEnded", "the runner is no longer running")
        draft.set("completionTime", c.now_rfc3339())
        if outcome.stopped_reason:
            draft.set("stoppedReason", outcome.stopped_reason)

    written = ctx.write_status(session, LOOP, describe)
    if written is not None:
        event_type = NORMAL if outcome.succeeded else WARNING
        ctx.recorder.record(
            session, event_type, "RunnerSucceeded" if outcome.succeeded else outcome.reason, outcome.message
        )
    clean_up(ctx, session, job)
    return Result.done()


def clean_up(ctx: Context, session: Mapping[str, Any], job: Mapping[str, Any] | None) -> None:
    """A finished session keeps its workspace but not its Service, nor its Job unless a TTL keeps it."""
    meta = session["metadata"]
    namespace, name, uid = meta["namespace"], meta["name"], meta.get("uid", "")
    service = ctx.caches.services.get(namespace, session_service_name(name))
    if service is not None and owned_by(service, uid) and not service["metadata"].get("deletionTimestamp"):
        ctx.kube.delete_ignore_missing(SERVICES, namespace, session_service_name(name))
    if (
        job is not None
        and ctx.config.job_ttl_after_finished < 0
        and not (job.get("metadata") or {}).get("deletionTimestamp")
    ):
        ctx.kube.delete_ignore_missing(JOBS, namespace, runner_job_name(name), propagation="Background")


def creating_deadline(ctx: Context, session: Mapping[str, Any], phase: str, now: datetime.datetime) -> Result:
    """Fails a session that waited in Creating longer than --creating-timeout, saying for what."""
    if phase not in (c.CREATING, c.PENDING):
        return Result.done()
    started = c.parse_time((session.get("status") or {}).get("startTime")) or c.parse_time(
        (session.get("metadata") or {}).get("creationTimestamp")
    )
    if started is None:
        return Result.done()
    waited = (now - started).total_seconds()
    if waited < ctx.config.creating_timeout:
        return Result.after(ctx.config.creating_timeout - waited + 0.5)
    conditions = c.parse_conditions(session.get("status"))
    _, reason, detail = c.derive_ready(conditions, phase)
    message = (
        f"the session stayed in {phase} for {waited:.0f}s (limit {ctx.config.creating_timeout:.0f}s) "
        f"waiting for {reason}" + (f": {detail}" if detail else "")
    )

    def describe(draft: StatusDraft) -> None:
        if draft.old_phase not in (c.CREATING, c.PENDING):
            return
        draft.set_condition(c.RUNNER_STARTED, c.FALSE, c.CREATING_TIMEOUT, message)
        draft.set("completionTime", c.now_rfc3339())

    if ctx.write_status(session, LOOP, describe) is not None:
        ctx.recorder.record(session, WARNING, c.CREATING_TIMEOUT, message)
    return Result.done()
