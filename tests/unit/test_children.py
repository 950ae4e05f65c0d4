from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest

from controller.config import OperatorConfig
from controller.names import ANNOTATION_SESSION_NAME, LABEL_COMPONENT, LABEL_MANAGED_BY, LABEL_SESSION
from controller.reconcilers import children
from controller.reconcilers.runner_job import (
    PROTECTED_ENV,
    active_deadline_seconds,
    build_runner_job,
    protected_env_collisions,
    repos_payload,
    runner_env,
)

CONFIG = OperatorConfig()


def make_session(
    name: str = "s1",
    spec: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "vteam.ambient-code/v1alpha1",
        "kind": "AgenticSession",
        "metadata": {"name": name, "namespace": "proj", "uid": "uid-1", "annotations": annotations or {}},
        "spec": {"initialPrompt": "hello"} if spec is None else spec,
    }


def env_of(
    session: dict[str, Any], config: OperatorConfig = CONFIG, is_resume: bool = False
) -> dict[str, Any]:
    env, _ = runner_env(session, config, is_resume)
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in env}


def pod_spec(job: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = job["spec"]["template"]["spec"]
    return spec


ALL_BUILDERS: list[tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = [
    ("workspace", lambda s: children.build_workspace_pvc(s, CONFIG)),
    ("runner-rbac", children.build_runner_service_account),
    ("runner-rbac", children.build_runner_role),
    ("runner-rbac", children.build_runner_role_binding),
    ("runner-token", lambda s: children.build_token_secret(s, "k", "a", "2026-01-01T00:00:00Z")),
    ("runner", lambda s: build_runner_job(s, CONFIG, False)[0]),
    ("session-service", lambda s: children.build_session_service(s, CONFIG)),
    ("temp-content", lambda s: children.build_temp_content_pod(s, CONFIG)),
    ("temp-content", children.build_temp_content_service),
]


@pytest.mark.parametrize(("component", "build"), ALL_BUILDERS)
def test_every_child_is_owned_labelled_and_annotated(
    component: str, build: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    manifest = build(make_session())
    meta = manifest["metadata"]
    assert meta["namespace"] == "proj"
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "vteam.ambient-code/v1alpha1",
            "kind": "AgenticSession",
            "name": "s1",
            "uid": "uid-1",
            "controller": True,
        }
    ]
    assert meta["labels"][LABEL_SESSION] == "s1"
    assert meta["labels"][LABEL_MANAGED_BY] == "agentic-operator"
    assert meta["labels"][LABEL_COMPONENT] == component
    assert meta["annotations"][ANNOTATION_SESSION_NAME] == "s1"


@pytest.mark.parametrize(("component", "build"), ALL_BUILDERS)
def test_long_session_name_gives_bounded_names_and_labels(
    component: str, build: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    long = "a" * 70
    meta = build(make_session(long))["metadata"]
    assert len(meta["name"]) <= 63
    assert len(meta["labels"][LABEL_SESSION]) <= 63
    assert meta["annotations"][ANNOTATION_SESSION_NAME] == long
    assert meta["ownerReferences"][0]["name"] == long


def test_workspace_pvc() -> None:
    pvc = children.build_workspace_pvc(make_session(), CONFIG)
    assert pvc["metadata"]["name"] == "ambient-workspace-s1"
    assert pvc["spec"] == {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}}
    custom = OperatorConfig(storage_class="fast", workspace_size="20Gi")
    spec = children.build_workspace_pvc(make_session(), custom)["spec"]
    assert spec["storageClassName"] == "fast"
    assert spec["resources"]["requests"]["storage"] == "20Gi"


def test_continuation_uses_the_parent_claim() -> None:
    own = make_session()
    assert children.parent_session_id(own) is None
    assert children.workspace_claim_name(own) == "ambient-workspace-s1"
    by_annotation = make_session(annotations={"vteam.ambient-code/parent-session-id": "p1"})
    assert children.parent_session_id(by_annotation) == "p1"
    assert children.workspace_claim_name(by_annotation) == "ambient-workspace-p1"
    by_env = make_session(spec={"environmentVariables": {"PARENT_SESSION_ID": "p2"}})
    assert children.workspace_claim_name(by_env) == "ambient-workspace-p2"
    both = make_session(
        spec={"environmentVariables": {"PARENT_SESSION_ID": "p2"}},
        annotations={"vteam.ambient-code/parent-session-id": "p1"},
    )
    assert children.parent_session_id(both) == "p1"
    job, _ = build_runner_job(by_annotation, CONFIG, False)
    assert pod_spec(job)["volumes"][0]["persistentVolumeClaim"]["claimName"] == "ambient-workspace-p1"
    temp = children.build_temp_content_pod(by_annotation, CONFIG)
    assert temp["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "ambient-workspace-p1"


def test_service_account() -> None:
    sa = children.build_runner_service_account(make_session(spec={"userContext": {"userId": "u-7"}}))
    assert sa["metadata"]["name"] == "ambient-session-s1"
    assert sa["automountServiceAccountToken"] is False
    assert sa["metadata"]["annotations"]["ambient-code.io/created-by-user-id"] == "u-7"
    plain = children.build_runner_service_account(make_session())
    assert "ambient-code.io/created-by-user-id" not in plain["metadata"]["annotations"]


def test_role_is_least_privilege() -> None:
    role = children.build_runner_role(
        make_session(annotations={"ambient-code.io/runner-token-secret": "someone-elses-secret"})
    )
    assert role["metadata"]["name"] == "ambient-session-s1-role"
    assert role["rules"] == [
        {
            "apiGroups": ["vteam.ambient-code"],
            "resources": ["agenticsessions", "agenticsessions/status"],
            "resourceNames": ["s1"],
            "verbs": ["get", "patch"],
        },
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["ambient-runner-token-s1"],
            "verbs": ["get"],
        },
    ]


def test_role_binding() -> None:
    binding = children.build_runner_role_binding(make_session())
    assert binding["metadata"]["name"] == "ambient-session-s1-rb"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "ambient-session-s1-role",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "ambient-session-s1", "namespace": "proj"}
    ]


