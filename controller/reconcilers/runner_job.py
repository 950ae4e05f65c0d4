"""The runner Job: the platform's runner pod (controller/platform/runner_pod) wrapped in a Job.

The pod's env, volumes and containers follow the platform's contract and live in their own modules;
this module adds what is the operator's own: one attempt only, the deadline of a batch session,
the finished-Job TTL, node selection and the annotations copied onto the pod.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.config import OperatorConfig
from controller.names import (
    ANNOTATION_SESSION_NAME,
    APP_RUNNER,
    COMPONENT_RUNNER,
    LABEL_APP,
    child_labels,
    runner_job_name,
    runner_sa_name,
)
from controller.platform.runner_pod import containers
from controller.platform.runner_pod.env import (
    BOT_TOKEN_FILE,
    DEFAULT_BRANCH,
    PROTECTED_ENV,
    TOKEN_MOUNT,
    is_interactive,
    protected_env_collisions,
    repos_payload,
)
from controller.platform.runner_pod.env import runner_env as _runner_env
from controller.platform.runner_pod.inputs import DEFAULT_GRACE, PodInputs, default_inputs
from controller.platform.runner_pod.volumes import volumes
from controller.platform.runner_spec import repo_name
from controller.reconcilers.children import (
    child_metadata,
    session_annotations,
    session_name,
    session_spec,
)

RUNNER_CONTAINER = containers.RUNNER_CONTAINER

__all__ = [
    "BOT_TOKEN_FILE",
    "DEFAULT_BRANCH",
    "PROTECTED_ENV",
    "RUNNER_CONTAINER",
    "TOKEN_MOUNT",
    "active_deadline_seconds",
    "build_runner_job",
    "protected_env_collisions",
    "repo_name",
    "repos_payload",
    "runner_env",
]


def runner_env(
    session: Mapping[str, Any], config: OperatorConfig, is_resume: bool, inputs: PodInputs | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """The runner container's env, and one warning per user variable that was not applied."""
    return _runner_env(session, config, is_resume, inputs or default_inputs(config))


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
    if (
        not is_interactive(spec)
        and isinstance(timeout, int)
        and not isinstance(timeout, bool)
        and timeout > 0
    ):
        return timeout + config.runner_deadline_grace
    if config.runner_active_deadline > 0:
        return config.runner_active_deadline
    return None


def build_runner_job(
    session: Mapping[str, Any], config: OperatorConfig, is_resume: bool, inputs: PodInputs | None = None
) -> tuple[dict[str, Any], list[str]]:
    """One attempt only (backoffLimit 0): a failed agent run is reported, not silently re-run."""
    inputs = inputs or default_inputs(config)
    name = session_name(session)
    runner, warnings = containers.runner_container(session, config, is_resume, inputs)
    grace = inputs.runtime.termination_grace
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": runner_sa_name(name),
        "automountServiceAccountToken": inputs.mlflow and inputs.mlflow_kubernetes_auth,
        "terminationGracePeriodSeconds": grace if grace > 0 else DEFAULT_GRACE,
        "securityContext": containers.pod_security(config),
    }
    init = containers.init_containers(session, config, inputs)
    if init:
        pod_spec["initContainers"] = init
    pod_spec["containers"] = [runner, *containers.sidecars(session, config, inputs)]
    pod_spec["volumes"] = volumes(session, inputs)
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
