from __future__ import annotations

import datetime
from typing import Any

import pytest

from controller import conditions as c
from controller.conditions import FALSE, TRUE, UNKNOWN, Condition


def cond(kind: str, status: str, reason: str = "", message: str = "") -> Condition:
    return Condition(type=kind, status=status, reason=reason, message=message)


def by_type(*items: Condition) -> dict[str, Condition]:
    return {item.type: item for item in items}


PROVISIONED = (
    cond(c.RECONCILED, TRUE, c.SPEC_APPLIED),
    cond(c.PVC_READY, TRUE, "Bound"),
    cond(c.SECRETS_READY, TRUE, "TokenIssued"),
    cond(c.JOB_CREATED, TRUE, "Created"),
    cond(c.POD_SCHEDULED, TRUE, "Scheduled"),
)
RUNNING = (*PROVISIONED, cond(c.RUNNER_STARTED, TRUE, "ContainerRunning"))
OOM = cond(c.RUNNER_FINISHED, TRUE, "OOMKilled", "the runner container was killed for running out of memory")
SUCCEEDED = cond(c.RUNNER_FINISHED, TRUE, c.SUCCEEDED, "the runner exited with code 0")
STOPPED_JOB = cond(c.JOB_CREATED, FALSE, c.STOPPED_REASON, "stopped by user")
STOPPING_JOB = cond(c.JOB_CREATED, FALSE, c.STOPPING_REASON, "deleting the runner job")


PHASE_TABLE: list[tuple[str, tuple[Condition, ...], str | None, str]] = [
    ("no conditions", (), None, c.PENDING),
    ("no conditions, desired Running", (), c.RUNNING, c.PENDING),
    ("reconciled only", (cond(c.RECONCILED, TRUE, c.SPEC_APPLIED),), None, c.PENDING),
    ("pvc provisioning", (cond(c.PVC_READY, FALSE, "Pending"),), None, c.CREATING),
    ("secrets provisioning", (cond(c.SECRETS_READY, FALSE, "Issuing"),), None, c.CREATING),
    ("job created", (cond(c.JOB_CREATED, TRUE, "Created"),), None, c.CREATING),
    (
        "pod unschedulable",
        (*PROVISIONED[:4], cond(c.POD_SCHEDULED, FALSE, "Unschedulable")),
        None,
        c.CREATING,
    ),
    (
        "runner not yet started",
        (*PROVISIONED, cond(c.RUNNER_STARTED, FALSE, "ContainerCreating")),
        None,
        c.CREATING,
    ),
    ("runner started", RUNNING, None, c.RUNNING),
    ("runner started, desired Running", RUNNING, c.RUNNING, c.RUNNING),
    ("stop requested while creating", PROVISIONED, c.STOPPED, c.STOPPING),
    ("stop requested while running", RUNNING, c.STOPPED, c.STOPPING),
    ("job being stopped", (*RUNNING[:3], STOPPING_JOB, *RUNNING[4:]), None, c.STOPPING),
    ("job stopped", (*PROVISIONED[:3], STOPPED_JOB), None, c.STOPPED),
    ("job stopped, RunnerStarted left over", (*RUNNING[:3], STOPPED_JOB, *RUNNING[4:]), None, c.STOPPED),
    ("job stopped, still desired Stopped", (*PROVISIONED[:3], STOPPED_JOB), c.STOPPED, c.STOPPED),
    ("runner succeeded", (*RUNNING, SUCCEEDED), None, c.COMPLETED),
    ("runner OOMKilled", (*RUNNING, OOM), None, c.FAILED),
    (
        "invalid spec",
        (cond(c.RECONCILED, FALSE, c.INVALID_SPEC, "spec.llmSettings.model: empty"),),
        None,
        c.FAILED,
    ),
    (
        "parent workspace missing",
        (cond(c.RECONCILED, TRUE, c.SPEC_APPLIED), cond(c.PVC_READY, FALSE, c.PARENT_WORKSPACE_MISSING)),
        None,
        c.FAILED,
    ),
    (
        "creating timeout",
        (*PROVISIONED, cond(c.RUNNER_STARTED, FALSE, c.CREATING_TIMEOUT, "creating for 600s")),
        None,
        c.FAILED,
    ),
    ("failure beats a stop request", (*RUNNING, OOM), c.STOPPED, c.FAILED),
    ("invalid spec beats a stop request", (cond(c.RECONCILED, FALSE, c.INVALID_SPEC),), c.STOPPED, c.FAILED),
    ("failure beats a stopped job", (*PROVISIONED[:3], STOPPED_JOB, OOM), None, c.FAILED),
    ("completed beats a stop request", (*RUNNING, SUCCEEDED), c.STOPPED, c.COMPLETED),
    (
        "completed beats a stopping job",
        (*RUNNING[:3], STOPPING_JOB, *RUNNING[4:], SUCCEEDED),
        None,
        c.COMPLETED,
    ),
    ("desired Running keeps Completed", (*RUNNING, SUCCEEDED), c.RUNNING, c.COMPLETED),
    ("desired Running keeps Failed", (*RUNNING, OOM), c.RUNNING, c.FAILED),
    ("desired Running keeps Stopped", (*PROVISIONED[:3], STOPPED_JOB), c.RUNNING, c.STOPPED),
]


