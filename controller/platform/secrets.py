"""The platform's Secrets and ConfigMaps a runner pod depends on, and what the operator caches of them.

Three kinds of object, each in its own cache:
- in every managed namespace, the platform's few Secrets (runner API keys, integrations, the copies),
  by metadata only and filtered to those names before they reach the store; its watch of every
  Secret is shared with the runner token cache (operator.py), which keeps the operator's own;
- in every managed namespace, ConfigMap `trusted-ca-bundle` (by name on the server), its keys only;
- in the backend namespace, the sources of the copied Secrets, with their data (they are copied).
The agent registry's ConfigMap, also in the backend namespace, shares the models manifest's watch of
that namespace's ConfigMaps when both live there.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from controller.config import OperatorConfig
from controller.platform.runner_pod.inputs import (
    CA_BUNDLE,
    CA_BUNDLE_KEY,
    INTEGRATION_SECRETS,
    LANGFUSE_SECRET,
    MLFLOW_SECRET,
    RUNNER_SECRETS,
    VERTEX_SECRET,
)
from controller.resources import CONFIGMAPS, SECRETS
from controller.watchers.cache import KindSpec
from controller.watchers.store import metadata_of
from controller.watchers.transforms import trim_metadata

MINIO_SECRET = "minio-credentials"
ANNOTATION_COPIED_FROM = "vteam.ambient-code/copied-from"
ANNOTATION_SOURCE_HASH = "ambient-code.io/copied-data-hash"
COPIED = frozenset({VERTEX_SECRET, LANGFUSE_SECRET, MLFLOW_SECRET, MINIO_SECRET})
NAMESPACE_SECRETS = frozenset({RUNNER_SECRETS, INTEGRATION_SECRETS, *COPIED})
MLFLOW_KUBERNETES_AUTH = ("kubernetes", "kubernetes-namespaced")


def switched_on(value: str) -> bool:
    """LANGFUSE_ENABLED / MLFLOW_TRACING_ENABLED as the platform reads them (case-sensitive)."""
    return value != "" and value not in ("0", "false")


def _named(names: frozenset[str]) -> Any:
    def keep(obj: dict[str, Any]) -> bool:
        name = metadata_of(obj).get("name")  # total: any object the API server admits
        return isinstance(name, str) and name in names

    return keep


def _namespace_secret(obj: dict[str, Any]) -> dict[str, Any]:
    """Identity, owners and the copy annotations: enough to know it exists and whose copy it is."""
    meta = trim_metadata(obj)
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    kept = {k: annotations[k] for k in (ANNOTATION_COPIED_FROM, ANNOTATION_SOURCE_HASH) if k in annotations}
    if kept:
        meta["annotations"] = kept
    return {"metadata": meta}


def _source_secret(obj: dict[str, Any]) -> dict[str, Any]:
    """What a copy is made of: type, labels and data."""
    meta = trim_metadata(obj)
    labels = (obj.get("metadata") or {}).get("labels")
    if isinstance(labels, dict) and labels:
        meta["labels"] = labels
    return {"metadata": meta, "type": obj.get("type") or "Opaque", "data": obj.get("data") or {}}


def _ca_bundle(obj: dict[str, Any]) -> dict[str, Any]:
    """Which keys the ConfigMap has; a CA bundle's content is not the operator's to hold."""
    keys = sorted({*(obj.get("data") or {}), *(obj.get("binaryData") or {})})
    return {"metadata": trim_metadata(obj), "keys": keys}


NAMESPACE_SECRETS_SPEC = KindSpec(
    SECRETS, transform=_namespace_secret, metadata_only=True, keep=_named(NAMESPACE_SECRETS)
)
CA_BUNDLE_SPEC = KindSpec(CONFIGMAPS, transform=_ca_bundle, field_selector=f"metadata.name={CA_BUNDLE}")
SOURCE_SECRETS_SPEC = KindSpec(SECRETS, transform=_source_secret, keep=_named(COPIED))


def registry_spec(config: OperatorConfig) -> KindSpec:
    return KindSpec(CONFIGMAPS, field_selector=f"metadata.name={config.agent_registry_configmap}")


def has_ca_bundle(configmap: Mapping[str, Any] | None) -> bool:
    return configmap is not None and CA_BUNDLE_KEY in (configmap.get("keys") or ())


def data_hash(source: Mapping[str, Any]) -> str:
    """Names a version of a source's content, so a stale copy is known without reading it."""
    body = json.dumps({"type": source.get("type"), "data": source.get("data")}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def decoded(secret: Mapping[str, Any] | None, key: str) -> str:
    raw = ((secret or {}).get("data") or {}).get(key)
    if not isinstance(raw, str):
        return ""
    try:
        return base64.b64decode(raw).decode("utf-8", "replace").strip()
    except (ValueError, TypeError):
        return ""
