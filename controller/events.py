"""Kubernetes Events, so that `kubectl describe` tells the story of a session.

Identical events for the same object within the dedup window are recorded once: a reconcile that
runs again for the same state must not spam the API server or the object's history.

As client-go's event broadcaster, recording is asynchronous: a reconcile puts the Event on a bounded
queue and goes on, and one sender thread writes them. An Event is an account of what happened, never
a step of it, so a reconcile must not wait for one; when the queue is full (the API server is far
behind) an Event is dropped and counted rather than slowing the loops down.
"""

from __future__ import annotations

import datetime
import logging
import queue
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from controller import metrics
from controller.api_error import ApiError
from controller.kube import Kube
from controller.names import bounded_name
from controller.resources import EVENTS

log = logging.getLogger("controller.events")

NORMAL = "Normal"
WARNING = "Warning"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


QUEUE_SIZE = 1000  # client-go's maxQueuedEvents


class EventRecorder:
    def __init__(self, kube: Kube, component: str = "agentic-operator", dedup_window: float = 600.0):
        self.kube = kube
        self.component = component
        self.dedup_window = dedup_window
        self._recent: dict[tuple[str, str, str, str], float] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(QUEUE_SIZE)
        self._sender: threading.Thread | None = None

    def _seen_recently(self, key: tuple[str, str, str, str]) -> bool:
        now = time.monotonic()
        with self._lock:
            if len(self._recent) > 10000:
                self._recent = {k: t for k, t in self._recent.items() if now - t < self.dedup_window}
            last = self._recent.get(key)
            if last is not None and now - last < self.dedup_window:
                return True
            self._recent[key] = now
            return False

    def record(self, obj: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
        """Queues the Event for the sender thread; never blocks and never raises."""
        meta = obj.get("metadata") or {}
        uid = str(meta.get("uid", ""))
        namespace = str(meta.get("namespace") or "default")
        message = message[:1024]
        if self._seen_recently((uid, event_type, reason, message)):
            return
        now = _now()
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{bounded_name(str(meta.get('name') or 'object'), 236)}.{uuid.uuid4().hex[:16]}",
                "namespace": namespace,
            },
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", ""),
                "kind": obj.get("kind", ""),
                "name": meta.get("name", ""),
                "namespace": namespace,
                "uid": uid,
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message,
            "type": event_type,
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "reportingInstance": self.component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self._ensure_sender()
        try:
            self._queue.put_nowait(body)
        except queue.Full:
            metrics.events_dropped_total.inc()
            log.warning("event queue full: dropped event %s on %s/%s", reason, namespace, meta.get("name"))

    def _ensure_sender(self) -> None:
        with self._lock:
            if self._sender is None:
                self._sender = threading.Thread(target=self._send_all, name="event-sender", daemon=True)
                self._sender.start()

    def _send_all(self) -> None:
        while True:
            body = self._queue.get()
            try:
                if body is None:
                    return
                self._send(body)
            finally:
                self._queue.task_done()

    def _send(self, body: dict[str, Any]) -> None:
        """Best effort: a failed Event is logged, never raised."""
        meta, involved = body["metadata"], body["involvedObject"]
        try:
            self.kube.create(EVENTS, meta["namespace"], body)
        except ApiError as exc:
            log.warning(
                "could not record event %s on %s/%s: %s",
                body["reason"],
                meta["namespace"],
                involved["name"],
                exc,
            )

    def flush(self, timeout: float) -> bool:
        """Waits up to `timeout` seconds for queued Events to be written and stops the sender."""
        with self._lock:
            sender, self._sender = self._sender, None
        if sender is None:
            return True
        deadline = time.monotonic() + timeout
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return False
        sender.join(max(0.0, deadline - time.monotonic()))
        return not sender.is_alive()

    def forget(self, uid: str) -> None:
        with self._lock:
            for key in [k for k in self._recent if k[0] == uid]:
                del self._recent[key]
