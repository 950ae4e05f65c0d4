"""Shared pieces of the framework e2e tests: a pausable TCP proxy, a delta recorder, metric reads.

The proxy sits between a client and the API server and copies bytes, so TLS passes through it
untouched; pausing it stops every byte in both directions while all sockets stay open, which is
exactly what a half-dead load balancer or a lost NAT entry looks like to a watch stream.
"""

from __future__ import annotations

import contextlib
import copy
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import yaml
from kubernetes import client as k8s_client

from controller import metrics
from controller.api_error import ApiError
from controller.kube import Kube, load_api_client
from controller.resources import Resource
from controller.watchers.store import Delta, Store

T = TypeVar("T")

CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")


# -- the proxy -------------------------------------------------------------------------------------


class PausableProxy:
    """A TCP forwarder on 127.0.0.1 with a pause switch.

    While paused, no byte moves in either direction and no socket is closed; connections accepted
    meanwhile are connected upstream but carry nothing until `resume()`, so a client that opens a
    new connection during the pause simply waits (its TLS handshake stalls) instead of failing.
    """

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self.accepted = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> PausableProxy:
        self._spawn(self._accept_loop, "proxy-accept")
        return self

    def pause(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        self._closed.set()
        self._flowing.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _close(sock)
        for thread in list(self._threads):
            thread.join(5)

    def __enter__(self) -> PausableProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _spawn(self, target: Callable[..., None], name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                downstream, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                _close(downstream)
                continue
            downstream.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self.accepted += 1
                self._sockets += [downstream, upstream]
            self._spawn(self._pump, "proxy-up", downstream, upstream)
            self._spawn(self._pump, "proxy-down", upstream, downstream)

    def _wait_flowing(self) -> bool:
        while not self._flowing.wait(0.1):
            if self._closed.is_set():
                return False
        return not self._closed.is_set()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while self._wait_flowing():
                data = source.recv(65536)
                if not data or not self._wait_flowing():
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    # shutdown() wakes a thread blocked in recv() on the same socket; close() alone does not.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def api_server_address(kubeconfig: Path) -> tuple[str, int]:
    api_client = load_api_client(str(kubeconfig))
    try:
        parsed = urllib.parse.urlparse(api_client.configuration.host)
    finally:
        api_client.close()
    return parsed.hostname or "127.0.0.1", parsed.port or 443


def kube_via(kubeconfig: Path, url: str) -> Kube:
    """A Kube with the kubeconfig's credentials and TLS settings, talking to `url` instead."""
    original = load_api_client(str(kubeconfig))
    configuration = copy.deepcopy(original.configuration)
    original.close()
    configuration.host = url
    return Kube(k8s_client.ApiClient(configuration))


def kubeconfig_via(kubeconfig: Path, url: str, dest: Path) -> Path:
    """A copy of `kubeconfig` whose clusters all point at `url` (same CA, same client credentials)."""
    document: dict[str, Any] = yaml.safe_load(kubeconfig.read_text())
    for entry in document.get("clusters") or []:
        entry["cluster"]["server"] = url
    dest.write_text(yaml.safe_dump(document))
    return dest


# -- recording informer output -----------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    type: str
    name: str
    resource_version: str


class DeltaRecorder:
    """An informer handler that records every delta (type, name, resourceVersion); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: list[Seen] = []

    def __call__(self, delta: Delta) -> None:
        obj = delta.new if delta.new is not None else delta.old
        meta = (obj or {}).get("metadata") or {}
        seen = Seen(delta.type, str(meta.get("name", "")), str(meta.get("resourceVersion", "")))
        with self._lock:
            self._seen.append(seen)

    def all(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    def names(self, type_: str) -> set[str]:
        return {s.name for s in self.all() if s.type == type_}

    def versions(self) -> set[tuple[str, str]]:
        """(name, resourceVersion) of every ADDED/MODIFIED delta."""
        return {(s.name, s.resource_version) for s in self.all() if s.type in ("ADDED", "MODIFIED")}


def store_state(store: Store, namespace: str) -> dict[str, str]:
    """name -> resourceVersion of what the store holds in `namespace`."""
    return {
        str(obj["metadata"]["name"]): str(obj["metadata"]["resourceVersion"]) for obj in store.list(namespace)
    }


def server_state(kube: Kube, resource: Resource, namespace: str, label_selector: str) -> dict[str, str]:
    """name -> resourceVersion of what the API server holds (a consistent read)."""
    items = kube.list(resource, namespace, label_selector=label_selector).get("items") or []
    return {str(o["metadata"]["name"]): str(o["metadata"]["resourceVersion"]) for o in items}


# -- metrics of this process ------------------------------------------------------------------------


def sample(name: str, **labels: str) -> float:
    """Sum of the in-process registry's samples called `name` whose labels include `labels`."""
    total = 0.0
    for family in metrics.REGISTRY.collect():
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += float(s.value)
    return total


# -- resilient writes -------------------------------------------------------------------------------


def with_retries(call: Callable[[], T], timeout: float = 60.0) -> T:
    """Runs `call`, retrying connection errors, 429 and 5xx (an API server that is restarting)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except ApiError as exc:
            transient = exc.status in (0, 429) or exc.status >= 500
            if not transient or time.monotonic() > deadline:
                raise
        time.sleep(0.2)
