"""Cluster-wide mode against a real API server: one watch per kind, namespaces only change a filter.

A kind cache on labelled ConfigMaps runs under a NamespaceScope whose selector is a label unique to
the test. Labelling and unlabelling namespaces must make their objects appear in and disappear from
the cache (handlers hear ADDED / DELETED, the scope's callbacks fire), while the kind keeps its one
cluster-wide watch: no new informer, no LIST, no watch restart.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator

import pytest

from controller.api_error import ApiError
from controller.kube import Kube
from controller.resources import NAMESPACES
from controller.watchers.cache import KindCache, KindSpec, NamespaceScope
from controller.watchers.informer import WatchSettings
from tests.e2e.conftest import OperatorFactory, create_session, wait_session
from tests.e2e.framework_support import CONFIGMAPS, DeltaRecorder, sample
from tests.e2e.helpers import wait_for

OBJECT_LABEL = "framework-test"


@pytest.fixture
def second_namespace(kube: Kube, namespace: str) -> Iterator[str]:
    name = f"{namespace[:50]}-b"
    kube.create(NAMESPACES, None, {"metadata": {"name": name}})
    try:
        yield name
    finally:
        try:
            kube.delete(NAMESPACES, None, name)
        except ApiError as exc:
            if exc.status != 404:
                raise


def _label(kube: Kube, namespace: str, key: str, value: str | None) -> None:
    kube.patch(NAMESPACES, None, namespace, {"metadata": {"labels": {key: value}}})


def _configmap(kube: Kube, namespace: str, name: str, value: str) -> None:
    body = {"metadata": {"name": name, "labels": {OBJECT_LABEL: value}}, "data": {"k": "v"}}
    kube.create(CONFIGMAPS, namespace, body)


def _names(cache: KindCache, namespace: str) -> set[str]:
    return {str(o["metadata"]["name"]) for o in cache.list(namespace)}


def _watch_churn() -> tuple[float, float]:
    """Cluster-wide ConfigMap LISTs and watch re-opens so far (namespaced informers are "<ns>")."""
    relists = sample("agentic_operator_watch_relists_total", kind="ConfigMap", namespace="*")
    restarts = sample("agentic_operator_watch_restarts_total", kind="ConfigMap", namespace="*")
    return relists, restarts


def test_labelling_namespaces_moves_objects_without_touching_the_watch(
    kube: Kube, namespace: str, second_namespace: str
) -> None:
    key = f"scope-test-{secrets.token_hex(3)}"
    a, b = namespace, second_namespace
    _label(kube, a, key, "yes")
    _configmap(kube, a, "in-a", key)
    _configmap(kube, b, "in-b", key)

    cache = KindCache(kube, KindSpec(CONFIGMAPS, label_selector=f"{OBJECT_LABEL}={key}"), WatchSettings())
    recorder = DeltaRecorder()
    cache.add_handler(recorder)
    added: list[str] = []
    removed: list[str] = []
    scope = NamespaceScope(
        kube,
        [cache],
        selector=f"{key}=yes",
        on_namespace_added=added.append,
        on_namespace_removed=removed.append,
    )
    scope.start()
    try:
        assert scope.wait_for_sync(30), "caches did not sync within 30s"
        informers = cache.informers()
        assert [i.namespace for i in informers] == [None], "one cluster-wide watch per kind"
        assert _names(cache, a) == {"in-a"} and _names(cache, b) == set()
        assert added == [a]
        assert cache.store.parked() == 1  # in-b, out of scope
        churn = _watch_churn()
        threads = threading.active_count()

        _label(kube, b, key, "yes")
        wait_for(lambda: _names(cache, b) == {"in-b"}, timeout=20, message="b's object joins the cache")
        assert "in-b" in recorder.names("ADDED")
        assert cache.store.parked() == 0
        _configmap(kube, b, "in-b-later", key)
        wait_for(lambda: "in-b-later" in _names(cache, b), timeout=20, message="b's new object is seen")

        _label(kube, a, key, None)
        wait_for(lambda: _names(cache, a) == set(), timeout=20, message="a's object leaves the cache")
        assert "in-a" in recorder.names("DELETED")
        assert removed == [a]
        assert cache.store.parked() == 1
        _configmap(kube, a, "in-a-while-out", key)
        _label(kube, a, key, "yes")
        wait_for(
            lambda: _names(cache, a) == {"in-a", "in-a-while-out"},
            timeout=20,
            message="a's objects, including one made while it was out, come back",
        )
        assert added == [a, b, a]
        assert cache.store.parked() == 0

        assert cache.informers() == informers, "no informer was started or stopped"
        assert _watch_churn() == churn, "no LIST and no watch restart"
        assert threading.active_count() <= threads
    finally:
        scope.stop()


def test_operator_in_selector_mode_follows_the_namespace_label(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    """The operator's default mode: a session is reconciled once its namespace is labelled, and
    forgotten once unlabelled, over watch connections that neither grow with namespaces nor restart.

    A kind read by several caches has one connection, shared by them (Secrets: the runner tokens and
    the platform's Secrets by name), plus one in the backend namespace where it is watched there too
    (the copies' sources); none per namespace."""
    key = f"scope-test-{secrets.token_hex(3)}"
    create_session(kube, "scoped", namespace)
    operator = start_operator(args=["--namespace-selector", f"{key}=yes"])
    assert operator.metric("agentic_operator_cached_objects", kind="AgenticSession") == 0

    def connections() -> dict[str, float]:
        return {
            labels["kind"]: value
            for labels, value in operator.metrics()["agentic_operator_watch_connections"]
        }

    # Watching already, with no namespace managed: one connection per kind, not per namespace.
    before = connections()
    assert before and all(before[kind] == 1 for kind in ("AgenticSession", "Job", "Pod", "Namespace")), before
    _label(kube, namespace, key, "yes")
    wait_session(kube, namespace, "scoped", lambda s: bool((s.get("status") or {}).get("phase")), 30)
    # Every watch is open once a session is handled (the platform's ConfigMaps are watched from
    # the moment the loops start, which may be after readiness).
    during = connections()
    assert all(during[kind] == before[kind] for kind in ("AgenticSession", "Job", "Pod", "Namespace")), during
    # At most two watches of a kind, however many caches read it (the runner tokens and the
    # platform's Secrets share one; the copies' sources in the backend namespace are the other).
    assert max(during.values()) <= 2, during
    restarts = operator.metric("agentic_operator_watch_restarts_total")

    _label(kube, namespace, key, None)
    wait_for(
        lambda: operator.metric("agentic_operator_cached_objects", kind="AgenticSession") == 0,
        timeout=20,
        message="the session leaves the operator's cache",
    )
    assert operator.metric("agentic_operator_cached_objects", kind="Job") == 0
    # Held aside, not lost: sessions of other tests' namespaces are there too, so at least this one.
    assert operator.metric("agentic_operator_parked_objects", kind="AgenticSession") >= 1
    assert operator.metric("agentic_operator_watch_restarts_total") == restarts
    assert connections() == during
    relists = operator.metrics()["agentic_operator_watch_relists_total"]
    # One initial LIST per watch connection, none since: no namespace change made a relist.
    listed: dict[str, float] = {}
    for labels, value in relists:
        assert labels["cause"] == "initial", relists
        listed[labels["kind"]] = listed.get(labels["kind"], 0) + value
    assert listed == {kind: count for kind, count in during.items() if count}, relists
