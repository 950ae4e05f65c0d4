"""One bad object never stops the operator: poison sessions on a real API server.

Every object here is one the API server accepts: a spec nested 5,000 levels deep, a dotted name, a
child an admission policy refuses with 422, and a hundred sessions from a seeded generator of what
the CRD admits. Each ends in a phase with a reason, and a plain session next to them still runs.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from controller.api_error import ApiError
from controller.kube import Kube
from controller.names import runner_job_name
from controller.resources import JOBS, SERVICES, SESSIONS, Resource
from tests.e2e.conftest import (
    OperatorFactory,
    condition_of,
    create_session,
    phase_is,
    session_manifest,
    wait_event,
    wait_session,
)
from tests.e2e.helpers import wait_for, wait_until
from tests.e2e.operator import OperatorProcess

DEPTH = 5000
POLICIES = Resource(
    "admissionregistration.k8s.io", "v1", "validatingadmissionpolicies", "ValidatingAdmissionPolicy", False
)
BINDINGS = Resource(
    "admissionregistration.k8s.io",
    "v1",
    "validatingadmissionpolicybindings",
    "ValidatingAdmissionPolicyBinding",
    False,
)
SETTLED = ("Running", "Failed", "Stopped", "Completed")


def create_deep_session(kube: Kube, namespace: str, name: str) -> None:
    """POSTs the body as text: json.dumps, like the C decoder, recurses once per level."""
    body = json.dumps(session_manifest(name, namespace))
    nested = '{"a":' * DEPTH + "1" + "}" * DEPTH
    body = body[:-2] + ',"mcpServers":{"custom":{"deep":' + nested + "}}}}"
    kube.pool.request(
        "POST",
        kube.host + SESSIONS.path(namespace),
        body=body.encode(),
        headers=kube._headers("application/json"),
    ).release_conn()
    assert kube.get_or_none(SESSIONS, namespace, name) is not None, "the API server refused the deep session"


def assert_clean_log(log: str) -> None:
    assert "Traceback" not in log, log[log.index("Traceback") - 2000 :][:6000]


def session_writes(operator: OperatorProcess) -> float:
    return operator.metric(
        "agentic_operator_rest_client_requests_total", verb="patch", resource="agenticsessions"
    )


def reason_of(session: dict[str, Any]) -> str:
    return str(condition_of(session, "Reconciled").get("reason", ""))


def test_deep_spec_and_dotted_name_fail_alone(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    first = start_operator([namespace], name="first")
    create_deep_session(kube, namespace, "deep")
    create_session(kube, "dotted.name", namespace)
    create_session(kube, "plain", namespace)

    deep = wait_session(kube, namespace, "deep", phase_is("Failed"), timeout=30, what="Failed")
    assert reason_of(deep) == "SpecTooComplex"
    assert "64 levels" in condition_of(deep, "Reconciled")["message"]
    wait_event(kube, namespace, "deep", "SpecTooComplex")
    assert kube.get_or_none(JOBS, namespace, runner_job_name("deep")) is None, "a cut spec was provisioned"
    dotted = wait_session(kube, namespace, "dotted.name", phase_is("Failed"), timeout=10, what="Failed")
    assert reason_of(dotted) == "InvalidName"
    assert kube.get_or_none(JOBS, namespace, runner_job_name("dotted.name")) is None
    wait_session(kube, namespace, "plain", phase_is("Running"), timeout=30, what="Running")
    assert first.metric("agentic_operator_poison_objects_total", kind="AgenticSession") >= 1
    writes = session_writes(first)
    time.sleep(2)  # a status the cache could not see would be written again on each of its own events
    assert session_writes(first) == writes, "the operator keeps writing settled sessions"
    assert first.terminate() == 0

    # Restarted over the deep session, the operator's initial LIST holds it: ready as fast as ever.
    started = time.monotonic()
    second = start_operator([namespace], name="second", ready=False)
    second.wait_ready(timeout=20)
    assert time.monotonic() - started < 15, "cold start over a poison object took too long"
    assert second.healthz()[0] == 200
    create_session(kube, "after-restart", namespace)
    wait_session(kube, namespace, "after-restart", phase_is("Running"), timeout=30, what="Running")
    assert phase_is("Failed")(kube.get(SESSIONS, namespace, "deep"))
    assert second.healthz()[0] == 200
    assert_clean_log(first.log_text() + second.log_text())


@pytest.fixture
def refused_jobs(kube: Kube, namespace: str) -> Iterator[str]:
    """An admission policy that answers 422 to runner Jobs of sessions named refused-* here."""
    name = f"e2e-refuse-{namespace}"[:63]
    kube.create(
        POLICIES,
        None,
        {
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": ["batch"],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["jobs"],
                        }
                    ]
                },
                "validations": [
                    {
                        "expression": "!object.metadata.name.startsWith('refused-')",
                        "message": "runner Jobs of refused-* sessions are not allowed in this namespace",
                        "reason": "Invalid",
                    }
                ],
            },
        },
    )
    kube.create(
        BINDINGS,
        None,
        {
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
                },
            },
        },
    )
    probe = {
        "metadata": {"name": "refused-probe"},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "registry.invalid/x"}],
                }
            }
        },
    }

    def refused() -> bool:
        try:
            kube.request(
                "POST",
                JOBS.path(namespace),
                verb="create",
                resource="jobs",
                query={"dryRun": "All"},
                body=probe,
            )
        except ApiError as exc:
            return exc.status == 422
        return False

    wait_for(refused, 30, message="the admission policy answers 422")
    try:
        yield name
    finally:
        for resource in (BINDINGS, POLICIES):
            kube.delete_ignore_missing(resource, None, name)


def test_child_refused_with_422_is_terminal(
    kube: Kube, namespace: str, start_operator: OperatorFactory, refused_jobs: str
) -> None:
    operator = start_operator([namespace])
    create_session(kube, "refused-job", namespace)
    session = wait_session(kube, namespace, "refused-job", phase_is("Failed"), timeout=30, what="Failed")
    reconciled = condition_of(session, "Reconciled")
    assert reconciled["reason"] == "ProvisioningRejected"
    assert "422 Invalid" in reconciled["message"]
    assert "not allowed in this namespace" in reconciled["message"]
    wait_event(kube, namespace, "refused-job", "ProvisioningRejected")
    time.sleep(3)  # would a worker spin, the create count would climb
    creates = operator.metric(
        "agentic_operator_rest_client_requests_total", verb="create", resource="jobs", code="422"
    )
    assert creates == 1, f"{creates} Job creates refused; a permanent error must not be retried"
    assert phase_is("Failed")(kube.get(SESSIONS, namespace, "refused-job"))
    assert_clean_log(operator.log_text())


def generated_sessions(namespace: str, count: int, seed: int) -> list[dict[str, Any]]:
    """Sessions the CRD admits, drawn to hit the operator's edges: names, sizes, numbers, nesting."""
    rng = random.Random(seed)
    text_pool = ["", " ", "ü\u2603\U0001f600", "a" * 300, "\u202e\u0000x", "$(rm -rf /)", "x\ny", "💥" * 50]

    def text() -> str:
        return rng.choice(text_pool) + rng.choice(["", str(rng.randint(0, 9))])

    def json_value(depth: int) -> Any:
        kind = rng.randrange(6 if depth > 0 else 4)
        if kind == 0:
            return rng.choice([0, -1, 2**53 + 1, 2**63 - 1, -(2**63), 1.5e300, -0.0])
        if kind == 1:
            return text()
        if kind == 2:
            return rng.choice([True, False, None])
        if kind == 3:
            return rng.randint(-5, 5)
        if kind == 4:
            return [json_value(depth - 1) for _ in range(rng.randint(0, 3))]
        return {text() or "k": json_value(depth - 1) for _ in range(rng.randint(0, 3))}

    def name(index: int) -> str:
        shape = rng.randrange(5)
        if shape == 0:
            return f"gen-{index}.with.dots"
        if shape == 1:
            return (f"gen-{index}-" + "l" * 260)[:253]
        if shape == 2:
            return f"{index}-starts-with-digit"
        return f"gen-{index}"

    sessions = []
    for index in range(count):
        spec: dict[str, Any] = {}
        for field, draw in (
            ("initialPrompt", text),
            ("displayName", lambda: text()[:256]),
            ("interactive", lambda: rng.choice([True, False])),
            ("timeout", lambda: rng.choice([0, 1, 300, 2**31, 2**63 - 1])),
            ("inactivityTimeout", lambda: rng.choice([0, 5, 2**40, 2**63 - 1])),
            ("llmSettings", lambda: {"model": text(), "maxTokens": rng.choice([1, 2**62])}),
            ("userContext", lambda: {"userId": text() * rng.choice([1, 500]), "groups": [text()]}),
            ("environmentVariables", lambda: {rng.choice(["A", "1BAD", "PARENT_SESSION_ID", "x y"]): text()}),
            (
                "mcpServers",
                lambda: {"custom": {"s": json_value(rng.choice([2, 6, 120]))}, "disabled": [text()]},
            ),
            ("repos", lambda: [{"url": "https://example.invalid/o/r.git", "branch": text() or "main"}]),
        ):
            if rng.random() < 0.25:
                spec[field] = draw()
        annotations = {}
        if rng.random() < 0.1:
            annotations["vteam.ambient-code/parent-session-id"] = rng.choice(
                ["Bad Parent!", "missing-parent"]
            )
        manifest = session_manifest(name(index), namespace, spec=spec, annotations=annotations)
        sessions.append(manifest)
    return sessions


