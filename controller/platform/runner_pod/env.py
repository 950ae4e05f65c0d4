"""Environment of the runner pod's containers, in the platform's order (§1.4-§1.6).

The operator's own variables carry the session's identity and credentials, so a user's
spec.environmentVariables never replaces them (PROTECTED_ENV, stricter than the original, which let
most be replaced); every other variable of the user replaces the operator's or the registry's value
in place, as the original does. Credentials only ever arrive by Secret reference.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, TypeGuard

from controller.config import OperatorConfig
from controller.names import ANNOTATION_FORCE_EXECUTE_PROMPT, TOKEN_KEY_AGUI, TOKEN_KEY_K8S, token_secret_name
from controller.platform.runner_pod.inputs import (
    LANGFUSE_SECRET,
    MLFLOW_SECRET,
    PodInputs,
    SecretKey,
    port_of,
)
from controller.platform.runner_spec import repo_name, unique_name
from controller.reconcilers.children import (
    WORKSPACE_MOUNT,
    as_mapping,
    as_str,
    parent_session_id,
    session_annotations,
    session_name,
    session_namespace,
    session_spec,
)

TOKEN_MOUNT = "/var/run/secrets/ambient"
BOT_TOKEN_FILE = "bot-token"
DEFAULT_BRANCH = "main"
GOOGLE_MCP_DIR = f"{WORKSPACE_MOUNT}/.google_workspace_mcp/credentials"
LANGFUSE_KEYS = ("LANGFUSE_ENABLED", "LANGFUSE_HOST", "LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY")
MLFLOW_KEYS = (
    "MLFLOW_TRACING_ENABLED",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_AUTH",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_WORKSPACE",
    "OBSERVABILITY_BACKENDS",
)
SYNC_INTERVAL = "60"
MAX_SYNC_SIZE = "1073741824"

PROTECTED_ENV = frozenset(
    {
        "AGENTIC_SESSION_NAME",
        "AGENTIC_SESSION_NAMESPACE",
        "SESSION_ID",
        "PROJECT_NAME",
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
        "BOT_TOKEN",
        "BOT_TOKEN_PATH",
        "BACKEND_API_URL",
        "USE_VERTEX",
        "CLAUDE_CODE_USE_VERTEX",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        *LANGFUSE_KEYS,
        *MLFLOW_KEYS,
    }
)
# Older backends pass the parent only through the env var; it is read as the continuation fallback.
_HONOURED_USER_ENV = frozenset({"PARENT_SESSION_ID"})
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Env = list[dict[str, Any]]


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


def user_env(session: Mapping[str, Any]) -> Mapping[str, Any]:
    return as_mapping(session_spec(session).get("environmentVariables"))


def protected_env_collisions(session: Mapping[str, Any]) -> list[str]:
    """User variables the operator ignores because it sets them itself, sorted for stable messages."""
    return sorted(
        key
        for key in user_env(session)
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


def is_interactive(spec: Mapping[str, Any]) -> bool:
    interactive = spec.get("interactive")
    return interactive if isinstance(interactive, bool) else True


def backend_api_url(config: OperatorConfig) -> str:
    return f"http://backend-service.{config.platform_namespace}.svc.cluster.local:8080/api"


def _value(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def _secret_ref(name: str, ref: SecretKey, optional: bool = False) -> dict[str, Any]:
    selector: dict[str, Any] = {"name": ref.secret, "key": ref.key}
    if optional:
        selector["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": selector}}


def _repos_and_workflow(session: Mapping[str, Any]) -> Env:
    env: Env = []
    repos = repos_payload(session)
    if repos:
        env.append(_value("REPOS_JSON", json.dumps(repos, separators=(",", ":"))))
    workflow = as_mapping(session_spec(session).get("activeWorkflow"))
    workflow_url = as_str(workflow.get("gitUrl")).strip()
    if workflow_url:
        env.append(_value("ACTIVE_WORKFLOW_GIT_URL", workflow_url))
        env.append(_value("ACTIVE_WORKFLOW_BRANCH", as_str(workflow.get("branch")).strip() or DEFAULT_BRANCH))
        workflow_path = as_str(workflow.get("path")).strip()
        if workflow_path:
            env.append(_value("ACTIVE_WORKFLOW_PATH", workflow_path))
    return env


def _s3_env(inputs: PodInputs) -> tuple[Env, Env]:
    """(endpoint and bucket, the two keys): empty strings when S3 is not configured (§1.9)."""
    s3 = inputs.s3
    if s3 is None:
        return (
            [_value("S3_ENDPOINT", ""), _value("S3_BUCKET", "")],
            [_value("AWS_ACCESS_KEY_ID", ""), _value("AWS_SECRET_ACCESS_KEY", "")],
        )
    return (
        [_value("S3_ENDPOINT", s3.endpoint), _value("S3_BUCKET", s3.bucket)],
        [
            _secret_ref("AWS_ACCESS_KEY_ID", s3.access_key),
            _secret_ref("AWS_SECRET_ACCESS_KEY", s3.secret_key),
        ],
    )


def _usable_user_env(session: Mapping[str, Any], warnings: list[str] | None) -> list[tuple[str, str]]:
    """The user's variables that may be applied, sorted; a warning for each one that may not."""
    found: list[tuple[str, str]] = []
    variables = user_env(session)
    for key in sorted(k for k in variables if isinstance(k, str)):
        value = variables[key]
        if key in _HONOURED_USER_ENV:
            continue
        problem = None
        if key in PROTECTED_ENV:
            problem = f"spec.environmentVariables.{key} was not applied: the operator sets it itself"
        elif not _ENV_NAME.fullmatch(key):
            problem = f"spec.environmentVariables.{_shorten(key)} was not applied: not a valid name"
        elif not isinstance(value, str):
            problem = f"spec.environmentVariables.{key} was not applied: its value is not a string"
        if problem is None:
            found.append((key, value))
        elif warnings is not None:
            warnings.append(problem)
    return found


