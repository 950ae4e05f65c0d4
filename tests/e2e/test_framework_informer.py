"""The Informer against a real API server: nothing is missed across every way a watch ends.

Each test runs an Informer on labelled ConfigMaps in its own namespace, records every delta its
handler gets, changes objects on the server meanwhile, and then checks that the store equals the
server's list and that every deletion reached the handler.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from controller.api_error import ApiError
from controller.kube import Kube, load_api_client
from controller.resources import JSON, Resource
from controller.streams import Listing
from controller.watchers.informer import Informer, WatchSettings
from controller.watchers.store import Store
from tests.conftest import Cluster
from tests.e2e.framework_support import (
    CONFIGMAPS,
    DeltaRecorder,
    PausableProxy,
    Seen,
    api_server_address,
    kube_via,
    sample,
    server_state,
    store_state,
    with_retries,
)
from tests.e2e.helpers import wait_for

LABEL = "framework-test"
SELECTOR = f"{LABEL}=informer"

InformerFactory = Callable[..., tuple[Informer, DeltaRecorder]]


def configmap(name: str, **data: str) -> JSON:
    return {"metadata": {"name": name, "labels": {LABEL: "informer"}}, "data": dict(data)}


@pytest.fixture
def start_informer(kube: Kube, namespace: str) -> Iterator[InformerFactory]:
    """Starts ConfigMap informers on this test's namespace; stops them at teardown."""
    started: list[Informer] = []

    def start(
        settings: WatchSettings | None = None, client: Kube | None = None, selector: str = SELECTOR
    ) -> tuple[Informer, DeltaRecorder]:
        recorder = DeltaRecorder()
        informer = Informer(
            client or kube,
            CONFIGMAPS,
            namespace,
            Store(),
            label_selector=selector,
            handlers=[recorder],
            settings=settings,
        )
        informer.start()
        started.append(informer)
        assert informer.synced.wait(30), "informer did not sync within 30s"
        return informer, recorder

    yield start
    for informer in started:
        informer.stop()
    for informer in started:
        informer.join(10)


def assert_converged(
    kube: Kube, informer: Informer, recorder: DeltaRecorder, namespace: str, deleted: set[str], timeout: float
) -> dict[str, str]:
    """The store equals the server's list, and every deleted name produced a DELETED delta."""
    wait_for(
        lambda: store_state(informer.store, namespace) == server_state(kube, CONFIGMAPS, namespace, SELECTOR),
        timeout=timeout,
        interval=0.3,
        message=f"store == server list in {namespace}",
    )
    missing = deleted - recorder.names("DELETED")
    assert not missing, f"no DELETED delta for {sorted(missing)}"
    return store_state(informer.store, namespace)


class ChurnWriter(threading.Thread):
    """Creates, updates and deletes ConfigMaps in a rolling window until told to stop."""

    def __init__(self, kube: Kube, namespace: str, prefix: str):
        super().__init__(name=f"churn-{prefix}", daemon=True)
        self.kube, self.namespace, self.prefix = kube, namespace, prefix
        self.written: set[tuple[str, str]] = set()
        self.deleted: set[str] = set()
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            index = 0
            while not self.halt.is_set():
                name = f"{self.prefix}-{index}"
                obj = self.kube.create(CONFIGMAPS, self.namespace, configmap(name, n="0"))
                self.written.add((name, obj["metadata"]["resourceVersion"]))
                if index >= 1:
                    prev = f"{self.prefix}-{index - 1}"
                    obj = self.kube.patch(CONFIGMAPS, self.namespace, prev, {"data": {"n": "1"}})
                    self.written.add((prev, obj["metadata"]["resourceVersion"]))
                if index >= 3:
                    old = f"{self.prefix}-{index - 3}"
                    self.kube.delete(CONFIGMAPS, self.namespace, old)
                    self.deleted.add(old)
                index += 1
                self.halt.wait(0.05)
        except BaseException as exc:
            self.error = exc


def test_nothing_missed_across_server_side_stream_closes(
    kube: Kube, namespace: str, start_informer: InformerFactory
) -> None:
    informer, recorder = start_informer(WatchSettings(min_timeout_seconds=2, max_timeout_seconds=3))
    closes_before = sample(
        "agentic_operator_watch_restarts_total", namespace=namespace, cause="server-closed"
    )
    writer = ChurnWriter(kube, namespace, "close")
    writer.start()
    time.sleep(10)
    writer.halt.set()
    writer.join(30)
    assert writer.error is None, f"writer failed: {writer.error!r}"
    assert len(writer.deleted) >= 10, f"the writer made too few changes: {len(writer.written)} writes"

    assert_converged(kube, informer, recorder, namespace, writer.deleted, timeout=30)
    closes = sample("agentic_operator_watch_restarts_total", namespace=namespace, cause="server-closed")
    assert closes - closes_before >= 2, f"the server closed the watch only {closes - closes_before} times"
    # Resuming from the last resourceVersion needs no relist, so every single write was delivered.
    assert sample("agentic_operator_watch_relists_total", namespace=namespace, cause="gone") == 0
    missed = writer.written - recorder.versions()
    assert not missed, f"{len(missed)} writes never reached the handler, e.g. {sorted(missed)[:5]}"


