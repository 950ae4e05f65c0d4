"""ProjectSettings rules, the runner NetworkPolicy and the inactivity clock, as data."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import yaml

from controller.platform import inactivity
from controller.platform import network_policy as policy
from controller.platform import project_settings as ps
from controller.watchers.store import freeze

SETTINGS = {
    "apiVersion": "vteam.ambient-code/v1alpha1",
    "kind": "ProjectSettings",
    "metadata": {"name": "projectsettings", "namespace": "team", "uid": "ps-1"},
    "spec": {
        "groupAccess": [
            {"groupName": "devs", "role": "edit"},
            {"groupName": "leads", "role": "admin"},
            {"groupName": "", "role": "view"},
            {"role": "view"},
        ],
        "inactivityTimeoutSeconds": 600,
    },
}
NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)


def test_default_settings_is_the_platforms_singleton() -> None:
    assert ps.default_settings("team") == {
        "apiVersion": "vteam.ambient-code/v1alpha1",
        "kind": "ProjectSettings",
        "metadata": {"name": "projectsettings", "namespace": "team"},
        "spec": {"groupAccess": []},
    }


def test_group_access_names_and_cluster_roles() -> None:
    wanted = ps.wanted_group_access(freeze(SETTINGS))
    assert wanted == {"devs-edit": ("devs", "edit"), "leads-admin": ("leads", "admin")}
    binding = ps.group_binding(SETTINGS, "devs", "edit")
    assert binding["metadata"]["name"] == "devs-edit"
    assert "ownerReferences" not in binding["metadata"]
    assert binding["metadata"]["labels"]["ambient-code.io/managed"] == "true"
    assert ps.is_ours(binding, ps.COMPONENT_GROUP_ACCESS)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "ambient-project-edit",
    }
    assert binding["subjects"] == [{"kind": "Group", "name": "devs", "apiGroup": "rbac.authorization.k8s.io"}]
    assert ps.cluster_role_for("owner") == "ambient-project-view"


def test_trigger_rbac_and_limits_are_owned_by_the_settings() -> None:
    for build in (ps.trigger_service_account, ps.trigger_role, ps.trigger_role_binding, ps.limit_range):
        obj = build(SETTINGS)
        refs = obj["metadata"]["ownerReferences"]
        assert [(r["kind"], r["uid"], r["controller"]) for r in refs] == [("ProjectSettings", "ps-1", True)]
    assert ps.trigger_role(SETTINGS)["rules"][0]["verbs"] == ["create", "get", "list", "update"]
    assert ps.trigger_role_binding(SETTINGS)["subjects"] == [
        {"kind": "ServiceAccount", "name": "ambient-session-trigger", "namespace": "team"}
    ]
    limits = ps.limit_range(SETTINGS)["spec"]["limits"][0]
    assert limits["default"] == {"cpu": "2", "memory": "4Gi"}
    assert limits["defaultRequest"] == {"cpu": "250m", "memory": "256Mi"}


def test_network_policy_shape_and_drift() -> None:
    built = policy.runner_network_policy("team", ["ambient-code"], [8001])
    assert built["metadata"]["name"] == "runner-allow-backend-only"
    assert built["spec"]["podSelector"] == {"matchLabels": {"app": "ambient-code-runner"}}
    rule = built["spec"]["ingress"][0]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ambient-code"}}}
    ]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8001}]
    two = policy.runner_network_policy("team", ["ambient-code", "ops"], [8001, 9000])
    assert [p["port"] for p in two["spec"]["ingress"][0]["ports"]] == [8001, 9000]
    assert len(two["spec"]["ingress"][0]["from"]) == 2
    assert policy.in_shape(freeze(built), ["ambient-code"], [8001])
    assert not policy.in_shape(freeze(built), ["ambient-code"], [8001, 9000])
    edited = {**built, "spec": {**built["spec"], "ingress": [{}]}}
    assert not policy.in_shape(freeze(edited), ["ambient-code"], [8001])
    platform_made = {
        **built,
        "metadata": {"name": "runner-allow-backend-only", "labels": {"app": "ambient-code"}},
    }
    assert not policy.in_shape(freeze(platform_made), ["ambient-code"], [8001])


def _session(spec: dict[str, object] | None = None, **status: str) -> dict[str, object]:
    return {
        "metadata": {"creationTimestamp": "2026-01-01T10:00:00Z"},
        "spec": spec or {},
        "status": dict(status),
    }


@pytest.mark.parametrize(
    ("spec", "project", "default", "expected"),
    [
        ({"inactivityTimeout": 30}, 600, 86400, (30, "spec.inactivityTimeout")),
        ({"inactivityTimeout": 0}, 600, 86400, (0, "spec.inactivityTimeout")),
        ({}, 600, 86400, (600, "ProjectSettings inactivityTimeoutSeconds")),
        ({}, 0, 86400, (0, "ProjectSettings inactivityTimeoutSeconds")),
        ({}, None, 86400, (86400, "the operator default")),
        ({"inactivityTimeout": True}, None, 0, (0, "the operator default")),
    ],
)
def test_timeout_precedence(
    spec: dict[str, object], project: int | None, default: int, expected: tuple[int, str]
) -> None:
    timeout = inactivity.effective_timeout(freeze(_session(spec)), project, default)
    assert (timeout.seconds, timeout.source) == expected


def test_project_value_is_read_only_when_usable() -> None:
    assert ps.inactivity_timeout_seconds(freeze(SETTINGS)) == 600
    assert ps.inactivity_timeout_seconds({"spec": {"inactivityTimeoutSeconds": -1}}) is None
    assert ps.inactivity_timeout_seconds(None) is None


def test_idle_clock() -> None:
    timeout = inactivity.Timeout(3600, "test")
    created = _session()
    assert inactivity.seconds_left(created, timeout, NOW) == (7200.0, -3600.0)
    started = _session(startTime="2026-01-01T11:30:00Z")
    assert inactivity.seconds_left(started, timeout, NOW) == (1800.0, 1800.0)
    active = _session(startTime="2026-01-01T11:00:00Z", lastActivityTime="2026-01-01T11:50:00Z")
    assert inactivity.seconds_left(active, timeout, NOW) == (600.0, 3000.0)
    # An activity write of the previous run never makes a restarted run look idle.
    stale = _session(startTime="2026-01-01T11:55:00Z", lastActivityTime="2026-01-01T09:00:00Z")
    assert inactivity.seconds_left(stale, timeout, NOW) == (300.0, 3300.0)
    assert inactivity.seconds_left(active, inactivity.Timeout(0, "off"), NOW) is None


def test_project_settings_crd_is_the_platforms() -> None:
    path = (
        Path(__file__).resolve().parents[2] / "manifests" / "crd" / "projectsettings.vteam.ambient-code.yaml"
    )
    crd = yaml.safe_load(path.read_text())
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "projectsettings.vteam.ambient-code"
    assert (spec["group"], spec["scope"]) == ("vteam.ambient-code", "Namespaced")
    assert spec["names"] == {
        "plural": "projectsettings",
        "singular": "projectsetting",
        "kind": "ProjectSettings",
        "shortNames": ["ps"],
    }
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    schema = version["schema"]["openAPIV3Schema"]
    assert schema["x-kubernetes-validations"][0]["rule"] == "self.metadata.name == 'projectsettings'"
    props = schema["properties"]["spec"]["properties"]
    assert schema["properties"]["spec"]["required"] == ["groupAccess"]
    assert props["groupAccess"]["items"]["properties"]["role"]["enum"] == ["admin", "edit", "view"]
    assert props["inactivityTimeoutSeconds"] == {
        **props["inactivityTimeoutSeconds"],
        "minimum": 0,
        "default": 86400,
    }
    assert set(props) >= {
        "groupAccess",
        "runnerSecretsName",
        "repositories",
        "inactivityTimeoutSeconds",
        "mcpServers",
    }
    assert set(schema["properties"]["status"]["properties"]) == {
        "groupBindingsCreated",
        "scheduledSessionRBACReady",
        "limitRangeReady",
    }
    kustomization = yaml.safe_load((path.parent / "kustomization.yaml").read_text())
    assert path.name in kustomization["resources"]
