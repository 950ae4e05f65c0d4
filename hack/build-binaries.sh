#!/usr/bin/env bash
# Builds (once) the control-plane binaries into a cache keyed by the pinned versions and the Go
# version, and prints the directory that holds them. A second call with the same pins is a no-op.
#
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl  <- hack/build/k8s (wrapper)
#   etcd                                                               <- hack/build/etcd (wrapper)
#   kwok                                                               <- go install @KWOK_VERSION
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"

command -v go >/dev/null || { echo "build-binaries: Go is not installed" >&2; exit 3; }
go_version=$(go env GOVERSION)
cache_root=${AGENTIC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/agentic-operator}
key="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_${go_version}"
bin="$cache_root/bin/$key"
wanted=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok)

complete() { for b in "${wanted[@]}"; do [ -x "$bin/$b" ] || return 1; done; }
if complete; then echo "$bin"; exit 0; fi

grep -q "k8s.io/kubernetes $K8S_VERSION" "$here/build/k8s/go.mod" || {
  echo "build-binaries: hack/build/k8s/go.mod does not pin $K8S_VERSION; run hack/gen-go-wrappers.sh" >&2; exit 2; }
grep -q "go.etcd.io/etcd/server/v3 $ETCD_VERSION" "$here/build/etcd/go.mod" || {
  echo "build-binaries: hack/build/etcd/go.mod does not pin $ETCD_VERSION; run hack/gen-go-wrappers.sh" >&2; exit 2; }

staging_dir="$bin.partial"
rm -rf "$staging_dir" && mkdir -p "$staging_dir"
log() { echo "build-binaries: $*" >&2; }

minor=$(echo "$K8S_VERSION" | cut -d. -f2)
v=k8s.io/component-base/version
c=k8s.io/client-go/pkg/version
ldflags="-s -w -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
ldflags+=" -X $c.gitVersion=$K8S_VERSION -X $c.gitMajor=1 -X $c.gitMinor=$minor -X $c.gitTreeState=clean"
log "building Kubernetes $K8S_VERSION (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl)"
(cd "$here/build/k8s" && go build -trimpath -tags selinux,notest -ldflags "$ldflags" -o "$staging_dir/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)

log "building etcd $ETCD_VERSION"
if ! (cd "$here/build/etcd" && go build -trimpath -ldflags "-s -w" -o "$staging_dir/etcd" go.etcd.io/etcd/server/v3); then
  if [ -x /usr/bin/etcd ]; then
    log "WARNING: etcd build failed; falling back to Debian's etcd-server at /usr/bin/etcd"
    ln -sf /usr/bin/etcd "$staging_dir/etcd"
  else
    log "etcd build failed and Debian's etcd-server is not installed"; exit 1
  fi
fi

log "installing kwok $KWOK_VERSION"
GOFLAGS=-buildvcs=false GOBIN="$staging_dir" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"

rm -rf "$bin" && mv "$staging_dir" "$bin"
complete || { log "binaries missing in $bin"; exit 1; }
echo "$bin"
