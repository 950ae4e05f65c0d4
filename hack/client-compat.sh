#!/usr/bin/env bash
# Runs the client-facing unit tests again with the other supported major of the `kubernetes`
# client: 36 when the venv has 37, 37 otherwise. The other client (with its dependencies) is
# installed once into a cache directory outside the repository and put first on PYTHONPATH, so
# the venv itself is never changed. Usage: hack/client-compat.sh [python]
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-.venv/bin/python}
installed=$("$python" -c 'import importlib.metadata as m; print(m.version("kubernetes"))')
case "${installed%%.*}" in
  37) other=36.0.3 ;;
  *) other=37.0.2 ;;
esac
cache_root=${AGENTIC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/agentic-operator}
py=$("$python" -c 'import sys; print(f"py{sys.version_info[0]}{sys.version_info[1]}")')
target="$cache_root/pip/kubernetes-$other-$py"
if [ ! -f "$target/.complete" ]; then
  rm -rf "$target"
  "$python" -m pip install --quiet --disable-pip-version-check --target "$target" "kubernetes==$other"
  touch "$target/.complete"
fi
echo "client-compat: venv has kubernetes $installed; testing with kubernetes $other"
PYTHONPATH="$target" "$python" -c "import kubernetes, sys; sys.exit(kubernetes.__version__ != '$other')" \
  || { echo "client-compat: kubernetes $other is not the one imported from $target" >&2; exit 1; }
PYTHONPATH="$target${PYTHONPATH:+:$PYTHONPATH}" "$python" -m pytest -q -p no:cacheprovider \
  tests/unit/test_kube_client.py tests/unit/test_lean_client.py
