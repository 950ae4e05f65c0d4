"""The e2e cluster behaves like a real one.

The operator's e2e tests are only worth something if the cluster under them runs the real
controllers, scheduler, garbage collector, optimistic concurrency and watch semantics, and if the
simulated kubelet (kwok and hack/kwok/stages.yaml) produces the pod states the operator must handle.
These tests pin each of those down, so a broken harness fails here and not as a mystery elsewhere.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import urllib3
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from tests.conftest import REPO, Cluster
from tests.e2e.helpers import (
    COMPLETE_AFTER,
    EVICT_AFTER,
    EXIT_CODE,
    FAIL_AFTER,
    FAIL_REASON,
    FAKE_IMAGE,
    WAITING_MESSAGE,
    WAITING_REASON,
    condition,
    pod_manifest,
    pod_summary,
    wait_for,
    wait_until,
)


@pytest.fixture
def core(cluster: Cluster) -> Any:
    return client.CoreV1Api(cluster.api_client)


@pytest.fixture
def kwok_nodes(core: Any) -> list[str]:
    """Names of the Ready kwok nodes; pod-lifecycle tests need kwok in place of kubelets."""
    nodes = core.list_node(label_selector="type=kwok").items
    ready = [n.metadata.name for n in nodes if _is_true(condition(n, "Ready"))]
    if not ready:
        pytest.skip("needs Ready kwok nodes (label type=kwok) running hack/kwok/stages.yaml")
    return ready


JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


def _is_true(cond: Any | None) -> bool:
    return cond is not None and cond.status == "True"


def _reader(core: Any, namespace: str, name: str) -> Any:
    return lambda: core.read_namespaced_pod(name, namespace)


def _wait_phase(core: Any, namespace: str, name: str, phase: str, timeout: float = 30) -> Any:
    return wait_until(
        _reader(core, namespace, name),
        lambda pod: pod.status.phase == phase,
        timeout=timeout,
        message=f"pod {namespace}/{name} to reach phase {phase}",
    )


# --------------------------------------------------------------------------------------------------
# kwok pod lifecycle


def test_job_pod_is_created_scheduled_run_and_completed(
    cluster: Cluster, core: Any, namespace: str, kwok_nodes: list[str]
) -> None:
    batch = client.BatchV1Api(cluster.api_client)
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "runner"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": {COMPLETE_AFTER: "4s"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "runner", "image": FAKE_IMAGE}]},
            },
        },
    }
    batch.create_namespaced_job(namespace, job)

    pods = wait_until(
        lambda: core.list_namespaced_pod(namespace, label_selector=JOB_NAME_LABEL + "=runner").items,
        lambda items: len(items) == 1,
        message="kube-controller-manager's Job controller to create one pod",
    )
    name = pods[0].metadata.name
    read = _reader(core, namespace, name)

    bound = wait_until(read, lambda p: bool(p.spec.node_name), message=f"the scheduler to bind pod {name}")
    assert bound.spec.node_name.startswith("kwok-node-"), pod_summary(bound)
    assert _is_true(condition(bound, "PodScheduled")), pod_summary(bound)

    running = wait_until(
        read, lambda p: p.status.phase in ("Running", "Succeeded"), message=f"kwok to start pod {name}"
    )
    assert running.status.phase == "Running", pod_summary(running)
    assert running.status.pod_ip, pod_summary(running)
    assert _is_true(condition(running, "Ready")), pod_summary(running)
    assert running.status.container_statuses[0].state.running is not None, pod_summary(running)

    done = _wait_phase(core, namespace, name, "Succeeded")
    terminated = done.status.container_statuses[0].state.terminated
    assert terminated is not None, pod_summary(done)
    assert (terminated.exit_code, terminated.reason) == (0, "Completed")
    # complete-after counts from the pod's start; seconds resolution on both timestamps.
    assert (terminated.finished_at - terminated.started_at).total_seconds() >= 3, terminated

    finished = wait_until(
        lambda: batch.read_namespaced_job("runner", namespace),
        lambda job: _is_true(condition(job, "Complete")),
        message="Job runner to be Complete",
    )
    assert finished.status.succeeded == 1


def test_pod_without_annotations_keeps_running(core: Any, namespace: str, kwok_nodes: list[str]) -> None:
    core.create_namespaced_pod(namespace, pod_manifest("interactive"))
    _wait_phase(core, namespace, "interactive", "Running")
    time.sleep(5)
    pod = core.read_namespaced_pod("interactive", namespace)
    assert pod.status.phase == "Running", pod_summary(pod)
    assert _is_true(condition(pod, "Ready")), pod_summary(pod)
    assert all(cs.state.running is not None and cs.ready for cs in pod.status.container_statuses)


# Cases are fixture params, not parametrize marks: pytest folds the skips of unmarked tests into one
# line, so a machine without a cluster reports a single reason.
class FailCase(NamedTuple):
    annotations: dict[str, str]
    containers: int
    reason: str
    exit_code: int


FAIL_CASES = {
    "oom-killed": FailCase({FAIL_AFTER: "1s", FAIL_REASON: "OOMKilled"}, 1, "OOMKilled", 137),
    "default-error": FailCase({FAIL_AFTER: "1s"}, 2, "Error", 1),
    "exit-code": FailCase({FAIL_AFTER: "1s", EXIT_CODE: "42"}, 1, "Error", 42),
}


@pytest.fixture(params=list(FAIL_CASES.values()), ids=list(FAIL_CASES))
def fail_case(request: pytest.FixtureRequest) -> FailCase:
    case: FailCase = request.param
    return case


def test_fail_after_fails_every_container(
    core: Any, namespace: str, kwok_nodes: list[str], fail_case: FailCase
) -> None:
    manifest = pod_manifest("failing", fail_case.annotations, containers=fail_case.containers)
    core.create_namespaced_pod(namespace, manifest)
    pod = _wait_phase(core, namespace, "failing", "Failed")
    statuses = pod.status.container_statuses
    assert len(statuses) == fail_case.containers, pod_summary(pod)
    for cs in statuses:
        assert cs.state.terminated is not None, pod_summary(pod)
        assert (cs.state.terminated.reason, cs.state.terminated.exit_code) == (
            fail_case.reason,
            fail_case.exit_code,
        )
        assert not cs.ready


class WaitingCase(NamedTuple):
    annotations: dict[str, str]
    container_extra: dict[str, Any]
    reason: str
    message: str


SECRET_ENV = {"env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "runner-token", "key": "t"}}}]}
WAITING_CASES = {
    "image-pull-backoff": WaitingCase(
        {WAITING_REASON: "ImagePullBackOff"}, {}, "ImagePullBackOff", f'Back-off pulling image "{FAKE_IMAGE}"'
    ),
    "err-image-pull": WaitingCase(
        {WAITING_REASON: "ErrImagePull"}, {}, "ErrImagePull", "failed to pull and unpack image"
    ),
    "invalid-image": WaitingCase(
        {WAITING_REASON: "InvalidImageName"}, {}, "InvalidImageName", "invalid reference format"
    ),
    "config-error": WaitingCase(
        {WAITING_REASON: "CreateContainerConfigError"},
        SECRET_ENV,
        "CreateContainerConfigError",
        'secret "runner-token" not found',
    ),
    "crash-loop": WaitingCase(
        {WAITING_REASON: "CrashLoopBackOff"},
        {},
        "CrashLoopBackOff",
        "back-off 10s restarting failed container=runner",
    ),
    "custom-message": WaitingCase(
        {WAITING_REASON: "ErrImagePull", WAITING_MESSAGE: "pull access denied"},
        {},
        "ErrImagePull",
        "pull access denied",
    ),
}


@pytest.fixture(params=list(WAITING_CASES.values()), ids=list(WAITING_CASES))
def waiting_case(request: pytest.FixtureRequest) -> WaitingCase:
    case: WaitingCase = request.param
    return case


def test_waiting_reason_keeps_pod_pending(
    core: Any, namespace: str, kwok_nodes: list[str], waiting_case: WaitingCase
) -> None:
    annotations, container_extra, reason, message = waiting_case
    manifest = pod_manifest("stuck", annotations)
    manifest["spec"]["containers"][0].update(container_extra)
    core.create_namespaced_pod(namespace, manifest)
    read = _reader(core, namespace, "stuck")
    wait_until(read, lambda p: bool(p.status.container_statuses), message="kwok to report container statuses")
    time.sleep(3)
    pod = read()
    assert pod.status.phase == "Pending", pod_summary(pod)
    assert _is_true(condition(pod, "PodScheduled")), pod_summary(pod)
    ready = condition(pod, "Ready")
    assert ready is not None and ready.status == "False", pod_summary(pod)
    waiting = pod.status.container_statuses[0].state.waiting
    assert waiting is not None, pod_summary(pod)
    assert waiting.reason == reason
    assert message in (waiting.message or ""), waiting.message


def test_evict_after_evicts_the_pod(core: Any, namespace: str, kwok_nodes: list[str]) -> None:
    core.create_namespaced_pod(namespace, pod_manifest("evicted", {EVICT_AFTER: "1s"}))
    pod = _wait_phase(core, namespace, "evicted", "Failed")
    assert pod.status.reason == "Evicted", pod_summary(pod)
    assert pod.status.message.startswith("The node was low on resource: memory. "), pod.status.message
    assert "Container runner was using" in pod.status.message
    disruption = condition(pod, "DisruptionTarget")
    assert disruption is not None and _is_true(disruption), pod_summary(pod)
    assert disruption.reason == "TerminationByKubelet"


def test_deleted_pod_is_removed_despite_finalizers(core: Any, namespace: str, kwok_nodes: list[str]) -> None:
    manifest = pod_manifest("doomed")
    manifest["metadata"]["finalizers"] = ["e2e.ambient-code.io/hold"]
    core.create_namespaced_pod(namespace, manifest)
    _wait_phase(core, namespace, "doomed", "Running")
    core.delete_namespaced_pod("doomed", namespace)  # graceful: only a kubelet (here kwok) finishes it

    def gone() -> bool:
        try:
            core.read_namespaced_pod("doomed", namespace)
        except ApiException as exc:
            return bool(exc.status == 404)
        return False

    wait_for(gone, timeout=20, message="kwok's pod-delete stage to clear finalizers and delete the pod")


# --------------------------------------------------------------------------------------------------
# API machinery


def test_garbage_collector_deletes_dependents(core: Any, namespace: str) -> None:
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}, "data": {"k": "v"}})
    reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "dependent", "ownerReferences": [reference]}, "data": {"k": "v"}}
    )
    core.delete_namespaced_config_map("owner", namespace, propagation_policy="Background")

    def dependent_gone() -> bool:
        try:
            core.read_namespaced_config_map("dependent", namespace)
        except ApiException as exc:
            return bool(exc.status == 404)
        return False

    wait_for(dependent_gone, timeout=30, message="the garbage collector to delete ConfigMap dependent")


@pytest.fixture
def throwaway_crd(cluster: Cluster) -> Iterator[tuple[str, str, str, str]]:
    """A namespaced CRD with a status subresource, unique per run; yields (group, version, plural, kind)."""
    ext = client.ApiextensionsV1Api(cluster.api_client)
    suffix = secrets.token_hex(3)
    group, plural, kind = "e2e.ambient-code.io", f"probes{suffix}", f"Probe{suffix.upper()}"
    schema = {
        "type": "object",
        "properties": {
            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
    }
    ext.create_custom_resource_definition(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {"plural": plural, "singular": plural[:-1], "kind": kind, "listKind": f"{kind}List"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {"openAPIV3Schema": schema},
                        "subresources": {"status": {}},
                    }
                ],
            },
        }
    )
    try:
        wait_until(
            lambda: ext.read_custom_resource_definition(f"{plural}.{group}"),
            lambda crd: _is_true(condition(crd, "Established")),
            message=f"CRD {plural}.{group} to be Established",
        )
        yield group, "v1", plural, kind
    finally:
        ext.delete_custom_resource_definition(f"{plural}.{group}")


def test_status_subresource_moves_generation_only_on_spec_changes(
    cluster: Cluster, namespace: str, throwaway_crd: tuple[str, str, str, str]
) -> None:
    group, version, plural, kind = throwaway_crd
    custom = client.CustomObjectsApi(cluster.api_client)
    body = {
        "apiVersion": f"{group}/{version}",
        "kind": kind,
        "metadata": {"name": "one"},
        "spec": {"size": 1},
    }
    created = wait_for(
        lambda: custom.create_namespaced_custom_object(group, version, namespace, plural, body),
        message="the new resource to be served",
        ignore=(ApiException,),
    )
    assert created["metadata"]["generation"] == 1

    changed = custom.patch_namespaced_custom_object(
        group, version, namespace, plural, "one", {"spec": {"size": 2}}
    )
    assert changed["metadata"]["generation"] == 2

    with_status = custom.patch_namespaced_custom_object_status(
        group, version, namespace, plural, "one", {"status": {"observedGeneration": 2, "phase": "Ready"}}
    )
    assert with_status["metadata"]["generation"] == 2
    assert with_status["status"] == {"observedGeneration": 2, "phase": "Ready"}

    # Through the main resource, status is ignored and a status-only change is not a spec change.
    ignored = custom.patch_namespaced_custom_object(
        group, version, namespace, plural, "one", {"status": {"phase": "Overwritten"}}
    )
    assert ignored["metadata"]["generation"] == 2
    assert ignored["status"]["phase"] == "Ready"


def test_update_with_stale_resource_version_conflicts(core: Any, namespace: str) -> None:
    stale = core.create_namespaced_config_map(namespace, {"metadata": {"name": "cas"}, "data": {"n": "0"}})
    fresh = core.read_namespaced_config_map("cas", namespace)
    fresh.data = {"n": "1"}
    core.replace_namespaced_config_map("cas", namespace, fresh)

    stale.data = {"n": "2"}
    with pytest.raises(ApiException) as raised:
        core.replace_namespaced_config_map("cas", namespace, stale)
    assert raised.value.status == 409
    assert core.read_namespaced_config_map("cas", namespace).data == {"n": "1"}


def _etcd(etcd_url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{etcd_url}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        result: dict[str, Any] = json.loads(response.read())
    return result


def test_watch_from_compacted_resource_version_is_gone(cluster: Cluster, core: Any, namespace: str) -> None:
    """Events are used because kube-apiserver disables the watch cache for them by default, so the
    watch goes to etcd and the 410 comes from the compaction itself (a cached resource would answer
    from the watch cache, which keeps recent history regardless of compaction)."""
    if cluster.etcd_url is None:
        pytest.skip(f"--cluster={cluster.mode} does not expose etcd, which this test must compact")
    try:
        _etcd(cluster.etcd_url, "/v3/kv/range", {"key": base64.b64encode(b"/").decode()})
    except (OSError, urllib.error.URLError) as exc:
        pytest.skip(f"etcd at {cluster.etcd_url} is not reachable: {exc}")

    def event(name: str) -> dict[str, Any]:
        return {
            "metadata": {"name": name},
            "involvedObject": {"apiVersion": "v1", "kind": "ConfigMap", "namespace": namespace, "name": "x"},
            "reason": "E2E",
            "message": name,
            "type": "Normal",
        }

    old_rv = core.create_namespaced_event(namespace, event("first")).metadata.resource_version
    for i in range(3):
        core.create_namespaced_event(namespace, event(f"later-{i}"))
    header = _etcd(cluster.etcd_url, "/v3/kv/range", {"key": base64.b64encode(b"/").decode()})["header"]
    revision = int(header["revision"])
    assert revision > int(old_rv)
    _etcd(cluster.etcd_url, "/v3/kv/compaction", {"revision": revision, "physical": True})

    seen = []
    with pytest.raises(ApiException) as raised:
        for ev in watch.Watch().stream(
            core.list_namespaced_event, namespace, resource_version=old_rv, timeout_seconds=10
        ):
            seen.append((ev["type"], ev["object"].metadata.name))
    assert raised.value.status == 410, (raised.value, seen)


# --------------------------------------------------------------------------------------------------
# local control plane only


def _pinned_k8s_version() -> str:
    for line in (REPO / "hack" / "versions.env").read_text().splitlines():
        if line.startswith("K8S_VERSION="):
            return line.split("=", 1)[1].strip()
    raise AssertionError("K8S_VERSION is missing from hack/versions.env")


def test_version_is_the_pinned_kubernetes(cluster: Cluster) -> None:
    if cluster.mode != "local":
        pytest.skip("only the local control plane is built from hack/versions.env")
    version = client.VersionApi(cluster.api_client).get_code()
    assert version.git_version == _pinned_k8s_version()


def test_api_server_restart_keeps_state(cluster: Cluster, core: Any, namespace: str) -> None:
    if cluster.local is None:
        pytest.skip("restarting the API server needs --cluster=local")
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "survivor"}, "data": {"k": "v"}})
    cluster.restart("kube-apiserver")
    survivor = wait_for(
        lambda: core.read_namespaced_config_map("survivor", namespace),
        timeout=30,
        message="the restarted API server to serve the ConfigMap again",
        ignore=(ApiException, urllib3.exceptions.HTTPError),
    )
    assert survivor.data == {"k": "v"}
    assert Path(cluster.kubeconfig).is_file()
