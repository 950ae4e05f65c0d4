"""The "restricted" Pod Security Standard, checked on a pod spec without a cluster.

The rules of https://kubernetes.io/docs/concepts/security/pod-security-standards/ (baseline and
restricted) that a Deployment's pod template can break. The e2e tests also let the API server's
PodSecurity admission judge the same templates.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

ALLOWED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def _containers(pod: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from pod.get(key) or ()


def restricted_violations(pod: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    pod_context = pod.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            found.append(f"pod {key}")
    for volume in pod.get("volumes") or ():
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            found.append(f"volume {volume.get('name')} of type {sorted(kinds)}")
    pod_seccomp = (pod_context.get("seccompProfile") or {}).get("type")
    if pod_context.get("runAsUser") == 0:
        found.append("pod runAsUser 0")
    for container in _containers(pod):
        name = container.get("name")
        context = container.get("securityContext") or {}
        if context.get("privileged"):
            found.append(f"{name}: privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation is not false")
        if not (context.get("runAsNonRoot") is True or pod_context.get("runAsNonRoot") is True):
            found.append(f"{name}: runAsNonRoot is not true")
        if context.get("runAsNonRoot") is False:
            found.append(f"{name}: runAsNonRoot false")
        if context.get("runAsUser") == 0:
            found.append(f"{name}: runAsUser 0")
        seccomp = (context.get("seccompProfile") or {}).get("type") or pod_seccomp
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccompProfile {seccomp}")
        capabilities = context.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or ()):
            found.append(f"{name}: capabilities do not drop ALL")
        if set(capabilities.get("add") or ()) - {"NET_BIND_SERVICE"}:
            found.append(f"{name}: adds capabilities {capabilities.get('add')}")
        for port in container.get("ports") or ():
            if port.get("hostPort"):
                found.append(f"{name}: hostPort")
    return found


def fixed_ids(pod: Mapping[str, Any]) -> list[str]:
    """Pinned UIDs/GIDs, which OpenShift's restricted-v2 SCC rejects outside the namespace range."""
    found = []
    contexts = [("pod", pod.get("securityContext") or {})]
    contexts += [(str(c.get("name")), c.get("securityContext") or {}) for c in _containers(pod)]
    for where, context in contexts:
        for key in ("runAsUser", "runAsGroup", "fsGroup", "supplementalGroups"):
            if key in context:
                found.append(f"{where}: {key}")
    return found
