"""The platform objects the loops read: the agent registry snapshot and the platform's caches."""

from __future__ import annotations

from dataclasses import dataclass

from controller.platform.registry import AgentRegistry
from controller.watchers.cache import KindCache


@dataclass
class PlatformCaches:
    """None where not wired (unit tests): the registry then means the flags, a cache 'nothing there'."""

    registry: AgentRegistry | None = None
    namespace_secrets: KindCache | None = None  # the platform's Secrets in managed namespaces (metadata)
    ca_bundles: KindCache | None = None  # trusted-ca-bundle ConfigMaps in managed namespaces (keys)
    sources: KindCache | None = None  # sources of the copied Secrets in the backend namespace (data)
    registry_configmaps: KindCache | None = None  # the registry ConfigMap in the backend namespace
