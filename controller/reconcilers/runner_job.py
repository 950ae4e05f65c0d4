"""The runner Job and its environment: the contract between the operator and the runner image.

The env var names and formats are what the platform's runner reads, so they follow the original
operator. The operator's own variables always win over the user's spec.environmentVariables: a user
could otherwise redirect the runner's token, port or session identity.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, TypeGuard

from controller.config import OperatorConfig
from controller.names import (
    ANNOTATION_FORCE_EXECUTE_PROMPT,
    ANNOTATION_SESSION_NAME,
    APP_RUNNER,
    COMPONENT_RUNNER,
    LABEL_APP,
    TOKEN_KEY_AGUI,
    TOKEN_KEY_K8S,
    child_labels,
    runner_job_name,
    runner_sa_name,
    token_secret_name,
)
from controller.platform.runner_spec import repo_name, unique_name
from controller.reconcilers.children import (
    WORKSPACE_MOUNT,
    as_mapping,
    as_str,
    child_metadata,
    parent_session_id,
    restricted_container_security,
    restricted_pod_security,
    session_annotations,
    session_name,
    session_namespace,
    session_spec,
    workspace_claim_name,
)

RUNNER_CONTAINER = "ambient-code-runner"
TOKEN_MOUNT = "/var/run/secrets/ambient"
BOT_TOKEN_FILE = "bot-token"
DEFAULT_BRANCH = "main"

PROTECTED_ENV = frozenset(
    {
        "AGENTIC_SESSION_NAME",
        "AGENTIC_SESSION_NAMESPACE",
        "SESSION_ID",
        "INITIAL_PROMPT",
        "LLM_MODEL",
        "LLM_TEMPERATURE",
        "LLM_MAX_TOKENS",
        "REPOS_JSON",
        "ACTIVE_WORKFLOW_GIT_URL",
        "ACTIVE_WORKFLOW_BRANCH",
        "ACTIVE_WORKFLOW_PATH",
        "INTERACTIVE",
        "TIMEOUT",
        "PARENT_SESSION_ID",
        "IS_RESUME",
        "USER_ID",
        "USER_NAME",
        "CUSTOM_MCP_SERVERS",
        "WORKSPACE_PATH",
        "AGUI_PORT",
        "AGUI_TOKEN",
        "BOT_TOKEN_PATH",
    }
)
# Older backends pass the parent only through the env var; it is read as the continuation fallback.
_HONOURED_USER_ENV = frozenset({"PARENT_SESSION_ID"})
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _shorten(text: str, limit: int = 64) -> str:
    """User-chosen keys end up in Events; a huge one must not flood them."""
    return text if len(text) <= limit else text[:limit] + "..."


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite_float(value: Any) -> float | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _user_env(session: Mapping[str, Any]) -> Mapping[str, Any]:
    return as_mapping(session_spec(session).get("environmentVariables"))


def protected_env_collisions(session: Mapping[str, Any]) -> list[str]:
    """User variables the operator ignores because it sets them itself, sorted for stable messages."""
    return sorted(
        key
        for key in _user_env(session)
        if isinstance(key, str) and key in PROTECTED_ENV and key not in _HONOURED_USER_ENV
    )


def repos_payload(session: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Repos as the runner receives them; a repeated name gets a numeric suffix so clones cannot collide."""
    repos = session_spec(session).get("repos")
    if not isinstance(repos, list | tuple):
        return []
    payload: list[dict[str, Any]] = []
    taken: set[str] = set()
    for index, repo in enumerate(repos):
        url = as_str(as_mapping(repo).get("url")).strip()
        if not url:
            continue
        name = unique_name(repo_name(url) or f"repo-{index + 1}", taken)
        auto_push = as_mapping(repo).get("autoPush")
        payload.append(
            {
                "url": url,
                "branch": as_str(as_mapping(repo).get("branch")) or DEFAULT_BRANCH,
                "autoPush": auto_push if isinstance(auto_push, bool) else False,
                "name": name,
            }
        )
    return payload


