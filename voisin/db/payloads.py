"""The payloads of a collection in memory, indexed by internal id, with the
columns its filters use.

Internal ids (``iid``) are small dense integers, so a filter's answer is a
boolean mask over the iid space, which becomes an ``IDSelectorBitmap`` for the
ANN index as it is. Columns and nested child tables are built from the
payloads when a filter first reads a key (or eagerly for a declared payload
index), tagged with the write version they saw. Every write appends the rows
it touched to a change log; a column answers for the rows it saw and the
rows logged since are re-checked one by one, until they exceed
``REBUILD_ROWS`` + ``REBUILD_FRACTION`` of the table, when it is rebuilt.

Readers and the single writer are kept apart by the collection's gate, so
nothing here locks except the lazy builds (several readers may want one).

Example:
    >>> from voisin.db.filters.parse import parse_filter
    >>> s = PayloadStore(lambda ids: [])
    >>> s.put([0, 1], [{"lang": "fr"}, {"lang": "en"}], ["a", "b"])
    >>> s.mask(parse_filter({"must": [{"key": "lang", "match": {"value": "fr"}}]})).tolist()
    [True, False]
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Sequence

import numpy as np

from .filters import ast as A
from .filters.columns import ChildTable, Column
from .filters.evaluate import SMALL_TABLE, StaticTable, evaluate
from .filters.paths import Path, parse_path

REBUILD_ROWS = 2048
REBUILD_FRACTION = 0.02
#: changed rows a query re-tests one by one before the column is merged forward
MERGE_ROWS = 32
#: filter answers kept between two writes (and at most ~64 MB of them)
MASK_CACHE = 64


class PayloadStore:
    """Payload (dict) and point id of every internal id, plus filter columns."""

    def __init__(self, iids_of: Callable[[frozenset], Sequence[int]]):
        self.docs: list[Any] = []          # iid -> payload dict, None when absent
        self.ids: list[Any] = []           # iid -> point id
        self._live = np.zeros(0, dtype=bool)
        self._iids_of = iids_of
        self.version = 0
        self._log: list[tuple[int, np.ndarray]] = []  # (version, rows written then)
        self._columns: dict[str, tuple[int, Column]] = {}
        self._children: dict[str, tuple[int, StaticTable]] = {}
        self.declared: dict[str, str] = {}  # payload indexes asked for: key -> schema
        self._lock = threading.Lock()
        self._masks: dict = {}  # filter -> (mask, count), for one version (see masked)
        self.small = True

    # --- the table interface of filters.evaluate -----------------------------------
    @property
    def n(self) -> int:
        return len(self.docs)

    def live(self) -> np.ndarray:
        return self._live[:self.n].copy()

    @property
    def count(self) -> int:
        return int(np.count_nonzero(self._live[:self.n]))

    def is_live(self, iid: int) -> bool:
        return iid < len(self.docs) and self.docs[iid] is not None

    def point_id(self, row: int) -> Any:
        return self.ids[row]

    def rows_with_ids(self, ids: frozenset) -> np.ndarray:
        return np.asarray(self._iids_of(ids), dtype=np.int64)

    def column(self, key: str, path: Path) -> tuple[Column, np.ndarray]:
        return self._fresh(self._columns, key, lambda: Column.build(self.docs, path),
                           lambda col, rows: col.merged(self.docs, rows, path))

    def child(self, key: str, path: Path) -> tuple[StaticTable, np.ndarray]:
        def build() -> StaticTable:
            c = ChildTable(self.docs, path)
            return StaticTable(c.docs, c.parent, SMALL_TABLE)
        return self._fresh(self._children, key, build)

    def _fresh(self, cache: dict, key: str, build: Callable[[], Any],
               merge: Callable[[Any, np.ndarray], Any] | None = None) -> tuple[Any, np.ndarray]:
        """The cached structure for ``key`` and the rows changed since it was built.
        Beyond ``MERGE_ROWS`` changed rows a column is merged forward (its entries
        for those rows re-read, once per write, by the first query after it)
        rather than leaving every query to re-test them; a structure that cannot
        merge (a nested table) is rebuilt once they exceed ``REBUILD_ROWS`` +
        ``REBUILD_FRACTION`` of the table."""
        entry = cache.get(key)
        if entry is None or self._stale(entry[0]):
            with self._lock:
                entry = cache.get(key)
                if entry is None or self._stale(entry[0]):
                    entry = cache[key] = (self.version, build())
        dirty = self.changed_since(entry[0])
        if merge is not None and dirty.size > MERGE_ROWS:
            with self._lock:
                latest = cache[key]
                if latest[0] == entry[0]:
                    latest = cache[key] = (self.version, merge(entry[1], dirty))
                entry = latest
            dirty = self.changed_since(entry[0])
        return entry[1], dirty

    # --- versions -----------------------------------------------------------------
    def changed_since(self, version: int) -> np.ndarray:
        parts = [rows for v, rows in self._log if v > version]
        if not parts:
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate(parts))

    def _stale(self, version: int) -> bool:
        pending = sum(rows.size for v, rows in self._log if v > version)
        return pending > REBUILD_ROWS + REBUILD_FRACTION * self.n

    def _trim_log(self) -> None:
        built = [v for v, _ in self._columns.values()] + [v for v, _ in self._children.values()]
        oldest = min(built, default=self.version)
        self._log = [(v, rows) for v, rows in self._log if v > oldest]

    # --- writes (under the collection's write gate) ---------------------------------
    def _grow(self, need: int) -> None:
        if need > len(self.docs):
            extra = need - len(self.docs)
            self.docs.extend([None] * extra)
            self.ids.extend([None] * extra)
        if need > self._live.size:
            grown = np.zeros(max(need, 2 * self._live.size, 1024), dtype=bool)
            grown[:self._live.size] = self._live
            self._live = grown

    def _record(self, rows: Sequence[int]) -> None:
        self.version += 1
        self._log.append((self.version, np.asarray(rows, dtype=np.int64)))
        self._trim_log()
        self.small = self.count < SMALL_TABLE

    def put(self, iids: Sequence[int], payloads: Sequence[dict], point_ids: Sequence[Any]) -> None:
        """Points ``iids`` now have these payloads (new points or replacements)."""
        if not len(iids):
            return
        self._grow(max(iids) + 1)
        for i, p, pid in zip(iids, payloads, point_ids):
            self.docs[i] = p
            self.ids[i] = pid
        self._live[np.asarray(iids, dtype=np.int64)] = True
        self._record(iids)

    def remove(self, iids: Sequence[int]) -> None:
        if not len(iids):
            return
        for i in iids:
            self.docs[i] = None
        self._live[np.asarray(iids, dtype=np.int64)] = False
        self._record(iids)

    def declare(self, key: str, schema: str) -> None:
        """A payload index: build the column now and keep it fresh."""
        self.declared[key] = schema
        self.column(key, parse_path(key))

    def undeclare(self, key: str) -> None:
        self.declared.pop(key, None)

    # --- reads ----------------------------------------------------------------------
    def mask(self, node: A.Bool | None) -> np.ndarray:
        """Which iids are live and satisfy ``node`` (all live ones for None); read-only."""
        return self.masked(node)[0]

    def masked(self, node: A.Bool | None) -> tuple[np.ndarray, int]:
        """(mask, how many it allows). A served workload asks the same few filters
        again and again between two writes, so answers are kept until the next
        write (parsed filters are frozen dataclasses: equal filters hash alike);
        the masks are read-only, being shared."""
        version = self.version
        cache = self._masks
        if cache.get("version") != version or len(cache) > min(MASK_CACHE, (64 << 20) // max(1, self.n)):
            cache = self._masks = {"version": version}
        hit = cache.get(node)
        if hit is None:
            mask = self.live() if node is None else evaluate(node, self)
            mask.flags.writeable = False
            hit = cache[node] = (mask, int(np.count_nonzero(mask)))
        return hit
