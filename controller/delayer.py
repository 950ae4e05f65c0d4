"""One thread that moves every work queue's delayed keys into their queues when they fall due.

client-go gives each delaying queue its own goroutine; a Python thread costs a stack and a place in
the interpreter's switching, and every loop's queue would hold one that sleeps almost all the time.
Queues keep their own heap of delayed keys (and decide under their own lock which are due); this
thread only knows, per queue, the earliest time worth waking it, and wakes it then.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

# A queue's release: called with the time it asked to be woken at and the current time; returns the
# next time it wants to be woken, or None (nothing left waiting, or a wake-up it no longer wants:
# a queue keeps one wake-up current and ignores those it superseded).
Release = Callable[[float, float], float | None]

# Upper bound of one sleep, as client-go's heartbeat: a clock jump is noticed within this.
MAX_WAIT_SECONDS = 10.0


class Delayer:
    """Wakes queues at the times they asked for; one daemon thread, started on first use."""

    def __init__(self, name: str = "workqueue-delayer", clock: Callable[[], float] = time.monotonic):
        self.name = name
        self._clock = clock
        self._ready = threading.Condition(threading.Lock())
        # (when, sequence, release): a queue may appear more than once (an earlier wake-up asked
        # for after a later one); the superseded entry is dropped by the queue when it surfaces.
        self._heap: list[tuple[float, int, Release]] = []
        self._sequence = itertools.count()
        self._thread: threading.Thread | None = None

    def wake_at(self, when: float, release: Release) -> None:
        with self._ready:
            sequence = next(self._sequence)
            heapq.heappush(self._heap, (when, sequence, release))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            elif self._heap[0][1] == sequence:
                # A new earliest time: the thread sleeps until the old one unless told.
                self._ready.notify()

    def pending(self) -> int:
        """Wake-ups not yet delivered (superseded ones included)."""
        with self._ready:
            return len(self._heap)

    def _next_due(self) -> tuple[float, float, Release]:
        with self._ready:
            while True:
                now = self._clock()
                if self._heap and self._heap[0][0] <= now:
                    when, _, release = heapq.heappop(self._heap)
                    return when, now, release
                timeout = (
                    MAX_WAIT_SECONDS if not self._heap else min(MAX_WAIT_SECONDS, self._heap[0][0] - now)
                )
                self._ready.wait(timeout)

    def _run(self) -> None:
        while True:
            when, now, release = self._next_due()
            # Outside the delayer's lock: the queue takes its own, and may call wake_at meanwhile.
            following = release(when, now)
            if following is not None:
                self.wake_at(following, release)


_shared: Delayer | None = None
_shared_lock = threading.Lock()


def shared() -> Delayer:
    """The process's delayer, used by every queue on the monotonic clock."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Delayer()
        return _shared
