"""A filter evaluated on one payload at a time: Qdrant's semantics, spelled out.

The column evaluator (:mod:`.evaluate`) answers for whole collections at
once; this one answers for the few points changed since a column was built,
for small collections, and serves as the definition both are tested against.

Example:
    >>> from voisin.db.filters.parse import parse_filter
    >>> f = parse_filter({"must": [{"key": "tags", "match": {"value": "a"}}]})
    >>> matches(f, {"tags": ["a", "b"]}, 1)
    True
"""

from __future__ import annotations

from typing import Any

from . import ast as A
from .datetimes import payload_micros
from .paths import nested_elements, values_at

#: the point id inside a nested filter: has_id never matches there
NO_ID = object()


def _value_in(v: Any, node: A.Match) -> bool:
    # bool, int and str are distinct payload types; floats never equal an operand
    if isinstance(v, bool):
        return v in node.bools
    if isinstance(v, int):
        return v in node.ints
    if isinstance(v, str):
        return v in node.strs
    return False


def _text(v: Any, tokens: tuple[str, ...]) -> bool:
    from .parse import text_tokens
    if not isinstance(v, str) or not tokens:
        return False
    have = set(text_tokens(v))
    return all(t in have for t in tokens)


def _bounds_hold(x: Any, node: Any) -> bool:
    return ((node.gt is None or x > node.gt) and (node.gte is None or x >= node.gte)
            and (node.lt is None or x < node.lt) and (node.lte is None or x <= node.lte))


def _range_value(v: Any, node: A.Range) -> bool:
    if node.datetime:
        if not isinstance(v, str):
            return False
        t = payload_micros(v)
        return t is not None and _bounds_hold(t, node)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return _bounds_hold(v, node)


def value_counts(raw: list[Any]) -> list[int]:
    """What values_count compares: one count per value the key selects."""
    if all(v is None for v in raw):
        return [0]
    return [0 if v is None else len(v) if isinstance(v, list) else 1 for v in raw]


def is_empty(raw: list[Any]) -> bool:
    return all(v is None or (isinstance(v, list) and not v) for v in raw)


def is_null(raw: list[Any]) -> bool:
    return any(v is None or (isinstance(v, list) and any(e is None for e in v)) for v in raw)


def matches(node: A.Node, payload: dict, point_id: Any) -> bool:
    """Whether ``payload`` (of point ``point_id``) satisfies ``node``."""
    if isinstance(node, A.Bool):
        if not all(matches(c, payload, point_id) for c in node.must):
            return False
        if any(matches(c, payload, point_id) for c in node.must_not):
            return False
        if node.should and not any(matches(c, payload, point_id) for c in node.should):
            return False
        if node.min_count:
            hit = sum(matches(c, payload, point_id) for c in node.min_should)
            if hit < node.min_count:
                return False
        return True
    if isinstance(node, A.Not):
        return not matches(node.node, payload, point_id)
    if isinstance(node, A.Match):
        values = values_at(payload, node.path)
        if node.kind == "any":
            return any(_value_in(v, node) for v in values)
        if node.kind == "except":
            return any(v is not None and not _value_in(v, node) for v in values)
        return any(_text(v, node.tokens) for v in values)
    if isinstance(node, A.Range):
        return any(_range_value(v, node) for v in values_at(payload, node.path))
    if isinstance(node, A.ValuesCount):
        return any(_bounds_hold(c, node) for c in value_counts(values_at(payload, node.path, False)))
    if isinstance(node, A.IsEmpty):
        return is_empty(values_at(payload, node.path, False))
    if isinstance(node, A.IsNull):
        return is_null(values_at(payload, node.path, False))
    if isinstance(node, A.HasId):
        return point_id is not NO_ID and point_id in node.ids
    if isinstance(node, A.Nested):
        return any(matches(node.filter, e, NO_ID) for e in nested_elements(payload, node.path))
    raise TypeError(f"unknown filter node {node!r}")  # pragma: no cover
