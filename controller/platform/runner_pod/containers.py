"""The runner pod's containers: init-hydrate, the runner, and the state-sync sidecar (§1.4-§1.6)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.config import OperatorConfig
from controller.platform.runner_pod import env as runner_env_module
from controller.platform.runner_pod import volumes
from controller.platform.runner_pod.inputs import (
    INTEGRATION_SECRETS,
    RUNNER_SECRETS,
    PodInputs,
    port_of,
    uses_init_container,
    uses_state_sync,
)

RUNNER_CONTAINER = "ambient-code-runner"
INIT_CONTAINER = "init-hydrate"
STATE_SYNC_CONTAINER = "state-sync"
# Legacy: copies Google MCP credentials into the workspace; harmless when nothing is there to copy.
POST_START = (
    "mkdir -p /workspace/.google_workspace_mcp/credentials && "
    "cp -r /app/.google_workspace_mcp/credentials/* /workspace/.google_workspace_mcp/credentials/ "
    "2>/dev/null || true"
)

Container = dict[str, Any]


def container_security(config: OperatorConfig) -> dict[str, Any]:
    """The platform's container context plus ours: seccomp, and runAsNonRoot unless turned off."""
    context: dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if config.runner_run_as_non_root:
        context["runAsNonRoot"] = True
    return context


def pod_security(config: OperatorConfig) -> dict[str, Any]:
    context: dict[str, Any] = {"seccompProfile": {"type": "RuntimeDefault"}}
    if config.runner_run_as_non_root:
        context["runAsNonRoot"] = True
    if config.pod_fs_group > 0:
        context.update(fsGroup=config.pod_fs_group, fsGroupChangePolicy="OnRootMismatch")
    return context


def _resources(config: OperatorConfig, inputs: PodInputs) -> dict[str, Any]:
    """The flags, each of the four values overridden by the registry entry when it names one."""
    chosen = {
        "requests": {"cpu": config.runner_cpu_request, "memory": config.runner_memory_request},
        "limits": {"cpu": config.runner_cpu_limit, "memory": config.runner_memory_limit},
    }
    for part, values in inputs.runtime.resources.items():
        if part in chosen:
            chosen[part].update({k: v for k, v in values.items() if k in ("cpu", "memory")})
    return chosen


def _probe(port: int, delay: int, period: int, timeout: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": "/health", "port": port},
        "initialDelaySeconds": delay,
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": 3,
    }


def env_from(inputs: PodInputs) -> list[dict[str, Any]]:
    """The integration Secret when it exists; the runner's API keys unless Vertex supplies them."""
    found: list[dict[str, Any]] = []
    if inputs.integration_secret:
        found.append({"secretRef": {"name": INTEGRATION_SECRETS}})
    if not inputs.vertex:
        ref: dict[str, Any] = {"name": RUNNER_SECRETS}
        if inputs.runner_secret_optional:
            ref["optional"] = True
        found.append({"secretRef": ref})
    return found


def state_sync_image(config: OperatorConfig, inputs: PodInputs) -> str:
    return inputs.runtime.state_sync_image or config.state_sync_image


def runner_container(
    session: Mapping[str, Any], config: OperatorConfig, is_resume: bool, inputs: PodInputs
) -> tuple[Container, list[str]]:
    env, warnings = runner_env_module.runner_env(session, config, is_resume, inputs)
    port = port_of(inputs.runtime, config)
    container: Container = {
        "name": RUNNER_CONTAINER,
        "image": inputs.runtime.image or config.runner_image,
        "imagePullPolicy": config.runner_image_pull_policy,
        "ports": [{"name": "agui", "containerPort": port, "protocol": "TCP"}],
        "env": env,
        "envFrom": env_from(inputs),
        "resources": _resources(config, inputs),
        "readinessProbe": _probe(port, 3, 5, 2),
        "livenessProbe": _probe(port, 20, 30, 5),
        "lifecycle": {"postStart": {"exec": {"command": ["/bin/sh", "-c", POST_START]}}},
        "securityContext": container_security(config),
        "volumeMounts": volumes.runner_mounts(session, inputs),
    }
    return container, warnings


def init_containers(session: Mapping[str, Any], config: OperatorConfig, inputs: PodInputs) -> list[Container]:
    if not uses_init_container(inputs.runtime):
        return []
    return [
        {
            "name": INIT_CONTAINER,
            "image": state_sync_image(config, inputs),
            "imagePullPolicy": config.runner_image_pull_policy,
            "command": ["/usr/local/bin/hydrate.sh"],
            "env": runner_env_module.init_env(session, config, inputs),
            "securityContext": container_security(config),
            "volumeMounts": volumes.workspace_mounts(session, inputs),
        }
    ]


def sidecars(session: Mapping[str, Any], config: OperatorConfig, inputs: PodInputs) -> list[Container]:
    if not uses_state_sync(inputs.runtime):
        return []
    return [
        {
            "name": STATE_SYNC_CONTAINER,
            "image": state_sync_image(config, inputs),
            "imagePullPolicy": config.runner_image_pull_policy,
            "command": ["/usr/local/bin/sync.sh"],
            "env": runner_env_module.state_sync_env(session, inputs),
            "resources": {
                "requests": {"cpu": "100m", "memory": "128Mi"},
                "limits": {"cpu": "1000m", "memory": "1Gi"},
            },
            "securityContext": container_security(config),
            "volumeMounts": volumes.workspace_mounts(session, inputs),
        }
    ]
