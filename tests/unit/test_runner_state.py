from __future__ import annotations

import datetime
from typing import Any

import pytest

from controller.conditions import FALSE, RUNNER_LOST, SUCCEEDED, TRUE
from controller.reconcilers.runner_state import (
    RUNNER_CONTAINER,
    Observation,
    observe,
)

NOW = datetime.datetime(2025, 6, 1, 12, 0, 0, tzinfo=datetime.UTC)
GRACE = 60.0
IMAGE = "quay.io/ambient_code/vteam_claude_runner:latest"
UNSCHEDULABLE_MESSAGE = (
    "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
    "2 Insufficient memory. preemption: 0/3 nodes are available: 1 Preemption is not helpful for "
    "scheduling, 2 No preemption victims found for incoming pod."
)
EVICTION_MESSAGE = (
    "The node was low on resource: memory. Threshold quantity: 100Mi, available: 85432Ki. "
    "Container ambient-code-runner was using 7340032Ki, request is 512Mi, has larger consumption of memory. "
)


def ts(seconds_ago: float) -> str:
    return (NOW - datetime.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def job_condition(kind: str, reason: str, message: str) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastProbeTime": ts(1),
        "lastTransitionTime": ts(1),
    }


def make_job(
    *conditions: dict[str, Any], active: int = 1, succeeded: int = 0, failed: int = 0
) -> dict[str, Any]:
    status: dict[str, Any] = {"startTime": ts(600), "uncountedTerminatedPods": {}, "ready": 0}
    if active:
        status["active"] = active
    if succeeded:
        status["succeeded"] = succeeded
    if failed:
        status["failed"] = failed
    if conditions:
        status["conditions"] = list(conditions)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "s1-runner",
            "namespace": "team-a",
            "uid": "5d0e6c4e-0000-4000-8000-000000000001",
            "resourceVersion": "4242",
            "labels": {"agentic-session": "s1", "app.kubernetes.io/managed-by": "agentic-operator"},
        },
        "spec": {"backoffLimit": 0, "completions": 1, "parallelism": 1},
        "status": status,
    }


RUNNING_JOB = make_job()
DEADLINE_JOB = make_job(
    job_condition("FailureTarget", "DeadlineExceeded", "Job was active longer than specified deadline"),
    job_condition("Failed", "DeadlineExceeded", "Job was active longer than specified deadline"),
    active=0,
    failed=1,
)
BACKOFF_JOB = make_job(
    job_condition("FailureTarget", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
    job_condition("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
    active=0,
    failed=1,
)
COMPLETE_JOB = make_job(
    job_condition("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"),
    job_condition("Complete", "CompletionsReached", "Reached expected number of succeeded pods"),
    active=0,
    succeeded=1,
)


def pod_condition(
    kind: str, status: bool, seconds_ago: float, reason: str = "", message: str = ""
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "type": kind,
        "status": "True" if status else "False",
        "lastProbeTime": None,
        "lastTransitionTime": ts(seconds_ago),
    }
    if reason:
        entry["reason"] = reason
    if message:
        entry["message"] = message
    return entry


def container_status(
    state: dict[str, Any], *, name: str = RUNNER_CONTAINER, restarts: int = 0
) -> dict[str, Any]:
    return {
        "name": name,
        "image": IMAGE,
        "imageID": "",
        "ready": "running" in state,
        "restartCount": restarts,
        "started": "running" in state,
        "state": state,
        "lastState": {},
    }


def make_pod(
    phase: str,
    *,
    containers: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    reason: str = "",
    message: str = "",
    node: str | None = "worker-1",
) -> dict[str, Any]:
    scheduled = node is not None
    status: dict[str, Any] = {
        "phase": phase,
        "qosClass": "Burstable",
        "conditions": conditions
        if conditions is not None
        else [
            pod_condition("PodReadyToStartContainers", True, 25),
            pod_condition("Initialized", True, 28),
            pod_condition(
                "Ready", phase == "Running", 20, "" if phase == "Running" else "ContainersNotReady"
            ),
            pod_condition("ContainersReady", phase == "Running", 20),
            pod_condition("PodScheduled", True, 30),
        ],
    }
    if scheduled:
        status.update(hostIP="172.18.0.3", podIP="10.244.1.7", startTime=ts(30))
    if containers is not None:
        status["containerStatuses"] = containers
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": "ambient-session-s1",
        "containers": [{"name": RUNNER_CONTAINER, "image": IMAGE}],
    }
    if scheduled:
        spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "s1-runner-x7k2p",
            "namespace": "team-a",
            "creationTimestamp": ts(31),
            "labels": {"batch.kubernetes.io/job-name": "s1-runner", "agentic-session": "s1"},
        },
        "spec": spec,
        "status": status,
    }


