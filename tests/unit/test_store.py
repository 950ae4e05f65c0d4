from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from controller.watchers.store import (
    LAST_APPLIED,
    Delta,
    FrozenDict,
    Store,
    freeze,
    strip_managed_fields,
    thaw,
)
from controller.watchers.transforms import session_of

OWNER = "by-owner"


def session_child(namespace: str, name: str, owner: str | None = None, rv: str = "1") -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "resourceVersion": rv,
        "labels": {"agentic-session": owner or name},
    }
    if owner is not None:
        meta["ownerReferences"] = [
            {
                "apiVersion": "vteam.ambient-code/v1alpha1",
                "kind": "AgenticSession",
                "name": owner,
                "uid": f"uid-{owner}",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "status": {"conditions": [{"type": "Complete", "status": "True"}], "active": 0},
    }


def sample() -> dict[str, Any]:
    return session_child("team-a", "s1-runner", owner="s1")


def test_freeze_thaw_round_trip() -> None:
    original = sample()
    frozen = freeze(original)
    assert type(frozen) is FrozenDict
    assert isinstance(frozen["status"]["conditions"], tuple)
    thawed = thaw(frozen)
    assert thawed == original
    assert type(thawed) is dict
    assert type(thawed["metadata"]["ownerReferences"]) is list
    assert type(thawed["metadata"]["ownerReferences"][0]) is dict


def test_freeze_shares_equal_short_strings_but_not_resource_versions_or_long_text() -> None:
    def decoded(uid: str) -> Any:
        # json.loads builds new string objects, as an informer's decoder does for every event.
        return json.loads(json.dumps({"uid": uid, "rv": "12345", "prompt": "p" * 200}))

    first, second = freeze(decoded("uid-1")), freeze(decoded("uid-1"))
    assert first["uid"] is second["uid"]
    assert first["rv"] == second["rv"] and first["rv"] is not second["rv"]
    assert first["prompt"] == second["prompt"] and first["prompt"] is not second["prompt"]


def test_freeze_is_idempotent() -> None:
    frozen = freeze(sample())
    assert freeze(frozen) is frozen


def _ior(d: Any) -> None:
    d |= {"kind": "Pod"}


MUTATIONS: list[tuple[str, Callable[[Any], object]]] = [
    ("setitem", lambda d: d.__setitem__("kind", "Pod")),
    ("delitem", lambda d: d.__delitem__("kind")),
    ("update", lambda d: d.update(kind="Pod")),
    ("pop", lambda d: d.pop("kind")),
    ("popitem", lambda d: d.popitem()),
    ("clear", lambda d: d.clear()),
    ("setdefault", lambda d: d.setdefault("extra", 1)),
    ("ior", _ior),
    ("nested setitem", lambda d: d["metadata"]["labels"].__setitem__("x", "y")),
    ("nested in tuple", lambda d: d["metadata"]["ownerReferences"][0].__setitem__("controller", False)),
]


@pytest.mark.parametrize("mutate", [pytest.param(m, id=name) for name, m in MUTATIONS])
def test_every_mutation_of_a_frozen_object_raises(mutate: Callable[[Any], object]) -> None:
    frozen = freeze(sample())
    before = thaw(frozen)
    with pytest.raises(TypeError, match="read-only"):
        mutate(frozen)
    assert thaw(frozen) == before


def test_nested_lists_are_tuples() -> None:
    frozen = freeze(sample())
    assert isinstance(frozen["metadata"]["ownerReferences"], tuple)
    refs: Any = frozen["metadata"]["ownerReferences"]
    with pytest.raises(AttributeError):
        refs.append({"name": "other"})
    with pytest.raises(TypeError):
        refs[0] = {"name": "other"}


def test_deepcopy_gives_a_mutable_plain_dict() -> None:
    frozen = freeze(sample())
    copied = copy.deepcopy(frozen)
    assert type(copied) is dict
    assert type(copied["metadata"]) is dict
    assert type(copied["status"]["conditions"]) is list
    copied["metadata"]["labels"]["x"] = "y"
    copied["status"]["conditions"].append({"type": "Failed"})
    assert "x" not in frozen["metadata"]["labels"]
    assert len(frozen["status"]["conditions"]) == 1


def test_json_dumps_a_frozen_object() -> None:
    original = sample()
    assert json.loads(json.dumps(freeze(original))) == original


def _children_store() -> Store:
    return Store({OWNER: session_of})


def test_upsert_get_list_by_index() -> None:
    store = _children_store()
    first = store.upsert(session_child("team-a", "s1-runner", owner="s1"))
    assert first is not None and first.type == "ADDED" and first.old is None
    store.upsert(session_child("team-a", "s1-svc", owner="s1"))
    store.upsert(session_child("team-b", "s1-runner", owner="s1"))

    got = store.get("team-a", "s1-runner")
    assert got is not None and type(got) is FrozenDict
    assert store.get("team-a", "missing") is None
    assert {obj["metadata"]["name"] for obj in store.by_index(OWNER, "team-a/s1")} == {"s1-runner", "s1-svc"}
    assert len(store.by_index(OWNER, "team-b/s1")) == 1
    assert store.by_index(OWNER, "team-c/s1") == []
    assert len(store.list()) == 3
    assert len(store.list("team-a")) == 2
    assert len(store) == 3


def test_upsert_moves_index_entries() -> None:
    store = _children_store()
    store.upsert(session_child("team-a", "pod-1", owner="s1"))
    modified = store.upsert(session_child("team-a", "pod-1", owner="s2", rv="2"))
    assert modified is not None and modified.type == "MODIFIED"
    assert modified.old is not None and modified.old["metadata"]["resourceVersion"] == "1"
    assert store.by_index(OWNER, "team-a/s1") == []
    assert len(store.by_index(OWNER, "team-a/s2")) == 1


def test_delete() -> None:
    store = _children_store()
    store.upsert(session_child("team-a", "s1-runner", owner="s1"))
    gone = store.delete(session_child("team-a", "s1-runner", owner="s1"))
    assert gone is not None and gone.type == "DELETED" and gone.new is None
    assert store.get("team-a", "s1-runner") is None
    assert store.by_index(OWNER, "team-a/s1") == []
    assert store.delete(session_child("team-a", "s1-runner")) is None


def _summary(deltas: list[Delta]) -> set[tuple[str, str, str]]:
    result: set[tuple[str, str, str]] = set()
    for delta in deltas:
        obj = delta.new if delta.new is not None else delta.old
        assert obj is not None
        result.add((delta.type, obj["metadata"]["namespace"], obj["metadata"]["name"]))
    return result


def test_replace_reports_what_changed_in_one_namespace() -> None:
    store = _children_store()
    for name in ("same", "changed", "vanished"):
        store.upsert(session_child("team-a", name, owner="s1"))
    store.upsert(session_child("team-b", "other", owner="s1"))

    deltas = store.replace(
        "team-a",
        [
            session_child("team-a", "same", owner="s1"),
            session_child("team-a", "changed", owner="s2", rv="2"),
            session_child("team-a", "new", owner="s1"),
        ],
    )

    assert _summary(deltas) == {
        ("MODIFIED", "team-a", "changed"),
        ("ADDED", "team-a", "new"),
        ("DELETED", "team-a", "vanished"),
    }
    modified = next(d for d in deltas if d.type == "MODIFIED")
    assert modified.old is not None and modified.old["metadata"]["resourceVersion"] == "1"
    assert store.get("team-b", "other") is not None
    assert store.get("team-a", "vanished") is None
    assert {o["metadata"]["name"] for o in store.by_index(OWNER, "team-a/s1")} == {"same", "new"}
    assert {o["metadata"]["name"] for o in store.by_index(OWNER, "team-a/s2")} == {"changed"}
    assert len(store.by_index(OWNER, "team-b/s1")) == 1


def test_replace_keeps_the_cached_object_when_resource_version_is_unchanged() -> None:
    store = _children_store()
    store.upsert(session_child("team-a", "same", owner="s1"))
    cached = store.get("team-a", "same")
    assert store.replace("team-a", [session_child("team-a", "same", owner="s1")]) == []
    assert store.get("team-a", "same") is cached


def test_replace_all_namespaces() -> None:
    store = _children_store()
    store.upsert(session_child("team-a", "one"))
    store.upsert(session_child("team-b", "two"))
    deltas = store.replace(None, [session_child("team-b", "two")])
    assert _summary(deltas) == {("DELETED", "team-a", "one")}
    assert store.keys() == [("team-b", "two")]


def test_drop_namespace() -> None:
    store = _children_store()
    store.upsert(session_child("team-a", "one", owner="s1"))
    store.upsert(session_child("team-a", "two", owner="s1"))
    store.upsert(session_child("team-b", "three", owner="s1"))
    assert store.drop_namespace("team-a") == 2
    assert store.list("team-a") == []
    assert store.by_index(OWNER, "team-a/s1") == []
    assert len(store.by_index(OWNER, "team-b/s1")) == 1
    assert store.drop_namespace("team-a") == 0


def test_strip_managed_fields_keeps_other_annotations() -> None:
    obj: dict[str, Any] = {
        "metadata": {
            "name": "s1",
            "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
            "annotations": {
                LAST_APPLIED: '{"kind":"AgenticSession"}',
                "ambient-code.io/desired-phase": "Running",
            },
        }
    }
    stripped = strip_managed_fields(obj)
    assert stripped["metadata"] == {"name": "s1", "annotations": {"ambient-code.io/desired-phase": "Running"}}


def test_strip_managed_fields_drops_emptied_annotations() -> None:
    obj: dict[str, Any] = {"metadata": {"name": "s1", "annotations": {LAST_APPLIED: "{}"}}}
    assert strip_managed_fields(obj) == {"metadata": {"name": "s1"}}


def test_strip_managed_fields_leaves_objects_without_them() -> None:
    obj: dict[str, Any] = {"metadata": {"name": "s1", "annotations": {}}}
    assert strip_managed_fields(obj) == {"metadata": {"name": "s1", "annotations": {}}}
    assert strip_managed_fields({"kind": "Status"}) == {"kind": "Status"}


def test_upsert_never_steps_back_to_an_older_version() -> None:
    """What a write returned may be cached before the watch delivers older events of the object."""
    store = _children_store()
    store.upsert(session_child("team-a", "pod-1", owner="s1", rv="7"))
    assert store.upsert(session_child("team-a", "pod-1", owner="s2", rv="5")) is None
    cached = store.get("team-a", "pod-1")
    assert cached is not None and cached["metadata"]["resourceVersion"] == "7"
    same = store.upsert(session_child("team-a", "pod-1", owner="s1", rv="7"))
    assert same is not None and same.type == "MODIFIED", "the watch's copy of our own write is still news"
    newer = store.upsert(session_child("team-a", "pod-1", owner="s1", rv="8"))
    assert newer is not None and newer.type == "MODIFIED"
