"""Namespace-scoped caches: one store per kind, one informer per (kind, namespace).

One watch per namespace lets the operator run with namespaced Roles only. In selector mode a
namespace informer starts and stops those watches as namespaces gain or lose the managed label;
the API server reports a namespace leaving the selector as DELETED, so both cases arrive as events.
"""

from __future__ import annotations

import builtins
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from controller import metrics
from controller.kube import NAMESPACES, Kube, Resource
from controller.watchers.informer import Handler, Informer, Transform, WatchSettings, dispatch_existing
from controller.watchers.quarantine import admit
from controller.watchers.store import Delta, IndexFunc, Store, strip_managed_fields

log = logging.getLogger("controller.watchers")
_STORES_BY_KIND: dict[str, weakref.WeakSet[Store]] = {}


@dataclass(frozen=True)
class KindSpec:
    """What to cache of one kind: server-side selector, transform, and indexes."""

    resource: Resource
    label_selector: str | None = None
    transform: Transform = strip_managed_fields
    indexers: Mapping[str, IndexFunc] = field(default_factory=dict)
    metadata_only: bool = False
    field_selector: str | None = None
    keep: Callable[[dict[str, Any]], bool] | None = None


class KindCache:
    """All cached objects of one kind across the managed namespaces."""

    def __init__(self, kube: Kube, spec: KindSpec, settings: WatchSettings):
        self.kube = kube
        self.spec = spec
        self.settings = settings
        self.store = Store(spec.indexers)
        self.handlers: builtins.list[Handler] = []
        self._informers: dict[str | None, Informer] = {}
        self._lock = threading.Lock()
        # Read on scrape: informers of several namespaces change the store concurrently, and a
        # count pushed by each could land out of order. Several caches may hold one kind (the
        # operator's Secrets and the platform's): the gauge is their sum.
        stores = _STORES_BY_KIND.setdefault(spec.resource.kind, weakref.WeakSet())
        stores.add(self.store)
        metrics.cached_objects.labels(spec.resource.kind).set_function(lambda: sum(len(s) for s in stores))

    @property
    def kind(self) -> str:
        return self.spec.resource.kind

    def add_handler(self, handler: Handler) -> None:
        self.handlers.append(handler)
        dispatch_existing(self.store, handler)

    def start_namespace(self, namespace: str | None) -> None:
        with self._lock:
            if namespace in self._informers:
                return
            informer = Informer(
                self.kube,
                self.spec.resource,
                namespace,
                self.store,
                label_selector=self.spec.label_selector,
                transform=self.spec.transform,
                handlers=self.handlers,
                settings=self.settings,
                metadata_only=self.spec.metadata_only,
                field_selector=self.spec.field_selector,
                keep=self.spec.keep,
            )
            self._informers[namespace] = informer
        informer.start()

    def stop_namespace(self, namespace: str | None) -> None:
        with self._lock:
            informer = self._informers.pop(namespace, None)
        if informer is None:
            return
        informer.stop()
        if namespace is not None:
            self.store.drop_namespace(namespace)

    def stop(self) -> None:
        with self._lock:
            informers = list(self._informers.values())
            self._informers.clear()
        for informer in informers:
            informer.stop()

    def namespaces(self) -> builtins.list[str | None]:
        with self._lock:
            return list(self._informers)

    def informers(self) -> builtins.list[Informer]:
        with self._lock:
            return list(self._informers.values())

    def synced(self) -> bool:
        return all(i.synced.is_set() for i in self.informers())

    def problems(self) -> builtins.list[str]:
        found = []
        for informer in self.informers():
            ok, why = informer.healthy()
            if not ok:
                found.append(f"{self.kind}/{informer.namespace or '*'}: {why}")
        return found

    def remember(self, obj: dict[str, Any]) -> None:
        """Caches an object our own write returned (a mutation cache), admitted as a watched one."""
        self.store.upsert(admit(self.kind, obj, self.spec.transform))

    # -- reads (objects are frozen; thaw() before changing) ---------------------------------------

    def get(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.store.get(namespace, name)

    def list(self, namespace: str | None = None) -> builtins.list[Mapping[str, Any]]:
        return self.store.list(namespace)

    def by_index(self, index: str, value: str) -> builtins.list[Mapping[str, Any]]:
        return self.store.by_index(index, value)


class NamespaceScope:
    """Decides which namespaces are managed and keeps every kind cache watching exactly those."""

    def __init__(
        self,
        kube: Kube,
        caches: Iterable[KindCache],
        *,
        namespaces: Iterable[str] = (),
        selector: str = "",
        settings: WatchSettings | None = None,
        on_namespace_removed: Callable[[str], None] | None = None,
        on_namespace_added: Callable[[str], None] | None = None,
    ):
        self.kube = kube
        self.caches = list(caches)
        self.explicit = tuple(namespaces)
        self.selector = selector
        self.settings = settings or WatchSettings()
        self.on_namespace_removed = on_namespace_removed
        self.on_namespace_added = on_namespace_added
        self.namespace_cache: KindCache | None = None
        self._managed: set[str] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        if self.explicit:
            for namespace in self.explicit:
                self._add(namespace)
            return
        self.namespace_cache = KindCache(
            self.kube, KindSpec(NAMESPACES, label_selector=self.selector), self.settings
        )
        self.namespace_cache.add_handler(self._on_namespace)
        self.namespace_cache.start_namespace(None)

    def stop(self) -> None:
        if self.namespace_cache is not None:
            self.namespace_cache.stop()
        for cache in self.caches:
            cache.stop()

    def managed(self) -> set[str]:
        with self._lock:
            return set(self._managed)

    def _on_namespace(self, delta: Delta) -> None:
        obj = delta.new if delta.new is not None else delta.old
        name = str(((obj or {}).get("metadata") or {}).get("name", ""))
        if not name:
            return
        terminating = delta.new is not None and (delta.new.get("status") or {}).get("phase") == "Terminating"
        if delta.type == "DELETED":
            self._remove(name)
        elif not terminating:
            self._add(name)

    def _add(self, namespace: str) -> None:
        with self._lock:
            if namespace in self._managed:
                return
            self._managed.add(namespace)
        log.info("managing namespace %s", namespace)
        for cache in self.caches:
            cache.start_namespace(namespace)
        if self.on_namespace_added is not None:
            self.on_namespace_added(namespace)

    def _remove(self, namespace: str) -> None:
        with self._lock:
            if namespace not in self._managed:
                return
            self._managed.discard(namespace)
        log.info("no longer managing namespace %s", namespace)
        for cache in self.caches:
            cache.stop_namespace(namespace)
        if self.on_namespace_removed is not None:
            self.on_namespace_removed(namespace)

    def synced(self) -> bool:
        if self.namespace_cache is not None and not self.namespace_cache.synced():
            return False
        return all(cache.synced() for cache in self.caches)

    def wait_for_sync(self, timeout: float, stop: threading.Event | None = None) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.synced():
                return True
            if stop is not None and stop.is_set():
                return False
            time.sleep(0.05)
        return self.synced()

    def problems(self) -> builtins.list[str]:
        found = self.namespace_cache.problems() if self.namespace_cache is not None else []
        for cache in self.caches:
            found.extend(cache.problems())
        return found
