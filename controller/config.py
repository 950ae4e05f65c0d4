"""Operator configuration: one dataclass, filled from flags, then env vars, then defaults.

Every field declares its flag, env var and help text in one place, so `--help` can never drift from
what the code reads. Env vars let the Deployment configure the operator without a long args list.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

LOOPS = ("sessions", "jobs", "temp-content", "token-secrets")
MANAGED_NAMESPACE_LABEL = "ambient-code.io/managed"


def _opt(env: str, help: str, default: Any, flag: str | None = None) -> Any:
    return field(default=default, metadata={"env": env, "help": help, "flag": flag})


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
    )
    workers_jobs: int = _opt("WORKERS_JOBS", "Concurrent reconciles of the runner jobs loop.", 4)
    workers_temp_content: int = _opt(
        "WORKERS_TEMP_CONTENT", "Concurrent reconciles of the temp content pods loop.", 2
    )
    workers_token_secrets: int = _opt(
        "WORKERS_TOKEN_SECRETS", "Concurrent reconciles of the token secrets loop.", 2
    )
    operator_namespace: str = _opt(
        "OPERATOR_NAMESPACE", "Namespace the operator runs in (Events about itself, Lease).", "ambient-code"
    )
    runner_image: str = _opt(
        "RUNNER_IMAGE", "Image of the runner container.", "quay.io/ambient_code/vteam_claude_runner:latest"
    )
    runner_image_pull_policy: str = _opt(
        "RUNNER_IMAGE_PULL_POLICY", "imagePullPolicy of runner and content pods.", "IfNotPresent"
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
        "watched (default: the operator namespace).",
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
        if not 0 <= self.token_refresh_jitter <= 0.5:
            problems.append("--token-refresh-jitter must be between 0 and 0.5")
        if self.token_refresh_rate < 0 or self.token_refresh_burst < 1:
            problems.append("--token-refresh-rate must be >= 0 and --token-refresh-burst >= 1")
        if self.log_format not in ("json", "text"):
            problems.append("--log-format must be json or text")
        if self.runner_image_pull_policy not in ("Always", "IfNotPresent", "Never"):
            problems.append("--runner-image-pull-policy must be Always, IfNotPresent or Never")
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
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run",
        help="run the operator",
        description="Run the operator. Every flag can also be set by the environment variable shown.",
    )
    for f in dataclasses.fields(OperatorConfig):
        env = f.metadata["env"]
        shown = ",".join(f.default) if isinstance(f.default, tuple) else f.default
        help_text = f"{f.metadata['help']} (default: {shown!r}) [env {env}]"
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
        elif f.metadata["env"] in environ:
            values[f.name] = _convert(f, environ[f.metadata["env"]])
    config = OperatorConfig(**values)
    config.validate()
    return config


def parse(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> OperatorConfig:
    args = build_parser().parse_args(argv)
    return config_from(args, environ)
