from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from controller.config import OperatorConfig
from controller.platform.registry import (
    AgentRegistry,
    RegistryError,
    RegistryView,
    Runtime,
    parse_registry,
    runtime_id_of,
)

SHIPPED = [
    {
        "id": "claude-agent-sdk",
        "displayName": "Claude Code",
        "provider": "anthropic",
        "container": {
            "image": "quay.io/ambient_code/vteam_claude_runner:latest",
            "port": 8001,
            "env": {"RUNNER_TYPE": "claude-agent-sdk", "RUNNER_STATE_DIR": ".claude"},
            "resources": {
                "requests": {"cpu": "500m", "memory": "512Mi"},
                "limits": {"cpu": "2", "memory": "8Gi"},
            },
        },
        "sandbox": {
            "stateDir": ".claude",
            "stateSyncImage": "quay.io/ambient_code/vteam_state_sync:latest",
            "persistence": "s3",
            "workspaceSize": "10Gi",
            "terminationGracePeriod": 60,
            "seed": {"cloneRepos": True, "hydrateState": True},
        },
        "auth": {
            "requiredSecretKeys": ["ANTHROPIC_API_KEY"],
            "secretKeyLogic": "any",
            "vertexSupported": True,
        },
        "featureGate": "",
    },
    {
        "id": "gemini-cli",
        "provider": "google",
        "container": {"port": 8001},
        "sandbox": {"stateDir": ".gemini"},
    },
]


def test_parses_the_shipped_registry() -> None:
    runtimes = parse_registry(json.dumps(SHIPPED))
    claude = runtimes["claude-agent-sdk"]
    assert claude.image == "quay.io/ambient_code/vteam_claude_runner:latest"
    assert claude.port == 8001 and claude.provider == "anthropic"
    assert dict(claude.env) == {"RUNNER_TYPE": "claude-agent-sdk", "RUNNER_STATE_DIR": ".claude"}
    assert dict(claude.resources["limits"]) == {"cpu": "2", "memory": "8Gi"}
    assert (claude.state_dir, claude.workspace_size, claude.termination_grace) == (".claude", "10Gi", 60)
    assert claude.storage == "s3" and claude.seed_clone_repos and claude.seed_hydrate_state
    gemini = runtimes["gemini-cli"]
    assert gemini.image == "" and gemini.storage == "pvc" and not gemini.seed_clone_repos


def test_keys_match_case_insensitively_and_unknown_keys_are_ignored() -> None:
    text = json.dumps([{"ID": "x", "Container": {"IMAGE": "i", "Port": 9}, "whatever": {"a": [1]}}])
    runtime = parse_registry(text)["x"]
    assert (runtime.image, runtime.port) == ("i", 9)


@pytest.mark.parametrize(
    "entry",
    [
        {"id": "x", "container": {"port": "8001"}},
        {"id": "x", "container": {"port": 8001.5}},
        {"id": 7},
        {"id": "x", "container": {"env": {"A": 1}}},
        {"id": "x", "sandbox": {"seed": {"cloneRepos": "true"}}},
        {"id": "x", "sandbox": {"terminationGracePeriod": True}},
        {"id": "x", "container": []},
        {"id": "x", "auth": {"requiredSecretKeys": "K"}},
    ],
)
def test_a_type_mismatch_fails_the_whole_file(entry: dict[str, Any]) -> None:
    with pytest.raises(RegistryError):
        parse_registry(json.dumps([{"id": "ok"}, entry]))


@pytest.mark.parametrize("text", ["{}", '"x"', "[", "not json"])
def test_not_an_array_fails(text: str) -> None:
    with pytest.raises(RegistryError):
        parse_registry(text)


def test_null_is_an_empty_registry_and_the_first_entry_of_an_id_wins() -> None:
    assert dict(parse_registry("null")) == {}
    runtimes = parse_registry(json.dumps([{"id": "a", "container": {"port": 1}}, {"id": "a"}]))
    assert runtimes["a"].port == 1


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"runnerType": "gemini-cli", "environmentVariables": {"RUNNER_TYPE": "x"}}, "gemini-cli"),
        ({"environmentVariables": {"RUNNER_TYPE": " langgraph "}}, "langgraph"),
        ({"runnerType": "  ", "environmentVariables": {"RUNNER_TYPE": ""}}, "claude-agent-sdk"),
        ({"runnerType": 5}, "claude-agent-sdk"),
        ({}, "claude-agent-sdk"),
    ],
)
def test_runtime_id_of(spec: dict[str, Any], expected: str) -> None:
    assert runtime_id_of({"spec": spec}, OperatorConfig()) == expected


def test_view_lookup() -> None:
    unloaded = RegistryView(None, "claude-agent-sdk")
    runtime = unloaded.lookup("anything")
    assert runtime == Runtime(id="anything", from_registry=False)
    loaded = RegistryView(parse_registry(json.dumps(SHIPPED)), "claude-agent-sdk")
    assert loaded.lookup("nope") is None
    assert loaded.lookup("gemini-cli") is not None and loaded.loaded


def _configmap(text: str | None) -> dict[str, Any]:
    return {
        "metadata": {"name": "ambient-agent-registry"},
        "data": {} if text is None else {"agent-registry.json": text},
    }


def test_registry_reports_each_problem_once_and_recovers() -> None:
    problems: list[str] = []
    views: list[RegistryView] = []
    registry = AgentRegistry(OperatorConfig(), on_problem=problems.append)
    registry.add_listener(views.append)
    assert not registry.apply_configmap(None).loaded
    assert not registry.apply_configmap(None).loaded
    assert len(problems) == 1 and "does not exist" in problems[0] and "flags" in problems[0]
    assert not registry.apply_configmap(_configmap('[{"id": "x", "container": {"port": "1"}}]')).loaded
    assert len(problems) == 2 and "malformed" in problems[1]
    view = registry.apply_configmap(_configmap(json.dumps(SHIPPED)))
    assert view.loaded and registry.view() is view and views[-1] is view
    assert len(problems) == 2
    registry.apply_configmap(_configmap(None))
    assert len(problems) == 3 and "has no key" in problems[2] and not registry.view().loaded


def test_registry_file_is_the_fallback(tmp_path: Path) -> None:
    path = tmp_path / "agent-registry.json"
    path.write_text(json.dumps(SHIPPED))
    registry = AgentRegistry(OperatorConfig(agent_registry_path=str(path)))
    view = registry.apply_configmap(None)
    assert view.loaded and view.source == f"file {path}"


def test_the_models_check_takes_runtime_and_provider_from_the_registry() -> None:
    from controller.reconcilers.model_gate import session_runtime

    loaded = RegistryView(parse_registry(json.dumps([*SHIPPED, {"id": "langgraph", "provider": "x"}])), "")
    session = {"spec": {"runnerType": "langgraph"}}
    assert session_runtime(session, OperatorConfig(), loaded) == ("langgraph", "x")
    assert session_runtime(session, OperatorConfig(), RegistryView(None, "")) == ("langgraph", "")
    assert session_runtime({"spec": {}}, OperatorConfig(), loaded) == ("claude-agent-sdk", "anthropic")
