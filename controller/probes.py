"""The metrics and probe endpoints, served from background threads.

/healthz answers 500 when a watch loop has died or made no progress (a liveness probe then
restarts the pod); /readyz answers 500 until the caches have synced, so no traffic or rollout
step counts on an operator that has not seen the cluster yet.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from controller import metrics

log = logging.getLogger("controller.probes")

Check = Callable[[], list[str]]


def parse_address(address: str) -> tuple[str, int] | None:
    """':8080' -> ('0.0.0.0', 8080); '0' or '' disables the endpoint (as controller-runtime)."""
    if address in ("", "0"):
        return None
    host, _, port = address.rpartition(":")
    return (host or "0.0.0.0", int(port))


class _Handler(BaseHTTPRequestHandler):
    routes: dict[str, Callable[[], tuple[int, str, bytes]]] = {}

    def do_GET(self) -> None:
        route = self.routes.get(self.path.split("?", 1)[0])
        if route is None:
            self.send_error(404)
            return
        status, content_type, body = route()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


def _check_route(check: Check) -> Callable[[], tuple[int, str, bytes]]:
    def route() -> tuple[int, str, bytes]:
        problems = check()
        if problems:
            return 500, "text/plain", ("\n".join(problems) + "\n").encode()
        return 200, "text/plain", b"ok\n"

    return route


class Server:
    """One ThreadingHTTPServer per bind address."""

    def __init__(self, address: tuple[str, int], routes: dict[str, Callable[[], tuple[int, str, bytes]]]):
        handler = type("Handler", (_Handler,), {"routes": routes})
        self.httpd = ThreadingHTTPServer(address, handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name=f"http-{self.port}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def metrics_server(address: str) -> Server | None:
    parsed = parse_address(address)
    if parsed is None:
        return None
    return Server(parsed, {"/metrics": lambda: (200, "text/plain; version=0.0.4", metrics.exposition())})


def probe_server(address: str, healthz: Check, readyz: Check) -> Server | None:
    parsed = parse_address(address)
    if parsed is None:
        return None
    return Server(parsed, {"/healthz": _check_route(healthz), "/readyz": _check_route(readyz)})