def waiting_pod(reason: str, message: str, waited: float, restarts: int = 0) -> dict[str, Any]:
    return make_pod(
        "Pending" if reason != "CrashLoopBackOff" else "Running",
        containers=[container_status({"waiting": {"reason": reason, "message": message}}, restarts=restarts)],
        conditions=[
            pod_condition("PodReadyToStartContainers", True, waited),
            pod_condition("Initialized", True, waited),
            pod_condition("Ready", False, waited, "ContainersNotReady"),
            pod_condition("ContainersReady", False, waited, "ContainersNotReady"),
            pod_condition("PodScheduled", True, waited),
        ],
    )


def terminated(exit_code: int, reason: str, message: str = "") -> dict[str, Any]:
    state: dict[str, Any] = {
        "exitCode": exit_code,
        "reason": reason,
        "startedAt": ts(300),
        "finishedAt": ts(2),
        "containerID": "containerd://0f1e2d",
    }
    if message:
        state["message"] = message
    return {"terminated": state}


UNSCHEDULABLE_POD = make_pod(
    "Pending",
    node=None,
    conditions=[pod_condition("PodScheduled", False, 30, "Unschedulable", UNSCHEDULABLE_MESSAGE)],
)
RUNNING_POD = make_pod("Running", containers=[container_status({"running": {"startedAt": ts(20)}})])
OOM_POD = make_pod("Failed", containers=[container_status(terminated(137, "OOMKilled"))])
EXIT_0_POD = make_pod("Succeeded", containers=[container_status(terminated(0, "Completed"))])
EXIT_3_POD = make_pod("Failed", containers=[container_status(terminated(3, "Error"))])
KILLED_POD = make_pod("Failed", containers=[container_status(terminated(137, "Error"))])
EVICTED_POD = make_pod(
    "Failed",
    reason="Evicted",
    message=EVICTION_MESSAGE,
    containers=[
        container_status(
            terminated(
                137,
                "ContainerStatusUnknown",
                "The container could not be located when the pod was terminated",
            )
        )
    ],
)
EVICTED_POD_WITHOUT_CONTAINER_STATUS = make_pod("Failed", reason="Evicted", message=EVICTION_MESSAGE)


def run(job: dict[str, Any], pods: list[dict[str, Any]], was_running: bool = False) -> Observation:
    return observe(job, pods, was_running=was_running, now=NOW, waiting_grace=GRACE)


def test_unschedulable_pod_reports_the_scheduler() -> None:
    seen = run(RUNNING_JOB, [UNSCHEDULABLE_POD])
    assert seen.scheduled is not None
    assert (seen.scheduled.status, seen.scheduled.reason, seen.scheduled.message) == (
        FALSE,
        "Unschedulable",
        UNSCHEDULABLE_MESSAGE,
    )
    assert seen.finished is None
    # A container that has not started yet is not news: the next state carries it.
    assert seen.started is None


def test_unschedulable_within_grace_is_not_reported_yet() -> None:
    seen = observe(
        RUNNING_JOB,
        [UNSCHEDULABLE_POD],
        was_running=False,
        now=NOW,
        waiting_grace=GRACE,
        unschedulable_grace=1e9,
    )
    assert seen.scheduled is None and seen.finished is None
    assert seen.recheck_after is not None and seen.recheck_after > 0


def test_running_pod_started() -> None:
    seen = run(RUNNING_JOB, [RUNNING_POD])
    assert seen.started is not None and seen.started.status == TRUE
    assert seen.scheduled is not None and seen.scheduled.status == TRUE
    assert "worker-1" in seen.scheduled.message
    assert seen.finished is None and seen.recheck_after is None


def test_runner_container_is_found_by_name_among_sidecars() -> None:
    sidecar = container_status({"running": {"startedAt": ts(20)}}, name="istio-proxy")
    pod = make_pod("Running", containers=[sidecar, container_status(terminated(3, "Error"))])
    seen = run(RUNNING_JOB, [pod])
    assert seen.finished is not None and seen.finished.reason == "RunnerExit"


STUCK_REASONS = [
    ("ImagePullBackOff", 'Back-off pulling image "quay.io/ambient_code/nope:1"'),
    ("ErrImagePull", 'failed to pull and unpack image "quay.io/ambient_code/nope:1": not found'),
    ("InvalidImageName", 'Failed to apply default image tag "Quay.io/BAD": invalid reference format'),
    ("CreateContainerConfigError", 'secret "ambient-vertex" not found'),
]


