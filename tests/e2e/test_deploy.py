"""The deploy manifests on a real API server: they apply, and their RBAC is exactly enough.

"Exactly enough" is checked both ways: `kubectl auth can-i` refuses what the operator must never do,
and the operator itself, running with the deployed ServiceAccount's own token, takes a session to
Running and stops it again.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.api_error import ApiError
from controller.kube import Kube
from controller.resources import NAMESPACES, SESSIONS, Resource
from tests.conftest import Cluster
from tests.e2e.conftest import CRDS, OperatorFactory, annotate, create_session, phase_is, wait_session

REPO = Path(__file__).resolve().parents[2]
OPERATOR = "system:serviceaccount:ambient-code:agentic-operator"
CLUSTER_ROLES = Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False)
CLUSTER_ROLE_BINDINGS = Resource(
    "rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False
)
NAMESPACED_TARGET = "ambient-sessions"


def _run(
    kubectl: str, cluster: Cluster, home: Path, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {"KUBECONFIG": str(cluster.kubeconfig), "HOME": str(home), "PATH": "/usr/bin:/bin"}
    return subprocess.run([kubectl, *args], capture_output=True, text=True, env=env, check=check, timeout=120)


def _can(kubectl: str, cluster: Cluster, home: Path, *question: str) -> bool:
    answer = _run(kubectl, cluster, home, "auth", "can-i", "--as", OPERATOR, *question, check=False)
    return answer.stdout.strip() == "yes"


def _delete_quietly(kube: Kube, resource: Resource, name: str) -> None:
    try:
        kube.delete(resource, None, name, propagation="Background")
    except ApiError as exc:
        if not exc.not_found:
            raise


def _remove_install(kube: Kube) -> None:
    """Removes what the installs create, except the CRD that the other tests share."""
    for resource in (CLUSTER_ROLE_BINDINGS, CLUSTER_ROLES):
        _delete_quietly(kube, resource, "agentic-operator")
    for namespace in ("ambient-code", NAMESPACED_TARGET):
        _delete_quietly(kube, NAMESPACES, namespace)


@pytest.fixture
def clean_install(kube: Kube, crd: dict[str, Any]) -> Iterator[None]:
    _remove_install(kube)
    _wait_namespaces_gone(kube)
    yield
    _remove_install(kube)


def _wait_namespaces_gone(kube: Kube) -> None:
    from tests.e2e.helpers import wait_for

    def gone() -> bool:
        for namespace in ("ambient-code", NAMESPACED_TARGET):
            try:
                kube.get(NAMESPACES, None, namespace)
                return False
            except ApiError as exc:
                if not exc.not_found:
                    raise
        return True

    wait_for(gone, 90, message="previous install's namespaces deleted")


def service_account_kubeconfig(
    kube: Kube,
    cluster: Cluster,
    path: Path,
    namespace: str = "ambient-code",
    account: str = "agentic-operator",
) -> Path:
    """A kubeconfig that authenticates as the operator's ServiceAccount, as the Deployment would."""
    token, _ = kube.create_token(namespace, account, audiences=[], expiration_seconds=3600)
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    cluster_entry = admin["clusters"][0]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "operator",
        "clusters": [cluster_entry],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": cluster_entry["name"], "user": "operator"}}],
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def _run_a_session_as_the_operator(
    kube: Kube,
    cluster: Cluster,
    home: Path,
    start_operator: OperatorFactory,
    namespace: str,
    name: str,
    **operator: Any,
) -> None:
    """The operator, with the deployed ServiceAccount's own token, takes a session to Running and back."""
    as_operator = service_account_kubeconfig(kube, cluster, home / "operator.kubeconfig")
    start_operator(kubeconfig=as_operator, **operator)
    create_session(kube, name, namespace)
    wait_session(kube, namespace, name, phase_is("Running"), timeout=90)
    annotate(kube, namespace, name, {"ambient-code.io/desired-phase": "Stopped"})
    wait_session(kube, namespace, name, phase_is("Stopped"))


