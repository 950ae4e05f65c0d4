"""One benchmark run, phase by phase, and the cluster clean-up however it ends.

Order matters: the burst runs first on a quiet cluster; the idle window follows once the burst has
settled; the cold start restarts the operator over the sessions the burst made; the limit script
runs last, with the operator stopped, so that neither disturbs the other (its PVCs and Services keep
kube-controller-manager busy for a while after it ends).
"""

from __future__ import annotations

import datetime
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import report
from bench.burst import run_burst
from bench.cluster import (
    add_kwok_nodes,
    connect,
    create_namespaces,
    delete_namespaces,
    delete_nodes,
    ensure_crd,
    machine,
    wait_for_leftovers,
)
from bench.limit import run_limit
from bench.measure import delta, failed_by_code, reads, requests_by_verb
from bench.operator import OperatorProcess, cold_start
from bench.options import RUN_LABEL, Options
from bench.platform import run_platform
from bench.provision import ANNOTATION_WRITES_PER_SESSION, CREATES_PER_SESSION, session_names
from bench.runner_edit import run_repos_edit, runner_calls
from bench.scale import run_scale
from controller.kube import Kube
from controller.resources import EVENTS, SESSIONS
from tests.e2e.runner_double import RunnerDouble

Say = Callable[[str], None]


