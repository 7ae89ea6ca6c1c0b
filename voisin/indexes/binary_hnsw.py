"""IndexBinaryHNSW: an HNSW graph over binary codes, walked by Hamming distance.

The graph and its knobs are :class:`voisin.HNSW` (``index.hnsw``: ``efSearch``,
``efConstruction``, FAISS's ``levels`` / ``offsets`` / ``neighbors`` views), the
codes an :class:`IndexBinaryFlat` (``index.storage``), as in FAISS. Kernels:
:mod:`voisin.kernels.binary_hnsw`.

Differences from FAISS: a search with a filter that keeps few codes scans them
exactly instead of walking (FAISS walks and loses recall); ``range_search``
scans the storage exactly (FAISS has none for this index). Like FAISS, codes
cannot be removed from the graph.
"""

from __future__ import annotations

import numpy as np

from .. import _blas
from .._validate import check_int
from ..hamming import as_words, knn_codes
from ..selector import IDSelector, SearchParameters
from .binary import IndexBinary, empty_result
from .binary_flat import IndexBinaryFlat
from .hnsw import SearchParametersHNSW, _check_walk_params
from .hnsw_graph import HNSW, Scratch, random_levels

# A filter keeping at most this share of the codes is answered by an exact scan of
# them: a walk restricted to so few nodes visits most of the graph anyway.
EXACT_FILTER_SHARE = 0.05
_QUERIES_PER_TASK = 16


class IndexBinaryHNSW(IndexBinary):
    """HNSW over binary codes (``M`` neighbours per node, 2M on level 0).

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).integers(0, 256, (2000, 8), dtype=np.uint8)
        >>> index = voisin.IndexBinaryHNSW(64, 16)
        >>> index.hnsw.efConstruction = 40
        >>> index.add(xb)
        >>> index.hnsw.efSearch = 32
        >>> D, I = index.search(xb[:3], 1)
        >>> D.ravel().tolist()
        [0, 0, 0]
    """

    params_type = SearchParametersHNSW

    def __init__(self, d: int, M: int = 32):
        super().__init__(d)
        self.hnsw = HNSW(M)
        self.storage = IndexBinaryFlat(self.d)
        self.own_fields = True
        self.seed = 12345
        self._rng = np.random.default_rng(self.seed)
        self._scratch = Scratch()

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_scratch", None)
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self._scratch = Scratch()

    @property  # type: ignore[override]
    def ntotal(self) -> int:
        storage = self.__dict__.get("storage")
        return 0 if storage is None else storage.ntotal

    @ntotal.setter
    def ntotal(self, n: int) -> None:
        pass  # the storage counts

    def graph_arrays(self) -> tuple:
        """(nb0, upper, upper_off, levels, state) of the graph (voisin's split layout)."""
        return self.hnsw._g

    def load_state(self, codes: np.ndarray, graph: tuple) -> None:
        """Install loaded codes and a graph (as read by voisin.io.formats.hnsw.read_graph)."""
        self.storage.set_codes(codes)
        self.hnsw._g = graph

    # --- building --------------------------------------------------------------
    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        if ids is not None:
            raise NotImplementedError(
                "IndexBinaryHNSW numbers codes by position and cannot take ids: wrap it, "
                "e.g. IndexBinaryIDMap(IndexBinaryHNSW(d, M)).add_with_ids(x, ids)")
        from ..kernels.binary_hnsw import insert_nodes
        h = self.hnsw
        nb0, upper, upper_off, levels, state = h._g
        n0 = self.ntotal
        n1 = n0 + x.shape[0]
        new_lv = random_levels(h.assign_probas, self._rng.random(x.shape[0]))
        # copies, published whole when the add is done: a search running meanwhile
        # walks the graph as it was
        g_levels = np.concatenate([levels[:n0], new_lv]).astype(np.int32)
        g_nb0 = np.full((n1, 2 * h.M), -1, dtype=np.int32)
        g_nb0[:n0] = nb0[:n0]
        nup = new_lv.astype(np.int64) - 1
        rows0 = upper.shape[0]
        g_upper = np.full((rows0 + int(nup.sum()), h.M), -1, dtype=np.int32)
        g_upper[:rows0] = upper
        g_off = np.concatenate([upper_off[:n0], rows0 + np.cumsum(nup) - nup]).astype(np.int64)
        g_state = state.copy()
        self.storage._add(x, None)
        X = as_words(self.storage.codes_snapshot())
        visited, epoch, cd, ci, rd, ri = self._scratch.get(n1, max(h.efConstruction, 1))
        order = (n0 + np.argsort(-new_lv, kind="stable")).astype(np.int64)
        insert_nodes(X, order, g_nb0, g_upper, g_off, g_levels, g_state,
                     max(h.efConstruction, 1), visited[:n1], epoch, cd, ci, rd, ri)
        h._g = (g_nb0, g_upper, g_off, g_levels, g_state)

    # --- searching -------------------------------------------------------------
    def _ef(self, params: SearchParameters | None, k: int) -> int:
        ef = self.hnsw.efSearch
        if isinstance(params, SearchParametersHNSW):
            _check_walk_params(params)
            if params.efSearch is not None:
                ef = params.efSearch
        return max(check_int(ef, "efSearch", lo=1), k)

    def _search(self, x, k, params):
        from ..kernels.binary_hnsw import search_knn
        ef = self._ef(params, k)
        nb0, upper, upper_off, levels, state = self.hnsw._g
        X = self.storage.codes_snapshot()
        n = min(X.shape[0], levels.shape[0])
        mask = np.zeros(1, dtype=np.bool_)
        use_mask = params is not None and params.sel is not None
        if use_mask:
            mask = np.ascontiguousarray(params.sel.mask_sequential(n))
            allowed = np.flatnonzero(mask)
            if allowed.size == 0:
                return empty_result(x.shape[0], k)
            if allowed.size <= EXACT_FILTER_SHARE * n:
                D, I = knn_codes(x, np.ascontiguousarray(X[allowed]), k)
                return D, np.where(I >= 0, allowed[np.maximum(I, 0)], -1)
        nq = x.shape[0]
        D = np.empty((nq, k), dtype=np.int32)
        I = np.empty((nq, k), dtype=np.int64)
        Q, W = as_words(x), as_words(X)
        entry, max_level = int(state[0]), int(state[1])

        def work(p: int, q0: int) -> None:
            visited, epoch, cd, ci, rd, ri = self._scratch.get(n, ef)
            search_knn(Q, W, nb0, upper, upper_off, entry, max_level, ef, q0,
                       min(nq, q0 + _QUERIES_PER_TASK), mask, use_mask, visited, epoch,
                       cd, ci, rd, ri, D, I)

        import numba
        npipe = min(numba.get_num_threads(), -(-nq // _QUERIES_PER_TASK))
        _blas.run_pipelines(range(0, nq, _QUERIES_PER_TASK), work, npipe)
        return D, I

    def _range_search(self, x, radius, params):
        return self.storage._range_search(x, radius, params)

    # --- maintenance -----------------------------------------------------------
    def _remove(self, sel: IDSelector) -> int:
        raise NotImplementedError("IndexBinaryHNSW cannot remove codes from its graph (as in "
                                  "FAISS): rebuild the index without them")

    def _reconstruct_keys(self, keys: np.ndarray) -> np.ndarray:
        return self.storage._reconstruct_keys(keys)

    def _reset(self) -> None:
        self.storage._reset()
        self.hnsw._reset_graph()

    def __repr__(self) -> str:
        return f"IndexBinaryHNSW(d={self.d}, M={self.hnsw.M}, ntotal={self.ntotal})"
