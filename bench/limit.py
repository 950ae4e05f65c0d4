"""The limit: how fast this API server takes a session's minimum writes, with no operator at all.

A plain thread pool, as many threads as the operator's concurrency, makes for each session exactly
the writes the operator must make: the eight creates (PVC, ServiceAccount, Role, RoleBinding,
TokenRequest, Secret, Job, Service) and the two status patches that carry the phases Creating and
Running (the path the operator's sessions take; the burst's watch reports it). No reads, no Events,
no retries, no waiting for pods. The session objects themselves are created first, outside the timed
section, so that the status patches have a target; only the children and the patches are timed.
Sessions per second of this script is the bound the operator's burst throughput is compared with.

The Jobs are created suspended: the API server does the same work for the create, but
kube-controller-manager then has no pods to create, which would otherwise load the machine for
minutes after the measurement.
"""

from __future__ import annotations

import time
from typing import Any

from bench.provision import (
    PHASES_TO_RUNNING,
    Key,
    create_children,
    create_sessions,
    parallel,
    patch_status,
    status_patch,
)
from controller.kube import Kube

DESCRIPTION = (
    "per session: create PVC, ServiceAccount, Role, RoleBinding, TokenRequest, Secret, Job (suspended), "
    "Service, the runner-sa annotation patch, then 2 status patches (Creating, Running); sessions "
    "created beforehand, untimed"
)


def run_limit(kube: Kube, keys: list[Key], concurrency: int) -> dict[str, Any]:
    sessions = create_sessions(kube, keys, concurrency)

    def provision(session: dict[str, Any]) -> int:
        requests = create_children(kube, session, suspend_job=True)
        for phase in PHASES_TO_RUNNING:
            patch_status(kube, session, status_patch(session, phase))
            requests += 1
        return requests

    started = time.monotonic()
    counts = parallel(provision, sessions, concurrency)
    seconds = time.monotonic() - started
    requests = sum(counts)
    return {
        "sessions": len(sessions),
        "concurrency": concurrency,
        "seconds": round(seconds, 3),
        "sessions_per_second": round(len(sessions) / seconds, 3) if seconds > 0 else None,
        "requests": requests,
        "requests_per_session": round(requests / len(sessions), 3) if sessions else 0.0,
        "requests_per_second": round(requests / seconds, 3) if seconds > 0 else None,
        "what": DESCRIPTION,
    }