class GatedKube(Kube):
    """A Kube whose LISTs can be held at a gate, to keep an informer's watch down on purpose."""

    def __init__(self, cluster: Cluster):
        super().__init__(load_api_client(str(cluster.kubeconfig)))
        self.hold = threading.Event()
        self.held = threading.Event()
        self.release = threading.Event()
        self.list_versions: list[str | None] = []

    def stream_list(self, res: Resource, namespace: str | None = None, **kwargs: Any) -> Listing:
        self.list_versions.append(kwargs.get("resource_version"))
        if self.hold.is_set():
            self.held.set()
            self.release.wait(60)
        return super().stream_list(res, namespace, **kwargs)


def test_gone_relists_and_synthesizes_deletes(
    kube: Kube, cluster: Cluster, namespace: str, start_informer: InformerFactory
) -> None:
    created: dict[str, str] = {}
    for i in range(6):
        obj = kube.create(CONFIGMAPS, namespace, configmap(f"gone-{i}", n="0"))
        created[f"gone-{i}"] = obj["metadata"]["resourceVersion"]
    gated = GatedKube(cluster)
    informer, recorder = start_informer(client=gated)
    assert_converged(kube, informer, recorder, namespace, set(), timeout=30)
    relists_before = sample("agentic_operator_watch_relists_total", namespace=namespace, cause="gone")

    # A resourceVersion far outside the watch cache makes the next watch fail with 410 Gone; the
    # relist that follows is held at the gate, so the watch stays down while the server changes.
    gated.hold.set()
    try:
        for _ in range(3):
            informer.resource_version = "1"
            informer.restart_watch()
            if gated.held.wait(15):
                break
        assert gated.held.is_set(), "the informer never relisted after its watch got 410 Gone"

        kube.delete(CONFIGMAPS, namespace, "gone-0")
        kube.delete(CONFIGMAPS, namespace, "gone-1")
        kube.patch(CONFIGMAPS, namespace, "gone-2", {"data": {"n": "1"}})
        kube.create(CONFIGMAPS, namespace, configmap("gone-new", n="0"))
    finally:
        gated.hold.clear()
        gated.release.set()

    state = assert_converged(kube, informer, recorder, namespace, {"gone-0", "gone-1"}, timeout=30)
    # A watch DELETED event carries the deletion's resourceVersion; these carry the last one the
    # cache knew, so they were synthesized by the relist.
    deletes = {s for s in recorder.all() if s.type == "DELETED"}
    assert deletes == {Seen("DELETED", n, created[n]) for n in ("gone-0", "gone-1")}, deletes
    assert "gone-new" in recorder.names("ADDED")
    assert ("gone-2", state["gone-2"]) in recorder.versions()
    relists = sample("agentic_operator_watch_relists_total", namespace=namespace, cause="gone")
    assert relists > relists_before, "the relist after 410 Gone was not counted with cause=gone"
    # After an expired resourceVersion the relist must be a consistent read, not RV "0" from cache.
    assert gated.list_versions[0] == "0" and None in gated.list_versions[1:], gated.list_versions


def test_nothing_missed_across_an_api_server_restart(
    kube: Kube, cluster: Cluster, namespace: str, start_informer: InformerFactory
) -> None:
    if cluster.local is None:
        pytest.skip("restarting kube-apiserver needs --cluster=local")
    for i in range(4):
        kube.create(CONFIGMAPS, namespace, configmap(f"restart-{i}", n="0"))
    informer, recorder = start_informer()
    assert_converged(kube, informer, recorder, namespace, set(), timeout=30)
    restarts_before = sample("agentic_operator_watch_restarts_total", namespace=namespace)

    cluster.restart("kube-apiserver")

    deleted = {"restart-0", "restart-1"}
    for name in sorted(deleted):
        with_retries(functools.partial(kube.delete_ignore_missing, CONFIGMAPS, namespace, name))
    with_retries(lambda: kube.patch(CONFIGMAPS, namespace, "restart-2", {"data": {"n": "1"}}))
    for i in range(3):
        name = f"after-{i}"
        with_retries(functools.partial(_create_or_get, kube, namespace, name))

    state = assert_converged(kube, informer, recorder, namespace, deleted, timeout=90)
    assert set(state) == {"restart-2", "restart-3", "after-0", "after-1", "after-2"}
    assert ("restart-2", state["restart-2"]) in recorder.versions()
    restarts = sample("agentic_operator_watch_restarts_total", namespace=namespace)
    assert restarts > restarts_before, "the informer never noticed that the API server went away"
    assert informer.healthy()[0], informer.healthy()


