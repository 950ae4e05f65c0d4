#!/usr/bin/env bash
# Regenerates the wrapper Go modules that build the control plane from the Go module proxy.
#
# k8s.io/kubernetes requires its staging modules at v0.0.0 and resolves them with replace
# directives, which Go ignores in dependencies. The wrapper re-states those replaces, mapping each
# staging module to the published v0.X.Y. The list is read from the upstream go.mod, never by hand.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

staging="v0.${K8S_VERSION#v1.}"
k8s_dir="$here/build/k8s"
rm -f "$k8s_dir/go.mod" "$k8s_dir/go.sum"
mkdir -p "$k8s_dir"
cd "$k8s_dir"
go mod init local.invalid/k8s-binaries >/dev/null 2>&1
upstream_gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
go mod edit -go="$(awk '/^go /{print $2; exit}' "$upstream_gomod")"
grep '^godebug' "$upstream_gomod" >> go.mod || true
modules=$(sed -n 's#^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/.*#\1#p' "$upstream_gomod")
[ -n "$modules" ] || { echo "no staging replaces found in $upstream_gomod" >&2; exit 1; }
for m in $modules; do go mod edit -replace="$m=$m@$staging"; done
go get "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" \
       "k8s.io/kubernetes/cmd/kube-controller-manager@$K8S_VERSION" \
       "k8s.io/kubernetes/cmd/kube-scheduler@$K8S_VERSION" \
       "k8s.io/kubernetes/cmd/kubectl@$K8S_VERSION"
echo "k8s wrapper: $(echo "$modules" | wc -w) staging modules mapped to $staging"

etcd_dir="$here/build/etcd"
rm -f "$etcd_dir/go.mod" "$etcd_dir/go.sum"
mkdir -p "$etcd_dir"
cd "$etcd_dir"
go mod init local.invalid/etcd-binary >/dev/null 2>&1
go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
echo "etcd wrapper: server/v3 $ETCD_VERSION"
