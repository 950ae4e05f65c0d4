"""What a runner Job and its Pod say about the session: a pure function, tested as a table.

Every way a runner can end or stall maps to a reason and a message a person can act on. The order
matters: the Job's DeadlineExceeded is the cause even though the killed pod then shows an exit
code; an OOMKilled container is the cause even though the Job then says BackoffLimitExceeded.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller.conditions import FALSE, RUNNER_LOST, SUCCEEDED, TRUE, parse_time

RUNNER_CONTAINER = "ambient-code-runner"

# Waiting reasons that mean the container will not start without a change by a person; they get a
# grace period because the kubelet reports some of them transiently.
STUCK_WAITING_REASONS = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "ErrImageNeverPull",
    }
)
CRASH_LOOP = "CrashLoopBackOff"
# Waiting reasons of a container that is simply on its way up.
STARTING_REASONS = frozenset({"ContainerCreating", "PodInitializing"})
DEADLINE_EXCEEDED = "DeadlineExceeded"
BACKOFF_LIMIT_EXCEEDED = "BackoffLimitExceeded"
OOM_KILLED = "OOMKilled"
EVICTED = "Evicted"
RUNNER_EXIT = "RunnerExit"
POD_FAILED = "PodFailed"


@dataclass(frozen=True)
class Status3:
    status: str
    reason: str
    message: str


@dataclass(frozen=True)
class Outcome:
    reason: str
    message: str
    stopped_reason: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.reason == SUCCEEDED


@dataclass(frozen=True)
class Observation:
    scheduled: Status3 | None = None
    started: Status3 | None = None
    finished: Outcome | None = None
    recheck_after: float | None = None


def _job_condition(job: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for cond in (job.get("status") or {}).get("conditions") or ():
        if cond.get("type") == kind and cond.get("status") == "True":
            return cond  # type: ignore[no-any-return]
    return None


def job_finished(job: Mapping[str, Any]) -> bool:
    """The Job controller has decided the Job's end (Complete or Failed)."""
    return _job_condition(job, "Complete") is not None or _job_condition(job, "Failed") is not None


