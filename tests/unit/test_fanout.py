"""The fanout pool runs a reconcile's parallel requests and lets its threads go when idle."""

from __future__ import annotations

import threading

import pytest

from controller.fanout import Fanout
from tests.unit.waiting import wait_until


def test_results_and_errors_come_back_through_futures() -> None:
    pool = Fanout(4)
    assert pool.submit(lambda: 42).result(timeout=5) == 42

    def fail() -> int:
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        pool.submit(fail).result(timeout=5)


def test_threads_grow_to_the_bound_under_load_and_leave_when_idle() -> None:
    pool = Fanout(3, idle_seconds=0.2)
    gate = threading.Event()
    futures = [pool.submit(lambda: gate.wait(5)) for _ in range(10)]
    assert pool.thread_count() == 3
    gate.set()
    assert all(f.result(timeout=5) for f in futures)
    assert wait_until(lambda: pool.thread_count() == 0)
    # Work after every thread left still runs: a thread is started again.
    assert pool.submit(lambda: "again").result(timeout=5) == "again"


def test_a_free_thread_is_reused_rather_than_a_new_one_started() -> None:
    pool = Fanout(8)
    for _ in range(20):
        pool.submit(lambda: None).result(timeout=5)
    assert pool.thread_count() == 1
