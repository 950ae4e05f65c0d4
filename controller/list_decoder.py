"""Decodes a LIST response one item at a time, as its bytes arrive.

`json.loads` on a whole LIST holds the body and every decoded item at once: at 10,000 runner pods
that is hundreds of megabytes of short-lived dicts, and CPython keeps most of that memory after the
list is dropped, because the few objects the cache keeps pin the allocator's arenas. Decoding item
by item keeps one chunk of the body and one item alive at a time; the informer trims and freezes each
item before the next is decoded.

The list's own structure (`{"kind": ..., "metadata": ..., "items": [...]}`, keys in any order) is
walked here; every value inside it is decoded by the C decoder with `raw_decode`, through
`safe_json`, so an item nested deeper than the decoder can recurse comes back pruned instead of
ending the LIST.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator
from typing import Any

from controller import safe_json

_WHITESPACE = " \t\n\r"
# Compact the text buffer once this much of it has been consumed.
_COMPACT_AFTER = 1 << 16


class _Text:
    """A growing window on the decoded text of a byte stream."""

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks = iter(chunks)
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self.buffer = ""
        self.pos = 0
        self.ended = False

    def more(self) -> bool:
        """Appends the next chunk; False once the stream has ended."""
        if self.ended:
            return False
        if self.pos >= _COMPACT_AFTER:
            self.buffer, self.pos = self.buffer[self.pos :], 0
        for chunk in self._chunks:
            text = self._utf8.decode(chunk)
            if text:
                self.buffer += text
                return True
        self.buffer += self._utf8.decode(b"", final=True)
        self.ended = True
        return False

    def skip_whitespace(self) -> None:
        while True:
            buffer, pos = self.buffer, self.pos
            while pos < len(buffer) and buffer[pos] in _WHITESPACE:
                pos += 1
            self.pos = pos
            if pos < len(buffer) or not self.more():
                return

    def take(self, expected: str) -> str:
        """Consumes one of the `expected` characters, after whitespace."""
        self.skip_whitespace()
        if self.pos >= len(self.buffer):
            raise ValueError(f"list body ended where one of {expected!r} was expected")
        char = self.buffer[self.pos]
        if char not in expected:
            raise ValueError(f"list body has {char!r} at offset {self.pos} where {expected!r} was expected")
        self.pos += 1
        return char

    def value(self) -> Any:
        """One complete JSON value, reading more of the stream until it is whole.

        A value that parses but ends exactly at the end of the buffer may be a truncated number, so
        it is parsed again once more text has arrived. Each retry at least doubles what is buffered,
        so a large value costs a few parses, not one per chunk.
        """
        self.skip_whitespace()
        while True:
            try:
                value, end = safe_json.raw_decode(self.buffer, self.pos)
            except ValueError:
                if not self._grow():
                    raise
                continue
            if end < len(self.buffer) or self.ended:
                self.pos = end
                return value
            self._grow()

    def _grow(self) -> bool:
        wanted = 2 * (len(self.buffer) - self.pos) + 1
        grew = False
        while len(self.buffer) - self.pos < wanted and self.more():
            grew = True
        return grew


class ListDecoder:
    """Iterate for the items; afterwards `fields` holds the list's other keys (metadata, kind...)."""

    def __init__(self, chunks: Iterable[bytes]):
        self._text = _Text(chunks)
        self.fields: dict[str, Any] = {}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        text = self._text
        for _ in self._members("{", "}"):
            key = text.value()
            text.take(":")
            if key == "items":
                yield from self._items()
            else:
                self.fields[str(key)] = text.value()

    def _items(self) -> Iterator[dict[str, Any]]:
        text = self._text
        text.skip_whitespace()
        if text.buffer[text.pos : text.pos + 1] == "n":
            if text.value() is not None:
                raise ValueError("list items are neither an array nor null")
            return
        for _ in self._members("[", "]"):
            item = text.value()
            if not isinstance(item, dict):
                raise ValueError(f"list item is a {type(item).__name__}, not an object")
            yield item

    def _members(self, opening: str, closing: str) -> Iterator[None]:
        """Stops at each member of an object or element of an array, for the caller to read it."""
        text = self._text
        text.take(opening)
        text.skip_whitespace()
        if text.buffer[text.pos : text.pos + 1] == closing:
            text.pos += 1
            return
        while True:
            yield
            if text.take("," + closing) == closing:
                return