def _is_interactive(spec: Mapping[str, Any]) -> bool:
    interactive = spec.get("interactive")
    return interactive if isinstance(interactive, bool) else True


def runner_env(
    session: Mapping[str, Any], config: OperatorConfig, is_resume: bool
) -> tuple[list[dict[str, Any]], list[str]]:
    """The runner's env, and one warning per user variable that was not applied."""
    spec = session_spec(session)
    name = session_name(session)
    env: list[dict[str, Any]] = []

    def put(key: str, value: str) -> None:
        env.append({"name": key, "value": value})

    put("AGENTIC_SESSION_NAME", name)
    put("AGENTIC_SESSION_NAMESPACE", session_namespace(session))
    put("SESSION_ID", name)
    put("INITIAL_PROMPT", as_str(spec.get("initialPrompt")))
    llm = as_mapping(spec.get("llmSettings"))
    put("LLM_MODEL", as_str(llm.get("model")).strip() or config.default_model)
    temperature = _finite_float(llm.get("temperature"))
    if temperature is not None:
        put("LLM_TEMPERATURE", f"{temperature:.2f}")
    if _is_int(llm.get("maxTokens")):
        put("LLM_MAX_TOKENS", str(llm["maxTokens"]))
    put("REPOS_JSON", json.dumps(repos_payload(session), separators=(",", ":")))
    workflow = as_mapping(spec.get("activeWorkflow"))
    workflow_url = as_str(workflow.get("gitUrl")).strip()
    if workflow_url:
        put("ACTIVE_WORKFLOW_GIT_URL", workflow_url)
        put("ACTIVE_WORKFLOW_BRANCH", as_str(workflow.get("branch")).strip() or DEFAULT_BRANCH)
        workflow_path = as_str(workflow.get("path")).strip()
        if workflow_path:
            put("ACTIVE_WORKFLOW_PATH", workflow_path)
    put("INTERACTIVE", "true" if _is_interactive(spec) else "false")
    if _is_int(spec.get("timeout")):
        put("TIMEOUT", str(spec["timeout"]))
    parent = parent_session_id(session)
    if parent:
        put("PARENT_SESSION_ID", parent)
    annotations = session_annotations(session)
    if is_resume and as_str(annotations.get(ANNOTATION_FORCE_EXECUTE_PROMPT)).strip().lower() != "true":
        put("IS_RESUME", "true")
    user = as_mapping(spec.get("userContext"))
    if as_str(user.get("userId")):
        put("USER_ID", as_str(user.get("userId")))
    if as_str(user.get("displayName")):
        put("USER_NAME", as_str(user.get("displayName")))
    warnings: list[str] = []
    if isinstance(spec.get("mcpServers"), Mapping):
        try:
            put("CUSTOM_MCP_SERVERS", json.dumps(spec["mcpServers"], sort_keys=True, separators=(",", ":")))
        except (TypeError, ValueError, RecursionError):
            warnings.append("spec.mcpServers was not applied: it cannot be written as JSON")
    put("WORKSPACE_PATH", WORKSPACE_MOUNT)
    put("AGUI_PORT", str(config.runner_port))
    env.append(
        {
            "name": "AGUI_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": token_secret_name(name), "key": TOKEN_KEY_AGUI}},
        }
    )
    put("BOT_TOKEN_PATH", f"{TOKEN_MOUNT}/{BOT_TOKEN_FILE}")

    user_env = _user_env(session)
    for key in sorted(k for k in user_env if isinstance(k, str)):
        value = user_env[key]
        if key in _HONOURED_USER_ENV:
            continue
        if key in PROTECTED_ENV:
            warnings.append(f"spec.environmentVariables.{key} was not applied: the operator sets it itself")
        elif not _ENV_NAME.fullmatch(key):
            warnings.append(f"spec.environmentVariables.{_shorten(key)} was not applied: not a valid name")
        elif not isinstance(value, str):
            warnings.append(f"spec.environmentVariables.{key} was not applied: its value is not a string")
        else:
            put(key, value)
    return env, warnings


