"""What the operator process exposes and how it starts and stops: metrics, probes, SIGTERM, traces."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from controller.config import LOOPS, OperatorConfig
from controller.kube import Kube
from controller.loop import Loop
from controller.reconcile import Key, Result
from tests.conftest import Cluster
from tests.e2e.conftest import OperatorFactory, create_session, phase_is, wait_session
from tests.e2e.framework_support import CONFIGMAPS, PausableProxy, api_server_address, kubeconfig_via
from tests.e2e.helpers import wait_for, wait_until
from tests.e2e.operator import OperatorProcess

LEASE_NAME = "agentic-operator.ambient-code.io"
Samples = dict[str, list[tuple[dict[str, str], float]]]

PER_CONTROLLER = (
    "controller_runtime_reconcile_errors_total",
    "controller_runtime_terminal_reconcile_errors_total",
    "controller_runtime_reconcile_panics_total",
    "controller_runtime_reconcile_time_seconds_bucket",
    "controller_runtime_reconcile_time_seconds_sum",
    "controller_runtime_reconcile_time_seconds_count",
    "controller_runtime_max_concurrent_reconciles",
    "controller_runtime_active_workers",
)
PER_QUEUE = (
    "workqueue_depth",
    "workqueue_adds_total",
    "workqueue_queue_duration_seconds_bucket",
    "workqueue_queue_duration_seconds_sum",
    "workqueue_queue_duration_seconds_count",
    "workqueue_work_duration_seconds_bucket",
    "workqueue_work_duration_seconds_sum",
    "workqueue_work_duration_seconds_count",
    "workqueue_unfinished_work_seconds",
    "workqueue_longest_running_processor_seconds",
    "workqueue_retries_total",
)


def labelled(samples: Samples, metric: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    """The samples of `metric` whose labels include `labels`."""
    return [(lab, v) for lab, v in samples.get(metric, []) if all(lab.get(k) == x for k, x in labels.items())]


def test_metrics_expose_every_name(kube: Kube, namespace: str, start_operator: OperatorFactory) -> None:
    op = start_operator([namespace], args=["--leader-elect", "--leader-election-namespace", namespace])
    create_session(kube, "metrics", namespace)
    wait_session(kube, namespace, "metrics", phase_is("Running"), timeout=90, what="Running")
    wait_for(lambda: op.metric("controller_runtime_reconcile_total", result="success") > 0, timeout=30)
    samples = op.metrics()
    missing: list[str] = []

    for loop in LOOPS:
        for result in ("success", "error", "requeue", "requeue_after"):
            if not labelled(samples, "controller_runtime_reconcile_total", controller=loop, result=result):
                missing.append(f"controller_runtime_reconcile_total{{controller={loop},result={result}}}")
        missing += [
            f"{n}{{controller={loop}}}" for n in PER_CONTROLLER if not labelled(samples, n, controller=loop)
        ]
        missing += [
            f"{n}{{name={loop},controller={loop}}}"
            for n in PER_QUEUE
            if not labelled(samples, n, name=loop, controller=loop)
        ]
        workers = OperatorConfig().workers(loop)
        found = labelled(samples, "controller_runtime_max_concurrent_reconciles", controller=loop)
        assert [v for _, v in found] == [workers], f"max_concurrent_reconciles of {loop}: {found}"

    requests = samples.get("rest_client_requests_total", [])
    if not any({"code", "method", "host"} <= set(lab) and lab["code"].startswith("2") for lab, _ in requests):
        missing.append("rest_client_requests_total{code,method,host}")
    for suffix in ("_bucket", "_sum", "_count"):
        name = "rest_client_request_duration_seconds" + suffix
        if not any({"verb", "host"} <= set(lab) for lab, _ in samples.get(name, [])):
            missing.append(f"{name}{{verb,host}}")
    if [v for _, v in labelled(samples, "leader_election_master_status", name=LEASE_NAME)] != [1.0]:
        missing.append(f"leader_election_master_status{{name={LEASE_NAME}}} == 1")
    if not labelled(samples, "agentic_operator_watch_relists_total", namespace=namespace, cause="initial"):
        missing.append("agentic_operator_watch_relists_total{cause=initial}")
    if not labelled(samples, "agentic_operator_watch_events_total", kind="AgenticSession"):
        missing.append("agentic_operator_watch_events_total{kind=AgenticSession}")
    if not labelled(samples, "agentic_operator_cached_objects", kind="AgenticSession"):
        missing.append("agentic_operator_cached_objects{kind=AgenticSession}")
    for name in ("agentic_operator_monitored_jobs", "process_resident_memory_bytes"):
        if not samples.get(name):
            missing.append(name)
    # Watch restarts only get a series once a stream is re-opened; the family is always declared.
    if "# TYPE agentic_operator_watch_restarts_total counter" not in op.metrics_text():
        missing.append("agentic_operator_watch_restarts_total (declared)")
    assert not missing, "missing from /metrics:\n" + "\n".join(missing)
    assert samples["process_resident_memory_bytes"][0][1] > 0


def test_readyz_is_500_until_the_caches_sync(
    cluster: Cluster, namespace: str, start_operator: OperatorFactory, tmp_path: Path
) -> None:
    host, port = api_server_address(cluster.kubeconfig)
    with PausableProxy(host, port) as proxy:
        # The operator reaches the API server only through the proxy; while it is paused the caches
        # cannot sync, so the not-ready phase lasts as long as the test needs to see it.
        proxy.pause()
        config = kubeconfig_via(cluster.kubeconfig, proxy.url, tmp_path / "via-proxy.kubeconfig")
        op = start_operator([namespace], args=["--kubeconfig", str(config)], ready=False)
        statuses: list[int] = []

        def readyz() -> tuple[int, str]:
            op.assert_alive()
            answer = op.readyz()
            statuses.append(answer[0])
            return answer

        first = wait_until(readyz, lambda a: a[0] != 0, timeout=60, interval=0.05, message="probe server up")
        assert first[0] == 500 and "caches not synced" in first[1], first
        assert op.healthz()[0] == 200, op.healthz()
        wait_for(lambda: proxy.accepted > 0, timeout=30, message="the operator connects to the API")
        time.sleep(1.0)
        assert readyz()[0] == 500, "ready although no LIST could have completed"

        proxy.resume()
        wait_until(readyz, lambda a: a[0] == 200, timeout=60, interval=0.05, message="/readyz 200")
        assert op.healthz() == (200, "ok\n")
        first_ok = statuses.index(200)
        assert 500 in statuses[:first_ok], statuses
        assert all(code == 200 for code in statuses[first_ok:]), statuses
        assert op.terminate(timeout=45) == 0


def test_sigterm_drains_and_exits_zero(kube: Kube, namespace: str, start_operator: OperatorFactory) -> None:
    op = start_operator([namespace])
    for i in range(5):
        create_session(kube, f"drain-{i}", namespace)
    wait_for(
        lambda: op.metric("workqueue_adds_total", controller="sessions") >= 5,
        timeout=30,
        interval=0.05,
        message="the sessions loop has work",
    )
    signalled = time.monotonic()
    code = op.terminate(timeout=45)
    elapsed = time.monotonic() - signalled
    assert code == 0, f"exit code {code}; log:\n{op.log_tail()}"
    assert elapsed < 35, f"shutdown took {elapsed:.1f}s"
    log = op.log_text()
    assert "received SIGTERM, shutting down" in log
    assert "stopped (exit 0)" in log, op.log_tail()
    assert "did not finish" not in log, op.log_tail()


def test_reconcile_span_has_an_api_call_child(kube: Kube, namespace: str) -> None:
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        assert isinstance(provider, trace.ProxyTracerProvider), (
            f"a foreign tracer provider is set: {provider}"
        )
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    kube.create(CONFIGMAPS, namespace, {"metadata": {"name": "traced"}, "data": {}})
    done = threading.Event()

    def reconcile(key: Key) -> Result:
        kube.get(CONFIGMAPS, key[0], key[1])
        done.set()
        return Result()

    loop = Loop("test", reconcile, 1)
    loop.enqueue((namespace, "traced"))
    loop.start()
    try:
        assert done.wait(30), "the reconcile never ran"
    finally:
        assert loop.drain(10)
    spans = exporter.get_finished_spans()
    exporter.shutdown()

    parents = [
        s for s in spans if s.name == "reconcile test" and (s.attributes or {}).get("namespace") == namespace
    ]
    assert len(parents) == 1, [s.name for s in spans]
    parent = parents[0]
    assert dict(parent.attributes or {}) == {
        "controller": "test",
        "namespace": namespace,
        "name": "traced",
        "result": "success",
    }
    children = [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]
    assert [s.name for s in children] == ["kube get configmaps"], [(s.name, s.parent) for s in spans]
    assert children[0].context.trace_id == parent.context.trace_id
    assert (children[0].attributes or {}).get("http.response.status_code") == 200


def test_no_tracing_noise_without_otel_settings(
    kube: Kube, namespace: str, start_operator: OperatorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.startswith("OTEL_")]:
        monkeypatch.delenv(key)
    op: OperatorProcess = start_operator([namespace])
    create_session(kube, "quiet", namespace)
    wait_session(kube, namespace, "quiet", phase_is("Running"), timeout=90, what="Running")
    assert op.terminate(timeout=45) == 0
    noisy = [
        line
        for line in op.log_text().splitlines()
        if any(word in line.lower() for word in ("opentelemetry", "exporter", "otlp"))
    ]
    assert not noisy, "tracing noise in the log:\n" + "\n".join(noisy[:10])
    assert "loops started" in op.log_text()
