from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from controller.names import ANNOTATION_SESSION_NAME
from controller.watchers import transforms
from controller.watchers.store import LAST_APPLIED

TOKEN = "eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJl"


def owner_ref(kind: str, name: str, controller: bool = True) -> dict[str, Any]:
    api_version = "vteam.ambient-code/v1alpha1" if kind == "AgenticSession" else "batch/v1"
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": f"uid-{name}",
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def token_secret() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": "ambient-runner-token-s1",
            "namespace": "team-a",
            "uid": "uid-secret",
            "resourceVersion": "77",
            "labels": {"agentic-session": "s1"},
            "annotations": {
                "ambient-code.io/token-refreshed-at": "2025-06-01T12:00:00Z",
                LAST_APPLIED: json.dumps({"stringData": {"k8s-token": TOKEN}}),
            },
            "ownerReferences": [owner_ref("AgenticSession", "s1")],
            "managedFields": [{"manager": "agentic-operator", "operation": "Update"}],
        },
        "data": {"k8s-token": "ZXlKaGJHY2lPaUpTVXpJMU5pSjk=", "agui-token": "c2VjcmV0"},
        "stringData": {"k8s-token": TOKEN},
    }


def test_token_secret_never_keeps_tokens() -> None:
    slim = transforms.token_secret(token_secret())
    assert set(slim) == {"apiVersion", "kind", "metadata"}
    assert "data" not in slim and "stringData" not in slim
    assert "managedFields" not in slim["metadata"]
    assert slim["metadata"]["annotations"] == {"ambient-code.io/token-refreshed-at": "2025-06-01T12:00:00Z"}
    assert slim["metadata"]["ownerReferences"] == [
        {"kind": "AgenticSession", "name": "s1", "uid": "uid-s1", "controller": True}
    ]
    assert slim["metadata"]["name"] == "ambient-runner-token-s1"
    assert slim["metadata"]["resourceVersion"] == "77"
    assert "labels" not in slim["metadata"]
    dumped = json.dumps(slim)
    assert TOKEN not in dumped
    assert "c2VjcmV0" not in dumped


def runner_pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "s1-runner-abcde",
            "namespace": "team-a",
            "labels": {"job-name": "s1-runner"},
            "ownerReferences": [owner_ref("Job", "s1-runner")],
        },
        "spec": {
            "nodeName": "worker-1",
            "restartPolicy": "Never",
            "serviceAccountName": "ambient-session-s1",
            "containers": [
                {
                    "name": "ambient-code-runner",
                    "image": "runner:latest",
                    "env": [{"name": "INITIAL_PROMPT", "value": "x" * 1000}],
                }
            ],
            "volumes": [
                {"name": "workspace", "persistentVolumeClaim": {"claimName": "ambient-workspace-s1"}}
            ],
        },
        "status": {
            "phase": "Running",
            "conditions": [{"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [{"name": "ambient-code-runner", "state": {"running": {}}}],
        },
    }


def test_pod_keeps_status_and_node_but_not_containers() -> None:
    original = runner_pod()
    slim = transforms.pod(original)
    assert slim["spec"] == {"nodeName": "worker-1"}
    assert slim["status"] == original["status"]
    assert "INITIAL_PROMPT" not in json.dumps(slim)


FAILURE_TARGET = {
    "type": "FailureTarget",
    "status": "True",
    "reason": "DeadlineExceeded",
    "message": "Job was active longer than specified deadline",
    "lastTransitionTime": "2026-11-20T11:00:00Z",
}


def test_job_drops_template() -> None:
    original: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "s1-runner", "namespace": "team-a"},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": 3660,
            "ttlSecondsAfterFinished": 60,
            "template": runner_pod()["spec"],
        },
        "status": {
            "active": 1,
            "startTime": "2026-11-20T10:00:00Z",
            "conditions": [{**FAILURE_TARGET, "lastProbeTime": "2026-11-20T11:00:00Z"}],
        },
    }
    slim = transforms.job(original)
    assert slim["spec"] == {"backoffLimit": 0, "activeDeadlineSeconds": 3660, "ttlSecondsAfterFinished": 60}
    assert slim["status"] == {"conditions": [FAILURE_TARGET]}


