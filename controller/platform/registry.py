"""The platform's agent registry: which runtimes exist and how their runner pod looks.

The registry is a JSON array in ConfigMap `ambient-agent-registry` (key `agent-registry.json`) of the
backend namespace. It is parsed the way the platform's Go components parse it, so a file they accept
is accepted here and a file they refuse is refused here: keys match case-insensitively, unknown keys
are ignored, and one value of the wrong type fails the whole file. A parsed registry is an immutable
snapshot; a change replaces the snapshot and applies to the next runner created, never to a running
one. Without a usable registry the operator's flags describe the one runtime it runs.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from controller.config import OperatorConfig

log = logging.getLogger("controller.platform.registry")

REGISTRY_KEY = "agent-registry.json"
RUNNER_TYPE_ENV = "RUNNER_TYPE"
PERSISTENCE_PVC = "pvc"
PERSISTENCE_S3 = "s3"
PERSISTENCE_NONE = "none"
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class Runtime:
    """One registry entry, with the registry's zero values: the pod builder applies the defaults."""

    id: str
    provider: str = ""
    image: str = ""
    port: int = 0
    env: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    # {"requests": {"cpu": ..., "memory": ...}, "limits": {...}}; a key left out keeps the flag's value.
    resources: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: _EMPTY)
    state_dir: str = ""
    state_sync_image: str = ""
    workspace_size: str = ""
    termination_grace: int = 0
    persistence: str = ""
    seed_clone_repos: bool = False
    seed_hydrate_state: bool = False
    from_registry: bool = True

    @property
    def storage(self) -> str:
        """pvc (unset, or 'pvc': the operator's workspace PVC), s3, or none."""
        value = self.persistence.strip().lower()
        return value if value in (PERSISTENCE_S3, PERSISTENCE_NONE) else PERSISTENCE_PVC


def flag_runtime(runtime_id: str) -> Runtime:
    """The runtime the flags describe, used while no registry is loaded."""
    return Runtime(id=runtime_id, from_registry=False)


class RegistryError(ValueError):
    """The file is not a registry the platform's parser would accept."""


# -- Go-like decoding ------------------------------------------------------------------------------

_Kind = type | tuple[type, ...]


def _fields(obj: Any, where: str) -> dict[str, Any]:
    """An object's keys folded to lower case (Go matches struct fields case-insensitively)."""
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise RegistryError(f"{where} must be an object")
    return {str(k).lower(): v for k, v in obj.items()}


def _typed(fields: Mapping[str, Any], key: str, kind: str, where: str) -> Any:
    value = fields.get(key.lower())
    if value is None:
        return None
    ok = {
        "str": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
    }[kind]
    if not ok:
        raise RegistryError(f"{where}.{key} must be a {'string' if kind == 'str' else kind}")
    return value


def _string_map(value: Any, where: str) -> Mapping[str, str]:
    if value is None:
        return _EMPTY
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise RegistryError(f"{where} must be an object of strings")
    return MappingProxyType({str(k): v for k, v in value.items()})


def _resources(value: Any, where: str) -> Mapping[str, Mapping[str, str]]:
    fields = _fields(value, where)
    found: dict[str, Mapping[str, str]] = {}
    for part in ("requests", "limits"):
        sub = _fields(fields.get(part), f"{where}.{part}")
        kept = {}
        for key in ("cpu", "memory"):
            text = _typed(sub, key, "str", f"{where}.{part}")
            if text:
                kept[key] = text
        if kept:
            found[part] = MappingProxyType(kept)
    return MappingProxyType(found)


def _runtime(entry: Any, index: int) -> Runtime:
    where = f"entry {index}"
    top = _fields(entry, where)
    for key in ("displayName", "description", "framework", "featureGate"):
        _typed(top, key, "str", where)
    auth = _fields(top.get("auth"), f"{where}.auth")
    _typed(auth, "secretKeyLogic", "str", f"{where}.auth")
    _typed(auth, "vertexSupported", "bool", f"{where}.auth")
    keys = auth.get("requiredsecretkeys")
    if keys is not None and not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        raise RegistryError(f"{where}.auth.requiredSecretKeys must be an array of strings")
    container = _fields(top.get("container"), f"{where}.container")
    sandbox = _fields(top.get("sandbox"), f"{where}.sandbox")
    seed = _fields(sandbox.get("seed"), f"{where}.sandbox.seed")
    cw, sw = f"{where}.container", f"{where}.sandbox"
    return Runtime(
        id=_typed(top, "id", "str", where) or "",
        provider=_typed(top, "provider", "str", where) or "",
        image=_typed(container, "image", "str", cw) or "",
        port=_typed(container, "port", "int", cw) or 0,
        env=_string_map(container.get("env"), f"{cw}.env"),
        resources=_resources(container.get("resources"), f"{cw}.resources"),
        state_dir=_typed(sandbox, "stateDir", "str", sw) or "",
        state_sync_image=_typed(sandbox, "stateSyncImage", "str", sw) or "",
        workspace_size=_typed(sandbox, "workspaceSize", "str", sw) or "",
        termination_grace=_typed(sandbox, "terminationGracePeriod", "int", sw) or 0,
        persistence=_typed(sandbox, "persistence", "str", sw) or "",
        seed_clone_repos=bool(_typed(seed, "cloneRepos", "bool", f"{sw}.seed")),
        seed_hydrate_state=bool(_typed(seed, "hydrateState", "bool", f"{sw}.seed")),
    )


