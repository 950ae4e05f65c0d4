"""HTTP client of the session runner's API (platform contract §4), used only by the runner-sync loop.

Where: `--runner-url-template` with `{name}` (session), `{namespace}`, `{service}` (`session-<name>`)
and `{port}` (the cached Service's port named `agui`, else --runner-port); by default the cluster DNS
name of the session Service. Who: header `X-Ambient-Session-Token` with the session Secret's
`agui-token`, read from the API once and kept while the cached Secret's resourceVersion is the same;
a 401 drops it and re-reads once. How: one keep-alive connection pool, a fixed timeout, no retries
inside a call (a retry is the loop's RequeueAfter). The token never reaches a log line: only the
endpoint, the code and the runner's short `detail` are logged.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import urllib3

from controller import waits
from controller.config import OperatorConfig
from controller.kube import Kube
from controller.names import TOKEN_KEY_AGUI, session_service_name, token_secret_name
from controller.platform import runner_metrics
from controller.resources import SECRETS
from controller.watchers.cache import KindCache

log = logging.getLogger("controller.platform.runner_client")

TOKEN_HEADER = "X-Ambient-Session-Token"
AGUI_PORT_NAME = "agui"
_DETAIL_LIMIT = 200
_ADDRESS = re.compile(r"<[^<>]* object at 0x[0-9a-fA-F]+>:? ?")


@dataclass(frozen=True)
class Answer:
    """The runner's answer; code 0 means there was none (`detail` says why)."""

    code: int
    detail: str = ""
    body: Mapping[str, Any] = field(default_factory=dict)
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.code == 200

    def describe(self) -> str:
        if self.code == 0:
            return self.detail
        return f"runner answered {self.code}" + (f": {self.detail}" if self.detail else "")


def _short(text: str) -> str:
    """A runner message as shown in status: one line, bounded (it may echo user input)."""
    line = " ".join(str(text).split())
    return line if len(line) <= _DETAIL_LIMIT else line[: _DETAIL_LIMIT - 3] + "..."


def _stable(exc: Exception) -> str:
    """The error without object addresses, so the same failure reads the same on every retry (a
    changing message would rewrite the condition each time)."""
    return _ADDRESS.sub("", f"{type(exc).__name__}: {exc}")


def runner_port(services: KindCache, namespace: str, name: str, default: int) -> int:
    service = services.get(namespace, session_service_name(name))
    for port in ((service or {}).get("spec") or {}).get("ports") or ():
        if port.get("name") == AGUI_PORT_NAME and isinstance(port.get("port"), int):
            return int(port["port"])
    return default


class RunnerClient:
    def __init__(self, config: OperatorConfig, kube: Kube, services: KindCache, secrets: KindCache):
        self.config = config
        self.kube = kube
        self.services = services
        self.secrets = secrets
        self._pool = urllib3.PoolManager(
            num_pools=64,
            maxsize=max(1, config.workers("runner-sync")),
            retries=False,
            timeout=urllib3.Timeout(total=config.runner_timeout),
        )
        self._tokens: dict[tuple[str, str], tuple[str, str]] = {}
        self._lock = threading.Lock()

    def base_url(self, namespace: str, name: str) -> str:
        return self.config.runner_url_template.format(
            name=name,
            namespace=namespace,
            service=session_service_name(name),
            port=runner_port(self.services, namespace, name, self.config.runner_port),
        ).rstrip("/")

    def forget(self, namespace: str, name: str) -> None:
        """Drops what is kept of a session (its token) once the session is gone."""
        with self._lock:
            self._tokens.pop((namespace, name), None)

    # -- token -----------------------------------------------------------------------------------

    def _token(self, namespace: str, name: str) -> str | None:
        secret_name = token_secret_name(name)
        cached = self.secrets.get(namespace, secret_name)
        if cached is None:
            return None
        version = str((cached.get("metadata") or {}).get("resourceVersion") or "")
        with self._lock:
            kept = self._tokens.get((namespace, name))
        if kept is not None and kept[0] == version:
            return kept[1]
        secret = self.kube.get_or_none(SECRETS, namespace, secret_name)
        raw = ((secret or {}).get("data") or {}).get(TOKEN_KEY_AGUI)
        if not raw:
            return None
        token = base64.b64decode(raw).decode("utf-8", "replace").strip()
        with self._lock:
            self._tokens[(namespace, name)] = (
                str(((secret or {}).get("metadata") or {}).get("resourceVersion") or version),
                token,
            )
        return token

    # -- calls -----------------------------------------------------------------------------------

    def post(self, namespace: str, name: str, path: str, body: Mapping[str, Any]) -> Answer:
        token = self._token(namespace, name)
        if token is None:
            return Answer(0, f"the runner token Secret {token_secret_name(name)} has no {TOKEN_KEY_AGUI} yet")
        answer = self._send(namespace, name, path, body, token)
        if answer.code == 401:
            self.forget(namespace, name)
            token = self._token(namespace, name)
            if token is not None:
                answer = self._send(namespace, name, path, body, token)
        return answer

    def _send(self, namespace: str, name: str, path: str, body: Mapping[str, Any], token: str) -> Answer:
        url = self.base_url(namespace, name) + path
        started = time.monotonic()
        code_label = "error"
        try:
            with waits.waiting():
                response = self._pool.request(
                    "POST",
                    url,
                    body=json.dumps(dict(body)).encode(),
                    headers={"Content-Type": "application/json", TOKEN_HEADER: token},
                )
        except urllib3.exceptions.ReadTimeoutError:
            # Sent, but not answered in time (a long clone): the runner has the request. A connect
            # timeout or refusal (NewConnectionError is a ConnectTimeoutError) never reached it.
            code_label = "timeout"
            answer = Answer(
                0, f"no answer from the runner within {self.config.runner_timeout:g}s", timed_out=True
            )
        except urllib3.exceptions.HTTPError as exc:
            answer = Answer(0, f"runner not reachable: {_short(_stable(exc))}")
        else:
            code_label = str(response.status)
            answer = _answer(response.status, response.data)
        finally:
            runner_metrics.runner_request_duration_seconds.labels(path).observe(time.monotonic() - started)
        runner_metrics.runner_requests_total.labels(path, code_label).inc()
        log.debug("runner POST %s -> %s %s", path, code_label, answer.detail)
        return answer


def _answer(code: int, data: bytes) -> Answer:
    try:
        parsed = json.loads(data.decode("utf-8", "replace")) if data else {}
    except ValueError:
        parsed = {}
    body = parsed if isinstance(parsed, Mapping) else {}
    detail = body.get("detail") if code != 200 else body.get("message")
    return Answer(code, _short(detail) if isinstance(detail, str) else "", body)
