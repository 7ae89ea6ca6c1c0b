"""Inverted lists and the direct map: where an IVF index keeps its codes.

:class:`InvertedLists` holds every list's (code, id) entries in one slab, each
list contiguous, so a scan reads one block; :class:`DirectMap` finds an id's
slab row for ``reconstruct``. Both are FAISS's pieces with FAISS's names; the
IVF families (float, binary, fast-scan) and the file readers share them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import filtering
from .._validate import check_int
from ..kernels import ivf as K

def _slab_field(i: int) -> property:
    def get(self):
        return self._state[i]

    def set_(self, value):
        state = list(self._state)
        state[i] = value
        self._state = tuple(state)
    return property(get, set_)


class InvertedLists:
    """``nlist`` lists of (code, id) entries stored in one slab.

    List ``l`` occupies slab rows ``offsets[l] .. offsets[l] + sizes[l]``
    (``capacity[l]`` rows reserved), so a scan reads one contiguous block of
    codes. Growing a list past its capacity rebuilds the slab with slack
    proportional to each list's size (amortised O(1) per added entry).
    Writers build new ``sizes`` arrays instead of mutating them, so a search
    holding a :meth:`snapshot` never sees half-written entries.

    Example:
        >>> import numpy as np
        >>> il = InvertedLists(4, 2)
        >>> il.add_entries(np.array([1, 1, 3]), np.zeros((3, 2), np.uint8), np.array([7, 8, 9]))
        >>> il.list_size(1), il.get_ids(1).tolist()
        (2, [7, 8])
    """

    # The slab arrays live in one tuple, replaced in a single assignment: a
    # search's snapshot() reads it in one step, so a rebuild racing the search
    # cannot pair the new codes with the old offsets (seen in
    # tests/test_concurrency.py). Each name still reads and assigns alone.
    codes, ids, offsets, sizes, capacity = (_slab_field(i) for i in range(5))

    def __init__(self, nlist: int, code_size: int):
        self.nlist = check_int(nlist, "nlist", lo=1)
        self.code_size = check_int(code_size, "code_size", lo=0)
        self._state = (np.empty((0, self.code_size), dtype=np.uint8), np.empty(0, dtype=np.int64),
                       np.zeros(self.nlist, dtype=np.int64), np.zeros(self.nlist, dtype=np.int64),
                       np.zeros(self.nlist, dtype=np.int64))

    # --- reading ----------------------------------------------------------
    def list_size(self, list_no: int) -> int:
        return int(self.sizes[list_no])

    def get_codes(self, list_no: int) -> np.ndarray:
        """Codes of list ``list_no``, (size, code_size) uint8 (a view)."""
        o = int(self.offsets[list_no])
        return self.codes[o:o + int(self.sizes[list_no])]

    def get_ids(self, list_no: int) -> np.ndarray:
        o = int(self.offsets[list_no])
        return self.ids[o:o + int(self.sizes[list_no])]

    def snapshot(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return self._state[:4]

    @property
    def ntotal(self) -> int:
        return int(self.sizes.sum())

    def imbalance_factor(self) -> float:
        """nlist * sum(size^2) / ntotal^2: 1 when lists are even (FAISS's measure)."""
        n = self.ntotal
        return float(self.nlist * np.sum(self.sizes.astype(np.float64) ** 2) / n ** 2) if n else 0.0

    def used_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """(slab row, list number) of every stored entry, list by list."""
        total = int(self.sizes.sum())
        lists = np.repeat(np.arange(self.nlist, dtype=np.int64), self.sizes)
        starts = np.cumsum(self.sizes) - self.sizes
        rows = self.offsets[lists] + (np.arange(total, dtype=np.int64) - starts[lists])
        return rows, lists

    # --- writing ----------------------------------------------------------
    def _rebuild(self, capacity: np.ndarray, keep_rows: np.ndarray | None = None) -> None:
        """New slab with the given capacities, copying the current entries
        (or only the rows in ``keep_rows``, which must be in list order)."""
        rows, lists = self.used_rows()
        if keep_rows is not None:
            rows, lists = rows[keep_rows], lists[keep_rows]
        sizes = np.bincount(lists, minlength=self.nlist).astype(np.int64)
        capacity = np.maximum(capacity, sizes)
        offsets = np.cumsum(capacity) - capacity
        total = int(capacity.sum())
        codes = np.empty((total, self.code_size), dtype=np.uint8)
        ids = np.full(total, -1, dtype=np.int64)
        starts = np.cumsum(sizes) - sizes
        dest = offsets[lists] + (np.arange(rows.size, dtype=np.int64) - starts[lists])
        codes[dest] = self.codes[rows]
        ids[dest] = self.ids[rows]
        self._state = (codes, ids, offsets, sizes, capacity)

    def add_entries(self, list_nos: np.ndarray, codes: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Append entries; returns the slab row of each. list_nos int64 (n,),
        codes uint8 (n, code_size), ids int64 (n,)."""
        list_nos = np.ascontiguousarray(list_nos, dtype=np.int64)
        if list_nos.size and (list_nos.min() < 0 or list_nos.max() >= self.nlist):
            raise ValueError(f"list_nos: list numbers must be in [0, {self.nlist})")
        counts = np.bincount(list_nos, minlength=self.nlist).astype(np.int64)
        need = self.sizes + counts
        if (need > self.capacity).any():
            # slack proportional to what a list held before this call: a bulk
            # load stays tight, lists that keep growing get room to grow
            self._rebuild(need + self.sizes // 2 + np.where(self.sizes > 0, 4, 0))
        pos = K.slab_positions(list_nos, self.offsets, self.sizes, self.nlist)
        self.codes[pos] = codes
        self.ids[pos] = ids
        self.sizes = need  # a new array: running searches keep the old sizes
        return pos

    def remove_rows(self, rows: np.ndarray) -> None:
        """Remove the entries at the given slab rows (copy-on-write)."""
        used, _ = self.used_rows()
        keep = ~np.isin(used, rows)
        self._rebuild(self.capacity.copy(), np.flatnonzero(keep))

    def reset(self) -> None:
        self.__init__(self.nlist, self.code_size)

    def compact(self) -> None:
        """Drop the slack so memory equals the stored entries."""
        self._rebuild(self.sizes.copy())


class DirectMap:
    """id -> (list, offset) lookup for ``reconstruct`` (FAISS's DirectMap).

    ``type`` is kept for FAISS file compatibility (0 none, 1 array, 2
    hashtable). voisin reconstructs whatever the type: the lookup (sorted ids
    and their slab rows) is built lazily on the first ``reconstruct`` after a
    write.
    """

    NoMap, Array, Hashtable = 0, 1, 2

    def __init__(self) -> None:
        self.type = DirectMap.NoMap
        self._lookup: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def invalidate(self) -> None:
        self._lookup = None

    def rows_of(self, invlists: InvertedLists, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(slab row, list number) of each key; row -1 when absent."""
        if self._lookup is None:
            rows, lists = invlists.used_rows()
            ids = invlists.ids[rows]
            order = np.argsort(ids, kind="stable")
            self._lookup = (ids[order], rows[order], lists[order])
        sids, rows, lists = self._lookup
        if sids.size == 0:
            return np.full(keys.shape, -1, np.int64), np.full(keys.shape, -1, np.int64)
        pos = np.searchsorted(sids, keys)
        pos[pos == sids.size] = 0
        found = sids[pos] == keys
        return np.where(found, rows[pos], -1), np.where(found, lists[pos], -1)


@dataclass
class ScanContext:
    """What a list scan needs, snapshotted once per search call.

    ``plan``: the filter resolved over this snapshot (None without a filter).
    ``cache``: where a codec keeps data derived from a transient slab (the
    gathered allowed entries of a filter) instead of on the index.
    """

    codes: np.ndarray
    ids: np.ndarray
    offsets: np.ndarray
    sizes: np.ndarray
    mask: np.ndarray
    use_mask: bool
    max_codes: int
    plan: filtering.IVFFilterPlan | None = None
    cache: dict | None = None


_NO_MASK = np.zeros(1, dtype=np.bool_)
