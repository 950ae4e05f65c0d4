"""The cluster side of a run: connection, CRD, namespaces, room for the runner pods, the machine.

The benchmark brings what it needs and removes what it made, so it can run against a cluster that
other work shares: its own namespaces (unique per run), the CRD only when missing, and extra kwok
nodes only when the existing ones cannot hold every runner pod.
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from controller.api_error import ApiError
from controller.kube import Kube, load_api_client
from controller.resources import NAMESPACES, PODS, SECRETS, SESSIONS, Resource

REPO = Path(__file__).resolve().parent.parent
CRD_FILE = REPO / "manifests" / "crd" / "agenticsessions.vteam.ambient-code.yaml"
# The operator's install has both; without this one its ProjectSettings cache never syncs.
PROJECT_SETTINGS_CRD_FILE = REPO / "manifests" / "crd" / "projectsettings.vteam.ambient-code.yaml"
CRDS = Resource(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", namespaced=False
)
NODES = Resource("", "v1", "nodes", "Node", namespaced=False)
PVS = Resource("", "v1", "persistentvolumes", "PersistentVolume", namespaced=False)
PREFIX = "bench-"
MANAGED_LABEL = "ambient-code.io/managed"
PODS_PER_NODE = 1000
NODE_RESOURCES = {"cpu": "32", "memory": "256Gi", "pods": str(PODS_PER_NODE), "ephemeral-storage": "500Gi"}


def connect(kubeconfig: Path) -> Kube:
    return Kube(load_api_client(str(kubeconfig)), request_timeout=60.0)


def ensure_crd(kube: Kube, timeout: float = 60.0) -> None:
    """Installs the operator's CRDs from manifests/ when missing; waits until AgenticSession is served."""
    for path in (PROJECT_SETTINGS_CRD_FILE, CRD_FILE):
        manifest: dict[str, Any] = yaml.safe_load(path.read_text())
        name = manifest["metadata"]["name"]
        if kube.get_or_none(CRDS, None, name) is None:
            kube.create(CRDS, None, manifest)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conditions = (kube.get(CRDS, None, name).get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
            try:
                kube.list(SESSIONS, "default", limit=1)
                return
            except ApiError:
                pass
        time.sleep(0.2)
    raise TimeoutError(f"CRD {name} not established within {timeout:.0f}s")


def create_namespaces(
    kube: Kube, names: list[str], *, managed: bool, extra_labels: dict[str, str] | None = None
) -> None:
    """Only the operator's namespaces carry the managed label; the limit's must stay invisible to it."""
    labels = {MANAGED_LABEL: "true"} if managed else {"ambient-code.io/benchmark": "limit"}
    labels.update(extra_labels or {})
    for name in names:
        kube.create(NAMESPACES, None, {"metadata": {"name": name, "labels": labels}})
        if managed:
            # As on the platform: the runner's API keys, without which a session stays Pending.
            secret = {
                "metadata": {"name": "ambient-runner-secrets"},
                "stringData": {"ANTHROPIC_API_KEY": "bench"},
            }
            kube.create(SECRETS, name, secret)


def delete_namespaces(kube: Kube, names: list[str], timeout: float) -> list[str]:
    """Deletes in the background and waits at most `timeout`; returns the names still terminating."""
    for name in names:
        kube.delete_ignore_missing(NAMESPACES, None, name, propagation="Background")
    deadline = time.monotonic() + timeout
    remaining = list(names)
    while remaining and time.monotonic() < deadline:
        time.sleep(1.0)
        remaining = [name for name in remaining if _exists(kube, NAMESPACES, name)]
    return remaining


def leftovers(kube: Kube) -> tuple[int, int]:
    """(terminating namespaces, PersistentVolumes) that earlier benchmark runs left behind.

    kube-controller-manager reclaims them through the same rate-limited client that binds the next
    run's claims, so a run started on top of them measures the clean-up of the previous one.
    """
    namespaces = [
        ns
        for ns in kube.list(NAMESPACES).get("items") or []
        if ns["metadata"]["name"].startswith(PREFIX)
        and (ns.get("status") or {}).get("phase") == "Terminating"
    ]
    volumes = [
        pv
        for pv in kube.list(PVS).get("items") or []
        if str(((pv.get("spec") or {}).get("claimRef") or {}).get("namespace", "")).startswith(PREFIX)
    ]
    return len(namespaces), len(volumes)


def wait_for_leftovers(kube: Kube, timeout: float, say: Callable[[str], None]) -> dict[str, Any]:
    """Waits (at most `timeout`) until earlier runs are cleaned up; says what was left if not."""
    started = time.monotonic()
    namespaces, volumes = leftovers(kube)
    if namespaces or volumes:
        say(f"waiting for {namespaces} namespaces and {volumes} volumes of earlier runs to be reclaimed")
    while (namespaces or volumes) and time.monotonic() - started < timeout:
        time.sleep(5.0)
        namespaces, volumes = leftovers(kube)
    return {
        "seconds_waited": round(time.monotonic() - started, 1),
        "namespaces_left": namespaces,
        "volumes_left": volumes,
    }


def _exists(kube: Kube, resource: Resource, name: str) -> bool:
    return kube.get_or_none(resource, None, name) is not None


def _node_usable(node: dict[str, Any]) -> bool:
    spec, status = node.get("spec") or {}, node.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )
    return ready and not spec.get("unschedulable") and not spec.get("taints")


