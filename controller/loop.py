"""One watch-and-reconcile loop: a work queue, a bounded worker pool, and the result mapping.

Mirrors controller-runtime's controller: success forgets the key's backoff; RequeueAfter forgets and
re-adds after the delay; an error requeues with the rate limiter; a TerminalError is not requeued;
an unexpected exception is a "panic": counted, logged with its traceback, and requeued like an
error, so one bad object never takes a worker down. An API error no retry can cure (400, 413, 422)
is treated like a TerminalError.

Workers are threads started on demand, up to the loop's concurrency. One is always there. Another
starts when keys are ready, no worker is free, and reconciles wait on the network: the last one
sent a request, or one has been waiting on a request for SLOW_REQUEST_SECONDS (a runner that does
not answer must not hold up the rest). More threads then mean more requests in flight. Reconciles
answered from the cache are bound by the interpreter's lock, where a second thread adds only
contention, so a cold start over thousands of settled sessions runs on one worker per loop. A
worker beyond the first that has found no work for IDLE_WORKER_SECONDS exits. controller-runtime
starts all of its goroutines at once; here each would be a thread, and six loops' worth of them
would sit idle in a settled operator.
"""

from __future__ import annotations

import logging
import threading
import time

from opentelemetry import trace

from controller import metrics, waits
from controller.api_error import ApiError
from controller.delayer import shared as shared_delayer
from controller.logs import bind_object
from controller.queue import WorkQueue
from controller.reconcile import Key, Reconciler, Result, TerminalError

log = logging.getLogger("controller.loop")
tracer = trace.get_tracer("agentic-operator.loop")

# Seconds a worker beyond the first waits for work before it exits.
IDLE_WORKER_SECONDS = 30.0
# A request this long in flight is worth another worker for the keys waiting behind it.
SLOW_REQUEST_SECONDS = 0.05


