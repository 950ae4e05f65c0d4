"""helm, prometheus and promtool for the tests: built once by hack/build-tools.sh (cached).

The build script is the project's own way to get them (pinned in hack/tools.env); when they are
cached it only prints where they are. A failed build fails the test that needs the tool.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@functools.cache
def _tools_dir() -> Path | str:
    result = subprocess.run(
        ["bash", str(REPO / "hack" / "build-tools.sh")],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if result.returncode != 0:
        return f"hack/build-tools.sh failed ({result.returncode}):\n{result.stderr[-3000:]}"
    return Path(result.stdout.strip().splitlines()[-1])


def tool(name: str) -> str:
    """The path of a built tool; fails the calling test when the tools cannot be built."""
    found = _tools_dir()
    if isinstance(found, str):
        pytest.fail(found, pytrace=False)
    return str(found / name)


def run(
    *command: str, check: bool = True, timeout: float = 120, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(command), capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )  # type: ignore[call-overload]
    if check and result.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}",
            pytrace=False,
        )
    return result  # type: ignore[no-any-return]
