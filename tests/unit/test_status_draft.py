from __future__ import annotations

import datetime
from typing import Any

import pytest

from controller import conditions as c
from controller.conditions import FALSE, TRUE
from controller.names import ANNOTATION_DESIRED_PHASE
from controller.status import StatusDraft

OLD_TIME = "2024-01-01T00:00:00Z"


def stored(kind: str, status: str, reason: str, message: str = "", generation: int = 2) -> dict[str, Any]:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": OLD_TIME,
        "observedGeneration": generation,
    }


def session(
    status: dict[str, Any] | None = None, generation: int = 2, desired: str | None = None
) -> dict[str, Any]:
    annotations = {ANNOTATION_DESIRED_PHASE: desired} if desired else {}
    obj: dict[str, Any] = {
        "apiVersion": "vteam.ambient-code/v1alpha1",
        "kind": "AgenticSession",
        "metadata": {
            "name": "s1",
            "namespace": "team-a",
            "generation": generation,
            "resourceVersion": "100",
            "annotations": annotations,
        },
        "spec": {"initialPrompt": "hello"},
    }
    if status is not None:
        obj["status"] = status
    return obj


def running_status() -> dict[str, Any]:
    return {
        "phase": c.RUNNING,
        "lastActivityTime": "2025-06-01T11:59:00Z",
        "conditions": [
            stored(c.RECONCILED, TRUE, c.SPEC_APPLIED, "spec applied"),
            stored(c.PVC_READY, TRUE, "Bound"),
            stored(c.SECRETS_READY, TRUE, "TokenIssued"),
            stored(c.JOB_CREATED, TRUE, "Created"),
            stored(c.POD_SCHEDULED, TRUE, "Scheduled", "scheduled on worker-1"),
            stored(c.RUNNER_STARTED, TRUE, "ContainerRunning", "the runner container is running"),
            stored(c.READY, TRUE, c.RUNNING, "the runner is running"),
        ],
    }


