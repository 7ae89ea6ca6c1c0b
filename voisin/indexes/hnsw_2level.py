"""IndexHNSW2Level: the HNSW graph over Index2Layer codes (FAISS's IndexHNSW2Level).

FAISS's ``IndexHNSW2Level(quantizer, nlist, m_pq, M)`` stores every vector as an
:class:`Index2Layer` code (its coarse list number, then the PQ code of its residual)
and walks the graph through Index2Layer's distance computer: the float query against
each code decoded as centroid + PQ residual, decoded against decoded between two stored
vectors. voisin keeps the codes as the graph's storage rows (they are what the file
holds, and what ``remove_ids`` compacts) and walks a float copy of the decoded rows,
built once per add (4d bytes a vector besides the codes: the memory FAISS saves by
decoding on the fly). Same walk as IndexHNSWFlat over those rows, so a graph read
from a faiss file gives faiss's results.

FAISS's "mixed" search, for a storage that is an IndexIVFPQ (``flip_to_ivf``), is
not implemented: voisin's storage is always the Index2Layer.
"""

from __future__ import annotations

import numpy as np

from .._validate import check_int
from ..index import Index
from ..kernels import hnsw_search as KS
from ..kernels.hnsw_space import FlatSpace
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

    _search_kernel = staticmethod(KS.search_flat)
    _range_kernel = staticmethod(KS.range_flat)

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
        self._decoded = (None, np.empty((0, quantizer.d), dtype=np.float32))
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
        self._publish(self._empty_storage(), self.hnsw._g, None)
        self.is_trained = bool(storage.is_trained)

    def _train(self, x: np.ndarray) -> None:
        self._l2.train(x)
        self.is_trained = True

    def _empty_storage(self) -> np.ndarray:
        return np.empty((0, self._l2.code_size), dtype=np.uint8)

    def _encode(self, x: np.ndarray) -> np.ndarray:
        return self._l2._encode(x)

    def _decode(self, rows: np.ndarray) -> np.ndarray:
        return self._l2._decode(np.ascontiguousarray(rows))

    def _rows(self, X: np.ndarray) -> np.ndarray:
        """The decoded float rows of storage ``X`` (cached for the current array)."""
        key, rows = self._decoded
        if key is not X:
            rows = self._decode(X) if X.shape[0] else np.empty((0, self.d), np.float32)
            rows = np.ascontiguousarray(rows, dtype=np.float32)
            self._decoded = (X, rows)
        return rows

    def _space(self, X: np.ndarray) -> tuple:
        return FlatSpace(self._rows(X))

    def _walk_fields(self, X: np.ndarray) -> tuple:
        return (self._rows(X),)

    def _publish(self, X: np.ndarray, g: tuple, dead: np.ndarray | None) -> None:
        super()._publish(X, g, dead)
        self._rows(X)  # decode before a search can see the new rows

    def _reset(self) -> None:
        super()._reset()
        self._l2.reset()

    @property
    def nbytes(self) -> int:
        """Bytes of the codes, the decoded rows the walk reads, the graph and id tables."""
        return super().nbytes + int(self._decoded[1].nbytes)

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_decoded"] = (None, np.empty((0, self.d), dtype=np.float32))
        return state
