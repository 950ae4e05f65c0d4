"""A session's children created from the cache's view, at once: what provisioning is made of.

A child the cache shows is not asked for again; the missing ones are created in one round trip; a
same-named object that is not the session's stops provisioning with NameConflict, and one still
held by a previous session of the same name (being garbage collected) is waited for.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller import conditions as c
from controller.events import WARNING
from controller.reconcile import Result
from controller.reconcilers.context import Context, Ensured, cached_child, create_child
from controller.resources import Resource
from controller.status import StatusDraft
from controller.watchers.cache import KindCache

# The loop that provisions, whose conditions these writes set.
LOOP = "sessions"
WAIT_RETRY = 5.0


def stop_on_conflict(
    ctx: Context, session: Mapping[str, Any], kind: str, child: str, state: Ensured
) -> Result | None:
    if state is Ensured.CONFLICT:
        message = f"{kind} {child} already exists and is not owned by this session; delete or rename it"

        def describe(draft: StatusDraft) -> None:
            draft.set_condition(
                c.JOB_CREATED
                if kind == "Job"
                else c.PVC_READY
                if kind == "PersistentVolumeClaim"
                else c.RECONCILED,
                c.FALSE,
                c.NAME_CONFLICT,
                message,
            )

        ctx.write_status(session, LOOP, describe)
        ctx.recorder.record(session, WARNING, c.NAME_CONFLICT, message)
        return Result.done()
    if state is Ensured.WAITING:
        return Result.after(WAIT_RETRY)
    return None


@dataclass(frozen=True)
class Child:
    """A child to ensure: where the cache keeps it, its name, and how to build it if it is missing."""

    kind: str
    cache: KindCache
    resource: Resource
    name: str
    build: Callable[[], dict[str, Any]]


def ensure_children(
    ctx: Context,
    session: Mapping[str, Any],
    children: Sequence[Child],
    alongside: Sequence[Callable[[], object]] = (),
) -> Result | None:
    """Creates the children the cache does not show, at once; None when all are there and ours.

    `alongside` are other independent writes of the same reconcile, sent with the creates.
    In steady state every child is in the cache and this makes no request and starts no thread.
    """
    meta = session["metadata"]
    namespace, uid = meta["namespace"], meta.get("uid", "")
    states = [cached_child(ctx, ch.cache, ch.resource, namespace, ch.name, uid) for ch in children]
    missing = [i for i, state in enumerate(states) if state is None]
    calls: list[Callable[[], object]] = [functools.partial(_create, ctx, children[i], uid) for i in missing]
    created = ctx.parallel([*calls, *alongside])[: len(missing)]
    for i, state in zip(missing, created, strict=True):
        assert isinstance(state, Ensured)
        states[i] = state
    for child, maybe_state in zip(children, states, strict=True):
        assert maybe_state is not None
        stop_here = stop_on_conflict(ctx, session, child.kind, child.name, maybe_state)
        if stop_here is not None:
            return stop_here
    return None


def _create(ctx: Context, child: Child, uid: str) -> Ensured:
    return create_child(ctx, child.resource, child.build(), uid)