def test_token_secret() -> None:
    secret = children.build_token_secret(make_session(), "k8s-tok", "agui-tok", "2026-01-01T00:00:00Z")
    assert secret["metadata"]["name"] == "ambient-runner-token-s1"
    assert secret["type"] == "Opaque"
    assert base64.b64decode(secret["data"]["k8s-token"]) == b"k8s-tok"
    assert base64.b64decode(secret["data"]["agui-token"]) == b"agui-tok"
    assert secret["metadata"]["annotations"]["ambient-code.io/token-refreshed-at"] == "2026-01-01T00:00:00Z"


def test_session_service() -> None:
    service = children.build_session_service(make_session(), OperatorConfig(runner_port=9001))
    assert service["metadata"]["name"] == "session-s1"
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "agui", "port": 9001, "targetPort": "agui", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"] == {"agentic-session": "s1", "app.kubernetes.io/component": "runner"}


def test_temp_content_pod_and_service() -> None:
    pod = children.build_temp_content_pod(make_session(), CONFIG)
    assert pod["metadata"]["name"] == "temp-content-s1"
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    (container,) = spec["containers"]
    assert container["image"] == CONFIG.content_image
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
        "readOnlyRootFilesystem": True,
    }
    assert container["resources"] == {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    }
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/workspace", "/tmp"}
    assert {"name": "tmp", "emptyDir": {}} in spec["volumes"]
    service = children.build_temp_content_service(make_session())
    assert service["metadata"]["name"] == "temp-content-s1"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"] == {
        "agentic-session": "s1",
        "app.kubernetes.io/component": "temp-content",
    }


FULL_SPEC: dict[str, Any] = {
    "initialPrompt": "do it",
    "llmSettings": {"model": "m-1", "temperature": 0.7, "maxTokens": 4000},
    "repos": [
        {"url": "https://github.com/org/alpha.git", "branch": "dev", "autoPush": True},
        {"url": "git@github.com:other/beta.git"},
    ],
    "activeWorkflow": {"gitUrl": "https://github.com/org/wf.git", "branch": "v2", "path": "flows/x"},
    "interactive": False,
    "timeout": 300,
    "userContext": {"userId": "u-1", "displayName": "Some User"},
    "mcpServers": {"disabled": ["x"]},
    "environmentVariables": {"ZED": "z", "ALPHA": "a"},
}


