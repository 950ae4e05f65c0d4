"""The operator's entry point loads the official client without its generated models.

Each check runs in a fresh interpreter: whether the lean client can be installed depends on what the
process imported before, and this test process has long imported the whole client.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

KUBECONFIG = """
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: abc}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
"""


def run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_entry_point_loads_the_client_without_models_and_still_reads_a_kubeconfig(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    out = run_python(
        f"""
        import sys
        import controller.__main__
        import controller.operator
        from controller.kube import auth_headers, load_api_client
        client = load_api_client({str(kubeconfig)!r})
        models = [m for m in sys.modules if m.startswith("kubernetes.client.models.")]
        apis = [m for m in sys.modules if m.startswith("kubernetes.client.api.")]
        headers = auth_headers(client.configuration)
        print(client.configuration.host, len(models), len(apis), headers["Authorization"])
        """
    )
    assert out == "https://127.0.0.1:6443 0 0 Bearer abc"


def test_install_does_nothing_once_the_whole_client_is_loaded() -> None:
    out = run_python(
        """
        import kubernetes.client
        from controller import lean_client
        print(lean_client.install(), hasattr(kubernetes.client, "CoreV1Api"))
        """
    )
    assert out == "False True"
