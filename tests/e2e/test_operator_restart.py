"""The operator dies at the worst moment and comes back: no duplicates, nothing stuck."""

from __future__ import annotations

from controller.kube import Kube
from controller.names import runner_job_name
from controller.resources import JOBS
from tests.e2e.conftest import (
    OperatorFactory,
    condition_of,
    create_session,
    phase_is,
    session_phases,
    wait_event,
    wait_session,
)
from tests.e2e.helpers import wait_for


def test_sigkill_while_creating_fifty_sessions(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    count = 50
    first = start_operator([namespace], name="first")
    for index in range(count):
        create_session(kube, f"burst-{index}", namespace)
    # Kill it mid-flight: some sessions have Jobs, others are still being provisioned.
    wait_for(
        lambda: len(kube.list(JOBS, namespace).get("items") or []) >= 5, 60, message="first Jobs created"
    )
    first.kill()
    partial = len(kube.list(JOBS, namespace).get("items") or [])
    assert partial < count, "the operator finished before it was killed; the test proves nothing"

    second = start_operator([namespace], name="second")
    wait_for(
        lambda: session_phases(kube, namespace).get("Running", 0) == count,
        180,
        message=f"all {count} sessions Running after the restart",
    )
    jobs = kube.list(JOBS, namespace).get("items") or []
    owners = sorted(j["metadata"]["ownerReferences"][0]["name"] for j in jobs)
    assert len(jobs) == count and len(set(owners)) == count, (
        f"{len(jobs)} Jobs for {len(set(owners))} sessions"
    )
    assert sorted(runner_job_name(o) for o in owners) == sorted(j["metadata"]["name"] for j in jobs)
    second.assert_alive()
    assert session_phases(kube, namespace) == {"Running": count}


def test_missing_job_in_creating_is_recreated_once(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    # An unschedulable runner keeps the session in Creating.
    args = ["--runner-node-selector", "pool=none"]
    operator = start_operator([namespace], args=args, name="first")
    create_session(kube, "waiting", namespace)
    wait_session(
        kube,
        namespace,
        "waiting",
        lambda s: condition_of(s, "JobCreated").get("status") == "True" and phase_is("Creating")(s),
        what="Creating with a Job",
    )
    operator.kill()
    kube.delete(JOBS, namespace, runner_job_name("waiting"), propagation="Background")
    wait_for(
        lambda: (
            not any(
                j["metadata"]["name"] == runner_job_name("waiting")
                for j in kube.list(JOBS, namespace).get("items") or []
            )
        ),
        30,
        message="Job gone",
    )

    start_operator([namespace], args=args, name="second")
    recreated = wait_session(
        kube,
        namespace,
        "waiting",
        lambda s: condition_of(s, "JobCreated").get("reason") == "Recreated",
        what="JobCreated=Recreated",
    )
    assert recreated["status"]["phase"] == "Creating"
    wait_for(
        lambda: any(
            j["metadata"]["name"] == runner_job_name("waiting")
            for j in kube.list(JOBS, namespace).get("items") or []
        ),
        30,
        message="Job recreated",
    )
    wait_event(kube, namespace, "waiting", "RunnerJobRecreated")

    # A second loss is not papered over with another Job: the session fails and says why.
    kube.delete(JOBS, namespace, runner_job_name("waiting"), propagation="Background")
    failed = wait_session(kube, namespace, "waiting", phase_is("Failed"))
    assert condition_of(failed, "JobCreated")["reason"] == "JobLost"
    assert condition_of(failed, "Ready")["reason"] == "JobLost"
