"""What the operator caches of each kind, and how children map back to their session.

Children are watched with a server-side label selector on `app.kubernetes.io/managed-by`, so the
caches hold only objects this operator created. Pods are indexed by session, because the loops look
them up that way; every other child has a name derived from its session's and is looked up by it.
"""

from __future__ import annotations

from controller.names import LABEL_COMPONENT, LABEL_MANAGED_BY, MANAGED_BY, child_selector
from controller.platform.network_policy import COMPONENT_NETWORK_POLICY, NETWORK_POLICIES
from controller.platform.project_settings import LIMIT_RANGES, PROJECT_COMPONENTS, PROJECT_SETTINGS
from controller.resources import (
    JOBS,
    PODS,
    PVCS,
    ROLE_BINDINGS,
    ROLES,
    SECRETS,
    SERVICE_ACCOUNTS,
    SERVICES,
    SESSIONS,
    Resource,
)
from controller.watchers import transforms
from controller.watchers.cache import KindSpec
from controller.watchers.informer import Transform
from controller.watchers.store import strip_managed_fields

MANAGED = child_selector()
BY_SESSION = {transforms.BY_SESSION: transforms.session_of}

SESSION_SPEC = KindSpec(SESSIONS, transform=strip_managed_fields)
JOB_SPEC = KindSpec(JOBS, label_selector=MANAGED, transform=transforms.job)
POD_SPEC = KindSpec(PODS, label_selector=MANAGED, transform=transforms.pod, indexers=BY_SESSION)
# Services in full (they are small): runner sync reads the session Service's 'agui' port.
SERVICE_SPEC = KindSpec(SERVICES, label_selector=MANAGED, transform=transforms.service)


def _metadata_spec(resource: Resource, transform: Transform = transforms.owned_child) -> KindSpec:
    """A child the loops read only by metadata: listed and watched as PartialObjectMetadata."""
    return KindSpec(resource, label_selector=MANAGED, transform=transform, metadata_only=True)


# Followed by the platform's Secrets by name (one metadata-only watch of every Secret, see operator).
SECRET_SPEC = _metadata_spec(SECRETS, transforms.token_secret)
PVC_SPEC = _metadata_spec(PVCS)
SERVICE_ACCOUNT_SPEC = _metadata_spec(SERVICE_ACCOUNTS)
ROLE_SPEC = _metadata_spec(ROLES)
ROLE_BINDING_SPEC = _metadata_spec(ROLE_BINDINGS)


# The projects loop: ProjectSettings (whole objects: the loop reads spec and status), and the
# objects it makes, label-selected by component: a handful per namespace, cached whole, because
# the loop puts their labels, rules, subjects and spec back in shape. They are not shared with the
# session children's watches of the same kinds: those are metadata only, and sharing would make
# every runner Role, RoleBinding and ServiceAccount travel and decode whole (10,000 of each at
# 10,000 sessions) for a few objects per namespace. Two watches per kind stay within the bound.
PROJECT_SETTINGS_SPEC = KindSpec(PROJECT_SETTINGS)
PROJECT_OBJECTS = (
    f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_COMPONENT} in "
    f"({','.join((*PROJECT_COMPONENTS, COMPONENT_NETWORK_POLICY))})"
)
PROJECT_OBJECT_SPECS = {
    "rolebindings": KindSpec(ROLE_BINDINGS, label_selector=PROJECT_OBJECTS),
    "roles": KindSpec(ROLES, label_selector=PROJECT_OBJECTS),
    "serviceaccounts": KindSpec(SERVICE_ACCOUNTS, label_selector=PROJECT_OBJECTS),
    "limitranges": KindSpec(LIMIT_RANGES, label_selector=PROJECT_OBJECTS),
    "networkpolicies": KindSpec(NETWORK_POLICIES, label_selector=PROJECT_OBJECTS),
}
