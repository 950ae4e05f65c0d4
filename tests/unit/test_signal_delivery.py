"""SIGTERM stops the operator whichever of its threads the kernel hands the signal to.

A process-directed signal may be delivered to any thread; Python's handler then runs only when the
main thread executes bytecode again. `signal.pthread_kill` makes that delivery deterministic: a
worker thread sends SIGTERM to itself. Each case runs in a fresh interpreter so that pytest's own
signal handlers and threads stay out of it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCENARIO = """
import logging, signal, threading, time
from controller.config import parse
from controller.manager import Manager

logging.basicConfig(level=logging.INFO)
manager = Manager(config=parse(["run"]), kube=None)
manager.install_signal_handlers()

def worker_receives_sigterm():
    time.sleep(0.2)
    signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

threading.Thread(target=worker_receives_sigterm).start()
started = time.monotonic()
{wait}
print(f"stopped after {{time.monotonic() - started:.2f}}s")
"""


def run_scenario(wait: str, timeout: float) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(SCENARIO).format(wait=wait)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=timeout
    )


def test_sigterm_delivered_to_a_worker_thread_stops_the_manager() -> None:
    result = run_scenario("manager.wait_for_stop()", timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("stopped after"), result.stdout
    assert "received SIGTERM, shutting down" in result.stderr


def test_a_bare_wait_would_miss_it() -> None:
    """The control: without the periodic wake-up the same delivery is never handled."""
    with pytest.raises(subprocess.TimeoutExpired):
        run_scenario("manager.stop_event.wait()", timeout=4)
