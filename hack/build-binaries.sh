#!/usr/bin/env bash
# Builds (once) the control-plane binaries into a cache keyed by the pinned versions, the wrapper
# modules and the Go version, and prints the directory that holds them. With the same pins a second
# call is a no-op; concurrent calls wait for each other instead of building into the same place.
#
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl  <- hack/build/k8s (wrapper)
#   etcd                                                               <- hack/build/etcd (wrapper)
#   kwok                                                               <- go install @KWOK_VERSION
#
# The cache lives outside the repository (git-ignored by construction, shared by every clone):
# ${AGENTIC_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/agentic-operator}/bin/<key>.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"

log() { echo "build-binaries: $*" >&2; }
cache_root=${AGENTIC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/agentic-operator}
wanted=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok)
all_present() { for b in "${wanted[@]}"; do [ -x "$1/$b" ] || return 1; done; }

wrappers_hash=$(cat "$here/versions.env" "$here"/build/*/go.mod "$here"/build/*/go.sum | sha256sum | cut -c1-12)
pins="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_${wrappers_hash}"

# A complete cache needs no Go at all: look for any Go version's build of these pins first.
if ! command -v go >/dev/null; then
  for dir in "$cache_root"/bin/"$pins"_*; do
    if [ -d "$dir" ] && all_present "$dir"; then echo "$dir"; exit 0; fi
  done
  log "Go is not installed and no cached build of $pins exists"; exit 3
fi
bin="$cache_root/bin/${pins}_$(go env GOVERSION)"
for dir in "$bin" "${bin}_debian-etcd"; do
  if all_present "$dir"; then echo "$dir"; exit 0; fi
done

mkdir -p "$cache_root/bin"
exec 9>"$cache_root/bin/.build.lock"
flock 9
if all_present "$bin"; then echo "$bin"; exit 0; fi  # built by whoever held the lock

grep -q "k8s.io/kubernetes $K8S_VERSION" "$here/build/k8s/go.mod" || {
  log "hack/build/k8s/go.mod does not pin $K8S_VERSION; run hack/gen-go-wrappers.sh"; exit 2; }
grep -q "go.etcd.io/etcd/server/v3 $ETCD_VERSION" "$here/build/etcd/go.mod" || {
  log "hack/build/etcd/go.mod does not pin $ETCD_VERSION; run hack/gen-go-wrappers.sh"; exit 2; }

partial="$bin.partial"
rm -rf "$partial" && mkdir -p "$partial"
started=$(date +%s)

minor=$(echo "$K8S_VERSION" | cut -d. -f2)
v=k8s.io/component-base/version
c=k8s.io/client-go/pkg/version
ldflags="-s -w -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
ldflags+=" -X $c.gitVersion=$K8S_VERSION -X $c.gitMajor=1 -X $c.gitMinor=$minor -X $c.gitTreeState=clean"
log "building Kubernetes $K8S_VERSION (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl)"
(cd "$here/build/k8s" && go build -trimpath -tags selinux,notest -ldflags "$ldflags" -o "$partial/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)

log "building etcd $ETCD_VERSION"
if ! (cd "$here/build/etcd" && go build -trimpath -ldflags "-s -w" -o "$partial/etcd" go.etcd.io/etcd/server/v3); then
  if [ -x /usr/bin/etcd ]; then
    # The binaries then differ from the pins, so they get a cache directory that says so.
    log "WARNING: the etcd build failed; falling back to Debian's etcd-server ($(/usr/bin/etcd --version | head -1))"
    ln -sf /usr/bin/etcd "$partial/etcd"
    bin="$cache_root/bin/${pins}_$(go env GOVERSION)_debian-etcd"
  else
    log "the etcd build failed and Debian's etcd-server is not installed (apt-get install etcd-server)"; exit 1
  fi
fi

log "installing kwok $KWOK_VERSION"
GOFLAGS=-buildvcs=false GOBIN="$partial" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"

rm -rf "$bin" && mv "$partial" "$bin"
all_present "$bin" || { log "binaries missing in $bin"; exit 1; }
log "built in $(( $(date +%s) - started ))s into $bin ($(du -sh "$bin" | cut -f1))"
echo "$bin"
