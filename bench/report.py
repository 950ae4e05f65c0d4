"""Results as JSON (every number) and as a markdown section for docs/benchmarks.md (the verdicts).

Each target from the issue becomes a row Measure | Result | Target | Met?, so a reader sees at once
what was reached and how far it is from what was asked. Targets defined at 10,000 sessions are only
judged by a run at that size; smaller runs show their numbers with "n/a".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.provision import CREATES_PER_SESSION

TARGET_SCALE = 10_000
RATIO_TARGET = 0.8
EXTRA_TARGET = 0.5
RSS_TARGET_MIB = 150.0
COLD_START_TARGET = 10.0
MINIMUM_DEFINITION = (
    f"minimum writes per session = {CREATES_PER_SESSION} creates (PVC, ServiceAccount, Role, RoleBinding, "
    "TokenRequest, Secret, Job, Service) + the runner-sa annotation patch + per phase change the "
    "session went through (Creating and "
    "Running; measured by the benchmark's watch) one status write and the Event the product must record "
    "for it; every other request (status writes without a phase change, other Events, GETs after "
    "conflicts, 409s, LIST/WATCH renewals) is extra"
)
INTRO = """# Benchmarks

The operator at scale, measured by `bench/` on the local control plane (`hack/local-cluster.sh`:
etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok nodes, so runner pods are
fake but every API object is real). Each run appends a section below.

What is measured (see `python -m bench --help` for every parameter):

1. **Burst**: N sessions (default 1000) over M namespaces (default 10) created at once; the time
   until all are `Running`, and per session the latency from create to its Job and to `Running`
   (p50/p90/p99), from watches on the sessions and their children.
2. **The limit**: a plain script with the same concurrency writes, for N other sessions, exactly the
   writes a session needs (8 creates and 2 status patches), with no operator. Its sessions per second
   is this API server's bound on this machine; the operator's burst throughput is reported as a
   ratio to it, measured in the same run.
3. **API cost**: the operator's requests by verb and resource during the burst (from its
   `agentic_operator_rest_client_requests_total` counter), per session and beyond the minimum writes;
   then its requests per minute over an idle window with N sessions `Running`.
4. **Operator resources**: peak RSS (`VmHWM`) and CPU seconds (`utime+stime`) of the operator process
   for the burst and for the idle window.
5. **Cold start**: the operator restarted over N existing sessions: time until `/readyz` answers 200
   (caches synced) and until every loop has reconciled N keys with an empty queue; RSS after that.
6. **Scale** (`--scale-only`, for N=10,000): memory and cold start only; the sessions, children and
   Running statuses are written by the benchmark script rather than by the operator, to save time.
   The operator is started twice over them: the first start must find nothing to write, the second
   is the measured cold start. Most of the run is spent waiting for kube-controller-manager to bind
   a PV to every workspace claim and to create every runner pod: about 20 to 30 minutes on 2 cores.