def test_cluster_wide_install_grants_exactly_what_is_used(
    kube: Kube,
    crd: dict[str, Any],
    cluster: Cluster,
    kubectl: str,
    namespace: str,
    tmp_path: Path,
    start_operator: OperatorFactory,
    clean_install: None,
) -> None:
    applied = _run(kubectl, cluster, tmp_path, "apply", "-k", str(REPO / "manifests"))
    assert "deployment.apps/agentic-operator created" in applied.stdout, applied.stdout
    must = [
        ("create", "jobs.batch", "-n", namespace),
        ("create", "serviceaccounts", "--subresource=token", "-n", namespace),
        ("patch", "agenticsessions.vteam.ambient-code", "--subresource=status", "-n", namespace),
        ("watch", "namespaces"),
        ("create", "roles.rbac.authorization.k8s.io", "-n", namespace),
        ("create", "events", "-n", namespace),
        ("patch", "secrets", "-n", namespace),
        ("patch", "agenticsessions.vteam.ambient-code", "-n", namespace),
        ("update", "leases.coordination.k8s.io", "-n", "ambient-code"),
        # Granted by the Role ambient-session-trigger the projects loop makes (a Role grants only
        # what its maker holds); copied platform Secrets are updated and, unused, deleted.
        ("update", "agenticsessions.vteam.ambient-code", "-n", namespace),
        ("update", "secrets", "-n", namespace),
        ("delete", "secrets", "-n", namespace),
    ]
    never = [
        ("create", "pods", "--subresource=exec", "-n", namespace),
        ("delete", "namespaces"),
        ("bind", "clusterroles"),
        ("escalate", "clusterroles"),
        ("create", "clusterrolebindings"),
        ("delete", "persistentvolumeclaims", "-n", namespace),
        ("get", "nodes"),
        ("update", "leases.coordination.k8s.io", "-n", namespace),
        ("impersonate", "users"),
        ("create", "deployments.apps", "-n", namespace),
        ("*", "*"),
        # Grants the code never uses: no full status updates, Events only created.
        ("update", "agenticsessions.vteam.ambient-code", "--subresource=status", "-n", namespace),
        ("patch", "events", "-n", namespace),
        ("create", "events.events.k8s.io", "-n", namespace),
    ]
    assert [q for q in must if not _can(kubectl, cluster, tmp_path, *q)] == []
    assert [q for q in never if _can(kubectl, cluster, tmp_path, *q)] == []

    _run_a_session_as_the_operator(
        kube,
        cluster,
        tmp_path,
        start_operator,
        namespace,
        "rbac",
        args=["--leader-elect", "--leader-election-namespace", "ambient-code"],
    )

    # Removing the operator leaves the CRD, and so the session, alone.
    deleted = _run(kubectl, cluster, tmp_path, "delete", "--wait=false", "-k", str(REPO / "manifests"))
    assert 'deployment.apps "agentic-operator" deleted' in deleted.stdout, deleted.stdout
    assert "customresourcedefinition" not in deleted.stdout
    assert kube.get_or_none(SESSIONS, namespace, "rbac") is not None
    assert kube.get_or_none(CRDS, None, crd["metadata"]["name"]) is not None


def test_namespaced_install_cannot_touch_other_namespaces(
    kube: Kube,
    cluster: Cluster,
    kubectl: str,
    namespace: str,
    tmp_path: Path,
    start_operator: OperatorFactory,
    clean_install: None,
) -> None:
    kube.create(
        NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACED_TARGET}}
    )
    applied = _run(
        kubectl, cluster, tmp_path, "apply", "-k", str(REPO / "manifests" / "overlays" / "namespaced")
    )
    assert "clusterrolebinding" not in applied.stdout, applied.stdout
    inside = [
        ("create", "jobs.batch"),
        ("create", "serviceaccounts", "--subresource=token"),
        ("patch", "agenticsessions.vteam.ambient-code", "--subresource=status"),
        ("create", "secrets"),
    ]
    assert [q for q in inside if not _can(kubectl, cluster, tmp_path, *q, "-n", NAMESPACED_TARGET)] == []
    assert [q for q in inside if _can(kubectl, cluster, tmp_path, *q, "-n", namespace)] == []
    assert not _can(kubectl, cluster, tmp_path, "list", "namespaces")
    assert not _can(
        kubectl, cluster, tmp_path, "list", "agenticsessions.vteam.ambient-code", "--all-namespaces"
    )

    _run_a_session_as_the_operator(
        kube, cluster, tmp_path, start_operator, NAMESPACED_TARGET, "scoped", namespaces=[NAMESPACED_TARGET]
    )
