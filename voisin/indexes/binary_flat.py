"""IndexBinaryFlat: exact Hamming search over every stored code (popcount kernels)."""

from __future__ import annotations

import numpy as np

from ..hamming import knn_codes, range_codes
from ..selector import IDSelector, SearchParameters
from .binary import IndexBinary, empty_range, empty_result


class IndexBinaryFlat(IndexBinary):
    """Brute-force binary index: every query is compared with every stored code.

    Ids are positions 0..ntotal-1; ``remove_ids`` shifts the later codes down,
    as FAISS does (wrap it in :class:`IndexBinaryIDMap` for stable ids).
    ``SearchParameters(sel=...)`` restricts a search to the selected ids.

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).integers(0, 256, (1000, 32), dtype=np.uint8)
        >>> index = voisin.IndexBinaryFlat(256)
        >>> index.add(xb)
        >>> D, I = index.search(xb[:3], 2)
        >>> I[:, 0].tolist(), D[:, 0].tolist()
        ([0, 1, 2], [0, 0, 0])
    """

    def __init__(self, d: int):
        super().__init__(d)
        # (codes with spare capacity, count) published as one tuple: a search
        # racing an add reads rows and the count that goes with them
        self._snap = (np.empty((0, self.code_size), dtype=np.uint8), 0)

    @property  # type: ignore[override]
    def ntotal(self) -> int:
        return self._snap[1]

    @ntotal.setter
    def ntotal(self, n: int) -> None:
        self._snap = (getattr(self, "_snap", (np.empty((0, 0), np.uint8), 0))[0], int(n))

    @property
    def xb(self) -> np.ndarray:
        """The stored codes, uint8 (ntotal, code_size), a read-only view."""
        codes, n = self._snap
        v = codes[:n]
        v.flags.writeable = False
        return v

    def codes_snapshot(self) -> np.ndarray:
        """The stored codes as one consistent (ntotal, code_size) array (a view)."""
        codes, n = self._snap
        return codes[:n]

    def set_codes(self, codes: np.ndarray) -> None:
        """Replace the storage by ``codes`` (uint8 (n, code_size), used in place)."""
        codes = np.asarray(codes, dtype=np.uint8).reshape(-1, self.code_size)
        self._snap = (codes, codes.shape[0])

    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        if ids is not None:
            raise NotImplementedError(
                "IndexBinaryFlat numbers codes by position and cannot take ids: wrap it, "
                "e.g. IndexBinaryIDMap(IndexBinaryFlat(d)).add_with_ids(x, ids)")
        codes, n0 = self._snap
        need = n0 + x.shape[0]
        if need > codes.shape[0] or not codes.flags.writeable:
            # amortised growth; searches already running keep the old array
            grown = np.empty((max(need, 2 * codes.shape[0], 1024), self.code_size), np.uint8)
            grown[:n0] = codes[:n0]
            codes = grown
        codes[n0:need] = x
        self._snap = (codes, need)

    def _allowed(self, params: SearchParameters | None, n: int) -> np.ndarray | None:
        if params is None or params.sel is None:
            return None
        return np.flatnonzero(params.sel.mask_sequential(n))

    def _search(self, x, k, params):
        codes, n = self._snap
        allowed = self._allowed(params, n)
        if allowed is None:
            return knn_codes(x, codes[:n], k)
        if allowed.size == 0:
            return empty_result(x.shape[0], k)
        # the allowed rows, gathered in id order, are scanned as a small index
        # of their own: ties still resolve on the smaller id
        D, I = knn_codes(x, np.ascontiguousarray(codes[allowed]), k)
        I = np.where(I >= 0, allowed[np.maximum(I, 0)], -1)
        return D, I

    def _range_search(self, x, radius, params):
        codes, n = self._snap
        allowed = self._allowed(params, n)
        if allowed is None:
            return range_codes(x, codes[:n], radius)
        if allowed.size == 0:
            return empty_range(x.shape[0])
        lims, D, I = range_codes(x, np.ascontiguousarray(codes[allowed]), radius)
        return lims, D, allowed[I]

    def _remove(self, sel: IDSelector) -> int:
        codes, n = self._snap
        gone = sel.mask_sequential(n)
        removed = int(np.count_nonzero(gone))
        if removed:
            self._snap = (np.ascontiguousarray(codes[:n][~gone]), n - removed)
        return removed

    def _reconstruct_keys(self, keys: np.ndarray) -> np.ndarray:
        codes, n = self._snap
        bad = (keys < 0) | (keys >= n)
        if bad.any():
            raise ValueError(f"key: id {int(keys[bad][0])} is out of range [0, {n})")
        return codes[keys].copy()

    def _reset(self) -> None:
        self._snap = (np.empty((0, self.code_size), dtype=np.uint8), 0)
