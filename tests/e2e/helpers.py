"""Helpers for tests that run against a real API server.

Everything in a cluster is eventually consistent, so tests poll; when a poll gives up, the failure
must say what was expected and what was last seen, or the CI log is useless.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

# Annotations understood by hack/kwok/stages.yaml.
KWOK = "kwok.ambient-code.io"
COMPLETE_AFTER = f"{KWOK}/complete-after"
FAIL_AFTER = f"{KWOK}/fail-after"
EXIT_CODE = f"{KWOK}/exit-code"
FAIL_REASON = f"{KWOK}/fail-reason"
WAITING_REASON = f"{KWOK}/waiting-reason"
WAITING_MESSAGE = f"{KWOK}/waiting-message"
EVICT_AFTER = f"{KWOK}/evict-after"

# Images are never pulled on kwok nodes; a syntactically valid, unresolvable name keeps it that way.
FAKE_IMAGE = "registry.invalid/agentic/runner:e2e"


def wait_until(
    observe: Callable[[], T],
    condition: Callable[[T], bool],
    *,
    timeout: float = 30.0,
    interval: float = 0.2,
    message: str = "condition",
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Poll ``observe`` until ``condition`` holds for its result and return that result.

    Exceptions listed in ``ignore`` count as "not yet" (an object that does not exist yet), and the
    last one is reported as the observed value if time runs out.
    """
    deadline = time.monotonic() + timeout
    last: object = "<nothing observed>"
    while True:
        try:
            value = observe()
        except ignore as exc:
            last = exc
        else:
            if condition(value):
                return value
            last = value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:g}s waiting for {message}; last observed: {last!r}"
            )
        time.sleep(interval)


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 30.0,
    interval: float = 0.2,
    message: str = "condition",
    *,
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return it."""
    return wait_until(predicate, bool, timeout=timeout, interval=interval, message=message, ignore=ignore)


def pod_summary(pod: Any) -> dict[str, Any]:
    """The parts of a V1Pod that explain its state, small enough to read in an assertion message."""
    status = pod.status
    containers = []
    for cs in (status.container_statuses or []) if status else []:
        state = cs.state
        if state.running:
            detail: dict[str, Any] = {"running": True}
        elif state.terminated:
            detail = {"terminated": state.terminated.reason, "exitCode": state.terminated.exit_code}
        elif state.waiting:
            detail = {"waiting": state.waiting.reason}
        else:
            detail = {}
        containers.append({"name": cs.name, "ready": cs.ready, **detail})
    return {
        "name": pod.metadata.name,
        "node": pod.spec.node_name,
        "phase": status.phase if status else None,
        "reason": status.reason if status else None,
        "podIP": status.pod_ip if status else None,
        "containers": containers,
    }


def pod_manifest(name: str, annotations: dict[str, str] | None = None, containers: int = 1) -> dict[str, Any]:
    """A bare Pod for kwok nodes; the scheduler places it, as it would a runner pod."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": dict(annotations or {})},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "runner" if i == 0 else f"sidecar-{i}",
                    "image": FAKE_IMAGE,
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                }
                for i in range(containers)
            ],
        },
    }


def condition(obj: Any, type_: str) -> Any | None:
    """The condition of ``type_`` on a typed object's status, or None."""
    for cond in (obj.status.conditions or []) if obj.status else []:
        if cond.type == type_:
            return cond
    return None
