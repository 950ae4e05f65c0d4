"""What a session's spec asks of its runner, in the shape the runner's HTTP API takes it.

The rules are the platform's (reference: HEAD's `reconcileSpecReposWithPatch`): repos are
de-duplicated by URL with the last entry winning, a blank branch means `main`, a repo's name is the
last path segment of its URL without `.git`. Pure functions, so the drift between what the spec asks
and what `status.reconciled*` says the runner has is a table test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller.config import OperatorConfig

DEFAULT_BRANCH = "main"


@dataclass(frozen=True)
class Repo:
    url: str
    branch: str
    name: str


@dataclass(frozen=True)
class Workflow:
    """`git_url` empty means 'no workflow'."""

    git_url: str
    branch: str
    path: str


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _spec(session: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = session.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def repo_name(url: str) -> str:
    """The directory the runner clones into: the URL's last path segment without '.git'."""
    tail = url.strip().rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    return tail.removesuffix(".git")


def unique_name(base: str, taken: set[str]) -> str:
    """`base`, or `base-2`, `base-3`... when taken (two repos would share a directory); marks it taken."""
    name, suffix = base, 2
    while name in taken:
        name, suffix = f"{base}-{suffix}", suffix + 1
    taken.add(name)
    return name


def desired_repos(session: Mapping[str, Any]) -> list[Repo]:
    """spec.repos de-duplicated by URL (the last entry wins, in its own position); names unique.

    Two URLs with the same last segment would share a directory, so a later one gets a numeric
    suffix, as in the runner's REPOS_JSON.
    """
    raw = _spec(session).get("repos")
    entries = [r for r in raw if isinstance(r, Mapping)] if isinstance(raw, list | tuple) else []
    last: dict[str, int] = {}
    for index, entry in enumerate(entries):
        url = _text(entry.get("url"))
        if url:
            last[url] = index
    repos: list[Repo] = []
    taken: set[str] = set()
    for index, entry in enumerate(entries):
        url = _text(entry.get("url"))
        if not url or last[url] != index:
            continue
        name = unique_name(repo_name(url) or f"repo-{index + 1}", taken)
        repos.append(Repo(url, _text(entry.get("branch")) or DEFAULT_BRANCH, name))
    return repos


def desired_workflow(session: Mapping[str, Any]) -> Workflow:
    workflow = _spec(session).get("activeWorkflow")
    if not isinstance(workflow, Mapping) or not _text(workflow.get("gitUrl")):
        return Workflow("", "", "")
    return Workflow(
        _text(workflow.get("gitUrl")),
        _text(workflow.get("branch")) or DEFAULT_BRANCH,
        _text(workflow.get("path")),
    )


# -- what the runner was told at start (its env) ---------------------------------------------------


def started_status(session: Mapping[str, Any], config: OperatorConfig, now: str) -> dict[str, Any]:
    """status.reconciled* for a runner Job just created from this spec.

    The runner receives repos, workflow and model through its env and clones at start, so repos and
    workflow are `Cloning` until the runner confirms them over HTTP (status.reconciledModel is the
    models gate's: it knows the model the Job was given).
    """
    fields: dict[str, Any] = {
        "reconciledRepos": [
            {"url": r.url, "branch": r.branch, "name": r.name, "status": "Cloning"}
            for r in desired_repos(session)
        ]
        or None,
    }
    workflow = desired_workflow(session)
    fields["reconciledWorkflow"] = (
        {"gitUrl": workflow.git_url, "branch": workflow.branch, "path": workflow.path, "status": "Cloning"}
        if workflow.git_url
        else None
    )
    return fields


# -- what status says the runner has ---------------------------------------------------------------


def recorded_repos(status: Mapping[str, Any]) -> list[dict[str, Any]]:
    raw = status.get("reconciledRepos")
    return (
        [dict(r) for r in raw if isinstance(r, Mapping) and _text(r.get("url"))]
        if isinstance(raw, list | tuple)
        else []
    )


def recorded_workflow(status: Mapping[str, Any]) -> Mapping[str, Any]:
    raw = status.get("reconciledWorkflow")
    return raw if isinstance(raw, Mapping) else {}


def live_model(session: Mapping[str, Any], status: Mapping[str, Any]) -> str:
    """The model a running runner should run: the spec's, when it names one the start did not have to
    replace (status.reconciledModel.resetFrom); else the one it runs. A session without a model keeps
    what its start chose, so a changed manifest default never touches a running runner."""
    llm = _spec(session).get("llmSettings")
    model = _text(llm.get("model")) if isinstance(llm, Mapping) else ""
    recorded = status.get("reconciledModel")
    reset_from = _text(recorded.get("resetFrom")) if isinstance(recorded, Mapping) else ""
    if not model or model == reset_from:
        return recorded_model(status)
    return model


def recorded_model(status: Mapping[str, Any]) -> str:
    raw = status.get("reconciledModel")
    return _text(raw.get("model")) if isinstance(raw, Mapping) else ""


@dataclass(frozen=True)
class RepoPlan:
    """Calls that bring the runner's repos to the spec: removals first, then adds."""

    remove: tuple[Mapping[str, Any], ...]  # recorded entries, each with its name
    add: tuple[Repo, ...]
    keep: tuple[Repo, ...]


def plan_repos(desired: Sequence[Repo], recorded: Sequence[Mapping[str, Any]]) -> RepoPlan:
    """Drift by URL: a repo not Ready, on another branch or under another name is (re-)added; a
    recorded repo the spec no longer has (or that moved to another name) is removed."""
    by_url = {_text(r.get("url")): r for r in recorded}
    wanted = {r.url for r in desired}
    remove: list[Mapping[str, Any]] = []
    add: list[Repo] = []
    keep: list[Repo] = []
    for url, entry in by_url.items():
        name = _text(entry.get("name")) or repo_name(url)
        target = next((r for r in desired if r.url == url), None)
        if url not in wanted or (target is not None and target.name != name):
            remove.append({**entry, "name": name})
    for repo in desired:
        found = by_url.get(repo.url)
        if (
            found is not None
            and _text(found.get("branch")) == repo.branch
            and _text(found.get("name")) == repo.name
            and found.get("status") == "Ready"
        ):
            keep.append(repo)
        else:
            add.append(repo)
    return RepoPlan(tuple(remove), tuple(add), tuple(keep))


def workflow_matches(desired: Workflow, recorded: Mapping[str, Any]) -> bool:
    """The recorded workflow is the desired one (status aside); no workflow matches an empty record."""
    if not desired.git_url:
        return not _text(recorded.get("gitUrl"))
    return (
        _text(recorded.get("gitUrl")) == desired.git_url
        and (_text(recorded.get("branch")) or DEFAULT_BRANCH) == desired.branch
        and _text(recorded.get("path")) == desired.path
    )
