"""Runner sync on a real API server: spec edits of a running session reach its runner, and status
says exactly what the runner answered.

The runner is the HTTP double of tests/e2e/runner_double.py (the real one needs an LLM); the runner
pods are kwok fakes. Each test asserts status fields, conditions, Events and the calls the double
recorded.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from controller.kube import Kube
from controller.names import ANNOTATION_DESIRED_PHASE, runner_job_name
from controller.resources import JOBS, SESSIONS
from tests.e2e.conftest import (
    OperatorFactory,
    annotate,
    condition_of,
    create_session,
    exists,
    phase_is,
    wait_event,
    wait_session,
)
from tests.e2e.helpers import wait_for
from tests.e2e.operator import OperatorProcess
from tests.e2e.runner_double import Fault, RunnerDouble

REPO_A = "https://github.com/example/alpha.git"
REPO_B = "https://github.com/example/beta"
FLOW = "https://github.com/example/flows.git"


@pytest.fixture
def double(kube: Kube) -> Iterator[RunnerDouble]:
    runner = RunnerDouble(kube).start()
    yield runner
    runner.stop()


def _operator(start: OperatorFactory, namespace: str, double: RunnerDouble) -> OperatorProcess:
    return start(
        [namespace],
        args=[
            "--runner-url-template",
            double.url_template,
            "--runner-timeout",
            "2",
            "--runner-sync-retry-max",
            "2",
        ],
    )


def _edit(kube: Kube, namespace: str, name: str, spec: Mapping[str, Any]) -> int:
    written = kube.patch(SESSIONS, namespace, name, {"spec": dict(spec)})
    return int(written["metadata"]["generation"])


def _synced(generation: int) -> Any:
    def check(session: Mapping[str, Any]) -> bool:
        reconciled = condition_of(session, "Reconciled")
        return (
            session["status"].get("observedGeneration") == generation
            and reconciled.get("status") == "True"
            and reconciled.get("observedGeneration") == generation
        )

    return check


def _repos(session: Mapping[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {
        r["name"]: (r["url"], r["branch"], r["status"])
        for r in session["status"].get("reconciledRepos") or []
    }


def _running(kube: Kube, namespace: str, name: str, **kwargs: Any) -> dict[str, Any]:
    create_session(kube, name, namespace, **kwargs)
    return wait_session(kube, namespace, name, phase_is("Running"), what="phase Running")


def _synced_start(
    start: OperatorFactory, kube: Kube, namespace: str, double: RunnerDouble, name: str
) -> dict[str, Any]:
    """An operator talking to the double, and a session of `name` Running with generation 1 applied."""
    _operator(start, namespace, double)
    _running(kube, namespace, name)
    return wait_session(kube, namespace, name, _synced(1))


def test_repos_add_remove_rebranch_make_exactly_the_calls(
    kube: Kube, namespace: str, start_operator: OperatorFactory, double: RunnerDouble
) -> None:
    _operator(start_operator, namespace, double)
    _running(kube, namespace, "repos", spec={"repos": [{"url": REPO_A}]})
    # The runner cloned from its env at start; nothing is Ready until it confirms.
    session = wait_session(
        kube, namespace, "repos", lambda s: condition_of(s, "ReposReconciled").get("status") == "True"
    )
    assert _repos(session) == {"alpha": (REPO_A, "main", "Ready")}
    assert [c.body for c in double.calls_for(namespace, "repos", "/repos/add")] == [
        {"url": REPO_A, "branch": "main", "name": "alpha"},
    ]

    before = len(double.calls)
    generation = _edit(
        kube, namespace, "repos", {"repos": [{"url": REPO_A, "branch": "dev"}, {"url": REPO_B}]}
    )
    session = wait_session(kube, namespace, "repos", _synced(generation), what="generation applied")
    calls = double.calls[before:]
    assert [(c.path, c.body) for c in calls] == [
        ("/repos/add", {"url": REPO_A, "branch": "dev", "name": "alpha"}),
        ("/repos/add", {"url": REPO_B, "branch": "main", "name": "beta"}),
    ]
    assert _repos(session) == {"alpha": (REPO_A, "dev", "Ready"), "beta": (REPO_B, "main", "Ready")}
    assert all(r.get("clonedAt") for r in session["status"]["reconciledRepos"])
    assert double.runner(namespace, "repos").repos == {"alpha": (REPO_A, "dev"), "beta": (REPO_B, "main")}

    # A slow removal: observedGeneration must not move before the runner answered.
    double.slow(namespace, "repos", "/repos/remove", 1.5)
    before = len(double.calls)
    generation = _edit(kube, namespace, "repos", {"repos": [{"url": REPO_B}]})
    deadline = time.monotonic() + 30
    while True:
        session = kube.get(SESSIONS, namespace, "repos")
        if session["status"].get("observedGeneration") == generation:
            break
        assert time.monotonic() < deadline, "generation never observed"
        time.sleep(0.05)
    calls = double.calls[before:]
    assert [(c.path, c.body) for c in calls] == [("/repos/remove", {"name": "alpha"})]
    assert all(c.finished for c in calls)
    assert _repos(session) == {"beta": (REPO_B, "main", "Ready")}
    assert double.runner(namespace, "repos").repos == {"beta": (REPO_B, "main")}


def test_a_failing_clone_is_failed_then_retried_until_ready(
    kube: Kube, namespace: str, start_operator: OperatorFactory, double: RunnerDouble
) -> None:
    _synced_start(start_operator, kube, namespace, double, "clone")
    double.fail(
        namespace, "clone", "/repos/add", Fault(500, f"Failed to clone repository: {REPO_A}", times=2)
    )
    generation = _edit(kube, namespace, "clone", {"repos": [{"url": REPO_A}]})
    failed = wait_session(
        kube, namespace, "clone", lambda s: _repos(s).get("alpha", ("", "", ""))[2] == "Failed", what="Failed"
    )
    entry = failed["status"]["reconciledRepos"][0]
    assert "500" in entry["message"] and "Failed to clone" in entry["message"]
    assert condition_of(failed, "ReposReconciled")["reason"] == "Failed"
    pending = condition_of(failed, "Reconciled")
    assert (
        pending["status"] == "False"
        and pending["reason"] == "RunnerSyncPending"
        and "alpha" in pending["message"]
    )
    assert failed["status"].get("observedGeneration") != generation
    session = wait_session(
        kube, namespace, "clone", _synced(generation), timeout=30, what="Ready after retries"
    )
    assert _repos(session) == {"alpha": (REPO_A, "main", "Ready")}
    assert [c.code for c in double.calls_for(namespace, "clone", "/repos/add")] == [500, 500, 200]


def test_workflow_set_changed_removed_and_applied_after_the_runner_returns(
    kube: Kube, namespace: str, start_operator: OperatorFactory, double: RunnerDouble
) -> None:
    _synced_start(start_operator, kube, namespace, double, "flow")
    # Started from generation 1 with nothing to confirm: no call and no status write of its own.
    assert condition_of(kube.get(SESSIONS, namespace, "flow"), "WorkflowReconciled") == {}
    assert double.calls_for(namespace, "flow") == []  # nothing to tell the runner

    generation = _edit(kube, namespace, "flow", {"activeWorkflow": {"gitUrl": FLOW, "path": "review"}})
    session = wait_session(kube, namespace, "flow", _synced(generation))
    workflow = session["status"]["reconciledWorkflow"]
    assert (workflow["gitUrl"], workflow["branch"], workflow["path"], workflow["status"]) == (
        FLOW,
        "main",
        "review",
        "Active",
    )
    generation = _edit(
        kube, namespace, "flow", {"activeWorkflow": {"gitUrl": FLOW, "branch": "v2", "path": "review"}}
    )
    wait_session(kube, namespace, "flow", _synced(generation))
    assert double.runner(namespace, "flow").workflow == (FLOW, "v2", "review")

    double.fail(namespace, "flow", "/workflow", Fault(0))  # the runner is down
    down_since = time.monotonic()
    generation = _edit(kube, namespace, "flow", {"activeWorkflow": None})
    failing = wait_session(
        kube,
        namespace,
        "flow",
        lambda s: condition_of(s, "WorkflowReconciled").get("reason") == "UpdateFailed",
    )
    assert failing["status"]["reconciledWorkflow"]["status"] == "Failed"
    assert condition_of(failing, "Reconciled")["reason"] == "RunnerSyncPending"
    time.sleep(max(0.0, 8 - (time.monotonic() - down_since)))
    attempts = len(double.calls_for(namespace, "flow", "/workflow"))
    double.clear(namespace, "flow", "/workflow")
    session = wait_session(
        kube, namespace, "flow", _synced(generation), timeout=15, what="applied after return"
    )
    assert "reconciledWorkflow" not in session["status"]
    assert condition_of(session, "WorkflowReconciled")["reason"] == "NotConfigured"
    assert double.runner(namespace, "flow").workflow == ("", "main", "")
    # Retried while down, with a bounded wait (at most --runner-sync-retry-max apart), then stopped.
    assert attempts >= 3
    calls = len(double.calls_for(namespace, "flow"))
    time.sleep(3)
    assert len(double.calls_for(namespace, "flow")) == calls


def test_model_switch_waits_for_the_run_then_applies_rejects_and_applies_at_start(
    kube: Kube, namespace: str, start_operator: OperatorFactory, double: RunnerDouble
) -> None:
    _operator(start_operator, namespace, double)
    _running(kube, namespace, "model", spec={"llmSettings": {"model": "claude-one"}})
    session = wait_session(kube, namespace, "model", _synced(1))
    assert session["status"]["reconciledModel"]["model"] == "claude-one"

    runner = double.runner(namespace, "model")
    runner.run_lock.acquire()
    generation = _edit(kube, namespace, "model", {"llmSettings": {"model": "claude-two"}})
    busy = wait_session(
        kube, namespace, "model", lambda s: condition_of(s, "ModelReconciled").get("reason") == "RunnerBusy"
    )
    assert busy["status"]["reconciledModel"]["model"] == "claude-one"
    assert condition_of(busy, "Reconciled")["status"] == "False"
    wait_for(lambda: len(double.calls_for(namespace, "model", "/model")) >= 2, 10, message="422 retried")
    runner.run_lock.release()
    session = wait_session(kube, namespace, "model", _synced(generation), what="switched after release")
    assert session["status"]["reconciledModel"]["model"] == "claude-two"
    assert runner.model == "claude-two"
    codes = [c.code for c in double.calls_for(namespace, "model", "/model")]
    assert set(codes[:-1]) == {422} and codes[-1] == 200

    double.fail(namespace, "model", "/model", Fault(400, "unknown model claude-nope"))
    generation = _edit(kube, namespace, "model", {"llmSettings": {"model": "claude-nope"}})
    rejected = wait_session(
        kube, namespace, "model", lambda s: condition_of(s, "ModelReconciled").get("reason") == "Rejected"
    )
    assert "unknown model claude-nope" in condition_of(rejected, "ModelReconciled")["message"]
    assert rejected["status"]["reconciledModel"]["model"] == "claude-two"
    wait_event(kube, namespace, "model", "ModelRejected")
    time.sleep(3)  # no retry loop
    assert [c.body["model"] for c in double.calls_for(namespace, "model", "/model")].count("claude-nope") == 1
    assert kube.get(SESSIONS, namespace, "model")["status"]["observedGeneration"] == generation
    double.clear(namespace, "model", "/model")

    annotate(kube, namespace, "model", {ANNOTATION_DESIRED_PHASE: "Stopped"})
    wait_session(kube, namespace, "model", phase_is("Stopped"))
    _edit(kube, namespace, "model", {"llmSettings": {"model": "claude-three"}})
    stopped = wait_session(
        kube,
        namespace,
        "model",
        lambda s: (
            condition_of(s, "ModelReconciled").get("reason") == "AppliesAtStart"
            and "claude-three" in condition_of(s, "ModelReconciled")["message"]
        ),
    )
    assert "claude-three" in condition_of(stopped, "ModelReconciled")["message"]
    double.restart(namespace, "model")
    calls = len(double.calls_for(namespace, "model", "/model"))
    annotate(kube, namespace, "model", {ANNOTATION_DESIRED_PHASE: "Running"})
    running = wait_session(
        kube,
        namespace,
        "model",
        lambda s: (
            phase_is("Running")(s)
            and s["status"]["reconciledModel"]["model"] == "claude-three"
            and condition_of(s, "ModelReconciled").get("status") in (None, "True")
        ),
    )
    assert condition_of(running, "Reconciled")["status"] == "True"
    assert running["status"]["reconciledModel"]["model"] == "claude-three"
    job = kube.get(JOBS, namespace, runner_job_name("model"))
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["LLM_MODEL"] == "claude-three"
    assert len(double.calls_for(namespace, "model", "/model")) == calls  # applied by the env, not a call


def test_a_burst_of_edits_converges_to_the_last_spec(
    kube: Kube, namespace: str, start_operator: OperatorFactory, double: RunnerDouble
) -> None:
    _operator(start_operator, namespace, double)
    _running(kube, namespace, "burst", spec={"repos": [{"url": REPO_A}]})
    wait_session(
        kube, namespace, "burst", lambda s: condition_of(s, "ReposReconciled").get("status") == "True"
    )
    generation = 0
    for i in range(20):
        spec = {
            "repos": [{"url": REPO_A}, {"url": REPO_B, "branch": f"b{i % 3}"}],
            "llmSettings": {"model": f"claude-{i % 4}"},
        }
        generation = _edit(kube, namespace, "burst", spec)
        time.sleep(0.25)
    session = wait_session(kube, namespace, "burst", _synced(generation), timeout=30, what="converged")
    assert _repos(session) == {"alpha": (REPO_A, "main", "Ready"), "beta": (REPO_B, "b1", "Ready")}
    assert session["status"]["reconciledModel"]["model"] == "claude-3"
    runner = double.runner(namespace, "burst")
    assert runner.model == "claude-3" and runner.repos["beta"] == (REPO_B, "b1")
    assert len(kube.list(JOBS, namespace)["items"]) == 1
    # The unchanged repo was confirmed once at start and never sent again.
    assert [c.body["url"] for c in double.calls_for(namespace, "burst", "/repos/add")].count(REPO_A) == 1
    assert double.calls_for(namespace, "burst", "/repos/remove") == []
    models = [c.body["model"] for c in double.calls_for(namespace, "burst", "/model")]
    assert all(a != b for a, b in itertools.pairwise(models)), models


def test_an_invalid_edit_leaves_the_runner_running_until_fixed(
    kube: Kube, namespace: str, start_operator: OperatorFactory, double: RunnerDouble
) -> None:
    _synced_start(start_operator, kube, namespace, double, "edit")
    # Valid for the CRD schema, not for the operator: the whole edit is refused, the repo included.
    invalid = {"repos": [{"url": REPO_A}], "environmentVariables": {"1-NOT-A-NAME": "x"}}
    generation = _edit(kube, namespace, "edit", invalid)
    refused = wait_session(
        kube, namespace, "edit", lambda s: condition_of(s, "Reconciled").get("reason") == "InvalidSpec"
    )
    assert "spec.environmentVariables" in condition_of(refused, "Reconciled")["message"]
    assert refused["status"]["phase"] == "Running"
    event = wait_event(kube, namespace, "edit", "InvalidSpec")
    assert event["type"] == "Warning" and "spec.environmentVariables" in event["message"]
    time.sleep(2)
    session = kube.get(SESSIONS, namespace, "edit")
    assert session["status"]["phase"] == "Running" and session["status"]["observedGeneration"] == generation
    assert exists(kube, JOBS, namespace, runner_job_name("edit"))
    assert double.calls_for(namespace, "edit") == []

    generation = _edit(kube, namespace, "edit", {"environmentVariables": None})
    session = wait_session(kube, namespace, "edit", _synced(generation), what="synced after the fix")
    assert _repos(session) == {"alpha": (REPO_A, "main", "Ready")}
    assert [c.path for c in double.calls_for(namespace, "edit")] == ["/repos/add"]