@pytest.mark.parametrize(
    ("conditions", "desired", "expected"),
    [pytest.param(conds, desired, expected, id=name) for name, conds, desired, expected in PHASE_TABLE],
)
def test_derive_phase(conditions: tuple[Condition, ...], desired: str | None, expected: str) -> None:
    assert c.derive_phase(by_type(*conditions), desired) == expected


def test_phase_table_covers_every_phase() -> None:
    assert {expected for _, _, _, expected in PHASE_TABLE} == set(c.PHASES)


def test_derive_ready_running() -> None:
    conditions = by_type(*RUNNING)
    status, reason, _ = c.derive_ready(conditions, c.derive_phase(conditions, None))
    assert (status, reason) == (TRUE, c.RUNNING)


def test_derive_ready_failed_names_the_cause() -> None:
    conditions = by_type(*RUNNING, OOM)
    assert c.derive_ready(conditions, c.derive_phase(conditions, None)) == (FALSE, OOM.reason, OOM.message)


def test_derive_ready_creating_waits_on_secrets() -> None:
    secrets = cond(c.SECRETS_READY, FALSE, "TokenRequestFailed", "serviceaccounts/token is forbidden")
    conditions = by_type(cond(c.RECONCILED, TRUE, c.SPEC_APPLIED), cond(c.PVC_READY, TRUE, "Bound"), secrets)
    phase = c.derive_phase(conditions, None)
    assert phase == c.CREATING
    assert c.derive_ready(conditions, phase) == (
        FALSE,
        "TokenRequestFailed",
        "serviceaccounts/token is forbidden",
    )


def test_derive_ready_completed_and_stopped() -> None:
    completed = by_type(*RUNNING, SUCCEEDED)
    assert c.derive_ready(completed, c.COMPLETED)[:2] == (FALSE, c.COMPLETED)
    stopped = by_type(*PROVISIONED[:3], STOPPED_JOB)
    assert c.derive_ready(stopped, c.STOPPED) == (FALSE, c.STOPPED, "stopped by user")


def test_parse_conditions_reads_well_formed_entries() -> None:
    parsed = c.parse_conditions(
        {
            "conditions": [
                {
                    "type": c.PVC_READY,
                    "status": "True",
                    "reason": "Bound",
                    "message": "bound to pv-1",
                    "lastTransitionTime": "2025-01-01T00:00:00Z",
                    "observedGeneration": 3,
                }
            ]
        }
    )
    assert parsed == {
        c.PVC_READY: Condition(c.PVC_READY, TRUE, "Bound", "bound to pv-1", "2025-01-01T00:00:00Z", 3)
    }


def test_parse_conditions_skips_malformed_entries() -> None:
    parsed = c.parse_conditions(
        {
            "conditions": [
                "PVCReady",
                None,
                42,
                ["type", "Ready"],
                {"status": "True", "reason": "NoType"},
                {"type": 7, "status": "True"},
                {"type": c.JOB_CREATED, "status": "True", "observedGeneration": "2", "reason": None},
            ]
        }
    )
    assert list(parsed) == [c.JOB_CREATED]
    assert parsed[c.JOB_CREATED].observed_generation == 0
    assert parsed[c.JOB_CREATED].reason == ""