def test_minimal_env_uses_defaults_and_omits_optional_values() -> None:
    values = env_of(make_session(spec={}))
    assert values["LLM_MODEL"] == CONFIG.default_model
    assert values["INTERACTIVE"] == "true"
    assert values["INITIAL_PROMPT"] == ""
    for absent in (
        "LLM_TEMPERATURE",
        "LLM_MAX_TOKENS",
        "TIMEOUT",
        "PARENT_SESSION_ID",
        "IS_RESUME",
        "USER_ID",
        "USER_NAME",
        "CUSTOM_MCP_SERVERS",
        "ACTIVE_WORKFLOW_GIT_URL",
        "REPOS_JSON",
    ):
        assert absent not in values


def test_repeated_repo_names_get_a_suffix() -> None:
    session = make_session(
        spec={
            "repos": [
                {"url": "https://a.example/x/tool.git"},
                {"url": "https://b.example/y/tool"},
                {"url": "ssh://h/z/tool/"},
            ]
        }
    )
    assert [r["name"] for r in repos_payload(session)] == ["tool", "tool-2", "tool-3"]


@pytest.mark.parametrize(
    ("is_resume", "force", "expected"),
    [
        (False, None, None),
        (True, None, "true"),
        (True, "true", None),
        (True, "false", "true"),
        (False, "true", None),
    ],
)
def test_is_resume(is_resume: bool, force: str | None, expected: str | None) -> None:
    annotations = {"ambient-code.io/force-execute-prompt": force} if force is not None else {}
    assert env_of(make_session(annotations=annotations), is_resume=is_resume).get("IS_RESUME") == expected


def test_protected_variables_are_not_applied_and_warned_about() -> None:
    session = make_session(
        spec={
            "environmentVariables": {
                "AGUI_TOKEN": "stolen",
                "LLM_MODEL": "other",
                "SESSION_ID": "x",
                "MY_VAR": "ok",
            }
        }
    )
    env, warnings = runner_env(session, CONFIG, False)
    names = [item["name"] for item in env]
    assert names.count("AGUI_TOKEN") == 1 and names.count("LLM_MODEL") == 1 and names.count("SESSION_ID") == 1
    values = env_of(session)
    assert values["LLM_MODEL"] == CONFIG.default_model
    assert values["AGUI_TOKEN"] == {"secretKeyRef": {"name": "ambient-runner-token-s1", "key": "agui-token"}}
    assert values["MY_VAR"] == "ok"
    assert len(warnings) == 3
    for key in ("AGUI_TOKEN", "LLM_MODEL", "SESSION_ID"):
        assert any(key in w for w in warnings)
    assert protected_env_collisions(session) == ["AGUI_TOKEN", "LLM_MODEL", "SESSION_ID"]


def test_every_protected_name_is_refused() -> None:
    user = {key: "user-value" for key in PROTECTED_ENV}
    session = make_session(spec={"environmentVariables": user})
    env, warnings = runner_env(session, CONFIG, False)
    assert all(item.get("value") != "user-value" for item in env if item["name"] != "PARENT_SESSION_ID")
    assert len(warnings) == len(PROTECTED_ENV) - 1
    assert "PARENT_SESSION_ID" not in protected_env_collisions(session)


def test_parent_session_id_from_env_is_honoured_without_warning() -> None:
    session = make_session(spec={"environmentVariables": {"PARENT_SESSION_ID": "p9"}})
    env, warnings = runner_env(session, CONFIG, False)
    assert warnings == []
    assert [item["value"] for item in env if item["name"] == "PARENT_SESSION_ID"] == ["p9"]
    assert protected_env_collisions(session) == []
    with_annotation = make_session(
        spec={"environmentVariables": {"PARENT_SESSION_ID": "p9"}},
        annotations={"vteam.ambient-code/parent-session-id": "p1"},
    )
    env, warnings = runner_env(with_annotation, CONFIG, False)
    assert warnings == []
    assert [item["value"] for item in env if item["name"] == "PARENT_SESSION_ID"] == ["p1"]


def test_unusable_user_variables_are_skipped_with_a_warning() -> None:
    session = make_session(spec={"environmentVariables": {"NUM": 5, "BAD-NAME": "x", "OK": "y"}})
    env, warnings = runner_env(session, CONFIG, False)
    names = [item["name"] for item in env]
    assert "NUM" not in names and "BAD-NAME" not in names and "OK" in names
    assert len(warnings) == 2


