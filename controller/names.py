"""Names, labels and annotation keys shared with the platform's backend and runner.

These strings are a compatibility contract: the backend finds children by these names and reacts to
these annotations, so they must match the original operator byte for byte. Names derived from a
session name are bounded to 63 characters because Job, Service and label values cannot be longer,
and the original operator failed silently on long names.

How a session name maps to valid child names, whatever the name:
- The API server admits a session name that is a DNS-1123 subdomain: lowercase letters, digits,
  '-' and '.', at most 253 characters, each dot-separated part starting and ending alphanumeric.
- Length: every child name and the session label value are cut to 63 characters with a stable hash
  suffix (bounded_name), a deterministic mapping that keeps distinct names distinct.
- Dots: valid in the names of the PVC, ServiceAccount, Role, RoleBinding, Secret, Job and pods (all
  DNS-1123 subdomains or path segments) and in label values, so those names are kept as they are.
  Services need a DNS-1035 label (no dots), and the backend reaches the runner through the Service
  `session-<name>` (http://session-<name>.<namespace>.svc...) by that exact name; any other name
  would leave the runner unreachable while its session claimed to run. So a session whose name has a
  dot (or, from a non-conforming API server, any character outside [a-z0-9.-]) is not mapped: it
  fails at once with InvalidName, before anything is created (name_problem).
"""

from __future__ import annotations

import hashlib
import re

# The custom resource.
GROUP = "vteam.ambient-code"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "AgenticSession"
PLURAL = "agenticsessions"

# Annotations on the session.
ANNOTATION_DESIRED_PHASE = "ambient-code.io/desired-phase"
ANNOTATION_STOP_REASON = "ambient-code.io/stop-reason"
ANNOTATION_START_REQUESTED_AT = "ambient-code.io/start-requested-at"
ANNOTATION_STOP_REQUESTED_AT = "ambient-code.io/stop-requested-at"
ANNOTATION_PARENT_SESSION = "vteam.ambient-code/parent-session-id"
ANNOTATION_TEMP_CONTENT_REQUESTED = "ambient-code.io/temp-content-requested"
ANNOTATION_TEMP_CONTENT_LAST_ACCESSED = "ambient-code.io/temp-content-last-accessed"
ANNOTATION_RUNNER_TOKEN_SECRET = "ambient-code.io/runner-token-secret"
ANNOTATION_FORCE_EXECUTE_PROMPT = "ambient-code.io/force-execute-prompt"
ANNOTATION_RUNNER_SA = "ambient-code.io/runner-sa"

# Annotations on children.
ANNOTATION_TOKEN_REFRESHED_AT = "ambient-code.io/token-refreshed-at"
ANNOTATION_SESSION_NAME = "ambient-code.io/session-name"
ANNOTATION_CREATED_BY_USER_ID = "ambient-code.io/created-by-user-id"

# Labels on children.
LABEL_SESSION = "agentic-session"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "agentic-operator"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_APP = "app"
APP_RUNNER = "ambient-code-runner"
APP_TEMP_CONTENT = "temp-content-service"

COMPONENT_WORKSPACE = "workspace"
COMPONENT_RUNNER = "runner"
COMPONENT_RUNNER_RBAC = "runner-rbac"
COMPONENT_RUNNER_TOKEN = "runner-token"
COMPONENT_SESSION_SERVICE = "session-service"
COMPONENT_TEMP_CONTENT = "temp-content"

# Keys of the runner token Secret.
TOKEN_KEY_K8S = "k8s-token"
TOKEN_KEY_AGUI = "agui-token"

_HASH_LEN = 10
_TRIM = "-."


def bounded_name(name: str, limit: int = 63) -> str:
    """Fit `name` into `limit` characters while keeping distinct names distinct.

    A long name keeps a readable prefix and gains a hash of the whole name, so the result is stable
    across calls and two long names that share a prefix still differ. The prefix never ends in '-' or
    '.', so a valid DNS-1123 label stays valid.
    """
    if len(name) <= limit:
        return name
    if limit < _HASH_LEN + 2:
        raise ValueError(f"limit {limit} leaves no room for a prefix and a hash suffix")
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_LEN]
    prefix = name[: limit - _HASH_LEN - 1].rstrip(_TRIM)
    if not prefix:
        return digest
    return f"{prefix}-{digest}"


_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
MAX_SESSION_NAME = 253


def is_session_name(text: str) -> bool:
    """Whether the API server would admit `text` as a session's name (a DNS-1123 subdomain)."""
    return len(text) <= MAX_SESSION_NAME and _SUBDOMAIN.fullmatch(text) is not None


def name_problem(session_name: str) -> str | None:
    """Why children cannot be named after this session (see the module docstring), or None.

    The message never repeats the name: it is shown in conditions and Events of the very object.
    """
    if not session_name:
        return "the session has no name"
    if not is_session_name(session_name):
        return (
            "the session name is not a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', "
            f"at most {MAX_SESSION_NAME} characters); create the session again under such a name"
        )
    if "." in session_name:
        return (
            "the session name contains '.', which a Service name cannot: the platform reaches the "
            "runner through the Service session-<name>, so no runner could be reached; create the "
            "session again under a name of lowercase letters, digits and '-'"
        )
    return None


def workspace_pvc_name(session_name: str) -> str:
    return bounded_name(f"ambient-workspace-{session_name}")


def runner_sa_name(session_name: str) -> str:
    return bounded_name(f"ambient-session-{session_name}")


def runner_role_name(session_name: str) -> str:
    return bounded_name(f"ambient-session-{session_name}-role")


def runner_rolebinding_name(session_name: str) -> str:
    return bounded_name(f"ambient-session-{session_name}-rb")


def token_secret_name(session_name: str) -> str:
    return bounded_name(f"ambient-runner-token-{session_name}")


def runner_job_name(session_name: str) -> str:
    return bounded_name(f"{session_name}-runner")


def session_service_name(session_name: str) -> str:
    """The 'session-' prefix also makes the name a DNS-1035 label, which Services require."""
    return bounded_name(f"session-{session_name}")


def temp_content_pod_name(session_name: str) -> str:
    return bounded_name(f"temp-content-{session_name}")


def temp_content_service_name(session_name: str) -> str:
    """Same name as the pod: the backend looks the Service up by this exact name."""
    return bounded_name(f"temp-content-{session_name}")


def session_label_value(session_name: str) -> str:
    """Label values are capped at 63 characters; the full name travels in ANNOTATION_SESSION_NAME."""
    return bounded_name(session_name)


def child_labels(session_name: str, component: str) -> dict[str, str]:
    return {
        LABEL_SESSION: session_label_value(session_name),
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_COMPONENT: component,
    }


def child_selector(component: str | None = None) -> str:
    """Selector of the informers, so the operator caches only what it created."""
    selector = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
    if component:
        selector += f",{LABEL_COMPONENT}={component}"
    return selector
