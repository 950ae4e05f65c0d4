"""Cluster wiring shared by every test suite.

Tests that need Kubernetes ask for the session-scoped ``cluster`` fixture and get the same kind of
object whichever cluster backs the run (``--cluster`` or ``$E2E_CLUSTER``):

- ``local``: the control plane of ``hack/local_cluster.py`` (etcd, kube-apiserver, controller
  manager, scheduler, kwok), reused when ``hack/local-cluster.sh up`` already started it;
- ``kind``: a throw-away kind cluster through pytest-kind (needs Docker);
- ``existing``: whatever ``$KUBECONFIG`` (or ``~/.kube/config``) points at.

A missing prerequisite (no Go, no Docker, no kubeconfig) skips the cluster tests with one reason, so
unit tests still run anywhere; ``REQUIRE_CLUSTER=1`` turns that skip into a failure for CI.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

if TYPE_CHECKING:
    from hack.local_cluster import LocalCluster

REPO = Path(__file__).resolve().parent.parent
E2E_DIR = REPO / "tests" / "e2e"
CLUSTER_MODES = ("local", "kind", "existing")
MANAGED_LABEL = "ambient-code.io/managed"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--cluster",
        choices=CLUSTER_MODES,
        default=os.environ.get("E2E_CLUSTER", "local"),
        help="cluster for e2e tests: local control plane (default), kind, or the existing KUBECONFIG "
        "(env E2E_CLUSTER)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    needs_cluster = []
    for item in items:
        if item.path.is_relative_to(E2E_DIR):
            item.add_marker(pytest.mark.e2e)
        if "cluster" in getattr(item, "fixturenames", ()):
            needs_cluster.append(item)
    # Decide once, at collection, so a missing prerequisite shows as one folded skip reason rather
    # than one line per test; REQUIRE_CLUSTER=1 leaves it to the fixture to fail.
    if needs_cluster and not _required():
        problem = _missing_prerequisite(config)
        if problem is not None:
            for item in needs_cluster:
                item.add_marker(pytest.mark.skip(reason=problem))


@dataclass
class Cluster:
    """A reachable cluster: its kubeconfig, a ready API client, and what the backend can do."""

    mode: str
    kubeconfig: Path
    api_client: Any  # kubernetes.client.ApiClient
    etcd_url: str | None = None
    local: LocalCluster | None = field(default=None, repr=False)

    def restart(self, component: str) -> None:
        """Restart one control-plane process (local clusters only)."""
        if self.local is None:
            pytest.skip(f"restarting {component} needs --cluster=local")
        self.local.restart(component)


def _required() -> bool:
    return os.environ.get("REQUIRE_CLUSTER") == "1"


def _unavailable(reason: str) -> NoReturn:
    if _required():
        pytest.fail(f"REQUIRE_CLUSTER=1 but no cluster: {reason}", pytrace=False)
    pytest.skip(reason)


def _api_client(kubeconfig: Path) -> Any:
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        client.VersionApi(api_client).get_code(_request_timeout=10)
    except Exception as exc:
        api_client.close()
        _unavailable(f"the API server in {kubeconfig} does not answer: {exc}")
    return api_client


_PROBLEM = pytest.StashKey[str | None]()


def _missing_prerequisite(config: pytest.Config) -> str | None:
    """Why the selected kind of cluster cannot exist on this machine, or None if it can."""
    if _PROBLEM not in config.stash:
        config.stash[_PROBLEM] = _probe(config.getoption("--cluster"))
    return config.stash[_PROBLEM]


def _probe(mode: str) -> str | None:
    if mode == "local":
        try:
            from hack.local_cluster import LocalCluster, go_available
        except ImportError as exc:
            return f"--cluster=local needs the test extras (pip install -e '.[test]'): {exc}"
        if go_available() or os.environ.get("LOCAL_CLUSTER_BIN_DIR") or LocalCluster().is_running():
            return None
        return "--cluster=local needs Go on PATH to build the control plane (hack/build-binaries.sh)"
    if mode == "kind":
        try:
            probe = subprocess.run(
                ["docker", "info"], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"--cluster=kind needs a running Docker engine: {exc}"
        if probe.returncode != 0:
            last_line = (probe.stderr or probe.stdout).strip().splitlines()[-1:]
            detail = " ".join(last_line) or "docker info failed"
            return f"--cluster=kind needs a running Docker engine: {detail}"
        return None
    candidates = _kubeconfig_candidates()
    if not any(path.is_file() for path in candidates):
        return f"--cluster=existing found no kubeconfig (looked at {', '.join(map(str, candidates))})"
    return None


def _kubeconfig_candidates() -> list[Path]:
    configured = os.environ.get("KUBECONFIG", "")
    return [Path(p) for p in configured.split(os.pathsep) if p] or [Path.home() / ".kube" / "config"]


def _start_local() -> tuple[Cluster, bool]:
    from hack.local_cluster import ClusterError, LocalCluster

    local = LocalCluster()
    try:
        info = local.up()
    except ClusterError as exc:
        pytest.fail(f"the local control plane did not start: {exc}", pytrace=False)
    cluster = Cluster("local", info.kubeconfig, _api_client(info.kubeconfig), info.etcd_url, local)
    return cluster, not info.reused


def _start_kind() -> tuple[Cluster, Any]:
    from pytest_kind import KindCluster

    kind_binary = shutil.which("kind")
    kind = KindCluster(
        name=os.environ.get("KIND_CLUSTER_NAME", "agentic-operator-e2e"),
        image=os.environ.get("KIND_NODE_IMAGE") or None,
        kind_path=Path(kind_binary) if kind_binary else None,
    )
    kind.create()
    kubeconfig = Path(kind.kubeconfig_path).resolve()
    return Cluster("kind", kubeconfig, _api_client(kubeconfig)), kind


def _existing_kubeconfig() -> Path:
    return next(path.resolve() for path in _kubeconfig_candidates() if path.is_file())


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    mode = request.config.getoption("--cluster")
    keep = os.environ.get("KEEP_CLUSTER") == "1"
    problem = _missing_prerequisite(request.config)
    if problem is not None:
        _unavailable(problem)
    if mode == "local":
        local_cluster, started_here = _start_local()
        try:
            yield local_cluster
        finally:
            local_cluster.api_client.close()
            if started_here and not keep and local_cluster.local is not None:
                local_cluster.local.down()
    elif mode == "kind":
        kind_cluster, kind = _start_kind()
        try:
            yield kind_cluster
        finally:
            kind_cluster.api_client.close()
            if not keep:
                kind.delete()
    else:
        kubeconfig = _existing_kubeconfig()
        existing = Cluster("existing", kubeconfig, _api_client(kubeconfig))
        try:
            yield existing
        finally:
            existing.api_client.close()


def _namespace_name(test_name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")[:40].rstrip("-")
    return f"e2e-{slug}-{secrets.token_hex(3)}"


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh managed namespace per test; deleted afterwards without waiting for it to go away."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(cluster.api_client)
    name = _namespace_name(request.node.name)
    core.create_namespace({"metadata": {"name": name, "labels": {MANAGED_LABEL: "true"}}})
    try:
        yield name
    finally:
        try:
            core.delete_namespace(name, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise
