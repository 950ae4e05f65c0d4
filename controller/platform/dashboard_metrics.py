"""The metric names the platform's Grafana dashboard queries, with the meaning its operator gives them.

The platform's operator exports OpenTelemetry instruments (`ambient.sessions.active`, ...) that its
dashboard (uid `ambient-operator`) queries as `ambient_sessions_active`, `ambient_session_phase_transitions`
and so on: names without the `_total` suffix Prometheus gives counters. prometheus_client always
adds that suffix to a counter, so a counter could never match those queries. These series are
therefore exposed by a collector as *untyped* samples under the exact names: Prometheus stores
untyped samples as they come, and `rate()` and `increase()` work on them as on any counter (they
only look at the values, which never decrease here). The values are not counted a second time:
each one is read, at scrape time, from the operator's own counter that means the same thing.

Two histograms need no trick (`_bucket` is what the dashboard asks for) and use the OpenTelemetry
SDK's default boundaries, as the platform's instruments do. Names the platform defines but the
operator does not (or cannot honestly) record are listed in the README, with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from prometheus_client import Counter, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric, UnknownMetricFamily
from prometheus_client.registry import Collector

from controller import metrics

# OpenTelemetry's default explicit bucket boundaries (the platform's histograms use them).
OTEL_BUCKETS = (
    0.0,
    5.0,
    10.0,
    25.0,
    50.0,
    75.0,
    100.0,
    250.0,
    500.0,
    750.0,
    1000.0,
    2500.0,
    5000.0,
    7500.0,
    10000.0,
)
PENDING_PHASES = ("Pending", "Creating")
FINAL_PHASES = ("Stopped", "Completed", "Failed")
# A run starts when a session leaves Pending (or no phase): new sessions and restarts alike.
NOT_STARTED = ("None", "Pending")
TIMEOUT_FAILURES = ("CreatingTimeout", "DeadlineExceeded")

startup_duration = Histogram(
    "ambient_session_startup_duration",
    "Platform name: seconds from status.startTime to Running.",
    ["namespace"],
    buckets=OTEL_BUCKETS,
    registry=metrics.REGISTRY,
)
total_duration = Histogram(
    "ambient_session_total_duration",
    "Platform name: seconds from status.startTime to status.completionTime of a finished run.",
    ["namespace"],
    buckets=OTEL_BUCKETS,
    registry=metrics.REGISTRY,
)


def init_namespace(namespace: str) -> None:
    """The histograms' series of a namespace, created empty before their first observation."""
    startup_duration.labels(namespace)
    total_duration.labels(namespace)


def phase_written(
    namespace: str, new: str, since_start: float | None, since_completion: float | None
) -> None:
    """The platform's histograms for one phase change (ages in seconds, None when unknown)."""
    if since_start is None:
        return
    if new == "Running":
        startup_duration.labels(namespace).observe(since_start)
    elif new in FINAL_PHASES:
        ran = since_start - (since_completion or 0.0)
        total_duration.labels(namespace).observe(max(0.0, ran))


def session_gauges(counts: Mapping[tuple[str, str], int]) -> Iterator[Metric]:
    """ambient_sessions_active (Running) and ambient_sessions_pending (Pending, Creating, no phase)."""
    active = GaugeMetricFamily(
        "ambient_sessions_active", "Platform name: Running sessions by namespace.", labels=["namespace"]
    )
    pending = GaugeMetricFamily(
        "ambient_sessions_pending",
        "Platform name: sessions waiting to start (Pending, Creating or no phase) by namespace.",
        labels=["namespace"],
    )
    for namespace in sorted({ns for ns, _ in counts}):
        active.add_metric([namespace], counts.get((namespace, "Running"), 0))
        pending.add_metric([namespace], sum(counts.get((namespace, p), 0) for p in PENDING_PHASES))
    yield active
    yield pending


def _totals(counter: Counter) -> Iterable[tuple[dict[str, str], float]]:
    for family in counter.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                yield sample.labels, sample.value


def _untyped(name: str, doc: str, labels: list[str], values: Mapping[tuple[str, ...], float]) -> Metric:
    family = UnknownMetricFamily(name, doc, labels=labels)
    for key in sorted(values):
        family.add_metric(list(key), values[key])
    return family


class PlatformCounters(Collector):
    """The platform's counter names as untyped samples, read from the operator's own counters."""

    def __init__(self, transitions: Counter, failures: Counter, stops: Counter):
        self.transitions = transitions
        self.failures = failures
        self.stops = stops

    def describe(self) -> Iterator[Metric]:
        return self._families(empty=True)

    def collect(self) -> Iterator[Metric]:
        return self._families(empty=False)

    def _families(self, empty: bool) -> Iterator[Metric]:
        transitions: dict[tuple[str, ...], float] = {}
        completed: dict[tuple[str, ...], float] = {}
        started: dict[tuple[str, ...], float] = {}
        timeouts: dict[tuple[str, ...], float] = {}
        retries: dict[tuple[str, ...], float] = {}
        token_errors: dict[tuple[str, ...], float] = {}
        if not empty:
            for labels, value in _totals(self.transitions):
                ns, old, new = labels["namespace"], labels["from_phase"], labels["to_phase"]
                transitions[(ns, old, new)] = value
                if new in FINAL_PHASES:
                    completed[(ns, new)] = completed.get((ns, new), 0.0) + value
                if old in NOT_STARTED and new not in NOT_STARTED:
                    started[(ns,)] = started.get((ns,), 0.0) + value
                timeouts.setdefault((ns,), 0.0)
            for labels, value in _totals(self.failures):
                if labels["reason"] in TIMEOUT_FAILURES:
                    timeouts[(labels["namespace"],)] = timeouts.get((labels["namespace"],), 0.0) + value
            for labels, value in _totals(self.stops):
                if labels["reason"] == "timeout":
                    timeouts[(labels["namespace"],)] = timeouts.get((labels["namespace"],), 0.0) + value
            for labels, value in _totals(metrics.reconcile_errors_total):
                retries[(labels["controller"],)] = value
                if labels["controller"] == "token-secrets":
                    token_errors[()] = value
        yield _untyped(
            "ambient_session_phase_transitions",
            "Platform name: session phase changes (counter).",
            ["namespace", "from_phase", "to_phase"],
            transitions,
        )
        yield _untyped(
            "ambient_sessions_completed",
            "Platform name: sessions that reached Stopped, Completed or Failed (counter).",
            ["namespace", "final_phase"],
            completed,
        )
        yield _untyped(
            "ambient_sessions_by_project",
            "Platform name: runs started (new sessions and restarts) by namespace (counter).",
            ["namespace"],
            started,
        )
        yield _untyped(
            "ambient_session_timeouts",
            "Platform name: sessions that timed out (CreatingTimeout, runner deadline, stop for timeout).",
            ["namespace"],
            timeouts,
        )
        yield _untyped(
            "ambient_reconcile_retries",
            "Platform name: reconciles that failed and are retried, by loop (counter).",
            ["controller"],
            retries,
        )
        yield _untyped(
            "ambient_token_refresh_errors",
            "Platform name: failed reconciles of the token secrets loop (counter).",
            [],
            token_errors,
        )
