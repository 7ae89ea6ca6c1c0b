"""IndexRefine / IndexRefineFlat: re-rank a fast index's candidates with a precise one.

IndexRefineFlat offers its float rows to the base index first (``_search_refined``,
``_add_refined``, :class:`voisin.index.Refinement`): an HNSW base, directly or
behind a PCA, re-scores inside its walk and prunes its graph with exact
distances. Other bases return their candidates and the re-rank kernel
(:mod:`voisin.kernels.refine`) scores them here.
"""

from __future__ import annotations

import copy

import numba
import numpy as np

from ..index import Index, Refinement
from ..kernels import refine as RK
from ..metric import METRIC_INNER_PRODUCT, METRIC_L2, worst_distance
from ..selector import IDSelector, SearchParameters
from .flat import IndexFlat
from .idmap import _Gated, _ReadWriteGate

# Below this many queries the re-rank runs on the calling thread: a parallel
# region's start costs more than a few queries' candidates.
_PARALLEL_MIN_QUERIES = 8


class SearchParametersRefine(SearchParameters):
    """``k_factor`` for this call and ``base_params`` for the base index search."""

    k_factor: float | None = None
    base_index_params: SearchParameters | None = None


def _check_k_factor(k_factor) -> float:
    if isinstance(k_factor, bool) or not isinstance(k_factor, (int, float, np.integer, np.floating)) \
            or not np.isfinite(k_factor) or k_factor < 1:
        raise ValueError(f"k_factor: expected a number >= 1, got {k_factor!r}")
    return float(k_factor)


def _candidates(k: int, k_factor: float) -> int:
    """FAISS's base search size: k * k_factor (at least k)."""
    return max(k, int(k * k_factor))


