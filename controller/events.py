"""Kubernetes Events, so that `kubectl describe` tells the story of a session.

Identical events for the same object within the dedup window are recorded once: a reconcile that
runs again for the same state must not spam the API server or the object's history.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from controller.kube import EVENTS, ApiError, Kube

log = logging.getLogger("controller.events")

NORMAL = "Normal"
WARNING = "Warning"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    def __init__(self, kube: Kube, component: str = "agentic-operator", dedup_window: float = 600.0):
        self.kube = kube
        self.component = component
        self.dedup_window = dedup_window
        self._recent: dict[tuple[str, str, str, str], float] = {}
        self._lock = threading.Lock()

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
        """Best effort: a failed Event is logged, never raised, so it cannot fail a reconcile."""
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
                "name": f"{meta.get('name', 'object')}.{uuid.uuid4().hex[:16]}",
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
        try:
            self.kube.create(EVENTS, namespace, body)
        except ApiError as exc:
            log.warning("could not record event %s on %s/%s: %s", reason, namespace, meta.get("name"), exc)

    def forget(self, uid: str) -> None:
        with self._lock:
            for key in [k for k in self._recent if k[0] == uid]:
                del self._recent[key]
