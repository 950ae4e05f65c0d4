"""Operator configuration: one dataclass, filled from flags, then env vars, then defaults.

Every field declares its flag, env var and help text in one place, so `--help` can never drift from
what the code reads. Env vars let the Deployment configure the operator without a long args list.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controller.version import version

# A resource quantity as the API server parses it: every runner Job and PVC carries these, so a
# malformed one would have every create refused (422); the operator refuses to start instead.
QUANTITY = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[numkMGTPE])?")

LOOPS = ("sessions", "jobs", "temp-content", "token-secrets", "projects", "runner-sync")
MANAGED_NAMESPACE_LABEL = "ambient-code.io/managed"


def _opt(env: str, help: str, default: Any, flag: str | None = None, aliases: tuple[str, ...] = ()) -> Any:
    """`aliases` are further env var names read when `env` is unset (the original operator's names)."""
    return field(default=default, metadata={"env": env, "help": help, "flag": flag, "aliases": aliases})


@dataclass(frozen=True)
class OperatorConfig:
    """Everything the operator can be told; immutable once parsed."""

    kubeconfig: str = _opt("KUBECONFIG", "Path to a kubeconfig; in-cluster config when empty.", "")
    namespaces: tuple[str, ...] = _opt(
        "WATCH_NAMESPACES",
        "Comma-separated namespaces to manage (one watch each; works with namespaced Roles only). "
        "When empty, every namespace matching --namespace-selector is managed.",
        (),
    )
    namespace_selector: str = _opt(
        "NAMESPACE_SELECTOR",
        "Label selector of managed namespaces, used when --namespaces is empty.",
        f"{MANAGED_NAMESPACE_LABEL}=true",
    )
    watch_per_namespace: bool = _opt(
        "WATCH_PER_NAMESPACE",
        "With --namespace-selector, watch each kind in each managed namespace instead of once across "
        "all namespaces (connections and threads then grow with namespaces).",
        False,
    )
    metrics_bind_address: str = _opt("METRICS_BIND_ADDRESS", "Address of /metrics; '0' disables it.", ":8080")
    health_probe_bind_address: str = _opt(
        "HEALTH_PROBE_BIND_ADDRESS", "Address of /healthz and /readyz; '0' disables it.", ":8081"
    )
    leader_elect: bool = _opt("LEADER_ELECT", "Run the loops only while holding the leader Lease.", False)
    leader_election_namespace: str = _opt(
        "LEADER_ELECTION_NAMESPACE", "Namespace of the leader Lease (default: the operator namespace).", ""
    )
    leader_election_id: str = _opt(
        "LEADER_ELECTION_ID", "Name of the leader Lease.", "agentic-operator.ambient-code.io"
    )
    lease_duration: float = _opt("LEASE_DURATION", "Seconds a non-renewed lease stays valid.", 15.0)
    renew_deadline: float = _opt("RENEW_DEADLINE", "Seconds the leader keeps trying to renew.", 10.0)
    retry_period: float = _opt("RETRY_PERIOD", "Seconds between leader election attempts.", 2.0)
    workers_sessions: int = _opt(
        "WORKERS_SESSIONS",
        "Concurrent reconciles of the sessions loop (the one that creates a new session's objects).",
        8,
        aliases=("MAX_CONCURRENT_RECONCILES",),
    )
    workers_jobs: int = _opt("WORKERS_JOBS", "Concurrent reconciles of the runner jobs loop.", 4)
    workers_temp_content: int = _opt(
        "WORKERS_TEMP_CONTENT", "Concurrent reconciles of the temp content pods loop.", 2
    )
    workers_token_secrets: int = _opt(
        "WORKERS_TOKEN_SECRETS", "Concurrent reconciles of the token secrets loop.", 2
    )
    workers_projects: int = _opt(
        "WORKERS_PROJECTS", "Concurrent reconciles of the projects loop (one key per namespace).", 2
    )
    operator_namespace: str = _opt(
        "OPERATOR_NAMESPACE",
        "Namespace the operator runs in (Events about itself, Lease).",
        "ambient-code",
        aliases=("NAMESPACE",),
    )
    runner_image: str = _opt(
        "RUNNER_IMAGE",
        "Image of the runner container when the agent registry names none.",
        "quay.io/ambient_code/vteam_claude_runner:latest",
        aliases=("AMBIENT_CODE_RUNNER_IMAGE",),
    )
    runner_image_pull_policy: str = _opt(
        "RUNNER_IMAGE_PULL_POLICY",
        "imagePullPolicy of runner, state-sync and content containers.",
        "Always",
        aliases=("IMAGE_PULL_POLICY",),
    )
    runner_cpu_request: str = _opt("RUNNER_CPU_REQUEST", "CPU request of the runner container.", "500m")
    runner_memory_request: str = _opt("RUNNER_MEMORY_REQUEST", "Memory request of the runner.", "512Mi")
    runner_cpu_limit: str = _opt("RUNNER_CPU_LIMIT", "CPU limit of the runner container.", "2")
    runner_memory_limit: str = _opt("RUNNER_MEMORY_LIMIT", "Memory limit of the runner container.", "8Gi")
    runner_port: int = _opt("RUNNER_PORT", "Port of the runner's AG-UI server (Service port 'agui').", 8001)
    runner_node_selector: tuple[str, ...] = _opt(
        "RUNNER_NODE_SELECTOR", "Comma-separated key=value nodeSelector of runner pods.", ()
    )
    runner_pod_annotation_prefixes: tuple[str, ...] = _opt(
        "RUNNER_POD_ANNOTATION_PREFIXES",
        "Comma-separated annotation key prefixes copied from a session to its runner pod "
        "(for example sidecar or autoscaler hints).",
        (),
    )
    runner_active_deadline: int = _opt(
        "RUNNER_ACTIVE_DEADLINE",
        "activeDeadlineSeconds of every runner Job; 0 for none. A non-interactive session with "
        "spec.timeout gets timeout + --runner-deadline-grace instead.",
        0,
    )
    runner_deadline_grace: int = _opt(
        "RUNNER_DEADLINE_GRACE", "Seconds added to spec.timeout of a non-interactive session.", 60
    )
    pod_fs_group: int = _opt(
        "POD_FSGROUP",
        "fsGroup of runner and content pods, so a non-root runner can write a root-owned workspace "
        "volume; 0 leaves it unset.",
        0,
    )
    default_model: str = _opt("DEFAULT_MODEL", "LLM_MODEL when a session names none.", "claude-sonnet-4-6")
    storage_class: str = _opt(
        "STORAGE_CLASS", "StorageClass of workspace PVCs; cluster default when empty.", ""
    )
    workspace_size: str = _opt("WORKSPACE_SIZE", "Requested size of each workspace PVC.", "5Gi")
    content_image: str = _opt(
        "CONTENT_IMAGE", "Image of the temporary content pod.", "quay.io/ambient_code/vteam_content:latest"
    )
    temp_content_ttl: float = _opt(
        "TEMP_CONTENT_TTL", "Seconds a temporary content pod may stay idle before it is deleted.", 600.0
    )
    token_ttl: float = _opt(
        "TOKEN_TTL", "Seconds after which the runner's k8s-token is refreshed (< --token-expiration).", 2700.0
    )
    token_expiration: int = _opt(
        "TOKEN_EXPIRATION", "expirationSeconds asked of each runner TokenRequest.", 3600
    )
    token_audience: str = _opt(
        "TOKEN_AUDIENCE", "Audience of runner tokens; the API server's default audience when empty.", ""
    )
    token_refresh_jitter: float = _opt(
        "TOKEN_REFRESH_JITTER",
        "Fraction (0-0.5) of --token-ttl by which each session refreshes earlier, fixed per session, "
        "so tokens issued together do not all fall due at once.",
        0.1,
    )
    token_refresh_rate: float = _opt(
        "TOKEN_REFRESH_RATE",
        "Token refreshes per second across all sessions (0: unbounded); beyond it refreshes wait.",
        20.0,
    )
    token_refresh_burst: int = _opt(
        "TOKEN_REFRESH_BURST", "Token refreshes allowed at once before --token-refresh-rate applies.", 50
    )
    creating_timeout: float = _opt(
        "CREATING_TIMEOUT", "Seconds a session may stay in Creating before it fails.", 600.0
    )
    image_pull_grace: float = _opt(
        "IMAGE_PULL_GRACE",
        "Seconds an image pull or container config error may persist before the session fails.",
        60.0,
    )
    unschedulable_grace: float = _opt(
        "UNSCHEDULABLE_GRACE",
        "Seconds a runner pod may stay unschedulable before PodScheduled=False and a Warning Event "
        "report it (a pod waiting for its volume to bind is briefly unschedulable).",
        10.0,
    )
    job_ttl_after_finished: int = _opt(
        "JOB_TTL_AFTER_FINISHED",
        "Keep a finished runner Job this many seconds (ttlSecondsAfterFinished); -1 deletes it at once.",
        -1,
    )
    default_inactivity_timeout: int = _opt(
        "DEFAULT_INACTIVITY_TIMEOUT",
        "Seconds a Running session may stay idle before it is stopped, when neither its "
        "spec.inactivityTimeout nor its project's ProjectSettings inactivityTimeoutSeconds says; "
        "0 never stops idle sessions. Same env name as the platform's operator.",
        86400,
    )
    log_format: str = _opt("LOG_FORMAT", "Log format: json or text.", "text")
    log_level: str = _opt("LOG_LEVEL", "Log level: debug, info, warning, error.", "info")
    watch_inactivity_timeout: float = _opt(
        "WATCH_INACTIVITY_TIMEOUT",
        "Seconds without any byte (event or bookmark) after which a watch stream is replaced.",
        100.0,
    )
    shutdown_timeout: float = _opt(
        "SHUTDOWN_TIMEOUT", "Seconds to drain in-flight reconciles on SIGTERM.", 30.0
    )
    models_namespace: str = _opt(
        "MODELS_NAMESPACE",
        "Namespace of the models manifest ConfigMap ambient-models (key models.json), which is "
        "watched (default: --backend-namespace).",
        "",
    )
    models_manifest_path: str = _opt(
        "MODELS_MANIFEST_PATH",
        "Read the models manifest from this file (a mounted ConfigMap, for example "
        "/config/models/models.json) instead of watching its ConfigMap; a missing file means no "
        "manifest is in use.",
        "",
    )
    require_models_manifest: bool = _opt(
        "REQUIRE_MODELS_MANIFEST",
        "Hold every session start (ModelValid=Unknown/ManifestNotLoaded) while the models manifest "
        "does not exist, instead of running without one.",
        False,
    )
    workers_runner_sync: int = _opt(
        "WORKERS_RUNNER_SYNC",
        "Concurrent reconciles of the runner sync loop (the only loop that calls runners over HTTP).",
        4,
    )
    runner_url_template: str = _opt(
        "RUNNER_URL_TEMPLATE",
        "How a session's runner is reached; runner API paths are appended. Placeholders: {name} "
        "(session), {namespace}, {service} (session-<name>), {port} (the Service's 'agui' port). "
        "Change it for an operator running outside the cluster, or to point tests at a stand-in.",
        "http://{service}.{namespace}.svc.cluster.local:{port}",
    )
    runner_timeout: float = _opt("RUNNER_TIMEOUT", "Seconds one call to a runner may take.", 10.0)
    runner_sync_retry_max: float = _opt(
        "RUNNER_SYNC_RETRY_MAX",
        "Longest wait, in seconds, between retries of a change a runner has not taken yet "
        "(the wait doubles from 1s up to this).",
        60.0,
    )
    # The platform's runner contract (agent registry, credentials, observability, S3).
    backend_namespace: str = _opt(
        "BACKEND_NAMESPACE",
        "Namespace of the platform backend: source of the copied Secrets, the agent registry "
        "ConfigMap and the runners' allowed callers (default: --operator-namespace).",
        "",
    )
    agent_registry_configmap: str = _opt(
        "AGENT_REGISTRY_CONFIGMAP",
        "ConfigMap in --backend-namespace holding the agent registry (key agent-registry.json), "
        "watched: a change applies to the next runner created.",
        "ambient-agent-registry",
    )
    agent_registry_path: str = _opt(
        "AGENT_REGISTRY_FILE",
        "Agent registry file read once at start, used only while the ConfigMap is absent.",
        "",
        aliases=("AGENT_REGISTRY_PATH",),
    )
    default_runner_type: str = _opt(
        "DEFAULT_RUNNER_TYPE",
        "Runtime id of a session that names none (spec.runnerType or env RUNNER_TYPE).",
        "claude-agent-sdk",
    )
    state_sync_image: str = _opt(
        "STATE_SYNC_IMAGE",
        "Image of the init-hydrate and state-sync containers when the registry names none.",
        "quay.io/ambient_code/vteam_state_sync:latest",
    )
    require_runner_secret: bool = _opt(
        "REQUIRE_RUNNER_SECRET",
        "Keep a session Pending (SecretsReady=False/RunnerSecretMissing) until Secret "
        "ambient-runner-secrets exists in its namespace, when Vertex is off.",
        True,
    )
    runner_run_as_non_root: bool = _opt(
        "RUNNER_RUN_AS_NON_ROOT",
        "Set runAsNonRoot on runner pods; turn off for a runner or state-sync image that runs as root.",
        True,
    )
    use_vertex: bool = _opt(
        "USE_VERTEX",
        "Vertex AI mode: copy Secret ambient-vertex into each session namespace and mount it.",
        False,
        aliases=("CLAUDE_CODE_USE_VERTEX",),
    )
    cloud_ml_region: str = _opt("CLOUD_ML_REGION", "Vertex region passed to runners.", "")
    anthropic_vertex_project_id: str = _opt(
        "ANTHROPIC_VERTEX_PROJECT_ID", "Vertex project passed to runners.", ""
    )
    google_application_credentials: str = _opt(
        "GOOGLE_APPLICATION_CREDENTIALS", "Vertex credentials path inside runners (/app/vertex/...).", ""
    )
    langfuse_enabled: str = _opt(
        "LANGFUSE_ENABLED",
        "Langfuse tracing: any value but '', 0 or false copies ambient-admin-langfuse-secret.",
        "",
    )
    mlflow_tracing_enabled: str = _opt(
        "MLFLOW_TRACING_ENABLED",
        "MLflow tracing: any value but '', 0 or false copies ambient-admin-mlflow-observability-secret.",
        "",
    )
    google_oauth_client_id: str = _opt("GOOGLE_OAUTH_CLIENT_ID", "Passed to runners.", "")
    google_oauth_client_secret: str = _opt("GOOGLE_OAUTH_CLIENT_SECRET", "Passed to runners.", "")
    backend_public_url: str = _opt(
        "BACKEND_PUBLIC_URL", "Public backend URL; runners get <url>/oauth2callback.", ""
    )
    mcp_config_file: str = _opt("MCP_CONFIG_FILE", "MCP_CONFIG_FILE passed to runners.", "")
    s3_endpoint: str = _opt(
        "S3_ENDPOINT",
        "S3 endpoint of runtimes with persistence s3 (shared storage).",
        "https://s3.amazonaws.com",
    )
    s3_bucket: str = _opt("S3_BUCKET", "S3 bucket of runtimes with persistence s3.", "ambient-sessions")

    @property
    def platform_namespace(self) -> str:
        """Where the backend, its Secrets and the agent registry live."""
        return self.backend_namespace or self.operator_namespace

    def workers(self, loop: str) -> int:
        return int(getattr(self, "workers_" + loop.replace("-", "_")))

    def validate(self) -> None:
        """Refuse settings that would make the operator misbehave later rather than fail now."""
        problems: list[str] = []
        if not self.lease_duration > self.renew_deadline:
            problems.append("--lease-duration must be greater than --renew-deadline")
        if not self.renew_deadline > 1.2 * self.retry_period:
            problems.append("--renew-deadline must be greater than 1.2 x --retry-period")
        if self.retry_period <= 0:
            problems.append("--retry-period must be positive")
        for loop in LOOPS:
            if self.workers(loop) < 1:
                problems.append(f"--workers-{loop} must be at least 1")
        if self.token_ttl >= self.token_expiration:
            problems.append("--token-ttl must be shorter than --token-expiration")
        if self.token_expiration < 600:
            problems.append("--token-expiration must be at least 600 (the API server's minimum)")
        if self.default_inactivity_timeout < 0:
            problems.append("--default-inactivity-timeout must be 0 (never) or a number of seconds")
        try:
            self.runner_url_template.format(name="n", namespace="ns", service="s", port=1)
        except (KeyError, IndexError, ValueError):
            problems.append("--runner-url-template may use only {name}, {namespace}, {service} and {port}")
        if self.runner_timeout <= 0 or self.runner_sync_retry_max < 1:
            problems.append("--runner-timeout must be positive and --runner-sync-retry-max at least 1")
        if not 0 <= self.token_refresh_jitter <= 0.5:
            problems.append("--token-refresh-jitter must be between 0 and 0.5")
        if self.token_refresh_rate < 0 or self.token_refresh_burst < 1:
            problems.append("--token-refresh-rate must be >= 0 and --token-refresh-burst >= 1")
        if self.log_format not in ("json", "text"):
            problems.append("--log-format must be json or text")
        if self.runner_image_pull_policy not in ("Always", "IfNotPresent", "Never"):
            problems.append("--runner-image-pull-policy must be Always, IfNotPresent or Never")
        for flag, quantity in (
            ("--runner-cpu-request", self.runner_cpu_request),
            ("--runner-memory-request", self.runner_memory_request),
            ("--runner-cpu-limit", self.runner_cpu_limit),
            ("--runner-memory-limit", self.runner_memory_limit),
            ("--workspace-size", self.workspace_size),
        ):
            if not QUANTITY.fullmatch(quantity):
                problems.append(f"{flag} must be a Kubernetes quantity such as 500m, 2 or 8Gi")
        for flag, seconds in (
            ("--runner-deadline-grace", self.runner_deadline_grace),
            ("--runner-active-deadline", self.runner_active_deadline),
        ):
            if not 0 <= seconds <= 2**31 - 1:
                problems.append(f"{flag} must be between 0 and {2**31 - 1} seconds")
        vertex = (self.cloud_ml_region, self.anthropic_vertex_project_id, self.google_application_credentials)
        if self.use_vertex and not all(v.strip() for v in vertex):
            problems.append(
                "--use-vertex needs --cloud-ml-region, --anthropic-vertex-project-id and "
                "--google-application-credentials"
            )
        if not self.default_runner_type.strip():
            problems.append("--default-runner-type must not be empty")
        if problems:
            raise ValueError("; ".join(problems))


def _flag(f: dataclasses.Field[Any]) -> str:
    return str(f.metadata.get("flag") or "--" + f.name.replace("_", "-"))


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _convert(f: dataclasses.Field[Any], raw: str) -> Any:
    kind: type[Any] = type(f.default)
    if kind is bool:
        return _parse_bool(raw)
    if kind is tuple:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return kind(raw)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentic-operator",
        description="Runs AgenticSession resources as runner Jobs and keeps their status true.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run",
        help="run the operator",
        description="Run the operator. Every flag can also be set by the environment variable shown.",
    )
    sub.add_parser(
        "session-trigger",
        help="create or restart a scheduled session, as a scheduled session's CronJob does",
        description="Create, restart or follow up the session of a schedule, then exit (0: done, "
        "1: not done, one line on stderr says why). Configured by the environment only, as the "
        "platform's CronJobs set it: SESSION_TEMPLATE, PROJECT_NAMESPACE, SCHEDULED_SESSION_NAME, "
        "REUSE_LAST_SESSION, BACKEND_NAMESPACE; outside a pod also KUBECONFIG, BACKEND_API_URL "
        "and SERVICE_ACCOUNT_TOKEN_FILE. See the README, Scheduled sessions.",
    )
    for f in dataclasses.fields(OperatorConfig):
        env = f.metadata["env"]
        shown = ",".join(f.default) if isinstance(f.default, tuple) else f.default
        names = " | ".join((env, *f.metadata.get("aliases", ())))
        help_text = f"{f.metadata['help']} (default: {shown!r}) [env {names}]"
        if isinstance(f.default, bool):
            run.add_argument(
                _flag(f), dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            run.add_argument(_flag(f), dest=f.name, default=None, metavar=f.name.upper(), help=help_text)
    return parser


def config_from(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> OperatorConfig:
    """Flags win over env vars, env vars over defaults."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in dataclasses.fields(OperatorConfig):
        given = getattr(args, f.name, None)
        if given is not None:
            values[f.name] = given if isinstance(given, bool) else _convert(f, given)
        else:
            for env in (f.metadata["env"], *f.metadata.get("aliases", ())):
                if env in environ:
                    values[f.name] = _convert(f, environ[env])
                    break
    config = OperatorConfig(**values)
    config.validate()
    return config


def parse(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> OperatorConfig:
    args = build_parser().parse_args(argv)
    return config_from(args, environ)
