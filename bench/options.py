"""The parameters of one run, as parsed from the command line (or built by the smoke test)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.operator import Workers

REPO = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = REPO / "bench" / "results"
DEFAULT_DOCS = REPO / "docs" / "benchmarks.md"
# Every namespace the operator manages in a run carries this label, with the run's id as value.
RUN_LABEL = "ambient-code.io/benchmark-run"
# The production shape of upstream #1300: sessions and managed namespaces (--platform).
PLATFORM_SESSIONS = 4319
PLATFORM_NAMESPACES = 763


@dataclass(frozen=True)
class Options:
    sessions: int = 1000
    namespaces: int = 10
    settle: float = 15.0
    idle_window: float = 300.0
    repos_edit: int = 100
    workers: Workers = field(default_factory=Workers)
    concurrency: int | None = None
    scale_only: bool = False
    platform: bool = False
    platform_running: int = 80
    per_namespace_watches: bool = False
    results_dir: Path = DEFAULT_RESULTS
    docs: Path | None = DEFAULT_DOCS
    kubeconfig: Path | None = None
    timeout: float | None = None
    cleanup_timeout: float = 60.0
    earlier_runs_timeout: float = 900.0
    keep: bool = False
    log_dir: Path | None = None
    command: str = "python -m bench"

    def operator_selector(self, run_id: str) -> str:
        """The operator's --namespace-selector for this run's namespaces; "" runs it with --namespaces.

        Cluster-wide (one watch per kind) is the default install; --per-namespace-watches measures
        the namespaced install (one watch per kind per namespace), as runs before it did.
        """
        return "" if self.per_namespace_watches else f"{RUN_LABEL}={run_id}"

    @property
    def effective_concurrency(self) -> int:
        """Default: the operator's total worker count, the most requests it can have in flight."""
        return self.concurrency or self.workers.total

    @property
    def wait_timeout(self) -> float:
        """How long to wait for N sessions (or N runner pods) to be Running before giving up."""
        return self.timeout if self.timeout is not None else 600.0 + 2.0 * self.sessions
