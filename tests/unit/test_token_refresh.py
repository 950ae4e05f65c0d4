"""When a runner token must be (re)issued: pure decisions of the token secrets module."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from controller.names import ANNOTATION_TOKEN_REFRESHED_AT
from controller.reconcilers.token_budget import RefreshBudget, jittered_ttl, refreshes_delayed_total
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


def test_jittered_ttl_is_stable_per_session_and_only_earlier() -> None:
    ttls = [jittered_ttl(TTL, 0.1, f"team/s{i}") for i in range(1000)]
    assert ttls == [jittered_ttl(TTL, 0.1, f"team/s{i}") for i in range(1000)]
    assert all(0.9 * TTL <= ttl <= TTL for ttl in ttls)
    # Spread over the window: a fleet started together does not fall due together.
    assert max(ttls) - min(ttls) > 0.08 * TTL
    assert len({round(ttl) for ttl in ttls}) > 200
    assert jittered_ttl(TTL, 0.0, "team/s1") == TTL


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_budget_admits_a_burst_then_one_slot_per_interval() -> None:
    clock = Clock()
    budget = RefreshBudget(rate=2.0, burst=3, clock=clock)
    delayed_before = refreshes_delayed_total._value.get()
    waits = [budget.admit(("ns", f"s{i}")) for i in range(6)]
    assert waits == [0.0, 0.0, 0.0, 0.5, 1.0, 1.5]
    assert refreshes_delayed_total._value.get() - delayed_before == 3
    # A delayed key keeps its slot: asking again early gives the rest of its wait, not a new slot.
    clock.now += 0.25
    assert budget.admit(("ns", "s4")) == 0.75
    clock.now += 0.75
    assert budget.admit(("ns", "s4")) == 0.0
    assert budget.admit(("ns", "s3")) == 0.0
    # The bound holds: whoever comes next queues behind the reserved slots.
    assert budget.admit(("ns", "s9")) == 1.0


def test_budget_refills_when_idle_and_forgets_abandoned_slots() -> None:
    clock = Clock()
    budget = RefreshBudget(rate=1.0, burst=2, clock=clock)
    assert [budget.admit(("ns", f"s{i}")) for i in range(3)] == [0.0, 0.0, 1.0]
    clock.now += 120.0  # s2 never came back (its session was deleted)
    assert [budget.admit(("ns", f"t{i}")) for i in range(3)] == [0.0, 0.0, 1.0]
    assert ("ns", "s2") not in budget._slots


def test_unbounded_budget_admits_everything() -> None:
    budget = RefreshBudget(rate=0.0, burst=1)
    assert all(budget.admit(("ns", f"s{i}")) == 0.0 for i in range(100))
