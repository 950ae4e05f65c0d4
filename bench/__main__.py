"""`python -m bench` (`make bench BENCH_ARGS="..."`): the operator's scale benchmark."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.operator import Workers
from bench.options import DEFAULT_DOCS, DEFAULT_RESULTS, PLATFORM_NAMESPACES, PLATFORM_SESSIONS, Options

DESCRIPTION = """\
Measures the operator against N AgenticSessions on the local control plane (kwok nodes): a burst
of N creates (time to Running, per-session latencies), the same writes made by a plain script as the
API server's limit, the operator's API requests during the burst and over an idle window, its RSS
and CPU, and a cold start over the N sessions. --scale-only measures RSS and cold start only, over
sessions written directly by the script (meant for N=10,000). Results go to
<results-dir>/<date>.json and, as a table with the command line, to the end of --docs.

Without --kubeconfig the local control plane of hack/local-cluster.sh is used (LOCAL_CLUSTER_DIR
selects its state directory); it is started when not running, and then stopped at the end."""


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    defaults, workers = Options(), Workers()
    add = parser.add_argument
    add(
        "--sessions",
        type=positive_int,
        default=None,
        help=f"N, the number of sessions (default: {defaults.sessions}; {PLATFORM_SESSIONS} with --platform)",
    )
    add(
        "--namespaces",
        type=positive_int,
        default=None,
        help="M, the namespaces the sessions are spread over, round robin "
        f"(default: {defaults.namespaces}; {PLATFORM_NAMESPACES} with --platform)",
    )
    add(
        "--settle",
        type=seconds,
        default=defaults.settle,
        help="seconds to let the cluster settle between phases: after the burst before the idle window, "
        "after the cold start before the limit, between the two starts of --scale-only "
        "(default: %(default)s)",
    )
    add(
        "--idle-window",
        type=seconds,
        default=defaults.idle_window,
        help="seconds of the idle window, with N sessions Running, over which requests per minute and CPU "
        "are measured (default: %(default)s)",
    )
    add(
        "--repos-edit",
        type=int,
        default=defaults.repos_edit,
        help="Running sessions given a repos edit at once after the idle window; the time until every "
        "one shows ReposReconciled=True (the runner double confirmed it) is measured "
        "(default: %(default)s)",
    )
    add(
        "--workers-sessions",
        type=positive_int,
        default=workers.sessions,
        help="the operator's --workers-sessions (default: %(default)s)",
    )
    add(
        "--workers-jobs",
        type=positive_int,
        default=workers.jobs,
        help="the operator's --workers-jobs (default: %(default)s)",
    )
    add(
        "--workers-token-secrets",
        type=positive_int,
        default=workers.token_secrets,
        help="the operator's --workers-token-secrets (default: %(default)s)",
    )
    add(
        "--workers-temp-content",
        type=positive_int,
        default=workers.temp_content,
        help="the operator's --workers-temp-content (default: %(default)s)",
    )
    add(
        "--concurrency",
        type=positive_int,
        default=None,
        help="requests in flight when creating sessions and in the limit script (default: the operator's "
        "total worker count, the most requests it can have in flight)",
    )
    add(
        "--scale-only",
        action="store_true",
        help="measure only RSS and cold start, over N sessions (with children, runner pods and a Running "
        "status) written by the script instead of the operator; meant for --sessions 10000",
    )
    add(
        "--platform",
        action="store_true",
        help="the production shape of upstream #1300 (N sessions over M namespaces, mostly Stopped, "
        "--platform-running Running, a ProjectSettings per namespace when that CRD exists), written by "
        "the script; the operator runs cluster-wide and is measured over it: ready, all reconciled, RSS, "
        "threads, watch connections, then requests over --idle-window",
    )
    add(
        "--platform-running",
        type=positive_int,
        default=defaults.platform_running,
        help="sessions Running in --platform mode; the rest are Stopped (default: %(default)s)",
    )
    add(
        "--per-namespace-watches",
        action="store_true",
        help="run the operator with --namespaces (one watch per kind per namespace, the namespaced "
        "install) instead of a namespace selector (one watch per kind, the default install)",
    )
    add(
        "--results-dir",
        type=Path,
        default=DEFAULT_RESULTS,
        help="directory of the JSON results, named <date>.json (default: bench/results)",
    )
    add(
        "--docs",
        type=Path,
        default=DEFAULT_DOCS,
        help="markdown file the results table is appended to (default: docs/benchmarks.md)",
    )
    add("--no-docs", action="store_true", help="do not append to --docs")
    add(
        "--kubeconfig",
        type=Path,
        default=None,
        help="cluster to run against (default: the local control plane, see above)",
    )
    add(
        "--timeout",
        type=seconds,
        default=None,
        help="seconds to wait for all sessions (or, with --scale-only, all runner pods) to be Running "
        "(default: 600 + 2 x N)",
    )
    add(
        "--cleanup-timeout",
        type=seconds,
        default=defaults.cleanup_timeout,
        help="seconds to wait for the benchmark's namespaces to be deleted at the end; deletion goes on "
        "in the background after that (default: %(default)s)",
    )
    add(
        "--earlier-runs-timeout",
        type=seconds,
        default=defaults.earlier_runs_timeout,
        help="seconds to wait at start for namespaces and volumes of earlier runs to be reclaimed, which "
        "would otherwise load kube-controller-manager during this run (default: %(default)s)",
    )
    add("--keep", action="store_true", help="keep the namespaces and extra nodes, to inspect them")
    add(
        "--log-dir",
        type=Path,
        default=None,
        help="directory of the operator logs (default: a new temporary directory, printed at start)",
    )
    return parser


def options_from(argv: Sequence[str]) -> Options:
    args = build_parser().parse_args(argv)
    defaults = Options()
    sessions = args.sessions or (PLATFORM_SESSIONS if args.platform else defaults.sessions)
    namespaces = args.namespaces or (PLATFORM_NAMESPACES if args.platform else defaults.namespaces)
    return Options(
        sessions=sessions,
        namespaces=namespaces,
        settle=args.settle,
        idle_window=args.idle_window,
        repos_edit=args.repos_edit,
        workers=Workers(
            sessions=args.workers_sessions,
            jobs=args.workers_jobs,
            token_secrets=args.workers_token_secrets,
            temp_content=args.workers_temp_content,
        ),
        concurrency=args.concurrency,
        scale_only=args.scale_only,
        platform=args.platform,
        platform_running=args.platform_running,
        per_namespace_watches=args.per_namespace_watches,
        results_dir=args.results_dir,
        docs=None if args.no_docs else args.docs,
        kubeconfig=args.kubeconfig,
        timeout=args.timeout,
        cleanup_timeout=args.cleanup_timeout,
        earlier_runs_timeout=args.earlier_runs_timeout,
        keep=args.keep,
        log_dir=args.log_dir,
        command=shlex.join([sys.executable.replace(str(Path.cwd()) + "/", ""), "-m", "bench", *argv]),
    )


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    options = options_from(arguments)
    from bench.run import run

    results, path = run(options)
    print(f"results: {path}")
    if options.docs is not None:
        print(f"table appended to {options.docs}")
    for row in results["targets"]:
        verdict = f"  [{row['met']}]" if row["met"] else ""
        target = f"  (target {row['target']})" if row["target"] else ""
        print(f"  {row['measure']}: {row['result']}{target}{verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
