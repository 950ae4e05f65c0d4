"""The platform's models manifest (`ambient-models` ConfigMap, key `models.json`) and model resolution.

The manifest says which models exist, which are available, which provider serves each, their Vertex
ids, and the default model overall and per provider. Parsing is total: any text yields either an
immutable index or one error message, never an exception. Resolution is one pure function from what
the operator knows at a runner's start to the model the runner gets, or the reason it must not start.

The rules, which the README repeats as a table:
- until the manifest's watch has synced, nothing is decided (no silent fallback to a partial view);
- a manifest that does not exist is not in use: explicit models pass, a session without one gets the
  configured default; unless it is required, then sessions wait for it;
- a loaded manifest is strict: the spec's model must be registered, available and served by the
  session's provider; no model means the manifest's default for that provider;
- a runtime change that orphans the model resets it to the new runtime's default and says so; with no
  safe default the session does not start.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

CONFIGMAP_NAME = "ambient-models"
CONFIGMAP_KEY = "models.json"

# ModelValid reasons
MANIFEST_NOT_LOADED = "ManifestNotLoaded"
MANIFEST_INVALID = "ManifestInvalid"
MANIFEST_NOT_IN_USE = "ManifestNotInUse"
MODEL_AVAILABLE = "ModelAvailable"
DEFAULT_MODEL = "DefaultModel"
UNKNOWN_MODEL = "UnknownModel"
MODEL_UNAVAILABLE = "ModelUnavailable"
ORPHANED_MODEL_RESET = "OrphanedModelReset"
NO_DEFAULT_MODEL = "NoDefaultModel"

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"


@dataclass(frozen=True)
class ModelEntry:
    id: str
    vertex_id: str = ""
    provider: str = ""
    available: bool = False

    def serves(self, provider: str) -> bool:
        """An entry or a runtime without a provider matches any; otherwise they must agree."""
        return not provider or not self.provider or self.provider == provider


@dataclass(frozen=True)
class ModelIndex:
    """The parsed manifest; never changed after parsing (mappings are read-only views)."""

    version: int = 0
    default_model: str = ""
    provider_defaults: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    models: Mapping[str, ModelEntry] = field(default_factory=lambda: MappingProxyType({}))

    def get(self, model: str) -> ModelEntry | None:
        return self.models.get(model)

    def default_for(self, provider: str, vertex: bool) -> ModelEntry | None:
        """The provider's default (providerDefaults, else defaultModel) if it is safe to run."""
        candidates = [self.provider_defaults.get(provider, "")] if provider else []
        candidates.append(self.default_model)
        for candidate in candidates:
            entry = self.models.get(candidate) if candidate else None
            if entry is not None and _usable(entry, provider, vertex):
                return entry
        return None


def _usable(entry: ModelEntry, provider: str, vertex: bool) -> bool:
    return entry.available and entry.serves(provider) and (entry.vertex_id != "" or not vertex)


# -- parsing ---------------------------------------------------------------------------------------


class ManifestError(ValueError):
    pass


def _fields(obj: Any, where: str) -> dict[str, Any]:
    """Keys matched case-insensitively, as the platform's Go decoder does; unknown keys ignored."""
    if not isinstance(obj, Mapping):
        raise ManifestError(f"{where} must be a JSON object")
    return {str(k).lower(): v for k, v in obj.items()}


def _typed(fields: Mapping[str, Any], key: str, kind: type, where: str, default: Any) -> Any:
    value = fields.get(key.lower())
    if value is None:
        return default
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ManifestError(f"{where}.{key} must be an integer")
    if not isinstance(value, kind):
        raise ManifestError(f"{where}.{key} must be a {kind.__name__ if kind is not str else 'string'}")
    return value


