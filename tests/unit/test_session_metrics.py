"""Session metrics: recorded where the phase is written, counted from the cache at scrape time, and
exposed under the platform dashboard's names without the `_total` suffix."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from controller import conditions as c
from controller import metrics, session_metrics
from controller.resources import SESSIONS, Resource
from controller.status import write_status

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)


def ago(seconds: float) -> str:
    return (NOW - datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def fresh_namespace() -> str:
    """Each test counts in its own namespace: the registry is process-wide."""
    return "ns-" + uuid.uuid4().hex[:8]


def session(namespace: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": namespace, "name": "s", "creationTimestamp": ago(100)},
        "status": status,
    }


def value(name: str, **labels: str) -> float:
    found = metrics.REGISTRY.get_sample_value(name, labels)
    return 0.0 if found is None else found


def failed_by(reason: str) -> dict[str, c.Condition]:
    return {c.RUNNER_FINISHED: c.Condition(c.RUNNER_FINISHED, c.TRUE, reason)}


def test_transition_is_counted_with_unset_as_none() -> None:
    ns = fresh_namespace()
    session_metrics.phase_written(session(ns), "", c.CREATING, {}, NOW)
    session_metrics.phase_written(session(ns), c.CREATING, c.CREATING, {}, NOW)
    name = "agentic_operator_session_phase_transitions_total"
    assert value(name, namespace=ns, from_phase="None", to_phase=c.CREATING) == 1
    assert value(name, namespace=ns, from_phase=c.CREATING, to_phase=c.CREATING) == 0


def test_startup_is_measured_from_creation_then_from_the_restart() -> None:
    ns = fresh_namespace()
    first = session(ns, startTime=ago(40))
    session_metrics.phase_written(first, c.CREATING, c.RUNNING, {}, NOW)
    name = "agentic_operator_session_startup_duration_seconds_sum"
    assert value(name, namespace=ns) == 100  # creationTimestamp, not startTime
    restarted = session(ns, startTime=ago(30), restartCount=1)
    session_metrics.phase_written(restarted, c.CREATING, c.RUNNING, {}, NOW)
    assert value(name, namespace=ns) == 130
    # The platform's histogram measures from startTime, as its operator does.
    assert value("ambient_session_startup_duration_sum", namespace=ns) == 70
    assert value("ambient_session_startup_duration_count", namespace=ns) == 2


def test_time_in_creating_is_labelled_with_where_it_went() -> None:
    ns = fresh_namespace()
    session_metrics.phase_written(session(ns, startTime=ago(12)), c.CREATING, c.FAILED, failed_by("X"), NOW)
    name = "agentic_operator_session_creating_duration_seconds_count"
    assert value(name, namespace=ns, to_phase=c.FAILED) == 1
    assert value(name, namespace=ns, to_phase=c.RUNNING) == 0
    # Without startTime there is nothing to measure from, and nothing is made up.
    session_metrics.phase_written(session(ns), c.CREATING, c.RUNNING, {}, NOW)
    assert value(name, namespace=ns, to_phase=c.RUNNING) == 0


def test_failures_by_bounded_reason() -> None:
    ns = fresh_namespace()
    for reason in (c.CREATING_TIMEOUT, "ImagePullBackOff", "not a reason: user text", ""):
        session_metrics.phase_written(session(ns), c.CREATING, c.FAILED, failed_by(reason), NOW)
    name = "agentic_operator_session_failures_total"
    assert value(name, namespace=ns, reason=c.CREATING_TIMEOUT) == 1
    assert value(name, namespace=ns, reason="ImagePullBackOff") == 1
    assert value(name, namespace=ns, reason="Other") == 2


def test_failure_reasons_are_capped(monkeypatch: Any) -> None:
    monkeypatch.setattr(session_metrics, "_reasons_seen", set())
    monkeypatch.setattr(session_metrics, "MAX_FAILURE_REASONS", 2)
    seen = [session_metrics.failure_reason(failed_by(r)) for r in ("A", "B", "C", "A")]
    assert seen == ["A", "B", "Other", "A"]


def test_stops_restarts_and_platform_counters() -> None:
    ns = fresh_namespace()
    write = session_metrics.phase_written
    write(session(ns), "", c.CREATING, {}, NOW)
    write(session(ns, startTime=ago(50)), c.CREATING, c.RUNNING, {}, NOW)
    write(session(ns), c.RUNNING, c.STOPPING, {}, NOW)
    write(
        session(ns, startTime=ago(50), completionTime=ago(10), stoppedReason="inactivity"),
        c.STOPPING,
        c.STOPPED,
        {},
        NOW,
    )
    write(session(ns, restartCount=1), c.STOPPED, c.PENDING, {}, NOW)  # restart
    write(session(ns), c.PENDING, c.CREATING, {}, NOW)
    write(session(ns, stoppedReason="bogus"), c.CREATING, c.STOPPED, {}, NOW)
    write(session(ns), c.FAILED, c.CREATING, {}, NOW)  # a fixed spec: not a restart
    assert value("agentic_operator_session_stops_total", namespace=ns, reason="inactivity") == 1
    assert value("agentic_operator_session_stops_total", namespace=ns, reason="user") == 1
    assert value("agentic_operator_session_restarts_total", namespace=ns) == 1
    assert value("ambient_session_total_duration_sum", namespace=ns) == 40

    families = {f.name: f for f in text_string_to_metric_families(metrics.exposition().decode())}
    for name in (
        "ambient_session_phase_transitions",
        "ambient_sessions_completed",
        "ambient_sessions_by_project",
    ):
        assert families[name].type == "unknown", name
        assert all(s.name == name for s in families[name].samples), name
    assert "ambient_session_phase_transitions_total" not in metrics.exposition().decode()

    def platform(name: str, **labels: str) -> float:
        return sum(
            s.value
            for s in families[name].samples
            if s.labels.get("namespace") == ns and labels.items() <= s.labels.items()
        )

    assert platform("ambient_session_phase_transitions", from_phase="None", to_phase=c.CREATING) == 1
    assert platform("ambient_sessions_completed", final_phase=c.STOPPED) == 2
    assert platform("ambient_sessions_by_project") == 2  # the first run and the restart


def test_timeouts_and_reconcile_retries_read_the_operator_counters() -> None:
    ns = fresh_namespace()
    metrics.init_controller("token-secrets", 1)
    before = value("controller_runtime_reconcile_errors_total", controller="token-secrets")
    metrics.reconcile_errors_total.labels("token-secrets").inc()
    session_metrics.phase_written(session(ns), c.CREATING, c.FAILED, failed_by(c.CREATING_TIMEOUT), NOW)
    session_metrics.phase_written(session(ns, stoppedReason="timeout"), c.STOPPING, c.STOPPED, {}, NOW)
    assert value("ambient_session_timeouts", namespace=ns) == 2
    assert value("ambient_reconcile_retries", controller="token-secrets") == before + 1
    assert value("ambient_token_refresh_errors") == before + 1


def test_sessions_by_phase_come_from_the_source_at_scrape_time() -> None:
    ns = fresh_namespace()
    cached: list[Mapping[str, Any]] = [
        session(ns, phase=c.RUNNING),
        session(ns, phase=c.RUNNING),
        session(ns, phase=c.CREATING),
        session(ns),  # no phase yet: waiting, so Pending
        session(ns, phase="Bogus"),
    ]
    leading = {"yes": True}
    session_metrics.watch_sessions(lambda: cached if leading["yes"] else None)
    try:
        assert value("agentic_operator_sessions", namespace=ns, phase=c.RUNNING) == 2
        assert value("agentic_operator_sessions", namespace=ns, phase=c.PENDING) == 2
        assert (
            metrics.REGISTRY.get_sample_value(
                "agentic_operator_sessions", {"namespace": ns, "phase": c.FAILED}
            )
            == 0
        )  # present as a zero, not missing
        assert value("ambient_sessions_active", namespace=ns) == 2
        assert value("ambient_sessions_pending", namespace=ns) == 3
        cached.append(session(ns, phase=c.RUNNING))
        assert value("ambient_sessions_active", namespace=ns) == 3
        leading["yes"] = False  # a standby replica reports nothing
        assert (
            metrics.REGISTRY.get_sample_value(
                "agentic_operator_sessions", {"namespace": ns, "phase": c.RUNNING}
            )
            is None
        )
    finally:
        session_metrics.watch_sessions(lambda: None)


class FakeKube:
    """Just enough of Kube for write_status: the patch is merged into the stored object."""

    def __init__(self, obj: dict[str, Any]):
        self.obj = obj

    def get_or_none(self, resource: Resource, namespace: str, name: str) -> dict[str, Any]:
        return self.obj

    def patch(self, resource: Resource, namespace: str, name: str, body: Any, **_: Any) -> dict[str, Any]:
        assert resource is SESSIONS
        self.obj = {**self.obj, "status": {**self.obj.get("status", {}), **body["status"]}}
        return self.obj


def test_write_status_records_the_phase_it_writes() -> None:
    ns = fresh_namespace()
    obj = session(ns)
    obj["metadata"].update(resourceVersion="1", generation=1)
    kube = FakeKube(obj)

    def describe(draft: Any) -> None:
        draft.set_condition(c.PVC_READY, c.TRUE, "Ready", "")

    assert write_status(kube, obj, "sessions", describe) == ("", c.CREATING)  # type: ignore[arg-type]
    name = "agentic_operator_session_phase_transitions_total"
    assert value(name, namespace=ns, from_phase="None", to_phase=c.CREATING) == 1
    # Written again with nothing new: no write, no count.
    assert write_status(kube, kube.obj, "sessions", describe) is None  # type: ignore[arg-type]
    assert value(name, namespace=ns, from_phase="None", to_phase=c.CREATING) == 1