def _create_or_get(kube: Kube, namespace: str, name: str) -> JSON:
    try:
        return kube.create(CONFIGMAPS, namespace, configmap(name, n="0"))
    except ApiError as exc:
        if not exc.already_exists:
            raise
        return kube.get(CONFIGMAPS, namespace, name)


def test_a_silently_stalled_stream_is_replaced(
    kube: Kube, cluster: Cluster, namespace: str, start_informer: InformerFactory
) -> None:
    host, port = api_server_address(cluster.kubeconfig)
    with PausableProxy(host, port) as proxy:
        proxied = kube_via(cluster.kubeconfig, proxy.url)
        kube.create(CONFIGMAPS, namespace, configmap("heartbeat", beat="0"))
        informer, _ = start_informer(WatchSettings(inactivity_timeout=3), client=proxied)

        # A steady trickle of events keeps a healthy stream from ever being quiet for 3 s, so the
        # inactivity restarts counted below come from the stall and not from an idle namespace.
        halt = threading.Event()

        def beat() -> None:
            count = 0
            while not halt.wait(0.3):
                count += 1
                patch = {"data": {"beat": str(count)}}
                with_retries(functools.partial(kube.patch, CONFIGMAPS, namespace, "heartbeat", patch))

        beater = threading.Thread(target=beat, name="heartbeat", daemon=True)
        beater.start()
        try:
            wait_for(
                lambda: (informer.store.get(namespace, "heartbeat") or {}).get("data", {}).get("beat") != "0",
                timeout=20,
                message="the informer sees heartbeat updates through the proxy",
            )
            stalls_before = sample(
                "agentic_operator_watch_restarts_total", namespace=namespace, cause="inactivity"
            )
            proxy.pause()
            kube.create(CONFIGMAPS, namespace, configmap("during-pause"))
            wait_for(
                lambda: (
                    sample("agentic_operator_watch_restarts_total", namespace=namespace, cause="inactivity")
                    > stalls_before
                ),
                timeout=20,
                message="the stalled stream is detected by the inactivity timeout",
            )
            assert informer.store.get(namespace, "during-pause") is None, "bytes passed a paused proxy"
            time.sleep(1)
            proxy.resume()
            kube.create(CONFIGMAPS, namespace, configmap("after-resume"))
            wait_for(
                lambda: (
                    informer.store.get(namespace, "during-pause") is not None
                    and informer.store.get(namespace, "after-resume") is not None
                ),
                timeout=40,
                message="objects created during and after the stall reach the informer",
            )
        finally:
            halt.set()
            beater.join(10)
        assert proxy.accepted >= 2, "the informer never opened a new connection"
        wait_for(
            lambda: (
                store_state(informer.store, namespace) == server_state(kube, CONFIGMAPS, namespace, SELECTOR)
            ),
            timeout=30,
            message="store == server list after the stall",
        )


def test_resource_version_advances_with_events_and_bookmarks(
    kube: Kube, namespace: str, start_informer: InformerFactory
) -> None:
    kube.create(CONFIGMAPS, namespace, configmap("marked", n="0"))
    # The API server sends a bookmark 2 s before a watch's timeout (and about once a minute), so a
    # short server timeout brings bookmarks within seconds.
    informer, recorder = start_informer(WatchSettings(min_timeout_seconds=5, max_timeout_seconds=6))
    list_rv = int(informer.resource_version)

    updated = kube.patch(CONFIGMAPS, namespace, "marked", {"data": {"n": "1"}})
    updated_rv = updated["metadata"]["resourceVersion"]
    wait_for(lambda: int(informer.resource_version) >= int(updated_rv), timeout=20, message="RV after update")
    assert int(informer.resource_version) > list_rv
    assert ("marked", updated_rv) in recorder.versions()

    # An object outside the label selector sends no event to this watch; only a bookmark can
    # carry its resourceVersion to the informer.
    bookmarks_before = sample("agentic_operator_watch_events_total", kind="ConfigMap", type="BOOKMARK")
    unrelated = kube.create(CONFIGMAPS, namespace, {"metadata": {"name": "unlabelled"}, "data": {}})
    unrelated_rv = int(unrelated["metadata"]["resourceVersion"])
    wait_for(
        lambda: int(informer.resource_version) >= unrelated_rv,
        timeout=30,
        message=f"a bookmark carrying resourceVersion >= {unrelated_rv}",
    )
    assert sample("agentic_operator_watch_events_total", kind="ConfigMap", type="BOOKMARK") > bookmarks_before
    assert "unlabelled" not in {s.name for s in recorder.all()}
    assert sample("agentic_operator_watch_relists_total", namespace=namespace, cause="gone") == 0
