"""The jobs loop on a real API server: every way a runner ends becomes a phase, reason, message, Event.

kwok plays the kubelet: the operator copies `kwok.ambient-code.io/*` annotations from the session to
the runner pod, and hack/kwok/stages.yaml turns them into exits, OOM kills, evictions and waiting
reasons, exactly as a kubelet would report them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import pytest

from controller.kube import Kube
from controller.names import runner_job_name, session_service_name
from controller.resources import JOBS, PODS, SERVICES, SESSIONS
from tests.e2e.conftest import (
    OperatorFactory,
    condition_of,
    create_session,
    gone_or_going,
    phase_is,
    runner_pods,
    session_phases,
    wait_event,
    wait_session,
)
from tests.e2e.helpers import wait_for
from tests.e2e.operator import rest_requests_total

KWOK = "kwok.ambient-code.io/"


def _finished(session: Mapping[str, Any]) -> dict[str, Any]:
    return condition_of(session, "RunnerFinished")


def _failed_with(kube: Kube, namespace: str, name: str, reason: str, timeout: float = 60) -> dict[str, Any]:
    session = wait_session(kube, namespace, name, phase_is("Failed"), timeout=timeout, what="phase Failed")
    ready = condition_of(session, "Ready")
    assert ready["status"] == "False" and ready["reason"] == reason, ready
    assert session["status"].get("completionTime")
    return session


@pytest.mark.parametrize(
    ("annotations", "reason", "in_message"),
    [
        ({"fail-after": "1s", "fail-reason": "OOMKilled", "exit-code": "137"}, "OOMKilled", "memory"),
        ({"fail-after": "1s", "exit-code": "3"}, "RunnerExit", "code 3"),
        ({"evict-after": "1s"}, "Evicted", "low on resource"),
        (
            {"waiting-reason": "ImagePullBackOff", "waiting-message": "Back-off pulling image"},
            "ImagePullBackOff",
            "Back-off pulling image",
        ),
        ({"waiting-reason": "ErrImagePull"}, "ErrImagePull", "ErrImagePull"),
        ({"waiting-reason": "InvalidImageName"}, "InvalidImageName", "InvalidImageName"),
        (
            {"waiting-reason": "CreateContainerConfigError", "waiting-message": 'secret "x" not found'},
            "CreateContainerConfigError",
            "not found",
        ),
        ({"waiting-reason": "CrashLoopBackOff"}, "CrashLoopBackOff", "crashing"),
    ],
    ids=[
        "oom",
        "exit-code",
        "evicted",
        "image-pull-backoff",
        "err-image-pull",
        "invalid-image",
        "config-error",
        "crash-loop",
    ],
)
def test_runner_failure_modes(
    kube: Kube,
    namespace: str,
    start_operator: OperatorFactory,
    annotations: dict[str, str],
    reason: str,
    in_message: str,
) -> None:
    start_operator([namespace], args=["--image-pull-grace", "2"])
    create_session(kube, "broken", namespace, annotations={KWOK + k: v for k, v in annotations.items()})
    session = _failed_with(kube, namespace, "broken", reason)
    finished = _finished(session)
    assert finished["reason"] == reason and in_message in finished["message"], finished
    event = wait_event(kube, namespace, "broken", reason)
    assert event["type"] == "Warning" and in_message in event["message"]
    wait_event(kube, namespace, "broken", "Failed")
    wait_for(
        lambda: gone_or_going(kube, SERVICES, namespace, session_service_name("broken")),
        20,
        message="session Service deleted",
    )
    wait_for(
        lambda: gone_or_going(kube, JOBS, namespace, runner_job_name("broken")),
        20,
        message="runner Job deleted",
    )


def test_runner_exit_fails_job_with_backoff_limit(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    """A non-zero exit fails the Job (backoffLimit 0); the session names the exit code, not the symptom."""
    start_operator([namespace], args=["--job-ttl-after-finished", "300"])
    create_session(kube, "exit", namespace, annotations={KWOK + "fail-after": "1s", KWOK + "exit-code": "2"})
    session = _failed_with(kube, namespace, "exit", "RunnerExit")
    assert "code 2" in _finished(session)["message"]
    job = wait_for(lambda: _job_failed(kube, namespace, "exit"), 30, message="Job condition Failed")
    assert job == "BackoffLimitExceeded"


def _job_failed(kube: Kube, namespace: str, name: str) -> str | None:
    job = kube.get(JOBS, namespace, runner_job_name(name))
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond["type"] == "Failed" and cond["status"] == "True":
            return str(cond.get("reason"))
    return None


def test_deadline_exceeded_is_a_timeout(kube: Kube, namespace: str, start_operator: OperatorFactory) -> None:
    start_operator([namespace], args=["--runner-active-deadline", "3"])
    create_session(kube, "slow", namespace)
    session = _failed_with(kube, namespace, "slow", "DeadlineExceeded", timeout=90)
    assert session["status"]["stoppedReason"] == "timeout"
    wait_event(kube, namespace, "slow", "DeadlineExceeded")


def test_unschedulable_pod_is_explained_then_times_out(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    start_operator(
        [namespace],
        args=[
            "--runner-node-selector",
            "pool=gpu-none",
            "--creating-timeout",
            "12",
            "--unschedulable-grace",
            "2",
        ],
    )
    create_session(kube, "nowhere", namespace)
    pending = wait_session(
        kube,
        namespace,
        "nowhere",
        lambda s: condition_of(s, "PodScheduled").get("status") == "False",
        what="PodScheduled=False",
    )
    scheduled = condition_of(pending, "PodScheduled")
    assert scheduled["reason"] == "Unschedulable" and "node" in scheduled["message"], scheduled
    assert pending["status"]["phase"] == "Creating"
    wait_event(kube, namespace, "nowhere", "Unschedulable")
    failed = _failed_with(kube, namespace, "nowhere", "CreatingTimeout", timeout=40)
    message = condition_of(failed, "RunnerStarted")["message"]
    assert "Unschedulable" in message and "node" in message, message
    wait_event(kube, namespace, "nowhere", "CreatingTimeout")


def test_non_interactive_session_completes(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    start_operator([namespace])
    create_session(
        kube, "batch", namespace, spec={"interactive": False}, annotations={KWOK + "complete-after": "2s"}
    )
    wait_session(kube, namespace, "batch", phase_is("Running"))
    done = wait_session(kube, namespace, "batch", phase_is("Completed"))
    assert _finished(done)["reason"] == "Succeeded"
    assert condition_of(done, "Ready")["reason"] == "Completed"
    assert done["status"].get("completionTime")
    wait_event(kube, namespace, "batch", "RunnerSucceeded")
    wait_event(kube, namespace, "batch", "Completed")
    wait_for(
        lambda: gone_or_going(kube, SERVICES, namespace, session_service_name("batch")),
        20,
        message="session Service deleted",
    )


def test_interactive_runner_exiting_zero_completes(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    start_operator([namespace])
    create_session(kube, "chat", namespace, annotations={KWOK + "complete-after": "2s"})
    done = wait_session(kube, namespace, "chat", phase_is("Completed"))
    assert _finished(done)["reason"] == "Succeeded"


def test_runner_pod_deleted_by_hand_is_runner_lost(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    start_operator([namespace])
    create_session(kube, "victim", namespace)
    wait_session(kube, namespace, "victim", phase_is("Running"))
    for pod in runner_pods(kube, namespace, "victim"):
        kube.delete(PODS, namespace, pod["metadata"]["name"])
    session = _failed_with(kube, namespace, "victim", "RunnerLost")
    assert "deleted" in _finished(session)["message"]
    wait_event(kube, namespace, "victim", "RunnerLost")


def test_runner_job_deleted_by_hand_is_runner_lost(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    start_operator([namespace])
    create_session(kube, "jobless", namespace)
    wait_session(kube, namespace, "jobless", phase_is("Running"))
    kube.delete(JOBS, namespace, runner_job_name("jobless"), propagation="Background")
    session = _failed_with(kube, namespace, "jobless", "RunnerLost")
    assert "Job" in _finished(session)["message"] or "pod" in _finished(session)["message"]


def test_monitor_gauge_matches_active_jobs_and_idle_costs_nothing(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    operator = start_operator([namespace])
    count = 100
    for index in range(count):
        create_session(kube, f"idle-{index}", namespace)
    wait_for(
        lambda: session_phases(kube, namespace).get("Running", 0) == count,
        180,
        message=f"{count} sessions Running",
    )
    active = [
        j for j in kube.list(JOBS, namespace).get("items") or [] if (j.get("status") or {}).get("active")
    ]
    assert len(active) == count
    wait_for(
        lambda: operator.metric("agentic_operator_monitored_jobs") == count,
        30,
        message="monitored jobs gauge equals active jobs",
    )

    # Let the last status writes and Events settle, then watch the request counter stay flat.
    time.sleep(5)
    before = rest_requests_total(operator.metrics())
    time.sleep(30)
    after = rest_requests_total(operator.metrics())
    assert after == before, f"{after - before} API requests while {count} sessions sat idle"

    for index in range(0, count, 2):
        kube.delete(SESSIONS, namespace, f"idle-{index}", propagation="Background")
    wait_for(
        lambda: operator.metric("agentic_operator_monitored_jobs") == count // 2,
        60,
        message="gauge follows deleted sessions",
    )
