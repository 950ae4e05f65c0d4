"""The operator's version, as installed (package metadata), for --version and the User-Agent."""

from __future__ import annotations

from importlib import metadata


def version() -> str:
    try:
        return metadata.version("agentic-operator")
    except metadata.PackageNotFoundError:
        return "0+unknown"  # run from a source tree that was never installed