@pytest.mark.parametrize(
    "status",
    [
        None,
        {},
        {"conditions": None},
        {"conditions": "Ready"},
        {"conditions": {"type": "Ready"}},
        {"phase": "Running"},
    ],
)
def test_parse_conditions_without_a_list(status: dict[str, Any] | None) -> None:
    assert c.parse_conditions(status) == {}


def test_parse_conditions_entry_with_null_status_is_not_the_string_none() -> None:
    parsed = c.parse_conditions({"conditions": [{"type": c.PVC_READY, "status": None}]})
    assert c.PVC_READY not in parsed or parsed[c.PVC_READY].status == UNKNOWN


def test_parse_conditions_entry_without_status_is_unknown() -> None:
    assert c.parse_conditions({"conditions": [{"type": c.PVC_READY}]})[c.PVC_READY].status == UNKNOWN


def test_parse_time() -> None:
    utc = c.parse_time("2025-03-04T05:06:07Z")
    assert utc == datetime.datetime(2025, 3, 4, 5, 6, 7, tzinfo=datetime.UTC)
    offset = c.parse_time("2025-03-04T07:06:07+02:00")
    assert offset is not None and offset.utcoffset() == datetime.timedelta(hours=2)
    assert offset == utc
    naive = c.parse_time("2025-03-04T05:06:07")
    assert naive == utc and naive is not None and naive.tzinfo is not None


@pytest.mark.parametrize("value", ["", "yesterday", "2025-13-45T99:00:00Z", None, 1700000000, {"time": "x"}])
def test_parse_time_rejects_garbage(value: Any) -> None:
    assert c.parse_time(value) is None


def test_now_rfc3339_parses_back() -> None:
    parsed = c.parse_time(c.now_rfc3339())
    assert parsed is not None
    assert abs((datetime.datetime.now(datetime.UTC) - parsed).total_seconds()) < 5


def test_condition_list_orders_by_lifecycle_then_name() -> None:
    shuffled = [
        cond("ZExtra", TRUE),
        cond(c.TEMP_CONTENT_POD_READY, TRUE),
        cond(c.READY, TRUE),
        cond(c.RUNNER_FINISHED, TRUE),
        cond("AExtra", TRUE),
        cond(c.RUNNER_STARTED, TRUE),
        cond(c.POD_SCHEDULED, TRUE),
        cond(c.JOB_CREATED, TRUE),
        cond(c.SECRETS_READY, TRUE),
        cond(c.PVC_READY, TRUE),
        cond(c.RECONCILED, TRUE),
    ]
    assert [entry["type"] for entry in c.condition_list(shuffled)] == [
        c.RECONCILED,
        c.PVC_READY,
        c.SECRETS_READY,
        c.JOB_CREATED,
        c.POD_SCHEDULED,
        c.RUNNER_STARTED,
        c.RUNNER_FINISHED,
        c.READY,
        c.TEMP_CONTENT_POD_READY,
        "AExtra",
        "ZExtra",
    ]


def test_condition_round_trips_through_dict() -> None:
    original = Condition(c.READY, FALSE, "Unschedulable", "0/3 nodes", "2025-01-01T00:00:00Z", 4)
    assert c.condition_list([original]) == [original.to_dict()]
    assert Condition.from_dict(original.to_dict()) == original


@pytest.mark.parametrize("reason", sorted(c.PENDING_REASONS))
def test_waiting_for_something_outside_the_session_is_pending(reason: str) -> None:
    conditions = {
        c.PVC_READY: c.Condition(c.PVC_READY, c.TRUE, "Ready"),
        c.SECRETS_READY: c.Condition(c.SECRETS_READY, c.FALSE, reason),
    }
    assert c.derive_phase(conditions, None) == c.PENDING
    assert c.derive_phase(conditions, c.STOPPED) == c.STOPPING
