"""Metrics of the operator's calls to runners: how many, how they ended, and what is still pending.

`code` is the HTTP status, or `error` (no answer: refused, reset, DNS) or `timeout`, so a dashboard
separates 'the runner said no' from 'the runner was not there'.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from controller.metrics import REGISTRY

ENDPOINTS = ("/repos/add", "/repos/remove", "/workflow", "/model")

runner_requests_total = Counter(
    "agentic_operator_runner_requests_total",
    "HTTP calls from the operator to session runners, by endpoint and status code (error, timeout).",
    ["endpoint", "code"],
    registry=REGISTRY,
)
runner_request_duration_seconds = Histogram(
    "agentic_operator_runner_request_duration_seconds",
    "Latency of calls to session runners, by endpoint.",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
runner_sync_pending = Gauge(
    "agentic_operator_runner_sync_pending",
    "Running sessions whose spec has not fully reached their runner yet (retrying or waiting).",
    registry=REGISTRY,
)
for _endpoint in ENDPOINTS:
    runner_request_duration_seconds.labels(_endpoint)
    runner_requests_total.labels(_endpoint, "200")
