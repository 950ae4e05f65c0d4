"""The operator under test, as a child process with its own ports and log file.

A subprocess rather than an in-process manager: its memory and CPU are then the operator's alone
(read from /proc), a restart is a real process start (imports included), and SIGTERM takes the
same path as in a Deployment. Logging stays at info: debug logs would cost more CPU than the work.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from bench.measure import (
    ProcSample,
    Samples,
    http_get,
    metric_sum,
    parse_metrics,
    proc_sample,
    requests_by_verb,
)
from bench.provision import RUNNER_CPU_REQUEST, RUNNER_IMAGE, RUNNER_MEMORY_REQUEST

REPO = Path(__file__).resolve().parent.parent
LOOPS = ("sessions", "jobs", "token-secrets", "runner-sync")
# Hears only the sessions that ask for a content pod or still have one (see temp_content.concerns):
# caught up when idle.
ON_REQUEST_LOOPS = ("temp-content",)
# Keyed by namespace, not by session: it has reconciled every managed namespace when caught up.
PROJECTS_LOOP = "projects"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Workers:
    """Concurrent reconciles per loop, passed to the operator as --workers-<loop>."""

    sessions: int = 8
    jobs: int = 4
    token_secrets: int = 2
    temp_content: int = 2

    def args(self) -> list[str]:
        return [
            "--workers-sessions",
            str(self.sessions),
            "--workers-jobs",
            str(self.jobs),
            "--workers-token-secrets",
            str(self.token_secrets),
            "--workers-temp-content",
            str(self.temp_content),
        ]

    @property
    def total(self) -> int:
        return self.sessions + self.jobs + self.token_secrets + self.temp_content


# What a session and its runner are made of: writes to these are the sessions' own.
SESSION_RESOURCES = frozenset(
    {"agenticsessions", "jobs", "pods", "persistentvolumeclaims", "services", "secrets"}
)


class OperatorProcess:
    """`python -m controller run` scoped to the benchmark's namespaces, leader election off."""

    def __init__(
        self,
        kubeconfig: Path,
        namespaces: list[str],
        workers: Workers,
        log_path: Path,
        selector: str = "",
        extra_args: tuple[str, ...] = (),
    ):
        """`selector` runs the operator in selector mode (one watch per kind) instead of --namespaces."""
        self.kubeconfig = kubeconfig
        self.namespaces = namespaces
        self.selector = selector
        self.extra_args = extra_args
        self.workers = workers
        self.log_path = log_path
        self.metrics_port = 0
        self.probe_port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self._log: IO[bytes] | None = None
        self._port_retries = 3

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "controller",
            "run",
            "--kubeconfig",
            str(self.kubeconfig),
            *(
                ["--namespace-selector", self.selector]
                if self.selector
                else ["--namespaces", ",".join(self.namespaces)]
            ),
            "--metrics-bind-address",
            f"127.0.0.1:{self.metrics_port}",
            "--health-probe-bind-address",
            f"127.0.0.1:{self.probe_port}",
            "--no-leader-elect",
            "--runner-image",
            RUNNER_IMAGE,
            "--runner-cpu-request",
            RUNNER_CPU_REQUEST,
            "--runner-memory-request",
            RUNNER_MEMORY_REQUEST,
            # A large burst may keep sessions in Creating longer than the default 600 s on a slow
            # machine; failing them would end the measurement, not describe it.
            "--creating-timeout",
            "7200",
            "--log-level",
            "info",
            *self.workers.args(),
            *self.extra_args,
        ]

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def start(self) -> OperatorProcess:
        """Spawns the process on two fresh ports; the clock of the cold start starts here."""
        self.metrics_port, self.probe_port = free_port(), free_port()
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        env.pop("OTEL_TRACES_EXPORTER", None)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            self.command(), cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            code = None if self.process is None else self.process.returncode
            raise RuntimeError(f"the operator exited with {code}; see {self.log_path}:\n{self.log_tail()}")

    def _port_taken(self) -> bool:
        if self._port_retries <= 0 or "Address already in use" not in self.log_tail(5):
            return False
        self._port_retries -= 1
        if self._log is not None:
            self._log.close()
        return True

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def ready(self) -> bool:
        return http_get(f"http://127.0.0.1:{self.probe_port}/readyz", timeout=2)[0] == 200

    def metrics(self) -> Samples:
        status, body = http_get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10)
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}: {body[:200]}")
        return parse_metrics(body)

    def sample(self) -> ProcSample:
        return proc_sample(self.pid)

    def wait_ready(self, timeout: float, interval: float = 0.05) -> float:
        """Seconds from process start until /readyz answers 200 (caches synced)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive() and self._port_taken():
                self.start()  # another process took a port between free_port() and the bind
                continue
            self.check_alive()
            if self.ready():
                return time.monotonic() - self.started_at
            time.sleep(interval)
        raise TimeoutError(f"the operator was not ready within {timeout:.0f}s:\n{self.log_tail()}")

    def wait_reconciled(self, count: int, timeout: float, interval: float = 0.25) -> tuple[float, Samples]:
        """Seconds from process start until every loop has reconciled `count` keys and is idle.

        The projects loop counts namespaces instead: on a first start it sets up every managed
        namespace (a few writes each), and that is part of catching up.
        A counter alone could reach N by reconciling some sessions twice; with it, an empty queue
        and no busy worker mean every key enqueued by the initial list has been processed.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            at = time.monotonic()
            samples = self.metrics()
            if (
                all(loop_settled(samples, loop, count) for loop in LOOPS)
                and all(loop_settled(samples, loop, 0) for loop in ON_REQUEST_LOOPS)
                and loop_settled(samples, PROJECTS_LOOP, len(self.namespaces))
            ):
                return at - self.started_at, samples
            time.sleep(interval)
        raise TimeoutError(f"the operator did not reconcile {count} sessions within {timeout:.0f}s")

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self._log is not None and not self._log.closed:
            self._log.close()
        return self.process.returncode


