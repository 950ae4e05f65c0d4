"""API access that speaks plain dicts.

The generated model classes of the official client cost a deserialization pass per object and hide
fields we need (bookmark resourceVersions, unknown CRD fields). Here every call goes through the
client's configured connection pool (so kubeconfig, in-cluster and exec auth all work), parses JSON
once into dicts, and is counted under client-go's metric names and traced as a child span.
"""

from __future__ import annotations

import builtins
import json
import logging
import socket
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from opentelemetry import trace

from controller import metrics, safe_json, waits
from controller.api_error import ApiError
from controller.resources import JSON, MERGE_PATCH, METADATA_LIST, METADATA_OBJECT, SERVICE_ACCOUNTS, Resource
from controller.streams import Listing, WatchStream
from controller.version import version

log = logging.getLogger("controller.kube")
tracer = trace.get_tracer("agentic-operator.kube")

USER_AGENT = f"agentic-operator/{version()}"


def load_api_client(kubeconfig: str = "") -> k8s_client.ApiClient:
    """An ApiClient for a kubeconfig file, else in-cluster config, else the default kubeconfig."""
    configuration = k8s_client.Configuration()
    if kubeconfig:
        k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    else:
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
        except k8s_config.ConfigException:
            k8s_config.load_kube_config(client_configuration=configuration)
    # Watches hold a connection each; workers need their own. Keep enough idle connections to reuse.
    configuration.connection_pool_maxsize = 64
    configuration.socket_options = [
        *urllib3.connection.HTTPConnection.default_socket_options,
        (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
        (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 30),
        (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10),
        (socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3),
    ]
    return k8s_client.ApiClient(configuration)


def auth_headers(configuration: k8s_client.Configuration) -> dict[str, str]:
    """The Authorization header for the next request, from the client's public Configuration API.

    `Configuration.auth_settings()` runs the kubeconfig's token refresh hook (exec plugins, OIDC,
    in-cluster token rotation) and returns the bearer token, in every client major this supports.
    ApiClient.update_params_for_auth, used before, changed its signature in client 37.
    """
    setting = configuration.auth_settings().get("BearerToken")
    if not setting or not setting.get("value"):
        return {}
    return {"Authorization": str(setting["value"])}


class Kube:
    """The one door to the API server: every request is counted, timed and traced."""

    def __init__(self, api_client: k8s_client.ApiClient, request_timeout: float = 30.0):
        self.api_client = api_client
        self.configuration = api_client.configuration
        self.host = self.configuration.host.rstrip("/")
        self.host_label = urllib.parse.urlparse(self.host).netloc or self.host
        self.pool = api_client.rest_client.pool_manager
        self.request_timeout = request_timeout
        self.max_429_retries = 5

    # -- plumbing --------------------------------------------------------------------------------

    def _headers(self, content_type: str | None, accept: str = "application/json") -> dict[str, str]:
        headers = {"Accept": accept, "User-Agent": USER_AGENT}
        if content_type:
            headers["Content-Type"] = content_type
        headers.update(auth_headers(self.configuration))
        return headers

    def _url(self, path: str, query: Mapping[str, Any] | None) -> str:
        if not query:
            return f"{self.host}{path}"
        clean = {
            k: ("true" if v is True else "false" if v is False else v)
            for k, v in query.items()
            if v is not None
        }
        return f"{self.host}{path}?{urllib.parse.urlencode(clean)}"

    def _record(self, verb: str, resource: str, method: str, code: str, started: float) -> None:
        metrics.rest_client_requests_total.labels(code, method, self.host_label).inc()
        metrics.rest_client_requests_by_resource_total.labels(verb, resource, code).inc()
        metrics.rest_client_request_duration_seconds.labels(verb, self.host_label).observe(
            time.monotonic() - started
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        verb: str,
        resource: str,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout: float | None = None,
        accept: str = "application/json",
    ) -> JSON:
        """One request with 429 handling; returns the parsed body or raises ApiError."""
        with tracer.start_as_current_span(f"kube {verb} {resource}") as span:
            response = self._send(
                method,
                path,
                span,
                verb=verb,
                resource=resource,
                query=query,
                body=body,
                content_type=content_type,
                timeout=timeout,
                accept=accept,
                stream=False,
            )
            return safe_json.loads(response.data) if response.data else {}

    def _send(
        self,
        method: str,
        path: str,
        span: trace.Span,
        *,
        verb: str,
        resource: str,
        query: Mapping[str, Any] | None,
        body: Any,
        content_type: str | None,
        timeout: float | None,
        accept: str,
        stream: bool,
    ) -> urllib3.BaseHTTPResponse:
        """Sends until the answer is not a 429 (at most `max_429_retries` waits); raises on non-2xx.

        With `stream` the body of a 2xx answer is left unread for the caller, who must release it.
        """
        payload = json.dumps(body).encode() if body is not None else None
        if payload is not None and content_type is None:
            content_type = "application/json"
        url = self._url(path, query)
        span.set_attribute("k8s.verb", verb)
        span.set_attribute("k8s.resource", resource)
        span.set_attribute("http.request.method", method)
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                with waits.waiting():
                    response: urllib3.BaseHTTPResponse = self.pool.request(
                        method,
                        url,
                        body=payload,
                        headers=self._headers(content_type, accept),
                        timeout=urllib3.Timeout(connect=10.0, read=timeout or self.request_timeout),
                        retries=False,
                        preload_content=not stream,
                    )
            except urllib3.exceptions.HTTPError as exc:
                self._record(verb, resource, method, "<error>", started)
                span.set_attribute("error.type", type(exc).__name__)
                raise ApiError(0, "ConnectionError", str(exc)) from exc
            self._record(verb, resource, method, str(response.status), started)
            span.set_attribute("http.response.status_code", response.status)
            log.debug(
                "%s %s -> %d in %.1fms", method, path, response.status, (time.monotonic() - started) * 1000
            )
            if 200 <= response.status < 300:
                return response
            data = response.read() if stream else response.data
            if stream:
                response.release_conn()
            error = ApiError.from_response(response.status, data, response.headers)
            error.verb, error.resource = verb, resource
            meta = body.get("metadata") if isinstance(body, dict) else None
            if isinstance(meta, dict) and isinstance(meta.get("name"), str):
                error.object_name = meta["name"]
            elif f"/{resource}/" in path:
                named = path.split(f"/{resource}/", 1)[1].split("/", 1)[0]
                error.object_name = urllib.parse.unquote(named)
            if response.status == 429 and attempt < self.max_429_retries:
                attempt += 1
                time.sleep(min(error.retry_after or 1.0, 30.0))
                continue
            raise error

    # -- verbs -----------------------------------------------------------------------------------

    def get(self, res: Resource, namespace: str | None, name: str, subresource: str | None = None) -> JSON:
        return self.request("GET", res.path(namespace, name, subresource), verb="get", resource=res.plural)

    def get_or_none(
        self, res: Resource, namespace: str | None, name: str, subresource: str | None = None
    ) -> JSON | None:
        """The object, or None when it does not exist; any other failure raises."""
        try:
            return self.get(res, namespace, name, subresource)
        except ApiError as exc:
            if exc.not_found:
                return None
            raise

    def list(self, res: Resource, namespace: str | None = None, **options: Any) -> JSON:
        """A LIST as one dict; takes stream_list's options (selectors, metadata_only, paging)."""
        listing = self.stream_list(res, namespace, **options)
        items = builtins.list(listing)
        return {**listing.fields, "items": items}

    def stream_list(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        timeout: float | None = None,
        metadata_only: bool = False,
    ) -> Listing:
        """A LIST whose items are decoded one at a time as they arrive (see list_decoder)."""
        query = {
            "labelSelector": label_selector or None,
            "fieldSelector": field_selector or None,
            "resourceVersion": resource_version,
            "limit": limit,
            "continue": continue_token,
        }
        span = tracer.start_span(f"kube list {res.plural}")
        try:
            response = self._send(
                "GET",
                res.path(namespace),
                span,
                verb="list",
                resource=res.plural,
                query=query,
                body=None,
                content_type=None,
                timeout=timeout or 120.0,
                accept=METADATA_LIST if metadata_only else "application/json",
                stream=True,
            )
        except BaseException:
            span.end()
            raise
        return Listing(response, span)

    def create(self, res: Resource, namespace: str | None, body: JSON) -> JSON:
        return self.request("POST", res.path(namespace), verb="create", resource=res.plural, body=body)

    def replace(
        self, res: Resource, namespace: str | None, name: str, body: JSON, subresource: str | None = None
    ) -> JSON:
        return self.request(
            "PUT", res.path(namespace, name, subresource), verb="update", resource=res.plural, body=body
        )

    def patch(
        self,
        res: Resource,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        patch_type: str = MERGE_PATCH,
        subresource: str | None = None,
    ) -> JSON:
        return self.request(
            "PATCH",
            res.path(namespace, name, subresource),
            verb="patch",
            resource=res.plural,
            body=body,
            content_type=patch_type,
        )

    def delete(
        self,
        res: Resource,
        namespace: str | None,
        name: str,
        *,
        propagation: str | None = None,
        uid: str | None = None,
        resource_version: str | None = None,
    ) -> JSON:
        body: JSON = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation:
            body["propagationPolicy"] = propagation
        preconditions = {k: v for k, v in (("uid", uid), ("resourceVersion", resource_version)) if v}
        if preconditions:
            body["preconditions"] = preconditions
        return self.request(
            "DELETE", res.path(namespace, name), verb="delete", resource=res.plural, body=body
        )

    def delete_ignore_missing(self, res: Resource, namespace: str | None, name: str, **kwargs: Any) -> bool:
        """Deletes; True when something was deleted, False when it was already gone."""
        try:
            self.delete(res, namespace, name, **kwargs)
            return True
        except ApiError as exc:
            if exc.not_found:
                return False
            raise

    def create_token(
        self, namespace: str, service_account: str, *, audiences: builtins.list[str], expiration_seconds: int
    ) -> tuple[str, str]:
        """A TokenRequest; returns (token, expirationTimestamp). The token must never be logged."""
        spec: JSON = {"expirationSeconds": expiration_seconds}
        if audiences:
            spec["audiences"] = audiences
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        answer = self.request(
            "POST",
            SERVICE_ACCOUNTS.path(namespace, service_account, "token"),
            verb="create",
            resource="serviceaccounts/token",
            body=body,
        )
        status = answer.get("status") or {}
        return str(status.get("token", "")), str(status.get("expirationTimestamp", ""))

    def watch(
        self,
        res: Resource,
        namespace: str | None,
        *,
        resource_version: str,
        label_selector: str | None = None,
        timeout_seconds: int = 300,
        read_timeout: float = 100.0,
        metadata_only: bool = False,
        field_selector: str | None = None,
    ) -> WatchStream:
        """Opens a watch with bookmarks; a socket silent for `read_timeout` raises inside iteration."""
        query = {
            "watch": True,
            "allowWatchBookmarks": True,
            "resourceVersion": resource_version,
            "timeoutSeconds": timeout_seconds,
            "labelSelector": label_selector or None,
            "fieldSelector": field_selector or None,
        }
        url = self._url(res.path(namespace), query)
        started = time.monotonic()
        try:
            response = self.pool.request(
                "GET",
                url,
                headers=self._headers(None, METADATA_OBJECT if metadata_only else "application/json"),
                preload_content=False,
                retries=False,
                timeout=urllib3.Timeout(connect=10.0, read=read_timeout),
            )
        except urllib3.exceptions.HTTPError as exc:
            self._record("watch", res.plural, "GET", "<error>", started)
            raise ApiError(0, "ConnectionError", str(exc)) from exc
        self._record("watch", res.plural, "GET", str(response.status), started)
        log.debug(
            "WATCH %s from resourceVersion %s -> %d", res.path(namespace), resource_version, response.status
        )
        if response.status != 200:
            data = response.read()
            response.release_conn()
            raise ApiError.from_response(response.status, data, response.headers)
        return WatchStream(response)
