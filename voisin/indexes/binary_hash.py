"""IndexBinaryHash and IndexBinaryMultiHash: buckets keyed by bits of the code.

``IndexBinaryHash(d, b)`` files each code under its first ``b`` bits; a query
visits its own bucket and, with ``nflip`` > 0, every bucket whose key differs
in at most ``nflip`` bits, and ranks what it finds by full Hamming distance.
``IndexBinaryMultiHash(d, nhash, b)`` keeps ``nhash`` such tables, table h
keyed by bits ``h*b .. (h+1)*b - 1``, over codes stored in an
:class:`IndexBinaryFlat` (``storage``); a code found in several tables is
scored once. Both are FAISS's (same keys, same bucket contents, same files).

Buckets are sorted key arrays with contiguous rows (kernels/binary_hash.py),
rebuilt on each ``add``. Beyond FAISS: filters (``SearchParameters(sel=...)``)
on both, and ``remove_ids`` / ``reconstruct`` on IndexBinaryHash.
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache

import numpy as np

from .._validate import check_int
from ..hamming import as_words
from ..selector import IDSelector, SearchParameters
from .binary import IndexBinary
from .binary_flat import IndexBinaryFlat

MAX_FLIP_MASKS = 1 << 20


@lru_cache(maxsize=32)
def flip_masks(b: int, nflip: int) -> np.ndarray:
    """Every b-bit pattern with at most ``nflip`` ones (0 first), uint64."""
    total = sum(math.comb(b, r) for r in range(min(nflip, b) + 1))
    if total > MAX_FLIP_MASKS:
        raise ValueError(f"nflip: {nflip} flips of {b}-bit keys means probing ~{total} buckets "
                         "per query and table; lower nflip or b")
    out = [0]
    for r in range(1, min(nflip, b) + 1):
        for combo in itertools.combinations(range(b), r):
            out.append(sum(1 << j for j in combo))
    return np.array(out, dtype=np.uint64)


def code_keys(codes: np.ndarray, b: int, nhash: int) -> np.ndarray:
    """Key of each code in each table: bits ``h*b ..`` as an integer, bit j of the code
    being bit ``j & 7`` of byte ``j >> 3`` (FAISS's order). uint64 (n, nhash)."""
    bits = np.unpackbits(codes, axis=1, bitorder="little")[:, :nhash * b]
    bits = bits.reshape(codes.shape[0], nhash, b).astype(np.uint64)
    return (bits << np.arange(b, dtype=np.uint64)).sum(axis=2, dtype=np.uint64)


def group_by_key(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, unique keys, starts): rows sorted by key, stable (insertion order
    within a bucket), and each bucket's first position (plus the end)."""
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    first = np.ones(sk.size, dtype=bool)
    first[1:] = sk[1:] != sk[:-1]
    starts = np.append(np.flatnonzero(first), sk.size).astype(np.int64)
    return order.astype(np.int64), sk[first], starts


def _check_b(b: int, limit: int, what: str) -> int:
    b = check_int(b, "b", lo=1)
    if b > min(63, limit):
        raise ValueError(f"b: {what} takes 1 <= b <= {min(63, limit)} key bits, got {b}")
    return b


class _HashSearch:
    """The search shared by both hash indexes (tables prepared by the subclass)."""

    nflip: int

    def _tables(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _scan(self, x: np.ndarray, params: SearchParameters | None, k: int, radius: int,
              mode: int):
        from ..kernels.binary_hash import hash_scan
        keys, key_off, starts, rows, X, ids, b, nhash = self._tables()
        flips = flip_masks(b, check_int(self.nflip, "nflip", lo=0))
        if params is not None and params.sel is not None:
            # filtered: drop the rows whose ids are not selected from every bucket
            keep = params.sel.contains(ids)[rows]
            counts = np.add.reduceat(keep.astype(np.int64), starts[:-1]) if rows.size else \
                np.zeros(0, np.int64)
            rows = np.ascontiguousarray(rows[keep])
            starts = np.zeros(starts.size, dtype=np.int64)
            np.cumsum(counts, out=starts[1:])
        qk = np.ascontiguousarray(code_keys(x, b, nhash))
        Q = as_words(x)
        W = as_words(X)
        nq = x.shape[0]
        visited = np.zeros(max(1, X.shape[0]), dtype=np.uint32)
        epoch = np.zeros(1, dtype=np.int64)
        counts = np.zeros(nq, dtype=np.int64)
        lims = np.zeros(nq + 1, dtype=np.int64)
        if mode == 0:
            D = np.empty((nq, k), dtype=np.int32)
            I = np.empty((nq, k), dtype=np.int64)
            hash_scan(Q, qk, flips, keys, key_off, starts, rows, W, ids, 0, nq, visited, epoch,
                      0, counts, lims, D, I, 0)
            return D, I
        radius = int(min(max(radius, -1), 1 << 30))
        D0, I0 = np.empty((1, 0), np.int32), np.empty((1, 0), np.int64)
        hash_scan(Q, qk, flips, keys, key_off, starts, rows, W, ids, 0, nq, visited, epoch,
                  radius, counts, lims, D0, I0, 1)
        np.cumsum(counts, out=lims[1:])
        D = np.empty((1, int(lims[-1])), dtype=np.int32)
        I = np.empty((1, int(lims[-1])), dtype=np.int64)
        hash_scan(Q, qk, flips, keys, key_off, starts, rows, W, ids, 0, nq, visited, epoch,
                  radius, counts, lims, D, I, 2)
        return lims, D[0], I[0]

    def _search(self, x, k, params):
        return self._scan(x, params, k, 0, 0)

    def _range_search(self, x, radius, params):
        return self._scan(x, params, 1, radius, 1)


class IndexBinaryHash(_HashSearch, IndexBinary):
    """Codes in buckets keyed by their first ``b`` bits; ``nflip`` widens the probe.

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).integers(0, 256, (1000, 8), dtype=np.uint8)
        >>> index = voisin.IndexBinaryHash(64, 8)
        >>> index.add(xb); index.nflip = 1
        >>> D, I = index.search(xb[:2], 1)
        >>> I.ravel().tolist(), D.ravel().tolist()
        ([0, 1], [0, 0])
    """

    ids_are_positions = False

    def __init__(self, d: int, b: int):
        super().__init__(d)
        self.b = _check_b(b, self.d, "IndexBinaryHash")
        self.nflip = 0
        self._reset()

    def _reset(self) -> None:
        # bucket-grouped codes, their ids and keys; (unique keys, starts) per bucket
        self._state = (np.empty((0, self.code_size), np.uint8), np.empty(0, np.int64),
                       np.empty(0, np.uint64), np.empty(0, np.uint64), np.zeros(1, np.int64))
        self.ntotal = 0

    def set_buckets(self, codes: np.ndarray, ids: np.ndarray) -> None:
        """Install codes and ids (bucket order is rebuilt from the codes' keys)."""
        codes = np.ascontiguousarray(codes, dtype=np.uint8).reshape(-1, self.code_size)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        keys = code_keys(codes, self.b, 1)[:, 0]
        order, ukeys, starts = group_by_key(keys)
        self._state = (codes[order], ids[order], keys[order], ukeys, starts)
        self.ntotal = codes.shape[0]

    def buckets(self) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """(key, ids, codes) of every non-empty bucket, keys ascending."""
        codes, ids, _, ukeys, starts = self._state
        return [(int(ukeys[g]), ids[starts[g]:starts[g + 1]], codes[starts[g]:starts[g + 1]])
                for g in range(ukeys.size)]

    def hashtable_size(self) -> int:
        return int(self._state[3].size)

    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        codes, old_ids, _, _, _ = self._state
        if ids is None:
            ids = np.arange(self.ntotal, self.ntotal + x.shape[0], dtype=np.int64)
        self.set_buckets(np.concatenate([codes, x]), np.concatenate([old_ids, ids]))

    def _tables(self):
        codes, ids, _, ukeys, starts = self._state
        rows = np.arange(codes.shape[0], dtype=np.int64)
        return (ukeys, np.array([0, ukeys.size], np.int64), starts, rows, codes, ids, self.b, 1)

    def _remove(self, sel: IDSelector) -> int:
        codes, ids, _, _, _ = self._state
        gone = sel.contains(ids)
        removed = int(gone.sum())
        if removed:
            self.set_buckets(codes[~gone], ids[~gone])
        return removed

    def _reconstruct_keys(self, keys: np.ndarray) -> np.ndarray:
        codes, ids, _, _, _ = self._state
        order = np.argsort(ids, kind="stable")
        pos = np.searchsorted(ids[order], keys)
        pos = np.minimum(pos, max(0, ids.size - 1))
        found = ids.size > 0 and (ids[order][pos] == keys)
        if ids.size == 0 or not np.all(found):
            bad = keys if ids.size == 0 else keys[~found]
            raise ValueError(f"key: id {int(bad[0])} is not in the index")
        return codes[order[pos]].copy()

    def __repr__(self) -> str:
        return f"IndexBinaryHash(d={self.d}, b={self.b}, nflip={self.nflip}, ntotal={self.ntotal})"


class IndexBinaryMultiHash(_HashSearch, IndexBinary):
    """``nhash`` hash tables of ``b`` bits each over codes kept in ``storage``.

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).integers(0, 256, (1000, 8), dtype=np.uint8)
        >>> index = voisin.IndexBinaryMultiHash(64, 4, 12)
        >>> index.add(xb)
        >>> index.search(xb[:2], 1)[1].ravel().tolist()
        [0, 1]
    """

    def __init__(self, d: int, nhash: int, b: int):
        super().__init__(d)
        self.nhash = check_int(nhash, "nhash", lo=1)
        self.b = _check_b(b, self.d, "IndexBinaryMultiHash")
        if self.nhash * self.b > self.d:
            raise ValueError(f"nhash, b: {self.nhash} tables of {self.b} bits need "
                             f"nhash * b <= d = {self.d}")
        self.nflip = 0
        self.storage = IndexBinaryFlat(self.d)
        self.own_fields = True
        self._maps: tuple | None = None

    @property  # type: ignore[override]
    def ntotal(self) -> int:
        storage = self.__dict__.get("storage")
        return 0 if storage is None else storage.ntotal

    @ntotal.setter
    def ntotal(self, n: int) -> None:
        pass  # the storage counts

    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        if ids is not None:
            raise NotImplementedError(
                "IndexBinaryMultiHash numbers codes by position and cannot take ids: wrap it, "
                "e.g. IndexBinaryIDMap(IndexBinaryMultiHash(d, nhash, b))")
        self.storage._add(x, None)
        self._maps = None

    def set_storage(self, codes: np.ndarray) -> None:
        self.storage.set_codes(codes)
        self._maps = None

    def maps(self) -> list[list[tuple[int, np.ndarray]]]:
        """Per table, the (key, positions) of each non-empty bucket, keys ascending."""
        keys, key_off, starts, rows = self._tables()[:4]
        out = []
        for t in range(self.nhash):
            out.append([(int(keys[g]), rows[starts[g]:starts[g + 1]])
                        for g in range(key_off[t], key_off[t + 1])])
        return out

    def hashtable_size(self) -> int:
        return int(self._tables()[0].size)

    def _tables(self):
        X = self.storage.codes_snapshot()
        maps = self._maps
        if maps is None or maps[0] != X.shape[0]:
            n = X.shape[0]
            keys = code_keys(X, self.b, self.nhash)
            all_keys, all_rows, all_starts, key_off = [], [], [], [0]
            base = 0
            for t in range(self.nhash):
                order, ukeys, starts = group_by_key(keys[:, t])
                all_keys.append(ukeys)
                all_rows.append(order)
                all_starts.append(starts[:-1] + base)
                base += n
                key_off.append(key_off[-1] + ukeys.size)
            all_starts.append(np.array([base], np.int64))
            maps = (n, np.concatenate(all_keys).astype(np.uint64),
                    np.array(key_off, np.int64), np.concatenate(all_starts).astype(np.int64),
                    np.concatenate(all_rows).astype(np.int64))
            self._maps = maps
        n, keys, key_off, starts, rows = maps
        return keys, key_off, starts, rows, X, np.arange(n, dtype=np.int64), self.b, self.nhash

    def _remove(self, sel: IDSelector) -> int:
        raise NotImplementedError("IndexBinaryMultiHash does not support remove_ids (as in "
                                  "FAISS): rebuild it without those codes")

    def _reconstruct_keys(self, keys: np.ndarray) -> np.ndarray:
        return self.storage._reconstruct_keys(keys)

    def _reset(self) -> None:
        self.storage._reset()
        self._maps = None

    def __repr__(self) -> str:
        return (f"IndexBinaryMultiHash(d={self.d}, nhash={self.nhash}, b={self.b}, "
                f"nflip={self.nflip}, ntotal={self.ntotal})")