def loop_settled(samples: Samples, loop: str, count: int) -> bool:
    reconciled = metric_sum(samples, "controller_runtime_reconcile_total", controller=loop)
    depth = metric_sum(samples, "workqueue_depth", name=loop)
    active = metric_sum(samples, "controller_runtime_active_workers", controller=loop)
    return reconciled >= count and depth == 0 and active == 0


def cold_start(operator: OperatorProcess, count: int, timeout: float) -> dict[str, Any]:
    """Starts `operator` over `count` existing sessions and times it until it has caught up.

    Ready is /readyz answering 200 (every cache listed and watching); caught up is every loop having
    reconciled `count` keys with an empty queue (see `wait_reconciled`). Both are counted from the
    moment the process is spawned, so interpreter start-up and imports are included. The requests
    it made on the way are returned too: anything but LIST and WATCH means the restart changed
    something, which for sessions that were already Running it should not.
    """
    operator.start()
    ready = operator.wait_ready(timeout)
    reconciled, samples = operator.wait_reconciled(count, timeout)
    after = operator.sample()
    requests = requests_by_verb(samples)
    writes = {k: v for k, v in requests.items() if k.split(" ", 1)[0] not in ("list", "watch", "get")}
    session_writes = {k: v for k, v in writes.items() if k.split(" ", 1)[-1] in SESSION_RESOURCES}
    return {
        "seconds_to_ready": round(ready, 3),
        "seconds_to_all_reconciled": round(reconciled, 3),
        "rss_mib_after_sync": round(after.rss_mib, 1),
        "peak_rss_mib": round(after.peak_rss_mib, 1),
        "cpu_seconds": round(after.cpu_seconds, 2),
        "threads": after.threads,
        "watch_connections": {
            labels.get("kind", ""): value
            for labels, value in samples.get("agentic_operator_watch_connections", [])
        },
        "requests": requests,
        "writes": sum(writes.values()),
        # Writes to sessions and their children, apart from a namespace's project setup
        # (ProjectSettings, trigger RBAC, LimitRange, NetworkPolicy), which no benchmark script writes.
        "session_writes": sum(session_writes.values()),
        # Events are writes too, but not to any object: a start on a cluster without the platform's
        # agent registry says so once (a Warning Event).
        "events": requests.get("create events", 0.0),
        "gets": sum(v for k, v in requests.items() if k.startswith("get ")),
    }


def two_starts(
    make: Callable[[str], OperatorProcess], count: int, settle: float, say: Callable[[str], None]
) -> tuple[dict[str, Any], dict[str, Any], OperatorProcess]:
    """A first start over objects the script wrote (it should write nothing), then the measured one.

    Returns both starts' figures and the second process, still running; the caller stops it.
    """
    timeout = 120.0 + 0.1 * count
    first_process = make("operator-first-start")
    try:
        first = cold_start(first_process, count, timeout)
    finally:
        first_process.stop()
    say(f"first start: ready in {first['seconds_to_ready']}s, {first['writes']:.0f} writes; settling")
    time.sleep(settle)
    second_process = make("operator-cold-start")
    try:
        second = cold_start(second_process, count, timeout)
    except BaseException:
        second_process.stop()
        raise
    return first, second, second_process
