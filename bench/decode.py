"""Micro-benchmark: decoding watch payloads into plain dicts versus the client's model classes.

Every event an informer receives is decoded once; at a relist of thousands of objects this is the
hot path. The official client turns JSON into generated `V1Pod`-style models; the operator keeps
the dicts that `json.loads` produces and freezes them for the cache. This measures both on the
same realistic runner pods (labels, annotations, ownerReferences, managedFields, a long env list).

    python -m bench.decode [--objects 2000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import inspect
import json
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from kubernetes import client

from controller.watchers.store import freeze
from controller.watchers.transforms import pod as pod_transform


def runner_pod(index: int) -> dict[str, Any]:
    env = [{"name": f"VAR_{i}", "value": "x" * 40} for i in range(25)]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"s{index}-runner-abcde",
            "namespace": "bench",
            "uid": f"uid-{index}",
            "resourceVersion": str(1000 + index),
            "creationTimestamp": "2026-11-20T10:00:00Z",
            "labels": {
                "agentic-session": f"s{index}",
                "app.kubernetes.io/managed-by": "agentic-operator",
                "app.kubernetes.io/component": "runner",
                "job-name": f"s{index}-runner",
            },
            "annotations": {"ambient-code.io/session-name": f"s{index}"},
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": f"s{index}-runner",
                    "uid": f"job-{index}",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
            "managedFields": [
                {
                    "manager": "kube-controller-manager",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": "2026-11-20T10:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:metadata": {"f:labels": {f"f:k{i}": {} for i in range(10)}}},
                }
            ],
        },
        "spec": {
            "restartPolicy": "Never",
            "nodeName": "kwok-node-0",
            "serviceAccountName": f"ambient-session-s{index}",
            "containers": [
                {
                    "name": "ambient-code-runner",
                    "image": "registry.invalid/runner:1",
                    "env": env,
                    "ports": [{"name": "agui", "containerPort": 8001, "protocol": "TCP"}],
                    "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}},
                }
            ],
        },
        "status": {
            "phase": "Running",
            "podIP": "10.244.0.7",
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": "2026-11-20T10:00:01Z"}
                for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
            ],
            "containerStatuses": [
                {
                    "name": "ambient-code-runner",
                    "ready": True,
                    "restartCount": 0,
                    "image": "registry.invalid/runner:1",
                    "imageID": "",
                    "state": {"running": {"startedAt": "2026-11-20T10:00:01Z"}},
                }
            ],
        },
    }


class _Payload:
    """What ApiClient.deserialize expects: an object with a `.data` attribute holding the JSON text."""

    def __init__(self, data: str):
        self.data = data


def _models_decoder(api: Any) -> Callable[[str], object]:
    """ApiClient.deserialize as each client major spells it: up to 36 it takes a response object,
    from 37 on the text and its content type."""
    if "content_type" in inspect.signature(api.deserialize).parameters:
        return lambda p: api.deserialize(p, "V1PodList", "application/json")
    return lambda p: api.deserialize(_Payload(p), "V1PodList")


def measure(decode: Callable[[str], object], payload: str, repeat: int) -> tuple[float, int]:
    """Best-of-`repeat` seconds, and the bytes still allocated by one decoded result."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        decode(payload)
        times.append(time.perf_counter() - started)
    tracemalloc.start()
    kept = decode(payload)
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del kept
    return min(times), size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.decode", description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=2000, help="pods in the list payload")
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions (best is reported)")
    args = parser.parse_args(argv)
    payload = json.dumps(
        {
            "apiVersion": "v1",
            "kind": "PodList",
            "metadata": {"resourceVersion": "1"},
            "items": [runner_pod(i) for i in range(args.objects)],
        }
    )
    api = client.ApiClient()
    candidates: dict[str, Callable[[str], object]] = {
        "json.loads -> dict": json.loads,
        "json.loads -> transform -> freeze (the cache)": lambda p: [
            freeze(pod_transform(item)) for item in json.loads(p)["items"]
        ],
        "ApiClient.deserialize -> V1PodList": _models_decoder(api),
    }
    print(
        f"decoding a PodList of {args.objects} runner pods ({len(payload) / 1e6:.1f} MB of JSON), "
        f"best of {args.repeat}"
    )
    print("| decoder | seconds | per object (us) | memory kept (MB) |\n|---|---|---|---|")
    results = {}
    for name, decode in candidates.items():
        seconds, size = measure(decode, payload, args.repeat)
        results[name] = seconds
        print(f"| {name} | {seconds:.3f} | {seconds / args.objects * 1e6:.0f} | {size / 1e6:.1f} |")
    ratio = results["ApiClient.deserialize -> V1PodList"] / results["json.loads -> dict"]
    print(f"\nmodel classes are {ratio:.1f}x slower to decode than plain dicts")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
