"""What the sessions loop resolves before it creates a runner: the runtime and the pod's inputs.

The runtime comes from the agent registry's current snapshot; the Secrets and the CA bundle from the
caches. A session whose runtime is unknown, or whose credentials are missing, waits in Pending with a
condition and an Event that name the cause; the watch on the registry or on the Secret wakes it when
that is fixed, so it then starts by itself.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller import conditions as c
from controller.platform.registry import PERSISTENCE_S3, RegistryView, Runtime, runtime_id_of
from controller.platform.runner_pod.inputs import (
    INTEGRATION_SECRETS,
    LANGFUSE_SECRET,
    MLFLOW_SECRET,
    RUNNER_SECRETS,
    VERTEX_SECRET,
    PodInputs,
    S3Settings,
    SecretKey,
)
from controller.platform.secrets import (
    MINIO_SECRET,
    MLFLOW_KUBERNETES_AUTH,
    decoded,
    has_ca_bundle,
    switched_on,
)
from controller.reconcilers import copied_secrets
from controller.reconcilers.context import Context
from controller.resources import SECRETS

log = logging.getLogger("controller.reconcilers.runner_inputs")

UNKNOWN_RUNNER_TYPE = "UnknownRunnerType"
RUNNER_SECRET_MISSING = "RunnerSecretMissing"
VERTEX_SECRET_MISSING = "VertexSecretMissing"
S3_NOT_CONFIGURED = "NotConfigured"
_MAX_ID = 63


@dataclass(frozen=True)
class Blocked:
    """Why the runner cannot be created yet: the condition to write, and the same for the Event."""

    condition: str
    reason: str
    message: str


@dataclass(frozen=True)
class Resolved:
    inputs: PodInputs | None
    blocked: Blocked | None = None
    s3_message: str = ""  # set for S3 runtimes: S3Available's message
    s3_ok: bool = True


def registry_view(ctx: Context) -> RegistryView:
    registry = ctx.platform.registry
    return registry.view() if registry is not None else RegistryView(None, ctx.config.default_runner_type)


def _shown(runtime_id: str) -> str:
    """A user-chosen id in a message: bounded, and only printable characters."""
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in runtime_id[:_MAX_ID])
    return cleaned + ("..." if len(runtime_id) > _MAX_ID else "")


def select_runtime(ctx: Context, session: Mapping[str, Any]) -> tuple[Runtime | None, Blocked | None]:
    view = registry_view(ctx)
    runtime_id = runtime_id_of(session, ctx.config)
    runtime = view.lookup(runtime_id)
    if runtime is not None:
        return runtime, None
    known = ", ".join(sorted(view.runtimes or {})) or "none"
    message = (
        f"runner type {_shown(runtime_id)!r} is not in the agent registry ({view.source}; known: {known}); "
        "set spec.runnerType to a known runtime or add it to the registry"
    )
    return None, Blocked(c.RECONCILED, UNKNOWN_RUNNER_TYPE, message)


def _present(ctx: Context, namespace: str, name: str) -> bool | None:
    """None when the operator does not watch the platform's Secrets (nothing to decide on)."""
    cache = ctx.platform.namespace_secrets
    return None if cache is None else cache.get(namespace, name) is not None