def count_quantity(text: str) -> int:
    """A count written as a Kubernetes quantity: the API server canonicalises 1000 pods to '1k'."""
    for suffix, factor in (
        ("Ki", 2**10),
        ("Mi", 2**20),
        ("Gi", 2**30),
        ("k", 10**3),
        ("M", 10**6),
        ("G", 10**9),
    ):
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(float(text))


def free_pod_slots(kube: Kube) -> int:
    """Pods the usable nodes can still take (allocatable pods minus pods not yet finished)."""
    nodes = kube.list(NODES).get("items") or []
    usable = {n["metadata"]["name"] for n in nodes if _node_usable(n)}
    capacity = sum(
        count_quantity(str(((n.get("status") or {}).get("allocatable") or {}).get("pods", "0")))
        for n in nodes
        if n["metadata"]["name"] in usable
    )
    pods = kube.list(PODS, field_selector="status.phase!=Succeeded,status.phase!=Failed").get("items") or []
    used = sum(1 for p in pods if (p.get("spec") or {}).get("nodeName") in usable)
    return capacity - used


def add_kwok_nodes(kube: Kube, pods_needed: int, prefix: str, timeout: float = 120.0) -> list[str]:
    """Adds fake nodes (kwok manages every node labelled type=kwok) until `pods_needed` pods fit."""
    missing = pods_needed - free_pod_slots(kube)
    if missing <= 0:
        return []
    names = [f"{prefix}-{index}" for index in range(math.ceil(missing / PODS_PER_NODE))]
    for name in names:
        kube.create(
            NODES,
            None,
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
                },
                "spec": {},
                "status": {"capacity": NODE_RESOURCES, "allocatable": NODE_RESOURCES},
            },
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(_node_usable(kube.get(NODES, None, name)) for name in names):
            return names
        time.sleep(1.0)
    raise TimeoutError(f"kwok nodes {', '.join(names)} not Ready within {timeout:.0f}s")


def delete_nodes(kube: Kube, names: list[str]) -> None:
    for name in names:
        kube.delete_ignore_missing(NODES, None, name)


def machine(kube: Kube, command: str) -> dict[str, Any]:
    """What a reader needs to compare two runs: hardware, software versions, commit, command."""
    version = kube.request("GET", "/version", verb="get", resource="version")
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command,
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_mib": _mem_total_mib(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "kubernetes": version.get("gitVersion", ""),
        "git_commit": _git_commit(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _mem_total_mib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 0


def _git_commit() -> str:
    """Short commit, with '-dirty' when the tree has changes the commit does not describe."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit
