"""Which API errors a retry can cure, and how the sessions loop reports the others.

A create or patch the API server refuses as invalid (422), malformed (400) or too large (413) gets
the same answer however often it is sent: retrying it only spins a worker and floods the API
server. Such a refusal ends the session in Failed with ProvisioningRejected, carrying the server's
reason and message; a new generation of the spec makes the sessions loop try again. A 403 may be
cured by a new object (a RoleBinding, a changed quota or admission policy), so after a fresh read
confirms the session is still what was provisioned, it is shown as ProvisioningForbidden and retried
with a growing delay. Conflicts (409), throttling (429), server errors (5xx) and lost connections
are transient and go back to the work queue's backoff.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from controller import conditions as c
from controller.api_error import ApiError
from controller.events import WARNING
from controller.reconcile import Result
from controller.reconcilers.context import Context
from controller.resources import SESSIONS
from controller.status import StatusDraft

LOOP = "sessions"
FORBIDDEN = 403
MAX_SERVER_MESSAGE = 512
# The delay before a forbidden create is tried again: the time it has failed so far, within bounds,
# so attempts thin out exponentially without keeping a count anywhere.
FORBIDDEN_RETRY_MIN = 10.0
FORBIDDEN_RETRY_MAX = 300.0

# Token-like runs (a JWT, long base64) that a server message might quote from a rejected object.
_SECRET_LIKE = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*|[A-Za-z0-9+/=]{40,}")


def server_message(exc: ApiError) -> str:
    """The server's reason and message, on one line, bounded, with token-like runs redacted."""
    text = _SECRET_LIKE.sub("[redacted]", exc.message or "")
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    if len(text) > MAX_SERVER_MESSAGE:
        text = text[:MAX_SERVER_MESSAGE] + "..."
    reason = exc.reason if exc.reason.isalnum() and len(exc.reason) <= 64 else ""
    return f"{exc.status} {reason}: {text}" if reason else f"{exc.status}: {text}"


def _what(exc: ApiError) -> str:
    verb = {"create": "creating", "patch": "patching", "update": "updating"}.get(
        exc.verb, exc.verb or "writing"
    )
    target = exc.resource or "an object"
    return f"{verb} {target} {exc.object_name}".rstrip()


def _still_current(ctx: Context, session: Mapping[str, Any]) -> bool:
    """A fresh read: the session exists, is not being deleted and has not changed its spec since."""
    meta = session.get("metadata") or {}
    fresh = ctx.kube.get_or_none(SESSIONS, str(meta.get("namespace")), str(meta.get("name")))
    if fresh is None:
        return False
    fresh_meta = fresh.get("metadata") or {}
    return (
        not fresh_meta.get("deletionTimestamp")
        and fresh_meta.get("uid") == meta.get("uid")
        and fresh_meta.get("generation") == meta.get("generation")
    )


def _forbidden_retry(conditions: Mapping[str, c.Condition]) -> float:
    previous = conditions.get(c.RECONCILED)
    since = c.parse_time(previous.last_transition_time) if previous is not None else None
    if previous is None or previous.reason != c.PROVISIONING_FORBIDDEN or since is None:
        return FORBIDDEN_RETRY_MIN
    waited = (c.parse_time(c.now_rfc3339()) or since) - since
    return min(FORBIDDEN_RETRY_MAX, max(FORBIDDEN_RETRY_MIN, waited.total_seconds()))


def report_api_error(
    ctx: Context, session: Mapping[str, Any], conditions: Mapping[str, c.Condition], exc: ApiError
) -> Result | None:
    """Reports a refusal a retry cannot cure and says when to look again; None for a transient one."""
    if exc.permanent:
        reason = c.PROVISIONING_REJECTED
        message = f"the API server refused {_what(exc)}: {server_message(exc)}"
        result = Result.done()
    elif exc.status == FORBIDDEN:
        if not _still_current(ctx, session):
            return Result(requeue=True)
        reason = c.PROVISIONING_FORBIDDEN
        message = (
            f"the API server forbade {_what(exc)}: {server_message(exc)} "
            "(retried with a growing delay; grant the permission or lift the policy)"
        )
        result = Result.after(_forbidden_retry(conditions))
    else:
        return None

    def describe(draft: StatusDraft) -> None:
        draft.set_condition(c.RECONCILED, c.FALSE, reason, message)
        if reason == c.PROVISIONING_REJECTED:
            draft.set("observedGeneration", draft.generation)
            if draft.get("completionTime") is None:
                draft.set("completionTime", c.now_rfc3339())

    ctx.write_status(session, LOOP, describe)
    ctx.recorder.record(session, WARNING, reason, message)
    return result