def _job_failure(job: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The Job's failure, as soon as the Job controller decides it.

    The Job controller first adds FailureTarget (with the final reason), then terminates the pods,
    and only then sets Failed; reading both keeps the cause from being mistaken for a lost pod.
    """
    return _job_condition(job, "Failed") or _job_condition(job, "FailureTarget")


def runner_container(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    statuses = (pod.get("status") or {}).get("containerStatuses") or ()
    for status in statuses:
        if status.get("name") == RUNNER_CONTAINER:
            return status  # type: ignore[no-any-return]
    return statuses[0] if statuses else None


def _pod_condition(pod: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if cond.get("type") == kind:
            return cond  # type: ignore[no-any-return]
    return None


def _terminated_outcome(pod: Mapping[str, Any]) -> Outcome | None:
    container = runner_container(pod)
    state = (container or {}).get("state") or {}
    terminated = state.get("terminated")
    status = pod.get("status") or {}
    # An evicted pod's containers show exit 137 / ContainerStatusUnknown: the eviction is the cause.
    if status.get("phase") == "Failed" and status.get("reason") == EVICTED:
        return Outcome(EVICTED, f"the runner pod was evicted: {status.get('message') or 'no message'}")
    if terminated:
        code = terminated.get("exitCode")
        reason = str(terminated.get("reason") or "")
        if reason == OOM_KILLED:
            return Outcome(
                OOM_KILLED,
                f"the runner container was killed for running out of memory "
                f"(exit code {code}); raise the runner memory limit",
            )
        if code == 0:
            return Outcome(SUCCEEDED, "the runner exited with code 0")
        detail = f" ({reason})" if reason and reason != "Error" else ""
        text = str(terminated.get("message") or "").strip()
        return Outcome(
            RUNNER_EXIT, f"the runner exited with code {code}{detail}" + (f": {text}" if text else "")
        )
    if status.get("phase") == "Failed":
        return Outcome(
            POD_FAILED,
            f"the runner pod failed: {status.get('reason') or ''} {status.get('message') or ''}".strip(),
        )
    if status.get("phase") == "Succeeded":
        return Outcome(SUCCEEDED, "the runner pod succeeded")
    return None


def observe(
    job: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    *,
    was_running: bool,
    now: datetime.datetime,
    waiting_grace: float,
    unschedulable_grace: float = 0.0,
) -> Observation:
    """The runner's state from the cached Job and its pods (newest first)."""
    deadline = _job_failure(job)
    if deadline is not None and deadline.get("reason") == DEADLINE_EXCEEDED:
        return Observation(
            finished=Outcome(
                DEADLINE_EXCEEDED,
                f"the runner exceeded its deadline: {deadline.get('message') or ''}".strip(),
                stopped_reason="timeout",
            )
        )
    pod = pods[0] if pods else None
    if pod is not None:
        ended = _terminated_outcome(pod)
        if ended is not None:
            return Observation(finished=ended)
    failed = _job_failure(job)
    if failed is not None:
        reason = str(failed.get("reason") or BACKOFF_LIMIT_EXCEEDED)
        if pod is None and was_running:
            return Observation(
                finished=Outcome(RUNNER_LOST, "the runner pod was deleted while the session ran")
            )
        return Observation(
            finished=Outcome(reason, f"the runner Job failed: {failed.get('message') or reason}")
        )
    if _job_condition(job, "Complete") is not None:
        return Observation(finished=Outcome(SUCCEEDED, "the runner Job completed"))
    if pod is None:
        if was_running:
            return Observation(
                finished=Outcome(RUNNER_LOST, "the runner pod was deleted while the session ran")
            )
        return Observation()
    return _observe_live_pod(pod, now, waiting_grace, unschedulable_grace)


def _waited(since: Any, now: datetime.datetime, default: float) -> float:
    started = parse_time(since)
    return (now - started).total_seconds() if started is not None else default


def _observe_live_pod(
    pod: Mapping[str, Any], now: datetime.datetime, waiting_grace: float, unschedulable_grace: float
) -> Observation:
    """A pod on its way: only states worth a status write are reported.

    Progress that is about to be overtaken (container creating, scheduled but not yet running) is
    not written: the next state carries it. An unschedulable pod is reported once it has stayed so
    for the grace period, because waiting a few seconds for a volume to bind looks the same.
    """
    scheduled_cond = _pod_condition(pod, "PodScheduled")
    scheduled: Status3 | None = None
    recheck: float | None = None
    if scheduled_cond is not None:
        if scheduled_cond.get("status") == "True":
            node = (pod.get("spec") or {}).get("nodeName") or "a node"
            scheduled = Status3(TRUE, "Scheduled", f"scheduled on {node}")
        else:
            waited = _waited(scheduled_cond.get("lastTransitionTime"), now, unschedulable_grace)
            if waited >= unschedulable_grace:
                scheduled = Status3(
                    FALSE,
                    str(scheduled_cond.get("reason") or "Unschedulable"),
                    str(scheduled_cond.get("message") or "the scheduler found no node for the pod"),
                )
            else:
                recheck = unschedulable_grace - waited + 0.5
    container = runner_container(pod)
    state = (container or {}).get("state") or {}
    if state.get("running"):
        return Observation(
            scheduled=scheduled, started=Status3(TRUE, "ContainerRunning", "the runner container is running")
        )
    waiting = state.get("waiting")
    if not waiting or waiting.get("reason") in STARTING_REASONS:
        quiet = scheduled if scheduled is not None and scheduled.status == FALSE else None
        return Observation(scheduled=quiet, recheck_after=recheck)
    reason = str(waiting.get("reason") or "Waiting")
    message = str(waiting.get("message") or "")
    started = Status3(FALSE, reason, message or f"the runner container is waiting: {reason}")
    if reason == CRASH_LOOP:
        return Observation(
            scheduled=scheduled,
            started=started,
            finished=Outcome(CRASH_LOOP, f"the runner keeps crashing: {message or reason}"),
        )
    if reason in STUCK_WAITING_REASONS:
        since = parse_time((scheduled_cond or {}).get("lastTransitionTime")) or parse_time(
            (pod.get("metadata") or {}).get("creationTimestamp")
        )
        waited = (now - since).total_seconds() if since is not None else waiting_grace
        if waited >= waiting_grace:
            return Observation(
                scheduled=scheduled,
                started=started,
                finished=Outcome(
                    reason,
                    f"the runner container cannot start ({reason}) for {waited:.0f}s: {message or reason}",
                ),
            )
        return Observation(scheduled=scheduled, started=started, recheck_after=waiting_grace - waited + 0.5)
    return Observation(scheduled=scheduled, started=started)
