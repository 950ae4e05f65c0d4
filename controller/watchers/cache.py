"""Namespace-scoped caches: one store per kind, fed by one cluster-wide watch or one per namespace.

Selector mode (the default install, allowed to list cluster-wide) watches each kind once across all
namespaces; a namespace informer decides which namespaces are managed, and a namespace gaining or
losing the managed label only moves its objects in or out of the caches (see scoped_store): threads
and connections do not grow with namespaces. The API server reports a namespace leaving the selector
as DELETED, so both cases arrive as events. With --namespaces (namespaced Roles only) each kind is
watched in each listed namespace instead.

Several caches may hold one kind (the runner tokens and the platform's Secrets by name; the session
children's Roles and the projects loop's): a cache that `follow`s another is fed by the other's
informer of each scope, so the kind costs one connection and one thread, not one per cache. The
leader's query (selectors, metadata only) is the shared one; it must select at least what the
follower's would, and the follower's narrower selectors are applied in the process (selectors.py).
Each cache keeps its own store, transform, filter, indexes and handlers; a follower starts no
informer of its own and reports its leader's synced and healthy state.

Whoever must act when a namespace becomes managed or stops being managed (beyond the caches, which
follow by themselves) is called through NamespaceScope's on_namespace_added / on_namespace_removed
(the Manager's lists of the same names).
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
from controller.kube import Kube
from controller.resources import NAMESPACES, Resource
from controller.watchers import selectors
from controller.watchers.informer import Handler, Informer, Sink, Transform, WatchSettings, dispatch_existing
from controller.watchers.quarantine import admit
from controller.watchers.scoped_store import ScopedStore
from controller.watchers.store import Delta, IndexFunc, strip_managed_fields

log = logging.getLogger("controller.watchers")
_STORES_BY_KIND: dict[str, weakref.WeakSet[ScopedStore]] = {}


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
        self.store = ScopedStore(spec.indexers)
        self.handlers: builtins.list[Handler] = []
        self._informers: dict[str | None, Informer] = {}
        # Sharing: the cache whose informers feed this one, or the caches this one's informers feed.
        self.leader: KindCache | None = None
        self.followers: builtins.list[KindCache] = []
        self._keep = spec.keep
        self._lock = threading.Lock()
        # Read on scrape: informers of several namespaces change the store concurrently, and a
        # count pushed by each could land out of order. Several caches may hold one kind (the
        # operator's Secrets and the platform's): the gauges are their sums.
        stores = _STORES_BY_KIND.setdefault(spec.resource.kind, weakref.WeakSet())
        stores.add(self.store)
        metrics.cached_objects.labels(spec.resource.kind).set_function(lambda: sum(len(s) for s in stores))
        metrics.parked_objects.labels(spec.resource.kind).set_function(
            lambda: sum(s.parked() for s in stores)
        )

    @property
    def kind(self) -> str:
        return self.spec.resource.kind

    def add_handler(self, handler: Handler) -> None:
        self.handlers.append(handler)
        dispatch_existing(self.store, handler)

    def follow(self, leader: KindCache) -> None:
        """From now on this cache is fed by `leader`'s informers; call before either starts.

        The leader's query must select everything this cache's would (same kind, a selector whose
        terms this one repeats, whole objects if this one wants them); what this cache's own
        selectors select more narrowly is checked here, on each decoded object.
        """
        mine, theirs = self.spec, leader.spec
        if leader.leader is not None or self.followers or leader._informers or self._informers:
            raise ValueError(f"{self.kind}: a cache follows a started or following cache")
        if mine.resource != theirs.resource or (theirs.metadata_only and not mine.metadata_only):
            raise ValueError(f"{self.kind}: the leader's watch does not carry what this cache reads")
        if not selectors.narrower_or_equal(mine.label_selector, theirs.label_selector) or (
            theirs.field_selector not in (None, mine.field_selector)
        ):
            raise ValueError(f"{self.kind}: this cache's selectors are broader than the shared watch's")
        self._keep = selectors.all_of(
            mine.keep,
            None
            if mine.label_selector == theirs.label_selector
            else selectors.label_matcher(mine.label_selector),
            None
            if mine.field_selector == theirs.field_selector
            else selectors.field_matcher(mine.field_selector),
        )
        self.leader = leader
        leader.followers.append(self)

    def sink(self) -> Sink:
        """What this cache takes from an informer: its store, filter, transform and handlers."""
        return Sink(self.store, self.spec.transform, self._keep, self.handlers)

    def start_namespace(self, namespace: str | None) -> None:
        """Starts the watch of this scope (a follower starts its leader's; starting twice is a no-op)."""
        if self.leader is not None:
            self.leader.start_namespace(namespace)
            return
        with self._lock:
            if namespace in self._informers:
                return
            informer = Informer(
                self.kube,
                self.spec.resource,
                namespace,
                label_selector=self.spec.label_selector,
                settings=self.settings,
                metadata_only=self.spec.metadata_only,
                field_selector=self.spec.field_selector,
                sinks=[self.sink(), *(follower.sink() for follower in self.followers)],
            )
            self._informers[namespace] = informer
        informer.start()

    def manage(self, namespace: str) -> None:
        """Cluster-wide mode: the namespace's objects join the cache; handlers hear them as ADDED."""
        self._dispatch(self.store.manage(namespace))

    def unmanage(self, namespace: str) -> None:
        """Cluster-wide mode: the namespace's objects leave the cache; handlers hear them as DELETED."""
        self._dispatch(self.store.unmanage(namespace))

    def _dispatch(self, deltas: builtins.list[Delta]) -> None:
        for delta in deltas:
            for handler in self.handlers:
                try:
                    handler(delta)
                except Exception:
                    log.exception("cache %s: handler failed on %r", self.kind, delta)

    def stop_namespace(self, namespace: str | None) -> None:
        """Stops this scope's watch and forgets its objects (a follower only forgets; see stop)."""
        if self.leader is not None:
            if namespace is not None:
                self.store.drop_namespace(namespace)
            return
        with self._lock:
            informer = self._informers.pop(namespace, None)
        if informer is None:
            return
        informer.stop()
        if namespace is not None:
            self.store.drop_namespace(namespace)

    def stop(self) -> None:
        """Stops this cache's watches; a follower's are its leader's, stopped with the leader."""
        with self._lock:
            informers = list(self._informers.values())
            self._informers.clear()
        for informer in informers:
            informer.stop()

    def namespaces(self) -> builtins.list[str | None]:
        if self.leader is not None:
            return self.leader.namespaces()
        with self._lock:
            return list(self._informers)

    def informers(self) -> builtins.list[Informer]:
        """The informers feeding this cache (a follower's are its leader's)."""
        if self.leader is not None:
            return self.leader.informers()
        with self._lock:
            return list(self._informers.values())

    def informer(self, namespace: str | None) -> Informer | None:
        """The informer feeding this cache in that scope, once started."""
        return next((i for i in self.informers() if i.namespace == namespace), None)

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


# Seconds start() waits for the namespace list before opening the kinds' cluster-wide watches, so
# their first LISTs land straight in the caches instead of being parked and moved.
NAMESPACE_SYNC_WAIT = 10.0


class NamespaceScope:
    """Decides which namespaces are managed and keeps every kind cache holding exactly those.

    `on_namespace_added` / `on_namespace_removed` get a namespace name after the caches have taken
    it in or dropped it (so a callback reading the caches sees the new state); they run on the
    namespace informer's thread and must not block.
    """

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
        cluster_wide: bool = True,
    ):
        self.kube = kube
        self.caches = list(caches)
        self.explicit = tuple(namespaces)
        self.selector = selector
        self.settings = settings or WatchSettings()
        self.on_namespace_removed = on_namespace_removed
        self.on_namespace_added = on_namespace_added
        self.cluster_wide = cluster_wide and not self.explicit
        self.namespace_cache: KindCache | None = None
        self._managed: set[str] = set()
        self._lock = threading.Lock()
        # Held across a whole change of scope, so caches never see a namespace's add and removal
        # interleaved, nor a change between start()'s snapshot and the watches it opens.
        self._changing = threading.RLock()

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
        if not self.cluster_wide:
            return
        for informer in self.namespace_cache.informers():
            informer.synced.wait(NAMESPACE_SYNC_WAIT)
        with self._changing:
            managed = self.managed()
            # Every store is scoped before any watch opens: a shared watch's first LIST feeds the
            # stores of several caches at once.
            for cache in self.caches:
                cache.store.restrict(managed)
            for cache in self.caches:
                cache.start_namespace(None)

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
        self._change(namespace, managed=True)

    def _remove(self, namespace: str) -> None:
        self._change(namespace, managed=False)

    def _change(self, namespace: str, managed: bool) -> None:
        with self._changing:
            with self._lock:
                if (namespace in self._managed) == managed:
                    return
                (self._managed.add if managed else self._managed.discard)(namespace)
            log.info("%s namespace %s", "managing" if managed else "no longer managing", namespace)
            for cache in self.caches:
                if cache.store.restricted:
                    (cache.manage if managed else cache.unmanage)(namespace)
                elif not self.cluster_wide:
                    (cache.start_namespace if managed else cache.stop_namespace)(namespace)
            callback = self.on_namespace_added if managed else self.on_namespace_removed
            if callback is not None:
                callback(namespace)

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
