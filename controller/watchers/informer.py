"""List+watch of one kind in one namespace (or cluster-wide), feeding a Store and handlers.

This is where Python operators usually break: streams that go silent without an error, 410 Gone
after a long disconnect, reconnect storms. The loop follows client-go's reflector: LIST, WATCH from
the list's resourceVersion with bookmarks, keep the newest resourceVersion seen (bookmarks included),
relist on 410 and report objects that vanished meanwhile as deletions, back off 0.8 s doubling to
30 s with jitter (reset after 2 minutes of health), honour Retry-After on 429, ask the server for a
random 5-10 minute timeout, and replace a stream that has been silent longer than the inactivity
timeout (the socket read timeout fires, since urllib3 has no HTTP/2 pings).

Every object is admitted through quarantine.admit: one that cannot be transformed or frozen is kept
in a reduced form and the rest of the LIST or watch goes on.

One informer may feed several caches of the same kind (a Sink each: its store, filter, transform and
handlers), so a kind read by several caches costs one connection and one thread per scope. The
server-side query (selectors, metadata only) is the shared one; each sink's `keep` applies what is
narrower in its cache. An item is decoded once and offered to every sink; one that no longer passes
a sink's filter leaves that sink's store, as an object leaving a server-side selector is reported
DELETED. With a single sink the LIST is stored item by item as it is decoded (memory stays flat at
10,000 sessions); with several, each sink's transformed items are collected, then swapped in.
Transforms may trim the decoded item in place (strip_managed_fields does), so they drop only what
no cache reads.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import urllib3

from controller import metrics
from controller.api_error import ApiError
from controller.kube import Kube
from controller.resources import Resource
from controller.streams import WatchStream
from controller.watchers.quarantine import admit
from controller.watchers.store import Delta, Store, metadata_of

log = logging.getLogger("controller.watchers")

Handler = Callable[[Delta], None]
Transform = Callable[[dict[str, Any]], dict[str, Any]]
Keep = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class WatchSettings:
    inactivity_timeout: float = 100.0
    min_timeout_seconds: int = 300
    max_timeout_seconds: int = 600
    backoff_initial: float = 0.8
    backoff_max: float = 30.0
    backoff_reset_after: float = 120.0
    page_size: int = 500


class Backoff:
    """client-go's ExponentialBackoffManager: doubling delay with jitter 1.0, reset after quiet time."""

    def __init__(self, initial: float, maximum: float, reset_after: float, clock: Callable[[], float]):
        self.initial, self.maximum, self.reset_after, self.clock = initial, maximum, reset_after, clock
        self._current = 0.0
        self._last = 0.0

    def next(self) -> float:
        now = self.clock()
        if self._current == 0.0 or now - self._last > self.reset_after:
            self._current = self.initial
        else:
            self._current = min(self._current * 2, self.maximum)
        self._last = now
        return self._current * (1.0 + random.random())


class _Gone(Exception):
    pass


@dataclass(eq=False)
class Sink:
    """One cache fed by an informer: what it keeps of the watched objects, how it trims them, where.

    `handlers` is the cache's own list (handlers added later are heard too).
    """

    store: Store
    transform: Transform | None = None
    keep: Keep | None = None
    handlers: list[Handler] = field(default_factory=list)

    def keeps(self, obj: dict[str, Any]) -> bool:
        return self.keep is None or self.keep(obj)

    def dispatch(self, deltas: Iterable[Delta], plural: str) -> None:
        for delta in deltas:
            for handler in self.handlers:
                try:
                    handler(delta)
                except Exception:
                    log.exception("informer %s: handler failed on %r", plural, delta)