class Loop:
    """A named controller: `enqueue` from event handlers, `start` workers, `stop` to drain."""

    def __init__(self, name: str, reconcile: Reconciler, workers: int, queue: WorkQueue[Key] | None = None):
        self.name = name
        self.reconcile = reconcile
        self.workers = workers
        self.queue: WorkQueue[Key] = queue if queue is not None else WorkQueue(name)
        self.idle_worker_seconds = IDLE_WORKER_SECONDS
        self._threads: set[threading.Thread] = set()
        # Workers waiting for a key; guarded, with the thread set, by _workers_lock.
        self._idle = 0
        self._started = 0
        # Whether the last reconcile sent a request, and the requests of those in flight (see
        # controller.waits); guarded by _workers_lock.
        self._waits = False
        self._in_flight: set[waits.Marks] = set()
        # A look, due soon, at whether the reconciles in flight have started waiting (one at a time).
        self._look_pending = False
        self._workers_lock = threading.Lock()
        self._accepting = threading.Event()
        metrics.init_controller(name, workers)
        # Labelled children looked up once: a lookup takes the metric's lock, and every worker of
        # every loop would otherwise take it several times per reconcile.
        self._results = {result: metrics.reconcile_total.labels(name, result) for result in metrics.RESULTS}
        self._reconcile_time = metrics.reconcile_time_seconds.labels(name)
        self._errors = metrics.reconcile_errors_total.labels(name)
        self._terminal_errors = metrics.terminal_reconcile_errors_total.labels(name)
        self._panics = metrics.reconcile_panics_total.labels(name)

    def enqueue(self, key: Key) -> None:
        self.queue.add(key)

    def start(self) -> None:
        self._accepting.set()
        self.queue.on_ready = self._on_ready
        self._on_ready(len(self.queue) or 1)

    def worker_count(self) -> int:
        with self._workers_lock:
            return len(self._threads)

    def _on_ready(self, ready: int) -> None:
        """Starts workers while ready keys outnumber free workers and reconciles wait on requests.

        Without that evidence yet, a look is scheduled: a request still in flight then is evidence,
        even if no key arrives meanwhile to bring the question up again.
        """
        while self._accepting.is_set():
            with self._workers_lock:
                if self._threads and (ready <= self._idle or len(self._threads) >= self.workers):
                    return
                first = not self._threads
            if not first and not (self._waits or self._stuck()):
                self._look_soon()
                return
            with self._workers_lock:
                # Checked again: another thread may have started a worker since.
                if self._threads and (ready <= self._idle or len(self._threads) >= self.workers):
                    return
                self._started += 1
                thread = threading.Thread(
                    target=self._work, name=f"{self.name}-worker-{self._started}", daemon=True
                )
                # Counted free from now: it takes a key as soon as it runs.
                self._idle += 1
                self._threads.add(thread)
            thread.start()

    def _look_soon(self) -> None:
        with self._workers_lock:
            if self._look_pending:
                return
            self._look_pending = True
        shared_delayer().wake_at(time.monotonic() + SLOW_REQUEST_SECONDS, self._look)

    def _stuck(self) -> bool:
        """Whether a reconcile in flight has been waiting on one request for SLOW_REQUEST_SECONDS."""
        now = time.monotonic()
        with self._workers_lock:
            marks = list(self._in_flight)
        return any(m.waiting_for(now) >= SLOW_REQUEST_SECONDS for m in marks)

    def _look(self, _when: float, _now: float) -> None:
        with self._workers_lock:
            self._look_pending = False
        self._on_ready(len(self.queue))

    def stop_accepting(self) -> None:
        self._accepting.clear()

    def halt(self) -> None:
        """Stops taking new work at once (lost leadership); in-flight reconciles finish on their own."""
        self._accepting.clear()
        self.queue.shut_down()

    def drain(self, timeout: float) -> bool:
        """Graceful stop: no new work, wait up to `timeout` for in-flight reconciles."""
        self._accepting.clear()
        drained = self.queue.shut_down_with_drain(timeout)
        deadline = time.monotonic() + max(timeout, 0.1)
        with self._workers_lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return drained

    @property
    def active(self) -> int:
        return self.queue.processing_count()

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            key = self.queue.get(self.idle_worker_seconds)
            with self._workers_lock:
                if key is None:
                    if not (self.queue.shutting_down or len(self._threads) > 1):
                        continue
                    self._idle -= 1
                    self._threads.discard(me)
                    break
                self._idle -= 1
                backlog = len(self._threads) < self.workers and len(self.queue) > 0
            if backlog:
                # Keys wait behind this reconcile: if it turns out to wait on a request, and no new
                # key arrives to say so, the look starts the next worker.
                self._look_soon()
            if not self._accepting.is_set():
                self.queue.done(key)
                with self._workers_lock:
                    self._threads.discard(me)
                return
            with waits.observed() as marks:
                with self._workers_lock:
                    self._in_flight.add(marks)
                try:
                    self._process(key)
                finally:
                    self.queue.done(key)
                    with self._workers_lock:
                        self._idle += 1
                        self._in_flight.discard(marks)
            self._waits = marks.sent
            if self._waits:
                self._on_ready(len(self.queue))
        # A key may have become ready while this worker decided to leave, counted as free.
        self._on_ready(len(self.queue))

    def _process(self, key: Key) -> None:
        started = time.monotonic()
        namespace, name = key
        outcome = "success"
        with (
            bind_object(self.name, namespace, name),
            tracer.start_as_current_span(
                f"reconcile {self.name}",
                attributes={"controller": self.name, "namespace": namespace, "name": name},
            ) as span,
        ):
            try:
                result = self.reconcile(key)
                outcome = self._apply_result(key, result)
            except TerminalError as exc:
                outcome = "error"
                self._terminal_errors.inc()
                self._errors.inc()
                self.queue.forget(key)
                log.error("reconcile failed permanently: %s", exc)
            except ApiError as exc:
                outcome = "error"
                self._errors.inc()
                if exc.permanent:
                    # The request would be refused the same way again: no retry until the next event.
                    self._terminal_errors.inc()
                    self.queue.forget(key)
                    log.error("reconcile failed permanently, the API server refuses the request: %s", exc)
                else:
                    log.warning("reconcile failed, will retry: %s", exc)
                    self.queue.add_rate_limited(key)
            except Exception as exc:
                outcome = "error"
                self._errors.inc()
                if not _is_expected(exc):
                    self._panics.inc()
                    log.exception("reconcile panicked")
                else:
                    log.warning("reconcile failed, will retry: %s", exc)
                self.queue.add_rate_limited(key)
            finally:
                self._results[outcome].inc()
                self._reconcile_time.observe(time.monotonic() - started)
                span.set_attribute("result", outcome)
                log.debug("reconciled: %s in %.1fms", outcome, (time.monotonic() - started) * 1000)

    def _apply_result(self, key: Key, result: Result) -> str:
        if result.requeue_after is not None and result.requeue_after > 0:
            self.queue.forget(key)
            self.queue.add_after(key, result.requeue_after)
            return "requeue_after"
        if result.requeue:
            self.queue.add_rate_limited(key)
            return "requeue"
        self.queue.forget(key)
        return "success"


def _is_expected(exc: Exception) -> bool:
    """API and connection failures are ordinary errors; anything else is a bug worth a traceback."""
    return isinstance(exc, ApiError | TimeoutError | ConnectionError)
