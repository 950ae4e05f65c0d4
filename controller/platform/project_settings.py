"""ProjectSettings and what a managed namespace gets from it: names, shapes and rules of the platform.

The platform's backend and UI read these objects by name (the `projectsettings` singleton, the
`ambient-session-trigger` ServiceAccount its scheduled-session CronJobs run as, the group
RoleBindings `<group>-<role>`), so names and shapes match the platform's operator. Builders are
pure and return plain manifests; the projects loop decides when to write them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.names import API_VERSION, LABEL_COMPONENT, LABEL_MANAGED_BY, MANAGED_BY, PLURAL, bounded_name
from controller.resources import Resource

PROJECT_SETTINGS = Resource("vteam.ambient-code", "v1alpha1", "projectsettings", "ProjectSettings")
LIMIT_RANGES = Resource("", "v1", "limitranges", "LimitRange")

SINGLETON = "projectsettings"
TRIGGER_NAME = "ambient-session-trigger"
LIMIT_RANGE_NAME = "ambient-default-limits"
# The platform's label on everything made from ProjectSettings (and on managed namespaces).
LABEL_PLATFORM_MANAGED = "ambient-code.io/managed"
# Components of the objects the projects loop makes; the loop's caches select on these.
COMPONENT_GROUP_ACCESS = "project-group-access"
COMPONENT_SESSION_TRIGGER = "project-session-trigger"
COMPONENT_LIMITS = "project-limits"
PROJECT_COMPONENTS = (COMPONENT_GROUP_ACCESS, COMPONENT_SESSION_TRIGGER, COMPONENT_LIMITS)
ROLES = ("admin", "edit", "view")
RBAC_API = "rbac.authorization.k8s.io"


def project_labels(component: str) -> dict[str, str]:
    """The platform's managed label, plus ours: only objects carrying ours are ever changed or removed."""
    return {LABEL_PLATFORM_MANAGED: "true", LABEL_MANAGED_BY: MANAGED_BY, LABEL_COMPONENT: component}


def is_ours(obj: Mapping[str, Any], component: str) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels.get(LABEL_MANAGED_BY) == MANAGED_BY and labels.get(LABEL_COMPONENT) == component


def default_settings(namespace: str) -> dict[str, Any]:
    """The singleton a newly managed namespace gets, exactly as the platform's operator makes it."""
    return {
        "apiVersion": API_VERSION,
        "kind": "ProjectSettings",
        "metadata": {"name": SINGLETON, "namespace": namespace},
        "spec": {"groupAccess": []},
    }


def _owner(settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    meta = settings.get("metadata") or {}
    return [
        {
            "apiVersion": API_VERSION,
            "kind": "ProjectSettings",
            "name": meta.get("name"),
            "uid": meta.get("uid"),
            "controller": True,
        }
    ]


def _meta(settings: Mapping[str, Any], name: str, component: str, owned: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": (settings.get("metadata") or {}).get("namespace"),
        "labels": project_labels(component),
    }
    if owned:
        meta["ownerReferences"] = _owner(settings)
    return meta


# -- group access ----------------------------------------------------------------------------------


def cluster_role_for(role: str) -> str:
    """The platform's ClusterRole of a project role; an unknown role gets view, as on the platform."""
    return f"ambient-project-{role if role in ROLES else 'view'}"


def group_binding_name(group: str, role: str) -> str:
    return bounded_name(f"{group}-{role}")


def wanted_group_access(settings: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """binding name -> (group, role) for every well-formed spec.groupAccess entry."""
    entries = (settings.get("spec") or {}).get("groupAccess")
    wanted: dict[str, tuple[str, str]] = {}
    for entry in entries if isinstance(entries, list | tuple) else ():
        if not isinstance(entry, Mapping):
            continue
        group, role = entry.get("groupName"), entry.get("role")
        if isinstance(group, str) and group and isinstance(role, str) and role:
            wanted[group_binding_name(group, role)] = (group, role)
    return wanted


def group_binding(settings: Mapping[str, Any], group: str, role: str) -> dict[str, Any]:
    """No ownerReference, as on the platform: deleting ProjectSettings does not revoke access."""
    return _role_binding(
        _meta(settings, group_binding_name(group, role), COMPONENT_GROUP_ACCESS, owned=False),
        ("ClusterRole", cluster_role_for(role)),
        {"kind": "Group", "name": group, "apiGroup": RBAC_API},
    )


def _role_binding(metadata: dict[str, Any], role: tuple[str, str], subject: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{RBAC_API}/v1",
        "kind": "RoleBinding",
        "metadata": metadata,
        "roleRef": {"apiGroup": RBAC_API, "kind": role[0], "name": role[1]},
        "subjects": [subject],
    }


# -- scheduled sessions ----------------------------------------------------------------------------


def trigger_service_account(settings: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(settings, TRIGGER_NAME, COMPONENT_SESSION_TRIGGER),
    }


TRIGGER_RULES = [
    {"apiGroups": ["vteam.ambient-code"], "resources": [PLURAL], "verbs": ["create", "get", "list", "update"]}
]


def trigger_role(settings: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{RBAC_API}/v1",
        "kind": "Role",
        "metadata": _meta(settings, TRIGGER_NAME, COMPONENT_SESSION_TRIGGER),
        "rules": TRIGGER_RULES,
    }


def trigger_role_binding(settings: Mapping[str, Any]) -> dict[str, Any]:
    namespace = (settings.get("metadata") or {}).get("namespace")
    return _role_binding(
        _meta(settings, TRIGGER_NAME, COMPONENT_SESSION_TRIGGER),
        ("Role", TRIGGER_NAME),
        {"kind": "ServiceAccount", "name": TRIGGER_NAME, "namespace": namespace},
    )


# -- default limits --------------------------------------------------------------------------------


def limit_range(settings: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": _meta(settings, LIMIT_RANGE_NAME, COMPONENT_LIMITS),
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "defaultRequest": {"cpu": "250m", "memory": "256Mi"},
                    "default": {"cpu": "2", "memory": "4Gi"},
                }
            ]
        },
    }


# -- inactivity ------------------------------------------------------------------------------------


def inactivity_timeout_seconds(settings: Mapping[str, Any] | None) -> int | None:
    """The project's inactivityTimeoutSeconds, or None when there is no usable value."""
    value = ((settings or {}).get("spec") or {}).get("inactivityTimeoutSeconds")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None
