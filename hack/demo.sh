#!/usr/bin/env bash
# The operator's lifecycle, live, on the local control plane:
#   hack/demo.sh        start cluster + operator, create sample sessions, stop and restart one
#   hack/demo.sh down   stop the demo operator and the cluster
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
py="$repo/.venv/bin/python"
state="${LOCAL_CLUSTER_DIR:-$repo/.local-cluster}"
pidfile="$state/demo-operator.pid"
ns=agentic-demo

if [ "${1:-}" = "down" ]; then
  [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  bash hack/local-cluster.sh down
  exit 0
fi

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
eval "$(bash hack/local-cluster.sh up)"
bin=$(bash hack/build-binaries.sh)
k() { "$bin/kubectl" "$@"; }
show() { k get agenticsessions -n "$ns" -o custom-columns='NAME:.metadata.name,PHASE:.status.phase,READY:.status.conditions[?(@.type=="Ready")].reason,MESSAGE:.status.conditions[?(@.type=="Ready")].message'; }
wait_phase() {  # name phase timeout
  for _ in $(seq 1 "$(( $3 * 2 ))"); do
    [ "$(k get as "$1" -n "$ns" -o jsonpath='{.status.phase}' 2>/dev/null)" = "$2" ] && return 0
    sleep 0.5
  done
  echo "(still not $2 after $3s)"
}

say "Nodes (kwok fakes them; kube-scheduler and kube-controller-manager are real)"
k get nodes
say "Installing the AgenticSession CRD and a managed namespace"
k apply -k manifests/crd >/dev/null
k wait --for=condition=Established crd/agenticsessions.vteam.ambient-code crd/projectsettings.vteam.ambient-code --timeout=60s >/dev/null
k create namespace "$ns" --dry-run=client -o yaml | k apply -f - >/dev/null
k label namespace "$ns" ambient-code.io/managed=true --overwrite >/dev/null
# The runner's API keys, as the platform keeps them; without it a session waits in Pending.
k -n "$ns" create secret generic ambient-runner-secrets --from-literal=ANTHROPIC_API_KEY=demo \
  --dry-run=client -o yaml | k apply -f - >/dev/null

say "Starting the operator (log: $state/demo-operator.log)"
[ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
mkdir -p "$state"
nohup "$py" -m controller run --kubeconfig "$KUBECONFIG" --metrics-bind-address 127.0.0.1:18080 \
  --health-probe-bind-address 127.0.0.1:18081 --runner-pod-annotation-prefixes kwok.ambient-code.io/ \
  > "$state/demo-operator.log" 2>&1 &
echo $! > "$pidfile"
for _ in $(seq 1 60); do curl -fs http://127.0.0.1:18081/readyz >/dev/null 2>&1 && break; sleep 0.5; done
echo "ready: metrics on http://127.0.0.1:18080/metrics"

say "Creating four sample sessions"
k apply -n "$ns" -f hack/demo/sessions.yaml
wait_phase interactive-chat Running 60
show
say "A continuation: reuses interactive-chat's workspace"
k apply -n "$ns" -f - <<YAML
apiVersion: vteam.ambient-code/v1alpha1
kind: AgenticSession
metadata: {name: follow-up, annotations: {vteam.ambient-code/parent-session-id: interactive-chat}}
spec: {initialPrompt: "Continue where we left off."}
YAML
wait_phase follow-up Running 60
show

say "Waiting for the batch run to complete and the OOM runner to fail (about 20 s)"
wait_phase batch-report Completed 60
wait_phase out-of-memory Failed 60
show

say "Stopping interactive-chat (the backend sets ambient-code.io/desired-phase=Stopped)"
k annotate as interactive-chat -n "$ns" ambient-code.io/desired-phase=Stopped --overwrite >/dev/null
wait_phase interactive-chat Stopped 60
show
echo "the workspace survives:"; k get pvc -n "$ns" ambient-workspace-interactive-chat

say "Restarting it (desired-phase=Running): same workspace, IS_RESUME=true"
k annotate as interactive-chat -n "$ns" ambient-code.io/desired-phase=Running --overwrite >/dev/null
wait_phase interactive-chat Running 60
show
k get job interactive-chat-runner -n "$ns" -o jsonpath='{range .spec.template.spec.containers[0].env[?(@.name=="IS_RESUME")]}IS_RESUME={.value}{"\n"}{end}'

say "kubectl describe tells the story"
k describe as interactive-chat -n "$ns" | sed -n '/^Events:/,$p'

say "The operator keeps running. Try:"
cat <<TXT
  export KUBECONFIG=$KUBECONFIG
  $bin/kubectl get as -n $ns -w
  $bin/kubectl annotate as interactive-chat -n $ns ambient-code.io/desired-phase=Stopped --overwrite
  $bin/kubectl annotate as batch-report -n $ns ambient-code.io/temp-content-requested=true
  curl -s http://127.0.0.1:18080/metrics | grep controller_runtime_reconcile_total
  hack/demo.sh down      # stop the operator and the cluster
TXT