def parse_registry(text: str) -> Mapping[str, Runtime]:
    """Runtimes by id; the first entry of an id wins, as in the platform's lookup."""
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise RegistryError(f"not valid JSON: {str(exc)[:120]}") from None
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise RegistryError("must be a JSON array of runtimes")
    found: dict[str, Runtime] = {}
    for index, entry in enumerate(raw):
        runtime = _runtime(entry, index)
        found.setdefault(runtime.id, runtime)
    return MappingProxyType(found)


# -- selection -------------------------------------------------------------------------------------


def runtime_id_of(session: Mapping[str, Any], config: OperatorConfig) -> str:
    """spec.runnerType, else spec.environmentVariables.RUNNER_TYPE, else the configured default."""
    spec = session.get("spec") if isinstance(session, Mapping) else None
    spec = spec if isinstance(spec, Mapping) else {}
    chosen = spec.get("runnerType")
    if isinstance(chosen, str) and chosen.strip():
        return chosen.strip()
    env = spec.get("environmentVariables")
    from_env = env.get(RUNNER_TYPE_ENV) if isinstance(env, Mapping) else None
    if isinstance(from_env, str) and from_env.strip():
        return from_env.strip()
    return config.default_runner_type


@dataclass(frozen=True)
class RegistryView:
    """One immutable snapshot: what a runner created now is built from."""

    runtimes: Mapping[str, Runtime] | None  # None: no usable registry, the flags apply
    default_runtime_id: str
    source: str = ""  # where the snapshot came from, for messages

    @property
    def loaded(self) -> bool:
        return self.runtimes is not None

    def lookup(self, runtime_id: str) -> Runtime | None:
        """The runtime; None only for an id the loaded registry lacks."""
        if self.runtimes is None:
            return flag_runtime(runtime_id)
        return self.runtimes.get(runtime_id)


def _configmap_text(configmap: Mapping[str, Any] | None) -> str | None:
    data = (configmap or {}).get("data") or {}
    value = data.get(REGISTRY_KEY) if isinstance(data, Mapping) else None
    return value if isinstance(value, str) else None


class AgentRegistry:
    """The current snapshot, replaced when the watched ConfigMap changes.

    Readers take `view()` once per runner they build and never see a half-applied change. A missing
    or malformed registry falls back to the file given by --agent-registry-file, else to the flags;
    `on_problem` is told once per distinct problem (a Warning Event and one log line).
    """

    def __init__(self, config: OperatorConfig, on_problem: Callable[[str], None] | None = None):
        self.config = config
        self.on_problem = on_problem
        self._lock = threading.Lock()
        self._view = RegistryView(None, config.default_runner_type, "flags")
        self._last_problem: str | None = None
        self._listeners: list[Callable[[RegistryView], None]] = []

    def view(self) -> RegistryView:
        return self._view

    def add_listener(self, listener: Callable[[RegistryView], None]) -> None:
        self._listeners.append(listener)

    def apply_configmap(self, configmap: Mapping[str, Any] | None) -> RegistryView:
        """Takes the ConfigMap as it is now (None: absent) and publishes the resulting snapshot."""
        name = f"ConfigMap {self.config.platform_namespace}/{self.config.agent_registry_configmap}"
        text = _configmap_text(configmap)
        problem: str | None = None
        runtimes: Mapping[str, Runtime] | None = None
        source = name
        if configmap is None:
            problem = f"{name} does not exist"
        elif text is None:
            problem = f"{name} has no key {REGISTRY_KEY}"
        else:
            try:
                runtimes = parse_registry(text)
            except RegistryError as exc:
                problem = f"{name} key {REGISTRY_KEY} is malformed: {exc}"
        if runtimes is None:
            runtimes, source = self._from_file()
        view = RegistryView(
            runtimes, self.config.default_runner_type, source if runtimes is not None else "flags"
        )
        with self._lock:
            changed = view != self._view
            self._view = view
            report = problem is not None and problem != self._last_problem
            self._last_problem = problem
        if report and problem is not None:
            fallback = f"using {source}" if runtimes is not None else "using the operator's flags"
            message = f"agent registry unavailable: {problem}; {fallback}"
            log.warning(message)
            if self.on_problem is not None:
                self.on_problem(message)
        elif problem is None and changed:
            log.info("agent registry loaded from %s: %s", source, ", ".join(sorted(runtimes or {})))
        if changed:
            for listener in self._listeners:
                listener(view)
        return view

    def _from_file(self) -> tuple[Mapping[str, Runtime] | None, str]:
        path = self.config.agent_registry_path
        if not path:
            return None, "flags"
        try:
            with open(path, encoding="utf-8") as handle:
                return parse_registry(handle.read()), f"file {path}"
        except (OSError, RegistryError) as exc:
            log.warning("agent registry file %s not used: %s", path, str(exc)[:200])
            return None, "flags"