The time to `Running` includes work that is not the operator's: kube-controller-manager creates each
runner pod and provisions a PV for each workspace claim, the scheduler places a pod only once its
claim is bound (the local StorageClass binds on first consumer, as kind's does), and kwok starts it.
The row "Where the time to Running goes" splits the path per session, and "Burst throughput to Job
created" compares the operator's own part with the limit.

Runner pods ask for 10m CPU and 32Mi so that a large burst fits the kwok nodes; the benchmark adds
kwok nodes when the existing ones cannot hold N more pods, and deletes them afterwards.

To reproduce a section, run its command from the repository root, or:

```bash
make bench BENCH_ARGS="--sessions 1000 --namespaces 10"
make bench BENCH_ARGS="--scale-only --sessions 10000"
```

Two micro-benchmarks explain the figures: `python -m bench.decode` (below) compares decoders, and
`python -m bench.cache_size` feeds real LIST bodies through the informer's path (streamed decoding,
the kind's transform, the store) and counts with tracemalloc the bytes each kind keeps per object.
"""


def write_json(results: dict[str, Any], directory: Path) -> Path:
    """bench/results/<date>.json; a second run on the same day gets <date>-2.json, and so on."""
    directory.mkdir(parents=True, exist_ok=True)
    day = str(results["machine"]["date"])[:10]
    path, number = directory / f"{day}.json", 1
    while path.exists():
        number += 1
        path = directory / f"{day}-{number}.json"
    path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    return path


def _verdict(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _at_scale(results: dict[str, Any], ok: bool) -> str:
    sessions = int(results["parameters"]["sessions"])
    return _verdict(ok) if sessions >= TARGET_SCALE else f"n/a (N={sessions})"


def _pcts(values: dict[str, Any]) -> str:
    shown = [f"{values[p]:.2f}" if values.get(p) is not None else "-" for p in ("p50", "p90", "p99")]
    return " / ".join(shown) + " s"


def _row(measure: str, result: str, target: str = "", met: str = "") -> dict[str, str]:
    return {"measure": measure, "result": result, "target": target, "met": met}


def targets(results: dict[str, Any]) -> list[dict[str, str]]:
    """The table rows: every headline number, with its target and verdict where the issue sets one."""
    if results["benchmark"] == "platform":
        from bench.platform import targets as platform_targets

        return platform_targets(results)
    cold = results["cold_start"]
    n = int(results["parameters"]["sessions"])
    rows: list[dict[str, str]] = []
    if "burst" in results:
        rows += _burst_rows(results)
    else:
        scale = results["scale"]
        rows.append(
            _row(
                "Setup by script (sessions, children, pods Running)",
                f"{scale['setup']['seconds_total']:.0f} s",
                "",
                "",
            )
        )
        first = scale["first_start"]
        rows.append(
            _row(
                "First start over the script's objects: session writes (+ project setup writes)",
                f"{first['session_writes']:.0f} (+ {first['writes'] - first['session_writes']:.0f})",
                "0 (nothing to change)",
                _verdict(first["session_writes"] == 0),
            )
        )
    rows.append(_row("Cold start: caches synced (/readyz 200)", f"{cold['seconds_to_ready']:.2f} s"))
    rows.append(
        _row(
            f"Cold start: all {n} sessions reconciled by every loop",
            f"{cold['seconds_to_all_reconciled']:.2f} s",
            f"≤ {COLD_START_TARGET:.0f} s at 10,000",
            _at_scale(results, cold["seconds_to_all_reconciled"] <= COLD_START_TARGET),
        )
    )
    rows.append(
        _row(
            "Cold start: writes",
            f"{cold['writes'] - cold['events']:.0f} (+ {cold['events']:.0f} Events, {cold['gets']:.0f} GET)",
            "0",
            _verdict(cold["writes"] == cold["events"]),
        )
    )
    rows.append(
        _row(
            f"RSS after the cold-start sync ({n} sessions and children cached)",
            f"{cold['rss_mib_after_sync']:.1f} MiB (peak {cold['peak_rss_mib']:.1f})",
            f"≤ {RSS_TARGET_MIB:.0f} MiB at 10,000",
            _at_scale(results, cold["rss_mib_after_sync"] <= RSS_TARGET_MIB),
        )
    )
    return rows


def _f(value: Any, spec: str = ".2f", suffix: str = "") -> str:
    """A number for the table; '-' when it could not be measured (for example nothing reached Running)."""
    return "-" if value is None else f"{value:{spec}}{suffix}"


def _burst_rows(results: dict[str, Any]) -> list[dict[str, str]]:
    burst, limit, comparison = results["burst"], results["limit"], results["comparison"]
    cost, idle, res = results["api_cost"]["burst"], results["api_cost"]["idle"], results["resources"]
    n = burst["sessions"]
    ratio = comparison["running_ratio"]

    def p50(key: str) -> str:
        return _f(burst[key]["p50"], ".2f", " s")

    path = (
        f"operator: create → Job {p50('latency_create_to_job_seconds')}, pod running → Running "
        f"{p50('latency_pod_running_to_session_running_seconds')}; cluster: create → PVC bound "
        f"{p50('latency_create_to_pvc_bound_seconds')}, Job → pod created "
        f"{p50('latency_job_to_pod_created_seconds')}, Job → pod running "
        f"{p50('latency_job_to_pod_running_seconds')}"
    )
    return [
        _row(
            "Burst: all sessions Running",
            f"{burst['running']}/{n} in {_f(burst['seconds_to_all_running'], '.1f', ' s')} "
            f"({_f(burst['running_per_second'])}/s)",
            f"{n}/{n}",
            _verdict(burst["all_running"]),
        ),
        _row(
            f"Limit: script, same writes, concurrency {limit['concurrency']}",
            f"{_f(limit['sessions_per_second'])} sessions/s "
            f"({_f(limit['requests_per_second'], '.0f')} requests/s)",
        ),
        _row(
            "Burst throughput to Running / limit",
            _f(ratio, ".0%"),
            f"≥ {RATIO_TARGET:.0%}",
            _verdict(ratio is not None and ratio >= RATIO_TARGET),
        ),
        _row(
            "Burst throughput to Job created / limit",
            f"{_f(comparison['jobs_ratio'], '.0%')} ({_f(burst['jobs_per_second'])}/s)",
        ),
        _row("Latency create → Job (p50 / p90 / p99)", _pcts(burst["latency_create_to_job_seconds"])),
        _row("Latency create → Running (p50 / p90 / p99)", _pcts(burst["latency_create_to_running_seconds"])),
        _row("Where the time to Running goes (p50)", path),
        _row(
            "API requests per session during the burst",
            f"{cost['per_session']:.2f} (minimum {cost['minimum_per_session']:.2f})",
        ),
        _row(
            "Extra requests per session beyond the minimum writes",
            f"{cost['extra_per_session']:.2f}",
            f"≤ {EXTRA_TARGET}",
            _verdict(cost["extra_per_session"] <= EXTRA_TARGET),
        ),
        _row(
            f"Idle ({idle['window_seconds']:.0f} s, {idle['sessions_running_at_end']} Running): requests/min",
            f"{idle['requests_per_minute']:.2f}",
            "watch/lease renewals only",
            _verdict(idle["gets_and_lists"] == 0 and idle["writes"] == 0),
        ),
        _row(
            "Idle: GET and LIST requests",
            f"{idle['gets_and_lists']:.0f}",
            "0",
            _verdict(idle["gets_and_lists"] == 0),
        ),
        _row(
            "Idle: runner HTTP calls",
            f"{idle.get('runner_calls', 0):.0f}",
            "0",
            _verdict(idle.get("runner_calls", 0) == 0),
        ),
        *_repos_edit_rows(results),
        _row("Operator peak RSS during the burst", f"{res['peak_rss_mib_burst']:.1f} MiB"),
        _row(
            "Operator CPU: burst / idle window",
            f"{res['cpu_seconds_burst']:.1f} s / {res['cpu_seconds_idle']:.2f} s "
            f"({res['cpu_percent_idle']:.2f}% of a core idle)",
        ),
    ]


def _repos_edit_rows(results: dict[str, Any]) -> list[dict[str, str]]:
    edit = (results.get("runner_sync") or {}).get("repos_edit")
    if not edit:
        return []
    seconds = edit["seconds_to_all_repos_reconciled"]
    return [
        _row(
            f"Repos edit on {edit['sessions']} Running sessions at once: until all ReposReconciled=True",
            "not reached" if seconds is None else f"{seconds:.1f} s",
            "all reconciled",
            _verdict(seconds is not None),
        ),
        _row(
            "Repos edit: runner /repos/add calls", f"{edit['runner_repos_add_calls']}", f"{edit['sessions']}"
        ),
    ]


def markdown(results: dict[str, Any], json_path: Path) -> str:
    m, p = results["machine"], results["parameters"]
    w = p["workers"]
    kind = {"scale": "scale mode", "platform": "platform mode"}.get(results["benchmark"], "full run")
    lines = [
        f"## {m['date'].replace('T', ' ').replace('Z', ' UTC')} — {kind}, {p['sessions']} sessions, "
        f"{p['namespaces']} namespaces",
        "",
        f"Command: `{m['command']}`  ",
        f"Machine: {m['cores']} cores ({m['cpu_model']}), {m['memory_mib'] / 1024:.0f} GiB, "
        f"load {' / '.join(str(x) for x in m['load_average_at_start'])} at start; Python {m['python']}, "
        f"Kubernetes {m['kubernetes']}, commit {m['git_commit']}  ",
        f"Workers: sessions {w['sessions']}, jobs {w['jobs']}, token-secrets {w['token_secrets']}, "
        f"temp-content {w['temp_content']}; concurrency {p['concurrency']}; settle {p['settle']:g} s; "
        f"operator watches {p.get('operator_watches', 'per namespace')}"
        + (f"; idle window {p['idle_window']:g} s" if results["benchmark"] != "scale" else "")
        + f"  \nResults: `{_relative(json_path)}`",
        "",
    ]
    if results["benchmark"] in ("scale", "platform"):
        lines += [results[results["benchmark"]]["note"] + ".", ""]
    lines += ["| Measure | Result | Target | Met? |", "|---|---|---|---|"]
    lines += [f"| {r['measure']} | {r['result']} | {r['target']} | {r['met']} |" for r in results["targets"]]
    if "api_cost" in results:
        cost, idle = results["api_cost"]["burst"], results["api_cost"]["idle"]
        lines += [
            "",
            f"Minimum writes: {MINIMUM_DEFINITION}.",
            "",
            "| Requests (verb resource) | Burst, per session | Idle window, total |",
            "|---|---|---|",
        ]
        for key in sorted(set(cost["requests"]) | set(idle["requests"])):
            per = cost["requests"].get(key, 0.0) / max(1, results["burst"]["sessions"])
            lines.append(f"| {key} | {per:.2f} | {idle['requests'].get(key, 0.0):.0f} |")
        burst = results["burst"]
        sessions = max(1, burst["sessions"])
        failed = ", ".join(f"{key}: {value / sessions:.2f}" for key, value in cost["failed"].items())
        events = ", ".join(
            f"{key}: {value / sessions:.2f}" for key, value in cost["events_by_reason"].items()
        )
        lines += [
            "",
            f"Per session during the burst: {burst['session_updates_per_session']:.2f} updates of the "
            f"session object, {burst['phase_changes_per_session']:.2f} of them phase changes "
            f"({', '.join(f'{k}: {v}' for k, v in burst['phase_paths'].items())}); "
            f"failed requests: {failed or 'none'}; Events by reason: {events or 'none'}.",
        ]
    return "\n".join(lines) + "\n"


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path(__file__).resolve().parent.parent))
    except ValueError:
        return str(path)


def append_markdown(docs: Path, results: dict[str, Any], json_path: Path) -> None:
    """Appends the run's section, creating the file with its introduction when it does not exist."""
    docs.parent.mkdir(parents=True, exist_ok=True)
    text = docs.read_text() if docs.exists() else INTRO
    docs.write_text(text.rstrip("\n") + "\n\n" + markdown(results, json_path))
