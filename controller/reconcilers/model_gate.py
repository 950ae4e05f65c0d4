"""The model check of the sessions loop, at the one moment it matters: just before a runner Job is built.

It resolves the session's effective model against the models manifest (controller.platform.models),
records the answer as condition ModelValid, says it with an Event when a person has to act or when
the model was replaced, and hands the effective model to the built Job. The spec is never written:
the effective model lives in the runner's env and in status.reconciledModel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller import conditions as c
from controller.config import OperatorConfig
from controller.events import WARNING
from controller.platform.models import (
    FALSE,
    ORPHANED_MODEL_RESET,
    ModelRequest,
    Resolution,
    apply_to_job,
    resolve,
    shown,
)
from controller.platform.registry import RegistryView, runtime_id_of
from controller.reconcile import Key, Result
from controller.reconcilers.context import Context
from controller.reconcilers.runner_inputs import registry_view
from controller.reconcilers.runner_job import RUNNER_CONTAINER
from controller.status import StatusDraft
from controller.watchers.cache import KindCache

WAITING_FOR_MODEL = "WaitingForModel"
# How soon a session waiting on a file-based manifest looks again (a file sends no events).
FILE_RECHECK = 10.0


# Providers of the platform's runtimes, used while no agent registry is loaded.
PROVIDERS = {"claude-agent-sdk": "anthropic", "gemini-cli": "google"}


def runtime_provider(runtime_id: str, view: RegistryView | None) -> str:
    """The provider of a runtime: the loaded registry's entry, else the platform's built-in
    runtimes ("" unknown)."""
    runtime = view.lookup(runtime_id) if view is not None else None
    if runtime is not None and runtime.from_registry:
        return runtime.provider
    return PROVIDERS.get(runtime_id, "")


def session_runtime(
    session: Mapping[str, Any], config: OperatorConfig, view: RegistryView | None = None
) -> tuple[str, str]:
    """(runtime id, provider) the session starts with: the id as the agent registry selects it
    (spec.runnerType, else RUNNER_TYPE of the spec, else the default runtime)."""
    runtime_id = runtime_id_of(session, config)
    return runtime_id, runtime_provider(runtime_id, view)


def vertex_mode(config: OperatorConfig) -> bool:
    """Whether runners use Vertex AI (--use-vertex, or the original's CLAUDE_CODE_USE_VERTEX)."""
    return config.use_vertex


# ----------------------------------------------------------------------------------------------------


def _spec_model(session: Mapping[str, Any]) -> str:
    spec = session.get("spec") if isinstance(session.get("spec"), Mapping) else {}
    llm = (spec or {}).get("llmSettings")
    model = llm.get("model") if isinstance(llm, Mapping) else None
    return model.strip() if isinstance(model, str) else ""


def _previous(session: Mapping[str, Any]) -> Mapping[str, Any]:
    status = session.get("status") if isinstance(session.get("status"), Mapping) else {}
    recorded = (status or {}).get("reconciledModel")
    return recorded if isinstance(recorded, Mapping) else {}


@dataclass(frozen=True)
class ModelGate:
    resolution: Resolution
    runtime: str
    retry: Result

    @property
    def ok(self) -> bool:
        return self.resolution.ok

    def apply(self, job: Mapping[str, Any]) -> dict[str, Any]:
        return apply_to_job(job, RUNNER_CONTAINER, self.resolution.model, self.resolution.vertex_id)

    def describe(self, draft: StatusDraft, job_created: bool) -> None:
        """ModelValid always; status.reconciledModel once the Job carrying the model exists."""
        r = self.resolution
        draft.set_condition(c.MODEL_VALID, r.status, r.reason, r.message)
        if not job_created:
            return
        recorded: dict[str, Any] = {
            "model": r.model,
            "status": "Applied",
            "appliedAt": c.now_rfc3339(),
            "runtime": self.runtime,
            "message": r.message[:512],
        }
        if r.reset_from:
            recorded["resetFrom"] = r.reset_from
        if r.vertex_id:
            recorded["vertexId"] = r.vertex_id
        draft.set("reconciledModel", recorded)


def check_model(ctx: Context, session: Mapping[str, Any]) -> ModelGate:
    """Resolves the model of a runner about to be built; a blocking answer is reported with an Event."""
    runtime, provider = session_runtime(session, ctx.config, registry_view(ctx))
    previous = _previous(session)
    request = ModelRequest(
        model=_spec_model(session),
        runtime=runtime,
        provider=provider,
        previous_runtime=str(previous.get("runtime") or ""),
        previous_reset_from=str(previous.get("resetFrom") or ""),
        vertex=vertex_mode(ctx.config),
        require_manifest=ctx.config.require_models_manifest,
        fallback_default=ctx.config.default_model,
    )
    resolution = resolve(ctx.models.state(), request)
    if resolution.status == FALSE:
        ctx.recorder.record(session, WARNING, resolution.reason, resolution.message)
    elif resolution.reason == ORPHANED_MODEL_RESET:
        ctx.recorder.record(
            session,
            WARNING,
            ORPHANED_MODEL_RESET,
            f"model {shown(resolution.reset_from)} is not registered for runtime {runtime}: the runner "
            f"starts with {shown(resolution.model)} instead",
        )
    retry = Result.after(FILE_RECHECK) if not resolution.ok and ctx.models.polled else Result.done()
    return ModelGate(resolution, runtime, retry)


def live_switch_problem(ctx: Context, session: Mapping[str, Any], model: str) -> str | None:
    """Why a running runner may not be switched to `model` (None: it may). The runner keeps the
    runtime it started with, so the model is checked against that runtime, by the same rules as a
    start; a model the manifest would replace or hold back is refused rather than half-applied."""
    runtime = str(_previous(session).get("runtime") or "") or session_runtime(session, ctx.config)[0]
    request = ModelRequest(
        model=model.strip(),
        runtime=runtime,
        provider=runtime_provider(runtime, registry_view(ctx)),
        previous_runtime=runtime,
        vertex=vertex_mode(ctx.config),
        require_manifest=ctx.config.require_models_manifest,
        fallback_default=ctx.config.default_model,
    )
    if not request.model:
        return "the model name is empty"
    resolution = resolve(ctx.models.state(), request)
    if not resolution.ok:
        return resolution.message
    if resolution.model != request.model:
        return f"the models manifest would run {shown(resolution.model)} instead"
    return None


def waiting_for_model(sessions: KindCache) -> list[Key]:
    """Sessions held back by ModelValid: a manifest change may let them start."""
    keys: list[Key] = []
    for session in sessions.list():
        condition = c.parse_conditions(session.get("status")).get(c.MODEL_VALID)
        if condition is not None and not condition.is_true:
            meta = session.get("metadata") or {}
            keys.append((str(meta.get("namespace")), str(meta.get("name"))))
    return keys
