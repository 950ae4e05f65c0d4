"""Copied Secrets: when a copy is written, kept or deleted, decided from the caches."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest

from controller import conditions as c
from controller.config import OperatorConfig
from controller.platform.secrets import ANNOTATION_COPIED_FROM, ANNOTATION_SOURCE_HASH, data_hash
from controller.reconcilers import copied_secrets
from controller.reconcilers.context import Context

NAME = "ambient-admin-langfuse-secret"
SOURCE = {
    "metadata": {"name": NAME, "namespace": "be", "labels": {"a": "b"}},
    "type": "Opaque",
    "data": {"K": "dg=="},
}


class FakeCache:
    def __init__(self, objects: list[dict[str, Any]]):
        self.objects = objects

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        for obj in self.objects:
            if (obj["metadata"].get("namespace"), obj["metadata"]["name"]) == (namespace, name):
                return obj
        return None

    def list(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return [o for o in self.objects if namespace is None or o["metadata"].get("namespace") == namespace]


class FakeKube:
    def __init__(self, stored: dict[str, Any] | None = None):
        self.calls: list[tuple[str, Any]] = []
        self.stored = stored

    def create(self, resource: Any, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("create", body))
        return body

    def get_or_none(self, resource: Any, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("get", name))
        return self.stored

    def replace(self, resource: Any, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("replace", body))
        return body

    def delete_ignore_missing(self, resource: Any, namespace: str, name: str) -> bool:
        self.calls.append(("delete", name))
        return True


def _session(name: str, phase: str = "Running", uid: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "vteam.ambient-code/v1alpha1",
        "kind": "AgenticSession",
        "metadata": {"name": name, "namespace": "ns", "uid": uid or f"uid-{name}"},
        "status": {"phase": phase},
    }


def _copy(owners: list[str], digest: str | None = None, copied: bool = True) -> dict[str, Any]:
    annotations = {ANNOTATION_COPIED_FROM: f"be/{NAME}", ANNOTATION_SOURCE_HASH: digest or data_hash(SOURCE)}
    return {
        "metadata": {
            "name": NAME,
            "namespace": "ns",
            "annotations": annotations if copied else {},
            "ownerReferences": [{"uid": f"uid-{o}", "controller": i == 0} for i, o in enumerate(owners)],
        }
    }


def _ctx(
    kube: FakeKube, copies: list[dict[str, Any]], sessions: list[dict[str, Any]], sources: bool = True
) -> Context:
    platform = SimpleNamespace(
        namespace_secrets=FakeCache(copies), sources=FakeCache([SOURCE] if sources else [])
    )
    fake = SimpleNamespace(
        config=OperatorConfig(backend_namespace="be"),
        kube=kube,
        platform=platform,
        caches=SimpleNamespace(sessions=FakeCache(sessions)),
    )
    return cast(Context, fake)


def test_a_current_copy_owned_by_the_session_costs_no_request() -> None:
    kube = FakeKube()
    assert copied_secrets.ensure(_ctx(kube, [_copy(["a"])], []), _session("a"), NAME)
    assert kube.calls == []


def test_a_missing_copy_is_created_from_the_source() -> None:
    kube = FakeKube()
    assert copied_secrets.ensure(_ctx(kube, [], []), _session("a"), NAME)
    ((verb, body),) = kube.calls
    assert verb == "create"
    assert body["data"] == SOURCE["data"] and body["metadata"]["labels"] == {"a": "b"}
    assert body["metadata"]["annotations"][ANNOTATION_COPIED_FROM] == f"be/{NAME}"
    assert body["metadata"]["ownerReferences"][0]["uid"] == "uid-a"
    assert body["metadata"]["ownerReferences"][0]["controller"] is True


@pytest.mark.parametrize("cached", [_copy(["a"], digest="old"), _copy(["b"])], ids=["stale", "not-owned"])
def test_a_stale_or_foreign_copy_is_updated_and_gains_an_owner(cached: dict[str, Any]) -> None:
    stored = {**cached, "data": {"K": "b2xk"}}
    kube = FakeKube(stored)
    assert copied_secrets.ensure(_ctx(kube, [cached], []), _session("a"), NAME)
    verb, body = kube.calls[-1]
    assert verb == "replace" and body["data"] == SOURCE["data"]
    assert body["metadata"]["annotations"][ANNOTATION_SOURCE_HASH] == data_hash(SOURCE)
    owners = body["metadata"]["ownerReferences"]
    assert "uid-a" in [o["uid"] for o in owners]
    assert sum(1 for o in owners if o["controller"]) == 1


def test_the_namespaces_own_secret_is_used_as_it_is() -> None:
    kube = FakeKube()
    assert copied_secrets.ensure(
        _ctx(kube, [_copy([], copied=False)], [], sources=False), _session("a"), NAME
    )
    assert kube.calls == []


def test_no_source_means_not_available() -> None:
    kube = FakeKube()
    assert not copied_secrets.ensure(_ctx(kube, [], [], sources=False), _session("a"), NAME)
    assert kube.calls == []


@pytest.mark.parametrize(
    ("other_phase", "deleted"),
    [
        (c.RUNNING, False),
        (c.PENDING, False),
        (c.CREATING, False),
        ("", False),
        (c.STOPPED, True),
        (c.FAILED, True),
    ],
)
def test_release_counts_the_other_sessions(other_phase: str, deleted: bool) -> None:
    kube = FakeKube()
    sessions = [_session("a", c.STOPPED), _session("b", other_phase)]
    copied_secrets.release(_ctx(kube, [_copy(["a", "b"])], sessions), sessions[0])
    assert (("delete", NAME) in kube.calls) is deleted


def test_release_never_deletes_the_namespaces_own_secret() -> None:
    kube = FakeKube()
    copied_secrets.release(_ctx(kube, [_copy([], copied=False)], [_session("a", c.STOPPED)]), _session("a"))
    assert kube.calls == []


def test_a_session_that_used_no_copy_releases_nothing() -> None:
    kube = FakeKube()
    sessions = [_session("a", c.STOPPED), _session("b", c.STOPPED)]
    copied_secrets.release(_ctx(kube, [_copy(["b"])], sessions), sessions[0])
    assert kube.calls == []
