"""Loads only the parts of the official client that the operator uses.

`import kubernetes` runs the package's `__init__`, which imports every generated API class and
model: about a thousand modules and 44 MiB of resident memory, a third of the operator's budget. The
operator uses the client's Configuration, its ApiClient (connection pool and authentication) and
its config loaders; it decodes JSON into dicts itself and never touches a model class.

`install()` registers the packages `kubernetes`, `kubernetes.client` and `kubernetes.client.models`
without running their `__init__` modules, imports the few submodules the loaders need, and exposes
ApiClient and Configuration on `kubernetes.client` as the loaders expect. It must run before anything
else imports `kubernetes`; when something already has (tests, a program using the whole client), it
does nothing, so the full client keeps working there. The operator's entry point calls it first.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

_BARE_PACKAGES = ("kubernetes", "kubernetes.client", "kubernetes.client.models")


def _bare_package(name: str) -> ModuleType:
    """The package as an empty module with its search path, so that its submodules import alone."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError(f"{name} is not an installed package")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    return module


def install() -> bool:
    """True when the lean client was installed, False when `kubernetes` was already imported."""
    if "kubernetes" in sys.modules:
        return False
    try:
        for name in _BARE_PACKAGES:
            _bare_package(name)
        client = sys.modules["kubernetes.client"]
        client.Configuration = importlib.import_module("kubernetes.client.configuration").Configuration  # type: ignore[attr-defined]
        client.ApiClient = importlib.import_module("kubernetes.client.api_client").ApiClient  # type: ignore[attr-defined]
        importlib.import_module("kubernetes.config")
    except Exception:
        # Whatever a future client release changes, the operator still starts, with the whole client.
        for name in [m for m in sys.modules if m == "kubernetes" or m.startswith("kubernetes.")]:
            del sys.modules[name]
        return False
    return True
