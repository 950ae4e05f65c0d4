"""Response bodies read as streams: an open watch, and a LIST decoded item by item.

A stream is read by one thread and may be cut from another (an informer stopping); letting go of
its connection correctly is what keeps the pool healthy with dozens of watches open.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import urllib3
from opentelemetry import trace

from controller import safe_json
from controller.list_decoder import ListDecoder
from controller.resources import JSON

LIST_CHUNK = 1 << 16


def _let_go(response: urllib3.BaseHTTPResponse, read_to_end: bool) -> None:
    """A response read to its end returns its connection to the pool; any other is closed.

    Unread bytes would be taken for the next response on that connection, and a cut stream's socket
    may be dead: closing it may fail in many ways, and it is closed either way.
    """
    if read_to_end:
        response.release_conn()
        return
    # Detached from its pool first: the reader of a cut stream, in urllib3's own clean-up, would
    # otherwise hand the closed connection back, and with more open watches than the pool holds
    # each of them is logged as "Connection pool is full" when the operator stops.
    with contextlib.suppress(Exception):
        response._pool = None  # type: ignore[attr-defined]
    with contextlib.suppress(Exception):
        response.shutdown()
    with contextlib.suppress(Exception):
        response.close()


class _StreamedBody:
    """A response whose body one thread reads as a stream; `close()` may be called from any thread."""

    def __init__(self, response: urllib3.BaseHTTPResponse):
        self._response = response
        self._read_to_end = False
        self._closed = False

    def close(self) -> None:
        """Lets go of the response once (see _let_go); later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        self._on_close()
        _let_go(self._response, read_to_end=self._read_to_end)

    def _on_close(self) -> None:
        """Whatever else ends with the stream."""


class WatchStream(_StreamedBody):
    """One open watch: iterate for (type, object) pairs."""

    def __init__(self, response: urllib3.BaseHTTPResponse):
        super().__init__(response)
        self.bytes_seen_at = time.monotonic()

    def __iter__(self) -> Iterator[tuple[str, JSON]]:
        buffer = b""
        try:
            for chunk in self._response.stream(65536, decode_content=True):
                self.bytes_seen_at = time.monotonic()
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        event = safe_json.loads(line)
                        yield str(event.get("type", "")), event.get("object") or {}
            if buffer.strip():
                event = safe_json.loads(buffer)
                yield str(event.get("type", "")), event.get("object") or {}
            self._read_to_end = True
        finally:
            self.close()


class Listing(_StreamedBody):
    """One streamed LIST: iterate once for its items, then read `metadata` (resourceVersion, continue)."""

    def __init__(self, response: urllib3.BaseHTTPResponse, span: trace.Span):
        super().__init__(response)
        self._span = span
        self._decoder = ListDecoder(response.stream(LIST_CHUNK, decode_content=True))

    @property
    def fields(self) -> JSON:
        """The list's keys other than items (kind, apiVersion, metadata), once it has been read."""
        return self._decoder.fields

    @property
    def metadata(self) -> JSON:
        meta = self._decoder.fields.get("metadata")
        return meta if isinstance(meta, dict) else {}

    def __iter__(self) -> Iterator[JSON]:
        try:
            yield from self._decoder
            self._read_to_end = True
        finally:
            self.close()

    def _on_close(self) -> None:
        self._span.end()
