"""MultiIndexQuantizer: the inverted multi-index's coarse quantizer (FAISS's
``MultiIndexQuantizer``, factory ``"IMI2x8,..."``)."""

from __future__ import annotations

import numpy as np

from .._validate import check_int
from ..index import Index
from ..kernels import imi as K
from ..metric import METRIC_L2


class MultiIndexQuantizer(Index):
    """The ksub**M centroids of a product quantizer as one index, searched with the
    multi-sequence algorithm: the coarse quantizer of an inverted multi-index, where
    an IVF gets 2**(M*nbits) lists (65,536 for "IMI2x8") for the cost of two
    256-centroid k-means. Its entries are implied by the sub-quantizers, so ``add``
    is refused, as in FAISS; ``train`` trains the product quantizer and makes all
    ``ntotal = 2**(M*nbits)`` of them exist. L2 only.

    Example:
        >>> import numpy as np, voisin
        >>> x = np.random.default_rng(0).random((5000, 16), dtype="float32")
        >>> q = voisin.MultiIndexQuantizer(16, 2, 6)
        >>> q.train(x); q.ntotal
        4096
        >>> D, I = q.search(x[:1], 3)
        >>> bool(np.allclose(D[0, 0], ((x[0] - q.reconstruct(int(I[0, 0]))) ** 2).sum(), rtol=1e-4))
        True
        >>> ivf = voisin.index_factory(16, "IMI2x6,Flat")   # 4096 inverted lists
    """

    #: an IVF over it lets it train on the vectors (quantizer_trains_alone = 1)
    _trains_alone = True

    def __init__(self, d: int, M: int = 2, nbits: int = 8):
        from ..codecs.pq import ProductQuantizer
        super().__init__(d, METRIC_L2)
        M = check_int(M, "M", lo=1, hi=8)
        nbits = check_int(nbits, "nbits", lo=1, hi=16)
        if M * nbits > 62:
            raise ValueError(f"M, nbits: 2**(M*nbits) labels must fit in int64, got M={M}, nbits={nbits}")
        self.pq = ProductQuantizer(d, M, nbits)
        self.is_trained = False

    def _train(self, x: np.ndarray) -> None:
        self.pq.train(x)
        self._trained()

    def _trained(self) -> None:
        self.is_trained = True
        self.ntotal = 1 << (self.pq.M * self.pq.nbits)

    def set_quantizer(self, pq) -> None:
        """Install a product quantizer (file readers)."""
        self.pq = pq
        if pq.is_trained:
            self._trained()

    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        raise RuntimeError("MultiIndexQuantizer: its entries are the products of the sub-quantizers' "
                           "centroids, made by train(); add() cannot add more (as in FAISS)")

    def _search(self, x, k, params, D, I):
        if params is not None and getattr(params, "sel", None) is not None:
            raise ValueError("params.sel: a MultiIndexQuantizer's entries are centroids, not "
                             "vectors; it takes no filter")
        D = np.empty((x.shape[0], k), dtype=np.float32) if D is None else D
        I = np.empty((x.shape[0], k), dtype=np.int64) if I is None else I
        if x.shape[0]:
            K.multi_sequence(self.pq.compute_distance_tables(x), k, self.pq.nbits, D, I)
        return D, I

    def _reconstruct_keys(self, keys: np.ndarray) -> np.ndarray:
        if ((keys < 0) | (keys >= self.ntotal)).any():
            bad = keys[(keys < 0) | (keys >= self.ntotal)][0]
            raise ValueError(f"key: {int(bad)} is out of range [0, {self.ntotal})")
        pq = self.pq
        out = np.empty((keys.size, self.d), dtype=np.float32)
        mask = (1 << pq.nbits) - 1
        for m in range(pq.M):
            out[:, m * pq.dsub:(m + 1) * pq.dsub] = pq.centroids[m, (keys >> (m * pq.nbits)) & mask]
        return out

    def _remove(self, sel) -> int:
        raise RuntimeError("MultiIndexQuantizer: its entries cannot be removed")

    def _reset(self) -> None:
        # the centroids stay: they are the index (a reset IVF re-trains it whole)
        self.ntotal = 1 << (self.pq.M * self.pq.nbits) if self.is_trained else 0