def test_pod_keeps_only_the_conditions_and_container_fields_the_loops_read() -> None:
    original = runner_pod()
    original["status"] = {
        "phase": "Pending",
        "podIP": "10.0.0.7",
        "startTime": "2026-11-20T10:00:00Z",
        "conditions": [
            {"type": t, "status": "False", "reason": "Unschedulable", "lastProbeTime": None}
            for t in ("PodReadyToStartContainers", "Initialized", "PodScheduled", "ContainersReady", "Ready")
        ],
        "containerStatuses": [
            {
                "name": "ambient-code-runner",
                "image": "runner:latest",
                "imageID": "sha256:abc",
                "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "back-off"}},
            },
            {
                "name": "sidecar",
                "containerID": "containerd://1",
                "state": {
                    "terminated": {
                        "exitCode": 137,
                        "reason": "OOMKilled",
                        "message": "",
                        "startedAt": "2026-11-20T10:00:00Z",
                        "finishedAt": "2026-11-20T10:05:00Z",
                    }
                },
            },
            {"name": "proxy", "state": {"running": {"startedAt": "2026-11-20T10:00:00Z"}}},
        ],
    }
    slim = transforms.pod(original)
    assert slim["status"] == {
        "phase": "Pending",
        "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"},
            {"type": "Ready", "status": "False", "reason": "Unschedulable"},
        ],
        "containerStatuses": [
            {
                "name": "ambient-code-runner",
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "back-off"}},
            },
            {
                "name": "sidecar",
                "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled", "message": ""}},
            },
            {"name": "proxy", "state": {"running": {"startedAt": "2026-11-20T10:00:00Z"}}},
        ],
    }


def test_child_metadata_keeps_the_labels_annotations_and_owner_fields_the_loops_read() -> None:
    original = runner_pod()
    original["metadata"].update(
        uid="uid-pod",
        resourceVersion="9",
        generation=1,
        labels={
            "agentic-session": "s1",
            "app.kubernetes.io/managed-by": "agentic-operator",
            "app.kubernetes.io/component": "runner",
            "job-name": "s1-runner",
            "batch.kubernetes.io/controller-uid": "uid-s1-runner",
        },
        annotations={ANNOTATION_SESSION_NAME: "s1", "kwok.ambient-code.io/complete-after": "5s"},
    )
    meta = transforms.pod(original)["metadata"]
    assert meta == {
        "name": "s1-runner-abcde",
        "namespace": "team-a",
        "uid": "uid-pod",
        "resourceVersion": "9",
        "labels": {"app.kubernetes.io/component": "runner", "job-name": "s1-runner"},
        "annotations": {ANNOTATION_SESSION_NAME: "s1"},
        "ownerReferences": [{"kind": "Job", "name": "s1-runner", "uid": "uid-s1-runner", "controller": True}],
    }


def test_owned_child_keeps_identity_and_owners_only() -> None:
    original = token_secret()
    original["metadata"]["creationTimestamp"] = "2026-11-20T10:00:00Z"
    original["metadata"]["deletionTimestamp"] = "2026-11-20T11:00:00Z"
    assert transforms.owned_child(original) == {
        "metadata": {
            "name": "ambient-runner-token-s1",
            "namespace": "team-a",
            "uid": "uid-secret",
            "resourceVersion": "77",
            "deletionTimestamp": "2026-11-20T11:00:00Z",
            "ownerReferences": [
                {"kind": "AgenticSession", "name": "s1", "uid": "uid-s1", "controller": True}
            ],
        },
    }


