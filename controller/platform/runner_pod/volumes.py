"""Volumes of the runner pod and where each container mounts them (§1.3, §1.5).

Order as the platform's: workspace, vertex, trusted-ca-bundle, runner-token. The workspace is the
operator's PVC for runtimes with PVC persistence (the default), else an emptyDir that the
state-sync containers fill from and save to S3.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.names import TOKEN_KEY_K8S, token_secret_name
from controller.platform.registry import PERSISTENCE_PVC
from controller.platform.runner_pod.env import BOT_TOKEN_FILE, TOKEN_MOUNT
from controller.platform.runner_pod.inputs import (
    CA_BUNDLE,
    CA_BUNDLE_KEY,
    DEFAULT_EMPTYDIR_SIZE,
    VERTEX_SECRET,
    PodInputs,
    state_dir_of,
    uses_workspace,
)
from controller.reconcilers.children import WORKSPACE_MOUNT, session_name, workspace_claim_name

WORKSPACE = "workspace"
VERTEX_MOUNT = "/app/vertex"
CA_BUNDLE_MOUNT = "/etc/pki/tls/certs/ca-bundle.crt"

Volume = dict[str, Any]


def volumes(session: Mapping[str, Any], inputs: PodInputs) -> list[Volume]:
    found: list[Volume] = []
    runtime = inputs.runtime
    if uses_workspace(runtime):
        if runtime.storage == PERSISTENCE_PVC:
            found.append(
                {"name": WORKSPACE, "persistentVolumeClaim": {"claimName": workspace_claim_name(session)}}
            )
        else:
            size = runtime.workspace_size.strip() or DEFAULT_EMPTYDIR_SIZE
            found.append({"name": WORKSPACE, "emptyDir": {"sizeLimit": size}})
    if inputs.vertex:
        found.append({"name": "vertex", "secret": {"secretName": VERTEX_SECRET}})
    if inputs.ca_bundle:
        found.append({"name": CA_BUNDLE, "configMap": {"name": CA_BUNDLE}})
    found.append(
        {
            "name": "runner-token",
            "secret": {
                "secretName": token_secret_name(session_name(session)),
                "items": [{"key": TOKEN_KEY_K8S, "path": BOT_TOKEN_FILE}],
                "defaultMode": 0o440,
            },
        }
    )
    return found


def workspace_mounts(session: Mapping[str, Any], inputs: PodInputs) -> list[dict[str, Any]]:
    """/workspace, and the runtime's state directory at /app/<stateDir> (kept with the workspace)."""
    if not uses_workspace(inputs.runtime):
        return []
    state_dir = state_dir_of(session, inputs.runtime)
    return [
        {"name": WORKSPACE, "mountPath": WORKSPACE_MOUNT},
        {"name": WORKSPACE, "mountPath": f"/app/{state_dir}", "subPath": state_dir},
    ]


def runner_mounts(session: Mapping[str, Any], inputs: PodInputs) -> list[dict[str, Any]]:
    mounts = workspace_mounts(session, inputs)
    if inputs.vertex:
        mounts.append({"name": "vertex", "mountPath": VERTEX_MOUNT, "readOnly": True})
    if inputs.ca_bundle:
        mounts.append(
            {"name": CA_BUNDLE, "mountPath": CA_BUNDLE_MOUNT, "subPath": CA_BUNDLE_KEY, "readOnly": True}
        )
    mounts.append({"name": "runner-token", "mountPath": TOKEN_MOUNT, "readOnly": True})
    return mounts
