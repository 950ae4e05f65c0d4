"""What the operator caches of each kind, and how children map back to their session.

Children are watched with a server-side label selector on `app.kubernetes.io/managed-by`, so the
caches hold only objects this operator created; every child is indexed by its session.
"""

from __future__ import annotations

from controller.kube import (
    JOBS,
    PODS,
    PVCS,
    ROLE_BINDINGS,
    ROLES,
    SECRETS,
    SERVICE_ACCOUNTS,
    SERVICES,
    SESSIONS,
)
from controller.names import child_selector
from controller.watchers import transforms
from controller.watchers.cache import KindSpec
from controller.watchers.store import strip_managed_fields

MANAGED = child_selector()
BY_SESSION = {transforms.BY_SESSION: transforms.session_of}

SESSION_SPEC = KindSpec(SESSIONS, transform=strip_managed_fields)
JOB_SPEC = KindSpec(JOBS, label_selector=MANAGED, transform=transforms.job, indexers=BY_SESSION)
POD_SPEC = KindSpec(PODS, label_selector=MANAGED, transform=transforms.pod, indexers=BY_SESSION)
SECRET_SPEC = KindSpec(
    SECRETS,
    label_selector=MANAGED,
    transform=transforms.metadata_only,
    metadata_only=True,
    indexers=BY_SESSION,
)
SERVICE_SPEC = KindSpec(
    SERVICES,
    label_selector=MANAGED,
    transform=transforms.metadata_only,
    metadata_only=True,
    indexers=BY_SESSION,
)
PVC_SPEC = KindSpec(
    PVCS, label_selector=MANAGED, transform=transforms.metadata_only, metadata_only=True, indexers=BY_SESSION
)
SERVICE_ACCOUNT_SPEC = KindSpec(
    SERVICE_ACCOUNTS,
    label_selector=MANAGED,
    transform=transforms.metadata_only,
    metadata_only=True,
    indexers=BY_SESSION,
)
ROLE_SPEC = KindSpec(
    ROLES, label_selector=MANAGED, transform=transforms.metadata_only, metadata_only=True, indexers=BY_SESSION
)
ROLE_BINDING_SPEC = KindSpec(
    ROLE_BINDINGS,
    label_selector=MANAGED,
    transform=transforms.metadata_only,
    metadata_only=True,
    indexers=BY_SESSION,
)