def stderr(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


class Made:
    """What the run created in the cluster, so it is removed even when a phase fails."""

    def __init__(self, kube: Kube):
        self.kube = kube
        self.namespaces: list[str] = []
        self.nodes: list[str] = []

    def clean(self, timeout: float) -> dict[str, Any]:
        left = delete_namespaces(self.kube, self.namespaces, timeout)
        delete_nodes(self.kube, self.nodes)
        return {"namespaces": len(self.namespaces), "nodes": len(self.nodes), "still_terminating": left}


def run(options: Options, say: Say = stderr) -> tuple[dict[str, Any], Path]:
    """Runs the benchmark; returns the results and the path of their JSON file."""
    kubeconfig, local = _cluster(options.kubeconfig)
    try:
        kube = connect(kubeconfig)
        ensure_crd(kube)
        run_id = datetime.datetime.now(datetime.UTC).strftime("%m%d-%H%M%S")
        log_dir = options.log_dir or Path(tempfile.mkdtemp(prefix=f"bench-{run_id}-"))
        say(f"run {run_id}: operator logs in {log_dir}")
        previous = wait_for_leftovers(kube, options.earlier_runs_timeout, say)
        results: dict[str, Any] = {
            "benchmark": "platform" if options.platform else "scale" if options.scale_only else "full",
            "machine": machine(kube, options.command),
            "parameters": _parameters(options),
            "earlier_runs_at_start": previous,
        }
        made = Made(kube)
        try:
            if options.platform:
                results.update(_platform(kube, kubeconfig, options, run_id, log_dir, made, say))
            elif options.scale_only:
                results.update(_scale(kube, kubeconfig, options, run_id, log_dir, made, say))
            else:
                results.update(_full(kube, kubeconfig, options, run_id, log_dir, made, say))
        finally:
            if not options.keep:
                say("cleaning up")
                results["cleanup"] = made.clean(options.cleanup_timeout)
        results["targets"] = report.targets(results)
        path = report.write_json(results, options.results_dir)
        if options.docs is not None:
            report.append_markdown(options.docs, results, path)
        return results, path
    finally:
        if local is not None:
            local.down()


def _cluster(kubeconfig: Path | None) -> tuple[Path, Any]:
    """The given kubeconfig, else the local control plane: reused when running, else started here
    (and then stopped at the end)."""
    if kubeconfig is not None:
        return kubeconfig, None
    from hack.local_cluster import LocalCluster

    local = LocalCluster()
    info = local.up()
    return info.kubeconfig, None if info.reused else local


def _parameters(options: Options) -> dict[str, Any]:
    return {
        "sessions": options.sessions,
        "namespaces": options.namespaces,
        "settle": options.settle,
        "idle_window": options.idle_window,
        "repos_edit": options.repos_edit,
        "workers": asdict(options.workers),
        "concurrency": options.effective_concurrency,
        "scale_only": options.scale_only,
        "platform": options.platform,
        "platform_running": options.platform_running if options.platform else None,
        "operator_watches": "per namespace" if options.per_namespace_watches else "cluster-wide",
    }


def _namespaces(kube: Kube, made: Made, run_id: str, role: str, count: int, managed: bool) -> list[str]:
    names = [f"bench-{run_id}-{role}-{index}" for index in range(count)]
    made.namespaces += names
    create_namespaces(kube, names, managed=managed, extra_labels={RUN_LABEL: run_id} if managed else None)
    return names


def _scale(
    kube: Kube, kubeconfig: Path, options: Options, run_id: str, log_dir: Path, made: Made, say: Say
) -> dict[str, Any]:
    namespaces = _namespaces(kube, made, run_id, "scale", options.namespaces, managed=True)
    made.nodes += add_kwok_nodes(kube, options.sessions + 20, f"bench-{run_id}-node")
    return run_scale(kube, kubeconfig, options, namespaces, options.operator_selector(run_id), log_dir, say)


def _platform(
    kube: Kube, kubeconfig: Path, options: Options, run_id: str, log_dir: Path, made: Made, say: Say
) -> dict[str, Any]:
    started = time.monotonic()
    names = _namespaces(kube, made, run_id, "p", options.namespaces, managed=True)
    say(f"{len(names)} namespaces created in {time.monotonic() - started:.0f}s")
    made.nodes += add_kwok_nodes(kube, options.platform_running + 20, f"bench-{run_id}-node")
    return run_platform(kube, kubeconfig, options, names, run_id, log_dir, say)


def _full(
    kube: Kube, kubeconfig: Path, options: Options, run_id: str, log_dir: Path, made: Made, say: Say
) -> dict[str, Any]:
    n, concurrency = options.sessions, options.effective_concurrency
    namespaces = _namespaces(kube, made, run_id, "op", options.namespaces, managed=True)
    made.nodes += add_kwok_nodes(kube, n + 20, f"bench-{run_id}-node")
    # Runners are kwok fakes: the runner double answers their HTTP API, so runner sync is measured too.
    double = RunnerDouble(kube).start()
    selector = options.operator_selector(run_id)
    operator = OperatorProcess(
        kubeconfig,
        namespaces,
        options.workers,
        log_dir / "operator.log",
        selector,
        ("--runner-url-template", double.url_template),
    ).start()
    try:
        operator.wait_ready(120)
        before, p0 = operator.metrics(), operator.sample()
        say(f"burst: {n} sessions over {len(namespaces)} namespaces, {concurrency} at a time")
        burst = run_burst(
            kube, session_names(n, namespaces), concurrency, options.wait_timeout, operator.check_alive
        )
        after, p1 = operator.metrics(), operator.sample()
        events = _events_by_reason(kube, namespaces)
        say(
            f"burst: {burst['running']}/{n} Running in {burst['seconds_to_all_running']:.1f}s; "
            f"settling {options.settle:g}s, then an idle window of {options.idle_window:g}s"
        )
        time.sleep(options.settle)
        idle_before, p2 = operator.metrics(), operator.sample()
        _sleep_watching(options.idle_window, operator)
        idle_after, p3 = operator.metrics(), operator.sample()
        running_at_end = _count_running(kube, namespaces)
        edit_keys = session_names(n, namespaces)[: options.repos_edit]
        say(f"runner sync: a repos edit on {len(edit_keys)} Running sessions at once")
        repos_edit = run_repos_edit(kube, edit_keys, double, concurrency, options.wait_timeout)
        say(f"runner sync: all ReposReconciled in {repos_edit['seconds_to_all_repos_reconciled']}s")
    finally:
        operator.stop()
        double.stop()
    say("cold start: restarting the operator")
    restarted = OperatorProcess(
        kubeconfig, namespaces, options.workers, log_dir / "operator-cold-start.log", selector
    )
    try:
        cold = cold_start(restarted, n, 120.0 + 0.1 * n)
    finally:
        restarted.stop()
    say(
        f"cold start: ready in {cold['seconds_to_ready']}s, "
        f"reconciled in {cold['seconds_to_all_reconciled']}s; "
        f"settling {options.settle:g}s, then the limit script"
    )
    time.sleep(options.settle)
    limit_namespaces = _namespaces(kube, made, run_id, "limit", options.namespaces, managed=False)
    limit = run_limit(kube, session_names(n, limit_namespaces), concurrency)
    say(f"limit: {limit['sessions_per_second']} sessions/s")

    burst_requests = delta(requests_by_verb(before), requests_by_verb(after))
    idle_requests = delta(requests_by_verb(idle_before), requests_by_verb(idle_after))
    idle_seconds = p3.at - p2.at
    return {
        "burst": burst,
        "limit": limit,
        "comparison": {
            "running_ratio": _ratio(burst["running_per_second"], limit["sessions_per_second"]),
            "jobs_ratio": _ratio(burst["jobs_per_second"], limit["sessions_per_second"]),
        },
        "api_cost": {
            "burst": _burst_cost(
                burst_requests,
                n,
                burst["phase_changes_per_session"],
                delta(failed_by_code(before), failed_by_code(after)),
                events,
            ),
            "idle": {
                "window_seconds": round(idle_seconds, 1),
                "sessions_running_at_end": running_at_end,
                "requests": idle_requests,
                "requests_per_minute": round(sum(idle_requests.values()) / idle_seconds * 60, 3),
                "gets_and_lists": reads(idle_requests),
                "writes": sum(
                    v for k, v in idle_requests.items() if k.split(" ", 1)[0] not in ("get", "list", "watch")
                ),
                "runner_calls": runner_calls(idle_after) - runner_calls(idle_before),
            },
        },
        "runner_sync": {"repos_edit": repos_edit},
        "resources": {
            "peak_rss_mib_burst": round(p1.peak_rss_mib, 1),
            "rss_mib_after_burst": round(p1.rss_mib, 1),
            "rss_mib_after_idle": round(p3.rss_mib, 1),
            "cpu_seconds_burst": round(p1.cpu_seconds - p0.cpu_seconds, 2),
            "cpu_seconds_idle": round(p3.cpu_seconds - p2.cpu_seconds, 2),
            "cpu_percent_idle": round(100 * (p3.cpu_seconds - p2.cpu_seconds) / idle_seconds, 3),
        },
        "cold_start": cold,
    }


def _ratio(value: float | None, bound: float | None) -> float | None:
    return round(value / bound, 3) if value and bound else None


def _burst_cost(
    requests: dict[str, float],
    n: int,
    phase_changes: float,
    failed: dict[str, float],
    events: dict[str, int],
) -> dict[str, Any]:
    total = sum(requests.values())
    # The creates, the runner-sa annotation, and a status write and an Event per phase change.
    minimum = CREATES_PER_SESSION + ANNOTATION_WRITES_PER_SESSION + 2 * phase_changes
    return {
        "requests": requests,
        "total": total,
        "failed": failed,
        "per_session": round(total / n, 3),
        "minimum_per_session": round(minimum, 3),
        "extra_per_session": round(total / n - minimum, 3),
        "minimum_definition": report.MINIMUM_DEFINITION,
        "events_by_reason": events,
    }


def _events_by_reason(kube: Kube, namespaces: list[str]) -> dict[str, int]:
    """The operator's Events in the burst's namespaces, by reason: which ones each session costs."""
    found: dict[str, int] = {}
    for namespace in namespaces:
        for event in kube.list(EVENTS, namespace).get("items") or []:
            if (event.get("source") or {}).get("component") == "agentic-operator":
                reason = str(event.get("reason", ""))
                found[reason] = found.get(reason, 0) + 1
    return dict(sorted(found.items(), key=lambda item: -item[1]))


def _sleep_watching(seconds: float, operator: OperatorProcess) -> None:
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        time.sleep(min(remaining, 2.0))
        operator.check_alive()


def _count_running(kube: Kube, namespaces: list[str]) -> int:
    running = 0
    for namespace in namespaces:
        for item in kube.list(SESSIONS, namespace).get("items") or []:
            running += (item.get("status") or {}).get("phase") == "Running"
    return running
