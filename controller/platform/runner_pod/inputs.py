"""What the runner pod depends on besides the session and the flags, resolved by the caller."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.config import OperatorConfig
from controller.platform.registry import PERSISTENCE_NONE, PERSISTENCE_S3, Runtime, flag_runtime
from controller.reconcilers.children import as_mapping, as_str, session_spec

DEFAULT_PORT = 8001
DEFAULT_STATE_DIR = ".claude"
DEFAULT_GRACE = 60
DEFAULT_EMPTYDIR_SIZE = "10Gi"
RUNNER_SECRETS = "ambient-runner-secrets"
INTEGRATION_SECRETS = "ambient-non-vertex-integrations"
VERTEX_SECRET = "ambient-vertex"
LANGFUSE_SECRET = "ambient-admin-langfuse-secret"
MLFLOW_SECRET = "ambient-admin-mlflow-observability-secret"
CA_BUNDLE = "trusted-ca-bundle"
CA_BUNDLE_KEY = "ca-bundle.crt"


@dataclass(frozen=True)
class SecretKey:
    """A value the pod reads from a Secret of its namespace, never a literal."""

    secret: str
    key: str


@dataclass(frozen=True)
class S3Settings:
    """Where the state-sync containers keep the session's state (§1.9); keys only by reference."""

    endpoint: str
    bucket: str
    access_key: SecretKey
    secret_key: SecretKey


@dataclass(frozen=True)
class PodInputs:
    runtime: Runtime
    vertex: bool = False
    langfuse: bool = False  # the Langfuse Secret is in the session namespace
    mlflow: bool = False  # the MLflow Secret is in the session namespace
    mlflow_kubernetes_auth: bool = False  # MLFLOW_TRACKING_AUTH is kubernetes[-namespaced]
    integration_secret: bool = False
    runner_secret_optional: bool = False  # not required and absent: envFrom must not block the start
    ca_bundle: bool = False
    s3: S3Settings | None = None


def default_inputs(config: OperatorConfig) -> PodInputs:
    """No registry and no platform Secrets: the pod the flags alone describe."""
    return PodInputs(runtime=flag_runtime(config.default_runner_type))


def port_of(runtime: Runtime, config: OperatorConfig) -> int:
    return runtime.port if runtime.port > 0 else (config.runner_port or DEFAULT_PORT)


def _safe_subpath(value: str) -> bool:
    parts = value.split("/")
    return bool(value) and not value.startswith("/") and ".." not in parts and "" not in parts


def state_dir_of(session: Mapping[str, Any], runtime: Runtime) -> str:
    """spec.environmentVariables.RUNNER_STATE_DIR, else the registry's, else .claude; always a subPath."""
    env = as_mapping(session_spec(session).get("environmentVariables"))
    for candidate in (as_str(env.get("RUNNER_STATE_DIR")).strip(), runtime.state_dir.strip()):
        if candidate and _safe_subpath(candidate):
            return candidate
    return DEFAULT_STATE_DIR


def uses_workspace(runtime: Runtime) -> bool:
    return runtime.storage != PERSISTENCE_NONE or runtime.seed_clone_repos


def uses_init_container(runtime: Runtime) -> bool:
    """The operator's PVC workspace keeps state itself; S3 and ephemeral runtimes are seeded."""
    if runtime.storage not in (PERSISTENCE_S3, PERSISTENCE_NONE):
        return False
    return (runtime.seed_clone_repos or runtime.seed_hydrate_state) and uses_workspace(runtime)


def uses_state_sync(runtime: Runtime) -> bool:
    return runtime.storage == PERSISTENCE_S3
