"""A compiled filter evaluated over a whole table of payloads into a boolean
mask, with numpy operations over :class:`~.columns.Column` arrays.

A table (:class:`StaticTable`, or the collection's live
:class:`voisin.db.payloads.PayloadStore`) hands out columns and nested child
tables together with the rows written since they were built; those rows are
re-checked one by one with the reference evaluator (the live table keeps them
few by merging its columns forward, see :mod:`voisin.db.payloads`). Tables smaller than ``SMALL_TABLE`` rows are
evaluated by the reference evaluator directly (a column would not pay).

Example:
    >>> from voisin.db.filters.parse import parse_filter
    >>> t = StaticTable([{"n": 1}, {"n": 5}, {"n": 9}], small=0)
    >>> evaluate(parse_filter({"must": [{"key": "n", "range": {"gt": 2}}]}), t).tolist()
    [False, True, True]
"""

from __future__ import annotations

import threading
from typing import Any, Sequence

import numpy as np

from . import ast as A
from .columns import ChildTable, Column
from .paths import Path
from .reference import NO_ID, matches

#: below this many rows a filter is evaluated payload by payload
SMALL_TABLE = 512

_EMPTY = np.zeros(0, dtype=np.int64)


class StaticTable:
    """An immutable list of payloads (a nested child table, or a test fixture);
    columns and child tables are built on first use and kept."""

    def __init__(self, docs: Sequence[Any], parent: np.ndarray | None = None,
                 small: int = SMALL_TABLE):
        self.docs = docs
        self.n = len(docs)
        self.parent = parent
        self.small = self.n < small
        self._small_limit = small
        self._columns: dict[str, Column] = {}
        self._children: dict[str, StaticTable] = {}
        self._lock = threading.Lock()

    def point_id(self, row: int) -> Any:
        return NO_ID

    def live(self) -> np.ndarray:
        return np.array([d is not None for d in self.docs], dtype=bool)

    def rows_with_ids(self, ids: frozenset) -> np.ndarray:
        return _EMPTY

    def column(self, key: str, path: Path) -> tuple[Column, np.ndarray]:
        col = self._columns.get(key)
        if col is None:
            with self._lock:
                col = self._columns.get(key)
                if col is None:
                    col = self._columns[key] = Column.build(self.docs, path)
        return col, _EMPTY

    def child(self, key: str, path: Path) -> tuple["StaticTable", np.ndarray]:
        t = self._children.get(key)
        if t is None:
            with self._lock:
                t = self._children.get(key)
                if t is None:
                    c = ChildTable(self.docs, path)
                    t = self._children[key] = StaticTable(c.docs, c.parent, self._small_limit)
        return t, _EMPTY


def evaluate(node: A.Node, table: Any) -> np.ndarray:
    """Boolean mask over the rows of ``table``: which payloads satisfy ``node``."""
    live = table.live()
    if table.small:
        docs = table.docs
        out = np.zeros(table.n, dtype=bool)
        for r in np.flatnonzero(live):
            out[r] = matches(node, docs[r], table.point_id(int(r)))
        return out
    return _eval(node, table) & live


def _fix(mask: np.ndarray, node: A.Node, table: Any, dirty: np.ndarray) -> np.ndarray:
    docs = table.docs
    for r in dirty.tolist():
        if r < mask.size:
            doc = docs[r]
            mask[r] = doc is not None and matches(node, doc, table.point_id(r))
    return mask


def _scatter(n: int, rows: np.ndarray) -> np.ndarray:
    m = np.zeros(n, dtype=bool)
    m[rows[rows < n]] = True
    return m


def _eval(node: A.Node, t: Any) -> np.ndarray:
    n = t.n
    if isinstance(node, A.Bool):
        m = np.ones(n, dtype=bool)
        for c in node.must:
            m &= _eval(c, t)
        for c in node.must_not:
            m &= ~_eval(c, t)
        if node.should:
            s = np.zeros(n, dtype=bool)
            for c in node.should:
                s |= _eval(c, t)
            m &= s
        if node.min_count:
            count = np.zeros(n, dtype=np.int32)
            for c in node.min_should:
                count += _eval(c, t)
            m &= count >= node.min_count
        return m
    if isinstance(node, A.Not):
        return ~_eval(node.node, t)
    if isinstance(node, A.HasId):
        return _scatter(n, t.rows_with_ids(node.ids))
    if isinstance(node, A.Nested):
        child, dirty = t.child(node.key, node.path)
        hit = evaluate(node.filter, child)
        return _fix(_scatter(n, child.parent[hit]), node, t, dirty)
    col, dirty = t.column(node.key, node.path)
    return _fix(_leaf(node, col, n), node, t, dirty)


def _leaf(node: A.Node, col: Column, n: int) -> np.ndarray:
    """Mask over ``n`` rows of a condition on one key, from its column alone."""
    if isinstance(node, A.Match):
        if node.kind == "any":
            rows = col.rows_equal(node)
        elif node.kind == "except":
            rows = col.rows_except(node)
        else:
            rows = col.rows_text(node.tokens)
    elif isinstance(node, A.Range):
        rows = col.rows_range(node)
    elif isinstance(node, A.ValuesCount):
        rows = col.rows_count(node)
    elif isinstance(node, A.IsEmpty):
        return _pad(col.empty, n)
    elif isinstance(node, A.IsNull):
        return _pad(col.null, n)
    else:  # pragma: no cover
        raise TypeError(f"unknown filter node {node!r}")
    return _scatter(n, rows)


def _pad(flags: np.ndarray, n: int) -> np.ndarray:
    if flags.size >= n:
        return flags[:n].copy()
    out = np.zeros(n, dtype=bool)
    out[:flags.size] = flags
    return out
