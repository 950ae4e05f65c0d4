"""Manifests of a session's children, as the exact JSON the API server expects.

Builders are pure so the shape of every child can be tested as data, without a cluster. They accept
any session object and never raise: a malformed spec is reported by validation, and a builder given
one simply leaves out what it cannot use. The runner Job lives in `runner_job.py`.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from controller.config import OperatorConfig
from controller.names import (
    ANNOTATION_CREATED_BY_USER_ID,
    ANNOTATION_PARENT_SESSION,
    ANNOTATION_SESSION_NAME,
    ANNOTATION_TOKEN_REFRESHED_AT,
    API_VERSION,
    APP_TEMP_CONTENT,
    COMPONENT_RUNNER,
    COMPONENT_RUNNER_RBAC,
    COMPONENT_RUNNER_TOKEN,
    COMPONENT_SESSION_SERVICE,
    COMPONENT_TEMP_CONTENT,
    COMPONENT_WORKSPACE,
    GROUP,
    KIND,
    LABEL_APP,
    LABEL_COMPONENT,
    LABEL_SESSION,
    PLURAL,
    TOKEN_KEY_AGUI,
    TOKEN_KEY_K8S,
    child_labels,
    runner_role_name,
    runner_rolebinding_name,
    runner_sa_name,
    session_label_value,
    session_service_name,
    temp_content_pod_name,
    temp_content_service_name,
    token_secret_name,
    workspace_pvc_name,
)

WORKSPACE_MOUNT = "/workspace"
TEMP_CONTENT_PORT = 8080


def restricted_pod_security(fs_group: int = 0) -> dict[str, Any]:
    """The Pod Security "restricted" profile, so children run in namespaces that enforce it.

    With an fsGroup the kubelet makes the workspace volume group-writable for the non-root user,
    which volumes provisioned as root-owned need; OnRootMismatch avoids a full chown per start.
    """
    context: dict[str, Any] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    if fs_group > 0:
        context.update(fsGroup=fs_group, fsGroupChangePolicy="OnRootMismatch")
    return context


def restricted_container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


# Reading a session that may be malformed.


def as_mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def as_str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def session_metadata(session: Mapping[str, Any]) -> Mapping[str, Any]:
    return as_mapping(session.get("metadata")) if isinstance(session, Mapping) else {}


def session_name(session: Mapping[str, Any]) -> str:
    return as_str(session_metadata(session).get("name"))


def session_namespace(session: Mapping[str, Any]) -> str:
    return as_str(session_metadata(session).get("namespace"))


def session_annotations(session: Mapping[str, Any]) -> Mapping[str, Any]:
    return as_mapping(session_metadata(session).get("annotations"))


def session_spec(session: Mapping[str, Any]) -> Mapping[str, Any]:
    return as_mapping(session.get("spec")) if isinstance(session, Mapping) else {}


# Metadata shared by every child.


def owner_reference(session: Mapping[str, Any]) -> dict[str, Any]:
    """Controller reference, so garbage collection removes children with their session.

    No blockOwnerDeletion: under the OwnerReferencesPermissionEnforcement admission plugin (on by
    default in OpenShift) setting it needs update on agenticsessions/finalizers, a permission the
    operator otherwise has no use for; background deletion does not need it.
    """
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": session_name(session),
        "uid": as_str(session_metadata(session).get("uid")),
        "controller": True,
    }


def child_metadata(
    session: Mapping[str, Any],
    name: str,
    component: str,
    annotations: Mapping[str, str] | None = None,
    extra_labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Labels are bounded, so the full session name rides along as an annotation for event mapping."""
    full_name = session_name(session)
    labels = child_labels(full_name, component)
    if extra_labels:
        labels.update(extra_labels)
    return {
        "name": name,
        "namespace": session_namespace(session),
        "labels": labels,
        "annotations": {**(annotations or {}), ANNOTATION_SESSION_NAME: full_name},
        "ownerReferences": [owner_reference(session)],
    }


# Workspace.


def parent_session_id(session: Mapping[str, Any]) -> str | None:
    """The session this one continues, if any.

    The annotation is what the backend writes today; older backends only set the env var, which the
    original operator honoured as a fallback.
    """
    from_annotation = as_str(session_annotations(session).get(ANNOTATION_PARENT_SESSION)).strip()
    if from_annotation:
        return from_annotation
    env = as_mapping(session_spec(session).get("environmentVariables"))
    from_env = as_str(env.get("PARENT_SESSION_ID")).strip()
    return from_env or None


def workspace_claim_name(session: Mapping[str, Any]) -> str:
    """A continuation works in its parent's workspace, so its files carry over."""
    return workspace_pvc_name(parent_session_id(session) or session_name(session))


def build_workspace_pvc(session: Mapping[str, Any], config: OperatorConfig) -> dict[str, Any]:
    """The session's own workspace; a continuation mounts its parent's instead (workspace_claim_name)."""
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": config.workspace_size}},
    }
    if config.storage_class:
        spec["storageClassName"] = config.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": child_metadata(session, workspace_pvc_name(session_name(session)), COMPONENT_WORKSPACE),
        "spec": spec,
    }


# Runner identity and credentials.


