"""The informer cache: frozen objects, indexed, safe to share between threads without copying.

client-go deep-copies on every read so that a careless caller cannot corrupt the cache. Here objects
are frozen once on the way in (dicts become read-only dicts, lists become tuples), so reads are free
and a mutation attempt fails loudly at the caller instead of silently changing shared state.
`thaw()` gives a private mutable copy for building writes.
"""

from __future__ import annotations

import builtins
import logging
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NoReturn

from controller.safe_json import MAX_DEPTH

log = logging.getLogger("controller.watchers")

Key = tuple[str, str]
IndexFunc = Callable[[Mapping[str, Any]], Iterable[str]]


class FrozenDict(dict[str, Any]):
    """A dict that refuses every mutation; still a dict for json.dumps and isinstance checks."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("objects from the informer cache are read-only; use controller.watchers.store.thaw()")

    __setitem__ = _refuse
    __delitem__ = _refuse
    __ior__ = _refuse
    clear = _refuse
    pop = _refuse
    popitem = _refuse
    setdefault = _refuse
    update = _refuse

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return thaw(self)  # type: ignore[no-any-return]

    def __copy__(self) -> dict[str, Any]:
        return dict(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))


class SharedFrozenDict(FrozenDict):
    """A frozen mapping that many cached objects hold one copy of (see shared)."""

    __slots__ = ("__weakref__",)


_SHARED: weakref.WeakValueDictionary[str, SharedFrozenDict] = weakref.WeakValueDictionary()
_SHARED_LOCK = threading.Lock()


def shared(key: str, items: Mapping[str, Any]) -> FrozenDict:
    """The one frozen copy of a small mapping of scalars that many cached objects carry alike.

    A session's children all carry the same owner reference (kind, name, uid, controller): seven
    identical dicts per session, about 1.1 KB of the cache per session at 10,000. `key` names the
    mapping (the session's uid, already interned); a mapping that differs from the one kept under
    its key is frozen on its own. Kept while any object holds it.
    """
    with _SHARED_LOCK:
        found = _SHARED.get(key)
        if found is not None and dict.__eq__(found, items):
            return found
        frozen = SharedFrozenDict()
        dict.update(frozen, {sys.intern(k): freeze(v, 1) for k, v in items.items()})
        if found is None:
            _SHARED[key] = frozen
        return frozen


EMPTY = FrozenDict()  # every empty mapping in the cache is this one
# Strings up to this length are interned on the way into the cache (see freeze).
INTERN_MAX_LENGTH = 128


class TooComplex(ValueError):
    """An object nests deeper than the cache holds (safe_json.MAX_DEPTH); see quarantine.py."""


def freeze(value: Any, _depth: int = 0) -> Any:
    """Deep-freezes JSON-like data, interning keys and short strings.

    The same strings repeat across thousands of cached objects: every key, a session's name and uid in
    each child's labels and owner reference, namespaces, timestamps of one burst, condition reasons
    and messages. Interning stores each once (interned strings are freed with their last user).
    resourceVersions are all different, so strings of digits are left alone.

    Containers nested deeper than MAX_DEPTH raise TooComplex rather than recursing on: the depth of
    a cached object is chosen by whoever wrote it, and the interpreter's stack is not.
    """
    kind = type(value)
    if kind is str:
        if len(value) <= INTERN_MAX_LENGTH and not value.isdigit():
            return sys.intern(value)
        return value
    if kind is FrozenDict or kind is SharedFrozenDict:
        return value
    if isinstance(value, dict):
        if _depth >= MAX_DEPTH:
            raise TooComplex(f"nested deeper than {MAX_DEPTH} levels")
        if not value:
            return EMPTY
        result = FrozenDict()
        inner = _depth + 1
        dict.update(
            result, {sys.intern(k) if type(k) is str else k: freeze(v, inner) for k, v in value.items()}
        )
        return result
    if isinstance(value, list | tuple):
        if _depth >= MAX_DEPTH:
            raise TooComplex(f"nested deeper than {MAX_DEPTH} levels")
        inner = _depth + 1
        return tuple(freeze(v, inner) for v in value)
    return value


def thaw(value: Any) -> Any:
    """A private, mutable deep copy of (possibly frozen) JSON-like data."""
    if isinstance(value, dict):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return value


def metadata_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """An object's metadata, or an empty mapping when it has none (or something else in its place)."""
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else EMPTY


def object_key(obj: Mapping[str, Any]) -> Key:
    meta = metadata_of(obj)
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


class Delta:
    """What changed in the store, for handlers: (kind, old, new); old/new are None when absent."""

    __slots__ = ("new", "old", "type")

    def __init__(self, type_: str, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None):
        self.type = type_
        self.old = old
        self.new = new

    def __repr__(self) -> str:
        obj = self.new if self.new is not None else self.old
        return f"Delta({self.type}, {object_key(obj or {})})"


class Store:
    """Map of namespace/name to frozen objects, with secondary indexes; reads take no lock.

    Writers (the informer, and the mutation cache after our own writes) serialise on a lock. Readers
    (every reconcile, many times each) do not: a read is one dict lookup or one copy of a dict's
    items, each a single atomic operation on the dict, and index buckets are immutable sets replaced
    on write. Reconcile workers taking a shared lock on every cache read queue up behind whichever
    holder the interpreter paused: at 10,000 sessions that convoy cost most of a cold start.

    Writes are ordered so that a reader never misses an object that exists: an index entry is added
    before its object and removed after it.
    """

    def __init__(self, indexers: Mapping[str, IndexFunc] | None = None):
        self._lock = threading.RLock()
        self._items: dict[Key, Mapping[str, Any]] = {}
        self._indexers = dict(indexers or {})
        self._indexes: dict[str, dict[str, frozenset[Key]]] = {name: {} for name in self._indexers}

    def _index_values(self, obj: Mapping[str, Any] | None) -> list[tuple[str, str]]:
        """An index function that fails on an object leaves it out of that index, nothing more."""
        if obj is None:
            return []
        found: list[tuple[str, str]] = []
        for name, func in self._indexers.items():
            try:
                found.extend((name, sys.intern(value)) for value in func(obj) if type(value) is str)
            except Exception:
                log.warning("index %s failed on %s/%s", name, *object_key(obj), exc_info=True)
        return found

    def _put(self, key: Key, old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> None:
        """Sets one object, keeping its index entries consistent for lock-free readers."""
        before, after = self._index_values(old), self._index_values(new)
        for name, value in after:
            buckets = self._indexes[name]
            bucket = buckets.get(value, frozenset())
            if key not in bucket:
                buckets[value] = bucket | {key}
        self._items[key] = new
        self._unindex(key, [entry for entry in before if entry not in after])

    def _remove(self, key: Key) -> Mapping[str, Any] | None:
        old = self._items.pop(key, None)
        self._unindex(key, self._index_values(old))
        return old

    def _unindex(self, key: Key, entries: Iterable[tuple[str, str]]) -> None:
        for name, value in entries:
            buckets = self._indexes[name]
            remaining = buckets.get(value, frozenset()) - {key}
            if remaining:
                buckets[value] = remaining
            else:
                buckets.pop(value, None)

    def upsert(self, obj: Mapping[str, Any]) -> Delta | None:
        """Stores the object unless the cache already holds a newer version of it.

        Objects arrive from the watch and, right after our own writes, from the write's response
        (a mutation cache: the next reconcile then starts from what we wrote, not from a stale copy
        that would only earn a 409). A watch event older than such an object is not a step back.
        """
        frozen = freeze(obj)
        key = object_key(frozen)
        with self._lock:
            old = self._items.get(key)
            if old is not None and _older(frozen, old):
                return None
            self._put(key, old, frozen)
        return Delta("ADDED" if old is None else "MODIFIED", old, frozen)

    def delete(self, obj: Mapping[str, Any]) -> Delta | None:
        key = object_key(obj)
        with self._lock:
            old = self._remove(key)
        return None if old is None else Delta("DELETED", old, None)

    def replace(self, namespace: str | None, objects: Iterable[Mapping[str, Any]]) -> builtins.list[Delta]:
        """Swaps in a fresh LIST for one namespace (all when None) and reports what changed.

        Objects that vanished while the watch was down come back as DELETED deltas, so handlers
        hear about deletions they would otherwise have missed.
        """
        fresh = {object_key(f): f for f in (freeze(o) for o in objects)}
        deltas: builtins.list[Delta] = []
        with self._lock:
            scope = [k for k in self._items if namespace is None or k[0] == namespace]
            for key in scope:
                if key not in fresh:
                    gone = self._remove(key)
                    deltas.append(Delta("DELETED", gone, None))
            for key, obj in fresh.items():
                old = self._items.get(key)
                if old is not None and _resource_version(old) == _resource_version(obj):
                    continue
                self._put(key, old, obj)
                deltas.append(Delta("ADDED" if old is None else "MODIFIED", old, obj))
        return deltas

    def drop_namespace(self, namespace: str) -> int:
        with self._lock:
            keys = [k for k in self._items if k[0] == namespace]
            for key in keys:
                self._remove(key)
        return len(keys)

    def get(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self._items.get((namespace, name))

    def list(self, namespace: str | None = None) -> builtins.list[Mapping[str, Any]]:
        if namespace is None:
            return builtins.list(self._items.values())
        return [v for k, v in builtins.list(self._items.items()) if k[0] == namespace]

    def by_index(self, index: str, value: str) -> builtins.list[Mapping[str, Any]]:
        found = (self._items.get(k) for k in self._indexes[index].get(value, ()))
        return [obj for obj in found if obj is not None]

    def keys(self) -> builtins.list[Key]:
        return builtins.list(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        return iter(self.list())


def _older(candidate: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """resourceVersions are opaque, but etcd's are integers; compare only when both are."""
    new, old = _resource_version(candidate), _resource_version(current)
    return new.isdigit() and old.isdigit() and int(new) < int(old)


def _resource_version(obj: Mapping[str, Any]) -> str:
    return str(metadata_of(obj).get("resourceVersion", ""))


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def strip_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """The default transform: managedFields and last-applied are large and never read by the operator."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
        annotations = meta.get("annotations")
        if isinstance(annotations, dict) and LAST_APPLIED in annotations:
            annotations.pop(LAST_APPLIED)
            if not annotations:
                meta.pop("annotations")
    return obj


def controller_owner_name(obj: Mapping[str, Any]) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller"):
            return str(ref.get("name"))
    return None