def _append_absent(env: Env, pairs: list[tuple[str, str]]) -> None:
    present = {item["name"] for item in env}
    for key, value in pairs:
        if key not in present:
            env.append(_value(key, value))
            present.add(key)


def _replace_or_append(env: Env, pairs: list[tuple[str, str]]) -> None:
    index = {item["name"]: i for i, item in enumerate(env)}
    for key, value in pairs:
        if key in index:
            env[index[key]] = _value(key, value)
        else:
            index[key] = len(env)
            env.append(_value(key, value))


def _registry_env(inputs: PodInputs) -> list[tuple[str, str]]:
    return [(k, v) for k, v in inputs.runtime.env.items() if _ENV_NAME.fullmatch(k)]


def init_env(session: Mapping[str, Any], config: OperatorConfig, inputs: PodInputs) -> Env:
    """init-hydrate (§1.4). BOT_TOKEN is the one token passed as env: hydrate.sh reads only the env."""
    name, namespace = session_name(session), session_namespace(session)
    location, keys = _s3_env(inputs)
    env: Env = [_value("SESSION_NAME", name), _value("NAMESPACE", namespace), *location, *keys]
    env.append(_value("BACKEND_API_URL", backend_api_url(config)))
    env.append(_value("PROJECT_NAME", namespace))
    env.extend(_repos_and_workflow(session))
    env.append(_secret_ref("BOT_TOKEN", SecretKey(token_secret_name(name), TOKEN_KEY_K8S)))
    _append_absent(env, _usable_user_env(session, None))
    return env


def state_sync_env(session: Mapping[str, Any], inputs: PodInputs) -> Env:
    """state-sync (§1.6)."""
    location, keys = _s3_env(inputs)
    env: Env = [
        _value("SESSION_NAME", session_name(session)),
        _value("NAMESPACE", session_namespace(session)),
        *location,
        _value("SYNC_INTERVAL", SYNC_INTERVAL),
        _value("MAX_SYNC_SIZE", MAX_SYNC_SIZE),
        *keys,
    ]
    _append_absent(env, _registry_env(inputs))
    _append_absent(env, _usable_user_env(session, None))
    return env


def _vertex_env(config: OperatorConfig, on: bool) -> Env:
    if not on:
        return [_value("USE_VERTEX", "0"), _value("CLAUDE_CODE_USE_VERTEX", "0")]
    return [
        _value("USE_VERTEX", "1"),
        _value("CLAUDE_CODE_USE_VERTEX", "1"),
        _value("CLOUD_ML_REGION", config.cloud_ml_region),
        _value("ANTHROPIC_VERTEX_PROJECT_ID", config.anthropic_vertex_project_id),
        _value("GOOGLE_APPLICATION_CREDENTIALS", config.google_application_credentials),
        _value("GCE_METADATA_HOST", "metadata.invalid"),
        _value("GCE_METADATA_TIMEOUT", "1"),
    ]


