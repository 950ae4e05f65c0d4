"""Session conditions and the one function that derives the phase from them.

Each loop writes only the conditions it owns; nobody sets the phase by hand. Whichever loop writes
status writes the phase `derive_phase` returns for the conditions it is about to store, so two loops
can never disagree about it, and a person can read why a session is in its phase from its
conditions alone.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Phases
PENDING = "Pending"
CREATING = "Creating"
RUNNING = "Running"
STOPPING = "Stopping"
STOPPED = "Stopped"
COMPLETED = "Completed"
FAILED = "Failed"
PHASES = (PENDING, CREATING, RUNNING, STOPPING, STOPPED, COMPLETED, FAILED)
TERMINAL_PHASES = frozenset({STOPPED, COMPLETED, FAILED})

# Condition types, by owning loop
RECONCILED = "Reconciled"  # sessions
PVC_READY = "PVCReady"  # sessions
JOB_CREATED = "JobCreated"  # sessions
READY = "Ready"  # derived from the others, like the phase, by whichever loop writes status
SECRETS_READY = "SecretsReady"  # sessions (the first token) and token secrets (refreshes)
POD_SCHEDULED = "PodScheduled"  # jobs
RUNNER_STARTED = "RunnerStarted"  # jobs
RUNNER_FINISHED = "RunnerFinished"  # jobs: the runner's end, success or failure
TEMP_CONTENT_POD_READY = "TempContentPodReady"  # temp content
S3_AVAILABLE = "S3Available"  # sessions: the S3 storage of a runtime with persistence s3
MODEL_VALID = "ModelValid"  # sessions: the model a starting runner gets (models manifest)
REPOS_RECONCILED = "ReposReconciled"  # runner sync
WORKFLOW_RECONCILED = "WorkflowReconciled"  # runner sync
MODEL_RECONCILED = "ModelReconciled"  # runner sync

OWNED_BY = {
    "sessions": frozenset({RECONCILED, PVC_READY, SECRETS_READY, JOB_CREATED, S3_AVAILABLE, MODEL_VALID}),
    "token-secrets": frozenset({SECRETS_READY}),
    "jobs": frozenset({POD_SCHEDULED, RUNNER_STARTED, RUNNER_FINISHED}),
    "temp-content": frozenset({TEMP_CONTENT_POD_READY}),
    # Reconciled is shared by phase, see reconciled_owner: the spec reaches a runner that is not
    # running yet through its Job (sessions), and a running one over HTTP (runner sync).
    "runner-sync": frozenset({RECONCILED, REPOS_RECONCILED, WORKFLOW_RECONCILED, MODEL_RECONCILED}),
}
PROVISIONING = (PVC_READY, SECRETS_READY, JOB_CREATED, POD_SCHEDULED, RUNNER_STARTED)

# Reasons
SPEC_APPLIED = "SpecApplied"
INVALID_SPEC = "InvalidSpec"
PARENT_WORKSPACE_MISSING = "ParentWorkspaceMissing"
NAME_CONFLICT = "NameConflict"
CREATING_TIMEOUT = "CreatingTimeout"
STOPPING_REASON = "Stopping"
STOPPED_REASON = "Stopped"
SUCCEEDED = "Succeeded"
RUNNER_LOST = "RunnerLost"
JOB_LOST = "JobLost"
INVALID_NAME = "InvalidName"  # no valid child name for the session's name (controller/names.py)
SPEC_TOO_COMPLEX = "SpecTooComplex"  # the cache could not hold the session whole (quarantine.py)
PROVISIONING_REJECTED = "ProvisioningRejected"  # the API server refused a child for good (400, 422)
PROVISIONING_FORBIDDEN = "ProvisioningForbidden"  # 403 on a child: retried slowly, RBAC may change


def reconciled_owner(phase: str) -> str:
    """The one loop that writes Reconciled and status.observedGeneration for a session in `phase`.

    Before the runner runs, the sessions loop: the spec reaches the runner as its Job's env. While it
    runs, runner sync: the spec reaches it only through the runner's HTTP API. The stored phase
    decides, read fresh on every write, so the two loops never both write it.
    """
    return "runner-sync" if phase == RUNNING else "sessions"


# A condition False with one of these reasons means the session cannot make progress without a
# person: the phase is Failed.
TERMINAL_REASONS = frozenset(
    {
        INVALID_SPEC,
        PARENT_WORKSPACE_MISSING,
        NAME_CONFLICT,
        CREATING_TIMEOUT,
        JOB_LOST,
        INVALID_NAME,
        SPEC_TOO_COMPLEX,
        PROVISIONING_REJECTED,
    }
)
# Terminal reasons a new generation of the spec may cure: the session is checked again then.
SPEC_REASONS = frozenset({INVALID_SPEC, SPEC_TOO_COMPLEX, PROVISIONING_REJECTED})

# A condition False with one of these reasons means the session waits for something outside it
# (a Secret, a registry entry) before its runner can be created: the phase stays Pending.
PENDING_REASONS = frozenset({"RunnerSecretMissing", "VertexSecretMissing", "UnknownRunnerType"})

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"


@dataclass(frozen=True)
class Condition:
    type: str
    status: str
    reason: str = ""
    message: str = ""
    last_transition_time: str = ""
    observed_generation: int = 0

    @property
    def is_true(self) -> bool:
        return self.status == TRUE

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": self.last_transition_time,
            "observedGeneration": self.observed_generation,
        }

    @staticmethod
    def from_dict(raw: Mapping[str, Any]) -> Condition:
        generation = raw.get("observedGeneration")
        return Condition(
            type=str(raw.get("type", "")),
            status=str(raw.get("status") or UNKNOWN),
            reason=str(raw.get("reason") or ""),
            message=str(raw.get("message") or ""),
            last_transition_time=str(raw.get("lastTransitionTime") or ""),
            observed_generation=generation if isinstance(generation, int) else 0,
        )


def parse_conditions(status: Mapping[str, Any] | None) -> dict[str, Condition]:
    """Conditions by type; malformed entries are skipped rather than trusted or fatal."""
    found: dict[str, Condition] = {}
    raw = (status or {}).get("conditions")
    if not isinstance(raw, list | tuple):
        return found
    for entry in raw:
        if isinstance(entry, Mapping) and isinstance(entry.get("type"), str):
            found[entry["type"]] = Condition.from_dict(entry)
    return found


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def failure(conditions: Mapping[str, Condition]) -> Condition | None:
    """The condition that makes the session Failed, if any."""
    finished = conditions.get(RUNNER_FINISHED)
    if finished is not None and finished.is_true and finished.reason != SUCCEEDED:
        return finished
    started = conditions.get(RUNNER_STARTED)
    live = started is not None and started.is_true
    for condition in conditions.values():
        if condition.status == FALSE and condition.reason in TERMINAL_REASONS:
            # An invalid edit of a running session is refused, not fatal: the runner keeps the last
            # valid spec (a session that never started with an invalid spec still fails).
            if live and condition.reason == INVALID_SPEC:
                continue
            return condition
    return None


def derive_phase(conditions: Mapping[str, Condition], desired_phase: str | None) -> str:
    """The phase, from conditions plus the desired-phase annotation. Pure; see the table in tests."""
    if failure(conditions) is not None:
        return FAILED
    finished = conditions.get(RUNNER_FINISHED)
    if finished is not None and finished.is_true:
        return COMPLETED
    job = conditions.get(JOB_CREATED)
    if job is not None and job.status == FALSE and job.reason == STOPPED_REASON:
        return STOPPED
    if desired_phase == STOPPED or (job is not None and job.reason == STOPPING_REASON):
        return STOPPING
    started = conditions.get(RUNNER_STARTED)
    if started is not None and started.is_true:
        return RUNNING
    if any(x.status == FALSE and x.reason in PENDING_REASONS for x in conditions.values()):
        return PENDING
    model = conditions.get(MODEL_VALID)
    if model is not None and not model.is_true:
        return PENDING  # waits for a valid model or the manifest; starts once either is fixed
    if any(kind in conditions for kind in PROVISIONING):
        return CREATING
    return PENDING


def derive_ready(conditions: Mapping[str, Condition], phase: str) -> tuple[str, str, str]:
    """The Ready condition (status, reason, message): a one-line answer to 'why is it not working?'."""
    if phase == RUNNING:
        return TRUE, RUNNING, "the runner is running"
    failed = failure(conditions)
    if failed is not None:
        return FALSE, failed.reason, failed.message
    if phase == COMPLETED:
        return FALSE, COMPLETED, "the runner finished successfully"
    if phase in (STOPPED, STOPPING):
        job = conditions.get(JOB_CREATED)
        return FALSE, phase, job.message if job is not None and job.message else f"session {phase.lower()}"
    for kind in (
        RECONCILED,
        MODEL_VALID,
        PVC_READY,
        SECRETS_READY,
        JOB_CREATED,
        POD_SCHEDULED,
        RUNNER_STARTED,
    ):
        condition = conditions.get(kind)
        if condition is not None and not condition.is_true:
            return FALSE, condition.reason or "Waiting", condition.message
    return (
        FALSE,
        phase,
        "waiting for the runner to start" if phase == CREATING else "waiting to be provisioned",
    )


def condition_list(conditions: Iterable[Condition]) -> list[dict[str, Any]]:
    order = {
        kind: i
        for i, kind in enumerate(
            (
                RECONCILED,
                MODEL_VALID,
                PVC_READY,
                SECRETS_READY,
                JOB_CREATED,
                POD_SCHEDULED,
                RUNNER_STARTED,
                RUNNER_FINISHED,
                READY,
                TEMP_CONTENT_POD_READY,
                REPOS_RECONCILED,
                WORKFLOW_RECONCILED,
                MODEL_RECONCILED,
            )
        )
    }
    return [c.to_dict() for c in sorted(conditions, key=lambda c: (order.get(c.type, 99), c.type))]
