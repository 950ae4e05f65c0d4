"""The three things runner sync brings to a running runner: repos, workflow, model.

Each step compares what the spec asks with what status says the runner has, calls the runner only
for the difference, and returns what to record (from the runner's real answer), the condition that
sums it up, and whether something is left to retry. Steps decide; the loop writes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from controller import conditions as c
from controller.platform.runner_client import Answer
from controller.platform.runner_spec import (
    DEFAULT_BRANCH,
    Repo,
    Workflow,
    plan_repos,
    recorded_repos,
    recorded_workflow,
    workflow_matches,
)

Post = Callable[[str, Mapping[str, Any]], Answer]

# Reasons of the runner sync conditions
APPLIED = "Applied"
NO_REPOS = "NoRepos"
NOT_CONFIGURED = "NotConfigured"
CLONING = "Cloning"
FAILED = "Failed"
UPDATE_FAILED = "UpdateFailed"
RUNNER_BUSY = "RunnerBusy"
RUNNER_UNREACHABLE = "RunnerUnreachable"
REJECTED = "Rejected"
SWITCH_FAILED = "SwitchFailed"
APPLIES_AT_START = "AppliesAtStart"

# /model answers that mean 'not now': a run is generating (422), a switch is under way (409), the
# runner is still starting (503).
BUSY_CODES = frozenset({422, 409, 503})


@dataclass
class Step:
    """One step's outcome: status fields to set, its condition, and what is still pending."""

    fields: dict[str, Any] = field(default_factory=dict)
    condition: tuple[str, str, str] = (c.TRUE, APPLIED, "")
    pending: str = ""  # names what has not reached the runner yet; empty when nothing
    retry: bool = False
    rejected: str = ""  # a change the runner refused for good (until the spec changes)
    called: bool = False


def _told_at_start(prior: Mapping[str, Any] | None, answer: Answer) -> bool:
    """The runner got it in its env (Cloning) and is just not answering yet (it is starting)."""
    return prior is not None and prior.get("status") == "Cloning" and answer.code == 0


