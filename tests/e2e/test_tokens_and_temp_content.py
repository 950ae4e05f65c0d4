"""Token secrets and temporary content pods on a real API server."""

from __future__ import annotations

import base64
import datetime
import json
import threading
import time
from typing import Any

from controller.kube import Kube
from controller.names import (
    ANNOTATION_DESIRED_PHASE,
    ANNOTATION_TEMP_CONTENT_LAST_ACCESSED,
    ANNOTATION_TEMP_CONTENT_REQUESTED,
    ANNOTATION_TOKEN_REFRESHED_AT,
    runner_job_name,
    temp_content_pod_name,
    temp_content_service_name,
    token_secret_name,
)
from controller.resources import JOBS, PODS, SECRETS, SERVICES, SESSIONS
from tests.e2e.conftest import (
    OperatorFactory,
    annotate,
    condition_of,
    create_session,
    events_for,
    exists,
    phase_is,
    wait_event,
    wait_session,
)
from tests.e2e.helpers import wait_for, wait_until


def _secret(kube: Kube, namespace: str, name: str) -> tuple[dict[str, str], str]:
    secret = kube.get(SECRETS, namespace, token_secret_name(name))
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    return data, (secret["metadata"].get("annotations") or {}).get(ANNOTATION_TOKEN_REFRESHED_AT, "")


def _token_requests(operator: Any) -> float:
    return float(
        operator.metric(
            "agentic_operator_rest_client_requests_total", verb="create", resource="serviceaccounts/token"
        )
    )


