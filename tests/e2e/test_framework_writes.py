"""Conflict-safe writes against a real API server: guarded by resourceVersion, nothing is lost."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from controller import conditions as c
from controller.api_error import ApiError
from controller.kube import Kube
from controller.resources import JSON, SESSIONS
from controller.retry import patch_with_retry
from controller.status import StatusDraft, write_status
from tests.e2e.conftest import condition_of, create_session
from tests.e2e.framework_support import CONFIGMAPS

THREADS = 4
INCREMENTS = 25
Mutation = Callable[[Mapping[str, Any]], JSON]


def counter(obj: Mapping[str, Any]) -> int:
    return int((obj.get("data") or {}).get("n", "0"))


def run_threads(target: Callable[[int], None], count: int) -> None:
    """Runs target(index) on `count` threads and re-raises the first failure."""
    errors: list[BaseException] = []

    def guarded(index: int) -> None:
        try:
            target(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(t.is_alive() for t in threads), "writer threads did not finish within 120s"
    if errors:
        raise errors[0]


class AnnotationHammer(threading.Thread):
    """Writes an unrelated annotation as fast as it can, each write guarded by resourceVersion."""

    def __init__(self, kube: Kube, resource: Any, namespace: str, name: str):
        super().__init__(name="annotation-hammer", daemon=True)
        self.kube, self.resource, self.namespace, self.name = kube, resource, namespace, name
        self.halt = threading.Event()
        self.written = 0
        self.conflicts = 0
        self.last_written = ""
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.halt.is_set():
                current = self.kube.get(self.resource, self.namespace, self.name)
                value = str(self.written + 1)
                patch = {
                    "metadata": {
                        "resourceVersion": current["metadata"]["resourceVersion"],
                        "annotations": {"framework-test/hammer": value},
                    }
                }
                try:
                    self.kube.patch(self.resource, self.namespace, self.name, patch)
                except ApiError as exc:
                    if not exc.conflict:
                        raise
                    self.conflicts += 1
                    continue
                self.written += 1
                self.last_written = value
        except BaseException as exc:
            self.error = exc

    def finish(self) -> None:
        self.halt.set()
        self.join(30)
        assert self.error is None, f"the annotation writer failed: {self.error!r}"
        assert self.written > 0, "the annotation writer never got a write in"


def waiting_once(barrier: threading.Barrier, mutate: Mutation) -> Mutation:
    """`mutate`, whose first call waits at `barrier`; retries read afresh and do not wait."""
    waited = threading.Event()

    def first_waits(obj: Mapping[str, Any]) -> JSON:
        if not waited.is_set():
            waited.set()
            barrier.wait()
        return mutate(obj)

    return first_waits


def test_retry_on_conflict_loses_no_increment(kube: Kube, namespace: str) -> None:
    kube.create(CONFIGMAPS, namespace, {"metadata": {"name": "counter"}, "data": {"n": "0"}})
    hammer = AnnotationHammer(kube, CONFIGMAPS, namespace, "counter")
    lock = threading.Lock()
    attempts = [0]
    exhausted = [0]
    # Every thread's first increment starts from the same read, so conflicts are certain.
    first_read = threading.Barrier(THREADS, timeout=60)

    def increment(obj: Mapping[str, Any]) -> JSON:
        with lock:
            attempts[0] += 1
        return {"data": {"n": str(counter(obj) + 1)}}

    def worker(index: int) -> None:
        for step in range(INCREMENTS):
            mutate = waiting_once(first_read, increment) if step == 0 else increment

            while True:
                try:
                    written = patch_with_retry(kube, CONFIGMAPS, namespace, "counter", mutate)
                except ApiError as exc:
                    # DefaultRetry gives up after 5 conflicts in a row; like a requeued reconcile,
                    # the caller then tries again. The increment was not applied, so nothing is lost.
                    assert exc.conflict, exc
                    with lock:
                        exhausted[0] += 1
                    mutate = increment
                    continue
                assert written is not None, "patch_with_retry wrote nothing for a needed change"
                break

    hammer.start()
    try:
        run_threads(worker, THREADS)
    finally:
        hammer.finish()

    final = kube.get(CONFIGMAPS, namespace, "counter")
    assert counter(final) == THREADS * INCREMENTS, (
        f"n={counter(final)} after {THREADS * INCREMENTS} increments "
        f"({attempts[0]} attempts, {exhausted[0]} exhausted retries, {hammer.written} annotation writes)"
    )
    assert attempts[0] > THREADS * INCREMENTS, "no write ever conflicted, so nothing was tested"
    assert final["metadata"]["annotations"]["framework-test/hammer"] == hammer.last_written


def test_unguarded_merge_patches_from_a_stale_read_lose_updates(kube: Kube, namespace: str) -> None:
    """The control experiment: the same increments without the resourceVersion guard."""
    kube.create(CONFIGMAPS, namespace, {"metadata": {"name": "counter"}, "data": {"n": "0"}})
    # Lockstep rounds: every thread reads, then every thread writes what it computed.
    read_done = threading.Barrier(THREADS, timeout=60)
    write_done = threading.Barrier(THREADS, timeout=60)

    def worker(index: int) -> None:
        for _ in range(INCREMENTS):
            value = counter(kube.get(CONFIGMAPS, namespace, "counter"))
            read_done.wait()
            kube.patch(CONFIGMAPS, namespace, "counter", {"data": {"n": str(value + 1)}})
            write_done.wait()

    run_threads(worker, THREADS)
    final = counter(kube.get(CONFIGMAPS, namespace, "counter"))
    # Each round's four writes all carry the same value: three of every four increments vanish.
    assert final == INCREMENTS, f"expected exactly {INCREMENTS} surviving increments, got {final}"
    assert final < THREADS * INCREMENTS


def test_status_writes_keep_every_loops_condition(kube: Kube, namespace: str, crd: dict[str, Any]) -> None:
    create_session(kube, "status", namespace)
    hammer = AnnotationHammer(kube, SESSIONS, namespace, "status")
    loops = {"sessions": c.PVC_READY, "token-secrets": c.SECRETS_READY, "jobs": c.POD_SCHEDULED}
    rounds = 10
    round_start = threading.Barrier(len(loops), timeout=60)
    attempts = [0]
    exhausted = [0]
    lock = threading.Lock()

    def writer(index: int) -> None:
        loop = list(loops)[index]
        kind = loops[loop]
        for number in range(rounds):
            # All loops start each round from the same snapshot, like workers reading one cache.
            if index == 0:
                snapshot[0] = kube.get(SESSIONS, namespace, "status")
            round_start.wait()
            cached = snapshot[0]
            round_start.wait()

            def describe(draft: StatusDraft, kind: str = kind, number: int = number) -> None:
                with lock:
                    attempts[0] += 1
                draft.set_condition(kind, "True" if number % 2 else "False", "Round", f"round {number}")

            while True:
                try:
                    write_status(kube, cached, loop, describe)
                    break
                except ApiError as exc:
                    assert exc.conflict, exc
                    with lock:
                        exhausted[0] += 1
                    cached = kube.get(SESSIONS, namespace, "status")

    snapshot: list[JSON] = [{}]
    hammer.start()
    try:
        run_threads(writer, len(loops))
    finally:
        hammer.finish()

    final = kube.get(SESSIONS, namespace, "status")
    last = rounds - 1
    for loop, kind in loops.items():
        cond = condition_of(final, kind)
        assert cond.get("message") == f"round {last}", f"{loop} lost its {kind} condition: {cond}"
        assert cond.get("status") == ("True" if last % 2 else "False"), cond
    # Writers sharing a snapshot conflict every round, so the re-read-and-retry path really ran.
    assert attempts[0] > rounds * len(loops), (attempts, exhausted)
    assert final["metadata"]["annotations"]["framework-test/hammer"] == hammer.last_written
    phase = (final.get("status") or {}).get("phase")
    assert phase in c.PHASES, f"phase {phase!r} is not one derive_phase can produce"
