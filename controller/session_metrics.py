"""Session metrics: what sessions do, not what the loops do.

Two sources, one per kind of question:
- How many sessions are in each phase right now is read from the sessions cache at scrape time (a
  collector), so it is always exactly the cache, needs no bookkeeping and survives restarts.
- What happened (transitions, start latency, time in Creating, failures, restarts, stops) is
  recorded where the phase is written: `phase_written`, called by controller.status for every
  status write that moved the phase. That is the one place the phase changes, so nothing is
  counted twice or missed, whichever loop made the change.

Cardinality is bounded by design: labels are the session's namespace and phases or reasons from
fixed vocabularies, never a session name, user or free text.
"""

from __future__ import annotations

import datetime
import re
import threading
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import Counter, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from controller import conditions as c
from controller import metrics
from controller.platform import dashboard_metrics as platform

# Session start-up takes seconds (warm image) to many minutes (image pull, volume provisioning,
# scale-up); buckets up to the default --creating-timeout and beyond.
STARTUP_BUCKETS = (1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0)
# The phase of a session whose status has none yet: it waits for the operator.
UNSET = "None"
STOP_REASONS = ("user", "inactivity", "run-finished", "timeout")
OTHER = "Other"
# Failure reasons are machine words set by the code or by Kubernetes (Job and container reasons),
# never user text; this bound only guards against a surprise.
_REASON = re.compile(r"^[A-Z][A-Za-z0-9]{0,62}$")
MAX_FAILURE_REASONS = 64

sessions_by_phase_help = "Sessions by namespace and phase, as in the operator's cache (leader only)."

phase_transitions_total = Counter(
    "agentic_operator_session_phase_transitions_total",
    "Session phase changes written by the operator, by namespace, old phase and new phase.",
    ["namespace", "from_phase", "to_phase"],
    registry=metrics.REGISTRY,
)
startup_seconds = Histogram(
    "agentic_operator_session_startup_duration_seconds",
    "Seconds from a session's creation (from the restart request for a restarted one) to Running.",
    ["namespace"],
    buckets=STARTUP_BUCKETS,
    registry=metrics.REGISTRY,
)
creating_seconds = Histogram(
    "agentic_operator_session_creating_duration_seconds",
    "Seconds a run spent provisioning (status.startTime until it left Creating), by the phase it "
    "left Creating for.",
    ["namespace", "to_phase"],
    buckets=STARTUP_BUCKETS,
    registry=metrics.REGISTRY,
)
failures_total = Counter(
    "agentic_operator_session_failures_total",
    "Sessions that became Failed, by namespace and the reason of the condition that failed them.",
    ["namespace", "reason"],
    registry=metrics.REGISTRY,
)
restarts_total = Counter(
    "agentic_operator_session_restarts_total",
    "Finished (Stopped, Completed, Failed) sessions started again, by namespace.",
    ["namespace"],
    registry=metrics.REGISTRY,
)
stops_total = Counter(
    "agentic_operator_session_stops_total",
    "Sessions that became Stopped, by namespace and status.stoppedReason.",
    ["namespace", "reason"],
    registry=metrics.REGISTRY,
)

_reasons_lock = threading.Lock()
_reasons_seen: set[str] = set()
_namespaces_seen: set[str] = set()


def _init_namespace(namespace: str) -> None:
    """Creates a namespace's series at its first phase change, so graphs start from zero.

    A series born with its first event hides that event from rate() and increase(): the first
    sample has nothing before it to compare with. Reasons of failures are not known in advance.
    """
    with _reasons_lock:
        if namespace in _namespaces_seen:
            return
        _namespaces_seen.add(namespace)
    startup_seconds.labels(namespace)
    for phase in (c.RUNNING, c.FAILED, c.STOPPING):
        creating_seconds.labels(namespace, phase)
    restarts_total.labels(namespace)
    for reason in STOP_REASONS:
        stops_total.labels(namespace, reason)
    platform.init_namespace(namespace)


def failure_reason(conditions: Mapping[str, c.Condition]) -> str:
    """The reason label of a failure: the failing condition's reason, within a bounded vocabulary."""
    failed = c.failure(conditions)
    reason = failed.reason if failed is not None else ""
    if not _REASON.match(reason):
        return OTHER
    with _reasons_lock:
        if reason not in _reasons_seen:
            if len(_reasons_seen) >= MAX_FAILURE_REASONS:
                return OTHER
            _reasons_seen.add(reason)
    return reason


