"""The burst: N sessions created at once, timed from each create to its Job and to `Running`.

Watches (sessions, and the operator's Jobs, workspace PVCs and runner pods) timestamp the first
sight of each Job, bound PVC, pod, running container and phase, so latencies are per session and
not rounded to a polling period. The PVC and pod times split the path to `Running` into the
operator's part and the cluster's (kube-controller-manager creating the pod and binding a PV to the
claim, the scheduler waiting for that binding, kwok starting the container). The phases each
session passed through, and how many times its object changed, are kept too: status writes that
carry a phase change are part of the minimum cost of a session, the others are not (report.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.measure import percentiles
from bench.provision import Key, create_sessions
from bench.watch import ObjectWatch
from controller.kube import Kube
from controller.names import ANNOTATION_SESSION_NAME, COMPONENT_RUNNER, COMPONENT_WORKSPACE, child_selector
from controller.resources import JOBS, PODS, PVCS, SESSIONS


@dataclass
class Tracker:
    """First-seen times per session, fed by the watches from their threads."""

    keys: set[Key]
    sent: dict[Key, float] = field(default_factory=dict)
    job_seen: dict[Key, float] = field(default_factory=dict)
    pvc_bound: dict[Key, float] = field(default_factory=dict)
    pod_seen: dict[Key, float] = field(default_factory=dict)
    pod_running: dict[Key, float] = field(default_factory=dict)
    running_seen: dict[Key, float] = field(default_factory=dict)
    phases: dict[Key, list[str]] = field(default_factory=dict)
    updates: dict[Key, int] = field(default_factory=dict)
    lock: threading.Condition = field(default_factory=threading.Condition)

    def on_sent(self, key: Key) -> None:
        with self.lock:
            self.sent[key] = time.monotonic()

    def on_session(self, kind: str, obj: dict[str, Any], at: float) -> None:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        if key not in self.keys or kind == "DELETED":
            return
        phase = str((obj.get("status") or {}).get("phase") or "")
        with self.lock:
            if kind == "MODIFIED":
                self.updates[key] = self.updates.get(key, 0) + 1
            seen = self.phases.setdefault(key, [])
            if phase and (not seen or seen[-1] != phase):
                seen.append(phase)
            if phase == "Running" and key not in self.running_seen:
                self.running_seen[key] = at
                self.lock.notify_all()

    def on_job(self, kind: str, obj: dict[str, Any], at: float) -> None:
        meta = obj.get("metadata") or {}
        for ref in meta.get("ownerReferences") or ():
            if ref.get("kind") == "AgenticSession" and ref.get("controller"):
                key = (str(meta.get("namespace")), str(ref.get("name")))
                if key in self.keys and kind != "DELETED":
                    with self.lock:
                        self.job_seen.setdefault(key, at)

    def _child_key(self, kind: str, obj: dict[str, Any]) -> Key | None:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace")), str((meta.get("annotations") or {}).get(ANNOTATION_SESSION_NAME)))
        return key if key in self.keys and kind != "DELETED" else None

    def on_pvc(self, kind: str, obj: dict[str, Any], at: float) -> None:
        key = self._child_key(kind, obj)
        if key is not None and (obj.get("status") or {}).get("phase") == "Bound":
            with self.lock:
                self.pvc_bound.setdefault(key, at)

    def on_pod(self, kind: str, obj: dict[str, Any], at: float) -> None:
        key = self._child_key(kind, obj)
        if key is None:
            return
        statuses = (obj.get("status") or {}).get("containerStatuses") or []
        with self.lock:
            self.pod_seen.setdefault(key, at)
            if any((s.get("state") or {}).get("running") for s in statuses):
                self.pod_running.setdefault(key, at)

    def wait_all_running(self, timeout: float, check: Callable[[], None]) -> bool:
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.running_seen) < len(self.keys):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.lock.wait(min(remaining, 2.0))
                check()  # cheap (a process poll), so it may run under the lock
        return True


def _latencies(start: dict[Key, float], end: dict[Key, float]) -> list[float]:
    return [end[key] - start[key] for key in end if key in start]


def _last(times: dict[Key, float], origin: float) -> float | None:
    return round(max(times.values()) - origin, 3) if times else None


def _rate(count: int, seconds: float | None) -> float | None:
    return round(count / seconds, 3) if seconds else None


def run_burst(
    kube: Kube, keys: list[Key], concurrency: int, timeout: float, check: Callable[[], None]
) -> dict[str, Any]:
    """Creates every session, waits until all are Running (or `timeout`), and describes what happened.

    `check` is called every couple of seconds while waiting, so a crashed operator ends the wait.
    """
    tracker = Tracker(set(keys))
    watches = [
        ObjectWatch(kube, SESSIONS, tracker.on_session).start(),
        ObjectWatch(kube, JOBS, tracker.on_job, label_selector=child_selector()).start(),
        ObjectWatch(kube, PVCS, tracker.on_pvc, label_selector=child_selector(COMPONENT_WORKSPACE)).start(),
        ObjectWatch(kube, PODS, tracker.on_pod, label_selector=child_selector(COMPONENT_RUNNER)).start(),
    ]
    try:
        started = time.monotonic()
        create_sessions(kube, keys, concurrency, on_sent=tracker.on_sent)
        created = time.monotonic()
        all_running = tracker.wait_all_running(timeout, check)
    finally:
        for watch in watches:
            watch.stop()
    with tracker.lock:
        sent, jobs, running = dict(tracker.sent), dict(tracker.job_seen), dict(tracker.running_seen)
        pods, pods_running = dict(tracker.pod_seen), dict(tracker.pod_running)
        bound = dict(tracker.pvc_bound)
        phases = {key: list(value) for key, value in tracker.phases.items()}
        updates = dict(tracker.updates)
    count = len(keys)
    to_running, to_jobs = _last(running, started), _last(jobs, started)
    final_phases: dict[str, int] = {}
    for key in keys:
        final = (phases.get(key) or ["<none>"])[-1]
        final_phases[final] = final_phases.get(final, 0) + 1
    return {
        "sessions": count,
        "concurrency": concurrency,
        "running": len(running),
        "jobs_seen": len(jobs),
        "all_running": all_running,
        "final_phases": final_phases,
        "create_seconds": round(created - started, 3),
        "seconds_to_all_jobs": to_jobs,
        "seconds_to_all_runner_pods_running": _last(pods_running, started),
        "seconds_to_all_running": to_running,
        "running_per_second": _rate(len(running), to_running),
        "jobs_per_second": _rate(len(jobs), to_jobs),
        "latency_create_to_job_seconds": percentiles(_latencies(sent, jobs)),
        "latency_create_to_running_seconds": percentiles(_latencies(sent, running)),
        "latency_create_to_pvc_bound_seconds": percentiles(_latencies(sent, bound)),
        "latency_job_to_pod_created_seconds": percentiles(_latencies(jobs, pods)),
        "latency_job_to_pod_running_seconds": percentiles(_latencies(jobs, pods_running)),
        "latency_pod_running_to_session_running_seconds": percentiles(_latencies(pods_running, running)),
        "phase_changes_per_session": round(sum(len(phases.get(key, [])) for key in keys) / count, 3),
        "session_updates_per_session": round(sum(updates.values()) / count, 3),
        "phase_paths": _paths(phases, keys),
    }


def _paths(phases: dict[Key, list[str]], keys: list[Key]) -> dict[str, int]:
    """How many sessions took each path through the phases, e.g. 'Creating>Running': 998."""
    found: dict[str, int] = {}
    for key in keys:
        path = ">".join(phases.get(key, [])) or "<none>"
        found[path] = found.get(path, 0) + 1
    return found
