"""The API door works with the installed `kubernetes` client major, through its public API only.

`make client-compat` runs this file again with the other supported major (see hack/client-compat.sh),
so both are tested on every CI run: a real kubeconfig is loaded, and real requests go through the
client's connection pool to a local HTTP server that records what it received.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from controller.api_error import ApiError
from controller.kube import USER_AGENT, Kube, load_api_client
from controller.resources import NAMESPACES

SUPPORTED_MAJORS = (33, 34, 35, 36, 37)


class Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []

    def do_GET(self) -> None:
        Recorder.seen.append({"path": self.path, "headers": dict(self.headers)})
        body: dict[str, Any]
        if self.path.endswith("/missing"):
            body, code = {"kind": "Status", "reason": "NotFound", "message": "not here"}, 404
        else:
            body, code = {"kind": "Namespace", "metadata": {"name": "ns"}}, 200
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    Recorder.seen = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def kubeconfig(tmp_path: Path, server: str, token: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": token}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return path


def test_the_installed_client_major_is_supported() -> None:
    assert int(kubernetes.__version__.split(".")[0]) in SUPPORTED_MAJORS, kubernetes.__version__


def test_requests_carry_the_kubeconfig_token_through_the_client_pool(tmp_path: Path, server: str) -> None:
    kube = Kube(load_api_client(str(kubeconfig(tmp_path, server, "t0ken"))))
    assert kube.get(NAMESPACES, None, "ns")["metadata"]["name"] == "ns"
    with pytest.raises(ApiError) as raised:
        kube.get(NAMESPACES, None, "missing")
    assert raised.value.not_found
    assert [s["path"] for s in Recorder.seen] == ["/api/v1/namespaces/ns", "/api/v1/namespaces/missing"]
    for seen in Recorder.seen:
        assert seen["headers"]["Authorization"] == "Bearer t0ken"
        assert seen["headers"]["User-Agent"] == USER_AGENT


def test_a_refreshed_token_is_used_for_the_next_request(tmp_path: Path, server: str) -> None:
    """Exec plugins and in-cluster rotation refresh the token through the client's hook."""
    client = load_api_client(str(kubeconfig(tmp_path, server, "old")))

    def refresh(configuration: Any) -> None:
        configuration.api_key["BearerToken"] = "Bearer new"  # as the loaders store it

    client.configuration.refresh_api_key_hook = refresh
    Kube(client).get(NAMESPACES, None, "ns")
    assert Recorder.seen[-1]["headers"]["Authorization"] == "Bearer new"