class IndexRefine(_Gated, Index):
    """Search ``base_index`` for ``k * k_factor`` candidates, then keep the ``k``
    best by the distances of ``refine_index`` (FAISS's ``IndexRefine``).

    Both indexes receive every added vector and must number them the same way
    (sequential ids); the refine index must be able to ``reconstruct``.

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).random((3000, 16), dtype="float32")
        >>> base = voisin.IndexScalarQuantizer(16, voisin.ScalarQuantizer.QT_4bit)
        >>> index = voisin.IndexRefine(base, voisin.IndexFlatL2(16))
        >>> index.train(xb); index.add(xb); index.k_factor = 4
        >>> D, I = index.search(xb[:2], 1)
        >>> I.ravel().tolist()
        [0, 1]
    """

    params_type = SearchParametersRefine

    def __init__(self, base_index: Index, refine_index: Index):
        for name, ix in (("base_index", base_index), ("refine_index", refine_index)):
            if not isinstance(ix, Index):
                raise TypeError(f"{name}: expected a voisin Index, got {ix!r}")
        if base_index.d != refine_index.d:
            raise ValueError(f"refine_index: dimension {refine_index.d} differs from the base index's "
                             f"{base_index.d}")
        if base_index.metric_type != refine_index.metric_type:
            raise ValueError("refine_index: metric differs from the base index's")
        if base_index.ntotal != refine_index.ntotal:
            raise ValueError("base_index and refine_index must hold the same vectors (both empty to start)")
        super().__init__(base_index.d, base_index.metric_type)
        self.base_index = base_index
        self.refine_index = refine_index
        self.k_factor = 1.0
        self.own_fields = False
        self.own_refine_index = False
        self.ntotal = base_index.ntotal
        # A search reads the base index and then the refine index; a write
        # changes one and then the other. Between the two a search would
        # re-rank an id the refine index does not hold yet (or, after a
        # removal, holds for another vector): searches read, writers write.
        self._gate = _ReadWriteGate()

    @property
    def is_trained(self) -> bool:  # type: ignore[override]
        return not hasattr(self, "base_index") or (self.base_index.is_trained and self.refine_index.is_trained)

    @is_trained.setter
    def is_trained(self, value: bool) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_index!r}, {self.refine_index!r}, k_factor={self.k_factor})"

    def _train(self, x: np.ndarray) -> None:
        self.base_index.train(x)
        self.refine_index.train(x)

    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        if ids is not None:
            raise NotImplementedError(f"{type(self).__name__} numbers vectors by position: wrap it in "
                                      "IndexIDMap to add with ids")
        with self._gate.writing():
            self.base_index.add(x)
            self.refine_index.add(x)
            self.ntotal = self.base_index.ntotal

    def _split_params(self, params: SearchParameters | None) -> tuple[float, SearchParameters | None]:
        k_factor = self.k_factor
        base = None
        if isinstance(params, SearchParametersRefine):
            if params.k_factor is not None:
                k_factor = params.k_factor
            base = params.base_index_params
            if params.sel is not None:
                base = copy.copy(base) if base is not None else SearchParameters()
                base.sel = params.sel
        elif params is not None:
            base = params
        return _check_k_factor(k_factor), base

    def _base_candidates(self, x: np.ndarray, kb: int,
                         base_params: SearchParameters | None) -> np.ndarray:
        """The base's ``kb`` best ids per query. ``x`` and the params passed this
        index's checks already: the base's own front door would check both again
        (~10 us a query on the single-query loop), so it is skipped where the base
        keeps the standard one."""
        base = self.base_index
        if type(base).search is Index.search and base.ntotal > 0:
            return base._search(x, kb, base_params, None, None)[1]
        return base.search(x, kb, base_params)[1]

    def _search(self, x, k, params, D, I):
        k_factor, base_params = self._split_params(params)
        kb = _candidates(k, k_factor)
        with self._gate.reading():
            cand = self._base_candidates(x, kb, base_params)
            dist = self._refine_distances(x, cand)
        order = np.argsort(dist, axis=1, kind="stable")[:, :k]
        Ir = np.take_along_axis(cand, order, axis=1)
        Dr = np.take_along_axis(dist, order, axis=1)
        if kb < k:  # fewer candidates than k: pad
            pad = k - kb
            Ir = np.pad(Ir, ((0, 0), (0, pad)), constant_values=-1)
            Dr = np.pad(Dr, ((0, 0), (0, pad)), constant_values=np.inf)
        missing = Ir < 0
        out_D = -Dr if self.metric_type != METRIC_L2 else Dr
        out_D = out_D.astype(np.float32)
        out_D[missing] = worst_distance(self.metric_type)
        if D is None:
            D = out_D
        else:
            D[:] = out_D
        if I is None:
            I = np.ascontiguousarray(Ir, dtype=np.int64)
        else:
            I[:] = Ir
        return D, I

    def _refine_distances(self, x: np.ndarray, cand: np.ndarray) -> np.ndarray:
        """Cost (smaller is better) of each candidate under the refine index; inf for -1."""
        n, kb = cand.shape
        valid = cand >= 0
        cost = np.full((n, kb), np.inf, dtype=np.float64)
        if not valid.any():
            return cost
        vecs = self._candidate_vectors(cand[valid])
        rows = np.repeat(np.arange(n), valid.sum(axis=1))
        if self.metric_type == METRIC_L2:
            diff = vecs - x[rows]
            cost[valid] = np.einsum("ij,ij->i", diff, diff)
        else:
            cost[valid] = -np.einsum("ij,ij->i", vecs, x[rows])
        return cost

    def _candidate_vectors(self, ids: np.ndarray) -> np.ndarray:
        return self.refine_index.reconstruct_batch(ids)

    def _range_search(self, x, radius, params):
        """Range search of the base index, distances recomputed by the refine index and re-filtered."""
        _, base_params = self._split_params(params)
        with self._gate.reading():
            lims, _, I = self.base_index.range_search(x, radius, base_params)
            vecs = self.refine_index.reconstruct_batch(I) if I.size else np.zeros((0, self.d), np.float32)
        lims = lims.astype(np.int64)
        rows = np.repeat(np.arange(x.shape[0]), np.diff(lims))
        if self.metric_type == METRIC_L2:
            diff = vecs - x[rows]
            dist = np.einsum("ij,ij->i", diff, diff).astype(np.float32)
            keep = dist < radius
        else:
            dist = np.einsum("ij,ij->i", vecs, x[rows]).astype(np.float32)
            keep = dist > radius
        counts = np.bincount(rows[keep], minlength=x.shape[0])
        new_lims = np.zeros(x.shape[0] + 1, dtype=np.int64)
        np.cumsum(counts, out=new_lims[1:])
        return new_lims, dist[keep], I[keep]

    def _remove(self, sel: IDSelector) -> int:
        with self._gate.writing():
            removed = self.base_index._remove(sel)
            self.refine_index._remove(sel)
            self.ntotal = self.base_index.ntotal
        return removed

    def _reconstruct_keys(self, keys: np.ndarray) -> np.ndarray:
        return self.refine_index._reconstruct_keys(keys)

    def _reset(self) -> None:
        with self._gate.writing():
            self.base_index._reset()
            self.refine_index._reset()
            self.ntotal = 0


