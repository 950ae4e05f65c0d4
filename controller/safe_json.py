"""Total JSON decoding: any text the API server sends decodes, however deeply it nests.

The C decoder recurses once per nesting level and raises RecursionError near the interpreter's
recursion limit; the API server accepts objects nested thousands of levels deep (a
`x-kubernetes-preserve-unknown-fields` field takes any JSON). An exception there would stop a
whole LIST or watch, so one object would blind the operator to its namespace.

The fast path is the C decoder. Only when it gives up, the value's text is scanned without
recursion and every container nested deeper than MAX_DEPTH is replaced by a stand-in: empty arrays
nested MAX_DEPTH + 1 deep. Whoever reads any part of the result that held a cut (the store's freeze
of a watch event's object, one level below the event) still finds it deeper than MAX_DEPTH and
isolates it, while its shallow parts (metadata) stay readable. A plain empty container would not
do: one level down, the cut would sit exactly at the limit and pass for a small, valid value.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Deepest nesting of JSON containers (the object itself is level 1) the operator reads whole. The
# deepest object it needs is a managedFields entry of a pod, about 12 levels; a session's spec
# with MCP server settings rarely passes 8.
MAX_DEPTH = 64
# Integer literals longer than this are read as floats: CPython refuses to convert longer digit
# strings to int (sys.get_int_max_str_digits), and the API server keeps no integer that long.
_MAX_INT_DIGITS = 4000

_SPECIAL = re.compile(r'[\[\]{}"]')
_STRING_REST = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def _bounded_int(text: str) -> int | float:
    return int(text) if len(text) <= _MAX_INT_DIGITS else float(text)


_decoder = json.JSONDecoder()
_lenient = json.JSONDecoder(parse_int=_bounded_int)


class Incomplete(ValueError):
    """The text ends before the value does (a caller streaming the text reads more and retries)."""


def prune(text: str, pos: int = 0, max_depth: int = MAX_DEPTH) -> tuple[str, int]:
    """The JSON value starting at `pos` with every container deeper than `max_depth` replaced.

    Returns the rewritten text of the value and the index just past its end in `text`. Strings are
    skipped whole, so brackets inside them do not count. Raises Incomplete when the value does not
    end within `text`. A scalar value is returned as it is, for the decoder to read.
    """
    while pos < len(text) and text[pos] in " \t\n\r":
        pos += 1
    if pos >= len(text) or text[pos] not in "[{":
        _, end = _lenient.raw_decode(text, pos)
        return text[pos:end], end
    pieces: list[str] = []
    stand_in = "[" * (max_depth + 1) + "]" * (max_depth + 1)
    depth = 0
    copied = pos  # text[pos:copied] is already in pieces
    cut_from = -1  # where the container being dropped starts, or -1
    index = pos
    while True:
        found = _SPECIAL.search(text, index)
        if found is None:
            raise Incomplete("the JSON value is not complete")
        char, index = found.group(), found.end()
        if char == '"':
            rest = _STRING_REST.match(text, index)
            if rest is None:
                raise Incomplete("a JSON string is not complete")
            index = rest.end()
            continue
        if char in "[{":
            depth += 1
            if depth == max_depth + 1:
                cut_from = found.start()
            continue
        if depth == max_depth + 1:
            pieces.append(text[copied:cut_from])
            pieces.append(stand_in)
            copied = index
        depth -= 1
        if depth == 0:
            pieces.append(text[copied:index])
            return "".join(pieces), index


def raw_decode(text: str, pos: int = 0) -> tuple[Any, int]:
    """json.JSONDecoder.raw_decode that never raises RecursionError (see the module's docstring).

    Malformed or truncated text still raises ValueError (json.JSONDecodeError or Incomplete), as
    the C decoder does.
    """
    try:
        return _decoder.raw_decode(text, pos)
    except RecursionError:
        pass
    except json.JSONDecodeError:
        raise
    except ValueError:
        return _lenient.raw_decode(text, pos)
    pruned, end = prune(text, pos)
    value, _ = _lenient.raw_decode(pruned)
    return value, end


def loads(data: str | bytes | bytearray) -> Any:
    """json.loads for anything the API server sends: deep values come back pruned, never raised."""
    text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
    value, end = raw_decode(text, len(text) - len(text.lstrip(" \t\n\r")))
    if text[end:].strip():
        raise json.JSONDecodeError("Extra data", text, end)
    return value
