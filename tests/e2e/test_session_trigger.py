"""`./operator session-trigger` run as a scheduled session's CronJob runs it: env only, one shot.

It runs from a plain shell through image/operator (the image's /app/operator), with KUBECONFIG in
place of the pod's in-cluster config, and a small HTTP server standing in for the platform's
backend (BACKEND_API_URL), which records the follow-up it receives.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from controller.kube import Kube
from controller.names import ANNOTATION_DESIRED_PHASE, ANNOTATION_FORCE_EXECUTE_PROMPT, runner_job_name
from controller.resources import JOBS, SESSIONS
from tests.conftest import Cluster
from tests.e2e.conftest import REPO, OperatorFactory, annotate, phase_is, wait_session

SCHEDULE = "schedule-e2e"


class Backend(http.server.ThreadingHTTPServer):
    """Records each POST (path, headers, JSON body) and answers with `status`."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, Mapping[str, str], Any]] = []
        self.status = 200
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.requests.append((self.path, dict(self.headers), json.loads(body or b"null")))
                self.send_response(outer.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def backend() -> Iterator[Backend]:
    server = Backend()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def trigger(cluster: Cluster, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """`./operator session-trigger` with only the CronJob's env (plus what a shell needs)."""
    shell_env = {
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO),
        "KUBECONFIG": str(cluster.kubeconfig),
        **env,
    }
    return subprocess.run(
        ["./operator", "session-trigger"],
        cwd=REPO / "image",
        env=shell_env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _env(namespace: str, template: Mapping[str, Any], reuse: bool) -> dict[str, str]:
    return {
        "SESSION_TEMPLATE": json.dumps(template),
        "PROJECT_NAMESPACE": namespace,
        "SCHEDULED_SESSION_NAME": SCHEDULE,
        "REUSE_LAST_SESSION": "true" if reuse else "false",
    }


def _runs(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    listing = kube.list(
        SESSIONS, namespace, label_selector=f"ambient-code.io/scheduled-session-name={SCHEDULE}"
    )
    return list(listing.get("items") or [])


def test_missing_environment_is_one_line_and_exit_1(cluster: Cluster) -> None:
    done = trigger(cluster, {"PROJECT_NAMESPACE": "x"})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "session-trigger: required environment variables not set: SESSION_TEMPLATE, SCHEDULED_SESSION_NAME"
    ]


def test_create_then_restart_then_follow_up(
    kube: Kube,
    namespace: str,
    cluster: Cluster,
    start_operator: OperatorFactory,
    backend: Backend,
    tmp_path: Path,
) -> None:
    template = {"displayName": "Nightly Report", "initialPrompt": "first", "runnerType": "gemini-cli"}
    created = trigger(cluster, _env(namespace, template, reuse=True))
    assert created.returncode == 0, created.stderr
    (session,) = _runs(kube, namespace)
    name = session["metadata"]["name"]
    assert name.startswith("nightly-report-")
    assert session["metadata"]["labels"]["ambient-code.io/scheduled-run"] == "true"
    assert session["spec"]["displayName"].startswith("Nightly Report (")
    assert session["spec"]["environmentVariables"]["RUNNER_TYPE"] == "gemini-cli"

    start_operator([namespace])
    wait_session(kube, namespace, name, phase_is("Running"), timeout=30)
    annotate(kube, namespace, name, {ANNOTATION_DESIRED_PHASE: "Stopped"})
    wait_session(kube, namespace, name, phase_is("Stopped"), timeout=30)

    # Reuse of a Stopped session: started again with the new prompt, which the runner must send.
    again = trigger(cluster, _env(namespace, {**template, "initialPrompt": "second"}, reuse=True))
    assert again.returncode == 0, again.stderr
    assert len(_runs(kube, namespace)) == 1
    restarted = wait_session(
        kube,
        namespace,
        name,
        lambda s: (
            phase_is("Running")(s)
            and ANNOTATION_FORCE_EXECUTE_PROMPT not in (s["metadata"].get("annotations") or {})
        ),
        timeout=30,
        what="Running again with the prompt forced",
    )
    assert restarted["spec"]["initialPrompt"] == "second"
    container = kube.get(JOBS, namespace, runner_job_name(name))["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env.get("INITIAL_PROMPT") == "second"
    assert "IS_RESUME" not in env, "a forced prompt is sent by the runner, not skipped as a resume"

    # Reuse of a Running session: the prompt goes to the backend's AG-UI endpoint.
    token = tmp_path / "token"
    token.write_text("trigger-token\n")
    follow = {
        **_env(namespace, {**template, "initialPrompt": "third"}, reuse=True),
        "BACKEND_API_URL": f"http://127.0.0.1:{backend.server_address[1]}/api",
        "SERVICE_ACCOUNT_TOKEN_FILE": str(token),
    }
    sent = trigger(cluster, follow)
    assert sent.returncode == 0, sent.stderr
    ((path, headers, body),) = backend.requests
    assert path == f"/api/projects/{namespace}/agentic-sessions/{name}/agui/run"
    assert headers["Authorization"] == "Bearer trigger-token"
    assert headers["Content-Type"] == "application/json"
    assert body["threadId"] == name and body["runId"].startswith("scheduled-")
    assert [(m["role"], m["content"]) for m in body["messages"]] == [("user", "third")]

    # A backend error is fatal, reported in one line, and creates nothing instead.
    backend.status = 503
    failed = trigger(cluster, follow)
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines()[-1] == (
        f"session-trigger: the backend answered 503 to the follow-up for session {name}"
    )
    assert len(_runs(kube, namespace)) == 1
