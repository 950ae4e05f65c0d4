"""The streaming LIST decoder gives what json.loads gives, however the body is cut into chunks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from controller.list_decoder import ListDecoder

LIST: dict[str, Any] = {
    "kind": "PodList",
    "apiVersion": "v1",
    "metadata": {"resourceVersion": "12", "continue": "next-page"},
    "items": [{"n": i, "text": "é€" * i, "values": [1.5, True, None, -3e2]} for i in range(200)],
}


def chunks(body: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 100, 65536])
@pytest.mark.parametrize("indent", [None, 1])
@pytest.mark.parametrize("sort_keys", [False, True], ids=["items last", "items in the middle"])
def test_items_and_fields_match_json_loads(size: int, indent: int | None, sort_keys: bool) -> None:
    body = json.dumps(LIST, indent=indent, sort_keys=sort_keys).encode()
    decoder = ListDecoder(chunks(body, size))
    assert list(decoder) == LIST["items"]
    assert decoder.fields == {k: v for k, v in LIST.items() if k != "items"}


@pytest.mark.parametrize("body", [b"{}", b'{"items": null, "metadata": {}}', b' { "items" : [ ] } '])
def test_empty_lists(body: bytes) -> None:
    assert list(ListDecoder(chunks(body, 2))) == []


def test_a_number_cut_by_a_chunk_boundary_is_read_whole() -> None:
    decoder = ListDecoder(chunks(b'{"count": 12345, "items": []}', 12))
    assert list(decoder) == []
    assert decoder.fields == {"count": 12345}


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"[1]", "where '{' was expected"),
        (b'{"items": [1]}', "list item is a int"),
        (b'{"items": "x"}', "where '[' was expected"),
        (b'{"items": [{"a": 1}', "body ended"),
        (b'{"items": [{"a": 1}]', "body ended"),
        (b"", "body ended"),
    ],
)
def test_malformed_bodies_raise_value_error(body: bytes, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("[", r"\[").replace("{", r"\{")):
        list(ListDecoder(chunks(body, 3)))


def test_truncated_value_raises_value_error() -> None:
    with pytest.raises(ValueError):
        list(ListDecoder(chunks(b'{"items": [{"a": "unterminated', 4)))
