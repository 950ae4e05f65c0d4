"""Writing session status: owned conditions only, derived phase, minimal merge patches.

A loop describes the status it wants on a draft made from the session it just read; the draft turns
that into a merge patch of only what changed (None when nothing did, so a steady state writes
nothing), always carrying the phase that `derive_phase` gives for the resulting conditions. The
write is guarded by resourceVersion and retried on conflict against a fresh read, with the same
description re-applied, so concurrent writers (other loops, the backend's lastActivityTime) never
lose an update.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from controller import conditions as c
from controller import session_metrics
from controller.events import NORMAL, WARNING, EventRecorder
from controller.kube import Kube
from controller.names import ANNOTATION_DESIRED_PHASE
from controller.resources import SESSIONS
from controller.retry import patch_with_retry
from controller.watchers.store import thaw

log = logging.getLogger("controller.status")

_ABSENT = object()


class StatusDraft:
    def __init__(self, session: Mapping[str, Any], loop: str):
        self.loop = loop
        self.session = session
        meta = session.get("metadata") or {}
        self.generation = int(meta.get("generation") or 0)
        self.annotations: Mapping[str, str] = meta.get("annotations") or {}
        status = session.get("status")
        self.current: Mapping[str, Any] = status if isinstance(status, Mapping) else {}
        self.conditions = c.parse_conditions(self.current)
        self._original = dict(self.conditions)
        self._fields: dict[str, Any] = {}

    # -- conditions ------------------------------------------------------------------------------

    def _check_owner(self, kind: str) -> None:
        if kind not in c.OWNED_BY.get(self.loop, frozenset()):
            raise ValueError(f"loop {self.loop} does not own condition {kind}")

    def set_condition(self, kind: str, status: str, reason: str, message: str = "") -> None:
        """Sets an owned condition; Reconciled is skipped unless this loop owns it in this phase."""
        self._check_owner(kind)
        if kind == c.RECONCILED and not self.owns_reconciled:
            return
        self._put(kind, status, reason, message)

    @property
    def owns_reconciled(self) -> bool:
        return c.reconciled_owner(self.old_phase) == self.loop

    def set_reconciled(
        self, status: str, reason: str, message: str, observed_generation: int | None = None
    ) -> None:
        """Reconciled, and status.observedGeneration when the generation was fully applied; both
        only by the loop that owns them in the session's current phase (conditions.reconciled_owner)."""
        if not self.owns_reconciled:
            return
        self.set_condition(c.RECONCILED, status, reason, message)
        if observed_generation is not None:
            self.set("observedGeneration", observed_generation)

    def _put(self, kind: str, status: str, reason: str, message: str) -> None:
        """lastTransitionTime moves only when the status does; observedGeneration is the current one."""
        old = self.conditions.get(kind)
        message = message[:2048]
        if old is not None and (old.status, old.reason, old.message, old.observed_generation) == (
            status,
            reason,
            message,
            self.generation,
        ):
            return
        keep_time = old is not None and old.status == status
        self.conditions[kind] = c.Condition(
            type=kind,
            status=status,
            reason=reason,
            message=message,
            last_transition_time=old.last_transition_time
            if old is not None and keep_time
            else c.now_rfc3339(),
            observed_generation=self.generation,
        )

    def _derive_ready(self) -> None:
        """Ready is derived like the phase, by whichever loop writes, so the two never disagree."""
        self._put(c.READY, *c.derive_ready(self.conditions, self.phase))

    def remove_condition(self, kind: str) -> None:
        self._check_owner(kind)
        self.conditions.pop(kind, None)

    def reset_conditions(self, keep: tuple[str, ...] = ()) -> None:
        """Restart: forget every condition of the previous run, whoever owned it."""
        self.conditions = {k: v for k, v in self.conditions.items() if k in keep}

    def condition(self, kind: str) -> c.Condition | None:
        return self.conditions.get(kind)

    # -- fields ----------------------------------------------------------------------------------

    def set(self, field: str, value: Any) -> None:
        """Sets a status field; None removes it."""
        self._fields[field] = value

    def get(self, field: str) -> Any:
        if field in self._fields:
            return self._fields[field]
        return self.current.get(field)

    @property
    def desired_phase(self) -> str | None:
        value = self.annotations.get(ANNOTATION_DESIRED_PHASE)
        return value if value in (c.RUNNING, c.STOPPED) else None

    @property
    def old_phase(self) -> str:
        return str(self.current.get("phase") or "")

    @property
    def phase(self) -> str:
        return c.derive_phase(self.conditions, self.desired_phase)

    # -- the patch -------------------------------------------------------------------------------

    def patch(self) -> dict[str, Any] | None:
        status: dict[str, Any] = {}
        self._derive_ready()
        if self.conditions != self._original:
            status["conditions"] = c.condition_list(self.conditions.values())
        phase = self.phase
        if phase != self.old_phase:
            status["phase"] = phase
        for field, value in self._fields.items():
            # The cached status is frozen (lists are tuples): compare it thawed.
            if thaw(self.current.get(field, _ABSENT if value is not None else None)) != value:
                status[field] = value
        return {"status": status} if status else None


def write_status(
    kube: Kube,
    cached: Mapping[str, Any],
    loop: str,
    describe: Callable[[StatusDraft], None],
    recorder: EventRecorder | None = None,
    on_written: Callable[[dict[str, Any]], object] | None = None,
) -> tuple[str, str] | None:
    """Applies `describe` to the session's status; returns (old phase, new phase) when written.

    `describe` may run more than once (once per conflict retry), each time on a fresher object, so
    it must only decide from the draft and from cache reads, never from a count of calls.
    """
    meta = cached.get("metadata") or {}
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    outcome: dict[str, Any] = {}

    def mutate(current: Mapping[str, Any]) -> dict[str, Any] | None:
        draft = StatusDraft(current, loop)
        describe(draft)
        patch = draft.patch()
        outcome.update(old=draft.old_phase, new=draft.phase, draft=draft)
        return patch

    written = patch_with_retry(kube, SESSIONS, namespace, name, mutate, cached=cached, subresource="status")
    if written is None:
        return None
    if on_written is not None:
        on_written(written)
    old, new = str(outcome["old"]), str(outcome["new"])
    draft: StatusDraft = outcome["draft"]
    if old != new:
        session_metrics.phase_written(written, old, new, draft.conditions)
    if old != new and recorder is not None:
        ready = draft.conditions.get(c.READY)
        detail = ""
        if ready is not None and ready.message:
            detail = f": {ready.message}" if ready.reason == new else f": {ready.reason}: {ready.message}"
        event_type = WARNING if new == c.FAILED else NORMAL
        recorder.record(written, event_type, new, f"phase {old or 'unset'} -> {new}{detail}")
        log.info("phase %s -> %s", old or "unset", new)
    return old, new