def parse_manifest(text: str) -> ModelIndex:
    """models.json -> index; raises ManifestError (one short message) for anything malformed.

    A type mismatch anywhere fails the whole file, as it does for the platform's own readers, so a
    half-understood manifest is never used.
    """
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ManifestError(f"not valid JSON: {str(exc)[:120]}") from None
    top = _fields(raw, "the manifest")
    defaults = _typed(top, "providerDefaults", dict, "manifest", {})
    provider_defaults: dict[str, str] = {}
    for provider, model in defaults.items():
        if not isinstance(model, str):
            raise ManifestError("manifest.providerDefaults values must be strings")
        provider_defaults[str(provider)] = model
    listed = _typed(top, "models", list, "manifest", [])
    models: dict[str, ModelEntry] = {}
    for i, item in enumerate(listed):
        where = f"manifest.models[{i}]"
        entry_fields = _fields(item, where)
        model_id = _typed(entry_fields, "id", str, where, "")
        if not model_id:
            raise ManifestError(f"{where}.id must be a non-empty string")
        entry = ModelEntry(
            id=model_id,
            vertex_id=_typed(entry_fields, "vertexId", str, where, ""),
            provider=_typed(entry_fields, "provider", str, where, ""),
            available=_typed(entry_fields, "available", bool, where, False),
        )
        # As the platform's lookups: the first available entry of an id wins, else the first one.
        known = models.get(model_id)
        if known is None or (entry.available and not known.available):
            models[model_id] = entry
    return ModelIndex(
        version=_typed(top, "version", int, "manifest", 0),
        default_model=_typed(top, "defaultModel", str, "manifest", ""),
        provider_defaults=MappingProxyType(provider_defaults),
        models=MappingProxyType(models),
    )


# -- the manifest as the operator currently knows it -----------------------------------------------


class Known(enum.Enum):
    NOT_LOADED = "not-loaded"  # the watch has not synced yet (or the required manifest is absent)
    ABSENT = "absent"  # synced: no ConfigMap (or no models.json key): the manifest is not in use
    INVALID = "invalid"  # present but malformed, and no good version was ever seen
    LOADED = "loaded"


@dataclass(frozen=True)
class ManifestState:
    known: Known
    index: ModelIndex | None = None
    detail: str = ""  # where it comes from, or why it is not usable; for messages

    @staticmethod
    def loaded(index: ModelIndex, detail: str = "") -> ManifestState:
        return ManifestState(Known.LOADED, index, detail)


NOT_LOADED = ManifestState(Known.NOT_LOADED)
ABSENT = ManifestState(Known.ABSENT)


# -- resolution ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRequest:
    """Everything resolution depends on, so that it can be decided (and tested) as data."""

    model: str  # spec.llmSettings.model, stripped; "" for none
    runtime: str  # the runtime the session will start with
    provider: str  # that runtime's provider; "" when unknown
    previous_runtime: str = ""  # the runtime of its last start, from status; "" when none
    previous_reset_from: str = ""  # the spec model its last start had to replace, if any
    vertex: bool = False
    require_manifest: bool = False
    fallback_default: str = ""  # the configured default, used only while the manifest is not in use


@dataclass(frozen=True)
class Resolution:
    status: str  # ModelValid: True (start), False (fix the spec or manifest), Unknown (wait)
    reason: str
    message: str
    model: str = ""  # the effective model; "" unless status is True
    vertex_id: str = ""
    reset_from: str = ""  # set when an orphaned spec model was replaced by the runtime's default

    @property
    def ok(self) -> bool:
        return self.status == TRUE


def shown(text: str, limit: int = 64) -> str:
    """A model name as messages may show it: printable, and short."""
    clean = "".join(ch if ch.isprintable() else "?" for ch in text)
    return repr(clean if len(clean) <= limit else clean[:limit] + "...")


def _runtime_words(request: ModelRequest) -> str:
    provider = f" (provider {request.provider})" if request.provider else ""
    return f"runtime {request.runtime}{provider}"


def resolve(state: ManifestState, request: ModelRequest) -> Resolution:
    """The model a starting runner gets, or why it must not start yet. Pure; see the unit table."""
    if state.known is Known.NOT_LOADED or (state.known is Known.ABSENT and request.require_manifest):
        why = (
            "the models manifest is required and does not exist"
            if state.known is Known.ABSENT
            else "the models manifest has not been read yet"
        )
        return Resolution(UNKNOWN, MANIFEST_NOT_LOADED, f"{why}; the session starts once it is loaded")
    if state.known is Known.INVALID:
        return Resolution(
            UNKNOWN,
            MANIFEST_INVALID,
            f"the models manifest cannot be used ({state.detail}); the session starts once it is fixed",
        )
    if state.known is Known.ABSENT or state.index is None:
        model = request.model or request.fallback_default
        how = "as given" if request.model else "the operator's default model"
        return Resolution(
            TRUE, MANIFEST_NOT_IN_USE, f"no models manifest is in use: {shown(model)} is used {how}", model
        )
    return _resolve_loaded(state.index, request)


