"""Scale mode (--scale-only): memory and cold start with N sessions that already exist.

What is measured here does not depend on who wrote the objects, and a burst of 10,000 sessions
through the operator would add more than twice the minimum writes (see the burst) to a setup that is
already long. So the script writes them directly, with the operator's own builders
(bench/provision.py): each session, its seven children, and, once its runner pod runs and its Job
counts it ready, the status the operator's loops would derive for it (phase Running). Most of the
setup is then spent by kube-controller-manager, binding a volume to every workspace claim and
creating every runner pod under its client rate limit. The operator is started twice: the first
start reconciles everything once (it should write nothing; its writes are reported) and the second,
measured, start is a cold start over a settled cluster.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.operator import OperatorProcess, two_starts
from bench.options import Options
from bench.provision import (
    Key,
    create_children,
    create_sessions,
    create_token_secret,
    parallel,
    patch_status,
    session_names,
    status_patch,
)
from bench.watch import ObjectWatch
from controller import conditions as c
from controller.kube import Kube
from controller.names import ANNOTATION_SESSION_NAME, COMPONENT_RUNNER, child_selector
from controller.resources import JOBS, PODS

NOTE = (
    "scale mode: sessions, their children and a Running status were written by the benchmark script "
    "(bench/provision.py, the operator's own manifest builders), not by the operator"
)


class Runners:
    """Runner pods that run (with their node) and Jobs that count them ready, by session.

    Waiting for the Jobs too lets kube-controller-manager finish its status writes before the
    operator starts, so the cold start is not measured while Job events still stream in.
    """

    def __init__(self, keys: set[Key]):
        self.keys = keys
        self.nodes: dict[Key, str] = {}
        self.ready_jobs: set[Key] = set()
        self.lock = threading.Condition()

    def _key(self, kind: str, obj: dict[str, Any]) -> Key | None:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace")), str((meta.get("annotations") or {}).get(ANNOTATION_SESSION_NAME)))
        return key if key in self.keys and kind != "DELETED" else None

    def on_pod(self, kind: str, obj: dict[str, Any], at: float) -> None:
        key = self._key(kind, obj)
        statuses = (obj.get("status") or {}).get("containerStatuses") or []
        if key is not None and any((s.get("state") or {}).get("running") for s in statuses):
            with self.lock:
                self.nodes[key] = str((obj.get("spec") or {}).get("nodeName") or "")
                self.lock.notify_all()

    def on_job(self, kind: str, obj: dict[str, Any], at: float) -> None:
        key = self._key(kind, obj)
        if key is not None and int((obj.get("status") or {}).get("ready") or 0) >= 1:
            with self.lock:
                self.ready_jobs.add(key)
                self.lock.notify_all()

    def watch(self, kube: Kube) -> list[ObjectWatch]:
        """Starts the watches on runner pods and Jobs that feed this; the caller stops them."""
        selector = child_selector(COMPONENT_RUNNER)
        return [
            ObjectWatch(kube, PODS, self.on_pod, label_selector=selector).start(),
            ObjectWatch(kube, JOBS, self.on_job, label_selector=selector).start(),
        ]

    def wait(self, timeout: float, progress: Callable[[int, int], None], every: float = 60.0) -> bool:
        """Waits for every pod to run and every Job to be ready, reporting progress every `every` s."""
        deadline = time.monotonic() + timeout
        reported = time.monotonic()
        with self.lock:
            while len(self.nodes) < len(self.keys) or len(self.ready_jobs) < len(self.keys):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.lock.wait(min(remaining, every))
                if time.monotonic() - reported >= every:
                    reported = time.monotonic()
                    progress(len(self.nodes), len(self.ready_jobs))
        return True


def run_scale(
    kube: Kube,
    kubeconfig: Path,
    options: Options,
    namespaces: list[str],
    selector: str,
    log_dir: Path,
    say: Callable[[str], None],
) -> dict[str, Any]:
    count, concurrency = options.sessions, options.effective_concurrency
    keys = session_names(count, namespaces)
    pods = Runners(set(keys))
    watches = pods.watch(kube)
    try:
        started = time.monotonic()
        sessions = create_sessions(kube, keys, concurrency)
        say(f"created {count} sessions in {time.monotonic() - started:.0f}s; creating their children")
        parallel(
            lambda s: create_children(kube, s, suspend_job=False, with_secret=False), sessions, concurrency
        )
        children = time.monotonic() - started
        say(
            f"children written after {children:.0f}s; "
            f"waiting for {count} runner pods to run and their Jobs to be ready"
        )
        all_pods = pods.wait(
            options.wait_timeout, lambda n, j: say(f"  {n}/{count} runner pods running, {j} Jobs ready")
        )
        pods_running = time.monotonic() - started
    finally:
        for watch in watches:
            watch.stop()
    if not all_pods:
        raise TimeoutError(
            f"{len(pods.nodes)} of {count} runner pods running and {len(pods.ready_jobs)} Jobs ready "
            f"after {options.wait_timeout:.0f}s"
        )

    # The token Secret last, so its refresh time is fresh when the operator starts (a refresh due
    # during the cold start would add TokenRequests to it).
    def finish(session: dict[str, Any]) -> None:
        create_token_secret(kube, session)
        key = (session["metadata"]["namespace"], session["metadata"]["name"])
        patch_status(kube, session, status_patch(session, c.RUNNING, pods.nodes[key]))

    parallel(finish, sessions, concurrency)
    setup = time.monotonic() - started
    say(f"{count} sessions Running after {setup:.0f}s; first operator start (it reconciles everything once)")

    def operator(name: str) -> OperatorProcess:
        return OperatorProcess(kubeconfig, namespaces, options.workers, log_dir / f"{name}.log", selector)

    first, second, second_process = two_starts(operator, count, options.settle, say)
    second_process.stop()
    return {
        "scale": {
            "note": NOTE,
            "setup": {
                "seconds_children_written": round(children, 1),
                "seconds_runner_pods_running": round(pods_running, 1),
                "seconds_total": round(setup, 1),
            },
            "first_start": first,
        },
        "cold_start": second,
    }
