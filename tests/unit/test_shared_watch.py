"""Several caches of one kind fed by one informer: each keeps, trims and hears only its own."""

from __future__ import annotations

from typing import Any

import pytest

from controller.config import OperatorConfig
from controller.operator import build
from controller.resources import CONFIGMAPS, ROLES, SECRETS
from controller.watchers import kinds, selectors
from controller.watchers.cache import KindCache, KindSpec
from controller.watchers.informer import Informer, WatchSettings
from controller.watchers.quarantine import rejection
from controller.watchers.store import Delta, metadata_of

MANAGED = "app.kubernetes.io/managed-by=agentic-operator"


def secret(name: str, rv: str = "1", namespace: str = "ns", **labels: str) -> dict[str, Any]:
    meta = {"name": name, "namespace": namespace, "resourceVersion": rv, "labels": labels}
    return {"metadata": meta, "data": {"token": "c2VjcmV0"}}


class _Listing(list[dict[str, Any]]):
    metadata = {"resourceVersion": "10"}


class _Kube:
    """Serves `items` to every LIST; counts the LISTs (one per shared informer, not per cache)."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.lists = 0

    def stream_list(self, *args: Any, **kwargs: Any) -> _Listing:
        self.lists += 1
        return _Listing(self.items)


class _Recorded:
    def __init__(self) -> None:
        self.deltas: list[tuple[str, str]] = []

    def __call__(self, delta: Delta) -> None:
        obj = delta.new if delta.new is not None else delta.old
        self.deltas.append((delta.type, str(metadata_of(obj or {}).get("name"))))

    def take(self) -> list[tuple[str, str]]:
        taken, self.deltas = self.deltas, []
        return taken


def _named(*names: str) -> Any:
    return lambda obj: metadata_of(obj).get("name") in names


def _no_data(obj: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": dict(obj["metadata"])}


def _shared(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[_Kube, KindCache, KindCache, Informer, _Recorded, _Recorded]:
    """A leader keeping two Secrets by name and a follower keeping the MANAGED ones, data dropped."""
    monkeypatch.setattr(Informer, "start", lambda self: None)
    kube = _Kube()
    settings = WatchSettings()
    leader = KindCache(kube, KindSpec(SECRETS, keep=_named("platform", "both")), settings)  # type: ignore[arg-type]
    follower = KindCache(kube, KindSpec(SECRETS, label_selector=MANAGED, transform=_no_data), settings)  # type: ignore[arg-type]
    follower.follow(leader)
    heard_by_leader, heard_by_follower = _Recorded(), _Recorded()
    leader.add_handler(heard_by_leader)
    follower.add_handler(heard_by_follower)
    follower.start_namespace("ns")  # starts the leader's watch of the scope
    leader.start_namespace("ns")  # already started: no second informer
    informer = leader.informer("ns")
    assert informer is not None
    return kube, leader, follower, informer, heard_by_leader, heard_by_follower


def test_one_informer_feeds_both_caches_and_reports_its_state_to_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kube, leader, follower, informer, _, _ = _shared(monkeypatch)
    assert leader.informers() == follower.informers() == [informer]
    assert informer.label_selector is None, "the shared query is the leader's (the broader one)"
    assert not leader.synced() and not follower.synced()
    informer._list("initial")
    assert kube.lists == 1 and leader.synced() and follower.synced()


def test_each_cache_keeps_only_what_its_own_query_selects(monkeypatch: pytest.MonkeyPatch) -> None:
    kube, leader, follower, informer, heard_by_leader, heard_by_follower = _shared(monkeypatch)
    kube.items = [
        secret("platform"),
        secret("token", **{"app.kubernetes.io/managed-by": "agentic-operator"}),
        secret("both", **{"app.kubernetes.io/managed-by": "agentic-operator"}),
        secret("neither", **{"app.kubernetes.io/managed-by": "someone-else"}),
    ]
    informer._list("initial")
    assert sorted(o["metadata"]["name"] for o in leader.list()) == ["both", "platform"]
    assert sorted(o["metadata"]["name"] for o in follower.list()) == ["both", "token"]
    assert leader.get("ns", "both")["data"], "each cache has its own transform"  # type: ignore[index]
    assert "data" not in follower.get("ns", "both")  # type: ignore[operator]
    assert sorted(heard_by_leader.take()) == [("ADDED", "both"), ("ADDED", "platform")]
    assert sorted(heard_by_follower.take()) == [("ADDED", "both"), ("ADDED", "token")]

    informer._handle("ADDED", secret("token-2", "11", **{"app.kubernetes.io/managed-by": "agentic-operator"}))
    assert heard_by_leader.take() == [] and heard_by_follower.take() == [("ADDED", "token-2")]
    # The label leaves the follower's selector: gone from the follower, as the server reports it.
    informer._handle("MODIFIED", secret("both", "12"))
    assert heard_by_leader.take() == [("MODIFIED", "both")]
    assert heard_by_follower.take() == [("DELETED", "both")] and follower.get("ns", "both") is None
    informer._handle("DELETED", secret("platform", "13"))
    assert heard_by_leader.take() == [("DELETED", "platform")] and heard_by_follower.take() == []
    assert informer.resource_version == "13"


def test_a_relist_reports_what_vanished_to_each_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    kube, leader, follower, informer, heard_by_leader, heard_by_follower = _shared(monkeypatch)
    managed = {"app.kubernetes.io/managed-by": "agentic-operator"}
    kube.items = [secret("platform"), secret("token", **managed), secret("both", **managed)]
    informer._list("initial")
    heard_by_leader.take(), heard_by_follower.take()
    kube.items = [secret("both", "20", **managed)]  # after 410: two vanished, one changed
    informer._list("gone")
    assert sorted(heard_by_leader.take()) == [("DELETED", "platform"), ("MODIFIED", "both")]
    assert sorted(heard_by_follower.take()) == [("DELETED", "token"), ("MODIFIED", "both")]
    assert [o["metadata"]["name"] for o in leader.list()] == ["both"]
    assert [o["metadata"]["name"] for o in follower.list()] == ["both"]


def test_an_object_one_cache_cannot_transform_is_quarantined_in_that_cache_only() -> None:
    kube, settings = _Kube(), WatchSettings()

    def failing(obj: dict[str, Any]) -> dict[str, Any]:
        raise ValueError("a shape no transform expected")

    leader = KindCache(kube, KindSpec(SECRETS), settings)  # type: ignore[arg-type]
    follower = KindCache(kube, KindSpec(SECRETS, transform=failing), settings)  # type: ignore[arg-type]
    follower.follow(leader)
    kube.items = [secret("odd"), secret("plain")]
    informer = Informer(kube, SECRETS, "ns", sinks=[leader.sink(), follower.sink()])  # type: ignore[arg-type]
    informer._list("initial")
    assert rejection(leader.get("ns", "odd")) is None and leader.get("ns", "odd")["data"]  # type: ignore[index]
    assert (
        rejection(follower.get("ns", "odd")) is not None
        and rejection(follower.get("ns", "plain")) is not None
    )
    assert len(leader.list()) == len(follower.list()) == 2, "the rest of the LIST goes on"


def test_a_follower_stopping_a_namespace_forgets_its_objects_and_leaves_the_watch_to_the_leader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kube, leader, follower, informer, _, _ = _shared(monkeypatch)
    kube.items = [secret("both", **{"app.kubernetes.io/managed-by": "agentic-operator"})]
    informer._list("initial")
    follower.stop_namespace("ns")
    follower.stop()
    assert follower.list() == [] and leader.informers() == [informer] and not informer._stop.is_set()
    leader.stop_namespace("ns")
    assert leader.informers() == follower.informers() == [] and informer._stop.is_set()


def test_a_follower_never_asks_for_more_than_the_shared_watch_carries() -> None:
    kube, settings = object(), WatchSettings()

    def cache(spec: KindSpec) -> KindCache:
        return KindCache(kube, spec, settings)  # type: ignore[arg-type]

    with pytest.raises(ValueError, match="broader"):
        cache(KindSpec(SECRETS)).follow(cache(KindSpec(SECRETS, label_selector=MANAGED)))
    with pytest.raises(ValueError, match="broader"):
        cache(KindSpec(CONFIGMAPS)).follow(cache(KindSpec(CONFIGMAPS, field_selector="metadata.name=a")))
    with pytest.raises(ValueError, match="does not carry"):
        cache(KindSpec(SECRETS)).follow(cache(KindSpec(SECRETS, metadata_only=True)))
    with pytest.raises(ValueError, match="does not carry"):
        cache(KindSpec(ROLES)).follow(cache(KindSpec(SECRETS)))
    leader = cache(KindSpec(ROLES, label_selector=MANAGED))
    cache(KindSpec(ROLES, label_selector=kinds.PROJECT_OBJECTS)).follow(leader)
    with pytest.raises(ValueError, match="follows"):
        cache(KindSpec(ROLES, label_selector=MANAGED)).follow(leader.followers[0])


def test_the_operator_opens_one_watch_per_kind_for_the_caches_that_share_it() -> None:
    manager, ctx = build(OperatorConfig(), None)  # type: ignore[arg-type]
    leaders = {name: cache for name, cache in manager.caches.items() if cache.leader is None}
    kinds_watched = [cache.kind for cache in leaders.values()]
    # In the managed namespaces: at most two watches per kind. Secrets share one (runner tokens and
    # the platform's, both metadata only); Roles, RoleBindings and ServiceAccounts have two (the
    # runners' as metadata, the projects loop's few whole); ConfigMaps are the CA bundles.
    counts = {kind: kinds_watched.count(kind) for kind in kinds_watched}
    assert max(counts.values()) <= 2, counts
    assert counts["Secret"] == 1 and counts["Role"] == counts["RoleBinding"] == counts["ServiceAccount"] == 2
    assert manager.caches["secrets"].leader is manager.caches["platform-secrets"]
    # In the backend namespace, the registry shares the models manifest's watch.
    assert ctx.platform.registry_configmaps is not None
    assert ctx.platform.registry_configmaps.leader is getattr(ctx.models, "cache", None)


def test_the_registry_keeps_its_own_watch_when_the_models_live_elsewhere() -> None:
    _, ctx = build(OperatorConfig(models_namespace="models-elsewhere"), None)  # type: ignore[arg-type]
    assert ctx.platform.registry_configmaps is not None and ctx.platform.registry_configmaps.leader is None


@pytest.mark.parametrize(
    ("selector", "labels", "selected"),
    [
        ("", {}, True),
        ("a=1", {"a": "1"}, True),
        ("a=1", {"a": "2"}, False),
        ("a==1", {"a": "1"}, True),
        ("a=1", {}, False),
        ("a!=1", {"a": "2"}, True),
        ("a!=1", {}, True),
        ("a!=1", {"a": "1"}, False),
        ("a in (1, 2)", {"a": "2"}, True),
        ("a in (1,2)", {"a": "3"}, False),
        ("a in (1,2)", {}, False),
        ("a notin (1,2)", {"a": "3"}, True),
        ("a notin (1,2)", {}, True),
        ("a notin (1,2)", {"a": "1"}, False),
        ("a", {"a": ""}, True),
        ("a", {"b": "1"}, False),
        ("!a", {"b": "1"}, True),
        ("!a", {"a": "1"}, False),
        ("a=1, b in (x,y), !c", {"a": "1", "b": "y"}, True),
        ("a=1,b in (x,y),!c", {"a": "1", "b": "y", "c": ""}, False),
        ("example.com/a=v-1.2_3,b", {"example.com/a": "v-1.2_3", "b": "z"}, True),
        (kinds.PROJECT_OBJECTS, {"app.kubernetes.io/managed-by": "agentic-operator"}, False),
    ],
)
def test_label_matcher_selects_as_the_api_server_does(
    selector: str, labels: dict[str, str], selected: bool
) -> None:
    assert selectors.label_matcher(selector)({"metadata": {"labels": labels}}) is selected


def test_label_matcher_reads_objects_without_labels_and_refuses_what_it_does_not_understand() -> None:
    assert selectors.label_matcher("!a")({"metadata": {}}) and selectors.label_matcher("!a")({})
    assert not selectors.label_matcher("a")({"metadata": {"labels": None}})
    for unsupported in ("a>1", "a in 1", "a=(1)", "a = b = c"):
        with pytest.raises(selectors.SelectorError):
            selectors.label_matcher(unsupported)


def test_narrower_selectors_repeat_every_term_of_the_broader() -> None:
    assert selectors.narrower_or_equal(kinds.PROJECT_OBJECTS, MANAGED)
    assert selectors.narrower_or_equal(MANAGED, None) and selectors.narrower_or_equal(MANAGED, MANAGED)
    assert not selectors.narrower_or_equal(MANAGED, kinds.PROJECT_OBJECTS)
    assert not selectors.narrower_or_equal(None, MANAGED)


def test_field_matcher_selects_by_name_and_namespace_only() -> None:
    by_name = selectors.field_matcher("metadata.name=agent-registry")
    assert by_name({"metadata": {"name": "agent-registry"}}) and not by_name({"metadata": {"name": "x"}})
    assert selectors.field_matcher("metadata.namespace!=a,metadata.name=n")({"metadata": {"name": "n"}})
    with pytest.raises(selectors.SelectorError):
        selectors.field_matcher("status.phase=Running")
