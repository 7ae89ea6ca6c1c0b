"""Exact search over raw float32 vectors: IndexFlat, IndexFlatL2, IndexFlatIP."""

from __future__ import annotations

import numpy as np

from .. import exact, extra_metrics
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

    # The storage is published as one (rows, squared norms, count) tuple, so
    # a search that runs while another thread adds or removes always pairs
    # rows with the count that goes with them. Norms are derived data, None
    # until first needed (a memory-mapped load must stay O(1)).
    _snap: tuple = (np.empty((0, 0), dtype=np.float32), None, 0)
    # METRIC_L1, METRIC_Lp (p in metric_arg), ...: voisin/extra_metrics.py
    _extra_metrics = True

    def __init__(self, d: int, metric: int = METRIC_L2):
        super().__init__(d, metric)
        self._snap = (np.empty((0, self.d), dtype=np.float32), None, 0)

    @property  # type: ignore[override]
    def ntotal(self) -> int:
        return self._snap[2]

    @ntotal.setter
    def ntotal(self, n: int) -> None:
        xb, norms, _ = self._snap
        self._snap = (xb, norms, int(n))

    @property
    def _xb(self) -> np.ndarray:
        return self._snap[0]

    @_xb.setter
    def _xb(self, xb: np.ndarray) -> None:
        self._snap = (xb, None, self._snap[2])

    @property
    def _norms(self) -> np.ndarray:
        """Squared norms of the stored rows (computed on first use)."""
        return self._snapshot(with_norms=True)[1]

    @_norms.setter
    def _norms(self, value: np.ndarray | None) -> None:
        xb, _, n = self._snap
        self._snap = (xb, value, n)

    def _snapshot(self, with_norms: bool) -> tuple:
        snap = self._snap
        if with_norms and snap[1] is None:
            xb, _, n = snap
            snap = (xb, row_norms_sqr(xb[:n]), n)
            with self._write_lock:
                if self._snap[0] is xb and self._snap[2] == n:
                    self._snap = snap
        return snap

    @property
    def xb(self) -> np.ndarray:
        """The stored vectors, (ntotal, d), a read-only view."""
        xb, _, n = self._snap
        v = xb[:n]
        v.flags.writeable = False
        return v

    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        if ids is not None:
            raise NotImplementedError(
                "IndexFlat numbers vectors by position and cannot take ids: "
                "wrap it, e.g. IndexIDMap(IndexFlatL2(d)).add_with_ids(x, ids)")
        xb, norms, n0 = self._snapshot(with_norms=True)
        need = n0 + x.shape[0]
        if need > xb.shape[0] or norms.shape[0] < need or not xb.flags.writeable:
            # amortised growth; searches already running keep the old arrays
            cap = max(need, 2 * xb.shape[0], 1024)
            grown = np.empty((cap, self.d), dtype=np.float32)
            grown[:n0] = xb[:n0]
            grown_norms = np.empty(cap, dtype=np.float32)
            grown_norms[:n0] = norms[:n0]
            xb, norms = grown, grown_norms
        # rows beyond the published count are invisible to searches until the
        # new snapshot below is published
        xb[n0:need] = x
        norms[n0:need] = row_norms_sqr(x)
        self._snap = (xb, norms, need)

    def _mask(self, params: SearchParameters | None, n: int) -> np.ndarray | None:
        if params is None or params.sel is None:
            return None
        return params.sel.mask_sequential(n)

    def _search(self, x, k, params, D, I):
        if extra_metrics.is_extra(self.metric_type):
            xb, _, n = self._snap
            return extra_metrics.search(x, xb, n, self.metric_type, self.metric_arg, k,
                                        self._mask(params, n), D, I)
        xb, norms, n = self._snapshot(with_norms=exact.uses_norms(x, self.metric_type))
        return exact.search(x, xb, n, self.metric_type, k, self._mask(params, n), D, I, norms)

    def _range_search(self, x, radius, params):
        xb, _, n = self._snap
        if extra_metrics.is_extra(self.metric_type):
            return extra_metrics.range_search(x, xb, n, self.metric_type, self.metric_arg, radius,
                                              self._mask(params, n))
        return exact.range_search(x, xb, n, self.metric_type, radius, self._mask(params, n))

    def _remove(self, sel: IDSelector) -> int:
        xb, norms, n = self._snap
        gone = sel.mask_sequential(n)
        removed = int(np.count_nonzero(gone))
        if removed:
            keep = np.flatnonzero(~gone)
            new_xb = np.empty(xb.shape, dtype=np.float32)
            new_xb[:keep.size] = xb[keep]
            new_norms = None
            if norms is not None:
                new_norms = np.empty(xb.shape[0], dtype=np.float32)
                new_norms[:keep.size] = norms[keep]
            self._snap = (new_xb, new_norms, int(keep.size))
        return removed

    def _reconstruct_keys(self, keys: np.ndarray) -> np.ndarray:
        xb, _, n = self._snap
        bad = (keys < 0) | (keys >= n)
        if bad.any():
            raise ValueError(f"key: id {int(keys[bad][0])} is out of range [0, {n})")
        return xb[keys].copy()

    def _reset(self) -> None:
        self._snap = (np.empty((0, self.d), dtype=np.float32), None, 0)


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
