"""IndexHNSWPQ: the HNSW graph over product-quantizer codes (FAISS's IndexHNSWPQ)."""

from __future__ import annotations

import numpy as np

from .. import _aligned
from .._validate import check_int
from ..kernels import hnsw_search as KS
from ..kernels.hnsw_space import PQSpace
from ..metric import METRIC_L2
from .hnsw import IndexHNSW


def symmetric_costs(pq, metric: int) -> np.ndarray:
    """(M, ksub, ksub) cost between every two centroids of each sub-quantizer:
    squared distances (L2) or minus the inner products (FAISS's SDC table)."""
    c = pq.centroids.astype(np.float32)
    dots = np.einsum("mad,mbd->mab", c, c)
    if metric != METRIC_L2:
        return np.ascontiguousarray(-dots, dtype=np.float32)
    sq = np.einsum("mad,mad->ma", c, c)
    cost = sq[:, :, None] + sq[:, None, :] - 2.0 * dots
    return np.ascontiguousarray(np.maximum(cost, 0.0), dtype=np.float32)


class IndexHNSWPQ(IndexHNSW):
    """HNSW graph over 8-bit PQ codes: ``pq_m`` bytes per vector (FAISS's ``IndexHNSWPQ``).

    The smallest HNSW: ``d * 4 / pq_m`` times less vector memory than
    :class:`IndexHNSWFlat`. It needs ``train`` (the product quantizer) before ``add``.
    A query is compared with the codes through its distance table (FAISS's ADC).
    While the graph is built, nodes are compared with each other through the
    centroids' table (SDC), as FAISS does. Wrap it in ``IndexRefineFlat`` (factory
    ``"HNSW32_PQ16,RFlat"``) to re-rank exactly. ``d`` must be a multiple of ``pq_m``.

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).random((3000, 16), dtype="float32")
        >>> index = voisin.IndexHNSWPQ(16, 8, 16)        # 8 bytes a vector, M = 16
        >>> index.train(xb); index.add(xb)
        >>> index.hnsw.efSearch = 64
        >>> D, I = index.search(xb[:2], 5)
        >>> D.shape, index.pq.code_size
        ((2, 5), 8)
    """

    _search_kernel = staticmethod(KS.search_pq)
    _range_kernel = staticmethod(KS.range_pq)

    def __init__(self, d: int, pq_m: int = 8, M: int = 32, pq_nbits: int = 8,
                 metric: int = METRIC_L2, *, seed: int = 12345):
        from ..codecs.pq import ProductQuantizer
        if check_int(pq_nbits, "pq_nbits") != 8:
            raise NotImplementedError(f"pq_nbits: IndexHNSWPQ walks 8-bit codes, got {pq_nbits}")
        self.pq = ProductQuantizer(d, check_int(pq_m, "pq_m", lo=1), 8)
        self._sdc = np.zeros((self.pq.M, 256, 256), dtype=np.float32)
        super().__init__(d, M, metric, seed=seed)
        self.is_trained = False

    def set_quantizer(self, pq) -> None:
        """Install a trained ProductQuantizer (file readers); the index must be empty."""
        if self.ntotal:
            raise RuntimeError("set_quantizer: the index already holds vectors")
        if (pq.d, pq.nbits) != (self.d, 8):
            raise ValueError(f"pq: expected an 8-bit ProductQuantizer of d={self.d}, "
                             f"got d={pq.d}, nbits={pq.nbits}")
        self.pq = pq
        self.is_trained = bool(pq.is_trained)
        if pq.is_trained:
            self._sdc = symmetric_costs(pq, self.metric_type)

    def _train(self, x: np.ndarray) -> None:
        self.pq.train(x)
        self._sdc = symmetric_costs(self.pq, self.metric_type)
        self.is_trained = True

    def _empty_storage(self) -> np.ndarray:
        return _aligned.zeros((0, self.pq.code_size), np.uint8)

    def _encode(self, x: np.ndarray) -> np.ndarray:
        return self.pq.compute_codes(x)

    def _decode(self, rows: np.ndarray) -> np.ndarray:
        return self.pq.decode(rows)

    def _space(self, X: np.ndarray) -> tuple:
        return PQSpace(X, self.pq.centroids, self._sdc)