def test_refresh_at_ttl_changes_only_k8s_token(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    operator = start_operator([namespace], args=["--token-ttl", "4"])
    create_session(kube, "fresh", namespace)
    wait_session(kube, namespace, "fresh", phase_is("Running"))
    first, first_at = _secret(kube, namespace, "fresh")
    assert first["k8s-token"] and first["agui-token"]
    second, second_at = wait_until(
        lambda: _secret(kube, namespace, "fresh"),
        lambda d: d[1] != first_at,
        timeout=20,
        message="refreshed-at to advance",
    )
    assert second["k8s-token"] != first["k8s-token"]
    assert second["agui-token"] == first["agui-token"]
    assert datetime.datetime.fromisoformat(
        second_at.replace("Z", "+00:00")
    ) > datetime.datetime.fromisoformat(first_at.replace("Z", "+00:00"))
    session = kube.get(SESSIONS, namespace, "fresh")
    assert condition_of(session, "SecretsReady")["status"] == "True"
    assert _token_requests(operator) >= 2


def test_restart_rotates_agui_token(kube: Kube, namespace: str, start_operator: OperatorFactory) -> None:
    start_operator([namespace])
    create_session(kube, "rot", namespace)
    wait_session(kube, namespace, "rot", phase_is("Running"))
    before, _ = _secret(kube, namespace, "rot")
    annotate(kube, namespace, "rot", {ANNOTATION_DESIRED_PHASE: "Stopped"})
    wait_session(kube, namespace, "rot", phase_is("Stopped"))
    annotate(kube, namespace, "rot", {ANNOTATION_DESIRED_PHASE: "Running"})
    wait_session(kube, namespace, "rot", phase_is("Running"))
    after, _ = wait_until(
        lambda: _secret(kube, namespace, "rot"),
        lambda d: d[0]["agui-token"] != before["agui-token"],
        timeout=20,
        message="agui-token rotated on restart",
    )
    assert after["k8s-token"] != before["k8s-token"]


def test_two_operators_race_on_one_secret(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    first = start_operator([namespace], args=["--token-ttl", "3"], name="first")
    second = start_operator([namespace], args=["--token-ttl", "3"], name="second")
    create_session(kube, "shared", namespace)
    wait_session(kube, namespace, "shared", phase_is("Running"), timeout=90)
    seen: list[tuple[str, str, str]] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        data, stamp = _secret(kube, namespace, "shared")
        entry = (stamp, data.get("k8s-token", ""), data.get("agui-token", ""))
        if not seen or seen[-1] != entry:
            seen.append(entry)
        time.sleep(0.1)
    tokens = {k8s for _, k8s, _ in seen}
    stamps = [stamp for stamp, _, _ in seen]
    assert len(tokens) >= 4, f"expected several refreshes, saw {len(tokens)}"
    assert stamps == sorted(stamps), "refreshed-at went backwards: an older write clobbered a newer one"
    assert len({agui for _, _, agui in seen}) == 1, "agui-token changed without a restart"
    total = _token_requests(first) + _token_requests(second)
    # One TokenRequest per refresh; the creation race may waste one before the Secret exists.
    assert total <= len(tokens) + 2, f"{total} TokenRequests for {len(tokens)} refreshes"
    assert first.metric("agentic_operator_rest_client_requests_total", verb="patch", resource="secrets") > 0
    assert second.metric("agentic_operator_rest_client_requests_total", verb="patch", resource="secrets") > 0


def _finished_session(
    kube: Kube, namespace: str, name: str, start_operator: OperatorFactory, ttl: str
) -> Any:
    operator = start_operator([namespace], args=["--temp-content-ttl", ttl])
    create_session(
        kube,
        name,
        namespace,
        spec={"interactive": False},
        annotations={"kwok.ambient-code.io/complete-after": "1s"},
    )
    wait_session(kube, namespace, name, phase_is("Completed"))
    return operator


def test_temp_content_pod_serves_then_expires(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    _finished_session(kube, namespace, "done", start_operator, "8")
    requested = time.monotonic()
    annotate(kube, namespace, "done", {ANNOTATION_TEMP_CONTENT_REQUESTED: "true"})
    ready = wait_session(
        kube,
        namespace,
        "done",
        lambda s: condition_of(s, "TempContentPodReady").get("status") == "True",
        what="TempContentPodReady=True",
    )
    assert condition_of(ready, "TempContentPodReady")["reason"] == "PodReady"
    pod = kube.get(PODS, namespace, temp_content_pod_name("done"))
    assert pod["spec"]["containers"][0]["ports"][0]["containerPort"] == 8080
    security = pod["spec"]["containers"][0]["securityContext"]
    assert security["allowPrivilegeEscalation"] is False and security["capabilities"]["drop"] == ["ALL"]
    assert exists(kube, SERVICES, namespace, temp_content_service_name("done"))
    # Access keeps it alive past the TTL counted from creation.
    time.sleep(5)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    annotate(kube, namespace, "done", {ANNOTATION_TEMP_CONTENT_LAST_ACCESSED: now})
    time.sleep(5)
    assert exists(kube, PODS, namespace, temp_content_pod_name("done")), "deleted although recently accessed"
    gone = wait_for(
        lambda: not exists(kube, PODS, namespace, temp_content_pod_name("done")) or None,
        30,
        message="temp pod deleted after the idle TTL",
    )
    assert gone
    assert time.monotonic() - requested >= 12
    session = wait_session(
        kube,
        namespace,
        "done",
        lambda s: ANNOTATION_TEMP_CONTENT_REQUESTED not in (s["metadata"].get("annotations") or {}),
        what="request annotation cleared",
    )
    assert condition_of(session, "TempContentPodReady")["reason"] == "IdleTimeout"
    wait_event(kube, namespace, "done", "TempContentIdle")


def test_restart_waits_for_temp_pod(kube: Kube, namespace: str, start_operator: OperatorFactory) -> None:
    start_operator([namespace])
    create_session(kube, "both", namespace)
    wait_session(kube, namespace, "both", phase_is("Running"))
    annotate(kube, namespace, "both", {ANNOTATION_DESIRED_PHASE: "Stopped"})
    wait_session(kube, namespace, "both", phase_is("Stopped"))
    annotate(kube, namespace, "both", {ANNOTATION_TEMP_CONTENT_REQUESTED: "true"})
    wait_for(lambda: exists(kube, PODS, namespace, temp_content_pod_name("both")), 30, message="temp pod")

    overlaps: list[str] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            pod = exists(kube, PODS, namespace, temp_content_pod_name("both"))
            job = exists(kube, JOBS, namespace, runner_job_name("both"))
            if pod and job:
                overlaps.append(datetime.datetime.now(datetime.UTC).isoformat())
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        annotate(kube, namespace, "both", {ANNOTATION_DESIRED_PHASE: "Running"})
        wait_session(kube, namespace, "both", phase_is("Running"))
    finally:
        stop.set()
        sampler.join(5)
    assert not overlaps, f"the runner Job existed while the temp pod still did: {overlaps[:3]}"
    assert not exists(kube, PODS, namespace, temp_content_pod_name("both"))
    reasons = [e["reason"] for e in events_for(kube, namespace, "both")]
    assert "TempContentPodDeleted" in reasons


def test_deleted_session_leaves_no_temp_pod_or_secret(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    _finished_session(kube, namespace, "gone", start_operator, "600")
    annotate(kube, namespace, "gone", {ANNOTATION_TEMP_CONTENT_REQUESTED: "true"})
    wait_for(lambda: exists(kube, PODS, namespace, temp_content_pod_name("gone")), 30, message="temp pod")
    assert exists(kube, SECRETS, namespace, token_secret_name("gone"))
    kube.delete(SESSIONS, namespace, "gone", propagation="Background")
    wait_for(
        lambda: (
            not exists(kube, PODS, namespace, temp_content_pod_name("gone"))
            and not exists(kube, SECRETS, namespace, token_secret_name("gone"))
        ),
        90,
        message="temp pod and token Secret garbage-collected",
    )


def test_no_token_in_logs_events_or_status(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    operator = start_operator([namespace], args=["--token-ttl", "3"])
    create_session(kube, "secretive", namespace)
    wait_session(kube, namespace, "secretive", phase_is("Running"))
    values: set[str] = set()
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        data, _ = _secret(kube, namespace, "secretive")
        values.update(v for v in data.values() if v)
        time.sleep(0.3)
    assert len(values) >= 3
    operator.terminate()
    log = operator.log_text()
    assert "DEBUG" in log, "the log should be at debug level for this check to mean something"
    session_text = json.dumps(kube.get(SESSIONS, namespace, "secretive"))
    events_text = json.dumps(events_for(kube, namespace, "secretive"))
    for value in values:
        assert value not in log, "a token value appears in the operator log"
        assert value not in session_text and value not in events_text
