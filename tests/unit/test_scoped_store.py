"""The cluster-wide store: namespaces join and leave the scope without a LIST or a watch restart."""

from __future__ import annotations

from typing import Any

from controller.watchers.scoped_store import ScopedStore


def obj(namespace: str, name: str, rv: str = "1", session: str = "") -> dict[str, Any]:
    labels = {"session": session} if session else {}
    return {"metadata": {"namespace": namespace, "name": name, "resourceVersion": rv, "labels": labels}}


def by_session(o: Any) -> list[str]:
    session = o["metadata"]["labels"].get("session")
    return [session] if session else []


def names(store: ScopedStore, namespace: str | None = None) -> set[tuple[str, str]]:
    return {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in store.list(namespace)}


def test_unrestricted_store_keeps_everything() -> None:
    store = ScopedStore()
    store.upsert(obj("a", "x"))
    store.replace("b", [obj("b", "y")])
    assert names(store) == {("a", "x"), ("b", "y")}
    assert store.manage("c") == [] and store.unmanage("a") == []
    assert len(store) == 2


def test_objects_of_unmanaged_namespaces_are_parked_not_visible() -> None:
    store = ScopedStore({"s": by_session})
    store.restrict(["a"])
    assert store.upsert(obj("a", "x")) is not None
    assert store.upsert(obj("b", "y", session="b/s")) is None  # no delta: handlers hear nothing
    assert names(store) == {("a", "x")}
    assert store.get("b", "y") is None and store.by_index("s", "b/s") == []
    assert store.parked() == 1
    assert store.delete(obj("b", "y")) is None
    assert store.parked() == 0


def test_cluster_wide_list_routes_each_item() -> None:
    store = ScopedStore()
    store.restrict(["a"])
    store.upsert(obj("a", "gone"))
    deltas = store.replace(None, iter([obj("a", "x"), obj("b", "y"), obj("c", "z")]))
    assert sorted((d.type, (d.new or d.old or {})["metadata"]["name"]) for d in deltas) == [
        ("ADDED", "x"),
        ("DELETED", "gone"),
    ]
    assert names(store) == {("a", "x")}
    assert store.parked() == 2


def test_manage_moves_parked_objects_in_as_added_with_their_indexes() -> None:
    store = ScopedStore({"s": by_session})
    store.restrict([])
    store.replace(None, [obj("b", "y", session="b/s"), obj("b", "z"), obj("c", "w")])
    deltas = store.manage("b")
    assert sorted(d.type for d in deltas) == ["ADDED", "ADDED"]
    assert names(store) == {("b", "y"), ("b", "z")}
    assert [o["metadata"]["name"] for o in store.by_index("s", "b/s")] == ["y"]
    assert store.manage("b") == []  # already managed
    # Later events of the namespace now reach the store.
    assert store.upsert(obj("b", "y", rv="2", session="b/s")) is not None


def test_unmanage_parks_objects_as_deleted_and_manage_brings_them_back() -> None:
    store = ScopedStore({"s": by_session})
    store.restrict(["a", "b"])
    store.replace(None, [obj("a", "x"), obj("b", "y", session="b/s")])
    deltas = store.unmanage("b")
    assert [(d.type, d.old is not None and d.old["metadata"]["name"]) for d in deltas] == [("DELETED", "y")]
    assert names(store) == {("a", "x")} and store.by_index("s", "b/s") == []
    assert store.parked() == 1
    # Changes while out of scope are kept aside, and the newest version comes back.
    store.upsert(obj("b", "y", rv="5", session="b/s"))
    back = store.manage("b")
    assert [d.new["metadata"]["resourceVersion"] for d in back if d.new is not None] == ["5"]
    assert store.unmanage("zzz") == []