@pytest.mark.parametrize(("reason", "message"), STUCK_REASONS)
def test_stuck_waiting_within_grace_rechecks(reason: str, message: str) -> None:
    seen = run(RUNNING_JOB, [waiting_pod(reason, message, waited=20)])
    assert seen.finished is None
    assert seen.started is not None and (seen.started.status, seen.started.reason) == (FALSE, reason)
    assert seen.recheck_after == pytest.approx(GRACE - 20, abs=1)


@pytest.mark.parametrize(("reason", "message"), STUCK_REASONS)
def test_stuck_waiting_past_grace_finishes(reason: str, message: str) -> None:
    seen = run(RUNNING_JOB, [waiting_pod(reason, message, waited=GRACE + 30)])
    assert seen.finished is not None
    assert seen.finished.reason == reason
    assert message in seen.finished.message
    assert not seen.finished.succeeded


def test_crash_loop_finishes_at_once() -> None:
    pod = waiting_pod(
        "CrashLoopBackOff",
        "back-off 10s restarting failed container=ambient-code-runner",
        waited=1,
        restarts=2,
    )
    seen = run(RUNNING_JOB, [pod])
    assert seen.finished is not None and seen.finished.reason == "CrashLoopBackOff"
    assert seen.recheck_after is None


def test_oom_killed() -> None:
    seen = run(RUNNING_JOB, [OOM_POD], was_running=True)
    assert seen.finished is not None and seen.finished.reason == "OOMKilled"
    assert "memory" in seen.finished.message


def test_exit_zero_succeeded() -> None:
    seen = run(RUNNING_JOB, [EXIT_0_POD], was_running=True)
    assert seen.finished is not None and seen.finished.reason == SUCCEEDED
    assert seen.finished.succeeded


def test_nonzero_exit_names_the_code() -> None:
    seen = run(RUNNING_JOB, [EXIT_3_POD], was_running=True)
    assert seen.finished is not None and seen.finished.reason == "RunnerExit"
    assert "3" in seen.finished.message
    assert not seen.finished.succeeded


def test_evicted_pod_reports_the_eviction() -> None:
    """The kubelet marks an evicted pod's containers terminated (137, ContainerStatusUnknown), so the
    pod's own reason must be read before the container's exit code."""
    seen = run(RUNNING_JOB, [EVICTED_POD], was_running=True)
    assert seen.finished is not None
    assert seen.finished.reason == "Evicted"
    assert EVICTION_MESSAGE.strip() in seen.finished.message


def test_evicted_pod_without_container_status_reports_the_eviction() -> None:
    seen = run(RUNNING_JOB, [EVICTED_POD_WITHOUT_CONTAINER_STATUS], was_running=True)
    assert seen.finished is not None
    assert seen.finished.reason == "Evicted"
    assert EVICTION_MESSAGE.strip() in seen.finished.message


@pytest.mark.parametrize("pods", [[], [KILLED_POD]], ids=["no pod", "killed pod"])
def test_deadline_exceeded_is_a_timeout(pods: list[dict[str, Any]]) -> None:
    seen = run(DEADLINE_JOB, pods, was_running=True)
    assert seen.finished is not None
    assert seen.finished.reason == "DeadlineExceeded"
    assert seen.finished.stopped_reason == "timeout"


def test_backoff_limit_with_oom_pod_reports_oom() -> None:
    seen = run(BACKOFF_JOB, [OOM_POD], was_running=True)
    assert seen.finished is not None and seen.finished.reason == "OOMKilled"


def test_backoff_limit_without_pod_after_running_is_lost() -> None:
    seen = run(BACKOFF_JOB, [], was_running=True)
    assert seen.finished is not None and seen.finished.reason == RUNNER_LOST


def test_backoff_limit_without_pod_before_running_reports_the_job() -> None:
    seen = run(BACKOFF_JOB, [], was_running=False)
    assert seen.finished is not None and seen.finished.reason == "BackoffLimitExceeded"
    assert "backoff limit" in seen.finished.message


def test_pod_gone_while_running_is_lost() -> None:
    seen = run(RUNNING_JOB, [], was_running=True)
    assert seen.finished is not None and seen.finished.reason == RUNNER_LOST


def test_no_pod_yet_is_an_empty_observation() -> None:
    assert run(RUNNING_JOB, [], was_running=False) == Observation()


@pytest.mark.parametrize("pods", [[], [EXIT_0_POD]], ids=["pod gone", "pod kept"])
def test_job_complete_succeeded(pods: list[dict[str, Any]]) -> None:
    seen = run(COMPLETE_JOB, pods, was_running=True)
    assert seen.finished is not None and seen.finished.succeeded
