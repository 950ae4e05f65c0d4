from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from controller import config
from controller.config import OperatorConfig

DESIGN_FLAGS = (
    "--kubeconfig",
    "--namespaces",
    "--namespace-selector",
    "--metrics-bind-address",
    "--health-probe-bind-address",
    "--leader-elect",
    "--leader-election-namespace",
    "--workers-sessions",
    "--workers-jobs",
    "--workers-temp-content",
    "--workers-token-secrets",
    "--runner-image",
    "--log-format",
)


def test_defaults() -> None:
    parsed = config.parse(["run"], environ={})
    assert parsed == OperatorConfig()
    assert parsed.namespace_selector == "ambient-code.io/managed=true"
    assert parsed.metrics_bind_address == ":8080"
    assert parsed.health_probe_bind_address == ":8081"
    assert parsed.leader_elect is False
    assert parsed.workers("sessions") == 8
    assert parsed.workers("token-secrets") == 2


def test_flag_beats_env_beats_default() -> None:
    environ = {"WORKERS_JOBS": "3", "WORKERS_SESSIONS": "6", "RUNNER_IMAGE": "env/runner:1"}
    parsed = config.parse(["run", "--workers-jobs", "7", "--runner-image", "flag/runner:2"], environ=environ)
    assert parsed.workers_jobs == 7
    assert parsed.runner_image == "flag/runner:2"
    assert parsed.workers_sessions == 6
    assert parsed.workers_temp_content == 2


def test_env_values_are_converted() -> None:
    parsed = config.parse(
        ["run"],
        environ={
            "LEASE_DURATION": "30",
            "RENEW_DEADLINE": "20.5",
            "RUNNER_PORT": "9001",
            "LOG_FORMAT": "json",
        },
    )
    assert parsed.lease_duration == 30.0 and isinstance(parsed.lease_duration, float)
    assert parsed.renew_deadline == 20.5
    assert parsed.runner_port == 9001 and isinstance(parsed.runner_port, int)
    assert parsed.log_format == "json"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("1", True), ("TRUE", True), ("false", False), ("0", False), ("False", False)],
)
def test_bool_from_env(raw: str, expected: bool) -> None:
    assert config.parse(["run"], environ={"LEADER_ELECT": raw}).leader_elect is expected


def test_bool_flag_beats_env() -> None:
    assert config.parse(["run", "--no-leader-elect"], environ={"LEADER_ELECT": "true"}).leader_elect is False
    assert config.parse(["run", "--leader-elect"], environ={"LEADER_ELECT": "false"}).leader_elect is True


def test_bool_from_env_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="boolean"):
        config.parse(["run"], environ={"LEADER_ELECT": "maybe"})


def test_tuples_from_comma_lists() -> None:
    from_env = config.parse(["run"], environ={"WATCH_NAMESPACES": "team-a, team-b,,team-c "})
    assert from_env.namespaces == ("team-a", "team-b", "team-c")
    from_flag = config.parse(["run", "--namespaces", "x,y"], environ={"WATCH_NAMESPACES": "team-a"})
    assert from_flag.namespaces == ("x", "y")
    selector = config.parse(["run"], environ={"RUNNER_NODE_SELECTOR": "pool=runners,zone=a"})
    assert selector.runner_node_selector == ("pool=runners", "zone=a")


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"lease_duration": 10.0, "renew_deadline": 10.0}, "--lease-duration"),
        ({"renew_deadline": 2.4, "retry_period": 2.0}, "--renew-deadline"),
        ({"renew_deadline": 5.0, "retry_period": 5.0}, "--renew-deadline"),
        ({"workers_sessions": 0}, "--workers-sessions"),
        ({"workers_jobs": 0}, "--workers-jobs"),
        ({"workers_temp_content": 0}, "--workers-temp-content"),
        ({"workers_token_secrets": 0}, "--workers-token-secrets"),
        ({"token_ttl": 3600.0, "token_expiration": 3600}, "--token-ttl"),
        ({"token_ttl": 4000.0, "token_expiration": 3600}, "--token-ttl"),
        ({"log_format": "xml"}, "--log-format"),
    ],
)
def test_validate_rejects(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        dataclasses.replace(OperatorConfig(), **changes).validate()


def test_parse_validates() -> None:
    with pytest.raises(ValueError, match="--lease-duration"):
        config.parse(["run", "--lease-duration", "10", "--renew-deadline", "10"], environ={})
    with pytest.raises(ValueError, match="--workers-jobs"):
        config.parse(["run"], environ={"WORKERS_JOBS": "0"})


def test_validate_accepts_the_defaults_and_near_limits() -> None:
    near = dataclasses.replace(OperatorConfig(), lease_duration=10.5, renew_deadline=10.0, retry_period=2.0)
    for config_ in (OperatorConfig(), near):
        config_.validate()  # raises ValueError when refused
        assert config_.lease_duration > config_.renew_deadline > 1.2 * config_.retry_period


def _run_help(capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        config.parse(["run", "--help"], environ={})
    assert exited.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_help_documents_every_field_with_its_env_var(capsys: pytest.CaptureFixture[str]) -> None:
    text = _run_help(capsys)
    for f in dataclasses.fields(OperatorConfig):
        flag = "--" + f.name.replace("_", "-")
        assert flag in text, flag
        names = " | ".join((f.metadata["env"], *f.metadata["aliases"]))
        assert f"[env {names}]" in text, f.metadata["env"]


def test_help_mentions_the_design_flags(capsys: pytest.CaptureFixture[str]) -> None:
    text = _run_help(capsys)
    for flag in DESIGN_FLAGS:
        assert flag in text, flag


def test_help_shows_real_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    """Flags default to None so that env vars can fill in; help must still show the effective default."""
    text = _run_help(capsys)
    assert "(default: None)" not in text
    assert ":8080" in text


def test_the_original_operators_env_names_are_aliases() -> None:
    head = {
        "AMBIENT_CODE_RUNNER_IMAGE": "quay.io/x/runner:1",
        "IMAGE_PULL_POLICY": "IfNotPresent",
        "NAMESPACE": "ambient-code",
        "MAX_CONCURRENT_RECONCILES": "10",
        "AGENT_REGISTRY_PATH": "/config/registry/agent-registry.json",
        "CLAUDE_CODE_USE_VERTEX": "1",
        "CLOUD_ML_REGION": "global",
        "ANTHROPIC_VERTEX_PROJECT_ID": "p",
        "GOOGLE_APPLICATION_CREDENTIALS": "/app/vertex/key.json",
    }
    parsed = config.parse(["run"], head)
    assert parsed.runner_image == "quay.io/x/runner:1"
    assert parsed.runner_image_pull_policy == "IfNotPresent"
    assert parsed.operator_namespace == parsed.platform_namespace == "ambient-code"
    assert parsed.workers_sessions == 10
    assert parsed.agent_registry_path == "/config/registry/agent-registry.json"
    assert parsed.use_vertex is True
    # Our own name wins over an alias; the default pull policy is the original's Always.
    both = config.parse(["run"], {**head, "RUNNER_IMAGE": "ours:2"})
    assert both.runner_image == "ours:2"
    assert config.parse(["run"], {}).runner_image_pull_policy == "Always"


def test_vertex_mode_needs_its_three_settings() -> None:
    with pytest.raises(ValueError, match="--use-vertex needs"):
        config.parse(["run"], {"USE_VERTEX": "true", "CLOUD_ML_REGION": "global"})
