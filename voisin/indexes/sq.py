"""IndexScalarQuantizer: every vector stored with a scalar quantizer, searched exhaustively."""

from __future__ import annotations

import numpy as np

from .. import filtering
from ..codecs.sq import QT_8bit, ScalarQuantizer, qtype_name
from ..index import Index
from ..kernels import sq as K
from ..metric import METRIC_L2, check_metric, worst_distance
from .code_storage import PublishedCodes


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

    def __repr__(self) -> str:
        return f"IndexScalarQuantizer(d={self.d}, {qtype_name(self.sq.qtype)}, ntotal={self.ntotal})"

    def _train(self, x: np.ndarray) -> None:
        self.sq.train(x)
        self.is_trained = True

    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        if ids is not None:
            raise NotImplementedError("IndexScalarQuantizer numbers vectors by position: wrap it in "
                                      "IndexIDMap to add with ids")
        self._append(self.sq.encode(x))

    def _search(self, x, k, params, D, I):
        if D is None:
            D = np.empty((x.shape[0], k), dtype=np.float32)
        if I is None:
            I = np.empty((x.shape[0], k), dtype=np.int64)
        got = self._scan_rows(params)
        if got is None:
            return filtering.no_results(x.shape[0], k, self.metric_type, D, I)
        codes, n, mask, use_mask, rows = got
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

    def sa_encode(self, x) -> np.ndarray:
        """Codes of ``x`` without adding them (FAISS's standalone codec API)."""
        return self.sq.compute_codes(x)

    def sa_decode(self, codes) -> np.ndarray:
        return self.sq.decode(codes)

    def _decode_rows(self, rows: np.ndarray) -> np.ndarray:
        return self.sq.decode(rows)
