"""Fixtures for operator e2e tests: the CRD, a plain-dict API client, and operator processes."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.api_error import ApiError
from controller.kube import Kube, load_api_client
from controller.names import runner_job_name
from controller.platform.project_settings import PROJECT_SETTINGS
from controller.resources import PODS, SESSIONS, Resource
from tests.conftest import Cluster
from tests.e2e.operator import OperatorProcess

REPO = Path(__file__).resolve().parents[2]
CRD_FILE = REPO / "manifests" / "crd" / "agenticsessions.vteam.ambient-code.yaml"
PROJECT_SETTINGS_CRD_FILE = REPO / "manifests" / "crd" / "projectsettings.vteam.ambient-code.yaml"
CRDS = Resource(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", namespaced=False
)


@pytest.fixture(scope="session")
def kube(cluster: Cluster) -> Kube:
    return Kube(load_api_client(str(cluster.kubeconfig)))


@pytest.fixture(scope="session")
def kubectl(cluster: Cluster) -> str:
    """The pinned kubectl built with the local control plane, else the one on PATH."""
    if cluster.local is not None:
        state = json.loads((cluster.local.state_dir / "state.json").read_text())
        candidate = Path(state["bin_dir"]) / "kubectl"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl is needed for this test and is not on PATH", pytrace=False)
    return found


@pytest.fixture(scope="session")
def crd(kube: Kube) -> dict[str, Any]:
    """Installs (or updates) the CRDs from manifests/ and waits until they are served.

    Returns the AgenticSession CRD; ProjectSettings is installed first, because the operator
    watches it in every managed namespace.
    """
    install_crd(kube, PROJECT_SETTINGS_CRD_FILE, PROJECT_SETTINGS)
    return install_crd(kube, CRD_FILE, SESSIONS)


def install_crd(kube: Kube, path: Path, served: Resource) -> dict[str, Any]:
    manifest: dict[str, Any] = yaml.safe_load(path.read_text())
    name = manifest["metadata"]["name"]
    current = kube.get_or_none(CRDS, None, name)
    if current is None:
        kube.create(CRDS, None, manifest)
    else:
        manifest["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        kube.replace(CRDS, None, name, manifest)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = kube.get(CRDS, None, name).get("status") or {}
        if any(
            c.get("type") == "Established" and c.get("status") == "True"
            for c in status.get("conditions") or []
        ):
            try:
                kube.list(served, "default", limit=1)
                return manifest
            except ApiError:
                pass
        time.sleep(0.2)
    raise AssertionError(f"CRD {name} not established within 60s")


OperatorFactory = Callable[..., OperatorProcess]


@pytest.fixture
def start_operator(cluster: Cluster, crd: dict[str, Any], tmp_path: Path) -> Iterator[OperatorFactory]:
    """Starts operator processes for this test; every one is killed at teardown."""
    started: list[OperatorProcess] = []

    def start(
        namespaces: list[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        args: list[str] | None = None,
        name: str = "operator",
        ready: bool = True,
        kubeconfig: Path | None = None,
    ) -> OperatorProcess:
        process = OperatorProcess(
            kubeconfig or cluster.kubeconfig, tmp_path, namespaces=namespaces, env=env, args=args, name=name
        ).start()
        started.append(process)
        if ready:
            process.wait_ready()
        return process

    yield start
    for process in started:
        process.stop_quietly()


def session_manifest(
    name: str,
    namespace: str,
    *,
    spec: Mapping[str, Any] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "vteam.ambient-code/v1alpha1",
        "kind": "AgenticSession",
        "metadata": {"name": name, "namespace": namespace, "annotations": dict(annotations or {})},
        "spec": {"initialPrompt": "hello", "displayName": name, **(spec or {})},
    }


def create_session(kube: Kube, name: str, namespace: str, **kwargs: Any) -> dict[str, Any]:
    return kube.create(SESSIONS, namespace, session_manifest(name, namespace, **kwargs))


def wait_session(
    kube: Kube,
    namespace: str,
    name: str,
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float = 60.0,
    what: str = "condition",
) -> dict[str, Any]:
    """Polls the session until `predicate` holds; fails with its last status."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = kube.get_or_none(SESSIONS, namespace, name) or {}
        if last and predicate(last):
            return last
        time.sleep(0.25)
    from tests.e2e.operator import describe

    raise AssertionError(f"session {namespace}/{name}: {what} not reached in {timeout}s; {describe(last)}")


def phase_is(phase: str) -> Callable[[dict[str, Any]], bool]:
    return lambda s: (s.get("status") or {}).get("phase") == phase


def condition_of(session: Mapping[str, Any], kind: str) -> dict[str, Any]:
    for cond in (session.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return {}


def events_for(kube: Kube, namespace: str, name: str) -> list[dict[str, Any]]:
    events = kube.list(
        Resource("", "v1", "events", "Event"), namespace, field_selector=f"involvedObject.name={name}"
    )
    return list(events.get("items") or [])


def wait_event(kube: Kube, namespace: str, name: str, reason: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        seen = []
        for event in events_for(kube, namespace, name):
            seen.append(str(event.get("reason")))
            if event.get("reason") == reason:
                return event
        time.sleep(0.3)
    raise AssertionError(f"no Event {reason} for {namespace}/{name} in {timeout}s; saw {seen}")


def exists(kube: Kube, resource: Resource, namespace: str | None, name: str) -> bool:
    return kube.get_or_none(resource, namespace, name) is not None


def gone_or_going(kube: Kube, resource: Resource, namespace: str | None, name: str) -> bool:
    """Deleted, or marked for deletion (garbage collection and finalizers finish on their own)."""
    found = kube.get_or_none(resource, namespace, name)
    return found is None or bool(found["metadata"].get("deletionTimestamp"))


def session_phases(kube: Kube, namespace: str) -> dict[str, int]:
    """How many sessions of the namespace are in each phase."""
    found: dict[str, int] = {}
    for item in kube.list(SESSIONS, namespace).get("items") or []:
        phase = (item.get("status") or {}).get("phase") or "<none>"
        found[phase] = found.get(phase, 0) + 1
    return found


def runner_pods(kube: Kube, namespace: str, name: str) -> list[dict[str, Any]]:
    pods = kube.list(PODS, namespace, label_selector=f"job-name={runner_job_name(name)}")
    return list(pods.get("items") or [])


def annotate(kube: Kube, namespace: str, name: str, annotations: Mapping[str, str | None]) -> None:
    """Writes session annotations as the platform's backend does (None removes one)."""
    kube.patch(SESSIONS, namespace, name, {"metadata": {"annotations": dict(annotations)}})
