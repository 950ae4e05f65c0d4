from __future__ import annotations

import itertools
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from controller.delayer import Delayer
from controller.metrics import REGISTRY
from controller.queue import WorkQueue
from controller.ratelimit import ItemExponentialFailureRateLimiter, RateLimiter
from tests.unit.waiting import wait_until

Key = tuple[str, str]
QueueFactory = Callable[..., WorkQueue[Key]]

# Generous bound for "soon": the test machine may be heavily loaded.
SOON = 3.0


@pytest.fixture
def make_queue() -> Iterator[QueueFactory]:
    created: list[WorkQueue[Key]] = []

    def factory(rate_limiter: RateLimiter | None = None) -> WorkQueue[Key]:
        queue: WorkQueue[Key] = WorkQueue(f"test-{uuid.uuid4().hex[:12]}", rate_limiter)
        created.append(queue)
        return queue

    yield factory
    for queue in created:
        queue.shut_down()


def key(name: str) -> Key:
    return ("default", name)


def sample(metric: str, queue: WorkQueue[Key], **extra: str) -> float:
    value = REGISTRY.get_sample_value(metric, {"name": queue.name, "controller": queue.name, **extra})
    return 0.0 if value is None else value


def test_repeated_adds_are_deduplicated(make_queue: QueueFactory) -> None:
    queue = make_queue()
    for _ in range(3):
        queue.add(key("a"))
    assert len(queue) == 1
    assert queue.get(timeout=1) == key("a")
    assert queue.get(timeout=0.05) is None


def test_items_come_out_in_fifo_order(make_queue: QueueFactory) -> None:
    queue = make_queue()
    names = ["c", "a", "b", "e", "d"]
    for name in names:
        queue.add(key(name))
    queue.add(key("a"))
    assert [queue.get(timeout=1) for _ in names] == [key(name) for name in names]


def test_item_added_while_processing_is_requeued_once_after_done(make_queue: QueueFactory) -> None:
    queue = make_queue()
    queue.add(key("a"))
    assert queue.get(timeout=1) == key("a")

    queue.add(key("a"))
    queue.add(key("a"))
    assert len(queue) == 0
    other_worker: list[Key | None] = []
    worker = threading.Thread(target=lambda: other_worker.append(queue.get(timeout=0.2)))
    worker.start()
    worker.join(timeout=SOON)
    assert other_worker == [None]

    queue.done(key("a"))
    assert len(queue) == 1
    assert queue.get(timeout=1) == key("a")
    queue.done(key("a"))
    assert queue.get(timeout=0.05) is None


def test_done_for_an_item_not_processing_does_not_duplicate_it(make_queue: QueueFactory) -> None:
    queue = make_queue()
    queue.add(key("a"))
    queue.done(key("a"))
    assert len(queue) == 1


def test_concurrent_workers_never_process_a_key_twice_at_once(make_queue: QueueFactory) -> None:
    queue = make_queue()
    keys = [key(f"k{i}") for i in range(3)]
    sequence = itertools.count()
    state_lock = threading.Lock()
    in_flight: set[Key] = set()
    overlaps: list[Key] = []
    last_add: dict[Key, int] = {}
    last_start: dict[Key, int] = {}

    def worker() -> None:
        while True:
            item = queue.get(timeout=0.1)
            if item is None:
                if queue.shutting_down:
                    return
                continue
            with state_lock:
                if item in in_flight:
                    overlaps.append(item)
                in_flight.add(item)
                last_start[item] = next(sequence)
            time.sleep(0.002)
            with state_lock:
                in_flight.discard(item)
            queue.done(item)

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(4)]
    for thread in workers:
        thread.start()
    for i in range(300):
        item = keys[i % len(keys)]
        with state_lock:
            last_add[item] = next(sequence)
        queue.add(item)
        if i % 10 == 0:
            time.sleep(0.001)
    queue.shut_down_with_drain(timeout=10)
    for thread in workers:
        thread.join(timeout=10)
        assert not thread.is_alive()

    assert overlaps == []
    for item in keys:
        assert last_start[item] > last_add[item], f"{item} was not processed after its last add"


