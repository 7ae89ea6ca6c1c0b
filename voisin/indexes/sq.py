"""IndexScalarQuantizer: every vector stored with a scalar quantizer, searched exhaustively."""

from __future__ import annotations

import numpy as np

from .. import filtering
from ..codecs.sq import QT_8bit, ScalarQuantizer, qtype_name
from ..index import Index
from ..kernels import sq as K
from ..metric import METRIC_L2, check_metric, worst_distance
from ..selector import IDSelector, SearchParameters
from .code_storage import PublishedCodes

_NO_MASK = np.zeros(1, dtype=np.bool_)


class IndexScalarQuantizer(PublishedCodes, Index):
    """Flat index over SQ codes (FAISS's ``IndexScalarQuantizer``): 1 (SQ8),
    0.5 (SQ4) or 2 (fp16/bf16) bytes per component instead of 4.

    Distances are computed between the float query and the decoded codes.
    Ids are positions, as for IndexFlat (wrap in IndexIDMap for your own ids).

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).random((2000, 16), dtype="float32")
        >>> index = voisin.IndexScalarQuantizer(16, voisin.ScalarQuantizer.QT_8bit)
        >>> index.train(xb); index.add(xb)
        >>> D, I = index.search(xb[:3], 1)
        >>> I.ravel().tolist()
        [0, 1, 2]
    """

    def __init__(self, d: int, qtype: int = QT_8bit, metric: int = METRIC_L2):
        super().__init__(d, check_metric(metric))
        self.sq = ScalarQuantizer(self.d, qtype)
        self.code_size = self.sq.code_size
        self._codes = np.empty((0, self.code_size), dtype=np.uint8)
        self.is_trained = self.sq.is_trained

    @property
    def codes(self) -> np.ndarray:
        """The stored codes, (ntotal, code_size) uint8 (read-only view)."""
        v = self._codes[:self.ntotal]
        v.flags.writeable = False
        return v

    def __repr__(self) -> str:
        return f"IndexScalarQuantizer(d={self.d}, {qtype_name(self.sq.qtype)}, ntotal={self.ntotal})"

    def _train(self, x: np.ndarray) -> None:
        self.sq.train(x)
        self.is_trained = True

    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        if ids is not None:
            raise NotImplementedError("IndexScalarQuantizer numbers vectors by position: wrap it in "
                                      "IndexIDMap to add with ids")
        codes = self.sq.encode(x)
        n0, need = self.ntotal, self.ntotal + x.shape[0]
        if need > self._codes.shape[0]:
            grown = np.empty((max(need, 2 * self._codes.shape[0], 1024), self.code_size), dtype=np.uint8)
            grown[:n0] = self._codes[:n0]
            grown[n0:need] = codes
            self._snap = (grown, need)  # searches already running keep the old array
        else:
            self._codes[n0:need] = codes  # past the published count: invisible until then
            self.ntotal = need

    def _mask(self, params: SearchParameters | None, n: int) -> tuple[np.ndarray, bool]:
        if params is None or params.sel is None:
            return _NO_MASK, False
        return np.ascontiguousarray(params.sel.mask_sequential(n)), True

    def _search(self, x, k, params, D, I):
        codes, n = self._snap
        mask, use_mask = self._mask(params, n)
        if D is None:
            D = np.empty((x.shape[0], k), dtype=np.float32)
        if I is None:
            I = np.empty((x.shape[0], k), dtype=np.int64)
        rows = None
        if use_mask:
            allowed = int(np.count_nonzero(mask))
            if allowed == 0:
                return filtering.no_results(x.shape[0], k, self.metric_type, D, I)
            if filtering.should_gather(allowed, n):
                # a masked scan scores every code: score only the allowed ones
                rows = np.flatnonzero(mask)
                codes, n = codes[rows], allowed
                mask, use_mask = _NO_MASK, False
        kind, a, b, lut = self.sq.tables()
        K.flat_search(x, codes, n, kind, a, b, lut, self.metric_type, mask, use_mask,
                      worst_distance(self.metric_type), D, I)
        if rows is not None:
            I[:] = np.where(I >= 0, rows[np.maximum(I, 0)], -1)
        return D, I

    def _range_search(self, x, radius, params):
        codes, n = self._snap
        mask, use_mask = self._mask(params, n)
        kind, a, b, lut = self.sq.tables()
        probes = np.zeros((x.shape[0], 1), dtype=np.int64)
        return K.ivf_range_search(x, probes, np.zeros((1, self.d), np.float32), False, codes,
                                  np.arange(n, dtype=np.int64), np.zeros(1, np.int64),
                                  np.array([n], dtype=np.int64), kind, a, b, lut, self.metric_type,
                                  np.float32(radius), 0, mask, use_mask)

    def _remove(self, sel: IDSelector) -> int:
        gone = sel.mask_sequential(self.ntotal)
        removed = int(np.count_nonzero(gone))
        if removed:
            keep = self._codes[:self.ntotal][~gone]
            codes = np.empty_like(self._codes)
            codes[:keep.shape[0]] = keep
            self._snap = (codes, int(keep.shape[0]))
        return removed

    def _reconstruct_keys(self, keys: np.ndarray) -> np.ndarray:
        bad = (keys < 0) | (keys >= self.ntotal)
        if bad.any():
            raise ValueError(f"key: id {int(keys[bad][0])} is out of range [0, {self.ntotal})")
        return self.sq.decode(self._codes[keys])

    def sa_encode(self, x) -> np.ndarray:
        """Codes of ``x`` without adding them (FAISS's standalone codec API)."""
        return self.sq.compute_codes(x)

    def sa_decode(self, codes) -> np.ndarray:
        return self.sq.decode(codes)

    def _reset(self) -> None:
        self._snap = (np.empty((0, self.code_size), dtype=np.uint8), 0)
