"""Runner sync under load: a repos edit on many Running sessions at once, against the runner double.

Every edited session must reach `ReposReconciled=True` for its new generation, which it can only do
after the runner double answered its `/repos/add`; the time until the last one did is the result.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.measure import Samples, metric_sum
from controller.kube import Kube
from controller.resources import SESSIONS
from tests.e2e.runner_double import RunnerDouble

Key = tuple[str, str]
EDIT_REPO = "https://github.com/example/bench-edit.git"
RUNNER_CALLS = "agentic_operator_runner_requests_total"


def runner_calls(samples: Samples) -> float:
    return metric_sum(samples, RUNNER_CALLS)


def _applied(session: dict[str, Any], generation: int) -> bool:
    status = session.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "ReposReconciled":
            return bool(cond.get("status") == "True" and cond.get("observedGeneration") == generation)
    return False


def run_repos_edit(
    kube: Kube, keys: list[Key], double: RunnerDouble, concurrency: int, timeout: float
) -> dict[str, Any]:
    """Adds one repo to every session in `keys` at once; waits until each shows it Ready."""
    calls_before = len(double.calls)
    started = time.monotonic()

    def edit(key: Key) -> tuple[Key, int]:
        written = kube.patch(SESSIONS, key[0], key[1], {"spec": {"repos": [{"url": EDIT_REPO}]}})
        return key, int(written["metadata"]["generation"])

    with ThreadPoolExecutor(max(1, concurrency)) as pool:
        generations = dict(pool.map(edit, keys))
    edited = time.monotonic() - started
    waiting = dict(generations)
    namespaces = sorted({namespace for namespace, _ in keys})
    while waiting and time.monotonic() - started < timeout:
        for namespace in namespaces:
            for item in kube.list(SESSIONS, namespace).get("items") or []:
                key = (namespace, item["metadata"]["name"])
                if key in waiting and _applied(item, waiting[key]):
                    del waiting[key]
        if waiting:
            time.sleep(0.25)
    seconds = time.monotonic() - started
    adds = [c for c in double.calls[calls_before:] if c.path == "/repos/add"]
    return {
        "sessions": len(keys),
        "seconds_to_write_edits": round(edited, 2),
        "seconds_to_all_repos_reconciled": round(seconds, 2) if not waiting else None,
        "not_reconciled": len(waiting),
        "runner_repos_add_calls": len(adds),
    }