def test_get_times_out_with_none(make_queue: QueueFactory) -> None:
    queue = make_queue()
    started = time.monotonic()
    assert queue.get(timeout=0.1) is None
    elapsed = time.monotonic() - started
    assert 0.09 <= elapsed < SOON


def test_shut_down_wakes_a_blocked_getter(make_queue: QueueFactory) -> None:
    queue = make_queue()
    results: list[Key | None] = []
    getter = threading.Thread(target=lambda: results.append(queue.get()), daemon=True)
    getter.start()
    time.sleep(0.05)
    assert getter.is_alive()
    queue.shut_down()
    getter.join(timeout=SOON)
    assert not getter.is_alive()
    assert results == [None]
    assert queue.shutting_down


def test_shut_down_refuses_adds_but_hands_out_queued_items(make_queue: QueueFactory) -> None:
    queue = make_queue()
    queue.add(key("queued"))
    queue.add_after(key("delayed"), 1.0)
    queue.shut_down()
    queue.add(key("late"))
    queue.add_after(key("late"), 0.01)
    assert queue.waiting_count() == 0
    assert queue.get(timeout=1) == key("queued")
    assert queue.get(timeout=0.2) is None


def test_shut_down_with_drain_waits_for_in_flight_item(make_queue: QueueFactory) -> None:
    queue = make_queue()
    queue.add(key("a"))
    assert queue.get(timeout=1) == key("a")

    drained: list[bool] = []
    drainer = threading.Thread(target=lambda: drained.append(queue.shut_down_with_drain(timeout=10)))
    drainer.start()
    time.sleep(0.1)
    assert drainer.is_alive()
    assert queue.shutting_down
    queue.add(key("b"))
    assert len(queue) == 0

    queue.done(key("a"))
    drainer.join(timeout=SOON)
    assert not drainer.is_alive()
    assert drained == [True]


def test_shut_down_with_drain_gives_up_after_timeout(make_queue: QueueFactory) -> None:
    queue = make_queue()
    queue.add(key("a"))
    queue.get(timeout=1)
    started = time.monotonic()
    assert queue.shut_down_with_drain(timeout=0.1) is False
    assert 0.09 <= time.monotonic() - started < SOON


def test_shut_down_with_drain_returns_at_once_when_idle(make_queue: QueueFactory) -> None:
    queue = make_queue()
    assert queue.shut_down_with_drain(timeout=0) is True


def test_add_after_fires_after_the_delay(make_queue: QueueFactory) -> None:
    queue = make_queue()
    started = time.monotonic()
    queue.add_after(key("a"), 0.3)
    assert queue.waiting_count() == 1
    assert len(queue) == 0
    assert queue.get(timeout=SOON) == key("a")
    elapsed = time.monotonic() - started
    assert 0.29 <= elapsed < SOON
    assert queue.waiting_count() == 0


def test_add_after_without_delay_adds_now(make_queue: QueueFactory) -> None:
    queue = make_queue()
    queue.add_after(key("a"), 0)
    queue.add_after(key("b"), -1.0)
    assert len(queue) == 2
    assert queue.waiting_count() == 0
    assert sample("workqueue_retries_total", queue) == 0


def test_add_after_earlier_time_replaces_a_later_one(make_queue: QueueFactory) -> None:
    queue = make_queue()
    started = time.monotonic()
    queue.add_after(key("a"), 5.0)
    queue.add_after(key("a"), 0.2)
    assert queue.waiting_count() == 1
    assert queue.get(timeout=SOON) == key("a")
    assert time.monotonic() - started < SOON


def test_add_after_later_time_never_postpones(make_queue: QueueFactory) -> None:
    queue = make_queue()
    started = time.monotonic()
    queue.add_after(key("a"), 0.05)
    queue.add_after(key("a"), 5.0)
    assert queue.get(timeout=SOON) == key("a")
    assert time.monotonic() - started < SOON


