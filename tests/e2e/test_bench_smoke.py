"""The scale benchmark's code path at a size that fits in `make test`.

Only correctness is asserted: every session reaches Running and the results have their shape. The
numbers themselves depend on the machine and are never asserted; `make bench` is where they count.
Results and the markdown go to the test's tmp directory, never to bench/results or docs/.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.options import Options
from bench.run import run
from tests.conftest import Cluster

TOP_LEVEL = {"benchmark", "machine", "parameters", "cold_start", "cleanup", "targets"}
FULL_RUN = TOP_LEVEL | {"burst", "limit", "comparison", "api_cost", "resources", "runner_sync"}
MACHINE = {"date", "command", "cores", "memory_mib", "python", "kubernetes", "git_commit"}
COLD_START = {"seconds_to_ready", "seconds_to_all_reconciled", "rss_mib_after_sync", "writes", "requests"}
PERCENTILES = {"p50", "p90", "p99"}


def _options(cluster: Cluster, tmp_path: Path, **overrides: Any) -> Options:
    settings: dict[str, Any] = {"namespaces": 2, **overrides}
    return Options(
        settle=1.0,
        idle_window=5.0,
        results_dir=tmp_path / "results",
        docs=tmp_path / "benchmarks.md",
        kubeconfig=cluster.kubeconfig,
        timeout=300.0,
        cleanup_timeout=0.0,
        earlier_runs_timeout=0.0,
        log_dir=tmp_path / "logs",
        command="pytest tests/e2e/test_bench_smoke.py",
        **settings,
    )


def _stored(path: Path, tmp_path: Path) -> dict[str, Any]:
    assert path.parent == tmp_path / "results"
    stored: dict[str, Any] = json.loads(path.read_text())
    return stored


@pytest.mark.slow
def test_full_run_with_twenty_sessions(cluster: Cluster, crd: dict[str, Any], tmp_path: Path) -> None:
    options = _options(cluster, tmp_path, sessions=20)
    _, path = run(options, say=lambda _: None)
    results = _stored(path, tmp_path)

    assert set(results) >= FULL_RUN, sorted(results)
    assert set(results["machine"]) >= MACHINE
    burst = results["burst"]
    assert burst["all_running"] and burst["running"] == 20, burst["final_phases"]
    assert burst["final_phases"] == {"Running": 20}
    assert burst["jobs_seen"] == 20
    for key in ("latency_create_to_job_seconds", "latency_create_to_running_seconds"):
        assert set(burst[key]) == PERCENTILES and all(v is not None for v in burst[key].values())
    assert results["api_cost"]["idle"]["sessions_running_at_end"] == 20
    assert results["api_cost"]["idle"]["runner_calls"] == 0
    edit = results["runner_sync"]["repos_edit"]
    assert edit["sessions"] == 20 and edit["not_reconciled"] == 0 and edit["runner_repos_add_calls"] == 20
    assert results["api_cost"]["burst"]["requests"].get("create jobs") == 20
    assert results["limit"]["sessions"] == 20
    assert set(results["cold_start"]) >= COLD_START
    assert {"peak_rss_mib_burst", "cpu_seconds_burst", "cpu_seconds_idle"} <= set(results["resources"])
    assert all(set(row) == {"measure", "result", "target", "met"} for row in results["targets"])
    docs = (tmp_path / "benchmarks.md").read_text()
    assert "| Measure | Result | Target | Met? |" in docs
    assert options.command in docs


@pytest.mark.slow
def test_scale_mode_with_ten_sessions(cluster: Cluster, crd: dict[str, Any], tmp_path: Path) -> None:
    _, path = run(_options(cluster, tmp_path, sessions=10, scale_only=True), say=lambda _: None)
    results = _stored(path, tmp_path)

    assert set(results) >= TOP_LEVEL | {"scale"}, sorted(results)
    assert results["benchmark"] == "scale"
    assert "written by the benchmark script" in results["scale"]["note"]
    assert set(results["cold_start"]) >= COLD_START
    assert set(results["scale"]["first_start"]) >= COLD_START


@pytest.mark.slow
def test_platform_mode_with_a_small_shape(cluster: Cluster, crd: dict[str, Any], tmp_path: Path) -> None:
    options = _options(cluster, tmp_path, sessions=12, namespaces=4, platform=True, platform_running=2)
    _, path = run(options, say=lambda _: None)
    results = _stored(path, tmp_path)

    assert set(results) >= TOP_LEVEL | {"platform"}, sorted(results)
    platform, cold = results["platform"], results["cold_start"]
    assert platform["shape"]["running"] == 2 and platform["shape"]["stopped"] == 10
    # The script's stopped and Running statuses are what the operator derives: nothing to write
    # to sessions; the first start sets the namespaces up as projects, the second writes nothing.
    assert platform["first_start"]["session_writes"] == 0, platform["first_start"]["requests"]
    assert cold["writes"] == cold["events"], cold["requests"]  # no object written
    # Cluster-wide mode: one watch per kind, whatever the number of namespaces (4 here) and however
    # many caches read the kind (they share it). Secrets and ConfigMaps have a second watch in the
    # backend namespace (the copies' sources; the agent registry and the models manifest).
    connections = cold["watch_connections"]
    assert connections["AgenticSession"] == 1 and max(connections.values()) <= 2, connections
    # Threads do not grow with namespaces, and workers beyond one per loop start only while
    # reconciles wait on requests: the platform target (<= 40) holds at any shape.
    assert 0 < cold["threads"] <= 40
    assert 0 < platform["idle"]["threads_after"] <= 40
    assert platform["idle"]["gets_and_lists"] == 0, platform["idle"]["requests"]
    assert "platform mode" in (tmp_path / "benchmarks.md").read_text()
