"""The threads a reconcile's independent requests run on: started on demand, gone when idle.

A burst of new sessions sends their creates at once and needs a dozen threads for a minute; a
settled operator needs none. concurrent.futures' pool keeps every thread it ever started, so the
burst's threads would stay for the life of the process. This pool starts a thread only when no
started one is free, up to its bound, and a thread that has found no work for `idle_seconds` exits.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

IDLE_SECONDS = 30.0


class Fanout:
    def __init__(self, max_threads: int, name: str = "fanout", idle_seconds: float = IDLE_SECONDS):
        self.max_threads = max_threads
        self.name = name
        self.idle_seconds = idle_seconds
        self._work: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0
        self._started = 0

    def submit(self, call: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            self._work.put((future, call))
            if self._idle >= self._work.qsize() or self._threads >= self.max_threads:
                return future
            self._threads += 1
            self._idle += 1
            self._started += 1
            name = f"{self.name}-{self._started}"
        threading.Thread(target=self._run, name=name, daemon=True).start()
        return future

    def thread_count(self) -> int:
        with self._lock:
            return self._threads

    def _run(self) -> None:
        while True:
            try:
                future, call = self._work.get(timeout=self.idle_seconds)
            except queue.Empty:
                with self._lock:
                    # Checked under the lock submit() holds: work put meanwhile is not stranded.
                    if self._work.empty():
                        self._threads -= 1
                        self._idle -= 1
                        return
                continue
            with self._lock:
                self._idle -= 1
            if not future.set_running_or_notify_cancel():
                with self._lock:
                    self._idle += 1
                continue
            result: Any = None
            error: BaseException | None = None
            try:
                result = call()
            except BaseException as exc:
                error = exc
            # Free again before the caller hears the result, so its next call finds this thread.
            with self._lock:
                self._idle += 1
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)
