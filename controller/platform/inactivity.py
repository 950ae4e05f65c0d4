"""When an idle session is stopped: the platform's precedence of timeouts and its idle clock.

Precedence (the platform's operator): the session's spec.inactivityTimeout, else its project's
ProjectSettings inactivityTimeoutSeconds, else the operator default; 0 at any level disables the
stop. Idle time runs from status.lastActivityTime (written by the backend on every AG-UI event),
else status.startTime, else the creation time. Pure: the sessions loop asks, then acts.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.conditions import parse_time


@dataclass(frozen=True)
class Timeout:
    seconds: int
    source: str  # "spec.inactivityTimeout", "ProjectSettings", or "default"


def effective_timeout(session: Mapping[str, Any], project_value: int | None, default: int) -> Timeout:
    value = (session.get("spec") or {}).get("inactivityTimeout")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return Timeout(value, "spec.inactivityTimeout")
    if project_value is not None:
        return Timeout(project_value, "ProjectSettings inactivityTimeoutSeconds")
    return Timeout(default, "the operator default")


def idle_since(session: Mapping[str, Any]) -> datetime.datetime | None:
    """The last sign of life: the later of lastActivityTime and startTime, else creation.

    The later of the two, not lastActivityTime alone: an activity write of the previous run that
    lands after a restart cleared it must not stop the new run at once.
    """
    status = session.get("status") if isinstance(session.get("status"), Mapping) else {}
    seen = [
        t
        for t in (
            parse_time((status or {}).get("lastActivityTime")),
            parse_time((status or {}).get("startTime")),
        )
        if t is not None
    ]
    if seen:
        return max(seen)
    return parse_time((session.get("metadata") or {}).get("creationTimestamp"))


def seconds_left(
    session: Mapping[str, Any], timeout: Timeout, now: datetime.datetime
) -> tuple[float, float] | None:
    """(idle seconds, seconds until the stop), or None when the timeout is disabled or unknowable."""
    if timeout.seconds <= 0:
        return None
    since = idle_since(session)
    if since is None:
        return None
    idle = (now - since).total_seconds()
    return idle, timeout.seconds - idle
