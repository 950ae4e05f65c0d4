"""Models manifest: parsing, the resolution table, the Job env rewrite, and the runtime seam."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from controller import conditions as c
from controller.config import OperatorConfig
from controller.platform import models as m
from controller.platform.models_source import ConfigMapModels, FileModels, StaticModels
from controller.platform.state import PlatformCaches
from controller.reconcilers.model_gate import live_switch_problem, session_runtime, waiting_for_model
from controller.reconcilers.runner_job import RUNNER_CONTAINER, build_runner_job
from controller.watchers.store import Delta

# A manifest in the platform's format (a few of its real entries, and one without a vertexId).
MANIFEST: dict[str, Any] = json.loads((Path(__file__).parents[1] / "models_manifest.json").read_text())
INDEX = m.parse_manifest(json.dumps(MANIFEST))
LOADED = m.ManifestState.loaded(INDEX)
# Google has no default: no providerDefaults entry, and defaultModel is an Anthropic model.
NO_GOOGLE_DEFAULT = m.ManifestState.loaded(
    m.parse_manifest(json.dumps({**MANIFEST, "providerDefaults": {"anthropic": "claude-sonnet-4-6"}}))
)
INVALID = m.ManifestState(m.Known.INVALID, None, "not valid JSON")
CLAUDE, GEMINI = ("claude-agent-sdk", "anthropic"), ("gemini-cli", "google")


def req(model: str, runtime: tuple[str, str] = CLAUDE, **kw: Any) -> m.ModelRequest:
    return m.ModelRequest(
        model=model, runtime=runtime[0], provider=runtime[1], fallback_default="flag-default", **kw
    )


# (case, state, request) -> (status, reason, effective model, vertex id)
TABLE: list[tuple[str, m.ManifestState, m.ModelRequest, tuple[str, str, str, str]]] = [
    (
        "known",
        LOADED,
        req("claude-opus-4-6"),
        ("True", m.MODEL_AVAILABLE, "claude-opus-4-6", "claude-opus-4-6@default"),
    ),
    ("unknown", LOADED, req("claude-typo"), ("False", m.UNKNOWN_MODEL, "", "")),
    ("unavailable", LOADED, req("claude-opus-4-7"), ("False", m.MODEL_UNAVAILABLE, "", "")),
    ("other provider", LOADED, req("gemini-2.5-flash"), ("False", m.UNKNOWN_MODEL, "", "")),
    (
        "unknown runtime: any provider",
        LOADED,
        req("gemini-2.5-flash", ("langgraph", "")),
        ("True", m.MODEL_AVAILABLE, "gemini-2.5-flash", "gemini-2.5-flash@default"),
    ),
    (
        "no model: provider default",
        LOADED,
        req("", GEMINI),
        ("True", m.DEFAULT_MODEL, "gemini-2.5-flash", "gemini-2.5-flash@default"),
    ),
    (
        "no model: default model",
        LOADED,
        req("", ("langgraph", "")),
        ("True", m.DEFAULT_MODEL, "claude-sonnet-4-6", "claude-sonnet-4-6@default"),
    ),
    (
        "no model, runtime without default",
        NO_GOOGLE_DEFAULT,
        req("", GEMINI),
        ("False", m.NO_DEFAULT_MODEL, "", ""),
    ),
    (
        "vertex off: no vertexId is fine",
        LOADED,
        req("claude-haiku-novertex"),
        ("True", m.MODEL_AVAILABLE, "claude-haiku-novertex", ""),
    ),
    (
        "vertex on: no vertexId",
        LOADED,
        req("claude-haiku-novertex", vertex=True),
        ("False", m.MODEL_UNAVAILABLE, "", ""),
    ),
    (
        "vertex on: vertex id",
        LOADED,
        req("claude-opus-4-6", vertex=True),
        ("True", m.MODEL_AVAILABLE, "claude-opus-4-6", "claude-opus-4-6@default"),
    ),
    (
        "not loaded: explicit waits",
        m.NOT_LOADED,
        req("claude-opus-4-6"),
        ("Unknown", m.MANIFEST_NOT_LOADED, "", ""),
    ),
    ("not loaded: no model waits", m.NOT_LOADED, req(""), ("Unknown", m.MANIFEST_NOT_LOADED, "", "")),
    (
        "malformed, no last good: waits",
        INVALID,
        req("claude-opus-4-6"),
        ("Unknown", m.MANIFEST_INVALID, "", ""),
    ),
    ("absent: explicit passes", m.ABSENT, req("anything"), ("True", m.MANIFEST_NOT_IN_USE, "anything", "")),
    ("absent: no model -> flag", m.ABSENT, req(""), ("True", m.MANIFEST_NOT_IN_USE, "flag-default", "")),
    (
        "absent but required: waits",
        m.ABSENT,
        req("anything", require_manifest=True),
        ("Unknown", m.MANIFEST_NOT_LOADED, "", ""),
    ),
    (
        "required and loaded",
        LOADED,
        req("", require_manifest=True),
        ("True", m.DEFAULT_MODEL, "claude-sonnet-4-6", "claude-sonnet-4-6@default"),
    ),
    (
        "runtime changed: orphan reset",
        LOADED,
        req("claude-opus-4-6", GEMINI, previous_runtime="claude-agent-sdk"),
        ("True", m.ORPHANED_MODEL_RESET, "gemini-2.5-flash", "gemini-2.5-flash@default"),
    ),
    (
        "runtime changed: still served",
        LOADED,
        req("claude-opus-4-6", ("langgraph", ""), previous_runtime="claude-agent-sdk"),
        ("True", m.MODEL_AVAILABLE, "claude-opus-4-6", "claude-opus-4-6@default"),
    ),
    (
        "runtime changed: unknown model reset",
        LOADED,
        req("nope", GEMINI, previous_runtime="claude-agent-sdk"),
        ("True", m.ORPHANED_MODEL_RESET, "gemini-2.5-flash", "gemini-2.5-flash@default"),
    ),
    (
        "runtime changed: unavailable is not orphaned",
        LOADED,
        req("claude-opus-4-7", previous_runtime="gemini-cli"),
        ("False", m.MODEL_UNAVAILABLE, "", ""),
    ),
    (
        "runtime changed, no default: fails closed",
        NO_GOOGLE_DEFAULT,
        req("claude-opus-4-6", GEMINI, previous_runtime="claude-agent-sdk"),
        ("False", m.NO_DEFAULT_MODEL, "", ""),
    ),
    (
        "runtime changed, not loaded: waits",
        m.NOT_LOADED,
        req("claude-opus-4-6", GEMINI, previous_runtime="claude-agent-sdk"),
        ("Unknown", m.MANIFEST_NOT_LOADED, "", ""),
    ),
    (
        "same runtime after a reset: reset again",
        LOADED,
        req("claude-opus-4-6", GEMINI, previous_runtime="gemini-cli", previous_reset_from="claude-opus-4-6"),
        ("True", m.ORPHANED_MODEL_RESET, "gemini-2.5-flash", "gemini-2.5-flash@default"),
    ),
    (
        "same runtime, never reset: strict",
        LOADED,
        req("claude-opus-4-6", GEMINI, previous_runtime="gemini-cli"),
        ("False", m.UNKNOWN_MODEL, "", ""),
    ),
]


@pytest.mark.parametrize(("state", "request_", "expected"), [t[1:] for t in TABLE], ids=[t[0] for t in TABLE])
def test_resolution_table(
    state: m.ManifestState, request_: m.ModelRequest, expected: tuple[str, str, str, str]
) -> None:
    got = m.resolve(state, request_)
    assert (got.status, got.reason, got.model, got.vertex_id) == expected, got.message
    assert got.message
    if got.status == "False" and request_.model:
        assert request_.model in got.message and request_.runtime in got.message
    if got.reason == m.ORPHANED_MODEL_RESET:
        assert got.reset_from == request_.model
        assert request_.model in got.message and got.model in got.message


def test_messages_never_echo_long_or_unprintable_models() -> None:
    got = m.resolve(LOADED, req("x" * 300 + "\x1b[31m"))
    assert got.reason == m.UNKNOWN_MODEL
    assert "x" * 65 not in got.message and "\x1b" not in got.message


# -- parsing ---------------------------------------------------------------------------------------


def test_parse_reads_fields_case_insensitively_and_ignores_unknown_keys() -> None:
    index = m.parse_manifest(
        json.dumps({"DefaultModel": "a", "models": [{"ID": "a", "Available": True, "label": "A", "x": 1}]})
    )
    assert index.default_model == "a"
    assert index.get("a") == m.ModelEntry("a", "", "", True)


def test_parse_first_available_entry_of_an_id_wins() -> None:
    index = m.parse_manifest(
        json.dumps(
            {"models": [{"id": "a", "vertexId": "old"}, {"id": "a", "vertexId": "new", "available": True}]}
        )
    )
    assert index.get("a") == m.ModelEntry("a", "new", "", True)


def test_index_is_immutable() -> None:
    with pytest.raises(TypeError):
        INDEX.models["x"] = m.ModelEntry("x")  # type: ignore[index]
    with pytest.raises(AttributeError):
        INDEX.default_model = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    "text",
    [
        "{",
        "[]",
        '{"models": {}}',
        '{"models": [{"id": ""}]}',
        '{"models": [{"id": 3}]}',
        '{"models": [{"id": "a", "available": "yes"}]}',
        '{"version": "2"}',
        '{"version": true}',
        '{"providerDefaults": {"google": 1}}',
        '{"models": ["a"]}',
    ],
)
def test_parse_rejects_malformed_manifests(text: str) -> None:
    with pytest.raises(m.ManifestError):
        m.parse_manifest(text)


def test_file_source_keeps_last_good_and_reads_once_per_change(tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    source = FileModels(str(path))
    assert source.state().known is m.Known.ABSENT
    path.write_text(json.dumps(MANIFEST))
    assert source.state().index == INDEX
    path.write_text("{ not json")
    os.utime(path, ns=(1, 1))
    kept = source.state()
    assert kept.known is m.Known.LOADED and kept.index == INDEX
    path.unlink()
    assert source.state().known is m.Known.ABSENT
    path.write_text("{ not json")
    assert source.state().known is m.Known.INVALID


# -- the Job env -----------------------------------------------------------------------------------


def _session(spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "s", "namespace": "ns", "uid": "u"}, "spec": spec}


def _env(job: dict[str, Any]) -> list[tuple[str, Any]]:
    container = next(
        x for x in job["spec"]["template"]["spec"]["containers"] if x["name"] == RUNNER_CONTAINER
    )
    return [(e["name"], e.get("value")) for e in container["env"]]


def test_apply_rewrites_model_and_vertex_id_in_place() -> None:
    session = _session(
        {"llmSettings": {"model": "typo"}, "environmentVariables": {"LLM_MODEL_VERTEX_ID": "user"}}
    )
    job, _ = build_runner_job(session, OperatorConfig(), False)
    before = _env(job)
    rewritten = m.apply_to_job(job, RUNNER_CONTAINER, "claude-opus-4-6", "claude-opus-4-6@default")
    after = _env(rewritten)
    assert _env(job) == before, "the built Job is not changed"
    at = after.index(("LLM_MODEL", "claude-opus-4-6"))
    assert after[at + 1] == ("LLM_MODEL_VERTEX_ID", "claude-opus-4-6@default")
    assert [n for n, _ in after].count("LLM_MODEL_VERTEX_ID") == 1
    assert [n for n, _ in after if n != "LLM_MODEL_VERTEX_ID"] == [
        n for n, _ in before if n != "LLM_MODEL_VERTEX_ID"
    ]
    without_vertex = _env(m.apply_to_job(job, RUNNER_CONTAINER, "x", ""))
    assert ("LLM_MODEL", "x") in without_vertex and ("LLM_MODEL_VERTEX_ID", "user") in without_vertex


# -- the runtime seam, the phase, and who waits ----------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, ("claude-agent-sdk", "anthropic")),
        ({"environmentVariables": {"RUNNER_TYPE": "gemini-cli"}}, ("gemini-cli", "google")),
        (
            {"runnerType": "gemini-cli", "environmentVariables": {"RUNNER_TYPE": "claude-agent-sdk"}},
            ("gemini-cli", "google"),
        ),
        ({"runnerType": " ", "environmentVariables": {"RUNNER_TYPE": 3}}, ("claude-agent-sdk", "anthropic")),
        ({"runnerType": "langgraph"}, ("langgraph", "")),
    ],
)
def test_session_runtime(spec: dict[str, Any], expected: tuple[str, str]) -> None:
    assert session_runtime(_session(spec), OperatorConfig()) == expected


def _cond(kind: str, status: str, reason: str = "") -> c.Condition:
    return c.Condition(kind, status, reason)


@pytest.mark.parametrize(
    ("model_valid", "phase"),
    [("False", c.PENDING), ("Unknown", c.PENDING), ("True", c.CREATING)],
)
def test_model_valid_holds_the_session_pending(model_valid: str, phase: str) -> None:
    conditions = {
        c.RECONCILED: _cond(c.RECONCILED, "True", c.SPEC_APPLIED),
        c.PVC_READY: _cond(c.PVC_READY, "True"),
        c.MODEL_VALID: _cond(c.MODEL_VALID, model_valid, m.UNKNOWN_MODEL),
        c.JOB_CREATED: _cond(c.JOB_CREATED, "False", "WaitingForModel"),
    }
    assert c.derive_phase(conditions, None) == phase
    if model_valid != "True":
        assert c.derive_ready(conditions, phase)[1] == m.UNKNOWN_MODEL


def test_a_running_runner_is_not_held_back_by_the_manifest() -> None:
    conditions = {
        c.MODEL_VALID: _cond(c.MODEL_VALID, "False", m.UNKNOWN_MODEL),
        c.RUNNER_STARTED: _cond(c.RUNNER_STARTED, "True"),
    }
    assert c.derive_phase(conditions, None) == c.RUNNING


class _Sessions:
    def __init__(self, items: list[dict[str, Any]]):
        self.items = items

    def list(self) -> list[dict[str, Any]]:
        return self.items


def test_waiting_for_model_lists_only_held_sessions() -> None:
    def with_model_valid(name: str, status: str | None) -> dict[str, Any]:
        conditions = [] if status is None else [{"type": c.MODEL_VALID, "status": status}]
        return {"metadata": {"namespace": "ns", "name": name}, "status": {"conditions": conditions}}

    sessions = _Sessions(
        [
            with_model_valid("a", "False"),
            with_model_valid("b", "True"),
            with_model_valid("c", None),
            with_model_valid("d", "Unknown"),
        ]
    )
    assert waiting_for_model(sessions) == [("ns", "a"), ("ns", "d")]  # type: ignore[arg-type]


class _Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []

    def record(self, obj: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
        self.events.append((str(obj.get("kind")), event_type, reason, message))


def _configmap(text: str | None, version: str, name: str = m.CONFIGMAP_NAME) -> dict[str, Any]:
    data = {} if text is None else {m.CONFIGMAP_KEY: text}
    return {"metadata": {"name": name, "namespace": "ops", "resourceVersion": version}, "data": data}


def test_configmap_source_parses_once_per_change_and_keeps_last_good() -> None:
    recorder, changes = _Recorder(), []
    source = ConfigMapModels(None, "ops", recorder, on_change=lambda: changes.append(1))  # type: ignore[arg-type]
    assert source.state().known is m.Known.NOT_LOADED
    source._on_delta(Delta("ADDED", None, _configmap("{", "1")))
    assert source.state().known is m.Known.INVALID and "not valid JSON" in source.state().detail
    source._on_delta(Delta("MODIFIED", None, _configmap(json.dumps(MANIFEST), "2")))
    assert source.state().index == INDEX
    source._on_delta(Delta("MODIFIED", None, _configmap('{"models": 1}', "3")))
    assert source.state().index == INDEX, "a malformed edit keeps the last good manifest"
    assert recorder.events[-1][:3] == ("ConfigMap", "Warning", "ModelsManifestInvalid")
    assert "last good version stays in use" in recorder.events[-1][3]
    source._on_delta(Delta("MODIFIED", None, _configmap('{"models": 1}', "3")))
    assert len(recorder.events) == 2, "the same version is not parsed again"
    source._on_delta(Delta("ADDED", None, _configmap("{", "9", name="other")))
    assert len(recorder.events) == 2 and source.state().index == INDEX
    source._on_delta(Delta("MODIFIED", None, _configmap(None, "4")))
    assert source.state().known is m.Known.ABSENT
    source._on_delta(Delta("DELETED", _configmap(None, "4"), None))
    assert source.state().known is m.Known.ABSENT
    assert len(changes) == 6


def _switch_ctx(state: m.ManifestState) -> Any:
    """What live_switch_problem reads of a Context: config, the manifest, the (unwired) registry."""
    return SimpleNamespace(config=OperatorConfig(), models=StaticModels(state), platform=PlatformCaches())


@pytest.mark.parametrize(
    ("model", "state", "runs_on", "allowed"),
    [
        ("claude-opus-4-6", LOADED, "claude-agent-sdk", True),
        ("claude-opus-4-7", LOADED, "claude-agent-sdk", False),  # available: false
        ("no-such-model", LOADED, "claude-agent-sdk", False),
        ("gemini-2.5-flash", LOADED, "claude-agent-sdk", False),  # another provider's model
        ("gemini-2.5-flash", LOADED, "gemini-cli", True),
        ("  ", LOADED, "claude-agent-sdk", False),
        ("anything", m.ABSENT, "claude-agent-sdk", True),  # no manifest in use: unchecked
        ("claude-opus-4-6", m.NOT_LOADED, "claude-agent-sdk", False),  # nothing decided blind
    ],
)
def test_a_live_switch_is_checked_against_the_runtime_the_runner_runs(
    model: str, state: m.ManifestState, runs_on: str, allowed: bool
) -> None:
    # The spec names another runtime since the start: the running runner's own runtime decides.
    session = _session({"runnerType": "edited-later"})
    session["status"] = {"reconciledModel": {"model": "claude-sonnet-4-6", "runtime": runs_on}}
    problem = live_switch_problem(_switch_ctx(state), session, model)
    assert (problem is None) is allowed, problem
