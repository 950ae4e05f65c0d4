"""A stand-in for the session runner's HTTP API, for e2e tests of the runner sync loop.

The real runner (ambient-code/platform `rn/ambient_runner`) cannot run here: it needs an LLM and
credentials for one, and on the local control plane the runner pods are kwok fakes with no process.
This double follows the runner's API as the platform contract (§4) describes it, answer by answer:
the auth middleware (401 `Unauthorized` without the session's agui-token, `/health` open),
`/repos/add|remove|status`, `/workflow` (serialised; `Workflow already active` when unchanged) and
`/model` with its checks in their order (503 context, 400 blank, 200 unchanged, 422 generating, 409
switch in progress, 200 switched), and a switch that takes time. Its starting state is the runner's
env in the session's Job (LLM_MODEL, REPOS_JSON, ACTIVE_WORKFLOW_*), read when a session is first
called, exactly what the real runner starts from.

One double serves every session, under the path prefix `/<namespace>/<name>`: the operator is
pointed at it with `--runner-url-template http://127.0.0.1:<port>/{namespace}/{name}`.
A control surface lets a test hold a session's run lock, make an endpoint fail, hang or drop the
connection (runner down), and read every call it received.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from controller.kube import Kube
from controller.names import TOKEN_KEY_AGUI, runner_job_name, token_secret_name
from controller.resources import JOBS, SECRETS

TOKEN_HEADER = "X-Ambient-Session-Token"


@dataclass
class Call:
    namespace: str
    name: str
    method: str
    path: str
    body: dict[str, Any]
    code: int  # 0: the connection was dropped
    started: float
    finished: float = 0.0


@dataclass
class Fault:
    code: int  # 0 drops the connection, as a runner that is down
    detail: str = "injected failure"
    times: int | None = None  # None: until cleared
    delay: float = 0.0  # seconds before answering (longer than the client's timeout: a hang)


@dataclass
class Runner:
    """What one session's runner holds: its env-derived state and its locks."""

    model: str
    workflow: tuple[str, str, str]
    repos: dict[str, tuple[str, str]]
    run_lock: threading.Lock = field(default_factory=threading.Lock)
    switch_lock: threading.Lock = field(default_factory=threading.Lock)
    workflow_lock: threading.Lock = field(default_factory=threading.Lock)
    context_ready: bool = True