def runner_env(
    session: Mapping[str, Any], config: OperatorConfig, is_resume: bool, inputs: PodInputs
) -> tuple[Env, list[str]]:
    """The runner container's env (§1.5), and one warning per user variable that was not applied."""
    spec = session_spec(session)
    name, namespace = session_name(session), session_namespace(session)
    warnings: list[str] = []
    env: Env = []

    def put(key: str, value: str) -> None:
        env.append(_value(key, value))

    put("DEBUG", "true")
    put("AGENTIC_SESSION_NAME", name)
    put("AGENTIC_SESSION_NAMESPACE", namespace)
    put("SESSION_ID", name)
    put("PROJECT_NAME", namespace)
    put("WORKSPACE_PATH", WORKSPACE_MOUNT)
    put("ARTIFACTS_DIR", "artifacts")
    put("AGUI_PORT", str(port_of(inputs.runtime, config)))
    env.append(_secret_ref("AGUI_TOKEN", SecretKey(token_secret_name(name), TOKEN_KEY_AGUI)))
    put("BOT_TOKEN_PATH", f"{TOKEN_MOUNT}/{BOT_TOKEN_FILE}")
    put("GOOGLE_MCP_CREDENTIALS_DIR", GOOGLE_MCP_DIR)
    put("GOOGLE_OAUTH_CLIENT_ID", config.google_oauth_client_id)
    put("GOOGLE_OAUTH_CLIENT_SECRET", config.google_oauth_client_secret)
    if config.backend_public_url:
        put("GOOGLE_OAUTH_REDIRECT_URI", f"{config.backend_public_url}/oauth2callback")
    if config.mcp_config_file.strip():
        put("MCP_CONFIG_FILE", config.mcp_config_file)
    mcp = spec.get("mcpServers")
    if isinstance(mcp, Mapping) and mcp:
        try:
            put("CUSTOM_MCP_SERVERS", json.dumps(mcp, sort_keys=True, separators=(",", ":")))
        except (TypeError, ValueError, RecursionError):
            warnings.append("spec.mcpServers was not applied: it cannot be written as JSON")
    user = as_mapping(spec.get("userContext"))
    if as_str(user.get("userId")).strip():
        put("USER_ID", as_str(user.get("userId")).strip())
    if as_str(user.get("displayName")).strip():
        put("USER_NAME", as_str(user.get("displayName")).strip())
    put("INITIAL_PROMPT", as_str(spec.get("initialPrompt")))
    llm = as_mapping(spec.get("llmSettings"))
    put("LLM_MODEL", as_str(llm.get("model")).strip() or config.default_model)
    temperature = _finite_float(llm.get("temperature"))
    if temperature is not None:
        put("LLM_TEMPERATURE", f"{temperature:.2f}")
    if _is_int(llm.get("maxTokens")):
        put("LLM_MAX_TOKENS", str(llm["maxTokens"]))
    put("USE_AGUI", "true")
    put("INTERACTIVE", "true" if is_interactive(spec) else "false")
    if _is_int(spec.get("timeout")):
        put("TIMEOUT", str(spec["timeout"]))
    put("BACKEND_API_URL", backend_api_url(config))
    if inputs.langfuse:
        env.extend(_secret_ref(k, SecretKey(LANGFUSE_SECRET, k), optional=True) for k in LANGFUSE_KEYS)
    if inputs.mlflow:
        env.extend(_secret_ref(k, SecretKey(MLFLOW_SECRET, k), optional=True) for k in MLFLOW_KEYS)
    env.extend(_vertex_env(config, inputs.vertex))
    parent = parent_session_id(session)
    if parent:
        put("PARENT_SESSION_ID", parent)
    forced = as_str(session_annotations(session).get(ANNOTATION_FORCE_EXECUTE_PROMPT)).strip().lower()
    if is_resume and forced != "true":
        put("IS_RESUME", "true")
    env.extend(_repos_and_workflow(session))
    _append_absent(env, _registry_env(inputs))
    _replace_or_append(env, _usable_user_env(session, warnings))
    if isinstance(spec.get("runnerType"), str) and spec["runnerType"].strip():
        # The runtime chosen by spec.runnerType tells its own bridge which one it is.
        _replace_or_append(env, [("RUNNER_TYPE", inputs.runtime.id)])
    return env, warnings
