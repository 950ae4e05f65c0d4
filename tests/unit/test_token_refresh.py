"""When a runner token must be (re)issued: pure decisions of the token secrets module."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from controller.names import ANNOTATION_TOKEN_REFRESHED_AT
from controller.reconcilers.token_secrets import ANNOTATION_RUN, current_refresh, refresh_due_in

NOW = datetime.datetime(2026, 11, 21, 12, 0, 0, tzinfo=datetime.UTC)
TTL = 45 * 60.0


def secret(refreshed_at: str | None, run: str | None) -> dict[str, Any]:
    annotations = {}
    if refreshed_at is not None:
        annotations[ANNOTATION_TOKEN_REFRESHED_AT] = refreshed_at
    if run is not None:
        annotations[ANNOTATION_RUN] = run
    return {"metadata": {"name": "ambient-runner-token-s1", "annotations": annotations}}


@pytest.mark.parametrize(
    ("cached", "expected"),
    [
        pytest.param(secret("2026-11-21T11:30:00Z", "0"), "2026-11-21T11:30:00Z", id="fresh, this run"),
        pytest.param(None, None, id="missing"),
        pytest.param(secret("2026-11-21T11:00:00Z", "0"), None, id="due (60 min old, ttl 45)"),
        pytest.param(secret("2026-11-21T11:30:00Z", "1"), None, id="an earlier run's agui-token"),
        pytest.param(secret("2026-11-21T11:30:00Z", None), None, id="no run number"),
        pytest.param(secret(None, "0"), None, id="never refreshed"),
        pytest.param(secret("yesterday", "0"), None, id="unreadable time"),
    ],
)
def test_current_refresh(cached: dict[str, Any] | None, expected: str | None) -> None:
    assert current_refresh(cached, "0", TTL, NOW) == expected


def test_refresh_due_in_counts_down_from_the_refresh() -> None:
    assert refresh_due_in("2026-11-21T11:30:00Z", TTL, NOW) == 15 * 60
    assert refresh_due_in("2026-11-21T11:00:00Z", TTL, NOW) == -15 * 60
    assert refresh_due_in(None, TTL, NOW) == 0.0
