"""Idle sessions are stopped after the platform's timeout, and only when really idle.

Sessions run side by side so the whole file costs one idle period plus one restart: a spec
timeout, a project timeout (ProjectSettings), a session the backend keeps alive with activity
writes and that is restarted after its inactivity stop, and one that never stops (0).
"""

from __future__ import annotations

import datetime
import time
from typing import Any

from controller.api_error import ApiError
from controller.kube import Kube
from controller.names import ANNOTATION_DESIRED_PHASE
from controller.platform.project_settings import PROJECT_SETTINGS
from controller.resources import SESSIONS
from tests.e2e.conftest import OperatorFactory, annotate, create_session, phase_is, wait_event, wait_session


def _write_activity(kube: Kube, namespace: str, name: str) -> None:
    """As the backend does: GET, set status.lastActivityTime, full status update; conflicts retried."""
    for _ in range(5):
        session = kube.get(SESSIONS, namespace, name)
        session.setdefault("status", {})["lastActivityTime"] = datetime.datetime.now(datetime.UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        try:
            kube.replace(SESSIONS, namespace, name, session, subresource="status")
            return
        except ApiError as exc:
            if not exc.conflict:
                raise


def _stopped_idle(session: dict[str, Any]) -> bool:
    return phase_is("Stopped")(session) and session["status"].get("stoppedReason") == "inactivity"


def test_idle_sessions_stop_by_spec_project_and_activity(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    kube.create(
        PROJECT_SETTINGS,
        namespace,
        {
            "apiVersion": "vteam.ambient-code/v1alpha1",
            "kind": "ProjectSettings",
            "metadata": {"name": "projectsettings"},
            "spec": {"groupAccess": [], "inactivityTimeoutSeconds": 20},
        },
    )
    start_operator([namespace])
    create_session(kube, "by-spec", namespace, spec={"inactivityTimeout": 20})
    create_session(kube, "by-project", namespace)
    create_session(kube, "kept-alive", namespace, spec={"inactivityTimeout": 10})
    create_session(kube, "never", namespace, spec={"inactivityTimeout": 0})
    for name in ("by-spec", "by-project", "kept-alive", "never"):
        wait_session(kube, namespace, name, phase_is("Running"), timeout=30)
    started = time.monotonic()

    # The backend's activity writes keep a session with a 10 s timeout running for 15 s.
    while time.monotonic() - started < 15:
        _write_activity(kube, namespace, "kept-alive")
        time.sleep(3)
    wait_session(kube, namespace, "kept-alive", phase_is("Running"), timeout=1, what="kept alive")

    # Without writes it is stopped one idle period after the last one.
    stopped = wait_session(kube, namespace, "kept-alive", _stopped_idle, timeout=20, what="stopped idle")
    wait_event(kube, namespace, "kept-alive", "InactivityTimeout", timeout=5)
    assert stopped["status"].get("lastActivityTime")

    # A restart runs until a new idle period, not until the old activity time says so.
    annotate(kube, namespace, "kept-alive", {ANNOTATION_DESIRED_PHASE: "Running"})
    restarted = wait_session(kube, namespace, "kept-alive", phase_is("Running"), timeout=20, what="restarted")
    assert "lastActivityTime" not in restarted["status"]
    back = time.monotonic()
    time.sleep(5)
    wait_session(
        kube, namespace, "kept-alive", phase_is("Running"), timeout=1, what="still running 5 s later"
    )

    for name in ("by-spec", "by-project"):
        session = wait_session(kube, namespace, name, _stopped_idle, timeout=30, what="stopped idle")
        assert session["status"]["phase"] == "Stopped"
    wait_session(kube, namespace, "kept-alive", _stopped_idle, timeout=20, what="stopped idle again")
    assert time.monotonic() - back >= 8
    wait_session(kube, namespace, "never", phase_is("Running"), timeout=1, what="0 never stops")
