"""Reconcilers hand validators and builders sessions straight from the cache, where objects are
frozen (dicts read-only, lists turned into tuples): results must not depend on that shape."""

from __future__ import annotations

from typing import Any

import pytest

from controller.config import OperatorConfig
from controller.reconcilers import children
from controller.reconcilers.runner_job import build_runner_job, protected_env_collisions, repos_payload
from controller.reconcilers.spec import validate_spec
from controller.watchers.store import freeze

RICH: dict[str, Any] = {
    "apiVersion": "vteam.ambient-code/v1alpha1",
    "kind": "AgenticSession",
    "metadata": {
        "name": "rich",
        "namespace": "ns",
        "uid": "u-1",
        "annotations": {"kwok.ambient-code.io/x": "1"},
    },
    "spec": {
        "initialPrompt": "go",
        "interactive": False,
        "timeout": 120,
        "repos": [
            {"url": "https://github.com/example/a.git", "branch": "dev", "autoPush": True},
            {"url": "git@github.com:example/b.git"},
        ],
        "activeWorkflow": {
            "gitUrl": "https://github.com/example/wf.git",
            "branch": "main",
            "path": "flows/x",
        },
        "llmSettings": {"model": "m", "temperature": 0.5, "maxTokens": 100},
        "userContext": {"userId": "u", "displayName": "U", "groups": ["g1", "g2"]},
        "environmentVariables": {"A": "1", "LLM_MODEL": "nope"},
        "mcpServers": {"custom": {"s": {"args": ["--x"]}}, "disabled": ["y"]},
    },
    "status": {"restartCount": 1},
}
CONFIG = OperatorConfig(runner_pod_annotation_prefixes=("kwok.ambient-code.io/",))


def test_validation_is_the_same_on_frozen_sessions() -> None:
    assert validate_spec(RICH) == []
    assert validate_spec(freeze(RICH)) == []
    bad = {**RICH, "spec": {**RICH["spec"], "repos": [{"url": "not a url"}]}}
    assert validate_spec(freeze(bad)) == validate_spec(bad) != []


@pytest.mark.parametrize(
    "builder",
    [
        lambda s: build_runner_job(s, CONFIG, True),
        lambda s: children.build_workspace_pvc(s, CONFIG),
        lambda s: children.build_runner_role(s),
        lambda s: children.build_runner_service_account(s),
        lambda s: children.build_session_service(s, CONFIG),
        lambda s: children.build_temp_content_pod(s, CONFIG),
        repos_payload,
        protected_env_collisions,
    ],
)
def test_builders_are_the_same_on_frozen_sessions(builder: Any) -> None:
    assert builder(freeze(RICH)) == builder(RICH)


def test_frozen_repos_reach_the_runner() -> None:
    job, _ = build_runner_job(freeze(RICH), CONFIG, False)
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert '"https://github.com/example/a.git"' in env["REPOS_JSON"]