def _resolve_loaded(index: ModelIndex, request: ModelRequest) -> Resolution:
    runtime = _runtime_words(request)
    if not request.model:
        default = index.default_for(request.provider, request.vertex)
        if default is None:
            return _no_default(request, "no model is set")
        return Resolution(
            TRUE,
            DEFAULT_MODEL,
            f"no model is set: using the manifest's default {shown(default.id)} for {runtime}",
            default.id,
            default.vertex_id,
        )
    entry = index.get(request.model)
    if entry is not None and _usable(entry, request.provider, request.vertex):
        return Resolution(
            TRUE,
            MODEL_AVAILABLE,
            f"model {shown(entry.id)} is available for {runtime}",
            entry.id,
            entry.vertex_id,
        )
    runtime_changed = bool(request.previous_runtime) and request.previous_runtime != request.runtime
    orphaned = entry is None or not entry.serves(request.provider)
    if orphaned and (runtime_changed or request.previous_reset_from == request.model):
        return _orphan_reset(index, request)
    if entry is None:
        return Resolution(
            FALSE,
            UNKNOWN_MODEL,
            f"model {shown(request.model)} is not in the models manifest; set a registered model "
            f"for {runtime} or add it to the manifest",
        )
    if not entry.serves(request.provider):
        return Resolution(
            FALSE,
            UNKNOWN_MODEL,
            f"model {shown(request.model)} is registered for provider {entry.provider}, not for {runtime}",
        )
    missing = "not available" if not entry.available else "without a vertexId while Vertex is on"
    return Resolution(
        FALSE,
        MODEL_UNAVAILABLE,
        f"model {shown(request.model)} is {missing} in the models manifest ({runtime})",
    )


def _orphan_reset(index: ModelIndex, request: ModelRequest) -> Resolution:
    """The spec's model belongs to a runtime the session no longer has: use the new one's default."""
    runtime = _runtime_words(request)
    default = index.default_for(request.provider, request.vertex)
    why = f"model {shown(request.model)} is not registered for {runtime}"
    if default is None:
        return _no_default(request, why)
    previous = f" (was {request.previous_runtime})" if request.previous_runtime != request.runtime else ""
    return Resolution(
        TRUE,
        ORPHANED_MODEL_RESET,
        f"{why}{previous}: reset to {shown(default.id)}, the runtime's default; the spec keeps "
        f"{shown(request.model)}",
        default.id,
        default.vertex_id,
        reset_from=request.model,
    )


def _no_default(request: ModelRequest, why: str) -> Resolution:
    return Resolution(
        FALSE,
        NO_DEFAULT_MODEL,
        f"{why}, and the models manifest has no available default model for "
        f"{_runtime_words(request)}; set a registered model or add a default to the manifest",
    )


# -- the runner's env ------------------------------------------------------------------------------


def apply_to_job(job: Mapping[str, Any], container_name: str, model: str, vertex_id: str) -> dict[str, Any]:
    """A copy of the built runner Job with LLM_MODEL (and LLM_MODEL_VERTEX_ID) set to the resolution.

    Pure: the Job builder stays unaware of the manifest. LLM_MODEL is replaced in place;
    LLM_MODEL_VERTEX_ID follows it when the manifest gives one, replacing any value from the spec.
    """
    copied: dict[str, Any] = json.loads(json.dumps(job))
    containers = copied.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    for container in containers:
        if container.get("name") != container_name:
            continue
        env = [
            e
            for e in container.get("env") or []
            if not (vertex_id and e.get("name") == "LLM_MODEL_VERTEX_ID")
        ]
        position = next((i for i, e in enumerate(env) if e.get("name") == "LLM_MODEL"), None)
        if position is None:
            env.append({"name": "LLM_MODEL", "value": model})
            position = len(env) - 1
        else:
            env[position] = {"name": "LLM_MODEL", "value": model}
        if vertex_id:
            env.insert(position + 1, {"name": "LLM_MODEL_VERTEX_ID", "value": vertex_id})
        container["env"] = env
    return copied
