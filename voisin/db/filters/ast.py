"""The compiled form of a Qdrant filter: small immutable nodes.

:func:`voisin.db.filters.parse.parse_filter` builds them from JSON after
checking every field; the evaluators (:mod:`.evaluate` over payload columns,
:mod:`.reference` one payload at a time) only read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from .paths import Path


@dataclass(frozen=True)
class Match:
    """``match``: ``kind`` is "value" / "any" (a value equals one of the
    operands), "except" (a non-null value equals none of them) or "text"
    (every token of ``text`` is a token of a string value)."""

    key: str
    path: Path
    kind: str
    strs: frozenset = frozenset()
    ints: frozenset = frozenset()
    bools: frozenset = frozenset()
    tokens: tuple[str, ...] = ()


@dataclass(frozen=True)
class Range:
    """``range`` over numbers, or over datetimes (bounds in epoch microseconds)."""

    key: str
    path: Path
    datetime: bool
    gt: Any = None
    gte: Any = None
    lt: Any = None
    lte: Any = None


@dataclass(frozen=True)
class ValuesCount:
    key: str
    path: Path
    gt: int | None = None
    gte: int | None = None
    lt: int | None = None
    lte: int | None = None


@dataclass(frozen=True)
class IsEmpty:
    key: str
    path: Path


@dataclass(frozen=True)
class IsNull:
    key: str
    path: Path


@dataclass(frozen=True)
class HasId:
    """Point ids (normalised: int or canonical UUID string)."""

    ids: frozenset


@dataclass(frozen=True)
class Nested:
    """The filter must hold for one element of the object array at ``path``."""

    key: str
    path: Path
    filter: "Bool"


@dataclass(frozen=True)
class Not:
    node: "Node"


@dataclass(frozen=True)
class Bool:
    """must: all hold; must_not: none holds; should: one holds (when not
    empty); min_should: at least ``min_count`` of its conditions hold."""

    must: tuple = ()
    should: tuple = ()
    must_not: tuple = ()
    min_should: tuple = ()
    min_count: int = 0


Node = Union[Match, Range, ValuesCount, IsEmpty, IsNull, HasId, Nested, Not, Bool]


def keys_of(node: Node) -> set[str]:
    """Payload keys a filter reads at its top level (nested filters excluded)."""
    if isinstance(node, Bool):
        out: set[str] = set()
        for part in (node.must, node.should, node.must_not, node.min_should):
            for child in part:
                out |= keys_of(child)
        return out
    if isinstance(node, Not):
        return keys_of(node.node)
    key = getattr(node, "key", None)
    return {key} if key is not None else set()