def _node_selector(config: OperatorConfig) -> dict[str, str]:
    selector: dict[str, str] = {}
    for entry in config.runner_node_selector:
        key, sep, value = entry.partition("=")
        if sep and key.strip():
            selector[key.strip()] = value.strip()
    return selector


def _pod_annotations(session: Mapping[str, Any], config: OperatorConfig) -> dict[str, str]:
    """Copies hints (sidecars, autoscalers) the admin allows, and the full session name for event mapping."""
    prefixes = tuple(p for p in config.runner_pod_annotation_prefixes if p)
    copied = {
        key: value
        for key, value in session_annotations(session).items()
        if isinstance(key, str) and isinstance(value, str) and prefixes and key.startswith(prefixes)
    }
    copied[ANNOTATION_SESSION_NAME] = session_name(session)
    return copied


def active_deadline_seconds(session: Mapping[str, Any], config: OperatorConfig) -> int | None:
    """spec.timeout is enforced for batch sessions (the original only passed it on); the grace lets the
    runner report its own timeout before Kubernetes kills it."""
    spec = session_spec(session)
    timeout = spec.get("timeout")
    if not _is_interactive(spec) and _is_int(timeout) and timeout > 0:
        return timeout + config.runner_deadline_grace
    if config.runner_active_deadline > 0:
        return config.runner_active_deadline
    return None


def build_runner_job(
    session: Mapping[str, Any], config: OperatorConfig, is_resume: bool
) -> tuple[dict[str, Any], list[str]]:
    """One attempt only (backoffLimit 0): a failed agent run is reported, not silently re-run."""
    name = session_name(session)
    env, warnings = runner_env(session, config, is_resume)
    container: dict[str, Any] = {
        "name": RUNNER_CONTAINER,
        "image": config.runner_image,
        "imagePullPolicy": config.runner_image_pull_policy,
        "ports": [{"name": "agui", "containerPort": config.runner_port, "protocol": "TCP"}],
        "env": env,
        "resources": {
            "requests": {"cpu": config.runner_cpu_request, "memory": config.runner_memory_request},
            "limits": {"cpu": config.runner_cpu_limit, "memory": config.runner_memory_limit},
        },
        "readinessProbe": {
            "httpGet": {"path": "/health", "port": "agui"},
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "securityContext": restricted_container_security(),
        "volumeMounts": [
            {"name": "workspace", "mountPath": WORKSPACE_MOUNT},
            {"name": "runner-token", "mountPath": TOKEN_MOUNT, "readOnly": True},
        ],
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": runner_sa_name(name),
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 60,
        "securityContext": restricted_pod_security(config.pod_fs_group),
        "containers": [container],
        "volumes": [
            {"name": "workspace", "persistentVolumeClaim": {"claimName": workspace_claim_name(session)}},
            {
                "name": "runner-token",
                "secret": {
                    "secretName": token_secret_name(name),
                    "items": [{"key": TOKEN_KEY_K8S, "path": BOT_TOKEN_FILE}],
                    "defaultMode": 0o440,
                },
            },
        ],
    }
    node_selector = _node_selector(config)
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    job_spec: dict[str, Any] = {"backoffLimit": 0}
    deadline = active_deadline_seconds(session, config)
    if deadline is not None:
        job_spec["activeDeadlineSeconds"] = deadline
    if config.job_ttl_after_finished >= 0:
        job_spec["ttlSecondsAfterFinished"] = config.job_ttl_after_finished
    job_spec["template"] = {
        "metadata": {
            "labels": {**child_labels(name, COMPONENT_RUNNER), LABEL_APP: APP_RUNNER},
            "annotations": _pod_annotations(session, config),
        },
        "spec": pod_spec,
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": child_metadata(session, runner_job_name(name), COMPONENT_RUNNER),
        "spec": job_spec,
    }
    return job, warnings