def test_owned_child_is_the_same_from_a_whole_object_and_from_its_metadata() -> None:
    """The session loop's Roles, RoleBindings and ServiceAccounts come whole from the watch shared
    with the projects loop; their cache entries must be what a metadata-only watch gave."""
    meta = {
        "name": "ambient-session-s1",
        "namespace": "team-a",
        "uid": "uid-role",
        "resourceVersion": "12",
        "generation": 1,
        "creationTimestamp": "2026-11-20T10:00:00Z",
        "labels": {"app.kubernetes.io/managed-by": "agentic-operator"},
        "annotations": {"ambient-code.io/x": "y", "other": "z"},
        "ownerReferences": [
            {"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession", "name": "s1", "uid": "u"}
        ],
        "managedFields": [{"manager": "agentic-operator"}],
    }
    rules = [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]
    whole_listed = {"metadata": copy.deepcopy(meta), "rules": rules}
    whole_watched = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", **whole_listed}
    partial = {
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": copy.deepcopy(meta),
    }
    expected = transforms.owned_child(partial)
    assert transforms.owned_child(whole_listed) == expected
    assert transforms.owned_child(whole_watched) == expected
    assert set(expected) == {"metadata"}


@pytest.mark.parametrize("transform", [transforms.owned_child, transforms.token_secret, transforms.job])
def test_children_owned_by_a_session_are_still_found_by_session(transform: Any) -> None:
    assert transforms.session_of(transform(token_secret())) == ["team-a/s1"]


def child(
    annotations: dict[str, str] | None = None, refs: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "child", "namespace": "team-a"}
    if annotations is not None:
        meta["annotations"] = annotations
    if refs is not None:
        meta["ownerReferences"] = refs
    return {"metadata": meta}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(
            child({ANNOTATION_SESSION_NAME: "a-very-long-session-name"}, [owner_ref("Job", "s1-runner")]),
            ["team-a/a-very-long-session-name"],
            id="annotation",
        ),
        pytest.param(
            child({ANNOTATION_SESSION_NAME: "from-annotation"}, [owner_ref("AgenticSession", "from-owner")]),
            ["team-a/from-annotation"],
            id="annotation wins over owner",
        ),
        pytest.param(child(None, [owner_ref("AgenticSession", "s1")]), ["team-a/s1"], id="controller owner"),
        pytest.param(child({}, [owner_ref("AgenticSession", "s1")]), ["team-a/s1"], id="empty annotations"),
        pytest.param(child(None, [owner_ref("Job", "s1-runner")]), [], id="owner of another kind"),
        pytest.param(
            child(None, [owner_ref("AgenticSession", "s1", controller=False)]), [], id="owner not controller"
        ),
        pytest.param(child(), [], id="nothing"),
    ],
)
def test_session_of(obj: dict[str, Any], expected: list[str]) -> None:
    assert transforms.session_of(obj) == expected


def test_children_of_one_session_share_one_owner_reference() -> None:
    import gc

    from controller.watchers.store import freeze

    def child(name: str, uid: str = "uid-shared-1") -> dict[str, Any]:
        return {
            "metadata": {
                "name": name,
                "namespace": "ns",
                "uid": f"{name}-uid",
                "ownerReferences": [
                    {
                        "apiVersion": "vteam.ambient-code/v1alpha1",
                        "kind": "AgenticSession",
                        "name": "s",
                        "uid": uid,
                        "controller": True,
                    }
                ],
            }
        }

    first = freeze(transforms.owned_child(child("a")))
    second = freeze(transforms.owned_child(child("b")))
    ref_a = first["metadata"]["ownerReferences"][0]
    assert ref_a is second["metadata"]["ownerReferences"][0]
    assert dict(ref_a) == {"kind": "AgenticSession", "name": "s", "uid": "uid-shared-1", "controller": True}
    # Another session's children get their own; a different reference under the same uid is not merged.
    other = freeze(transforms.owned_child(child("c", uid="uid-shared-2")))
    assert other["metadata"]["ownerReferences"][0] is not ref_a
    odd = child("d")
    odd["metadata"]["ownerReferences"][0]["controller"] = False
    assert freeze(transforms.owned_child(odd))["metadata"]["ownerReferences"][0]["controller"] is False
    # Kept only while a cached object holds it.
    import weakref

    gone = weakref.ref(other["metadata"]["ownerReferences"][0])
    del other
    gc.collect()
    assert gone() is None
