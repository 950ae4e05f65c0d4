"""Runner sync as data: desired state from the spec, drift against status, and each step's decision
from the runner's answers (a fake `post` that records calls)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from controller import conditions as c
from controller.config import OperatorConfig
from controller.platform.runner_client import Answer
from controller.platform.runner_spec import (
    Repo,
    Workflow,
    desired_repos,
    desired_workflow,
    live_model,
    plan_repos,
    started_status,
)
from controller.reconcilers import runner_sync_steps as steps

NOW = "2026-01-01T00:00:00Z"


class FakeRunner:
    def __init__(self, answers: Mapping[str, Answer] | None = None):
        self.answers = dict(answers or {})
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, path: str, body: Mapping[str, Any]) -> Answer:
        self.calls.append((path, dict(body)))
        return self.answers.get(path, Answer(200, "ok"))


def session(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "s", "namespace": "ns", "generation": 3}, "spec": dict(spec)}


def test_repos_are_deduplicated_by_url_last_wins_blank_branch_is_main() -> None:
    repos = desired_repos(
        session(
            {
                "repos": [
                    {"url": "https://h/a/one.git", "branch": "x"},
                    {"url": "https://h/b/two/"},
                    {"url": "https://h/a/one.git", "branch": " "},
                    {"url": "git@h:c/one.git"},
                    "junk",
                    {"url": ""},
                ]
            }
        )
    )
    assert repos == [
        Repo("https://h/b/two/", "main", "two"),
        Repo("https://h/a/one.git", "main", "one"),
        Repo("git@h:c/one.git", "main", "one-2"),
    ]


def test_workflow_defaults() -> None:
    assert desired_workflow(session({})) == Workflow("", "", "")
    assert desired_workflow(session({"activeWorkflow": {"gitUrl": "https://h/f"}})) == Workflow(
        "https://h/f", "main", ""
    )


def test_live_model_is_the_spec_model_unless_none_or_replaced_at_start() -> None:
    runs = {"reconciledModel": {"model": "d", "resetFrom": "orphan"}}
    assert live_model(session({}), runs) == "d"  # no model named: the start's choice stands
    assert live_model(session({"llmSettings": {"model": " m1 "}}), runs) == "m1"
    assert live_model(session({"llmSettings": {"model": "orphan"}}), runs) == "d"
    assert live_model(session({"llmSettings": {"model": "m1"}}), {}) == "m1"


def test_started_status_says_cloning_until_the_runner_confirms() -> None:
    told = started_status(
        session({"repos": [{"url": "https://h/a"}], "activeWorkflow": {"gitUrl": "https://h/f"}}),
        OperatorConfig(),
        NOW,
    )
    assert told["reconciledRepos"] == [
        {"url": "https://h/a", "branch": "main", "name": "a", "status": "Cloning"}
    ]
    assert told["reconciledWorkflow"]["status"] == "Cloning"
    assert "reconciledModel" not in told  # the models gate records it with the Job
    assert started_status(session({}), OperatorConfig(), NOW)["reconciledRepos"] is None


def test_plan_adds_rebranches_and_removes_only_the_drift() -> None:
    recorded = [
        {"url": "https://h/keep", "branch": "main", "name": "keep", "status": "Ready"},
        {"url": "https://h/branch", "branch": "main", "name": "branch", "status": "Ready"},
        {"url": "https://h/gone", "branch": "main", "name": "gone", "status": "Ready"},
        {"url": "https://h/failed", "branch": "main", "name": "failed", "status": "Failed"},
    ]
    desired = [
        Repo("https://h/keep", "main", "keep"),
        Repo("https://h/branch", "dev", "branch"),
        Repo("https://h/failed", "main", "failed"),
        Repo("https://h/new", "main", "new"),
    ]
    plan = plan_repos(desired, recorded)
    assert [e["name"] for e in plan.remove] == ["gone"]
    assert [r.name for r in plan.add] == ["branch", "failed", "new"]
    assert [r.name for r in plan.keep] == ["keep"]


def test_repos_step_records_the_runners_answers() -> None:
    runner = FakeRunner({"/repos/add": Answer(500, "Failed to clone repository: x")})
    status = {
        "reconciledRepos": [{"url": "https://h/old", "branch": "main", "name": "old", "status": "Ready"}]
    }
    step = steps.sync_repos(status, [Repo("https://h/a", "main", "a")], runner, NOW)
    assert runner.calls == [
        ("/repos/remove", {"name": "old"}),
        ("/repos/add", {"url": "https://h/a", "branch": "main", "name": "a"}),
    ]
    (entry,) = step.fields["reconciledRepos"]
    assert entry["status"] == "Failed" and "500" in entry["message"] and "clonedAt" not in entry
    assert step.condition[:2] == (c.FALSE, steps.FAILED) and step.retry and "a" in step.pending


def test_repos_step_timeout_is_cloning_and_nothing_to_do_makes_no_call() -> None:
    runner = FakeRunner({"/repos/add": Answer(0, "no answer", timed_out=True)})
    step = steps.sync_repos({}, [Repo("https://h/a", "main", "a")], runner, NOW)
    assert step.fields["reconciledRepos"][0]["status"] == "Cloning" and step.retry and not step.pending
    ready = {"reconciledRepos": [{"url": "https://h/a", "branch": "main", "name": "a", "status": "Ready"}]}
    quiet = FakeRunner()
    step = steps.sync_repos(ready, [Repo("https://h/a", "main", "a")], quiet, NOW)
    assert quiet.calls == [] and step.condition[0] == c.TRUE and not step.retry


def test_workflow_removal_clears_the_runners_workflow() -> None:
    runner = FakeRunner()
    recorded = {
        "reconciledWorkflow": {"gitUrl": "https://h/f", "branch": "main", "path": "", "status": "Active"}
    }
    step = steps.sync_workflow(recorded, Workflow("", "", ""), runner, NOW)
    assert runner.calls == [("/workflow", {"gitUrl": "", "branch": "main", "path": ""})]
    assert step.fields == {"reconciledWorkflow": None} and step.condition[1] == steps.NOT_CONFIGURED
    down = FakeRunner({"/workflow": Answer(0, "runner not reachable")})
    step = steps.sync_workflow(recorded, Workflow("", "", ""), down, NOW)
    assert step.fields["reconciledWorkflow"]["gitUrl"] == "https://h/f"
    assert step.fields["reconciledWorkflow"]["status"] == "Failed" and step.retry


@pytest.mark.parametrize(
    ("answer", "reason", "retry", "rejected"),
    [
        (Answer(200, "Model switched"), steps.APPLIED, False, False),
        (Answer(200, "Model unchanged"), steps.APPLIED, False, False),
        (Answer(422, "generating"), steps.RUNNER_BUSY, True, False),
        (Answer(409, "switch in progress"), steps.RUNNER_BUSY, True, False),
        (Answer(503, "Context not initialized"), steps.RUNNER_BUSY, True, False),
        (Answer(0, "refused"), steps.RUNNER_UNREACHABLE, True, False),
        (Answer(500, "boom"), steps.SWITCH_FAILED, True, False),
        (Answer(400, "model is required"), steps.REJECTED, False, True),
    ],
)
def test_model_answers(answer: Answer, reason: str, retry: bool, rejected: bool) -> None:
    runner = FakeRunner({"/model": answer})
    step = steps.sync_model("m2", "m1", None, 3, lambda m: None, runner, NOW)
    assert runner.calls == [("/model", {"model": "m2"})]
    assert step.condition[1] == reason and step.retry is retry and bool(step.rejected) is rejected
    assert ("reconciledModel" in step.fields) is (answer.code == 200)


def test_a_rejected_model_is_not_asked_again_in_the_same_generation() -> None:
    runner = FakeRunner()
    previous = c.Condition(c.MODEL_RECONCILED, c.FALSE, steps.REJECTED, "model m2 rejected", "", 3)
    step = steps.sync_model("m2", "m1", previous, 3, lambda m: None, runner, NOW)
    assert runner.calls == [] and step.rejected and not step.retry
    step = steps.sync_model("m2", "m1", previous, 4, lambda m: None, runner, NOW)
    assert runner.calls == [("/model", {"model": "m2"})]


def test_the_model_hook_refuses_before_any_call() -> None:
    runner = FakeRunner()
    step = steps.sync_model("m2", "m1", None, 3, lambda m: "not in the models manifest", runner, NOW)
    assert runner.calls == [] and step.condition[1] == steps.REJECTED and "manifest" in step.rejected


def test_an_invalid_edit_of_a_running_session_is_not_a_failure() -> None:
    invalid = c.Condition(c.RECONCILED, c.FALSE, c.INVALID_SPEC, "spec.x: bad")
    started = c.Condition(c.RUNNER_STARTED, c.TRUE, "ContainerRunning")
    assert c.derive_phase({c.RECONCILED: invalid, c.RUNNER_STARTED: started}, None) == c.RUNNING
    assert c.derive_phase({c.RECONCILED: invalid}, None) == c.FAILED
    assert c.reconciled_owner(c.RUNNING) == "runner-sync" and c.reconciled_owner(c.CREATING) == "sessions"


def test_a_runner_still_starting_leaves_what_its_env_gave_it_cloning() -> None:
    down = FakeRunner({"/repos/add": Answer(0, "runner not reachable"), "/workflow": Answer(0, "refused")})
    told = {
        "reconciledRepos": [{"url": "https://h/a", "branch": "main", "name": "a", "status": "Cloning"}],
        "reconciledWorkflow": {"gitUrl": "https://h/f", "branch": "main", "path": "", "status": "Cloning"},
    }
    repos = steps.sync_repos(told, [Repo("https://h/a", "main", "a")], down, NOW)
    assert repos.fields["reconciledRepos"][0]["status"] == "Cloning" and repos.retry and not repos.pending
    workflow = steps.sync_workflow(told, Workflow("https://h/f", "main", ""), down, NOW)
    assert workflow.fields["reconciledWorkflow"]["status"] == "Cloning" and workflow.retry
    assert not workflow.pending
    # A repo the runner never had is Failed when the runner cannot be reached.
    fresh = steps.sync_repos(told, [Repo("https://h/b", "main", "b")], down, NOW)
    assert [e["status"] for e in fresh.fields["reconciledRepos"]] == ["Failed"] and fresh.pending
