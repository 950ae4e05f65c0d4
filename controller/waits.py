"""Whether a reconcile waits on the network: what tells a loop that more workers would help.

The API client and the runner client wrap each request they send in `waiting()`; a loop reads the
marks of each reconcile. Wall time cannot tell: a reconcile that only reads the cache can be kept
from the interpreter's lock for many switch intervals while other threads run, and look as slow
as a round trip; starting workers for it would only add threads contending for that lock.
The marks live in a context variable, so the copies of the context that a reconcile's parallel
requests run in (see Context.parallel) mark the same object.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class Marks:
    """One reconcile's requests: whether it sent any, and since when one has been in flight."""

    __slots__ = ("_in_flight", "_lock", "_since", "sent")

    def __init__(self) -> None:
        self.sent = False
        self._in_flight = 0
        self._since = 0.0
        self._lock = threading.Lock()

    def waiting_for(self, now: float) -> float:
        """Seconds a request of this reconcile has been in flight (0 when none is)."""
        with self._lock:
            return now - self._since if self._in_flight else 0.0

    def _enter(self) -> None:
        with self._lock:
            self.sent = True
            if not self._in_flight:
                self._since = time.monotonic()
            self._in_flight += 1

    def _exit(self) -> None:
        with self._lock:
            self._in_flight -= 1


_marks: ContextVar[Marks | None] = ContextVar("network_waits", default=None)


@contextmanager
def waiting() -> Iterator[None]:
    """Around one request: marks the reconcile it belongs to (if any) as waiting on it."""
    marks = _marks.get()
    if marks is None:
        yield
        return
    marks._enter()
    try:
        yield
    finally:
        marks._exit()


@contextmanager
def observed() -> Iterator[Marks]:
    """The marks of everything run inside (a reconcile)."""
    marks = Marks()
    token = _marks.set(marks)
    try:
        yield marks
    finally:
        _marks.reset(token)
