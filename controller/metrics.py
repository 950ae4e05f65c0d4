"""Prometheus metrics under controller-runtime's and client-go's exact names, labels and buckets.

Dashboards and alerts written for Go operators then work unchanged on this one. Everything lives in
one registry so tests and the HTTP server see the same series.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

RECONCILE_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.15,
    0.2,
    0.25,
    0.3,
    0.35,
    0.4,
    0.45,
    0.5,
    0.6,
    0.7,
    0.8,
    0.9,
    1.0,
    1.25,
    1.5,
    1.75,
    2.0,
    2.5,
    3.0,
    3.5,
    4.0,
    4.5,
    5.0,
    6.0,
    7.0,
    8.0,
    9.0,
    10.0,
    15.0,
    20.0,
    25.0,
    30.0,
    40.0,
    50.0,
    60.0,
)
WORKQUEUE_BUCKETS = tuple(1e-8 * 10**i for i in range(12))
REST_BUCKETS = (0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)
RESULTS = ("success", "error", "requeue", "requeue_after")

reconcile_total = Counter(
    "controller_runtime_reconcile_total",
    "Total number of reconciliations per controller",
    ["controller", "result"],
    registry=REGISTRY,
)
reconcile_errors_total = Counter(
    "controller_runtime_reconcile_errors_total",
    "Total number of reconciliation errors per controller",
    ["controller"],
    registry=REGISTRY,
)
terminal_reconcile_errors_total = Counter(
    "controller_runtime_terminal_reconcile_errors_total",
    "Total number of terminal reconciliation errors per controller",
    ["controller"],
    registry=REGISTRY,
)
reconcile_panics_total = Counter(
    "controller_runtime_reconcile_panics_total",
    "Total number of reconciliation panics per controller",
    ["controller"],
    registry=REGISTRY,
)
reconcile_time_seconds = Histogram(
    "controller_runtime_reconcile_time_seconds",
    "Length of time per reconciliation per controller",
    ["controller"],
    buckets=RECONCILE_BUCKETS,
    registry=REGISTRY,
)
max_concurrent_reconciles = Gauge(
    "controller_runtime_max_concurrent_reconciles",
    "Maximum number of concurrent reconciles per controller",
    ["controller"],
    registry=REGISTRY,
)
active_workers = Gauge(
    "controller_runtime_active_workers",
    "Number of currently used workers per controller",
    ["controller"],
    registry=REGISTRY,
)

workqueue_depth = Gauge(
    "workqueue_depth", "Current depth of workqueue", ["name", "controller", "priority"], registry=REGISTRY
)
workqueue_adds_total = Counter(
    "workqueue_adds_total",
    "Total number of adds handled by workqueue",
    ["name", "controller"],
    registry=REGISTRY,
)
workqueue_queue_duration_seconds = Histogram(
    "workqueue_queue_duration_seconds",
    "How long in seconds an item stays in workqueue before being requested",
    ["name", "controller"],
    buckets=WORKQUEUE_BUCKETS,
    registry=REGISTRY,
)
workqueue_work_duration_seconds = Histogram(
    "workqueue_work_duration_seconds",
    "How long in seconds processing an item from workqueue takes",
    ["name", "controller"],
    buckets=WORKQUEUE_BUCKETS,
    registry=REGISTRY,
)
workqueue_unfinished_work_seconds = Gauge(
    "workqueue_unfinished_work_seconds",
    "How many seconds of work has been done that is in progress and hasn't been observed by "
    "work_duration. Large values indicate stuck threads.",
    ["name", "controller"],
    registry=REGISTRY,
)
workqueue_longest_running_processor_seconds = Gauge(
    "workqueue_longest_running_processor_seconds",
    "How many seconds has the longest running processor for workqueue been running.",
    ["name", "controller"],
    registry=REGISTRY,
)
workqueue_retries_total = Counter(
    "workqueue_retries_total",
    "Total number of retries handled by workqueue",
    ["name", "controller"],
    registry=REGISTRY,
)

rest_client_requests_total = Counter(
    "rest_client_requests_total",
    "Number of HTTP requests, partitioned by status code, method, and host.",
    ["code", "method", "host"],
    registry=REGISTRY,
)
rest_client_request_duration_seconds = Histogram(
    "rest_client_request_duration_seconds",
    "Request latency in seconds. Broken down by verb, and host.",
    ["verb", "host"],
    buckets=REST_BUCKETS,
    registry=REGISTRY,
)
rest_client_requests_by_resource_total = Counter(
    "agentic_operator_rest_client_requests_total",
    "API requests by verb and resource, for cost accounting (rest_client_requests_total has no resource).",
    ["verb", "resource", "code"],
    registry=REGISTRY,
)

leader_election_master_status = Gauge(
    "leader_election_master_status",
    "Gauge of if the reporting system is master of the relevant lease, "
    "0 indicates backup, 1 indicates master.",
    ["name"],
    registry=REGISTRY,
)

watch_restarts_total = Counter(
    "agentic_operator_watch_restarts_total",
    "Watch streams re-opened, by kind and cause.",
    ["kind", "namespace", "cause"],
    registry=REGISTRY,
)
watch_relists_total = Counter(
    "agentic_operator_watch_relists_total",
    "Full LISTs done by informers (initial, after 410 Gone, ...).",
    ["kind", "namespace", "cause"],
    registry=REGISTRY,
)
watch_connections = Gauge(
    "agentic_operator_watch_connections",
    "Watch streams open now, by kind (one per kind in cluster-wide mode).",
    ["kind"],
    registry=REGISTRY,
)
parked_objects = Gauge(
    "agentic_operator_parked_objects",
    "Objects of unmanaged namespaces a cluster-wide watch delivered, held aside out of the caches.",
    ["kind"],
    registry=REGISTRY,
)
watch_events_total = Counter(
    "agentic_operator_watch_events_total",
    "Watch events received, by kind and event type.",
    ["kind", "type"],
    registry=REGISTRY,
)
cached_objects = Gauge(
    "agentic_operator_cached_objects",
    "Objects held in the informer caches, by kind.",
    ["kind"],
    registry=REGISTRY,
)
poison_objects_total = Counter(
    "agentic_operator_poison_objects_total",
    "Objects the caches could not hold whole (too deeply nested, unreadable): kept as metadata only.",
    ["kind"],
    registry=REGISTRY,
)
events_dropped_total = Counter(
    "agentic_operator_events_dropped_total",
    "Kubernetes Events dropped because the event queue was full (the API server was far behind).",
    registry=REGISTRY,
)
monitored_jobs = Gauge(
    "agentic_operator_monitored_jobs",
    "Runner Jobs currently monitored by the jobs loop (one monitor per Job).",
    registry=REGISTRY,
)


def init_controller(controller: str, workers: int) -> None:
    """Pre-create every labelled series so a dashboard shows zeros, not gaps, before the first event."""
    for result in RESULTS:
        reconcile_total.labels(controller, result)
    reconcile_errors_total.labels(controller)
    terminal_reconcile_errors_total.labels(controller)
    reconcile_panics_total.labels(controller)
    reconcile_time_seconds.labels(controller)
    max_concurrent_reconciles.labels(controller).set(workers)
    active_workers.labels(controller).set(0)


def exposition() -> bytes:
    return generate_latest(REGISTRY)
