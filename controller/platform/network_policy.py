"""The NetworkPolicy `runner-allow-backend-only`: who may reach runner pods in a managed namespace.

Runner pods serve the AG-UI API with the session's credentials; only the platform's backend (and
the operator, deployed beside it) should reach them. Name and shape are the platform's, so a
namespace moved from the platform's operator to this one keeps one policy, not two.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from controller.names import APP_RUNNER, LABEL_APP, LABEL_COMPONENT, LABEL_MANAGED_BY, MANAGED_BY
from controller.resources import Resource
from controller.watchers.store import thaw

NETWORK_POLICIES = Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy")
POLICY_NAME = "runner-allow-backend-only"
COMPONENT_NETWORK_POLICY = "runner-network-policy"


def runner_network_policy(namespace: str, sources: Sequence[str], ports: Sequence[int]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": POLICY_NAME,
            "namespace": namespace,
            "labels": {
                LABEL_APP: "ambient-code",
                "ambient-code.io/managed-by": "operator",
                LABEL_MANAGED_BY: MANAGED_BY,
                LABEL_COMPONENT: COMPONENT_NETWORK_POLICY,
            },
        },
        "spec": desired_spec(sources, ports),
    }


def desired_spec(sources: Sequence[str], ports: Sequence[int]) -> dict[str, Any]:
    """Ingress to runner pods from the `sources` namespaces only, on the runners' `ports`."""
    return {
        "podSelector": {"matchLabels": {LABEL_APP: APP_RUNNER}},
        "policyTypes": ["Ingress"],
        "ingress": [
            {
                "from": [
                    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": source}}}
                    for source in sources
                ],
                "ports": [{"protocol": "TCP", "port": port} for port in ports],
            }
        ],
    }


def in_shape(policy: Mapping[str, Any], sources: Sequence[str], ports: Sequence[int]) -> bool:
    """Whether the live policy says what we want (the API server adds no defaults to these fields)."""
    return thaw(policy.get("spec")) == desired_spec(sources, ports) and is_ours(policy)


def is_ours(policy: Mapping[str, Any]) -> bool:
    labels = (policy.get("metadata") or {}).get("labels") or {}
    return (
        labels.get(LABEL_MANAGED_BY) == MANAGED_BY and labels.get(LABEL_COMPONENT) == COMPONENT_NETWORK_POLICY
    )
