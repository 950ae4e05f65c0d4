"""A deduplicating, delaying, rate-limited work queue with client-go's semantics.

Reconcilers are level-based: what matters is that a key is reconciled after its last change, not how
many events arrived. The queue therefore keeps each key at most once, never hands the same key to two
workers at the same time, and re-queues a key that changed while it was being processed. Delayed adds
let failures back off and let reconcilers ask to be woken later without holding a worker.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from controller import metrics
from controller.delayer import Delayer
from controller.delayer import shared as shared_delayer
from controller.ratelimit import RateLimiter, default_controller_rate_limiter

T = TypeVar("T", bound=Hashable)


class WorkQueue(Generic[T]):
    """Thread-safe work queue: a FIFO of dirty keys, a processing set and a heap of delayed keys.

    A key is *dirty* from the moment it is added until a worker takes it; it is *processing* from
    ``get`` until ``done``. Adding a dirty key is a no-op, and adding a processing key only marks it
    dirty so that ``done`` puts it back: this is what guarantees one in-flight reconcile per key.
    Delayed keys wait in the queue's own heap; one thread shared by all queues (controller/delayer.py)
    wakes the queue when the earliest of them is due.

    The gauges (depth, busy workers, unfinished work) are read from the queue when metrics are
    scraped, not pushed on every change: a value computed under the queue's lock and published
    after it could land after a newer one and stay wrong until the next change, which for an idle
    queue is never. Reading on scrape is exact and costs the workers nothing.
    """

    def __init__(
        self,
        name: str,
        rate_limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
        delayer: Delayer | None = None,
    ) -> None:
        self.name = name
        self._rate_limiter = rate_limiter if rate_limiter is not None else default_controller_rate_limiter()
        self._clock = clock

        self._lock = threading.Lock()
        self._item_ready = threading.Condition(self._lock)
        self._drained = threading.Condition(self._lock)

        self._queue: deque[T] = deque()
        self._dirty: set[T] = set()
        self._processing: set[T] = set()
        # The dict holds each delayed key's current ready time; the heap may also hold superseded
        # (later) entries for the same key, which are skipped when they surface.
        self._waiting: dict[T, float] = {}
        self._heap: list[tuple[float, int, T]] = []
        self._sequence = itertools.count()
        self._add_times: dict[T, float] = {}
        self._start_times: dict[T, float] = {}
        self._shutting_down = False

        self._adds = metrics.workqueue_adds_total.labels(name, name)
        self._queue_duration = metrics.workqueue_queue_duration_seconds.labels(name, name)
        self._work_duration = metrics.workqueue_work_duration_seconds.labels(name, name)
        self._retries = metrics.workqueue_retries_total.labels(name, name)
        # len() of a set is atomic: no lock needed to read these two.
        metrics.workqueue_depth.labels(name, name, "").set_function(lambda: len(self._dirty))
        metrics.active_workers.labels(name).set_function(lambda: len(self._processing))
        metrics.workqueue_unfinished_work_seconds.labels(name, name).set_function(
            lambda: self._in_flight_ages()[0]
        )
        metrics.workqueue_longest_running_processor_seconds.labels(name, name).set_function(
            lambda: self._in_flight_ages()[1]
        )

        if delayer is None:
            delayer = shared_delayer() if clock is time.monotonic else Delayer(f"workqueue-{name}", clock)
        self._delayer = delayer
        # The ready time this queue last asked the delayer to wake it at (None: no wake-up pending).
        self._wake_at: float | None = None
        # Told, outside the lock, how many keys are ready each time one becomes ready (a loop
        # starts workers from it).
        self.on_ready: Callable[[int], None] | None = None

    # Counters and histograms are updated after the queue's lock is released: every worker passes
    # through this lock several times per reconcile, and each metric update takes a lock of its own.
    # Holding one while taking the other makes workers queue up behind a holder the interpreter has
    # paused. Unlike a gauge's value, an increment or an observation is right in any order.

    def add(self, item: T) -> None:
        with self._lock:
            added = self._add_locked(item)
            # A key being processed is not ready yet: done() queues it, and says so then.
            ready = len(self._queue) if item not in self._processing else 0
        if added:
            self._adds.inc()
            self._notify_ready(ready)

    def _notify_ready(self, ready: int) -> None:
        hook = self.on_ready
        if hook is not None and ready:
            hook(ready)

    def get(self, timeout: float | None = None) -> T | None:
        """Block until a key is available and mark it processing.

        Returns None when the timeout expires, or when the queue is shut down and nothing is left
        queued; keys queued before shutdown are still handed out so that workers can finish them.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while not self._queue and not self._shutting_down:
                if deadline is None:
                    self._item_ready.wait()
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._item_ready.wait(remaining)
            if not self._queue:
                return None
            item = self._queue.popleft()
            now = self._clock()
            added_at = self._add_times.pop(item, None)
            self._processing.add(item)
            self._start_times[item] = now
            self._dirty.discard(item)
        if added_at is not None:
            self._queue_duration.observe(max(0.0, now - added_at))
        return item

    def done(self, item: T) -> None:
        """Release a key taken by ``get``; if it was added again meanwhile, it goes back in the queue."""
        with self._lock:
            if item not in self._processing:
                return
            started_at = self._start_times.pop(item, None)
            finished_at = self._clock()
            self._processing.discard(item)
            requeued = item in self._dirty
            if requeued:
                self._queue.append(item)
                self._item_ready.notify()
            if not self._processing:
                self._drained.notify_all()
            ready = len(self._queue)
        if started_at is not None:
            self._work_duration.observe(max(0.0, finished_at - started_at))
        if requeued:
            self._notify_ready(ready)

    def add_after(self, item: T, delay: float) -> None:
        """Add the key once ``delay`` seconds have passed; an earlier pending time for it is kept."""
        if delay <= 0:
            self.add(item)
            return
        with self._lock:
            if self._shutting_down:
                return
            ready_at = self._clock() + delay
            current = self._waiting.get(item)
            if current is not None and current <= ready_at:
                return
            self._waiting[item] = ready_at
            heapq.heappush(self._heap, (ready_at, next(self._sequence), item))
            # Only a new earliest ready time needs a wake-up of its own.
            wake = self._wake_at is None or ready_at < self._wake_at
            if wake:
                self._wake_at = ready_at
        if wake:
            self._delayer.wake_at(ready_at, self._release_due)
        self._retries.inc()

    def add_rate_limited(self, item: T) -> None:
        self.add_after(item, self._rate_limiter.when(item))

    def forget(self, item: T) -> None:
        self._rate_limiter.forget(item)

    def num_requeues(self, item: T) -> int:
        return self._rate_limiter.num_requeues(item)

    def shut_down(self) -> None:
        """Refuse further adds, drop delayed keys and release every blocked getter."""
        with self._lock:
            self._begin_shutdown_locked()

    def shut_down_with_drain(self, timeout: float | None = None) -> bool:
        """Like ``shut_down``, then wait for in-flight keys to be done; False if the timeout hit first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._begin_shutdown_locked()
            while self._processing:
                if deadline is None:
                    self._drained.wait()
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._drained.wait(remaining)
            return True

    @property
    def shutting_down(self) -> bool:
        with self._lock:
            return self._shutting_down

    def __len__(self) -> int:
        with self._lock:
            return len(self._queue)

    def processing_count(self) -> int:
        """Keys handed out by ``get`` and not yet ``done``: the loop's busy workers."""
        return len(self._processing)

    def waiting_count(self) -> int:
        """Keys scheduled by ``add_after`` that are not due yet."""
        with self._lock:
            return len(self._waiting)

    def _add_locked(self, item: T) -> bool:
        """Marks the key dirty (and queues it unless processing); False when it already was."""
        if self._shutting_down or item in self._dirty:
            return False
        self._add_times.setdefault(item, self._clock())
        self._dirty.add(item)
        if item not in self._processing:
            self._queue.append(item)
            self._item_ready.notify()
        return True

    def _begin_shutdown_locked(self) -> None:
        self._shutting_down = True
        self._waiting.clear()
        self._heap.clear()
        self._item_ready.notify_all()
        self._wake_at = None

    def _release_due(self, when: float, now: float) -> float | None:
        """The delayer's wake-up: queue every delayed key that is due; return the next ready time.

        A wake-up other than the one this queue last asked for was superseded by an earlier one
        and is ignored (None), so the delayer holds one current wake-up per queue.
        """
        added = 0
        with self._lock:
            if self._shutting_down or when != self._wake_at:
                return None
            following: float | None = None
            while self._heap:
                ready_at, _, item = self._heap[0]
                if self._waiting.get(item) != ready_at:
                    heapq.heappop(self._heap)
                    continue
                if ready_at > now:
                    following = ready_at
                    break
                heapq.heappop(self._heap)
                del self._waiting[item]
                added += self._add_locked(item)
            self._wake_at = following
            ready = len(self._queue)
        if added:
            self._adds.inc(added)
            self._notify_ready(ready)
        return following

    def _in_flight_ages(self) -> tuple[float, float]:
        """Seconds that in-flight keys have been processing: the sum, and the longest."""
        with self._lock:
            now = self._clock()
            ages = [max(0.0, now - started_at) for started_at in self._start_times.values()]
        return sum(ages), max(ages, default=0.0)
