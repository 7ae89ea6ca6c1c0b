"""Payload columns: the values of one key path over a table of payloads, as
sorted numpy arrays, so that a condition costs a few ``searchsorted`` calls and
a scatter into a boolean mask instead of a Python test per point.

A column is built once from the payloads (one Python pass) and is immutable
afterwards; :class:`voisin.db.payloads.PayloadStore` tracks the rows written
since, re-checks them with the reference evaluator while they are few, and
beyond that replaces the column by :meth:`Column.merged`, which re-reads only
those rows.

Every value the path selects (arrays unwrapped one level, as Qdrant does) is
one *entry* ``(row, value)``, kept per type because Qdrant never equates
values of different types: strings (as codes into ``vocab``), integers,
booleans; numbers (integers and floats) sorted for ranges; datetime strings
as epoch microseconds sorted for datetime ranges. Per row: whether the key is
empty or null, and the value counts ``values_count`` compares.

Example:
    >>> from voisin.db.filters.paths import parse_path
    >>> col = Column.build([{"t": ["a", "b"]}, {"t": "b"}, {}], parse_path("t"))
    >>> col.rows_equal_str({"b"}).tolist()
    [0, 1]
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .datetimes import payload_micros
from .paths import Path, nested_elements, values_at
from .reference import is_empty, is_null, value_counts


def _sorted(rows: list[int], vals: list, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rows, dtype=np.int64)
    v = np.asarray(vals, dtype=dtype)
    order = np.argsort(v, kind="stable")
    return r[order], v[order]


def _slice_rows(rows: np.ndarray, vals: np.ndarray, wanted: Any) -> np.ndarray:
    """Rows whose sorted value equals one of ``wanted``."""
    if not len(wanted) or not vals.size:
        return np.zeros(0, dtype=np.int64)
    w = np.asarray(sorted(wanted), dtype=vals.dtype)
    lo = np.searchsorted(vals, w, side="left")
    hi = np.searchsorted(vals, w, side="right")
    if (hi - lo).sum() == 0:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([rows[a:b] for a, b in zip(lo, hi) if b > a])


def _range_rows(rows: np.ndarray, vals: np.ndarray, node: Any) -> np.ndarray:
    lo, hi = 0, vals.size
    if node.gt is not None:
        lo = max(lo, int(np.searchsorted(vals, node.gt, side="right")))
    if node.gte is not None:
        lo = max(lo, int(np.searchsorted(vals, node.gte, side="left")))
    if node.lt is not None:
        hi = min(hi, int(np.searchsorted(vals, node.lt, side="left")))
    if node.lte is not None:
        hi = min(hi, int(np.searchsorted(vals, node.lte, side="right")))
    return rows[lo:hi] if hi > lo else np.zeros(0, dtype=np.int64)


class Column:
    """The values of one key path over ``n`` rows (see the module docstring)."""

    def __init__(self) -> None:
        self.n = 0
        self.vocab: list[str] = []
        self._tokens: list[frozenset] | None = None
        self._datetimes: tuple[np.ndarray, np.ndarray] | None = None
        self._micros: list | None = None  # epoch microseconds of each vocab string (None: not a datetime)

    @classmethod
    def build(cls, docs: Sequence[Any], path: Path) -> "Column":
        col = cls()
        col.n = n = len(docs)
        code_of: dict[str, int] = {}
        s_rows, s_codes, i_rows, i_vals, b_rows, b_vals = [], [], [], [], [], []
        f_rows, f_vals, o_rows, c_rows, c_vals = [], [], [], [], []
        empty = np.zeros(n, dtype=bool)
        null = np.zeros(n, dtype=bool)
        for r, doc in enumerate(docs):
            if doc is None:
                continue
            raw = values_at(doc, path, flat=False)
            if not raw:
                empty[r] = True
                c_rows.append(r)
                c_vals.append(0)
                continue
            empty[r] = is_empty(raw)
            null[r] = is_null(raw)
            for c in value_counts(raw):
                c_rows.append(r)
                c_vals.append(c)
            for top in raw:
                for v in (top if isinstance(top, list) else (top,)):
                    if v is None:
                        continue
                    if isinstance(v, bool):
                        b_rows.append(r)
                        b_vals.append(v)
                    elif isinstance(v, int):
                        i_rows.append(r)
                        i_vals.append(v)
                        f_rows.append(r)
                        f_vals.append(v)
                    elif isinstance(v, str):
                        code = code_of.get(v)
                        if code is None:
                            code = code_of[v] = len(code_of)
                        s_rows.append(r)
                        s_codes.append(code)
                    else:
                        o_rows.append(r)  # floats, objects, inner arrays: never equal an operand
                        if isinstance(v, float):
                            f_rows.append(r)
                            f_vals.append(v)
        col.vocab = list(code_of)
        col.code_of = code_of
        col.s_rows, col.s_codes = _sorted(s_rows, s_codes, np.int64)
        col.i_rows, col.i_vals = _sorted(i_rows, i_vals, np.int64)
        col.b_rows, col.b_vals = _sorted(b_rows, b_vals, np.bool_)
        col.f_rows, col.f_vals = _sorted(f_rows, f_vals, np.float64)
        col.o_rows = np.asarray(o_rows, dtype=np.int64)
        col.c_rows = np.asarray(c_rows, dtype=np.int64)
        col.c_vals = np.asarray(c_vals, dtype=np.int64)
        col.empty, col.null = empty, null
        return col

    def merged(self, docs: Sequence[Any], rows: np.ndarray, path: Path) -> "Column":
        """This column with ``rows`` (sorted, unique) re-read from ``docs``: the rows
        written since it was built, in one numpy pass over the entries and one Python
        pass over the written rows only. ``self`` is left as it is (readers may hold it).

        >>> from voisin.db.filters.paths import parse_path
        >>> docs = [{"t": "a"}, {"t": "b"}]
        >>> col = Column.build(docs, parse_path("t"))
        >>> docs[0], docs[1:] = {"t": "c"}, [None, {"t": "b"}]
        >>> sorted(col.merged(docs, np.array([0, 1, 2]), parse_path("t")).rows_equal_str({"b", "c"}).tolist())
        [0, 2]
        """
        rows = np.asarray(rows, dtype=np.int64)
        part = Column.build([docs[r] for r in rows.tolist()], path)
        out = Column()
        out.n = n = max(len(docs), self.n)
        stale = np.zeros(n, dtype=bool)
        stale[rows] = True

        def kept(r: np.ndarray, *vals: np.ndarray) -> tuple[np.ndarray, ...]:
            keep = ~stale[r]
            return (r[keep],) + tuple(v[keep] for v in vals)

        def merge(r_old: np.ndarray, v_old: np.ndarray, r_new: np.ndarray, v_new: np.ndarray):
            r_old, v_old = kept(r_old, v_old)
            at = np.searchsorted(v_old, v_new, side="right")  # v_new is sorted: so is the result
            return np.insert(r_old, at, rows[r_new]), np.insert(v_old, at, v_new)

        # strings: the new rows' codes renumbered into this vocabulary, extended
        code_of, vocab = dict(self.code_of), list(self.vocab)
        recode = np.empty(len(part.vocab), dtype=np.int64)
        for j, v in enumerate(part.vocab):
            c = code_of.get(v)
            if c is None:
                c = code_of[v] = len(vocab)
                vocab.append(v)
            recode[j] = c
        out.vocab, out.code_of = vocab, code_of
        new_codes = recode[part.s_codes] if part.s_codes.size else part.s_codes
        order = np.argsort(new_codes, kind="stable")
        out.s_rows, out.s_codes = merge(self.s_rows, self.s_codes, part.s_rows[order], new_codes[order])
        out.i_rows, out.i_vals = merge(self.i_rows, self.i_vals, part.i_rows, part.i_vals)
        out.b_rows, out.b_vals = merge(self.b_rows, self.b_vals, part.b_rows, part.b_vals)
        out.f_rows, out.f_vals = merge(self.f_rows, self.f_vals, part.f_rows, part.f_vals)
        (o_rows,) = kept(self.o_rows)
        out.o_rows = np.concatenate([o_rows, rows[part.o_rows]])
        c_rows, c_vals = kept(self.c_rows, self.c_vals)
        out.c_rows = np.concatenate([c_rows, rows[part.c_rows]])
        out.c_vals = np.concatenate([c_vals, part.c_vals])
        out.empty, out.null = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        out.empty[:self.n], out.null[:self.n] = self.empty, self.null
        out.empty[rows], out.null[rows] = part.empty, part.null
        # the per-string caches grow with the vocabulary instead of being redone
        if self._tokens is not None:
            from .parse import text_tokens
            out._tokens = self._tokens + [frozenset(text_tokens(v)) for v in vocab[len(self.vocab):]]
        if self._micros is not None:
            out._micros = self._micros + [payload_micros(v) for v in vocab[len(self.vocab):]]
        return out

    def datetimes(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, epoch microseconds) of the datetime strings, sorted; parsed
        once per distinct string, on the first datetime range."""
        if self._datetimes is None:
            if self._micros is None:
                self._micros = [payload_micros(s) for s in self.vocab]
            micros = self._micros
            ok = np.array([m is not None for m in micros], dtype=bool)
            of_code = np.array([m if m is not None else 0 for m in micros], dtype=np.int64)
            keep = ok[self.s_codes] if ok.size else np.zeros(0, dtype=bool)
            self._datetimes = _sorted(self.s_rows[keep].tolist(),
                                      of_code[self.s_codes[keep]].tolist(), np.int64)
        return self._datetimes

    # --- the conditions ----------------------------------------------------------
    def rows_equal_str(self, wanted: Any) -> np.ndarray:
        codes = [self.code_of[s] for s in wanted if s in self.code_of]
        return _slice_rows(self.s_rows, self.s_codes, codes)

    def rows_equal(self, node: Any) -> np.ndarray:
        """Rows with a value equal to one operand of a match value / any."""
        parts = [self.rows_equal_str(node.strs), _slice_rows(self.i_rows, self.i_vals, node.ints),
                 _slice_rows(self.b_rows, self.b_vals, node.bools)]
        return np.concatenate(parts)

    def rows_except(self, node: Any) -> np.ndarray:
        """Rows with a non-null value equal to no operand (match except)."""
        codes = np.zeros(len(self.vocab), dtype=bool)
        for s in node.strs:
            if s in self.code_of:
                codes[self.code_of[s]] = True
        ints = np.asarray(sorted(node.ints), dtype=np.int64)
        bools = np.asarray(sorted(node.bools), dtype=np.bool_)
        return np.concatenate([self.s_rows[~codes[self.s_codes]] if codes.size else self.s_rows,
                               self.i_rows[~np.isin(self.i_vals, ints)],
                               self.b_rows[~np.isin(self.b_vals, bools)], self.o_rows])

    def rows_text(self, tokens: tuple[str, ...]) -> np.ndarray:
        from .parse import text_tokens
        if not tokens:
            return np.zeros(0, dtype=np.int64)
        if self._tokens is None:
            self._tokens = [frozenset(text_tokens(s)) for s in self.vocab]
        want = set(tokens)
        codes = [c for c, have in enumerate(self._tokens) if want <= have]
        return _slice_rows(self.s_rows, self.s_codes, codes)

    def rows_range(self, node: Any) -> np.ndarray:
        if node.datetime:
            return _range_rows(*self.datetimes(), node)
        return _range_rows(self.f_rows, self.f_vals, node)

    def rows_count(self, node: Any) -> np.ndarray:
        v = self.c_vals
        keep = np.ones(v.size, dtype=bool)
        if node.gt is not None:
            keep &= v > node.gt
        if node.gte is not None:
            keep &= v >= node.gte
        if node.lt is not None:
            keep &= v < node.lt
        if node.lte is not None:
            keep &= v <= node.lte
        return self.c_rows[keep]


class ChildTable:
    """The object elements of the arrays a ``nested`` key selects, one row
    each, with the row of the payload they belong to (``parent``)."""

    def __init__(self, docs: Sequence[Any], path: Path):
        elements: list[dict] = []
        parent: list[int] = []
        for r, doc in enumerate(docs):
            if doc is None:
                continue
            found = nested_elements(doc, path)
            elements.extend(found)
            parent.extend([r] * len(found))
        self.docs = elements
        self.parent = np.asarray(parent, dtype=np.int64)
        self.n_parents = len(docs)
