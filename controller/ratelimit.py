"""Rate limiters for work-queue requeues, with client-go's numbers and semantics.

Operators written against client-go back off a failing key exponentially and also cap the overall
requeue rate; matching those numbers keeps this operator's load on the API server predictable for
anyone used to Go controllers.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Hashable
from typing import Protocol


class RateLimiter(Protocol):
    """What a work queue needs to decide how long a failed key waits before its next attempt."""

    def when(self, item: Hashable) -> float:
        """Seconds the item should wait; calling it counts as one more failure of the item."""
        ...

    def forget(self, item: Hashable) -> None:
        """Clear the item's failure history once it has been handled successfully."""
        ...

    def num_requeues(self, item: Hashable) -> int:
        """Failures recorded for the item since it was last forgotten."""
        ...


class ItemExponentialFailureRateLimiter:
    """Per-key backoff so one persistently failing key cannot keep its workers busy.

    Delay is ``base_delay * 2**failures`` capped at ``max_delay``; each key backs off independently.
    """

    def __init__(self, base_delay: float = 0.005, max_delay: float = 1000.0) -> None:
        if base_delay < 0 or max_delay < 0:
            raise ValueError("delays must not be negative")
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._failures: dict[Hashable, int] = {}
        self._lock = threading.Lock()

    def when(self, item: Hashable) -> float:
        with self._lock:
            failures = self._failures.get(item, 0)
            self._failures[item] = failures + 1
        try:
            delay = math.ldexp(self._base_delay, failures)
        except OverflowError:
            return self._max_delay
        return min(delay, self._max_delay)

    def forget(self, item: Hashable) -> None:
        # Most reconciles succeed with no failure on record: skip the lock. A key's failures are
        # only recorded by the worker holding that key, so none can appear between check and pop.
        if item not in self._failures:
            return
        with self._lock:
            self._failures.pop(item, None)

    def num_requeues(self, item: Hashable) -> int:
        with self._lock:
            return self._failures.get(item, 0)


class BucketRateLimiter:
    """Overall requeue rate cap shared by all keys, so a burst of failures cannot flood the API server.

    A token bucket with the reservation semantics of golang.org/x/time/rate: every call takes a token
    even when none is left, and the returned delay is when that borrowed token will have refilled. Later
    callers therefore queue up behind earlier ones at ``1/qps`` spacing instead of all retrying at once.
    """

    def __init__(
        self, qps: float = 10.0, burst: int = 100, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if qps <= 0:
            raise ValueError("qps must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self._qps = qps
        self._burst = float(burst)
        self._clock = clock
        self._tokens = self._burst
        self._last: float | None = None
        self._lock = threading.Lock()

    def when(self, item: Hashable) -> float:
        with self._lock:
            now = self._clock()
            if self._last is None:
                tokens = self._burst
            else:
                elapsed = max(0.0, now - self._last)
                tokens = min(self._burst, self._tokens + elapsed * self._qps)
            tokens -= 1.0
            self._tokens = tokens
            self._last = now
        return 0.0 if tokens >= 0 else -tokens / self._qps

    def forget(self, item: Hashable) -> None:
        return None

    def num_requeues(self, item: Hashable) -> int:
        return 0


class MaxOfRateLimiter:
    """Combines limiters so that the strictest one decides, while every one still records the failure."""

    def __init__(self, *limiters: RateLimiter) -> None:
        if not limiters:
            raise ValueError("at least one rate limiter is required")
        self._limiters = limiters

    def when(self, item: Hashable) -> float:
        return max([limiter.when(item) for limiter in self._limiters])

    def forget(self, item: Hashable) -> None:
        for limiter in self._limiters:
            limiter.forget(item)

    def num_requeues(self, item: Hashable) -> int:
        return max(limiter.num_requeues(item) for limiter in self._limiters)


def default_controller_rate_limiter(clock: Callable[[], float] = time.monotonic) -> MaxOfRateLimiter:
    """client-go's DefaultTypedControllerRateLimiter: 5 ms to 1000 s per key, at most 10 qps burst 100."""
    return MaxOfRateLimiter(
        ItemExponentialFailureRateLimiter(0.005, 1000.0),
        BucketRateLimiter(qps=10.0, burst=100, clock=clock),
    )