def _failed_entry(
    base: Mapping[str, Any], answer: Answer, what: str, prior: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    entry = {k: v for k, v in base.items() if k not in ("clonedAt", "message")}
    if answer.timed_out or _told_at_start(prior, answer):
        entry.update(status="Cloning", message=f"{what}: {answer.describe()}; checking again")
    else:
        entry.update(status="Failed", message=f"{what} failed: {answer.describe()}")
    return entry


def sync_repos(status: Mapping[str, Any], desired: list[Repo], post: Post, now: str) -> Step:
    recorded = recorded_repos(status)
    plan = plan_repos(desired, recorded)
    step = Step(called=bool(plan.remove or plan.add))
    by_url = {str(r.get("url")): r for r in recorded}
    leftovers: list[dict[str, Any]] = []
    for entry in plan.remove:
        answer = post("/repos/remove", {"name": entry["name"]})
        if not answer.ok:
            leftovers.append(_failed_entry(entry, answer, "removal"))
    entries: list[dict[str, Any]] = []
    for repo in desired:
        base = {"url": repo.url, "branch": repo.branch, "name": repo.name}
        if repo in plan.keep:
            entries.append(dict(by_url[repo.url]))
            continue
        answer = post("/repos/add", base)
        prior = by_url.get(repo.url)
        same = (
            prior
            if prior is not None and (prior.get("branch"), prior.get("name")) == (repo.branch, repo.name)
            else None
        )
        entries.append(
            {**base, "status": "Ready", "clonedAt": now}
            if answer.ok
            else _failed_entry(base, answer, "clone", same)
        )
    entries += leftovers
    step.fields["reconciledRepos"] = entries or None
    failed = [e for e in entries if e.get("status") == "Failed"]
    cloning = [e for e in entries if e.get("status") == "Cloning"]
    if failed:
        step.condition = (c.FALSE, FAILED, "; ".join(f"{e['name']}: {e.get('message', '')}" for e in failed))
        step.pending = "repos " + ", ".join(str(e["name"]) for e in failed)
        step.retry = True
    elif cloning:
        step.condition = (c.FALSE, CLONING, "cloning: " + ", ".join(str(e["name"]) for e in cloning))
        step.retry = True
    elif not entries:
        step.condition = (c.TRUE, NO_REPOS, "no repositories defined")
    else:
        step.condition = (c.TRUE, APPLIED, f"{len(entries)} repositories ready in the runner's workspace")
    return step


def sync_workflow(status: Mapping[str, Any], desired: Workflow, post: Post, now: str) -> Step:
    recorded = recorded_workflow(status)
    if workflow_matches(desired, recorded) and (not desired.git_url or recorded.get("status") == "Active"):
        if not desired.git_url:
            return Step(
                fields={"reconciledWorkflow": None},
                condition=(c.TRUE, NOT_CONFIGURED, "no workflow selected"),
            )
        return Step(condition=(c.TRUE, APPLIED, f"workflow {desired.git_url}@{desired.branch} is active"))
    # The runner has no 'remove': a workflow with an empty URL clears its ACTIVE_WORKFLOW_* env, so
    # the next run is built without one (a failed clone still answers 200 and sets the env).
    body = (
        {"gitUrl": desired.git_url, "branch": desired.branch, "path": desired.path}
        if desired.git_url
        else {"gitUrl": "", "branch": DEFAULT_BRANCH, "path": ""}
    )
    answer = post("/workflow", body)
    step = Step(called=True)
    if answer.ok and desired.git_url:
        step.fields["reconciledWorkflow"] = {**body, "status": "Active", "appliedAt": now}
        step.condition = (c.TRUE, APPLIED, f"switched to workflow {desired.git_url}@{desired.branch}")
    elif answer.ok:
        step.fields["reconciledWorkflow"] = None
        step.condition = (c.TRUE, NOT_CONFIGURED, "workflow removed from the runner")
    elif desired.git_url and workflow_matches(desired, recorded) and _told_at_start(recorded, answer):
        step.fields["reconciledWorkflow"] = {
            **body,
            "status": "Cloning",
            "message": f"{answer.describe()}; checking again",
        }
        step.condition = (
            c.FALSE,
            CLONING,
            f"waiting for the runner to confirm the workflow: {answer.describe()}",
        )
        step.retry = True
    else:
        base = (
            body
            if desired.git_url
            else {k: v for k, v in recorded.items() if k in ("gitUrl", "branch", "path")}
        )
        what = "workflow update" if desired.git_url else "workflow removal"
        step.fields["reconciledWorkflow"] = {
            **base,
            "status": "Failed",
            "message": f"{what} failed: {answer.describe()}",
        }
        step.condition = (c.FALSE, UPDATE_FAILED, f"{what} failed: {answer.describe()}; retrying")
        step.pending = "workflow"
        step.retry = True
    return step


def sync_model(
    want: str,
    have: str,
    previous: c.Condition | None,
    generation: int,
    check: Callable[[str], str | None],
    post: Post,
    now: str,
) -> Step:
    if want == have:
        return Step(condition=(c.TRUE, APPLIED, f"the runner runs model {want}"))
    if previous is not None and previous.reason == REJECTED and previous.observed_generation == generation:
        # Refused for this generation already: not asked again until the spec changes.
        return Step(condition=(previous.status, previous.reason, previous.message), rejected=previous.message)
    problem = check(want)
    if problem is not None:
        message = f"model {want} rejected: {problem}; the runner keeps model {have or 'unknown'}"
        return Step(condition=(c.FALSE, REJECTED, message), rejected=message)
    answer = post("/model", {"model": want})
    step = Step(called=True)
    if answer.ok:
        step.fields["reconciledModel"] = {"model": want, "status": "Applied", "appliedAt": now}
        step.condition = (c.TRUE, APPLIED, f"the runner switched to model {want} ({answer.detail or 'ok'})")
    elif answer.code == 400:
        message = f"model {want} rejected: {answer.describe()}; the runner keeps model {have or 'unknown'}"
        step.condition = (c.FALSE, REJECTED, message)
        step.rejected = message
    else:
        reason = (
            RUNNER_BUSY
            if answer.code in BUSY_CODES
            else RUNNER_UNREACHABLE
            if answer.code == 0
            else SWITCH_FAILED
        )
        step.condition = (
            c.FALSE,
            reason,
            f"switch to model {want} not taken yet: {answer.describe()}; retrying",
        )
        step.pending = f"model {want}"
        step.retry = True
    return step