def _s3(ctx: Context, session: Mapping[str, Any], integration: bool) -> tuple[S3Settings | None, str]:
    """§1.9: the namespace's custom storage, else the shared endpoint with the copied credentials."""
    config = ctx.config
    namespace = session["metadata"]["namespace"]
    own = ctx.kube.get_or_none(SECRETS, namespace, INTEGRATION_SECRETS) if integration else None
    endpoint, bucket = config.s3_endpoint, config.s3_bucket
    access = secret = None
    if decoded(own, "STORAGE_MODE") == "custom":
        endpoint = decoded(own, "S3_ENDPOINT") or endpoint
        bucket = decoded(own, "S3_BUCKET") or bucket
        if decoded(own, "S3_ACCESS_KEY") and decoded(own, "S3_SECRET_KEY"):
            access = SecretKey(INTEGRATION_SECRETS, "S3_ACCESS_KEY")
            secret = SecretKey(INTEGRATION_SECRETS, "S3_SECRET_KEY")
    shared = (endpoint, bucket) == (config.s3_endpoint, config.s3_bucket)
    if access is None and shared and copied_secrets.ensure(ctx, session, MINIO_SECRET):
        access, secret = SecretKey(MINIO_SECRET, "access-key"), SecretKey(MINIO_SECRET, "secret-key")
    if not endpoint or not bucket or access is None or secret is None:
        return None, "S3 storage not configured: no credentials for the shared or the namespace's storage"
    return S3Settings(endpoint, bucket, access, secret), f"S3 storage configured: {endpoint}/{bucket}"


def resolve(ctx: Context, session: Mapping[str, Any], runtime: Runtime) -> Resolved:
    """Copies what the runner needs and says what its pod gets; or why it cannot start yet."""
    config = ctx.config
    namespace = session["metadata"]["namespace"]
    vertex = config.use_vertex
    if vertex and not copied_secrets.ensure(ctx, session, VERTEX_SECRET):
        message = (
            f"Vertex mode is on but Secret {VERTEX_SECRET} does not exist in namespace "
            f"{config.platform_namespace}; the session starts once it is created"
        )
        return Resolved(None, Blocked(c.SECRETS_READY, VERTEX_SECRET_MISSING, message))
    runner_secret = _present(ctx, namespace, RUNNER_SECRETS)
    optional = False
    if not vertex and runner_secret is False:
        if config.require_runner_secret:
            message = (
                f"Secret {RUNNER_SECRETS} (the runner's API keys) does not exist in namespace {namespace}; "
                "the session starts once it is created"
            )
            return Resolved(None, Blocked(c.SECRETS_READY, RUNNER_SECRET_MISSING, message))
        optional = True
    langfuse = switched_on(config.langfuse_enabled) and copied_secrets.ensure(ctx, session, LANGFUSE_SECRET)
    mlflow = switched_on(config.mlflow_tracing_enabled) and copied_secrets.ensure(ctx, session, MLFLOW_SECRET)
    mlflow_auth = decoded(copied_secrets.source(ctx, MLFLOW_SECRET), "MLFLOW_TRACKING_AUTH")
    integration = bool(_present(ctx, namespace, INTEGRATION_SECRETS))
    ca_cache = ctx.platform.ca_bundles
    ca_bundle = ca_cache is not None and has_ca_bundle(ca_cache.get(namespace, "trusted-ca-bundle"))
    s3, s3_message = (None, "")
    if runtime.storage == PERSISTENCE_S3:
        s3, s3_message = _s3(ctx, session, integration)
    inputs = PodInputs(
        runtime=runtime,
        vertex=vertex,
        langfuse=langfuse,
        mlflow=mlflow,
        mlflow_kubernetes_auth=mlflow and mlflow_auth in MLFLOW_KUBERNETES_AUTH,
        integration_secret=integration,
        runner_secret_optional=optional,
        ca_bundle=ca_bundle,
        s3=s3,
    )
    return Resolved(inputs, None, s3_message, s3 is not None)


def refresh_copies(ctx: Context, session: Mapping[str, Any]) -> None:
    """Keeps the copies a created runner uses current with their sources (no request when they are)."""
    config = ctx.config
    names = [
        name
        for name, on in (
            (VERTEX_SECRET, config.use_vertex),
            (LANGFUSE_SECRET, switched_on(config.langfuse_enabled)),
            (MLFLOW_SECRET, switched_on(config.mlflow_tracing_enabled)),
        )
        if on
    ]
    for name in names:
        copied_secrets.ensure(ctx, session, name)
