"""The session-trigger contract: names, labels, the follow-up body and the environment checks."""

from __future__ import annotations

import datetime
import time

import pytest

from controller import trigger
from controller.kube import Kube

NOW = datetime.datetime(2026, 3, 4, 5, 6, 7, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Daily Report", "daily-report"),
        ("--Nightly__Build 2--", "nightly-build-2"),
        ("ÜberTask", "bertask"),
        ("!!!", "run"),
        ("", "run"),
        ("a" * 39 + "-b", "a" * 39),
        ("x" * 60, "x" * 40),
    ],
)
def test_sanitize_name_is_the_platforms(text: str, expected: str) -> None:
    assert trigger.sanitize_name(text) == expected


def test_new_session_from_a_template() -> None:
    template = {"displayName": "Daily Report", "initialPrompt": "go", "runnerType": "gemini-cli"}
    session = trigger.new_session(template, "team", "schedule-abc", NOW)
    assert session["metadata"]["name"] == f"daily-report-{int(NOW.timestamp())}"
    assert session["metadata"]["labels"] == {
        "ambient-code.io/scheduled-session-name": "schedule-abc",
        "ambient-code.io/scheduled-run": "true",
    }
    assert "annotations" not in session["metadata"]
    spec = session["spec"]
    assert spec["displayName"] == "Daily Report (Mar 4, 2026 - 05:06:07)"
    assert spec["environmentVariables"] == {"RUNNER_TYPE": "gemini-cli"}
    assert spec["runnerType"] == "gemini-cli"
    assert template["displayName"] == "Daily Report"


def test_new_session_keeps_an_explicit_runner_type_env_and_names_by_schedule() -> None:
    template = {"runnerType": "a", "environmentVariables": {"RUNNER_TYPE": "b", "X": "1"}}
    session = trigger.new_session(template, "team", "Schedule-ABC", NOW)
    assert session["metadata"]["name"] == f"schedule-abc-{int(NOW.timestamp())}"
    assert session["spec"]["environmentVariables"] == {"RUNNER_TYPE": "b", "X": "1"}
    assert "displayName" not in session["spec"]


def test_follow_up_body() -> None:
    body = trigger.follow_up_body("s1", "hello", 1700000000.5)
    assert body["threadId"] == "s1"
    assert body["runId"] == "scheduled-1700000000"
    assert body["messages"][0]["role"] == "user" and body["messages"][0]["content"] == "hello"
    assert body["messages"][0]["id"].startswith("scheduled-msg-1700000000")


def _unreachable() -> Kube:
    raise AssertionError("no API call before the environment is checked")


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "required environment variables not set: SESSION_TEMPLATE, PROJECT_NAMESPACE"),
        (
            {"SESSION_TEMPLATE": "{", "PROJECT_NAMESPACE": "a", "SCHEDULED_SESSION_NAME": "b"},
            "not valid JSON",
        ),
        ({"SESSION_TEMPLATE": "[]", "PROJECT_NAMESPACE": "a", "SCHEDULED_SESSION_NAME": "b"}, "JSON object"),
    ],
)
def test_environment_errors_come_before_any_request(environ: dict[str, str], message: str) -> None:
    with pytest.raises(trigger.TriggerError, match=message):
        trigger.Trigger(environ, _unreachable)


def test_reuse_flag_and_backend_url() -> None:
    environ = {
        "SESSION_TEMPLATE": "{}",
        "PROJECT_NAMESPACE": "team",
        "SCHEDULED_SESSION_NAME": "s",
        "REUSE_LAST_SESSION": "  TRUE ",
        "BACKEND_NAMESPACE": "platform",
    }
    run = trigger.Trigger(environ, lambda: None)  # type: ignore[arg-type,return-value]
    assert run.reuse
    assert run.backend_url("x") == (
        "http://backend-service.platform.svc.cluster.local:8080/api/projects/team/agentic-sessions/x/agui/run"
    )
    local = trigger.Trigger({**environ, "BACKEND_API_URL": "http://127.0.0.1:9/api/"}, lambda: None)  # type: ignore[arg-type,return-value]
    assert local.backend_url("x") == "http://127.0.0.1:9/api/projects/team/agentic-sessions/x/agui/run"
    assert not trigger.Trigger({**environ, "REUSE_LAST_SESSION": "yes"}, lambda: None).reuse  # type: ignore[arg-type,return-value]


def test_rfc3339_local_is_gos(monkeypatch: pytest.MonkeyPatch) -> None:
    """Go's time.RFC3339 of local time: 'Z' in UTC, the numeric offset elsewhere."""
    try:
        monkeypatch.setenv("TZ", "UTC")
        time.tzset()
        assert trigger.rfc3339_local(NOW) == "2026-03-04T05:06:07Z"
        monkeypatch.setenv("TZ", "EST+05")
        time.tzset()
        assert trigger.rfc3339_local(NOW) == "2026-03-04T00:06:07-05:00"
    finally:
        monkeypatch.undo()
        time.tzset()
