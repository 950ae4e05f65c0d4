"""A managed namespace gets its project setup; an unmanaged one is left alone.

The operator runs in namespace-selector mode with a selector only this test's namespace can match,
so labelling and unlabelling the namespace is what makes it managed or not.
"""

from __future__ import annotations

import time
from typing import Any

from controller.api_error import ApiError
from controller.kube import Kube
from controller.platform.network_policy import NETWORK_POLICIES, POLICY_NAME
from controller.platform.project_settings import LIMIT_RANGES, PROJECT_SETTINGS
from controller.resources import NAMESPACES, ROLE_BINDINGS, ROLES, SERVICE_ACCOUNTS
from tests.e2e.conftest import OperatorFactory
from tests.e2e.helpers import wait_for

SELECTOR_LABEL = "e2e.ambient-code.io/projects"
TRIGGER = "ambient-session-trigger"


def _get(kube: Kube, resource: Any, namespace: str, name: str) -> dict[str, Any] | None:
    return kube.get_or_none(resource, namespace, name)


def _settings_status(kube: Kube, namespace: str) -> dict[str, Any]:
    found = _get(kube, PROJECT_SETTINGS, namespace, "projectsettings") or {}
    return dict(found.get("status") or {})


def _group_access(kube: Kube, namespace: str, entries: list[dict[str, str]]) -> None:
    kube.patch(PROJECT_SETTINGS, namespace, "projectsettings", {"spec": {"groupAccess": entries}})


def _group_bindings(kube: Kube, namespace: str) -> set[str]:
    listing = kube.list(
        ROLE_BINDINGS, namespace, label_selector="app.kubernetes.io/component=project-group-access"
    )
    return {item["metadata"]["name"] for item in listing.get("items") or []}


def _label(kube: Kube, namespace: str, value: str | None) -> None:
    kube.patch(NAMESPACES, None, namespace, {"metadata": {"labels": {SELECTOR_LABEL: value}}})


def test_labelled_namespace_is_set_up_and_released(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    start_operator(
        args=["--namespace-selector", f"{SELECTOR_LABEL}={namespace}", "--backend-namespace", "platform"]
    )
    # A binding somebody made by hand: never touched.
    kube.create(
        ROLE_BINDINGS,
        namespace,
        {
            "metadata": {"name": "ops-view"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "Group", "name": "ops", "apiGroup": "rbac.authorization.k8s.io"}],
        },
    )
    time.sleep(1.0)
    assert _get(kube, PROJECT_SETTINGS, namespace, "projectsettings") is None, "not managed yet"

    _label(kube, namespace, namespace)
    wait_for(
        lambda: (
            _settings_status(kube, namespace).get("scheduledSessionRBACReady") is True
            and _settings_status(kube, namespace).get("limitRangeReady") is True
        ),
        20,
        message="ProjectSettings created and its status written",
    )
    assert _settings_status(kube, namespace)["groupBindingsCreated"] == 0
    for resource in (SERVICE_ACCOUNTS, ROLES, ROLE_BINDINGS):
        obj = kube.get(resource, namespace, TRIGGER)
        assert [r["kind"] for r in obj["metadata"]["ownerReferences"]] == ["ProjectSettings"]
    assert kube.get(ROLES, namespace, TRIGGER)["rules"][0]["verbs"] == ["create", "get", "list", "update"]
    limits = kube.get(LIMIT_RANGES, namespace, "ambient-default-limits")
    assert limits["spec"]["limits"][0]["default"]["memory"] == "4Gi"
    policy = wait_for(
        lambda: _get(kube, NETWORK_POLICIES, namespace, POLICY_NAME), 20, message="NetworkPolicy"
    )
    assert policy is not None
    rule = policy["spec"]["ingress"][0]
    # The backend's namespace, and the operator's (ambient-code by default): runner sync calls runners.
    assert [f["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for f in rule["from"]] == [
        "ambient-code",
        "platform",
    ]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8001}]

    # Group access follows the spec both ways.
    _group_access(
        kube, namespace, [{"groupName": "devs", "role": "edit"}, {"groupName": "leads", "role": "view"}]
    )
    wait_for(
        lambda: _group_bindings(kube, namespace) == {"devs-edit", "leads-view"}, 20, message="bindings made"
    )
    binding = kube.get(ROLE_BINDINGS, namespace, "devs-edit")
    assert binding["roleRef"]["name"] == "ambient-project-edit"
    assert binding["subjects"] == [{"kind": "Group", "name": "devs", "apiGroup": "rbac.authorization.k8s.io"}]
    wait_for(
        lambda: _settings_status(kube, namespace).get("groupBindingsCreated") == 2, 20, message="count 2"
    )
    _group_access(kube, namespace, [{"groupName": "devs", "role": "admin"}])
    wait_for(
        lambda: _group_bindings(kube, namespace) == {"devs-admin"}, 20, message="dropped bindings removed"
    )
    wait_for(
        lambda: _settings_status(kube, namespace).get("groupBindingsCreated") == 1, 20, message="count 1"
    )
    assert _get(kube, ROLE_BINDINGS, namespace, "ops-view") is not None

    # A hand edit of the policy is undone.
    wanted_ingress = policy["spec"]["ingress"]
    kube.patch(NETWORK_POLICIES, namespace, POLICY_NAME, {"spec": {"ingress": [{"ports": [{"port": 9999}]}]}})
    wait_for(
        lambda: (
            (_get(kube, NETWORK_POLICIES, namespace, POLICY_NAME) or {}).get("spec", {}).get("ingress")
            == wanted_ingress
        ),
        20,
        message="NetworkPolicy put back in shape",
    )

    # Unmanaged: the policy goes, nothing else is written there any more.
    _label(kube, namespace, None)
    wait_for(
        lambda: _get(kube, NETWORK_POLICIES, namespace, POLICY_NAME) is None,
        20,
        message="NetworkPolicy removed",
    )
    _group_access(
        kube, namespace, [{"groupName": "late", "role": "view"}, {"groupName": "x", "role": "edit"}]
    )
    try:
        kube.delete(LIMIT_RANGES, namespace, "ambient-default-limits")
    except ApiError as exc:
        assert exc.not_found
    time.sleep(3.0)
    assert _group_bindings(kube, namespace) == {"devs-admin"}
    assert _get(kube, LIMIT_RANGES, namespace, "ambient-default-limits") is None
    after = kube.get(PROJECT_SETTINGS, namespace, "projectsettings")
    assert after["status"]["groupBindingsCreated"] == 1
    assert _get(kube, SERVICE_ACCOUNTS, namespace, TRIGGER) is not None, "user data kept"