class Informer:
    """One reflector loop on its own thread, feeding one store or several (`sinks`).

    `store` with `transform`, `keep` and `handlers` is the first sink; `sinks` adds more.
    """

    def __init__(
        self,
        kube: Kube,
        resource: Resource,
        namespace: str | None,
        store: Store | None = None,
        *,
        label_selector: str | None = None,
        transform: Transform | None = None,
        handlers: list[Handler] | None = None,
        settings: WatchSettings | None = None,
        metadata_only: bool = False,
        field_selector: str | None = None,
        keep: Keep | None = None,
        sinks: Sequence[Sink] = (),
    ):
        self.kube = kube
        self.field_selector = field_selector
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        # Objects the server cannot filter out (a set of names, a narrower selector than the
        # shared one) are dropped by each sink's keep, before its store.
        first = (
            [Sink(store, transform, keep, handlers if handlers is not None else [])]
            if store is not None
            else []
        )
        self.sinks: list[Sink] = [*first, *sinks]
        if not self.sinks:
            raise ValueError("an informer needs a store to feed")
        self.settings = settings or WatchSettings()
        self.metadata_only = metadata_only
        self._event_counters: dict[str, Any] = {}
        self.synced = threading.Event()
        self.resource_version = ""
        self._stop = threading.Event()
        self._stream: WatchStream | None = None
        self._thread: threading.Thread | None = None
        self._progress_at = time.monotonic()
        self._backoff = Backoff(
            self.settings.backoff_initial,
            self.settings.backoff_max,
            self.settings.backoff_reset_after,
            time.monotonic,
        )
        self._ns_label = namespace or "*"

    @property
    def store(self) -> Store:
        """The first sink's store (the only one, unless the informer is shared)."""
        return self.sinks[0].store

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        # Published only once running: a health probe must never see a created, unstarted thread.
        thread = threading.Thread(
            target=self._run, name=f"informer-{self.resource.plural}-{self._ns_label}", daemon=True
        )
        thread.start()
        self._thread = thread

    def stop(self) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.close()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def restart_watch(self) -> None:
        """Drops the current stream; the loop resumes from the last resourceVersion."""
        stream = self._stream
        if stream is not None:
            stream.close()

    def healthy(self) -> tuple[bool, str]:
        if self._thread is None:
            return True, "not started"
        if not self._thread.is_alive():
            return (True, "stopped") if self._stop.is_set() else (False, "watch loop died")
        last = self._progress_at
        stream = self._stream
        if stream is not None:
            last = max(last, stream.bytes_seen_at)
        budget = self.settings.inactivity_timeout + 2 * self.settings.backoff_max + 30
        stale = time.monotonic() - last
        if stale > budget:
            return False, f"no progress for {stale:.0f}s"
        return True, "ok"

    # -- the loop --------------------------------------------------------------------------------

    def _run(self) -> None:
        need_list, cause, first = True, "initial", True
        # The usual cause, as a zero from the start: a graph of restarts shows 0, not "no data".
        metrics.watch_restarts_total.labels(self.resource.kind, self._ns_label, "server-closed")
        while not self._stop.is_set():
            if not first:
                metrics.watch_restarts_total.labels(self.resource.kind, self._ns_label, cause).inc()
            first = False
            self._progress_at = time.monotonic()
            try:
                if need_list:
                    self._list(cause)
                    need_list = False
                self._watch()
                cause = "server-closed"
            except _Gone:
                need_list, cause = True, "gone"
                self.resource_version = ""
            except ApiError as exc:
                if exc.gone:
                    need_list, cause = True, "gone"
                    self.resource_version = ""
                else:
                    cause = self._sleep_after_error(exc)
            except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
                timed_out = isinstance(exc, urllib3.exceptions.ReadTimeoutError) or "timed out" in str(exc)
                cause = "inactivity" if timed_out else "stream-error"
                if not timed_out and not self._stop.is_set():
                    self._sleep(self._backoff.next())
            except Exception:
                log.exception("informer %s/%s: unexpected error", self.resource.plural, self._ns_label)
                cause = "unexpected"
                self._sleep(self._backoff.next())

    def _sleep_after_error(self, exc: ApiError) -> str:
        if exc.status == 429:
            self._sleep(exc.retry_after or self._backoff.next())
            return "throttled"
        delay = self._backoff.next()
        log.warning("informer %s/%s: %s; retrying in %.1fs", self.resource.plural, self._ns_label, exc, delay)
        self._sleep(delay)
        return "error"

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _list(self, cause: str) -> None:
        metrics.watch_relists_total.labels(self.resource.kind, self._ns_label, cause).inc()
        listed: dict[str, str] = {}
        items = self._listed_items(cause == "initial", listed)
        kind = self.resource.kind
        if len(self.sinks) == 1:
            sink = self.sinks[0]
            admitted = (admit(kind, item, sink.transform) for item in items if sink.keeps(item))
            changes = [(sink, sink.store.replace(self.namespace, admitted))]
        else:
            kept: list[list[Mapping[str, Any]]] = [[] for _ in self.sinks]
            for item in items:
                for sink, bucket in zip(self.sinks, kept, strict=True):
                    if sink.keeps(item):
                        bucket.append(admit(kind, item, sink.transform))
            changes = [
                (sink, sink.store.replace(self.namespace, bucket))
                for sink, bucket in zip(self.sinks, kept, strict=True)
            ]
        self.resource_version = listed["resourceVersion"]
        # Synced once handlers have had the list: a namespace informer's handler starts the
        # namespace's own informers, and the caches must not look synced before those exist.
        for sink, deltas in changes:
            sink.dispatch(deltas, self.resource.plural)
        self.synced.set()

    def _listed_items(self, first: bool, listed: dict[str, str]) -> Iterator[dict[str, Any]]:
        """Every item of the LIST as it is decoded, so the whole untrimmed list never exists at once.

        The first LIST is served from the watch cache (RV "0"); after 410 a consistent, paged read.
        The list's resourceVersion goes into `listed` once the last page has been read.
        """
        token: str | None = None
        while True:
            listing = self.kube.stream_list(
                self.resource,
                self.namespace,
                label_selector=self.label_selector,
                field_selector=self.field_selector,
                resource_version="0" if first else None,
                limit=None if first else self.settings.page_size,
                continue_token=token,
                metadata_only=self.metadata_only,
            )
            yield from listing
            meta = listing.metadata
            token = meta.get("continue") or None
            if not token:
                listed["resourceVersion"] = str(meta.get("resourceVersion", ""))
                return

    def _watch(self) -> None:
        timeout = random.randint(self.settings.min_timeout_seconds, self.settings.max_timeout_seconds)
        stream = self.kube.watch(
            self.resource,
            self.namespace,
            resource_version=self.resource_version,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            timeout_seconds=timeout,
            read_timeout=self.settings.inactivity_timeout,
            metadata_only=self.metadata_only,
        )
        self._stream = stream
        open_streams = metrics.watch_connections.labels(self.resource.kind)
        open_streams.inc()
        try:
            if self._stop.is_set():
                return
            for event_type, obj in stream:
                self._progress_at = time.monotonic()
                self._count_event(event_type)
                self._handle(event_type, obj)
        finally:
            open_streams.dec()
            self._stream = None
            stream.close()

    def _count_event(self, event_type: str) -> None:
        """Looking a labelled child up costs more than the event itself; keep them per informer."""
        counter = self._event_counters.get(event_type)
        if counter is None:
            counter = self._event_counters[event_type] = metrics.watch_events_total.labels(
                self.resource.kind, event_type
            )
        counter.inc()

    def _handle(self, event_type: str, obj: dict[str, Any]) -> None:
        if event_type == "ERROR":
            code = int(obj.get("code") or 0)
            if code == 410:
                raise _Gone()
            raise ApiError(code, str(obj.get("reason", "")), str(obj.get("message", "")))
        rv = str(metadata_of(obj).get("resourceVersion", ""))
        if event_type == "BOOKMARK":
            if rv:
                self.resource_version = rv
            return
        if event_type not in ("ADDED", "MODIFIED", "DELETED"):
            log.warning("informer %s: unknown event type %r", self.resource.plural, event_type)
            return
        for sink in self.sinks:
            delta: Delta | None
            if event_type == "DELETED" or not sink.keeps(obj):
                # Not kept (any more): gone from this cache, as a server-side selector reports it.
                delta = sink.store.delete(obj)
            else:
                delta = sink.store.upsert(admit(self.resource.kind, obj, sink.transform))
            if delta is not None:
                sink.dispatch([delta], self.resource.plural)
        if rv:
            self.resource_version = rv


def dispatch_existing(store: Store, handler: Handler, namespace: str | None = None) -> None:
    """Replays the cache to a handler added late, as a shared informer does for new listeners."""
    for obj in store.list(namespace):
        handler(Delta("ADDED", None, obj))
