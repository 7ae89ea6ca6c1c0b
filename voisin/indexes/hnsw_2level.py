"""IndexHNSW2Level: the HNSW graph over Index2Layer codes (FAISS's IndexHNSW2Level).

FAISS's ``IndexHNSW2Level(quantizer, nlist, m_pq, M)`` stores every vector as an
:class:`Index2Layer` code (its coarse list number, then the PQ code of its residual)
and walks the graph through Index2Layer's distance computer: the float query against
each code decoded as centroid + PQ residual, decoded against decoded between two stored
vectors. voisin keeps the codes as the graph's storage rows (they are what the file
holds, and what ``remove_ids`` compacts) and its graph kernels walk them in place,
decoding on the fly as FAISS does (:mod:`voisin.kernels.hnsw_2level`). The walk is
IndexHNSWFlat's, so a graph read from a faiss file gives faiss's results.

FAISS's "mixed" search, for a storage that is an IndexIVFPQ (``flip_to_ivf``), is
not implemented: voisin's storage is always the Index2Layer.
"""

from __future__ import annotations

import numpy as np

from .._validate import check_int
from ..index import Index
from ..kernels import hnsw_2level as K2
from ..metric import METRIC_L2
from .hnsw import IndexHNSW
from .index2layer import Index2Layer


class IndexHNSW2Level(IndexHNSW):
    """HNSW over Index2Layer codes (FAISS's ``IndexHNSW2Level``), L2 only.

    ``quantizer`` (an IndexFlatL2 of d, or a MultiIndexQuantizer) with ``nlist``
    centroids, a PQ of ``m_pq`` 8-bit sub-quantizers on the residuals, HNSW ``M``.
    ``index.storage`` is the :class:`Index2Layer`. Needs ``train`` before ``add``.
    Factory: ``"HNSW{M}_{nlist}+PQ{m}"`` (flat coarse quantizer) or
    ``"HNSW{M}_2x{nbits}+PQ{m}"`` (a 2 x nbits multi-index, ``2**(2 nbits)`` lists).

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).random((2000, 16), dtype="float32")
        >>> index = voisin.index_factory(16, "HNSW16_32+PQ4")
        >>> index.train(xb); index.add(xb)
        >>> index.hnsw.efSearch = 32
        >>> D, I = index.search(xb[:3], 5)
        >>> index.storage.code_size, I.shape
        (5, (3, 5))
    """

    _search_kernel = staticmethod(K2.search_2level)
    _range_kernel = staticmethod(K2.range_2level)

    def __init__(self, quantizer: Index, nlist: int, m_pq: int, M: int = 32, *,
                 seed: int = 12345):
        if not isinstance(quantizer, Index):
            raise TypeError(f"quantizer: expected a voisin Index (e.g. IndexFlatL2(d)), "
                            f"got {quantizer!r}")
        if quantizer.metric_type != METRIC_L2:
            raise ValueError("quantizer: IndexHNSW2Level is L2 only (FAISS's Index2Layer "
                             "distances are L2)")
        self._l2 = Index2Layer(quantizer, check_int(nlist, "nlist", lo=1),
                               check_int(m_pq, "m_pq", lo=1), 8)
        self._tables = None
        super().__init__(quantizer.d, M, METRIC_L2, seed=seed)
        self.is_trained = False

    # --- the storage ------------------------------------------------------------------
    @property
    def storage(self) -> Index2Layer:
        """The Index2Layer holding the codes, in id order (FAISS's ``storage``)."""
        st = self._l2
        codes = np.ascontiguousarray(self.storage_rows())
        st._snap = (codes, codes.shape[0])
        return st

    def set_storage(self, storage: Index2Layer) -> None:
        """Install a trained codec read from a file (the index must be empty)."""
        if self.ntotal:
            raise RuntimeError("set_storage: the index already holds vectors")
        if not isinstance(storage, Index2Layer) or storage.d != self.d:
            raise ValueError(f"storage: expected an Index2Layer of d={self.d}, got {storage!r}")
        if storage.pq.nbits != 8:
            raise ValueError(f"storage: FAISS's IndexHNSW2Level has 8-bit PQ codes, got "
                             f"{storage.pq.nbits}-bit")
        self._l2 = storage
        self._tables = None
        self._publish(self._empty_storage(), self.hnsw._g, None)
        self.is_trained = bool(storage.is_trained)

    def _train(self, x: np.ndarray) -> None:
        self._tables = None
        self._l2.train(x)
        self.is_trained = True

    def _empty_storage(self) -> np.ndarray:
        return np.empty((0, self._l2.code_size), dtype=np.uint8)

    def _encode(self, x: np.ndarray) -> np.ndarray:
        return self._l2._encode(x)

    def _decode(self, rows: np.ndarray) -> np.ndarray:
        return self._l2._decode(np.ascontiguousarray(rows))

    def _walk_tables(self) -> tuple:
        """(coarse (Mq, K, dq), cent (M, 256, dsub), qbits) of the trained codec, the
        fields of kernels.hnsw_2level.TwoLevelSpace besides the codes."""
        if self._tables is None:
            st = self._l2
            q = st.q1.quantizer
            d = self.d
            cent = np.ascontiguousarray(st.pq.centroids, dtype=np.float32)
            if not st.is_trained:
                return (np.zeros((1, 1, d), np.float32), cent, np.int64(62))
            from .imi import MultiIndexQuantizer
            if isinstance(q, MultiIndexQuantizer):
                coarse = np.ascontiguousarray(q.pq.centroids, dtype=np.float32)
                qbits = q.pq.nbits
            else:
                coarse = np.ascontiguousarray(q.reconstruct_n(0, st.q1.nlist),
                                              dtype=np.float32).reshape(1, st.q1.nlist, d)
                qbits = 62  # one sub-quantizer: the whole list number is its index
            self._tables = (coarse, cent, np.int64(qbits))
        return self._tables

    def _space(self, X: np.ndarray) -> tuple:
        return K2.TwoLevelSpace(X, *self._walk_tables())

    def _walk_fields(self, X: np.ndarray) -> tuple:
        return (X,) + self._walk_tables()

    def _reset(self) -> None:
        super()._reset()
        self._l2.reset()
