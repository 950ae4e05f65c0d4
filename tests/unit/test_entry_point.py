"""The command line's first impressions: --version, and a kubeconfig that cannot be used."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from controller.version import version

REPO = Path(__file__).resolve().parents[2]


def run_operator(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBERNETES_", "KUBECONFIG"))}
    env.update(HOME=str(home), PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "controller", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_version(tmp_path: Path) -> None:
    result = run_operator("--version", home=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"agentic-operator {version()}"
    assert version() != "0+unknown"  # the venv has the package installed


@pytest.mark.parametrize(
    ("kubeconfig", "expected"),
    [
        ("missing", "kubeconfig {path} does not exist or is not a file"),
        (
            "apiVersion: v1\nusers:\n- user: {token: 's3cret'\n",
            "kubeconfig {path} is not valid YAML (line 4, column 1)",
        ),
        ("apiVersion: v1\nkind: Config\n", "kubeconfig {path} cannot be used: "),
        (None, "no Kubernetes configuration: not running in a cluster"),
    ],
    ids=["missing", "broken-yaml", "no-context", "none-at-all"],
)
def test_an_unusable_kubeconfig_is_one_line(tmp_path: Path, kubeconfig: str | None, expected: str) -> None:
    path = tmp_path / "kubeconfig"
    args = ["run"]
    if kubeconfig is not None:
        if kubeconfig != "missing":
            path.write_text(kubeconfig)
        args += ["--kubeconfig", str(path)]
    result = run_operator(*args, home=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("agentic-operator: " + expected.format(path=path)), lines[0]
    assert "Traceback" not in result.stderr and "s3cret" not in result.stderr
