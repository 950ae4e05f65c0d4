"""The runner sync loop: brings a running runner to the session's spec over the runner's HTTP API.

The only loop that calls runners, so a slow or dead runner delays nothing but its own session's sync.
Level-based: every reconcile compares spec.repos, spec.activeWorkflow and spec.llmSettings.model with
status.reconciledRepos/Workflow/Model (what the runner confirmed), calls the runner for the
difference only, and records the runner's real answers. A steady state makes no call and no write.
A change the runner has not taken is retried with RequeueAfter and a doubling wait; a change it
refused for good (a 400 to /model) is not asked again until the spec changes.

While a session runs, this loop owns Reconciled and status.observedGeneration: the generation is
observed once every change of it reached the runner or was refused with a reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from controller import conditions as c
from controller.events import WARNING
from controller.platform import runner_metrics
from controller.platform.runner_client import Answer, RunnerClient
from controller.platform.runner_spec import desired_repos, desired_workflow, live_model, recorded_model
from controller.reconcile import Key, Result
from controller.reconcilers import model_gate
from controller.reconcilers import runner_sync_steps as steps
from controller.reconcilers.context import Context
from controller.reconcilers.spec import validate_spec
from controller.status import StatusDraft
from controller.watchers.quarantine import rejection

log = logging.getLogger("controller.reconcilers.runner_sync")

LOOP = "runner-sync"
SYNC_PENDING = "RunnerSyncPending"
RETRY_BASE = 1.0


def check_model(ctx: Context, session: Mapping[str, Any], model: str) -> str | None:
    """Validates a model before a live switch: None when it may be asked of the runner, else why not
    (the models manifest's rules for the runtime the runner runs)."""
    return model_gate.live_switch_problem(ctx, session, model)


class SyncState:
    """Per-session memory of the loop: consecutive failures (the retry wait) and pending sessions."""

    def __init__(self) -> None:
        self._failures: dict[Key, int] = {}
        self._not_before: dict[Key, tuple[float, int]] = {}  # (monotonic time, generation)
        self._pending: set[Key] = set()
        self._lock = threading.Lock()
        runner_metrics.runner_sync_pending.set_function(self.pending_count)

    def pending_count(self) -> int:
        with self._lock:
            return len(self._pending)

    def retry_after(self, key: Key, longest: float, generation: int) -> float:
        with self._lock:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            self._pending.add(key)
            wait = float(min(RETRY_BASE * 2 ** (failures - 1), longest))
            self._not_before[key] = (time.monotonic() + wait, generation)
        return wait

    def wait_left(self, key: Key, generation: int) -> float:
        """Seconds until a retry is due; 0 when due, or when the spec changed since (a new edit is
        tried at once). Our own status writes wake the loop too: this keeps them from being retries."""
        with self._lock:
            due = self._not_before.get(key)
        if due is None or due[1] != generation:
            return 0.0
        return max(0.0, due[0] - time.monotonic())

    def settled(self, key: Key) -> None:
        with self._lock:
            self._failures.pop(key, None)
            self._not_before.pop(key, None)
            self._pending.discard(key)


def reconcile(ctx: Context, client: RunnerClient, state: SyncState, key: Key) -> Result:
    namespace, name = key
    session = ctx.caches.sessions.get(namespace, name)
    if session is None or (session.get("metadata") or {}).get("deletionTimestamp"):
        client.forget(namespace, name)
        state.settled(key)
        return Result.done()
    status = session.get("status") if isinstance(session.get("status"), Mapping) else {}
    phase = str((status or {}).get("phase") or "")
    if phase != c.RUNNING:
        state.settled(key)
        if phase in c.TERMINAL_PHASES:
            note_applies_at_start(ctx, session)
        return Result.done()
    rejected = rejection(session)
    problems = [rejected[1]] if rejected else [f"{p.field}: {p.message}" for p in validate_spec(session)]
    if problems:
        # A spec the cache could not hold whole is only its metadata here: never synced as if empty.
        state.settled(key)
        refuse_edit(ctx, session, problems)
        return Result.done()
    left = state.wait_left(key, int((session.get("metadata") or {}).get("generation") or 0))
    if left > 0:
        return Result.after(left)
    return sync(ctx, client, state, key, session, status or {})


def sync(
    ctx: Context,
    client: RunnerClient,
    state: SyncState,
    key: Key,
    session: Mapping[str, Any],
    status: Mapping[str, Any],
) -> Result:
    namespace, name = key
    generation = int((session.get("metadata") or {}).get("generation") or 0)
    now = c.now_rfc3339()

    def post(path: str, body: Mapping[str, Any]) -> Answer:
        return client.post(namespace, name, path, body)

    conditions = c.parse_conditions(status)
    log.debug(
        "sync from resourceVersion %s: repos %s",
        (session.get("metadata") or {}).get("resourceVersion"),
        [(r.get("name"), r.get("status")) for r in status.get("reconciledRepos") or ()],
    )
    repos = steps.sync_repos(status, desired_repos(session), post, now)
    workflow = steps.sync_workflow(status, desired_workflow(session), post, now)
    model = steps.sync_model(
        live_model(session, status),
        recorded_model(status),
        conditions.get(c.MODEL_RECONCILED),
        generation,
        lambda m: check_model(ctx, session, m),
        post,
        now,
    )
    pending = [s.pending for s in (repos, workflow, model) if s.pending]
    if _nothing_to_tell(status, conditions, generation, (repos, workflow, model)):
        state.settled(key)
        return Result.done()

    def describe(draft: StatusDraft) -> None:
        for step in (repos, workflow, model):
            for field, value in step.fields.items():
                draft.set(field, value)
        if "reconciledModel" in model.fields:
            # The runtime the runner started with stays on record: the next start checks against it.
            runtime = (status.get("reconciledModel") or {}).get("runtime")
            if runtime:
                draft.set("reconciledModel", {**model.fields["reconciledModel"], "runtime": runtime})
        if draft.generation != generation:
            return  # a newer spec arrived meanwhile: its own reconcile decides the conditions
        draft.set_condition(c.REPOS_RECONCILED, *repos.condition)
        draft.set_condition(c.WORKFLOW_RECONCILED, *workflow.condition)
        draft.set_condition(c.MODEL_RECONCILED, *model.condition)
        if pending:
            draft.set_reconciled(
                c.FALSE, SYNC_PENDING, f"generation {generation} not yet in the runner: " + "; ".join(pending)
            )
        elif model.rejected:
            draft.set_reconciled(c.FALSE, steps.REJECTED, model.rejected, generation)
        else:
            draft.set_reconciled(
                c.TRUE, c.SPEC_APPLIED, f"generation {generation} applied to the runner", generation
            )

    ctx.write_status(session, LOOP, describe)
    previous = conditions.get(c.MODEL_RECONCILED)
    if model.rejected and not (previous is not None and previous.message == model.rejected):
        ctx.recorder.record(session, WARNING, "ModelRejected", model.rejected)
    retry = repos.retry or workflow.retry or model.retry
    if retry:
        wait = state.retry_after(key, ctx.config.runner_sync_retry_max, generation)
        log.info("runner sync pending (%s); retrying in %.0fs", "; ".join(pending) or "confirming", wait)
        return Result.after(wait)
    state.settled(key)
    return Result.done()


def _nothing_to_tell(
    status: Mapping[str, Any],
    conditions: Mapping[str, c.Condition],
    generation: int,
    done: tuple[steps.Step, ...],
) -> bool:
    """A runner started from this very generation with nothing to confirm (no repo, no workflow,
    the model of its env): the sessions loop's Reconciled=True already says it all, and a status
    write per new session would only cost a request."""
    reconciled = conditions.get(c.RECONCILED)
    return (
        not any(s.called or s.pending or s.rejected or s.retry for s in done)
        and not any(k in conditions for k in (c.REPOS_RECONCILED, c.WORKFLOW_RECONCILED, c.MODEL_RECONCILED))
        and reconciled is not None
        and reconciled.is_true
        and reconciled.observed_generation == generation
        and status.get("observedGeneration") == generation
    )


def refuse_edit(ctx: Context, session: Mapping[str, Any], problems: list[str]) -> None:
    """An invalid edit of a running session: the runner keeps the last valid spec; status and an Event
    name the field. Fixing the spec makes the next reconcile sync again."""
    message = "; ".join(problems) + " (the runner keeps running on the last valid spec)"
    previous = c.parse_conditions(session.get("status") if isinstance(session.get("status"), Mapping) else {})
    before = previous.get(c.RECONCILED)

    def describe(draft: StatusDraft) -> None:
        draft.set_reconciled(c.FALSE, c.INVALID_SPEC, message, draft.generation)

    ctx.write_status(session, LOOP, describe)
    if before is None or (before.reason, before.message) != (c.INVALID_SPEC, message[:2048]):
        ctx.recorder.record(session, WARNING, c.INVALID_SPEC, message)


def note_applies_at_start(ctx: Context, session: Mapping[str, Any]) -> None:
    """A model changed while the session is not running reaches the runner as its env at the next
    start; status says so rather than pretending it is applied or pending a call."""
    status = session.get("status") if isinstance(session.get("status"), Mapping) else {}
    have = recorded_model(status or {})
    want = live_model(session, status or {})
    if not have or have == want:
        return

    def describe(draft: StatusDraft) -> None:
        draft.set_condition(
            c.MODEL_RECONCILED,
            c.FALSE,
            steps.APPLIES_AT_START,
            f"the session is not running: model {want} is applied when it starts "
            f"(the runner last ran {have})",
        )

    ctx.write_status(session, LOOP, describe)
