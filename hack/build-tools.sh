#!/usr/bin/env bash
# Builds (once) helm, prometheus and promtool from the Go module proxy into a cache keyed by the
# pins in hack/tools.env and the Go version, and prints the directory that holds them. Same cache
# root and locking as hack/build-binaries.sh; a second call with the same pins is a no-op.
#
#   helm                 <- go install helm.sh/helm/v3/cmd/helm@HELM_VERSION
#   prometheus, promtool <- go install github.com/prometheus/prometheus/cmd/...@PROMETHEUS_VERSION
#
# Prometheus is built with the tag remove_all_sd (no cloud service discovery: static targets are
# all the tests use) and without the embedded web UI (the HTTP API is all they query); that cuts
# the build to a fraction. `go install pkg@version` verifies every module against sum.golang.org.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tools.env
source "$here/tools.env"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false

log() { echo "build-tools: $*" >&2; }
cache_root=${AGENTIC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/agentic-operator}
wanted=(helm prometheus promtool)
all_present() { for b in "${wanted[@]}"; do [ -x "$1/$b" ] || return 1; done; }

# Keyed on the contents of the pins and of this script (not on the path it was called by).
pins="tools_helm-${HELM_VERSION}_prometheus-${PROMETHEUS_VERSION}_$(cat "$here/tools.env" "$here/build-tools.sh" | sha256sum | cut -c1-12)"
if ! command -v go >/dev/null; then
  for dir in "$cache_root"/bin/"$pins"_*; do
    if [ -d "$dir" ] && all_present "$dir"; then echo "$dir"; exit 0; fi
  done
  log "Go is not installed and no cached build of $pins exists"; exit 3
fi
bin="$cache_root/bin/${pins}_$(go env GOVERSION)"
if all_present "$bin"; then echo "$bin"; exit 0; fi

mkdir -p "$cache_root/bin"
exec 9>"$cache_root/bin/.build-tools.lock"
flock 9
if all_present "$bin"; then echo "$bin"; exit 0; fi

partial="$bin.partial"
rm -rf "$partial" && mkdir -p "$partial"
started=$(date +%s)

# As Helm's Makefile does: the Kubernetes version that `helm template` and `helm lint` assume is
# the one of the client-go module Helm is built with (otherwise a built-in v1.20).
helm_gomod=$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
k8s_minor=$(sed -n 's#^[[:space:]]*k8s.io/client-go v0\.\([0-9]*\)\..*#\1#p' "$helm_gomod")
[ -n "$k8s_minor" ] || { log "cannot read the client-go version from $helm_gomod"; exit 1; }
log "building helm $HELM_VERSION (Kubernetes 1.$k8s_minor)"
h=helm.sh/helm/v3
GOBIN="$partial" go install -trimpath \
  -ldflags "-s -w -X $h/internal/version.version=$HELM_VERSION -X $h/pkg/chartutil.k8sVersionMajor=1 -X $h/pkg/chartutil.k8sVersionMinor=$k8s_minor -X $h/pkg/lint/rules.k8sVersionMajor=1 -X $h/pkg/lint/rules.k8sVersionMinor=$k8s_minor" \
  "$h/cmd/helm@$HELM_VERSION"

log "building prometheus and promtool $PROMETHEUS_VERSION"
p=github.com/prometheus/common/version
minor=${PROMETHEUS_VERSION#v0.}  # v0.316.0 -> 316.0 -> Prometheus 3.16.0
GOBIN="$partial" go install -trimpath -tags remove_all_sd \
  -ldflags "-s -w -X $p.Version=${minor:0:1}.${minor:1} -X $p.Branch=module -X $p.Revision=$PROMETHEUS_VERSION" \
  "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION" \
  "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION"

rm -rf "$bin" && mv "$partial" "$bin"
all_present "$bin" || { log "binaries missing in $bin"; exit 1; }
log "built in $(( $(date +%s) - started ))s into $bin ($(du -sh "$bin" | cut -f1))"
echo "$bin"