def build_runner_service_account(session: Mapping[str, Any]) -> dict[str, Any]:
    """The runner receives its token through the Secret, refreshed by the operator, never by automount."""
    annotations: dict[str, str] = {}
    user_id = as_str(as_mapping(session_spec(session).get("userContext")).get("userId"))
    if user_id:
        annotations[ANNOTATION_CREATED_BY_USER_ID] = user_id
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": child_metadata(
            session,
            runner_sa_name(session_name(session)),
            COMPONENT_RUNNER_RBAC,
            annotations,
            extra_labels={LABEL_APP: "ambient-runner"},
        ),
        "automountServiceAccountToken": False,
    }


def build_runner_role(session: Mapping[str, Any]) -> dict[str, Any]:
    """Only the runner's own session and its own token Secret.

    The original Role could read every Secret in the namespace and create sessions; a runner
    executing model-written code must not. The token Secret name is always the derived one, never
    the runner-token-secret annotation, so a session cannot point this grant at another Secret.
    """
    name = session_name(session)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": child_metadata(session, runner_role_name(name), COMPONENT_RUNNER_RBAC),
        "rules": [
            {
                "apiGroups": [GROUP],
                "resources": [PLURAL, f"{PLURAL}/status"],
                "resourceNames": [name],
                "verbs": ["get", "patch"],
            },
            {
                "apiGroups": [""],
                "resources": ["secrets"],
                "resourceNames": [token_secret_name(name)],
                "verbs": ["get"],
            },
        ],
    }


def build_runner_role_binding(session: Mapping[str, Any]) -> dict[str, Any]:
    name = session_name(session)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": child_metadata(session, runner_rolebinding_name(name), COMPONENT_RUNNER_RBAC),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": runner_role_name(name),
        },
        "subjects": [
            {"kind": "ServiceAccount", "name": runner_sa_name(name), "namespace": session_namespace(session)}
        ],
    }


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def build_token_secret(
    session: Mapping[str, Any], k8s_token: str, agui_token: str, refreshed_at: str
) -> dict[str, Any]:
    """The refresh time is an annotation so the token loop can schedule the next refresh from the cache."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": child_metadata(
            session,
            token_secret_name(session_name(session)),
            COMPONENT_RUNNER_TOKEN,
            {ANNOTATION_TOKEN_REFRESHED_AT: refreshed_at},
            extra_labels={LABEL_APP: "ambient-runner-token"},
        ),
        "type": "Opaque",
        "data": {TOKEN_KEY_K8S: _b64(k8s_token), TOKEN_KEY_AGUI: _b64(agui_token)},
    }


# Services and the temporary content pod.


def build_session_service(session: Mapping[str, Any], config: OperatorConfig) -> dict[str, Any]:
    """The backend reaches the runner's AG-UI server through this name; it outlives runner restarts."""
    name = session_name(session)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(
            session,
            session_service_name(name),
            COMPONENT_SESSION_SERVICE,
            extra_labels={LABEL_APP: "ambient-code"},
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": {LABEL_SESSION: session_label_value(name), LABEL_COMPONENT: COMPONENT_RUNNER},
            "ports": [{"name": "agui", "port": config.runner_port, "targetPort": "agui", "protocol": "TCP"}],
        },
    }


def build_temp_content_pod(session: Mapping[str, Any], config: OperatorConfig) -> dict[str, Any]:
    """Serves a stopped session's workspace files to the backend.

    A bare Pod with restartPolicy Always, so a crashed content server comes back by itself; the temp
    content loop deletes it when idle. The root filesystem is read-only; /tmp is the only scratch space.
    """
    name = session_name(session)
    container = {
        "name": "content",
        "image": config.content_image,
        "imagePullPolicy": config.runner_image_pull_policy,
        "env": [
            {"name": "CONTENT_SERVICE_MODE", "value": "true"},
            {"name": "STATE_BASE_DIR", "value": WORKSPACE_MOUNT},
        ],
        "ports": [{"name": "http", "containerPort": TEMP_CONTENT_PORT, "protocol": "TCP"}],
        "resources": {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi"},
        },
        "readinessProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": 3,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "securityContext": {**restricted_container_security(), "readOnlyRootFilesystem": True},
        "volumeMounts": [
            {"name": "workspace", "mountPath": WORKSPACE_MOUNT},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": child_metadata(
            session,
            temp_content_pod_name(name),
            COMPONENT_TEMP_CONTENT,
            extra_labels={LABEL_APP: APP_TEMP_CONTENT},
        ),
        "spec": {
            "restartPolicy": "Always",
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 5,
            "securityContext": restricted_pod_security(config.pod_fs_group),
            "containers": [container],
            "volumes": [
                {"name": "workspace", "persistentVolumeClaim": {"claimName": workspace_claim_name(session)}},
                {"name": "tmp", "emptyDir": {}},
            ],
        },
    }


def build_temp_content_service(session: Mapping[str, Any]) -> dict[str, Any]:
    name = session_name(session)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(session, temp_content_service_name(name), COMPONENT_TEMP_CONTENT),
        "spec": {
            "type": "ClusterIP",
            "selector": {LABEL_SESSION: session_label_value(name), LABEL_COMPONENT: COMPONENT_TEMP_CONTENT},
            "ports": [{"name": "http", "port": TEMP_CONTENT_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }
