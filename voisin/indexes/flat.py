"""Exact search over raw float32 vectors: IndexFlat, IndexFlatL2, IndexFlatIP."""

from __future__ import annotations

import numpy as np

from .. import exact
from ..index import Index
from ..kernels.flat import row_norms_sqr
from ..metric import METRIC_INNER_PRODUCT, METRIC_L2
from ..selector import IDSelector, SearchParameters


class IndexFlat(Index):
    """Brute-force index: every query is compared with every stored vector.

    Ids are positions 0..ntotal-1; ``remove_ids`` shifts the later vectors
    down, exactly as FAISS does (wrap in :class:`IndexIDMap` for stable ids).

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.rand(1000, 32).astype("float32")
        >>> index = voisin.IndexFlat(32, voisin.METRIC_L2)
        >>> index.add(xb)
        >>> D, I = index.search(xb[:3], 1)
        >>> I.ravel().tolist()
        [0, 1, 2]
    """

    def __init__(self, d: int, metric: int = METRIC_L2):
        super().__init__(d, metric)
        self._xb = np.empty((0, self.d), dtype=np.float32)
        self._norms = np.empty(0, dtype=np.float32)

    # Squared norms are derived data: a memory-mapped load (voisin.io) sets them
    # to None so opening stays O(1), and the first use computes them.
    @property
    def _norms(self) -> np.ndarray:
        norms = self._norms_cache
        if norms is None:
            norms = row_norms_sqr(self._xb[:self.ntotal]) if self.ntotal else np.empty(0, np.float32)
            self._norms_cache = norms
        return norms

    @_norms.setter
    def _norms(self, value: np.ndarray | None) -> None:
        self._norms_cache = value

    @property
    def xb(self) -> np.ndarray:
        """The stored vectors, (ntotal, d), a read-only view."""
        v = self._xb[:self.ntotal]
        v.flags.writeable = False
        return v

    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        if ids is not None:
            raise NotImplementedError(
                "IndexFlat numbers vectors by position and cannot take ids: "
                "wrap it, e.g. IndexIDMap(IndexFlatL2(d)).add_with_ids(x, ids)")
        n0, n = self.ntotal, x.shape[0]
        need = n0 + n
        if need > self._xb.shape[0]:
            # amortised growth; searches already running keep the old arrays
            cap = max(need, 2 * self._xb.shape[0], 1024)
            xb = np.empty((cap, self.d), dtype=np.float32)
            xb[:n0] = self._xb[:n0]
            norms = np.empty(cap, dtype=np.float32)
            norms[:n0] = self._norms[:n0]
            xb[n0:need] = x
            norms[n0:need] = row_norms_sqr(x)
            self._xb, self._norms = xb, norms
        else:
            self._xb[n0:need] = x
            self._norms[n0:need] = row_norms_sqr(x)
        self.ntotal = need

    def _mask(self, params: SearchParameters | None, n: int) -> np.ndarray | None:
        if params is None or params.sel is None:
            return None
        return params.sel.mask_sequential(n)

    def _search(self, x, k, params, D, I):
        xb, norms, n = self._xb, self._norms, self.ntotal
        return exact.search(x, xb, n, norms, self.metric_type, k, self._mask(params, n), D, I)

    def _range_search(self, x, radius, params):
        xb, n = self._xb, self.ntotal
        return exact.range_search(x, xb, n, self.metric_type, radius, self._mask(params, n))

    def _remove(self, sel: IDSelector) -> int:
        n = self.ntotal
        gone = sel.mask_sequential(n)
        removed = int(np.count_nonzero(gone))
        if removed:
            keep = np.flatnonzero(~gone)
            xb = np.empty_like(self._xb)
            norms = np.empty_like(self._norms)
            xb[:keep.size] = self._xb[keep]
            norms[:keep.size] = self._norms[keep]
            self._xb, self._norms = xb, norms
            self.ntotal = int(keep.size)
        return removed

    def _reconstruct_keys(self, keys: np.ndarray) -> np.ndarray:
        bad = (keys < 0) | (keys >= self.ntotal)
        if bad.any():
            raise ValueError(f"key: id {int(keys[bad][0])} is out of range [0, {self.ntotal})")
        return self._xb[keys].copy()

    def _reset(self) -> None:
        self._xb = np.empty((0, self.d), dtype=np.float32)
        self._norms = np.empty(0, dtype=np.float32)
        self.ntotal = 0


class IndexFlatL2(IndexFlat):
    """:class:`IndexFlat` with squared Euclidean distance.

    Example:
        >>> import voisin
        >>> index = voisin.IndexFlatL2(64)
    """

    def __init__(self, d: int):
        super().__init__(d, METRIC_L2)


class IndexFlatIP(IndexFlat):
    """:class:`IndexFlat` with inner product (cosine after ``normalize_L2``).

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.rand(100, 16).astype("float32"); voisin.normalize_L2(xb)
        >>> index = voisin.IndexFlatIP(16); index.add(xb)
        >>> D, I = index.search(xb[:1], 1)   # D holds cosine similarities
    """

    def __init__(self, d: int):
        super().__init__(d, METRIC_INNER_PRODUCT)