def test_generated_sessions_each_end_in_a_phase_with_a_reason(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    operator = start_operator([namespace])
    manifests = generated_sessions(namespace, 100, seed=11)

    def create(manifest: dict[str, Any]) -> str | None:
        try:
            kube.create(SESSIONS, namespace, manifest)
            return str(manifest["metadata"]["name"])
        except ApiError as exc:
            assert exc.status == 422, exc  # the CRD refused it: not an object the operator sees
            return None

    with ThreadPoolExecutor(8) as pool:
        names = [n for n in pool.map(create, manifests) if n is not None]
    assert len(names) >= 80, f"only {len(names)} of 100 generated sessions were admitted"
    create_session(kube, "plain", namespace)

    def unsettled() -> list[str]:
        items = kube.list(SESSIONS, namespace).get("items") or []
        return [
            f"{s['metadata']['name'][:40]}={(s.get('status') or {}).get('phase')}"
            for s in items
            if (s.get("status") or {}).get("phase") not in SETTLED
            or not condition_of(s, "Ready").get("reason")
        ]

    wait_until(unsettled, lambda left: not left, timeout=90, message="every session settled with a reason")
    items = kube.list(SESSIONS, namespace).get("items") or []
    phases: dict[str, int] = {}
    for item in items:
        key = f"{item['status']['phase']}/{condition_of(item, 'Ready').get('reason')}"
        phases[key] = phases.get(key, 0) + 1
    assert phase_is("Running")(kube.get(SESSIONS, namespace, "plain")), phases
    assert any(k.startswith("Failed/") for k in phases) and any(k.startswith("Running/") for k in phases), (
        phases
    )
    print("phases/reasons:", phases)
    assert operator.metric("controller_runtime_reconcile_panics_total") == 0
    # No Service was ever refused for a bad name: dotted names never reach a create.
    assert not [s for s in kube.list(SERVICES, namespace).get("items") or [] if "." in s["metadata"]["name"]]
    operator.assert_alive()
    assert_clean_log(operator.log_text())
