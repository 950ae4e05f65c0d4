"""Golden table of the runner pod (platform contract §1), one row per combination.

Every expected list below is written from the contract (§1.3-§1.6), not computed: a change in the
builder's order or content shows here as a diff against the reference.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

from controller.config import OperatorConfig
from controller.platform.registry import Runtime, flag_runtime
from controller.platform.runner_pod.inputs import PodInputs, S3Settings, SecretKey
from controller.reconcilers.runner_job import build_runner_job

CONFIG = OperatorConfig(backend_namespace="ambient-code", runner_image="flag/runner:1")
SESSION: dict[str, Any] = {
    "apiVersion": "vteam.ambient-code/v1alpha1",
    "kind": "AgenticSession",
    "metadata": {"name": "s1", "namespace": "proj", "uid": "uid-1"},
    "spec": {
        "initialPrompt": "hi",
        "llmSettings": {"model": "claude-sonnet-4-6", "temperature": 0.7, "maxTokens": 4000},
        "timeout": 300,
        "repos": [{"url": "https://github.com/org/a.git", "branch": "main"}],
        "environmentVariables": {"RUNNER_TYPE": "claude-agent-sdk", "EXTRA": "x"},
    },
}
CLAUDE_S3 = Runtime(
    id="claude-agent-sdk",
    provider="anthropic",
    image="reg/claude:2",
    port=8001,
    env=MappingProxyType({"RUNNER_TYPE": "claude-agent-sdk", "RUNNER_STATE_DIR": ".claude"}),
    resources=MappingProxyType({"limits": MappingProxyType({"cpu": "3"})}),
    state_dir=".claude",
    state_sync_image="reg/sync:2",
    workspace_size="20Gi",
    termination_grace=90,
    persistence="s3",
    seed_clone_repos=True,
    seed_hydrate_state=True,
)
GEMINI_NONE = Runtime(
    id="gemini-cli",
    provider="google",
    port=9000,
    env=MappingProxyType({"RUNNER_TYPE": "gemini-cli", "RUNNER_STATE_DIR": ".gemini"}),
    state_dir=".gemini",
    persistence="none",
    seed_clone_repos=True,
)
SHARED_S3 = S3Settings(
    "https://s3.amazonaws.com",
    "ambient-sessions",
    SecretKey("minio-credentials", "access-key"),
    SecretKey("minio-credentials", "secret-key"),
)
TOKEN = "ambient-runner-token-s1"
AGUI = {"secretKeyRef": {"name": TOKEN, "key": "agui-token"}}
BOT = {"secretKeyRef": {"name": TOKEN, "key": "k8s-token"}}
BACKEND = "http://backend-service.ambient-code.svc.cluster.local:8080/api"
REPOS = '[{"url":"https://github.com/org/a.git","branch":"main","autoPush":false,"name":"a"}]'

# §1.5 rows 1-25 (minus the models manifest's LLM_MODEL_VERTEX_ID), with our BOT_TOKEN_PATH and INTERACTIVE.
HEAD_RUNNER_ENV = [
    ("DEBUG", "true"),
    ("AGENTIC_SESSION_NAME", "s1"),
    ("AGENTIC_SESSION_NAMESPACE", "proj"),
    ("SESSION_ID", "s1"),
    ("PROJECT_NAME", "proj"),
    ("WORKSPACE_PATH", "/workspace"),
    ("ARTIFACTS_DIR", "artifacts"),
    ("AGUI_PORT", "8001"),
    ("AGUI_TOKEN", AGUI),
    ("BOT_TOKEN_PATH", "/var/run/secrets/ambient/bot-token"),
    ("GOOGLE_MCP_CREDENTIALS_DIR", "/workspace/.google_workspace_mcp/credentials"),
    ("GOOGLE_OAUTH_CLIENT_ID", ""),
    ("GOOGLE_OAUTH_CLIENT_SECRET", ""),
    ("INITIAL_PROMPT", "hi"),
    ("LLM_MODEL", "claude-sonnet-4-6"),
    ("LLM_TEMPERATURE", "0.70"),
    ("LLM_MAX_TOKENS", "4000"),
    ("USE_AGUI", "true"),
    ("INTERACTIVE", "true"),
    ("TIMEOUT", "300"),
    ("BACKEND_API_URL", BACKEND),
]
VERTEX_OFF = [("USE_VERTEX", "0"), ("CLAUDE_CODE_USE_VERTEX", "0")]
TAIL = [("REPOS_JSON", REPOS)]
USER = [("EXTRA", "x"), ("RUNNER_TYPE", "claude-agent-sdk")]
REGISTRY_CLAUDE = [("RUNNER_TYPE", "claude-agent-sdk"), ("RUNNER_STATE_DIR", ".claude")]
LANGFUSE = [
    (k, {"secretKeyRef": {"name": "ambient-admin-langfuse-secret", "key": k, "optional": True}})
    for k in ("LANGFUSE_ENABLED", "LANGFUSE_HOST", "LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY")
]
MLFLOW = [
    (k, {"secretKeyRef": {"name": "ambient-admin-mlflow-observability-secret", "key": k, "optional": True}})
    for k in (
        "MLFLOW_TRACING_ENABLED",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_TRACKING_AUTH",
        "MLFLOW_EXPERIMENT_NAME",
        "MLFLOW_WORKSPACE",
        "OBSERVABILITY_BACKENDS",
    )
]
VERTEX_CONFIG = OperatorConfig(
    backend_namespace="ambient-code",
    runner_image="flag/runner:1",
    use_vertex=True,
    cloud_ml_region="global",
    anthropic_vertex_project_id="proj-x",
    google_application_credentials="/app/vertex/key.json",
)
VERTEX_ON = [
    ("USE_VERTEX", "1"),
    ("CLAUDE_CODE_USE_VERTEX", "1"),
    ("CLOUD_ML_REGION", "global"),
    ("ANTHROPIC_VERTEX_PROJECT_ID", "proj-x"),
    ("GOOGLE_APPLICATION_CREDENTIALS", "/app/vertex/key.json"),
    ("GCE_METADATA_HOST", "metadata.invalid"),
    ("GCE_METADATA_TIMEOUT", "1"),
]
PVC = {"name": "workspace", "persistentVolumeClaim": {"claimName": "ambient-workspace-s1"}}
TOKEN_VOLUME = {
    "name": "runner-token",
    "secret": {
        "secretName": TOKEN,
        "items": [{"key": "k8s-token", "path": "bot-token"}],
        "defaultMode": 0o440,
    },
}
TOKEN_MOUNT = {"name": "runner-token", "mountPath": "/var/run/secrets/ambient", "readOnly": True}
CLAUDE_MOUNTS = [
    {"name": "workspace", "mountPath": "/workspace"},
    {"name": "workspace", "mountPath": "/app/.claude", "subPath": ".claude"},
]
RUNNER_SECRETS = {"secretRef": {"name": "ambient-runner-secrets"}}
INIT_S3_ENV = [
    ("SESSION_NAME", "s1"),
    ("NAMESPACE", "proj"),
    ("S3_ENDPOINT", "https://s3.amazonaws.com"),
    ("S3_BUCKET", "ambient-sessions"),
    ("AWS_ACCESS_KEY_ID", {"secretKeyRef": {"name": "minio-credentials", "key": "access-key"}}),
    ("AWS_SECRET_ACCESS_KEY", {"secretKeyRef": {"name": "minio-credentials", "key": "secret-key"}}),
    ("BACKEND_API_URL", BACKEND),
    ("PROJECT_NAME", "proj"),
    ("REPOS_JSON", REPOS),
    ("BOT_TOKEN", BOT),
    ("EXTRA", "x"),
    ("RUNNER_TYPE", "claude-agent-sdk"),
]
SYNC_S3_ENV = [
    ("SESSION_NAME", "s1"),
    ("NAMESPACE", "proj"),
    ("S3_ENDPOINT", "https://s3.amazonaws.com"),
    ("S3_BUCKET", "ambient-sessions"),
    ("SYNC_INTERVAL", "60"),
    ("MAX_SYNC_SIZE", "1073741824"),
    ("AWS_ACCESS_KEY_ID", {"secretKeyRef": {"name": "minio-credentials", "key": "access-key"}}),
    ("AWS_SECRET_ACCESS_KEY", {"secretKeyRef": {"name": "minio-credentials", "key": "secret-key"}}),
    ("RUNNER_TYPE", "claude-agent-sdk"),
    ("RUNNER_STATE_DIR", ".claude"),
    ("EXTRA", "x"),
]
NO_S3 = [("S3_ENDPOINT", ""), ("S3_BUCKET", ""), ("AWS_ACCESS_KEY_ID", ""), ("AWS_SECRET_ACCESS_KEY", "")]

# (id, config, inputs, runner env, envFrom, volumes, runner mounts, init env or None, sidecar env or None)
ROWS: list[tuple[str, OperatorConfig, PodInputs, list[Any], list[Any], list[Any], list[Any], Any, Any]] = [
    (
        "flags-pvc-vertex-off",
        CONFIG,
        PodInputs(runtime=flag_runtime("claude-agent-sdk")),
        [*HEAD_RUNNER_ENV, *VERTEX_OFF, *TAIL, *USER],
        [RUNNER_SECRETS],
        [PVC, TOKEN_VOLUME],
        [*CLAUDE_MOUNTS, TOKEN_MOUNT],
        None,
        None,
    ),
    (
        "registry-s3-shared-storage",
        CONFIG,
        PodInputs(runtime=CLAUDE_S3, s3=SHARED_S3),
        [*HEAD_RUNNER_ENV, *VERTEX_OFF, *TAIL, *REGISTRY_CLAUDE, ("EXTRA", "x")],
        [RUNNER_SECRETS],
        [{"name": "workspace", "emptyDir": {"sizeLimit": "20Gi"}}, TOKEN_VOLUME],
        [*CLAUDE_MOUNTS, TOKEN_MOUNT],
        INIT_S3_ENV,
        SYNC_S3_ENV,
    ),
    (
        "registry-s3-not-configured",
        CONFIG,
        PodInputs(runtime=CLAUDE_S3),
        [*HEAD_RUNNER_ENV, *VERTEX_OFF, *TAIL, *REGISTRY_CLAUDE, ("EXTRA", "x")],
        [RUNNER_SECRETS],
        [{"name": "workspace", "emptyDir": {"sizeLimit": "20Gi"}}, TOKEN_VOLUME],
        [*CLAUDE_MOUNTS, TOKEN_MOUNT],
        [*INIT_S3_ENV[:2], *NO_S3, *INIT_S3_ENV[6:]],
        [*SYNC_S3_ENV[:2], *NO_S3[:2], *SYNC_S3_ENV[4:6], *NO_S3[2:], *SYNC_S3_ENV[8:]],
    ),
    (
        "vertex-on-ca-bundle-integrations",
        VERTEX_CONFIG,
        PodInputs(
            runtime=flag_runtime("claude-agent-sdk"), vertex=True, ca_bundle=True, integration_secret=True
        ),
        [*HEAD_RUNNER_ENV, *VERTEX_ON, *TAIL, *USER],
        [{"secretRef": {"name": "ambient-non-vertex-integrations"}}],
        [
            PVC,
            {"name": "vertex", "secret": {"secretName": "ambient-vertex"}},
            {"name": "trusted-ca-bundle", "configMap": {"name": "trusted-ca-bundle"}},
            TOKEN_VOLUME,
        ],
        [
            *CLAUDE_MOUNTS,
            {"name": "vertex", "mountPath": "/app/vertex", "readOnly": True},
            {
                "name": "trusted-ca-bundle",
                "mountPath": "/etc/pki/tls/certs/ca-bundle.crt",
                "subPath": "ca-bundle.crt",
                "readOnly": True,
            },
            TOKEN_MOUNT,
        ],
        None,
        None,
    ),
    (
        "langfuse-and-mlflow",
        CONFIG,
        PodInputs(runtime=flag_runtime("claude-agent-sdk"), langfuse=True, mlflow=True),
        [*HEAD_RUNNER_ENV, *LANGFUSE, *MLFLOW, *VERTEX_OFF, *TAIL, *USER],
        [RUNNER_SECRETS],
        [PVC, TOKEN_VOLUME],
        [*CLAUDE_MOUNTS, TOKEN_MOUNT],
        None,
        None,
    ),
    (
        "custom-port-ephemeral-clone",
        CONFIG,
        PodInputs(runtime=GEMINI_NONE, runner_secret_optional=True),
        [
            *[(k, "9000") if k == "AGUI_PORT" else (k, v) for k, v in HEAD_RUNNER_ENV],
            *VERTEX_OFF,
            *TAIL,
            # Registry env in its order; the user's RUNNER_TYPE replaces the registry's in place.
            ("RUNNER_TYPE", "claude-agent-sdk"),
            ("RUNNER_STATE_DIR", ".gemini"),
            ("EXTRA", "x"),
        ],
        [{"secretRef": {"name": "ambient-runner-secrets", "optional": True}}],
        [{"name": "workspace", "emptyDir": {"sizeLimit": "10Gi"}}, TOKEN_VOLUME],
        [
            {"name": "workspace", "mountPath": "/workspace"},
            {"name": "workspace", "mountPath": "/app/.gemini", "subPath": ".gemini"},
            TOKEN_MOUNT,
        ],
        [*INIT_S3_ENV[:2], *NO_S3, *INIT_S3_ENV[6:]],
        None,
    ),
]


def _pairs(env: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(item["name"], item.get("value", item.get("valueFrom"))) for item in env]


@pytest.mark.parametrize(
    ("config", "inputs", "runner_env", "env_from", "volumes", "mounts", "init_env", "sync_env"),
    [row[1:] for row in ROWS],
    ids=[row[0] for row in ROWS],
)
def test_golden_runner_pod(
    config: OperatorConfig,
    inputs: PodInputs,
    runner_env: list[Any],
    env_from: list[Any],
    volumes: list[Any],
    mounts: list[Any],
    init_env: Any,
    sync_env: Any,
) -> None:
    job, warnings = build_runner_job(SESSION, config, False, inputs)
    assert warnings == []
    pod = job["spec"]["template"]["spec"]
    runner = pod["containers"][0]
    assert _pairs(runner["env"]) == runner_env
    assert runner["envFrom"] == env_from
    assert pod["volumes"] == volumes
    assert runner["volumeMounts"] == mounts
    port = inputs.runtime.port or 8001
    assert runner["ports"] == [{"name": "agui", "containerPort": port, "protocol": "TCP"}]
    assert runner["readinessProbe"] == {
        "httpGet": {"path": "/health", "port": port},
        "initialDelaySeconds": 3,
        "periodSeconds": 5,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
    }
    assert runner["livenessProbe"] == {
        "httpGet": {"path": "/health", "port": port},
        "initialDelaySeconds": 20,
        "periodSeconds": 30,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    }
    assert runner["lifecycle"]["postStart"]["exec"]["command"][:2] == ["/bin/sh", "-c"]
    if init_env is None:
        assert "initContainers" not in pod
    else:
        (init,) = pod["initContainers"]
        assert init["name"] == "init-hydrate" and init["command"] == ["/usr/local/bin/hydrate.sh"]
        assert _pairs(init["env"]) == init_env
        assert init["volumeMounts"] == mounts[:2]
    if sync_env is None:
        assert [c["name"] for c in pod["containers"]] == ["ambient-code-runner"]
    else:
        sync = pod["containers"][1]
        assert sync["name"] == "state-sync" and sync["command"] == ["/usr/local/bin/sync.sh"]
        assert _pairs(sync["env"]) == sync_env
        assert sync["volumeMounts"] == mounts[:2]
        assert sync["resources"] == {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "1000m", "memory": "1Gi"},
        }
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        # The runner's credentials only by reference: no literal key, token or password.
        for item in container["env"]:
            if item["name"] in ("AGUI_TOKEN", "BOT_TOKEN") or item["name"].startswith("AWS_"):
                assert "value" not in item or item["value"] == ""


def test_registry_entry_sets_image_resources_grace_and_images() -> None:
    job, _ = build_runner_job(SESSION, CONFIG, False, PodInputs(runtime=CLAUDE_S3, s3=SHARED_S3))
    pod = job["spec"]["template"]["spec"]
    runner, sync = pod["containers"]
    assert runner["image"] == "reg/claude:2"
    assert runner["imagePullPolicy"] == "Always"
    assert runner["resources"] == {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"cpu": "3", "memory": "8Gi"},
    }
    assert pod["terminationGracePeriodSeconds"] == 90
    assert sync["image"] == pod["initContainers"][0]["image"] == "reg/sync:2"


def test_flags_describe_the_runtime_without_a_registry() -> None:
    job, _ = build_runner_job(SESSION, CONFIG, False, PodInputs(runtime=flag_runtime("x")))
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "flag/runner:1"
    assert pod["terminationGracePeriodSeconds"] == 60
    assert pod["automountServiceAccountToken"] is False


def test_mlflow_kubernetes_auth_mounts_the_service_account_token() -> None:
    inputs = PodInputs(runtime=flag_runtime("x"), mlflow=True, mlflow_kubernetes_auth=True)
    pod = build_runner_job(SESSION, CONFIG, False, inputs)[0]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "ambient-session-s1"
    assert pod["automountServiceAccountToken"] is True


@pytest.mark.parametrize("non_root", [True, False])
def test_run_as_non_root_follows_the_flag(non_root: bool) -> None:
    config = OperatorConfig(runner_run_as_non_root=non_root)
    pod = build_runner_job(SESSION, config, False)[0]["spec"]["template"]["spec"]
    assert pod["securityContext"].get("runAsNonRoot") is (True if non_root else None)
    runner = pod["containers"][0]["securityContext"]
    assert runner.get("runAsNonRoot") is (True if non_root else None)
    assert runner["seccompProfile"] == {"type": "RuntimeDefault"}
    assert runner["capabilities"] == {"drop": ["ALL"]} and runner["allowPrivilegeEscalation"] is False


def test_spec_runner_type_names_the_bridge_and_user_env_replaces_registry_env() -> None:
    session = {
        **SESSION,
        "spec": {
            **SESSION["spec"],
            "runnerType": "gemini-cli",
            "environmentVariables": {"RUNNER_TYPE": "claude-agent-sdk", "RUNNER_STATE_DIR": "../etc"},
        },
    }
    job, _ = build_runner_job(session, CONFIG, False, PodInputs(runtime=GEMINI_NONE))
    runner = job["spec"]["template"]["spec"]["containers"][0]
    env = dict(_pairs(runner["env"]))
    assert env["RUNNER_TYPE"] == "gemini-cli"
    # An unsafe state directory is not used as a subPath: the registry's is.
    assert {"name": "workspace", "mountPath": "/app/.gemini", "subPath": ".gemini"} in runner["volumeMounts"]
