"""Loading the API client's configuration, with failures said in one line.

A missing or broken kubeconfig is a mistake in how the operator was started, not a bug: it gets
one line on standard error naming the file and what is wrong, not the loader's two chained
tracebacks. Nothing of the file's content is repeated (a YAML error would otherwise quote the
line around it, which may hold a token).
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from controller.kube import load_api_client


class KubeconfigError(Exception):
    """The API client cannot be configured; the message is one line, safe to print."""


def _default_paths() -> list[str]:
    raw = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    return [p for p in raw.split(os.pathsep) if p]


def load(kubeconfig: str = "") -> k8s_client.ApiClient:
    """An ApiClient (see kube.load_api_client), or KubeconfigError saying why there is none."""
    if kubeconfig and not Path(kubeconfig).is_file():
        raise KubeconfigError(f"kubeconfig {kubeconfig} does not exist or is not a file")
    try:
        return load_api_client(kubeconfig)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise KubeconfigError(
            f"kubeconfig {kubeconfig or os.pathsep.join(_default_paths())} is not valid YAML{where}"
        ) from None
    except k8s_config.ConfigException as exc:
        if kubeconfig:
            raise KubeconfigError(f"kubeconfig {kubeconfig} cannot be used: {exc}") from None
        raise KubeconfigError(
            "no Kubernetes configuration: not running in a cluster (KUBERNETES_SERVICE_HOST is not "
            f"set) and no usable kubeconfig at {os.pathsep.join(_default_paths())} ({exc}); "
            "pass --kubeconfig or set KUBECONFIG"
        ) from None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise KubeconfigError(
            f"kubeconfig {kubeconfig or os.pathsep.join(_default_paths())} cannot be used: "
            f"{type(exc).__name__}: {str(exc)[:200]}"
        ) from None
