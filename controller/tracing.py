"""OpenTelemetry traces: one span per reconcile, child spans per API call.

Configured only by the standard OTEL_* variables. With none set, no SDK provider is installed and
the API's no-op tracer is used: no network, no errors, no log noise, and no cost. (An SDK span with
nowhere to go still costs a reconcile tens of microseconds and several locks, which at cold start
with 10,000 sessions made up a large share of the loops' overhead.) A test may install its own
provider with an in-memory exporter; the loops' tracers follow it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

log = logging.getLogger("controller.tracing")


def _exporter(environ: Mapping[str, str]) -> SpanExporter | None:
    choice = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if choice in ("", "none") and not (choice == "" and endpoint):
        return None
    if choice == "console":
        return ConsoleSpanExporter()
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        log.warning("OTLP trace export requested but opentelemetry-exporter-otlp-proto-http is not installed")
        return None
    return OTLPSpanExporter()


def setup(environ: Mapping[str, str] | None = None) -> TracerProvider | None:
    environ = os.environ if environ is None else environ
    if environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    exporter = _exporter(environ)
    if exporter is None:
        return None
    service = environ.get("OTEL_SERVICE_NAME", "agentic-operator")
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider
