"""The platform's runner contract on a real API server: credentials, agent registry, copied Secrets.

Each operator here treats the test namespace (or a second one) as the platform's backend namespace,
so the registry ConfigMap and the Secrets to copy are ordinary objects the test writes.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.api_error import ApiError
from controller.kube import Kube
from controller.names import runner_job_name
from controller.resources import JOBS, SECRETS, SESSIONS, Resource
from tests.conftest import Cluster
from tests.e2e.conftest import (
    OperatorFactory,
    annotate,
    condition_of,
    create_session,
    events_for,
    phase_is,
    wait_event,
    wait_session,
)
from tests.e2e.helpers import wait_for

CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
REGISTRY = "ambient-agent-registry"
LANGFUSE = "ambient-admin-langfuse-secret"


def _job(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    job = wait_for(
        lambda: kube.get_or_none(JOBS, namespace, runner_job_name(name)), message=f"runner Job of {name}"
    )
    assert job is not None
    return job


def _runner(job: dict[str, Any]) -> dict[str, Any]:
    return dict(job["spec"]["template"]["spec"]["containers"][0])


def _secret(name: str, namespace: str, data: dict[str, str]) -> dict[str, Any]:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": encoded,
    }


def _registry(namespace: str, runtimes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": REGISTRY, "namespace": namespace},
        "data": {"agent-registry.json": json.dumps(runtimes)},
    }


def _runtime(runtime_id: str, image: str) -> dict[str, Any]:
    return {"id": runtime_id, "container": {"image": image, "port": 8001, "env": {"RUNNER_TYPE": runtime_id}}}


def _platform_args(backend: str) -> list[str]:
    return ["--backend-namespace", backend]


@pytest.fixture
def backend_namespace(cluster: Cluster, kube: Kube, namespace: str) -> Iterator[str]:
    """A second, unmanaged namespace playing the platform's backend namespace."""
    name = f"{namespace[:50]}-be"
    kube.create(NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    try:
        yield name
    finally:
        kube.delete_ignore_missing(NAMESPACES, None, name, propagation="Background")


def test_missing_runner_secret_keeps_the_session_pending_until_it_exists(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    start_operator([namespace], args=[*_platform_args(namespace), "--require-runner-secret"])
    create_session(kube, "needs-keys", namespace)
    session = wait_session(
        kube,
        namespace,
        "needs-keys",
        lambda s: condition_of(s, "SecretsReady").get("reason") == "RunnerSecretMissing",
        what="SecretsReady=False/RunnerSecretMissing",
    )
    assert session["status"]["phase"] == "Pending"
    assert condition_of(session, "SecretsReady")["status"] == "False"
    assert "ambient-runner-secrets" in condition_of(session, "SecretsReady")["message"]
    wait_event(kube, namespace, "needs-keys", "RunnerSecretMissing")
    assert kube.get_or_none(JOBS, namespace, runner_job_name("needs-keys")) is None

    kube.create(SECRETS, namespace, _secret("ambient-runner-secrets", namespace, {"ANTHROPIC_API_KEY": "k"}))
    session = wait_session(kube, namespace, "needs-keys", phase_is("Running"), what="phase Running")
    assert condition_of(session, "SecretsReady")["status"] == "True"
    runner = _runner(_job(kube, namespace, "needs-keys"))
    assert runner["envFrom"] == [{"secretRef": {"name": "ambient-runner-secrets"}}]
    assert session["metadata"]["annotations"]["ambient-code.io/runner-sa"] == "ambient-session-needs-keys"


def test_registry_changes_apply_to_the_next_runner_only(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    kube.create(
        CONFIGMAPS, namespace, _registry(namespace, [_runtime("claude-agent-sdk", "reg.invalid/a:1")])
    )
    start_operator([namespace], args=_platform_args(namespace))
    create_session(kube, "first", namespace)
    wait_session(kube, namespace, "first", phase_is("Running"), what="phase Running")
    first = _job(kube, namespace, "first")
    assert _runner(first)["image"] == "reg.invalid/a:1"

    current = kube.get(CONFIGMAPS, namespace, REGISTRY)
    current["data"]["agent-registry.json"] = json.dumps([_runtime("claude-agent-sdk", "reg.invalid/b:2")])
    kube.replace(CONFIGMAPS, namespace, REGISTRY, current)
    # The next session's Job uses the new image (the watch delivers the change within moments).
    wait_for(
        lambda: _registry_applied(kube, namespace, "reg.invalid/b:2"), timeout=20, message="registry edit"
    )
    second = _job(kube, namespace, "second")
    assert _runner(second)["image"] == "reg.invalid/b:2"
    untouched = kube.get(JOBS, namespace, runner_job_name("first"))
    assert untouched["metadata"]["uid"] == first["metadata"]["uid"]
    assert _runner(untouched)["image"] == "reg.invalid/a:1"
    assert wait_session(kube, namespace, "first", phase_is("Running"))

    # A runtime the registry lacks: the session waits, named; adding it starts the session.
    create_session(kube, "odd", namespace, spec={"runnerType": "no-such-runtime"})
    odd = wait_session(
        kube,
        namespace,
        "odd",
        lambda s: condition_of(s, "Reconciled").get("reason") == "UnknownRunnerType",
        what="Reconciled=False/UnknownRunnerType",
    )
    assert odd["status"]["phase"] == "Pending"
    assert "no-such-runtime" in condition_of(odd, "Reconciled")["message"]
    assert "no-such-runtime" in wait_event(kube, namespace, "odd", "UnknownRunnerType")["message"]
    assert kube.get_or_none(JOBS, namespace, runner_job_name("odd")) is None
    current = kube.get(CONFIGMAPS, namespace, REGISTRY)
    current["data"]["agent-registry.json"] = json.dumps(
        [_runtime("claude-agent-sdk", "reg.invalid/b:2"), _runtime("no-such-runtime", "reg.invalid/odd:1")]
    )
    kube.replace(CONFIGMAPS, namespace, REGISTRY, current)
    odd_runner = _runner(_job(kube, namespace, "odd"))
    assert odd_runner["image"] == "reg.invalid/odd:1"
    assert {"name": "RUNNER_TYPE", "value": "no-such-runtime"} in odd_runner["env"]

    # Registry gone: the flags apply, and a Warning Event on the ConfigMap says so.
    kube.delete(CONFIGMAPS, namespace, REGISTRY)
    event = wait_event(kube, namespace, REGISTRY, "AgentRegistryUnavailable")
    assert event["type"] == "Warning" and "does not exist" in event["message"]
    create_session(kube, "third", namespace)
    assert _runner(_job(kube, namespace, "third"))["image"] == "registry.invalid/runner:e2e"
    assert (
        len([e for e in events_for(kube, namespace, REGISTRY) if e["reason"] == "AgentRegistryUnavailable"])
        == 1
    )


def _registry_applied(kube: Kube, namespace: str, image: str) -> bool:
    """Creates probe sessions until one gets `image`; the one that does is named 'second'."""
    probe = kube.get_or_none(SESSIONS, namespace, "second")
    if probe is None:
        create_session(kube, "second", namespace)
    job = kube.get_or_none(JOBS, namespace, runner_job_name("second"))
    if job is None:
        return False
    if _runner(job)["image"] == image:
        return True
    kube.delete(SESSIONS, namespace, "second")
    wait_for(lambda: kube.get_or_none(SESSIONS, namespace, "second") is None, message="probe deleted")
    wait_for(lambda: kube.get_or_none(JOBS, namespace, runner_job_name("second")) is None, message="job gone")
    return False


def test_copied_secret_stays_while_a_session_needs_it(
    kube: Kube, namespace: str, backend_namespace: str, start_operator: OperatorFactory
) -> None:
    kube.create(
        SECRETS, backend_namespace, _secret(LANGFUSE, backend_namespace, {"LANGFUSE_ENABLED": "true"})
    )
    start_operator([namespace], args=_platform_args(backend_namespace), env={"LANGFUSE_ENABLED": "true"})
    for name in ("one", "two"):
        create_session(kube, name, namespace)
    for name in ("one", "two"):
        wait_session(kube, namespace, name, phase_is("Running"), what="phase Running")
    copy = wait_for(
        lambda: _with_owners(kube, namespace, 2), timeout=20, message="the copy owned by both sessions"
    )
    assert copy is not None
    assert (
        copy["metadata"]["annotations"]["vteam.ambient-code/copied-from"] == f"{backend_namespace}/{LANGFUSE}"
    )
    env = {e["name"]: e for e in _runner(_job(kube, namespace, "one"))["env"]}
    assert env["LANGFUSE_ENABLED"]["valueFrom"]["secretKeyRef"] == {
        "name": LANGFUSE,
        "key": "LANGFUSE_ENABLED",
        "optional": True,
    }

    source = kube.get(SECRETS, backend_namespace, LANGFUSE)
    source["data"]["LANGFUSE_HOST"] = base64.b64encode(b"https://lf.example").decode()
    kube.replace(SECRETS, backend_namespace, LANGFUSE, source)
    wait_for(
        lambda: "LANGFUSE_HOST" in (kube.get(SECRETS, namespace, LANGFUSE).get("data") or {}),
        timeout=20,
        message="the copy follows its source",
    )

    annotate(kube, namespace, "one", {"ambient-code.io/desired-phase": "Stopped"})
    wait_session(kube, namespace, "one", phase_is("Stopped"), what="phase Stopped")
    assert kube.get_or_none(SECRETS, namespace, LANGFUSE) is not None
    annotate(kube, namespace, "two", {"ambient-code.io/desired-phase": "Stopped"})
    wait_session(kube, namespace, "two", phase_is("Stopped"), what="phase Stopped")
    wait_for(
        lambda: kube.get_or_none(SECRETS, namespace, LANGFUSE) is None, timeout=20, message="copy deleted"
    )
    assert kube.get_or_none(SECRETS, backend_namespace, LANGFUSE) is not None


def _with_owners(kube: Kube, namespace: str, count: int) -> dict[str, Any] | None:
    try:
        copy = kube.get(SECRETS, namespace, LANGFUSE)
    except ApiError:
        return None
    return copy if len(copy["metadata"].get("ownerReferences") or []) == count else None


def test_the_original_operators_env_names_make_the_same_job(
    kube: Kube, namespace: str, start_operator: OperatorFactory, tmp_path: Path
) -> None:
    registry = tmp_path / "agent-registry.json"
    registry.write_text(json.dumps([_runtime("claude-agent-sdk", "reg.invalid/from-file:1")]))
    kube.create(SECRETS, namespace, _secret("ambient-vertex", namespace, {"ambient-code-key.json": "{}"}))
    common = {
        "BACKEND_NAMESPACE": namespace,
        "CLOUD_ML_REGION": "global",
        "ANTHROPIC_VERTEX_PROJECT_ID": "p",
        "GOOGLE_APPLICATION_CREDENTIALS": "/app/vertex/ambient-code-key.json",
        "STATE_SYNC_IMAGE": "reg.invalid/sync:1",
        "LANGFUSE_ENABLED": "false",
    }
    ours = {
        **common,
        "OPERATOR_NAMESPACE": namespace,
        "RUNNER_IMAGE_PULL_POLICY": "IfNotPresent",
        "WORKERS_SESSIONS": "3",
        "AGENT_REGISTRY_FILE": str(registry),
        "USE_VERTEX": "1",
    }
    head = {
        **common,
        "NAMESPACE": namespace,
        "IMAGE_PULL_POLICY": "IfNotPresent",
        "MAX_CONCURRENT_RECONCILES": "3",
        "AGENT_REGISTRY_PATH": str(registry),
        "CLAUDE_CODE_USE_VERTEX": "1",
    }
    jobs = {}
    for label, env in (("ours", ours), ("head", head)):
        operator = start_operator([namespace], env=env, name=label)
        create_session(kube, f"via-{label}", namespace)
        jobs[label] = _job(kube, namespace, f"via-{label}")["spec"]["template"]["spec"]
        operator.terminate()
    runner = jobs["ours"]["containers"][0]
    assert runner["image"] == "reg.invalid/from-file:1"
    assert runner["imagePullPolicy"] == "IfNotPresent"
    assert {"name": "USE_VERTEX", "value": "1"} in runner["env"]
    assert json.dumps(jobs["ours"], sort_keys=True).replace("via-ours", "via-head") == json.dumps(
        jobs["head"], sort_keys=True
    )
