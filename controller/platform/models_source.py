"""Where the models manifest comes from: a watch on its ConfigMap, or a file (MODELS_MANIFEST_PATH).

The manifest is parsed once per change into an immutable index and handed out whole, so a reconcile
never sees half of an update. A malformed edit keeps the last good manifest in use, with a Warning
Event on the ConfigMap and a metric; it never crashes anything and never touches a running runner
(the manifest is read only when a runner is about to start).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from prometheus_client import Counter, Gauge

from controller import metrics
from controller.events import WARNING, EventRecorder
from controller.kube import Kube
from controller.platform.models import (
    ABSENT,
    CONFIGMAP_KEY,
    CONFIGMAP_NAME,
    NOT_LOADED,
    Known,
    ManifestError,
    ManifestState,
    ModelIndex,
    parse_manifest,
)
from controller.resources import Resource
from controller.watchers.cache import KindCache, KindSpec
from controller.watchers.informer import Informer, WatchSettings
from controller.watchers.store import Delta, metadata_of, strip_managed_fields

log = logging.getLogger("controller.platform.models")

CONFIG_MAPS = Resource("", "v1", "configmaps", "ConfigMap")
MANIFEST_INVALID_EVENT = "ModelsManifestInvalid"

manifest_errors_total = Counter(
    "agentic_operator_models_manifest_errors_total",
    "Models manifest versions that could not be parsed (the last good one stays in use).",
    registry=metrics.REGISTRY,
)
manifest_loaded = Gauge(
    "agentic_operator_models_manifest_loaded",
    "1 while a models manifest is loaded and enforced, 0 while none is (not read yet, absent, invalid).",
    registry=metrics.REGISTRY,
)
manifest_models = Gauge(
    "agentic_operator_models_manifest_models",
    "Models registered in the manifest in use.",
    registry=metrics.REGISTRY,
)


class ModelsSource(Protocol):
    """What the sessions loop needs: the manifest as currently known."""

    # True when changes arrive without events (a file): waiting sessions look again after a while.
    polled: bool

    def state(self) -> ManifestState: ...


class StaticModels:
    """A fixed state: the manifest not in use (no source configured), or a given one in tests."""

    polled = False

    def __init__(self, state: ManifestState = ABSENT):
        self._state = state

    def state(self) -> ManifestState:
        return self._state


class _Keeper:
    """Turns successive manifest texts into states, keeping the last good index across bad ones."""

    def __init__(self, where: str):
        self.where = where
        self.last_good: ModelIndex | None = None
        self.current: ManifestState = NOT_LOADED

    def absent(self, why: str) -> ManifestState:
        self.last_good = None
        self.current = ManifestState(Known.ABSENT, None, why)
        self._publish()
        return self.current

    def update(self, text: str) -> str | None:
        """Parses a new version; returns the error message when it is malformed."""
        try:
            index = parse_manifest(text)
        except ManifestError as exc:
            manifest_errors_total.inc()
            if self.last_good is not None:
                self.current = ManifestState.loaded(self.last_good, f"{self.where} (last good version)")
            else:
                self.current = ManifestState(Known.INVALID, None, f"{self.where}: {exc}")
            self._publish()
            return str(exc)
        self.last_good = index
        self.current = ManifestState.loaded(index, self.where)
        self._publish()
        log.info("models manifest loaded from %s: %d models", self.where, len(index.models))
        return None

    def _publish(self) -> None:
        loaded = self.current.known is Known.LOADED and self.current.index is not None
        manifest_loaded.set(1 if loaded else 0)
        manifest_models.set(len(self.current.index.models) if self.current.index is not None else 0)


def _is_manifest(obj: dict[str, Any]) -> bool:
    """Other ConfigMaps of the namespace are none of our business (nor kept)."""
    return metadata_of(obj).get("name") == CONFIGMAP_NAME


class ConfigMapModels:
    """The manifest from ConfigMap `ambient-models` (key `models.json`), through a watch.

    Until the watch's first LIST has been handled the state is NOT_LOADED; then ABSENT when the
    ConfigMap (or its key) does not exist. `on_change` is called after every change of state, so
    sessions waiting for the manifest are reconciled at once.

    `cache` watches the namespace's ConfigMaps and keeps only the manifest, so another cache of
    ConfigMaps in the same namespace (the agent registry) can follow it and share its watch.
    """

    polled = False

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        recorder: EventRecorder,
        settings: WatchSettings | None = None,
        on_change: Callable[[], None] | None = None,
    ):
        self.namespace = namespace
        self.recorder = recorder
        self.on_change = on_change
        self._keeper = _Keeper(f"ConfigMap {namespace}/{CONFIGMAP_NAME}")
        self._lock = threading.Lock()
        self._seen_version: str | None = None
        self.cache = KindCache(
            kube,
            KindSpec(CONFIG_MAPS, transform=strip_managed_fields, keep=_is_manifest),
            settings or WatchSettings(),
        )
        self.cache.add_handler(self._on_delta)
        self._informer: Informer | None = None
        self._waiter: threading.Thread | None = None

    def state(self) -> ManifestState:
        with self._lock:
            return self._keeper.current

    def start(self, sync_timeout: float = 0.0) -> None:
        """Starts the watch and waits up to `sync_timeout` seconds for its first LIST."""
        self.start_watch()
        self.wait_loaded(sync_timeout)

    def start_watch(self) -> None:
        """Starts the watch (once); the state leaves NOT_LOADED after its first LIST."""
        if self._informer is not None:
            return
        self.cache.start_namespace(self.namespace)
        informer = self._informer = self.cache.informer(self.namespace)
        assert informer is not None
        self._waiter = threading.Thread(
            target=self._after_sync, args=(informer,), name="models-manifest-sync", daemon=True
        )
        self._waiter.start()

    def wait_loaded(self, timeout: float) -> None:
        """Waits up to `timeout` seconds for the first LIST to have been handled.

        Before the loops start, the wait spares sessions a needless ManifestNotLoaded round at
        every operator start; past it, they wait for the manifest and are enqueued when it comes.
        """
        informer, waiter = self._informer, self._waiter
        if timeout > 0 and informer is not None and waiter is not None and informer.synced.wait(timeout):
            waiter.join(timeout)

    def stop(self, _timeout: float = 0.0) -> None:
        self.cache.stop()
        if self._informer is not None:
            self._informer.synced.set()  # releases the waiter if the first LIST never came

    def _after_sync(self, informer: Informer) -> None:
        informer.synced.wait()
        with self._lock:
            if self._keeper.current.known is not Known.NOT_LOADED:
                return
            self._keeper.absent(f"ConfigMap {self.namespace}/{CONFIGMAP_NAME} does not exist")
        log.info(
            "models manifest: ConfigMap %s/%s does not exist; not in use", self.namespace, CONFIGMAP_NAME
        )
        self._changed()

    def _on_delta(self, delta: Delta) -> None:
        obj = delta.new if delta.new is not None else delta.old
        if ((obj or {}).get("metadata") or {}).get("name") != CONFIGMAP_NAME:
            return
        with self._lock:
            error = self._apply(delta.new)
        if error is not None and delta.new is not None:
            self._report_invalid(delta.new, error)
        self._changed()

    def _apply(self, configmap: Mapping[str, Any] | None) -> str | None:
        if configmap is None:
            self._seen_version = None
            self._keeper.absent(f"ConfigMap {self.namespace}/{CONFIGMAP_NAME} was deleted")
            return None
        version = str((configmap.get("metadata") or {}).get("resourceVersion") or "")
        if version and version == self._seen_version:
            return None
        self._seen_version = version
        text = (configmap.get("data") or {}).get(CONFIGMAP_KEY)
        if not isinstance(text, str):
            self._keeper.absent(f"ConfigMap {self.namespace}/{CONFIGMAP_NAME} has no key {CONFIGMAP_KEY}")
            return None
        return self._keeper.update(text)

    def _report_invalid(self, configmap: Mapping[str, Any], error: str) -> None:
        kept = self._keeper.last_good is not None
        message = f"{CONFIGMAP_KEY} is malformed ({error}); " + (
            "the last good version stays in use" if kept else "no version is usable: sessions wait"
        )
        log.warning("models manifest %s/%s: %s", self.namespace, CONFIGMAP_NAME, message)
        self.recorder.record(
            {"apiVersion": "v1", "kind": "ConfigMap", **configmap}, WARNING, MANIFEST_INVALID_EVENT, message
        )

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:
                log.exception("models manifest: change handler failed")


class FileModels:
    """The manifest from a file (a mounted ConfigMap), re-read when its size or mtime changes.

    A missing file means the manifest is not in use, as with the platform's optional mount.
    """

    polled = True

    def __init__(self, path: str):
        self.path = path
        self._keeper = _Keeper(f"file {path}")
        self._stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def state(self) -> ManifestState:
        with self._lock:
            try:
                info = os.stat(self.path)
            except OSError:
                if self._keeper.current.known is not Known.ABSENT:
                    self._stamp = None
                    self._keeper.absent(f"file {self.path} does not exist")
                return self._keeper.current
            stamp = (info.st_mtime_ns, info.st_size)
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    with open(self.path, encoding="utf-8") as f:
                        text = f.read()
                except (OSError, UnicodeDecodeError) as exc:
                    text = f"<unreadable: {exc}>"
                error = self._keeper.update(text)
                if error is not None:
                    log.warning(
                        "models manifest %s is malformed (%s); the last good version, if any, stays in use",
                        self.path,
                        error,
                    )
            return self._keeper.current
