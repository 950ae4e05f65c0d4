"""Label and field selectors evaluated in the process, as the API server evaluates them.

A watch shared by several caches carries the broadest of their queries to the server; a cache whose
own selector is narrower applies it here, to every object the shared watch decodes. Only the forms
the operator writes are understood (equality, inequality, set membership, existence, comma-joined);
anything else is refused when the cache is wired, never silently matched.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Keep = Callable[[dict[str, Any]], bool]

# Label keys ([prefix/]name) and values, as Kubernetes allows them.
_KEY = r"(?P<key>[A-Za-z0-9][A-Za-z0-9._/-]*)"
_VALUE = r"[A-Za-z0-9._-]*"
_SET = re.compile(rf"^{_KEY}\s+(?P<op>in|notin)\s*\((?P<values>\s*{_VALUE}\s*(,\s*{_VALUE}\s*)*)\)$")
_EQUALITY = re.compile(rf"^{_KEY}\s*(?P<op>==|=|!=)\s*(?P<value>{_VALUE})$")
_EXISTS = re.compile(rf"^(?P<neg>!?)\s*{_KEY}$")


@dataclass(frozen=True)
class Requirement:
    """One term of a selector: `key op values` (op: in, notin, exists, !exists)."""

    key: str
    op: str
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, Any]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        value = labels.get(self.key)
        if self.op == "in":
            return present and value in self.values
        return not present or value not in self.values  # notin, and !=: a missing label matches


class SelectorError(ValueError):
    """A selector the in-process matcher does not understand."""


def _terms(selector: str) -> list[str]:
    """Splits on the commas outside parentheses."""
    terms, depth, start = [], 0, 0
    for i, ch in enumerate(selector):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            terms.append(selector[start:i])
            start = i + 1
    terms.append(selector[start:])
    return [t.strip() for t in terms if t.strip()]


def _requirement(term: str) -> Requirement:
    found = _SET.match(term)
    if found:
        values = frozenset(v.strip() for v in found["values"].split(",") if v.strip())
        return Requirement(found["key"], found["op"], values)
    found = _EQUALITY.match(term)
    if found:
        return Requirement(
            found["key"], "notin" if found["op"] == "!=" else "in", frozenset({found["value"]})
        )
    found = _EXISTS.match(term)
    if found:
        return Requirement(found["key"], "!exists" if found["neg"] else "exists")
    raise SelectorError(f"unsupported selector term {term!r}")


def parse(selector: str | None) -> frozenset[Requirement]:
    """The selector's requirements; an empty or absent selector has none (it matches everything)."""
    return frozenset(_requirement(term) for term in _terms(selector or ""))


def narrower_or_equal(narrow: str | None, broad: str | None) -> bool:
    """Whether every object `narrow` selects is also selected by `broad` (it repeats all its terms)."""
    return parse(broad) <= parse(narrow)


def _labels(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    labels = meta.get("labels") if isinstance(meta, Mapping) else None
    return labels if isinstance(labels, Mapping) else {}


def label_matcher(selector: str | None) -> Keep:
    """A predicate on objects true where the API server's labelSelector would select them."""
    requirements = tuple(parse(selector))

    def matches(obj: dict[str, Any]) -> bool:
        labels = _labels(obj)
        return all(r.matches(labels) for r in requirements)

    return matches


# The fields the operator selects on; a field selector naming another is refused when wired.
_FIELDS = {"metadata.name": "name", "metadata.namespace": "namespace"}


def field_matcher(selector: str | None) -> Keep:
    """A predicate true where the API server's fieldSelector would select (name and namespace only)."""
    requirements = tuple(parse(selector))
    for r in requirements:
        if r.key not in _FIELDS or r.op not in ("in", "notin") or len(r.values) != 1:
            raise SelectorError(f"unsupported field selector term on {r.key!r}")

    def matches(obj: dict[str, Any]) -> bool:
        meta = obj.get("metadata")
        fields = meta if isinstance(meta, Mapping) else {}
        found = {key: str(fields.get(name) or "") for key, name in _FIELDS.items()}
        return all(r.matches(found) for r in requirements)

    return matches


def all_of(*predicates: Keep | None) -> Keep | None:
    """The conjunction of the given predicates (None when there are none)."""
    present = [p for p in predicates if p is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]

    def keep(obj: dict[str, Any]) -> bool:
        return all(p(obj) for p in present)

    return keep
