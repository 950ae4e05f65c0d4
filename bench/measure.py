"""Numbers read from outside the operator: /proc of its process, its /metrics page, percentiles.

The operator is measured as a black box, the way a cluster admin would see it: the kernel's view of
its memory and CPU, and the Prometheus counters it already exports. Nothing in the operator is
instrumented for the benchmark, so what is measured is what runs in production.
"""

from __future__ import annotations

import math
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[str, list[tuple[dict[str, str], float]]]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024
REQUESTS_BY_RESOURCE = "agentic_operator_rest_client_requests_total"
READ_VERBS = ("get", "list")


@dataclass(frozen=True)
class ProcSample:
    """One reading of a process: resident memory now and at its peak, CPU used so far."""

    at: float
    rss_bytes: int
    peak_rss_bytes: int
    cpu_seconds: float
    threads: int = 0

    @property
    def rss_mib(self) -> float:
        return self.rss_bytes / MIB

    @property
    def peak_rss_mib(self) -> float:
        return self.peak_rss_bytes / MIB


def proc_sample(pid: int) -> ProcSample:
    """VmRSS/VmHWM/Threads from /proc/<pid>/status and utime+stime from /proc/<pid>/stat.

    VmHWM is the kernel's own high-water mark, so the peak is exact even between two readings.
    """
    status = _read(f"/proc/{pid}/status")
    fields: dict[str, int] = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            fields[key] = int(value.split()[0]) * (1 if key == "Threads" else 1024)
    stat = _read(f"/proc/{pid}/stat")
    # The command name (field 2) may contain spaces; every field after its closing ')' is numeric.
    rest = stat.rsplit(")", 1)[1].split()
    utime, stime = int(rest[11]), int(rest[12])
    return ProcSample(
        at=time.monotonic(),
        rss_bytes=fields.get("VmRSS", 0),
        peak_rss_bytes=fields.get("VmHWM", 0),
        cpu_seconds=(utime + stime) / CLOCK_TICKS,
        threads=fields.get("Threads", 0),
    )


def _read(path: str) -> str:
    with open(path, encoding="ascii", errors="replace") as handle:
        return handle.read()


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """(status, body); 0 when nothing answers, so pollers can keep waiting for a starting process."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        try:
            body = exc.read().decode(errors="replace")
        except (ConnectionError, TimeoutError) as read_error:  # a busy process may answer slowly
            body = str(read_error)
        return int(exc.code), body
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        return 0, str(exc)


def parse_metrics(text: str) -> Samples:
    """Samples by name: [(labels, value), ...]."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    return found


def metric_sum(samples: Samples, metric: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include `labels`."""
    return sum(
        value
        for found, value in samples.get(metric, [])
        if all(found.get(key) == wanted for key, wanted in labels.items())
    )


def requests_by_verb(samples: Samples) -> dict[str, float]:
    """Requests keyed 'verb resource' (every status code together)."""
    found: dict[str, float] = {}
    for labels, value in samples.get(REQUESTS_BY_RESOURCE, []):
        key = f"{labels.get('verb', '')} {labels.get('resource', '')}"
        found[key] = found.get(key, 0.0) + value
    return found


def failed_by_code(samples: Samples) -> dict[str, float]:
    """Non-2xx answers keyed 'verb resource code' (conflicts, AlreadyExists, connection errors)."""
    found: dict[str, float] = {}
    for labels, value in samples.get(REQUESTS_BY_RESOURCE, []):
        code = str(labels.get("code", ""))
        if not code.startswith("2"):
            key = f"{labels.get('verb', '')} {labels.get('resource', '')} {code}"
            found[key] = found.get(key, 0.0) + value
    return found


def delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """Counter increase per key, dropping keys that did not move."""
    keys = sorted(set(before) | set(after))
    moved = {key: after.get(key, 0.0) - before.get(key, 0.0) for key in keys}
    return {key: value for key, value in moved.items() if value}


def reads(requests: Mapping[str, float]) -> float:
    """GET and LIST requests; watches are not reads in this sense (they are long-lived streams)."""
    return sum(value for key, value in requests.items() if key.split(" ", 1)[0] in READ_VERBS)


def percentiles(values: Iterable[float], points: Iterable[int] = (50, 90, 99)) -> dict[str, float | None]:
    """Nearest-rank percentiles (an observed value, never an interpolation); None without data."""
    ordered = sorted(values)
    result: dict[str, float | None] = {}
    for point in points:
        if not ordered:
            result[f"p{point}"] = None
            continue
        rank = max(1, math.ceil(point / 100 * len(ordered)))
        result[f"p{point}"] = round(ordered[rank - 1], 3)
    return result
