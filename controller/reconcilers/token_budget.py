"""How fast runner tokens are refreshed: per-session jitter of the due time and a fleet-wide rate bound.

A fleet whose sessions started together, or an operator back after a long outage, finds every token
due at the same moment: one burst of TokenRequests and Secret writes (thousands at once) against the
API server. Two measures spread it out:

- jitter: each session refreshes a fixed fraction earlier than the TTL, derived from its name, so
  tokens issued together fall due over a window instead of at one instant (earlier, never later:
  the token must not expire before it is replaced);
- a token bucket shared by the token secrets loop: a refresh beyond the bound is not refused but
  given the next free slot, returned as a RequeueAfter (reconciles never sleep). The slot is kept
  for that session, so it is admitted when it comes back instead of queueing again.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Hashable

from prometheus_client import Counter, Gauge

from controller import metrics

refreshes_total = Counter(
    "agentic_operator_token_refreshes_total",
    "Runner token refreshes admitted by the refresh rate bound.",
    registry=metrics.REGISTRY,
)
refreshes_delayed_total = Counter(
    "agentic_operator_token_refreshes_delayed_total",
    "Runner token refreshes postponed to a later slot by the refresh rate bound.",
    registry=metrics.REGISTRY,
)
refreshes_waiting = Gauge(
    "agentic_operator_token_refreshes_waiting",
    "Runner token refreshes holding a future slot of the refresh rate bound.",
    registry=metrics.REGISTRY,
)

# A reserved slot whose session never came back (deleted, stopped) is forgotten this long after it.
STALE_SLOT_AFTER = 60.0


def jittered_ttl(ttl: float, jitter: float, seed: str) -> float:
    """The TTL shortened by a fraction in [0, jitter) that depends only on `seed` (stable per session).

    Stable, so every reconcile of a session computes the same due time; a hash, so sessions created
    together spread evenly over the window.
    """
    if jitter <= 0:
        return ttl
    digest = hashlib.blake2b(seed.encode(), digest_size=8).digest()
    fraction = int.from_bytes(digest, "big") / 2**64
    return ttl * (1.0 - min(jitter, 0.5) * fraction)


class RefreshBudget:
    """A token bucket (rate per second, burst) that hands out slots, remembered per key."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = max(1, burst)
        self.clock = clock
        self._lock = threading.Lock()
        # GCRA's theoretical arrival time: a full bucket while it is in the past.
        self._tat = clock()
        self._slots: dict[Hashable, float] = {}

    def admit(self, key: Hashable) -> float:
        """0 when `key` may refresh now; otherwise the seconds until its reserved slot."""
        if self.rate <= 0:
            refreshes_total.inc()
            return 0.0
        with self._lock:
            now = self.clock()
            slot = self._slots.get(key)
            if slot is None:
                self._forget_stale(now)
                interval = 1.0 / self.rate
                tat = max(self._tat, now)
                slot = max(now, tat - (self.burst - 1) * interval)
                self._tat = tat + interval
                if slot > now:
                    self._slots[key] = slot
                    refreshes_delayed_total.inc()
            if slot > now:
                refreshes_waiting.set(len(self._slots))
                return slot - now
            self._slots.pop(key, None)
            refreshes_waiting.set(len(self._slots))
        refreshes_total.inc()
        return 0.0

    def _forget_stale(self, now: float) -> None:
        stale = [k for k, at in self._slots.items() if at < now - STALE_SLOT_AFTER]
        for key in stale:
            del self._slots[key]