class RunnerDouble:
    def __init__(self, kube: Kube, switch_seconds: float = 0.3):
        self.kube = kube
        self.switch_seconds = switch_seconds
        self.calls: list[Call] = []
        self.faults: dict[tuple[str, str, str], Fault] = {}
        self.runners: dict[tuple[str, str], Runner] = {}
        self.delays: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="runner-double", daemon=True)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> RunnerDouble:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url_template(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/{{namespace}}/{{name}}"

    # -- control surface -------------------------------------------------------------------------

    def runner(self, namespace: str, name: str) -> Runner:
        with self._lock:
            found = self.runners.get((namespace, name))
        if found is None:
            found = self._boot(namespace, name)
            with self._lock:
                found = self.runners.setdefault((namespace, name), found)
        return found

    def restart(self, namespace: str, name: str) -> None:
        """A new runner pod: state is read again from the (new) Job's env at the next call."""
        with self._lock:
            self.runners.pop((namespace, name), None)

    def fail(self, namespace: str, name: str, path: str, fault: Fault) -> None:
        with self._lock:
            self.faults[(namespace, name, path)] = fault

    def slow(self, namespace: str, name: str, path: str, seconds: float) -> None:
        """The endpoint answers as usual, after `seconds` (a clone that takes time)."""
        with self._lock:
            self.delays[(namespace, name, path)] = seconds

    def clear(self, namespace: str, name: str, path: str) -> None:
        with self._lock:
            self.faults.pop((namespace, name, path), None)

    def calls_for(self, namespace: str, name: str, path: str | None = None) -> list[Call]:
        with self._lock:
            return [
                c
                for c in self.calls
                if (c.namespace, c.name) == (namespace, name) and (path is None or c.path == path)
            ]

    # -- state from the Job's env ----------------------------------------------------------------

    def _boot(self, namespace: str, name: str) -> Runner:
        job = self.kube.get_or_none(JOBS, namespace, runner_job_name(name)) or {}
        containers = (((job.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
            "containers"
        ) or []
        env = {e["name"]: e.get("value", "") for e in (containers[0].get("env") if containers else []) or []}
        repos = {
            r["name"]: (r["url"], r.get("branch") or "main")
            for r in json.loads(env.get("REPOS_JSON") or "[]")
        }
        workflow = (
            env.get("ACTIVE_WORKFLOW_GIT_URL", ""),
            env.get("ACTIVE_WORKFLOW_BRANCH", "main") or "main",
            env.get("ACTIVE_WORKFLOW_PATH", ""),
        )
        return Runner(model=env.get("LLM_MODEL", ""), workflow=workflow, repos=repos)

    def token(self, namespace: str, name: str) -> str:
        secret = self.kube.get_or_none(SECRETS, namespace, token_secret_name(name)) or {}
        raw = (secret.get("data") or {}).get(TOKEN_KEY_AGUI) or ""
        return base64.b64decode(raw).decode().strip() if raw else ""

    # -- the API ---------------------------------------------------------------------------------

    def handle(
        self, namespace: str, name: str, method: str, path: str, body: dict[str, Any], token: str
    ) -> tuple[int, dict[str, Any]]:
        if path == "/health":
            return 200, {"status": "healthy", "session_id": name}
        expected = self.token(namespace, name)
        if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
            return 401, {"detail": "Unauthorized"}
        runner = self.runner(namespace, name)
        route: dict[tuple[str, str], Callable[[Runner, str, dict[str, Any]], tuple[int, dict[str, Any]]]] = {
            ("POST", "/repos/add"): self._repos_add,
            ("POST", "/repos/remove"): self._repos_remove,
            ("GET", "/repos/status"): self._repos_status,
            ("POST", "/workflow"): self._workflow,
            ("POST", "/model"): self._model,
        }
        action = route.get((method, path))
        if action is None:
            return 404, {"detail": "Not Found"}
        return action(runner, name, body)

    def _repos_add(self, runner: Runner, session: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if not runner.context_ready:
            return 503, {"detail": "Context not initialized"}
        url = str(body.get("url") or "").strip()
        if not url:
            return 400, {"detail": "Repository URL is required"}
        name = str(body.get("name") or "") or url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
        branch = str(body.get("branch") or "") or f"ambient/{session}"
        newly = name not in runner.repos
        runner.repos[name] = (url, branch)
        return 200, {
            "message": "Repository added",
            "name": name,
            "path": f"/workspace/repos/{name}",
            "newly_cloned": newly,
        }

    def _repos_remove(self, runner: Runner, session: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if not runner.context_ready:
            return 503, {"detail": "Context not initialized"}
        runner.repos.pop(str(body.get("name") or ""), None)
        return 200, {"message": "Repository removed"}

    def _repos_status(self, runner: Runner, session: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        repos = [
            {
                "url": url,
                "name": name,
                "branches": [branch],
                "currentActiveBranch": branch,
                "defaultBranch": "main",
            }
            for name, (url, branch) in sorted(runner.repos.items())
        ]
        return 200, {"repos": repos}

    def _workflow(self, runner: Runner, session: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if not runner.context_ready:
            return 503, {"detail": "Context not initialized"}
        wanted = (
            str(body.get("gitUrl") or ""),
            str(body.get("branch") or "") or "main",
            str(body.get("path") or ""),
        )
        with runner.workflow_lock:
            message = "Workflow already active" if wanted == runner.workflow else "Workflow updated"
            runner.workflow = wanted
        return 200, {"message": message, "gitUrl": wanted[0], "branch": wanted[1], "path": wanted[2]}

    def _model(self, runner: Runner, session: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if not runner.context_ready:
            return 503, {"detail": "Context not initialized"}
        model = str(body.get("model") or "").strip()
        if not model:
            return 400, {"detail": "model is required"}
        if model == runner.model:
            return 200, {"message": "Model unchanged", "model": model}
        if runner.run_lock.locked():
            return 422, {
                "detail": "Cannot switch model while agent is generating a response. "
                "Wait for the current turn to complete."
            }
        if not runner.switch_lock.acquire(blocking=False):
            return 409, {"detail": "A model switch is already in progress"}
        try:
            time.sleep(self.switch_seconds)
            previous, runner.model = runner.model, model
        finally:
            runner.switch_lock.release()
        return 200, {"message": "Model switched", "model": model, "previousModel": previous}

    def fault_for(self, namespace: str, name: str, path: str) -> Fault | None:
        with self._lock:
            fault = self.faults.get((namespace, name, path))
            if fault is None:
                return None
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del self.faults[(namespace, name, path)]
            return fault

    def record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)


def _handler(double: RunnerDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def _serve(self, method: str) -> None:
            started = time.monotonic()
            parts = self.path.split("/", 3)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if len(parts) < 4:
                self._send(404, {"detail": "Not Found"})
                return
            namespace, name, path = parts[1], parts[2], "/" + parts[3]
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                self._send(500, {"detail": "Internal Server Error"})
                return
            call = Call(namespace, name, method, path, body if isinstance(body, dict) else {}, 0, started)
            fault = double.fault_for(namespace, name, path)
            if fault is not None:
                time.sleep(fault.delay)
                if fault.code == 0:
                    call.finished = time.monotonic()
                    double.record(call)
                    self.close_connection = True
                    return
                code, answer = fault.code, {"detail": fault.detail}
            else:
                time.sleep(double.delays.get((namespace, name, path), 0.0))
                code, answer = double.handle(
                    namespace, name, method, path, call.body, self.headers.get(TOKEN_HEADER) or ""
                )
            call.code, call.finished = code, time.monotonic()
            double.record(call)
            with contextlib.suppress(OSError):
                self._send(code, answer)

        def _send(self, code: int, answer: dict[str, Any]) -> None:
            data = json.dumps(answer).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