def _seconds_since(value: Any, now: datetime.datetime) -> float | None:
    when = c.parse_time(value)
    return None if when is None else max(0.0, (now - when).total_seconds())


def phase_written(
    session: Mapping[str, Any],
    old: str,
    new: str,
    conditions: Mapping[str, c.Condition],
    now: datetime.datetime | None = None,
) -> None:
    """Records one phase change; `session` is the object as written, `conditions` as derived."""
    if old == new:
        return
    now = now or datetime.datetime.now(datetime.UTC)
    meta = session.get("metadata") or {}
    status = session.get("status") if isinstance(session.get("status"), Mapping) else {}
    status = status or {}
    namespace = str(meta.get("namespace") or "")
    _init_namespace(namespace)
    phase_transitions_total.labels(namespace, old or UNSET, new).inc()
    run_started = _seconds_since(status.get("startTime"), now)
    if new == c.RUNNING:
        count = status.get("restartCount")
        restarted = isinstance(count, int) and count > 0
        since_request = run_started if restarted else _seconds_since(meta.get("creationTimestamp"), now)
        if since_request is not None:
            startup_seconds.labels(namespace).observe(since_request)
    if old == c.CREATING and run_started is not None:
        creating_seconds.labels(namespace, new).observe(run_started)
    if new == c.FAILED:
        failures_total.labels(namespace, failure_reason(conditions)).inc()
    if new == c.STOPPED:
        reason = status.get("stoppedReason")
        stops_total.labels(namespace, reason if reason in STOP_REASONS else "user").inc()
    if old in c.TERMINAL_PHASES and new == c.PENDING:
        # A restart resets every condition, so the session is Pending again; a Failed session whose
        # fixed spec is accepted goes to Creating instead, and is not a restart.
        restarts_total.labels(namespace).inc()
    platform.phase_written(namespace, new, run_started, _seconds_since(status.get("completionTime"), now))


# -- sessions by phase, from the cache at scrape time ------------------------------------------------

SessionSource = Callable[[], Iterable[Mapping[str, Any]] | None]


def count_by_phase(sessions: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], int]:
    """(namespace, phase) -> sessions; an unset or unknown phase counts as Pending (it waits)."""
    tally: Tally[tuple[str, str]] = Tally()
    for session in sessions:
        namespace = str((session.get("metadata") or {}).get("namespace") or "")
        status = session.get("status")
        phase = status.get("phase") if isinstance(status, Mapping) else None
        tally[(namespace, phase if phase in c.PHASES else c.PENDING)] += 1
    return dict(tally)


class SessionsCollector(Collector):
    """agentic_operator_sessions{namespace, phase} plus the platform's active/pending gauges.

    Every phase of a namespace that has sessions is reported, zeros included, so a graph by phase
    shows 0 rather than a gap. A replica that is not the leader reports nothing: its cache is warm
    but another replica owns the sessions, and summing both would count every session twice.
    """

    def __init__(self) -> None:
        self._source: SessionSource = lambda: None

    def watch(self, source: SessionSource) -> None:
        """Where sessions come from: a callable returning them, or None while not leading."""
        self._source = source

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("agentic_operator_sessions", sessions_by_phase_help, labels=[])
        yield from platform.session_gauges({})

    def collect(self) -> Iterator[Metric]:
        sessions = self._source()
        counts = count_by_phase(sessions) if sessions is not None else {}
        family = GaugeMetricFamily(
            "agentic_operator_sessions", sessions_by_phase_help, labels=["namespace", "phase"]
        )
        for namespace in sorted({ns for ns, _ in counts}):
            for phase in c.PHASES:
                family.add_metric([namespace, phase], counts.get((namespace, phase), 0))
        yield family
        yield from platform.session_gauges(counts)


collector = SessionsCollector()
metrics.REGISTRY.register(collector)
metrics.REGISTRY.register(platform.PlatformCounters(phase_transitions_total, failures_total, stops_total))


def watch_sessions(source: SessionSource) -> None:
    collector.watch(source)
