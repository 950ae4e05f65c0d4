"""Runs the real operator as a child process for e2e tests, and reads what it exposes.

Each test starts its own operator scoped to its own namespace (`--namespaces`), so tests do not
see each other's sessions, can configure the operator differently (short TTLs, failure knobs), and
can SIGTERM or SIGKILL it for real.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OperatorProcess:
    """One operator process with its own metrics and probe ports and a captured log file."""

    def __init__(
        self,
        kubeconfig: Path,
        log_dir: Path,
        *,
        namespaces: list[str] | None = None,
        env: Mapping[str, str] | None = None,
        args: list[str] | None = None,
        name: str = "operator",
    ):
        self.kubeconfig = kubeconfig
        self.metrics_port = free_port()
        self.probe_port = free_port()
        self.log_path = log_dir / f"{name}-{self.metrics_port}.log"
        self.namespaces = namespaces or []
        self.env = dict(env or {})
        self.args = list(args or [])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        command = [
            sys.executable,
            "-m",
            "controller",
            "run",
            "--kubeconfig",
            str(self.kubeconfig),
            "--metrics-bind-address",
            f"127.0.0.1:{self.metrics_port}",
            "--health-probe-bind-address",
            f"127.0.0.1:{self.probe_port}",
            "--runner-image",
            "registry.invalid/runner:e2e",
            "--content-image",
            "registry.invalid/content:e2e",
            "--runner-pod-annotation-prefixes",
            "kwok.ambient-code.io/",
            "--log-level",
            "debug",
            # Most tests make sessions without the platform's ambient-runner-secrets; the tests of
            # that rule turn it back on with --require-runner-secret (a later flag wins).
            "--no-require-runner-secret",
            *self.args,
        ]
        if self.namespaces:
            command += ["--namespaces", ",".join(self.namespaces)]
        env = {**os.environ, "PYTHONPATH": str(REPO), **self.env}
        env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        return self

    # -- probes and metrics ----------------------------------------------------------------------

    def _get(self, port: int, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            return 0, str(exc)

    def readyz(self) -> tuple[int, str]:
        return self._get(self.probe_port, "/readyz")

    def healthz(self) -> tuple[int, str]:
        return self._get(self.probe_port, "/healthz")

    def metrics_text(self) -> str:
        status, body = self._get(self.metrics_port, "/metrics")
        if status != 200:
            raise AssertionError(f"/metrics answered {status}: {body[:200]}")
        return body

    def metrics(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        """Samples by name: [(labels, value), ...]."""
        found: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(self.metrics_text()):
            for sample in family.samples:
                found.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
        return found

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples whose labels include `labels`."""
        return sum(
            v for lab, v in self.metrics().get(name, []) if all(lab.get(k) == x for k, x in labels.items())
        )

    def wait_ready(self, timeout: float = 60.0) -> OperatorProcess:
        deadline = time.monotonic() + timeout
        last: tuple[int, str] = (0, "")
        while time.monotonic() < deadline:
            self.assert_alive()
            last = self.readyz()
            if last[0] == 200:
                return self
            time.sleep(0.2)
        raise AssertionError(f"operator not ready after {timeout}s: {last}; log tail:\n{self.log_tail()}")

    # -- lifecycle -------------------------------------------------------------------------------

    def assert_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise AssertionError(f"operator exited with {code}; log tail:\n{self.log_tail()}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def terminate(self, timeout: float = 45.0) -> int:
        """SIGTERM and wait; returns the exit code.

        An operator still running after `timeout` is asked for its threads' stacks (SIGUSR1), then
        killed, and the failure carries the log with that dump: where it waited is the finding.
        """
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGUSR1)
            time.sleep(2.0)
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(
                f"operator still running {timeout:.0f}s after SIGTERM; log tail with thread stacks:\n"
                f"{self.log_tail(400)}"
            ) from None
        finally:
            self._log.close()

    def kill(self) -> None:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()

    def stop_quietly(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        if not self._log.closed:
            self._log.close()


def rest_requests_total(metrics: Mapping[str, list[tuple[dict[str, str], float]]]) -> float:
    return sum(v for _, v in metrics.get("rest_client_requests_total", []))


def requests_by_verb(
    metrics: Mapping[str, list[tuple[dict[str, str], float]]],
) -> dict[tuple[str, str], float]:
    found: dict[tuple[str, str], float] = {}
    for labels, value in metrics.get("agentic_operator_rest_client_requests_total", []):
        key = (labels.get("verb", ""), labels.get("resource", ""))
        found[key] = found.get(key, 0.0) + value
    return found


def describe(obj: Any) -> str:
    status = (obj or {}).get("status") or {}
    conds = [
        f"{c.get('type')}={c.get('status')}/{c.get('reason')}: {c.get('message')}"
        for c in status.get("conditions") or []
    ]
    return f"phase={status.get('phase')} conditions={conds}"