class IndexRefineFlat(IndexRefine):
    """:class:`IndexRefine` whose refine index is an exact :class:`IndexFlat` (``...,RFlat``).

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).random((3000, 16), dtype="float32")
        >>> index = voisin.IndexRefineFlat(voisin.index_factory(16, "IVF16,SQ4"), 8)
        >>> index.train(xb); index.add(xb)
        >>> D, I = index.search(xb[:2], 1)
    """

    def __init__(self, base_index: Index, k_factor: float = 1.0):
        if not isinstance(base_index, Index):
            raise TypeError(f"base_index: expected a voisin Index, got {base_index!r}")
        refine = IndexFlat(base_index.d, base_index.metric_type)
        if base_index.ntotal:
            refine.add(base_index.reconstruct_n(0, base_index.ntotal))
        super().__init__(base_index, refine)
        self.k_factor = float(k_factor)
        self.own_refine_index = True

    @classmethod
    def from_parts(cls, base_index: Index, refine_index: IndexFlat,
                   k_factor: float = 1.0) -> "IndexRefineFlat":
        """An IndexRefineFlat over a base and the flat index that already holds its
        vectors (file readers), without rebuilding the flat copy from the base."""
        if not isinstance(refine_index, IndexFlat):
            raise TypeError(f"refine_index: expected an IndexFlat, got {refine_index!r}")
        index = cls(IndexFlat(base_index.d, base_index.metric_type), k_factor)
        IndexRefine.__init__(index, base_index, refine_index)
        index.k_factor = float(k_factor)
        index.own_refine_index = True
        return index

    def _refinement(self, kb: int) -> Refinement:
        xb, _, nb = self.refine_index._snap
        return Refinement(xb[:nb], kb)

    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        if ids is not None:
            return super()._add(x, ids)
        with self._gate.writing():
            n0 = self.refine_index.ntotal
            self.refine_index.add(x)
            try:
                ref = self._refinement(0)._replace(xe=x)
                if not self.base_index._add_refined(x, ref):
                    self.base_index.add(x)
            except BaseException:
                self.refine_index.remove_ids(np.arange(n0, self.refine_index.ntotal))
                raise
            self.ntotal = self.base_index.ntotal

    def _search_fast(self, x, k):
        if self.metric_type not in (METRIC_L2, METRIC_INNER_PRODUCT) or self.ntotal == 0:
            return None
        kb = _candidates(k, _check_k_factor(self.k_factor))
        base = self.base_index
        if type(base)._search_refined is not Index._search_refined:
            return self._gate.optimistic(lambda: base._search_refined(
                x, k, None, self._refinement(kb), None, None, True))
        if type(base).search is not Index.search or x.shape[0] >= _PARALLEL_MIN_QUERIES:
            return None
        # a base that cannot fuse the re-rank (IVF, PQ, fast-scan): its search and the
        # re-rank kernel, without passing the checks of both front doors again
        # (~15 us a query on the single-query loop)
        with self._gate.reading():
            if base.ntotal == 0:
                return None
            cand = base._search(x, kb, None, None, None)[1]
            xb, _, nb = self.refine_index._snap
            D = np.empty((x.shape[0], k), dtype=np.float32)
            I = np.empty((x.shape[0], k), dtype=np.int64)
            RK.rerank_flat_serial(x, xb, nb, cand, self.metric_type,
                                  np.float32(worst_distance(self.metric_type)), D, I)
        return D, I

    def _search(self, x, k, params, D, I):
        if self.metric_type not in (METRIC_L2, METRIC_INNER_PRODUCT):
            return super()._search(x, k, params, D, I)
        k_factor, base_params = self._split_params(params)
        kb = _candidates(k, k_factor)
        base_params = self.base_index._check_params(base_params)
        with self._gate.reading():
            out = self.base_index._search_refined(x, k, base_params, self._refinement(kb), D, I)
            if out is not None:
                return out
            # the candidates are scored and ranked by one kernel reading the flat
            # storage in place (the numpy gather + einsum + argsort path cost
            # ~140 us per query for 100 candidates on glove-50)
            nq = x.shape[0]
            D = np.empty((nq, k), dtype=np.float32) if D is None else D
            I = np.empty((nq, k), dtype=np.int64) if I is None else I
            worst = np.float32(worst_distance(self.metric_type))
            cand = self._base_candidates(x, kb, base_params)
            xb, _, nb = self.refine_index._snap
            if nq >= _PARALLEL_MIN_QUERIES and numba.get_num_threads() > 1:
                RK.rerank_flat_parallel(x, xb, nb, cand, self.metric_type, worst, D, I)
            else:
                RK.rerank_flat_serial(x, xb, nb, cand, self.metric_type, worst, D, I)
        return D, I

    def _candidate_vectors(self, ids: np.ndarray) -> np.ndarray:
        # the flat storage is addressed directly: no per-call validation or copy of ids
        return self.refine_index._xb[ids]