def test_node_selector_and_ttl() -> None:
    config = OperatorConfig(
        runner_node_selector=("pool=agents", "zone = a", "junk"), job_ttl_after_finished=0
    )
    job, _ = build_runner_job(make_session(), config, False)
    assert pod_spec(job)["nodeSelector"] == {"pool": "agents", "zone": "a"}
    assert job["spec"]["ttlSecondsAfterFinished"] == 0


@pytest.mark.parametrize(
    ("spec", "config", "expected"),
    [
        ({"interactive": False, "timeout": 300}, OperatorConfig(), 360),
        ({"interactive": False, "timeout": 300}, OperatorConfig(runner_deadline_grace=0), 300),
        ({"interactive": False, "timeout": 300}, OperatorConfig(runner_active_deadline=7200), 360),
        ({"interactive": True, "timeout": 300}, OperatorConfig(), None),
        ({"timeout": 300}, OperatorConfig(), None),
        ({"interactive": True, "timeout": 300}, OperatorConfig(runner_active_deadline=7200), 7200),
        ({"interactive": False, "timeout": 0}, OperatorConfig(runner_active_deadline=7200), 7200),
        ({"interactive": False}, OperatorConfig(), None),
        ({"interactive": False, "timeout": True}, OperatorConfig(), None),
        ({"interactive": False, "timeout": "300"}, OperatorConfig(), None),
    ],
)
def test_active_deadline(spec: dict[str, Any], config: OperatorConfig, expected: int | None) -> None:
    session = make_session(spec=spec)
    assert active_deadline_seconds(session, config) == expected
    job, _ = build_runner_job(session, config, False)
    assert job["spec"].get("activeDeadlineSeconds") == expected


def test_pod_annotations_copy_only_allowed_prefixes() -> None:
    session = make_session(
        annotations={
            "sidecar.istio.io/inject": "false",
            "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
            "ambient-code.io/desired-phase": "Running",
            "kubectl.kubernetes.io/last-applied-configuration": "{}",
        }
    )
    config = OperatorConfig(runner_pod_annotation_prefixes=("sidecar.istio.io/", "cluster-autoscaler."))
    job, _ = build_runner_job(session, config, False)
    assert job["spec"]["template"]["metadata"]["annotations"] == {
        "sidecar.istio.io/inject": "false",
        "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
        ANNOTATION_SESSION_NAME: "s1",
    }
    job, _ = build_runner_job(session, CONFIG, False)
    assert job["spec"]["template"]["metadata"]["annotations"] == {ANNOTATION_SESSION_NAME: "s1"}


def test_builders_return_fresh_objects() -> None:
    first, _ = build_runner_job(make_session(), CONFIG, False)
    pod_spec(first)["securityContext"]["seccompProfile"]["type"] = "Unconfined"
    second, _ = build_runner_job(make_session(), CONFIG, False)
    assert pod_spec(second)["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"


@pytest.mark.parametrize(
    "spec",
    [
        None,
        "text",
        [],
        {"repos": "not-a-list"},
        {"repos": [None, 5, {"url": 7}, {"url": "https://h/r", "branch": 3, "autoPush": "yes"}]},
        {"llmSettings": {"temperature": 10**400, "maxTokens": True, "model": None}},
        {"llmSettings": {"temperature": float("nan")}},
        {"environmentVariables": {"A": 1, "B": None, "C": ["x"]}},
        {"environmentVariables": "A=B"},
        {"userContext": "u"},
        {"activeWorkflow": ["x"]},
        {"interactive": "no", "timeout": "10"},
    ],
)
def test_builders_never_raise_on_malformed_specs(spec: Any) -> None:
    session = make_session()
    session["spec"] = spec
    job, _ = build_runner_job(session, CONFIG, True)
    assert job["kind"] == "Job"
    for _, build in ALL_BUILDERS:
        assert build(session)["metadata"]["name"]


def test_builders_never_raise_without_metadata() -> None:
    for _, build in ALL_BUILDERS:
        assert isinstance(build({}), dict)


def test_fs_group_is_set_only_when_configured() -> None:
    plain = OperatorConfig()
    grouped = OperatorConfig(pod_fs_group=1001)
    job, _ = build_runner_job(make_session(), plain, False)
    assert "fsGroup" not in job["spec"]["template"]["spec"]["securityContext"]
    job, _ = build_runner_job(make_session(), grouped, False)
    assert job["spec"]["template"]["spec"]["securityContext"]["fsGroup"] == 1001
    pod = children.build_temp_content_pod(make_session(), grouped)
    assert pod["spec"]["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"