def test_superseded_delay_does_not_fire_again(make_queue: QueueFactory) -> None:
    queue = make_queue()
    queue.add_after(key("a"), 0.4)
    queue.add_after(key("a"), 0.02)
    assert queue.get(timeout=SOON) == key("a")
    queue.done(key("a"))
    assert queue.get(timeout=1.0) is None


def test_delayed_items_come_out_in_ready_order(make_queue: QueueFactory) -> None:
    queue = make_queue()
    queue.add_after(key("late"), 0.5)
    queue.add_after(key("early"), 0.05)
    assert queue.get(timeout=SOON) == key("early")
    assert queue.get(timeout=SOON) == key("late")


def test_add_rate_limited_uses_the_rate_limiter(make_queue: QueueFactory) -> None:
    queue = make_queue(rate_limiter=ItemExponentialFailureRateLimiter(base_delay=0.2, max_delay=1.0))
    started = time.monotonic()
    queue.add_rate_limited(key("a"))
    assert queue.num_requeues(key("a")) == 1
    assert queue.waiting_count() == 1
    assert queue.get(timeout=SOON) == key("a")
    assert time.monotonic() - started >= 0.19
    queue.forget(key("a"))
    assert queue.num_requeues(key("a")) == 0


def test_one_delayer_thread_serves_every_queue(make_queue: QueueFactory) -> None:
    queues = [make_queue() for _ in range(5)]
    for index, queue in enumerate(queues):
        queue.add_after(key(f"k{index}"), 0.05 * (5 - index))
    delayers = [t for t in threading.enumerate() if t.name.startswith("workqueue-")]
    assert [t.name for t in delayers] == ["workqueue-delayer"]
    for index, queue in enumerate(queues):
        assert queue.get(timeout=SOON) == key(f"k{index}")


def test_a_shut_down_queue_drops_its_delayed_keys_and_wake_ups(make_queue: QueueFactory) -> None:
    gone, alive = make_queue(), make_queue()
    gone.add_after(key("never"), 0.05)
    alive.add_after(key("later"), 0.1)
    gone.shut_down()
    assert alive.get(timeout=SOON) == key("later")
    assert gone.waiting_count() == 0 and len(gone) == 0


def test_superseded_wake_ups_do_not_accumulate() -> None:
    delayer = Delayer("test-delayer")
    queue: WorkQueue[Key] = WorkQueue(f"test-{uuid.uuid4().hex[:12]}", delayer=delayer)
    try:
        # Each add is a new earliest time: each asks for a wake-up, superseding the previous one.
        for index in range(50):
            queue.add_after(key(f"k{index}"), 0.3 - index * 0.005)
        assert wait_until(lambda: len(queue) == 50, timeout=SOON)
        # Every superseded wake-up was dropped when it surfaced; none was re-armed.
        assert wait_until(lambda: delayer.pending() == 0, timeout=SOON)
    finally:
        queue.shut_down()


def test_ready_hook_hears_every_key_that_becomes_ready(make_queue: QueueFactory) -> None:
    queue = make_queue()
    heard: list[int] = []
    queue.on_ready = heard.append
    queue.add(key("a"))
    queue.add(key("a"))  # already queued: nothing new is ready
    queue.add_after(key("b"), 0.05)
    assert wait_until(lambda: len(heard) == 2)
    taken = queue.get(timeout=1)
    assert taken is not None
    queue.add(taken)  # added while processing: ready again once done
    queue.done(taken)
    assert heard == [1, 2, 2]


