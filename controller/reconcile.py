"""The contract between a loop and its reconcile function, as in controller-runtime.

Reconcile is level-based: it gets only a key, reads desired and observed state from the caches,
converges, and says when to look again. It never depends on which event woke it up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Key = tuple[str, str]


@dataclass(frozen=True)
class Result:
    """done (both unset), or look again after `requeue_after` seconds, or `requeue` with backoff."""

    requeue_after: float | None = None
    requeue: bool = False

    @staticmethod
    def done() -> Result:
        return Result()

    @staticmethod
    def after(seconds: float) -> Result:
        return Result(requeue_after=max(seconds, 0.0))


class TerminalError(Exception):
    """A failure retrying cannot fix (bad input): counted, logged, and not requeued."""


Reconciler = Callable[[Key], Result]


def sooner(*results: Result) -> Result:
    """Combines results of sub-steps: the earliest requeue wins."""
    delays = [r.requeue_after for r in results if r.requeue_after is not None]
    requeue = any(r.requeue for r in results)
    return Result(requeue_after=min(delays) if delays else None, requeue=requeue)
