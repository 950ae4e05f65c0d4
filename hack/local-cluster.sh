#!/usr/bin/env bash
# Local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok)
# as plain processes: hack/local-cluster.sh up | down | env | status | restart COMPONENT
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
python=$repo/.venv/bin/python
[ -x "$python" ] || python=python3
exec "$python" "$repo/hack/local_cluster.py" "$@"
