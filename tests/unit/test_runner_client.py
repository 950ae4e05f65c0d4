"""The runner client against a local HTTP server: URL template, token kept by resourceVersion and
re-read on 401, answers and transport failures, and no token in any log line."""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import pytest

from controller.config import OperatorConfig
from controller.kube import Kube
from controller.platform.runner_client import RunnerClient
from controller.watchers.cache import KindCache

TOKEN = "s3cr3t-agui-token"


class FakeCache:
    def __init__(self, objects: dict[tuple[str, str], dict[str, Any]]):
        self.objects = objects

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((namespace, name))


class FakeKube:
    def __init__(self) -> None:
        self.token = TOKEN
        self.reads = 0

    def get_or_none(self, resource: Any, namespace: str, name: str) -> dict[str, Any]:
        self.reads += 1
        data = base64.b64encode(self.token.encode()).decode()
        return {"metadata": {"resourceVersion": "7"}, "data": {"agui-token": data}}


class Server:
    def __init__(self) -> None:
        self.expected = TOKEN
        self.seen: list[tuple[str, str, dict[str, Any]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.seen.append((self.path, self.headers.get("X-Ambient-Session-Token") or "", body))
                ok = self.headers.get("X-Ambient-Session-Token") == outer.expected
                code, answer = (
                    (200, {"message": "Model switched"}) if ok else (401, {"detail": "Unauthorized"})
                )
                data = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.httpd.shutdown()
    running.httpd.server_close()


def client(kube: FakeKube, template: str, rv: str = "7") -> RunnerClient:
    config = OperatorConfig(runner_url_template=template, runner_timeout=2.0)
    services = FakeCache({("ns", "session-s"): {"spec": {"ports": [{"name": "agui", "port": 9123}]}}})
    secrets = FakeCache({("ns", "ambient-runner-token-s"): {"metadata": {"resourceVersion": rv}}})
    return RunnerClient(config, cast(Kube, kube), cast(KindCache, services), cast(KindCache, secrets))


def test_default_url_uses_the_service_dns_name_and_agui_port() -> None:
    default = OperatorConfig().runner_url_template
    assert client(FakeKube(), default).base_url("ns", "s") == "http://session-s.ns.svc.cluster.local:9123"


def test_token_is_read_once_and_reread_on_401(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    kube = FakeKube()
    runner = client(kube, f"http://127.0.0.1:{server.port}/{{namespace}}/{{name}}")
    assert runner.post("ns", "s", "/model", {"model": "m"}).ok
    assert runner.post("ns", "s", "/model", {"model": "m"}).ok
    assert kube.reads == 1
    assert server.seen[0][:2] == ("/ns/s/model", TOKEN)
    # The Secret was rotated: the kept token earns a 401, the client reads it again once.
    kube.token = server.expected = "rotated-token"
    answer = runner.post("ns", "s", "/model", {"model": "m"})
    assert answer.ok and kube.reads == 2
    server.expected = "never"
    answer = runner.post("ns", "s", "/model", {"model": "m"})
    assert answer.code == 401 and answer.detail == "Unauthorized"
    assert TOKEN not in caplog.text and "rotated-token" not in caplog.text


def test_no_answer_is_code_zero_with_a_reason() -> None:
    runner = client(FakeKube(), "http://127.0.0.1:1/{namespace}/{name}")
    answer = runner.post("ns", "s", "/repos/add", {"url": "u"})
    assert answer.code == 0 and not answer.ok and "not reachable" in answer.describe()
    assert "0x" not in answer.detail and answer == runner.post("ns", "s", "/repos/add", {"url": "u"})


def test_url_template_is_validated() -> None:
    with pytest.raises(ValueError, match="runner-url-template"):
        OperatorConfig(runner_url_template="http://{host}/").validate()