def conditions_of(patch: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    assert patch is not None
    return {entry["type"]: entry for entry in patch["status"]["conditions"]}


@pytest.mark.parametrize("loop", ["jobs", "token-secrets", "temp-content"])
def test_no_change_no_patch(loop: str) -> None:
    assert StatusDraft(session(running_status()), loop).patch() is None


def test_sessions_loop_steady_state_writes_nothing() -> None:
    draft = StatusDraft(session(running_status()), "sessions")
    draft.set_condition(c.RECONCILED, TRUE, c.SPEC_APPLIED, "spec applied")
    draft.set_condition(c.PVC_READY, TRUE, "Bound")
    assert draft.patch() is None


def test_sessions_loop_pending_steady_state_writes_nothing() -> None:
    status = {
        "phase": c.PENDING,
        "conditions": [stored(c.READY, FALSE, c.PENDING, "waiting to be provisioned")],
    }
    assert StatusDraft(session(status), "sessions").patch() is None


def test_unchanged_status_keeps_last_transition_time() -> None:
    draft = StatusDraft(session(running_status()), "jobs")
    draft.set_condition(c.POD_SCHEDULED, TRUE, "Scheduled", "scheduled on worker-2")
    entry = conditions_of(draft.patch())[c.POD_SCHEDULED]
    assert entry["lastTransitionTime"] == OLD_TIME
    assert entry["message"] == "scheduled on worker-2"


def test_changed_status_moves_last_transition_time() -> None:
    draft = StatusDraft(session(running_status()), "jobs")
    draft.set_condition(c.RUNNER_STARTED, FALSE, "CrashLoopBackOff", "back-off restarting")
    entry = conditions_of(draft.patch())[c.RUNNER_STARTED]
    moved = c.parse_time(entry["lastTransitionTime"])
    assert moved is not None
    assert abs((datetime.datetime.now(datetime.UTC) - moved).total_seconds()) < 5


def test_new_condition_gets_a_transition_time() -> None:
    draft = StatusDraft(session({}), "token-secrets")
    draft.set_condition(c.SECRETS_READY, TRUE, "TokenIssued")
    assert c.parse_time(conditions_of(draft.patch())[c.SECRETS_READY]["lastTransitionTime"]) is not None


def test_observed_generation_follows_metadata_generation() -> None:
    draft = StatusDraft(session(running_status(), generation=7), "runner-sync")
    draft.set_condition(c.RECONCILED, TRUE, c.SPEC_APPLIED, "spec applied")
    entries = conditions_of(draft.patch())
    assert entries[c.RECONCILED]["observedGeneration"] == 7
    assert entries[c.READY]["observedGeneration"] == 7
    assert entries[c.RECONCILED]["lastTransitionTime"] == OLD_TIME


def test_reconciled_is_written_only_by_its_owner_in_the_phase() -> None:
    """Before the runner runs the sessions loop owns Reconciled; while it runs, runner sync does."""
    running = session(running_status())
    ignored = StatusDraft(running, "sessions")
    ignored.set_reconciled(c.FALSE, "Whatever", "not mine", 7)
    ignored.set_condition(c.RECONCILED, c.FALSE, "Whatever", "not mine")
    assert ignored.patch() is None
    owner = StatusDraft(running, "runner-sync")
    owner.set_reconciled(c.FALSE, "RunnerSyncPending", "model", None)
    patch = owner.patch()
    assert patch is not None and "observedGeneration" not in patch["status"]
    creating = StatusDraft(session({"phase": c.CREATING}, generation=3), "runner-sync")
    creating.set_reconciled(c.TRUE, c.SPEC_APPLIED, "x", 3)
    assert c.RECONCILED not in creating.conditions and creating.get("observedGeneration") is None


@pytest.mark.parametrize(
    ("loop", "kind"),
    [
        ("jobs", c.READY),
        ("jobs", c.SECRETS_READY),
        ("sessions", c.RUNNER_STARTED),
        ("token-secrets", c.JOB_CREATED),
        ("temp-content", c.RUNNER_FINISHED),
        ("unknown-loop", c.READY),
    ],
)
def test_a_loop_cannot_set_a_condition_it_does_not_own(loop: str, kind: str) -> None:
    draft = StatusDraft(session(running_status()), loop)
    with pytest.raises(ValueError, match=kind):
        draft.set_condition(kind, TRUE, "Whatever")
    with pytest.raises(ValueError, match=kind):
        draft.remove_condition(kind)


def test_set_none_removes_an_existing_field() -> None:
    draft = StatusDraft(session({**running_status(), "completionTime": "2025-06-01T12:00:00Z"}), "jobs")
    draft.set("completionTime", None)
    assert draft.patch() == {"status": {"completionTime": None}}


def test_set_none_on_an_absent_field_writes_nothing() -> None:
    draft = StatusDraft(session(running_status()), "jobs")
    draft.set("completionTime", None)
    assert draft.patch() is None


def test_set_same_value_writes_nothing_and_new_value_is_written() -> None:
    draft = StatusDraft(session({**running_status(), "stoppedReason": "user"}), "jobs")
    draft.set("stoppedReason", "user")
    assert draft.patch() is None
    draft.set("stoppedReason", "timeout")
    assert draft.patch() == {"status": {"stoppedReason": "timeout"}}
    assert draft.get("stoppedReason") == "timeout"
    assert draft.get("lastActivityTime") == "2025-06-01T11:59:00Z"


def test_patch_carries_phase_only_when_it_changes() -> None:
    creating = {
        "phase": c.CREATING,
        "conditions": [stored(c.PVC_READY, TRUE, "Bound"), stored(c.JOB_CREATED, TRUE, "Created")],
    }
    draft = StatusDraft(session(creating), "jobs")
    draft.set_condition(c.POD_SCHEDULED, FALSE, "Unschedulable", "0/3 nodes are available")
    patch = draft.patch()
    assert patch is not None and "phase" not in patch["status"]
    assert c.POD_SCHEDULED in conditions_of(patch)

    draft = StatusDraft(session(creating), "jobs")
    draft.set_condition(c.RUNNER_STARTED, TRUE, "ContainerRunning")
    patch = draft.patch()
    assert patch is not None and patch["status"]["phase"] == c.RUNNING
    assert "lastActivityTime" not in patch["status"]


def test_patch_phase_follows_the_desired_phase_annotation() -> None:
    draft = StatusDraft(session(running_status(), desired=c.STOPPED), "jobs")
    assert draft.desired_phase == c.STOPPED
    patch = draft.patch()
    assert patch is not None
    assert patch["status"]["phase"] == c.STOPPING
    # Ready is derived along with the phase, so it follows the stop request in the same write.
    assert conditions_of(patch)[c.READY]["reason"] == c.STOPPING
    assert set(conditions_of(patch)) == {cond["type"] for cond in running_status()["conditions"]}


def test_reset_conditions_gives_pending() -> None:
    failed = {
        "phase": c.FAILED,
        "conditions": [
            *running_status()["conditions"][:6],
            stored(c.RUNNER_FINISHED, TRUE, "OOMKilled", "out of memory"),
            stored(c.READY, FALSE, "OOMKilled", "out of memory"),
        ],
    }
    draft = StatusDraft(session(failed), "sessions")
    draft.reset_conditions()
    patch = draft.patch()
    assert patch is not None
    assert patch["status"]["phase"] == c.PENDING
    assert list(conditions_of(patch)) == [c.READY]
    assert conditions_of(patch)[c.READY]["status"] == FALSE


def test_reset_conditions_keeps_the_listed_ones() -> None:
    draft = StatusDraft(session(running_status()), "jobs")
    draft.reset_conditions(keep=(c.PVC_READY,))
    patch = draft.patch()
    assert patch is not None
    assert patch["status"]["phase"] == c.CREATING
    assert list(conditions_of(patch)) == [c.PVC_READY, c.READY]
