"""The models manifest on a real API server: strict models, manifest defaults, no silent fallback,
orphaned-model reset, and malformed edits.

Each test keeps its manifest ConfigMap (`ambient-models`) in its own namespace (--models-namespace),
so tests stay independent of each other and of the operator namespace.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from controller.kube import Kube
from controller.names import ANNOTATION_DESIRED_PHASE, runner_job_name
from controller.resources import JOBS, SESSIONS, Resource
from tests.e2e.conftest import (
    OperatorFactory,
    condition_of,
    create_session,
    events_for,
    exists,
    phase_is,
    wait_event,
    wait_session,
)

CONFIG_MAPS = Resource("", "v1", "configmaps", "ConfigMap")
# A manifest in the platform's format (a few of its real entries, and one without a vertexId).
MANIFEST: dict[str, Any] = json.loads((Path(__file__).parents[1] / "models_manifest.json").read_text())


def _put_manifest(kube: Kube, namespace: str, text: str) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "ambient-models"},
        "data": {"models.json": text},
    }
    if kube.get_or_none(CONFIG_MAPS, namespace, "ambient-models") is None:
        kube.create(CONFIG_MAPS, namespace, body)
    else:
        kube.patch(CONFIG_MAPS, namespace, "ambient-models", {"data": body["data"]})


def _operator(start_operator: OperatorFactory, namespace: str, *extra: str) -> Any:
    return start_operator([namespace], args=["--models-namespace", namespace, *extra])


def _env(kube: Kube, namespace: str, name: str) -> dict[str, str]:
    job = kube.get(JOBS, namespace, runner_job_name(name))
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container["env"] if "value" in e}


def _model_valid(reason: str, status: str) -> Any:
    def check(session: Mapping[str, Any]) -> bool:
        cond = condition_of(session, "ModelValid")
        return cond.get("reason") == reason and cond.get("status") == status

    return check


def _with_model(model: str | None, **spec: Any) -> dict[str, Any]:
    return {**({"llmSettings": {"model": model}} if model else {}), **spec}


def _running_with(kube: Kube, namespace: str, name: str, model: str, reason: str) -> dict[str, Any]:
    session = wait_session(kube, namespace, name, phase_is("Running"), what="Running")
    assert _env(kube, namespace, name)["LLM_MODEL"] == model
    assert session["status"]["reconciledModel"]["model"] == model
    assert condition_of(session, "ModelValid")["reason"] == reason
    return session


def test_unknown_model_waits_until_spec_or_manifest_is_fixed_and_default_comes_from_manifest(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    _put_manifest(kube, namespace, json.dumps(MANIFEST))
    operator = _operator(start_operator, namespace)
    create_session(kube, "typo", namespace, spec=_with_model("claude-typo"))
    create_session(kube, "future", namespace, spec=_with_model("claude-future"))
    create_session(kube, "gone", namespace, spec=_with_model("claude-opus-4-7"))
    create_session(kube, "plain", namespace)

    for name, reason in (("typo", "UnknownModel"), ("future", "UnknownModel"), ("gone", "ModelUnavailable")):
        held = wait_session(kube, namespace, name, _model_valid(reason, "False"), what=reason)
        assert held["status"]["phase"] == "Pending"
        message = condition_of(held, "ModelValid")["message"]
        assert held["spec"]["llmSettings"]["model"] in message and "claude-agent-sdk" in message
        assert condition_of(held, "Ready")["reason"] == reason
        assert not exists(kube, JOBS, namespace, runner_job_name(name))
        wait_event(kube, namespace, name, reason)

    # No model in the spec: the manifest's default, with its Vertex id; the spec stays empty.
    plain = _running_with(kube, namespace, "plain", "claude-sonnet-4-6", "DefaultModel")
    assert _env(kube, namespace, "plain")["LLM_MODEL_VERTEX_ID"] == "claude-sonnet-4-6@default"
    assert plain["status"]["reconciledModel"]["runtime"] == "claude-agent-sdk"
    assert "llmSettings" not in plain["spec"]

    # Fixing the spec starts the session by itself.
    kube.patch(SESSIONS, namespace, "typo", {"spec": {"llmSettings": {"model": "claude-opus-4-6"}}})
    _running_with(kube, namespace, "typo", "claude-opus-4-6", "ModelAvailable")

    # So does fixing the manifest instead.
    fixed = json.loads(json.dumps(MANIFEST))
    fixed["models"].append({"id": "claude-future", "provider": "anthropic", "available": True})
    _put_manifest(kube, namespace, json.dumps(fixed))
    _running_with(kube, namespace, "future", "claude-future", "ModelAvailable")
    job_uid = kube.get(JOBS, namespace, runner_job_name("future"))["metadata"]["uid"]

    # A malformed edit keeps the last good manifest: Warning Event, metric, and sessions unaffected.
    _put_manifest(kube, namespace, '{"models": [ broken')
    event = wait_event(kube, namespace, "ambient-models", "ModelsManifestInvalid")
    assert event["type"] == "Warning" and "last good version stays in use" in event["message"]
    assert operator.metric("agentic_operator_models_manifest_errors_total") >= 1
    create_session(kube, "after-bad-edit", namespace, spec=_with_model("claude-future"))
    _running_with(kube, namespace, "after-bad-edit", "claude-future", "ModelAvailable")
    assert kube.get(JOBS, namespace, runner_job_name("future"))["metadata"]["uid"] == job_uid
    assert wait_session(kube, namespace, "future", phase_is("Running"))
    assert wait_session(kube, namespace, "gone", phase_is("Pending"))


def test_no_decision_before_the_manifest_is_loaded(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    """With the manifest required, sessions created before it exists are neither rejected nor
    defaulted: they wait with ManifestNotLoaded and all start once it is created."""
    _operator(start_operator, namespace, "--require-models-manifest")
    create_session(kube, "explicit", namespace, spec=_with_model("claude-opus-4-6"))
    create_session(kube, "unset", namespace)
    for name in ("explicit", "unset"):
        held = wait_session(
            kube, namespace, name, _model_valid("ManifestNotLoaded", "Unknown"), what="waiting"
        )
        assert held["status"]["phase"] == "Pending"
        assert "reconciledModel" not in held["status"]
        assert not exists(kube, JOBS, namespace, runner_job_name(name))
        reasons = {e.get("reason") for e in events_for(kube, namespace, name)}
        assert not reasons & {"UnknownModel", "ModelUnavailable", "NoDefaultModel"}, reasons

    _put_manifest(kube, namespace, json.dumps(MANIFEST))
    _running_with(kube, namespace, "explicit", "claude-opus-4-6", "ModelAvailable")
    unset = _running_with(kube, namespace, "unset", "claude-sonnet-4-6", "DefaultModel")
    assert "llmSettings" not in unset["spec"]


def test_without_a_manifest_models_pass_and_the_condition_says_so(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    _operator(start_operator, namespace, "--default-model", "flag-model")
    create_session(kube, "any", namespace, spec=_with_model("any-model"))
    create_session(kube, "unset", namespace)
    _running_with(kube, namespace, "any", "any-model", "ManifestNotInUse")
    unset = _running_with(kube, namespace, "unset", "flag-model", "ManifestNotInUse")
    assert "no models manifest is in use" in condition_of(unset, "ModelValid")["message"]


def _stop(kube: Kube, namespace: str, name: str) -> None:
    kube.patch(
        SESSIONS, namespace, name, {"metadata": {"annotations": {ANNOTATION_DESIRED_PHASE: "Stopped"}}}
    )
    wait_session(kube, namespace, name, phase_is("Stopped"), what="Stopped")


def _restart_with(kube: Kube, namespace: str, name: str, spec: dict[str, Any]) -> None:
    kube.patch(SESSIONS, namespace, name, {"spec": spec})
    kube.patch(
        SESSIONS, namespace, name, {"metadata": {"annotations": {ANNOTATION_DESIRED_PHASE: "Running"}}}
    )


def test_runtime_change_resets_an_orphaned_model_or_fails_closed(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    _put_manifest(kube, namespace, json.dumps(MANIFEST))
    _operator(start_operator, namespace)
    for name in ("orphan", "closed"):
        create_session(kube, name, namespace, spec=_with_model("claude-opus-4-6"))
    for name in ("orphan", "closed"):
        _running_with(kube, namespace, name, "claude-opus-4-6", "ModelAvailable")
        _stop(kube, namespace, name)

    # The runtime changes (RUNNER_TYPE) on a Stopped session: its model is not Gemini's.
    _restart_with(kube, namespace, "orphan", {"environmentVariables": {"RUNNER_TYPE": "gemini-cli"}})
    orphan = wait_session(kube, namespace, "orphan", phase_is("Running"), what="Running after the reset")
    assert _env(kube, namespace, "orphan")["LLM_MODEL"] == "gemini-2.5-flash"
    recorded = orphan["status"]["reconciledModel"]
    assert recorded["model"] == "gemini-2.5-flash" and recorded["runtime"] == "gemini-cli"
    assert recorded["resetFrom"] == "claude-opus-4-6"
    assert condition_of(orphan, "ModelValid")["reason"] == "OrphanedModelReset"
    assert orphan["spec"]["llmSettings"]["model"] == "claude-opus-4-6", "the spec is never written"
    event = wait_event(kube, namespace, "orphan", "OrphanedModelReset")
    assert event["type"] == "Warning"
    assert "claude-opus-4-6" in event["message"] and "gemini-2.5-flash" in event["message"]

    # Without a default for the new runtime the session does not start, and says why.
    no_google = {**MANIFEST, "providerDefaults": {"anthropic": "claude-sonnet-4-6"}}
    _put_manifest(kube, namespace, json.dumps(no_google))
    _restart_with(kube, namespace, "closed", {"runnerType": "gemini-cli"})
    closed = wait_session(
        kube, namespace, "closed", _model_valid("NoDefaultModel", "False"), what="fail closed"
    )
    assert closed["status"]["phase"] == "Pending"
    assert "gemini-cli" in condition_of(closed, "ModelValid")["message"]
    assert not exists(kube, JOBS, namespace, runner_job_name("closed"))
    wait_event(kube, namespace, "closed", "NoDefaultModel")
