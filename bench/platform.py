"""Platform mode (--platform): the production shape of upstream issue #1300, and the operator over it.

Upstream reported 4,319 sessions in 763 managed namespaces (674 ProjectSettings), where its Go
operator needed 4 GiB. Most of those sessions are stopped; 80 run. The script writes that shape
directly (as scale mode does, with the operator's own builders): every session with the status the
operator gives a stopped session, and for the running ones their children, a running runner pod and
the Running status; a ProjectSettings per namespace when that CRD is installed. The operator then
runs in its default, cluster-wide mode (a namespace selector matching the run's namespaces), is
started twice (the first start must find nothing to write), and the second start is measured:
readiness, all reconciled, RSS, threads, open watch connections, then requests over an idle window.

A stopped session keeps its workspace claim in the product; here stopped sessions have no children,
so kube-controller-manager does not spend the run binding thousands of volumes. The operator caches
claims as metadata only (see bench.cache_size for the bytes per object of each kind).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.measure import delta, reads, requests_by_verb
from bench.operator import OperatorProcess, two_starts
from bench.options import PLATFORM_NAMESPACES, PLATFORM_SESSIONS, Options
from bench.provision import (
    Key,
    create_children,
    create_sessions,
    create_token_secret,
    now,
    parallel,
    patch_status,
    session_names,
    status_patch,
)
from bench.scale import Runners
from controller import conditions as c
from controller.kube import Kube
from controller.resources import Resource

SESSIONS = PLATFORM_SESSIONS
NAMESPACES = PLATFORM_NAMESPACES
PROJECT_SETTINGS = Resource("vteam.ambient-code", "v1alpha1", "projectsettings", "ProjectSettings")
PROJECT_SETTINGS_CRD = "projectsettings.vteam.ambient-code"
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition")

RSS_TARGET_MIB = 120.0
THREADS_TARGET = 40
CONNECTIONS_PER_KIND_TARGET = 2
READY_TARGET = 10.0
RECONCILED_TARGET = 15.0

NOTE = (
    "platform mode: the shape of upstream #1300 written by the benchmark script (bench/platform.py, "
    "the operator's own builders); stopped sessions carry no children"
)


def stopped_status(session: dict[str, Any]) -> dict[str, Any]:
    """The status of a session the user stopped after it ran: the sessions loop leaves it as it is."""
    generation = int(session["metadata"].get("generation") or 1)
    stamp = now()

    def cond(kind: str, status: str, reason: str, message: str) -> c.Condition:
        return c.Condition(kind, status, reason, message, stamp, generation)

    conditions = [
        cond(c.RECONCILED, c.TRUE, c.SPEC_APPLIED, "the spec is valid and applied"),
        cond(c.JOB_CREATED, c.FALSE, c.STOPPED_REASON, "stopped (user); the workspace is kept"),
        cond(c.READY, c.FALSE, c.STOPPED_REASON, "the session is stopped"),
    ]
    return {
        "status": {
            "phase": c.STOPPED,
            "startTime": stamp,
            "completionTime": stamp,
            "stoppedReason": "user",
            "observedGeneration": generation,
            "conditions": c.condition_list(conditions),
        }
    }


def _project_settings(kube: Kube, namespaces: list[str], concurrency: int) -> int:
    """One ProjectSettings per namespace when the CRD exists (upstream had 674 for 763 namespaces)."""
    if kube.get_or_none(CRDS, None, PROJECT_SETTINGS_CRD) is None:
        return 0

    def create(namespace: str) -> None:
        body = {
            "apiVersion": f"{PROJECT_SETTINGS.group}/{PROJECT_SETTINGS.version}",
            "kind": PROJECT_SETTINGS.kind,
            "metadata": {"name": "projectsettings", "namespace": namespace},
            "spec": {"groupAccess": []},
        }
        kube.create(PROJECT_SETTINGS, namespace, body)

    parallel(create, namespaces, concurrency)
    return len(namespaces)


def _write_shape(
    kube: Kube, keys: list[Key], running: int, options: Options, say: Callable[[str], None]
) -> dict[str, Any]:
    """Sessions, stopped statuses, and the running sessions with children, pods and Running status."""
    concurrency = options.effective_concurrency
    running_keys = set(keys[:running])
    pods = Runners(running_keys)
    watches = pods.watch(kube)
    try:
        started = time.monotonic()
        sessions = create_sessions(kube, keys, concurrency)
        say(f"created {len(keys)} sessions in {time.monotonic() - started:.0f}s; writing stopped statuses")
        live = [s for s in sessions if (s["metadata"]["namespace"], s["metadata"]["name"]) in running_keys]
        stopped = [
            s for s in sessions if (s["metadata"]["namespace"], s["metadata"]["name"]) not in running_keys
        ]
        parallel(lambda s: patch_status(kube, s, stopped_status(s)), stopped, concurrency)
        parallel(lambda s: create_children(kube, s, suspend_job=False, with_secret=False), live, concurrency)
        say(f"stopped statuses and {len(live)} running sessions' children written; waiting for their pods")
        if not pods.wait(
            options.wait_timeout, lambda n, j: say(f"  {n}/{len(live)} pods running, {j} Jobs ready")
        ):
            raise TimeoutError(
                f"{len(pods.nodes)} of {len(live)} runner pods running after {options.wait_timeout:.0f}s"
            )
    finally:
        for watch in watches:
            watch.stop()

    def finish(session: dict[str, Any]) -> None:
        create_token_secret(kube, session)
        key = (session["metadata"]["namespace"], session["metadata"]["name"])
        patch_status(kube, session, status_patch(session, c.RUNNING, pods.nodes[key]))

    parallel(finish, live, concurrency)
    return {"seconds": round(time.monotonic() - started, 1), "running": len(live), "stopped": len(stopped)}


def run_platform(
    kube: Kube,
    kubeconfig: Path,
    options: Options,
    namespaces: list[str],
    run_id: str,
    log_dir: Path,
    say: Callable[[str], None],
) -> dict[str, Any]:
    keys = session_names(options.sessions, namespaces)
    running = min(options.platform_running, len(keys))
    shape = _write_shape(kube, keys, running, options, say)
    shape["project_settings"] = _project_settings(kube, namespaces, options.effective_concurrency)
    shape["namespaces"] = len(namespaces)
    shape["sessions"] = len(keys)
    say(
        f"shape written in {shape['seconds']:.0f}s ({shape['project_settings']} ProjectSettings); first start"
    )

    def operator(name: str) -> OperatorProcess:
        return OperatorProcess(
            kubeconfig,
            namespaces,
            options.workers,
            log_dir / f"{name}.log",
            options.operator_selector(run_id),
        )

    first, second, second_process = two_starts(operator, len(keys), options.settle, say)
    try:
        say(
            f"cold start: ready {second['seconds_to_ready']}s, "
            f"reconciled {second['seconds_to_all_reconciled']}s, RSS {second['rss_mib_after_sync']} MiB; "
            f"idle window {options.idle_window:g}s"
        )
        before, p0 = second_process.metrics(), second_process.sample()
        deadline = time.monotonic() + options.idle_window
        while (remaining := deadline - time.monotonic()) > 0:
            time.sleep(min(remaining, 2.0))
            second_process.check_alive()
        after, p1 = second_process.metrics(), second_process.sample()
    finally:
        second_process.stop()
    idle_requests = delta(requests_by_verb(before), requests_by_verb(after))
    return {
        "platform": {
            "note": NOTE,
            "shape": shape,
            "first_start": first,
            "idle": {
                "window_seconds": round(p1.at - p0.at, 1),
                "requests": idle_requests,
                "gets_and_lists": reads(idle_requests),
                "rss_mib_after": round(p1.rss_mib, 1),
                "threads_after": p1.threads,
                "cpu_seconds": round(p1.cpu_seconds - p0.cpu_seconds, 2),
            },
        },
        "cold_start": second,
    }


def _verdict(ok: bool, full_shape: bool, size: str) -> str:
    if not full_shape:
        return f"n/a ({size})"
    return "yes" if ok else "**no**"


def targets(results: dict[str, Any]) -> list[dict[str, str]]:
    """The platform rows of the results table; targets are judged only for the full #1300 shape."""
    platform, cold = results["platform"], results["cold_start"]
    shape = platform["shape"]
    size = f"{shape['sessions']} / {shape['namespaces']}"
    full = shape["sessions"] >= SESSIONS and shape["namespaces"] >= NAMESPACES
    first, idle = platform["first_start"], platform["idle"]
    per_kind = max(cold["watch_connections"].values(), default=0.0)

    def row(measure: str, result: str, target: str = "", met: str = "") -> dict[str, str]:
        return {"measure": measure, "result": result, "target": target, "met": met}

    return [
        row(
            "Shape written by script (sessions / namespaces / Running / ProjectSettings)",
            f"{size} / {shape['running']} / {shape['project_settings']} in {shape['seconds']:.0f} s",
        ),
        row(
            "First start over the script's objects: session writes (+ project setup writes)",
            f"{first['session_writes']:.0f} (+ {first['writes'] - first['session_writes']:.0f})",
            "0 (nothing to change)",
            "yes" if first["session_writes"] == 0 else "**no**",
        ),
        row(
            "Cold start: ready / all reconciled",
            f"{cold['seconds_to_ready']:.2f} s / {cold['seconds_to_all_reconciled']:.2f} s",
            f"≤ {READY_TARGET:.0f} s / ≤ {RECONCILED_TARGET:.0f} s",
            _verdict(
                cold["seconds_to_ready"] <= READY_TARGET
                and cold["seconds_to_all_reconciled"] <= RECONCILED_TARGET,
                full,
                size,
            ),
        ),
        row(
            "RSS after sync",
            f"{cold['rss_mib_after_sync']:.1f} MiB (peak {cold['peak_rss_mib']:.1f})",
            f"≤ {RSS_TARGET_MIB:.0f} MiB",
            _verdict(cold["rss_mib_after_sync"] <= RSS_TARGET_MIB, full, size),
        ),
        row(
            "Threads (all reconciled, after the idle window) / open watch connections per kind (max)",
            f"{cold['threads']}, {idle['threads_after']} / {per_kind:.0f} "
            f"({len(cold['watch_connections'])} kinds)",
            f"≤ {THREADS_TARGET} / ≤ {CONNECTIONS_PER_KIND_TARGET}",
            _verdict(
                max(cold["threads"], idle["threads_after"]) <= THREADS_TARGET
                and per_kind <= CONNECTIONS_PER_KIND_TARGET,
                True,
                size,
            ),
        ),
        row(
            f"Idle window ({idle['window_seconds']:.0f} s, {shape['running']} Running): GET/LIST",
            f"{idle['gets_and_lists']:.0f} (all requests: {sum(idle['requests'].values()):.0f})",
            "0",
            "yes" if idle["gets_and_lists"] == 0 else "**no**",
        ),
        row(
            "Cold start: writes",
            f"{cold['writes'] - cold['events']:.0f} (+ {cold['events']:.0f} Events, {cold['gets']:.0f} GET)",
            "0",
            "yes" if cold["writes"] == cold["events"] else "**no**",
        ),
    ]