def test_metrics_follow_adds_gets_and_done(make_queue: QueueFactory) -> None:
    queue = make_queue()
    labels = {"name": queue.name, "controller": queue.name}
    assert REGISTRY.get_sample_value("workqueue_depth", {**labels, "priority": ""}) == 0
    assert REGISTRY.get_sample_value("workqueue_adds_total", labels) == 0

    queue.add(key("a"))
    queue.add(key("a"))
    queue.add(key("b"))
    assert sample("workqueue_adds_total", queue) == 2
    assert sample("workqueue_depth", queue, priority="") == 2

    assert queue.get(timeout=1) == key("a")
    assert sample("workqueue_depth", queue, priority="") == 1
    assert sample("workqueue_queue_duration_seconds_count", queue) == 1

    queue.add(key("a"))
    assert sample("workqueue_adds_total", queue) == 3
    assert sample("workqueue_depth", queue, priority="") == 2

    queue.done(key("a"))
    assert sample("workqueue_work_duration_seconds_count", queue) == 1
    assert sample("workqueue_depth", queue, priority="") == 2


def test_retries_count_delayed_adds(make_queue: QueueFactory) -> None:
    queue = make_queue(rate_limiter=ItemExponentialFailureRateLimiter(base_delay=60.0))
    queue.add_after(key("a"), 5.0)
    queue.add_after(key("a"), 0.05)
    queue.add_rate_limited(key("b"))
    assert sample("workqueue_retries_total", queue) == 3
    assert queue.get(timeout=SOON) == key("a")
    # Only the key that became due was inserted into the queue.
    assert sample("workqueue_adds_total", queue) == 1
    assert queue.waiting_count() == 1


def test_unfinished_work_gauges_track_in_flight_items(make_queue: QueueFactory) -> None:
    queue = make_queue()
    queue.add(key("a"))
    queue.add(key("b"))
    queue.get(timeout=1)
    queue.get(timeout=1)

    assert wait_until(lambda: sample("workqueue_longest_running_processor_seconds", queue) > 0.2)
    longest = sample("workqueue_longest_running_processor_seconds", queue)
    assert sample("workqueue_unfinished_work_seconds", queue) >= longest

    queue.done(key("a"))
    queue.done(key("b"))
    assert sample("workqueue_unfinished_work_seconds", queue) == 0
    assert sample("workqueue_longest_running_processor_seconds", queue) == 0


def test_gauges_read_zero_once_concurrent_workers_have_emptied_the_queue(make_queue: QueueFactory) -> None:
    """Producers and workers race on the queue; once it is empty and idle, so are its gauges.

    Gauges pushed after the queue's lock was released could land out of order and keep a stale
    depth or busy-worker count on an idle queue indefinitely (seen as a benchmark that waited for
    an idle operator forever). Scrapes run alongside, as Prometheus's would.
    """
    keys = [key(f"k{i}") for i in range(400)]
    interval = sys.getswitchinterval()
    # Switch threads as often as the interpreter can, so that the interleavings actually happen.
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(ROUNDS):
            queue = make_queue()
            race_producers_workers_and_scrapes(queue, keys)
            assert sample("workqueue_depth", queue, priority="") == 0
            assert (
                REGISTRY.get_sample_value("controller_runtime_active_workers", {"controller": queue.name})
                == 0
            )
            assert sample("workqueue_unfinished_work_seconds", queue) == 0
            assert sample("workqueue_longest_running_processor_seconds", queue) == 0
    finally:
        sys.setswitchinterval(interval)


ROUNDS = 5


def race_producers_workers_and_scrapes(queue: WorkQueue[Key], keys: list[Key]) -> None:
    done = threading.Event()

    def produce() -> None:
        for _ in range(5):
            for k in keys:
                queue.add(k)

    def work() -> None:
        while not done.is_set():
            item = queue.get(timeout=0.05)
            if item is not None:
                queue.done(item)

    def scrape() -> None:
        while not done.is_set():
            sample("workqueue_depth", queue, priority="")

    producers = [threading.Thread(target=produce) for _ in range(4)]
    others = [threading.Thread(target=work) for _ in range(8)] + [threading.Thread(target=scrape)]
    for thread in producers + others:
        thread.start()
    for thread in producers:
        thread.join()
    try:
        assert wait_until(lambda: len(queue) == 0 and queue.processing_count() == 0)
    finally:
        done.set()
        for thread in others:
            thread.join()
