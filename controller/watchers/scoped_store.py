"""A Store fed by one cluster-wide watch that holds only the objects of managed namespaces.

With one watch per kind across all namespaces, which namespaces are managed is a filter in the
process, not a set of watches: an object of a namespace outside the scope is set aside (parked,
frozen, unindexed, invisible to reads and handlers) and moves into the store the moment its
namespace becomes managed, so no LIST or watch is opened for it; when a namespace leaves the scope
its objects move back out and handlers hear them as deletions. The watch itself never restarts.

Parked objects cost memory: only objects matching the kind's label selector reach the process, so
for children (selected by `managed-by`) that is what the operator once created there; for sessions,
those of namespaces outside the scope.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from controller.watchers.store import Delta, IndexFunc, Store, freeze


def _namespace_and_name(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        return "", ""
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


class ScopedStore(Store):
    """A Store restricted to a set of namespaces that can change while its informer runs.

    Until `restrict()` is called it is a plain Store (per-namespace watches scope by themselves).
    Every write is routed under one lock, so a namespace joining or leaving the scope is atomic with
    respect to the events of the watch.
    """

    def __init__(self, indexers: Mapping[str, IndexFunc] | None = None):
        super().__init__(indexers)
        self._scope_lock = threading.Lock()
        self._managed: set[str] | None = None
        self._parked: dict[str, dict[str, Mapping[str, Any]]] = {}

    @property
    def restricted(self) -> bool:
        return self._managed is not None

    def restrict(self, namespaces: Iterable[str]) -> None:
        """From now on, keep only objects of these namespaces (and those later passed to manage())."""
        with self._scope_lock:
            self._managed = set(namespaces)

    def parked(self) -> int:
        """How many objects of unmanaged namespaces are set aside."""
        return sum(len(objects) for objects in list(self._parked.values()))

    # -- writes from the watch (and the mutation cache) -------------------------------------------

    def upsert(self, obj: Mapping[str, Any]) -> Delta | None:
        if self._managed is None:
            return super().upsert(obj)
        namespace, name = _namespace_and_name(obj)
        with self._scope_lock:
            if namespace in self._managed:
                return super().upsert(obj)
            self._parked.setdefault(namespace, {})[name] = freeze(obj)
            return None

    def delete(self, obj: Mapping[str, Any]) -> Delta | None:
        if self._managed is None:
            return super().delete(obj)
        namespace, name = _namespace_and_name(obj)
        with self._scope_lock:
            if namespace in self._managed:
                return super().delete(obj)
            waiting = self._parked.get(namespace)
            if waiting is not None:
                waiting.pop(name, None)
                if not waiting:
                    del self._parked[namespace]
            return None

    def replace(self, namespace: str | None, objects: Iterable[Mapping[str, Any]]) -> builtins.list[Delta]:
        """A cluster-wide LIST: managed objects replace the store's, the others replace the parked ones.

        Routed as the LIST streams in (the store still freezes each item as it is decoded); the
        scope cannot change meanwhile, so no namespace is half in and half out.
        """
        if self._managed is None or namespace is not None:
            return super().replace(namespace, objects)
        with self._scope_lock:
            managed = self._managed
            parked: dict[str, dict[str, Mapping[str, Any]]] = {}

            def managed_only() -> Iterator[Mapping[str, Any]]:
                for obj in objects:
                    ns, name = _namespace_and_name(obj)
                    if ns in managed:
                        yield obj
                    else:
                        parked.setdefault(ns, {})[name] = freeze(obj)

            deltas = super().replace(None, managed_only())
            self._parked = parked
            return deltas

    # -- scope changes ----------------------------------------------------------------------------

    def manage(self, namespace: str) -> builtins.list[Delta]:
        """Brings the namespace's parked objects in; returns them as ADDED deltas for the handlers."""
        if self._managed is None:
            return []
        with self._scope_lock:
            if namespace in self._managed:
                return []
            self._managed.add(namespace)
            waiting = self._parked.pop(namespace, {})
            found = (super(ScopedStore, self).upsert(obj) for obj in waiting.values())
            return [delta for delta in found if delta is not None]

    def unmanage(self, namespace: str) -> builtins.list[Delta]:
        """Parks the namespace's objects; returns them as DELETED deltas, so their keys are forgotten."""
        if self._managed is None:
            return []
        with self._scope_lock:
            if namespace not in self._managed:
                return []
            self._managed.discard(namespace)
            deltas: builtins.list[Delta] = []
            aside = self._parked.setdefault(namespace, {})
            for obj in self.list(namespace):
                delta = super().delete(obj)
                if delta is not None:
                    aside[_namespace_and_name(obj)[1]] = obj
                    deltas.append(delta)
            if not aside:
                del self._parked[namespace]
            return deltas
