"""Whether a reconcile has waited on the network: what tells a loop that more workers would help.

The API client and the runner client mark each request they send; a loop reads the mark around each
reconcile. Wall time cannot tell: a reconcile that only reads the cache can take several switch
intervals of the interpreter's lock while other threads run, and look as slow as a round trip.
The mark is a box in a context variable, so the copies of the context that a reconcile's parallel
requests run in (see Context.parallel) mark the same box.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_box: ContextVar[list[bool] | None] = ContextVar("network_waits", default=None)


def note() -> None:
    """Called before a request goes out."""
    box = _box.get()
    if box is not None:
        box[0] = True


@contextmanager
def observed() -> Iterator[list[bool]]:
    """Yields a box whose single item is True once anything inside has sent a request."""
    box = [False]
    token = _box.set(box)
    try:
        yield box
    finally:
        _box.reset(token)
