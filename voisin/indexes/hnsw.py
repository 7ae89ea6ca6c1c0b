"""HNSW graph indexes (FAISS semantics): IndexHNSWFlat and IndexHNSWSQ.

As in FAISS, a variant is a constructor that picks how the vectors are stored:
float32 rows (:class:`IndexHNSWFlat`, :mod:`.hnsw_flat`) or 8-bit scalar-quantizer
codes (:class:`IndexHNSWSQ`, :mod:`.hnsw_sq`); this module holds what they share (the
published state, add, search, the pushdown), the graph (:mod:`.hnsw_graph`), its construction
(:mod:`.hnsw_build`) and its repair after deletes (:mod:`.hnsw_maintenance`) only
see a *space*, the distance of the stored vectors (:mod:`voisin.kernels.hnsw_space`).

Walking codes and re-ranking exactly is FAISS's composition
``IndexRefineFlat(IndexHNSWSQ)`` (factory ``"HNSW32_SQ8,RFlat"``; with a PCA in
front, ``"PCA128,HNSW32_SQ8,RFlat"``). The refine wrapper pushes its float rows
down (:meth:`IndexHNSW._search_refined`, :meth:`IndexHNSW._add_refined`): the
search kernel re-scores the candidates inside the walk, and the build prunes
neighbour lists with exact distances. The files are plain FAISS files.

Why it is past 500 lines: the published state, add, search, range search and
the exact fallbacks of a filter all read one snapshot and must agree on it; the
graph, its construction, its repair and the storage variants are already apart.
"""

from __future__ import annotations

import copy
from typing import Callable, NamedTuple

import numba
import numpy as np

from .. import _aligned, exact, extra_metrics, filtering
from .._blas import run_pipelines
from .._validate import check_int
from ..index import Index, Refinement
from ..kernels import hnsw as K
from ..kernels.hnsw_space import FlatSpace
from ..metric import METRIC_L2, is_similarity, worst_distance
from ..range_results import join_query_blocks
from ..selector import IDSelector, SearchParameters
from . import hnsw_maintenance as maintenance
from .hnsw_build import Spaces, insert
from .hnsw_graph import HNSW, Scratch, random_levels

# Below this many queries one thread serves the batch (thread start-up dominates).
PARALLEL_MIN_QUERIES = 64
# After an add of at least this share of the graph, level-0 nodes that no list
# names (the neighbour heuristic can prune a node out of every list, which makes
# it unreachable) get an in-link. The check reads every list, so it runs only
# when that costs little next to the insertion itself.
ORPHAN_CHECK_FRACTION = 1 / 64
# remove_ids compacts the storage once deleted nodes exceed this share of all nodes
COMPACT_THRESHOLD = 0.25

_F32 = np.dtype(np.float32)
_NO_MASK = np.zeros(1, dtype=np.bool_)
_NO_LABELS = np.zeros(1, dtype=np.int64)
_NO_FILTER = (_NO_MASK, False, _NO_LABELS, False)
_NO_ROWS = np.zeros((1, 1), dtype=np.float32)
_NO_MAP = (np.zeros((0, 1), dtype=np.float32), np.zeros(0, dtype=np.float32))
_NO_EXACT = (_NO_ROWS, False, 0) + _NO_MAP


class _Plan(NamedTuple):
    """How one search runs: ``how`` is "empty" (nothing allowed or stored),
    "exact" (scan the nodes ``mask`` allows) or "walk" (the graph at efSearch
    ``ef`` with the kernel filter tuple ``filt``: mask, use_mask, labels, use_labels)."""

    how: str
    ef: int
    mask: np.ndarray
    filt: tuple


class SearchParametersHNSW(SearchParameters):
    """Per-call HNSW knobs: ``efSearch`` and an id selector ``sel``.

    ``check_relative_distance`` and ``bounded_queue`` exist for FAISS code; voisin
    walks one way (both True) and refuses False rather than ignore it.

    Example:
        >>> import voisin
        >>> p = voisin.SearchParametersHNSW(efSearch=64, sel=voisin.IDSelectorRange(0, 100))
    """

    efSearch = None
    check_relative_distance = None
    bounded_queue = None


def _check_walk_params(params: SearchParameters) -> None:
    for name in ("check_relative_distance", "bounded_queue"):
        v = getattr(params, name, None)
        if v is not None and not v:
            raise ValueError(f"params.{name}: voisin's HNSW walk implements only True "
                             "(FAISS's default), got False")


class IndexHNSW(Index):
    """Common base of the HNSW indexes; subclasses choose the vector storage."""

    params_type = SearchParametersHNSW

    def __init__(self, d: int, M: int = 32, metric: int = METRIC_L2, *, seed: int = 12345):
        super().__init__(d, metric)
        self.hnsw = HNSW(M)
        self.seed = check_int(seed, "seed")
        self._rng = np.random.default_rng(self.seed)
        self._scratch = Scratch()
        self.compact_threshold = COMPACT_THRESHOLD
        self._publish(self._empty_storage(), self.hnsw._g, None)

    @property
    def compact_threshold(self) -> float:
        """``remove_ids`` compacts once deleted nodes exceed this share of all nodes
        (default 0.25; 0 = after every removal, 1 or more = only on :meth:`compact`)."""
        return self._compact_threshold

    @compact_threshold.setter
    def compact_threshold(self, v: float) -> None:
        self._compact_threshold = maintenance.check_threshold(v)

    # --- the storage: what a subclass supplies ---------------------------------------------
    def _empty_storage(self) -> np.ndarray:
        raise NotImplementedError

    def _encode(self, x: np.ndarray) -> np.ndarray:
        """Storage rows of float vectors ``x``."""
        raise NotImplementedError

    def _decode(self, rows: np.ndarray) -> np.ndarray:
        """Float vectors (n, d) of storage rows."""
        raise NotImplementedError

    def _space(self, X: np.ndarray) -> tuple:
        """The space (namedtuple) of storage ``X`` for the graph kernels."""
        raise NotImplementedError

    #: the search and range-search entry points of the storage's space (kernels.hnsw_search)
    _search_kernel = None
    _range_kernel = None

    def _build_walk(self, X: np.ndarray, n0: int) -> tuple:
        """The space an insertion of rows n0.. of ``X`` walks (default: the storage's)."""
        return self._space(X)

    # --- the published state -------------------------------------------------------
    # A search reads ``self._snap`` once: (storage, graph, labels, slots, live).
    # Graph nodes ("slots") are numbered in insertion order and keep their number
    # until compaction; deleted ones stay in the arrays as tombstones. Without
    # tombstones labels/slots/live are None and node number = id. With them,
    # ``labels`` maps node -> id (-1 = deleted), ``slots`` id -> node and ``live``
    # is the mask of live nodes. Writers build new arrays and publish a new tuple,
    # so a search sees the old state or the new one, never a mix.
    def _publish(self, X: np.ndarray, g: tuple, dead: np.ndarray | None) -> None:
        n = g[3].size
        labels = slots = live = None
        ntotal = n
        if dead is not None and dead.any():
            live = ~dead
            slots = np.flatnonzero(live).astype(np.int64)
            labels = np.full(n, -1, dtype=np.int64)
            labels[slots] = np.arange(slots.size, dtype=np.int64)
            ntotal = slots.size
        else:
            dead = None
        self._snap = (X, g, labels, slots, live)
        # mirrors for the FAISS-view properties
        self._X = X
        self._dead = dead
        self.hnsw._g = g
        self.ntotal = ntotal

    def load_state(self, storage: np.ndarray, graph: tuple) -> None:
        """Install stored rows (as :meth:`storage_rows` returns them) and a graph
        ``(nb0, upper, upper_off, levels, [entry, max_level])`` without tombstones:
        the file readers' door. Rows read into fresh memory are moved to cache-line
        boundaries (:mod:`voisin._aligned`); mapped files are used where they lie."""
        X = _aligned.realigned(self._storage_from_rows(storage))
        g = (_aligned.realigned(graph[0]), _aligned.realigned(graph[1])) + tuple(graph[2:])
        self._publish(X, g, None)

    def _storage_from_rows(self, rows: np.ndarray) -> np.ndarray:
        return rows

    def storage_rows(self) -> np.ndarray:
        """The stored rows (float vectors, or codes of ``code_size`` bytes) in id order,
        without tombstones: what FAISS's storage index holds."""
        X, _, _, slots, _ = self._snap
        return X if slots is None else X[slots]

    def graph_arrays(self) -> tuple:
        """``(nb0, upper, upper_off, levels, [entry, max_level])`` without tombstones."""
        return self.compacted_copy().hnsw._g

    @property
    def ntombstones(self) -> int:
        """Deleted nodes still held in the arrays (0 after :meth:`compact`)."""
        live = self._snap[4]
        return 0 if live is None else int(live.size - np.count_nonzero(live))

    @property
    def nbytes(self) -> int:
        """Bytes held by the storage, the graph arrays and the id tables."""
        X, g, labels, slots, live = self._snap
        arrays = (X, g[0], g[1], g[2], g[3], labels, slots, live)
        return int(sum(a.nbytes for a in arrays if a is not None))

    @property
    def bytes_per_vector(self) -> float:
        """Memory of storage + graph (tombstones included) divided by ntotal."""
        return self.nbytes / self.ntotal if self.ntotal else 0.0

    # --- pickling: the per-thread scratch is rebuilt ------------------------------------
    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_scratch", None)
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self._scratch = Scratch()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(d={self.d}, M={self.hnsw.M}, ntotal={self.ntotal}, "
                f"efConstruction={self.hnsw.efConstruction}, efSearch={self.hnsw.efSearch})")

    # --- add ---------------------------------------------------------------------
    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        if ids is not None:
            raise NotImplementedError(
                f"{type(self).__name__} numbers vectors by position and cannot take ids: "
                f"wrap it, e.g. IndexIDMap({type(self).__name__}(d, M)).add_with_ids(x, ids)")
        self._add_vectors(x, None, None)

    def _add_refined(self, x: np.ndarray, ref: Refinement) -> bool:
        """Add ``x`` while a refine wrapper holds the exact rows of every vector
        (``ref.rows``, id order, the new ones last; ``ref.xe`` the new ones' exact
        rows): the walk runs in this index's space and each level's results are
        re-scored and pruned with the exact rows, the graph an exact build makes."""
        if self._snap[2] is not None:  # exact rows are in id order: nodes must be too
            maintenance.compact(self)
        self._add_vectors(x, ref.xe, ref.rows)
        return True

    def _add_vectors(self, x: np.ndarray, xe: np.ndarray | None, rows: np.ndarray | None) -> None:
        self._publish(*self._added_state(x, xe, rows))

    def _prepare_add(self, x: np.ndarray) -> Callable[[], None]:
        """Build the graph with ``x`` added without publishing it, and return the
        call that publishes it. Searches meanwhile go on reading the current graph
        (insertion writes copies), so a caller that must show the new vectors
        together with other state (an id map's ids, a collection's payloads) holds
        its own gate only for the publish, not for the insertion. The caller keeps
        other writers out from here until the publish."""
        state = self._added_state(x, None, None)
        return lambda: self._publish(*state)

    def _added_state(self, x: np.ndarray, xe: np.ndarray | None,
                     rows: np.ndarray | None) -> tuple[np.ndarray, tuple, np.ndarray | None]:
        h = self.hnsw
        efc = check_int(h.efConstruction, "efConstruction", lo=1)
        M = h.M
        X_old, g_old, _, _, _ = self._snap
        nb0_old, up_old, uoff_old, lv_old, state_old = g_old
        n0, n = lv_old.size, x.shape[0]
        n1 = n0 + n
        new_lv = random_levels(h.assign_probas, self._rng.random(n))
        levels = np.concatenate([lv_old, new_lv])
        nup_new = new_lv.astype(np.int64) - 1
        rows0 = up_old.shape[0]
        upper_off = np.concatenate([uoff_old, rows0 + np.cumsum(nup_new) - nup_new])
        nb0 = _aligned.full((n1, 2 * M), -1, np.int32)
        nb0[:n0] = nb0_old
        upper = _aligned.full((rows0 + int(nup_new.sum()), M), -1, np.int32)
        upper[:rows0] = up_old
        X = _aligned.empty((n1,) + X_old.shape[1:], X_old.dtype)
        X[:n0] = X_old[:n0]
        X[n0:] = self._encode(x)
        state = state_old.copy()
        walk = self._build_walk(X, n0)
        if rows is not None:
            spaces = Spaces(walk, FlatSpace(rows), True)
        else:
            nodes = self._space(X)
            same = type(walk) is type(nodes) and all(a is b for a, b in zip(walk, nodes))
            spaces = Spaces(walk, nodes, not same)
            xe = x
        # deleted nodes are unreachable after repair (no live list names them,
        # their own lists are empty), so insertion never links to them
        insert(x, xe, n0, K.Graph(nb0, upper, upper_off, levels), state, spaces, efc, M,
               self.metric_type)
        dead = None
        if self._dead is not None:
            dead = np.concatenate([self._dead, np.zeros(n, dtype=bool)])
        if n >= ORPHAN_CHECK_FRACTION * n1:
            maintenance.relink_orphans(nb0, dead, n1, int(state[0]))
        return X, (nb0, upper, upper_off, levels, state), dead

    # --- search ---------------------------------------------------------------------
    def _search_fast(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        # one well-formed query batch and no options (the online-service and
        # ann-benchmarks loop): straight to the kernel; None sends the caller
        # to the validated path (NaN in the queries, a small or empty index)
        ef = self.hnsw.efSearch
        if type(ef) is not int or ef < 1 or x.shape[0] >= PARALLEL_MIN_QUERIES:
            return None
        X, g, labels, _, live = self._snap
        if ef < k:
            ef = k
        if self.ntotal <= ef or g[4][0] < 0:
            return None
        D = np.empty((x.shape[0], k), dtype=_F32)
        I = np.empty((x.shape[0], k), dtype=np.int64)
        filt = _NO_FILTER if labels is None else (live, True, labels, True)
        if self._search_kernel(x, x, k, ef, self._walk_fields(X), g[:4], int(g[4][0]),
                               int(g[4][1]), self.metric_type, self._scratch.get(g[3].size, ef),
                               filt, _NO_EXACT, D, I):
            return D, I
        return None

    def _search(self, x, k, params, D, I):
        return self._search_snap(self._snap, x, k, params, D, I)

    def _search_refined(self, xe: np.ndarray, k: int, params: SearchParameters | None,
                        ref: Refinement, D: np.ndarray, I: np.ndarray,
                        fast: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
        """IndexRefineFlat's search pushed down: walk for ``ref.kb`` candidates and
        re-score them against ``ref.rows`` in the kernel (see the module docstring)."""
        if fast and params is None and ref.A is None and ref.xw is None:
            out = self._search_refined_fast(xe, k, ref)
            if out is not None:
                return out
        return self._search_snap(self._snap, xe, k, params, D, I, ref, fast)

    def _search_refined_fast(self, x: np.ndarray, k: int, ref: Refinement):
        # the single-query service loop of "HNSW32_SQ8,RFlat": straight to the
        # fused kernel, as _search_fast (the planned path costs ~8 us a query)
        ef = self.hnsw.efSearch
        if type(ef) is not int or ef < 1 or x.shape[0] >= PARALLEL_MIN_QUERIES:
            return None
        X, g, labels, _, live = self._snap
        ef = max(ef, k, ref.kb)
        if self.ntotal <= ef or g[4][0] < 0:
            return None
        D = np.empty((x.shape[0], k), dtype=_F32)
        I = np.empty((x.shape[0], k), dtype=np.int64)
        filt = _NO_FILTER if labels is None else (live, True, labels, True)
        exact_t = (ref.rows, True, ref.kb) + _NO_MAP
        if self._search_kernel(x, x, k, ef, self._walk_fields(X), g[:4], int(g[4][0]),
                               int(g[4][1]), self.metric_type, self._scratch.get(g[3].size, ef),
                               filt, exact_t, D, I):
            return D, I
        return None

    def _walk_fields(self, X: np.ndarray) -> tuple:
        return tuple(self._space(X))

    def _plan(self, snap: tuple, params: SearchParameters | None, ef_min: int) -> _Plan:
        """efSearch, the node mask and the way (see :class:`_Plan`) of one call."""
        X, g, labels, slots, live = snap
        n = g[3].size
        nlive = n if slots is None else slots.size
        ef = self.hnsw.efSearch
        sel = None
        if params is not None:
            _check_walk_params(params)
            sel = params.sel
            if getattr(params, "efSearch", None) is not None:
                ef = params.efSearch
        ef = max(check_int(ef, "efSearch", lo=1), ef_min)
        tomb = labels is not None
        mask, use_mask = (live, True) if tomb else (_NO_MASK, False)
        how = "walk"
        if nlive == 0 or g[4][0] < 0:
            how = "empty"
        elif sel is not None:
            ext = np.ascontiguousarray(sel.mask_sequential(nlive), dtype=np.bool_)
            allowed = int(np.count_nonzero(ext))
            if allowed == 0:
                how = "empty"
            elif allowed < nlive:
                if tomb:  # the selector speaks in ids, the kernels in node numbers
                    mask = np.zeros(n, dtype=np.bool_)
                    mask[slots] = ext
                else:
                    mask = ext
                use_mask = True
                how, ef = filtering.hnsw_plan(allowed, nlive, ef, self.hnsw.M)
                how = "walk" if how == "traverse" else how
        if how == "walk" and nlive <= ef:
            # the walk would score every node anyway; the scan also reaches nodes
            # the graph cannot (a node pruned out of every list), so small
            # indexes answer exactly
            how = "exact"
        if how == "exact" and not use_mask:
            mask = np.ones(n, dtype=np.bool_)
        filt = (mask, use_mask, labels if tomb else _NO_LABELS, tomb)
        return _Plan(how, ef, mask, filt)

    def _run_blocks(self, nq: int, run) -> None:
        """``run(lo, hi)`` over the queries: on this thread for a few, else one
        serial kernel per core on blocks of queries (no parallel specialisation
        to compile)."""
        nthreads = numba.get_num_threads()
        if nq < PARALLEL_MIN_QUERIES or nthreads == 1:
            run(0, nq)
            return
        block = max(PARALLEL_MIN_QUERIES // 4, -(-nq // (8 * nthreads)))
        run_pipelines(range(0, nq, block), lambda p, lo: run(lo, min(nq, lo + block)), nthreads)

    def _search_snap(self, snap, x, k, params, D, I, ref: Refinement | None = None,
                     fast: bool = False):
        """Search one published state. ``x`` are the queries in this index's space,
        or with ``ref`` the exact queries of the refine wrapper. With ``fast`` the
        queries were not validated: returns None when the kernel finds NaN/inf."""
        X, g, labels, slots, live = snap
        nq, n = x.shape[0], g[3].size
        plan = self._plan(snap, params, k if ref is None else max(k, ref.kb))
        D = np.empty((nq, k), dtype=np.float32) if D is None else D
        I = np.empty((nq, k), dtype=np.int64) if I is None else I
        if plan.how == "empty":
            D.fill(worst_distance(self.metric_type))
            I.fill(-1)
            return D, I
        if plan.how == "exact":
            return self._search_exact_subset(x, k, plan.mask, X, labels, slots, ref, D, I)
        xw, exact_t = x, _NO_EXACT
        if ref is not None:
            A, b = _NO_MAP if ref.A is None else (ref.A, ref.b)
            xw = x if ref.xw is None else ref.xw
            exact_t = (ref.rows, True, ref.kb, A, b)
        graph_t, entry, max_level = g[:4], int(g[4][0]), int(g[4][1])
        walk_t, kernel, metric, ef = (self._walk_fields(X), self._search_kernel, self.metric_type,
                                      plan.ef)
        ok = [True]

        def run(lo: int, hi: int) -> None:
            # per-thread scratch (caller and pool threads each keep their own)
            if not kernel(xw[lo:hi], x[lo:hi], k, ef, walk_t, graph_t, entry, max_level, metric,
                          self._scratch.get(n, ef), plan.filt, exact_t, D[lo:hi], I[lo:hi]):
                ok[0] = False

        self._run_blocks(nq, run)
        if not ok[0]:
            if fast:
                return None
            raise ValueError("x: contains NaN or inf")
        return D, I

    def _range_search(self, x, radius, params):
        """Every stored vector within ``radius``: the walk widens (ef doubles) while
        its whole result list lies inside the ball, so the ball is covered rather
        than cut at efSearch (kernels.hnsw_search._range_one). Approximate as the
        walk is; exact on small indexes and selective filters (an exact scan)."""
        snap = self._snap
        X, g, labels, _, _ = snap
        nq, n = x.shape[0], g[3].size
        plan = self._plan(snap, params, 1)
        if plan.how == "empty":
            return np.zeros(nq + 1, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64)
        if plan.how == "exact":
            return self._range_exact_subset(x, radius, plan.mask, X, labels)
        bound = np.float32(-radius if is_similarity(self.metric_type) else radius)
        graph_t, entry, max_level = g[:4], int(g[4][0]), int(g[4][1])
        walk_t, metric, ef = self._walk_fields(X), self.metric_type, plan.ef
        parts: dict[int, tuple] = {}

        def run(lo: int, hi: int) -> None:
            parts[lo] = self._range_kernel(x[lo:hi], bound, ef, walk_t, graph_t, entry, max_level,
                                           metric, self._scratch.get(n, ef), plan.filt)

        self._run_blocks(nq, run)
        return join_query_blocks([parts[lo] for lo in sorted(parts)])

    def _range_exact_subset(self, x, radius, mask, X, labels):
        rows = np.flatnonzero(mask)
        ids = rows if labels is None else labels[rows]
        xb = self._decode(X[rows])
        if extra_metrics.is_extra(self.metric_type):
            lims, D, I = extra_metrics.range_search(x, xb, rows.size, self.metric_type,
                                                    self.metric_arg, radius)
        else:
            lims, D, I = exact.range_search(x, xb, rows.size, self.metric_type, radius)
        return lims, D, ids[I] if I.size else I

    def filter_plan(self, allowed: int, ef: int, n: int | None = None) -> tuple[str, int]:
        """How a search filtered down to ``allowed`` of ``n`` ids (default: ntotal)
        runs at efSearch ``ef``: ``("exact", ef)`` (scan of the allowed vectors)
        or ``("traverse", ef')`` (filtered graph traversal at efSearch ef');
        the rule is :func:`voisin.filtering.hnsw_plan`."""
        n = self.ntotal if n is None else n
        allowed = check_int(allowed, "allowed", lo=0)
        ef = check_int(ef, "ef", lo=1)
        return filtering.hnsw_plan(allowed, n, ef, self.hnsw.M)

    def _search_exact_subset(self, x, k, mask, X, labels, slots, ref, D, I):
        """Exact scan of the nodes ``mask`` allows: float rows are scanned in place
        under the mask (the exact engine gathers them only for a selective mask),
        codes are decoded first."""
        if ref is not None:
            # the refine wrapper's exact rows, in id order
            ids_mask = mask if labels is None else np.ascontiguousarray(mask[slots])
            Ds, Is = self._exact(x, ref.rows, k, ids_mask)
            D[:], I[:] = Ds, Is
            return D, I
        if X.dtype == np.float32:
            Ds, Is = self._exact(x, X, k, mask)
            ids = labels
        else:
            rows = np.flatnonzero(mask)
            Ds, Is = self._exact(x, self._decode(X[rows]), k, None)
            ids = rows if labels is None else labels[rows]
        D[:] = Ds
        I[:] = Is if ids is None else np.where(Is >= 0, ids[np.maximum(Is, 0)], -1)
        return D, I

    def _exact(self, x: np.ndarray, xb: np.ndarray, k: int, mask: np.ndarray | None):
        if extra_metrics.is_extra(self.metric_type):
            return extra_metrics.search(x, xb, xb.shape[0], self.metric_type, self.metric_arg, k,
                                        mask=mask)
        return exact.search(x, xb, xb.shape[0], self.metric_type, k, mask=mask)

    # --- other hooks --------------------------------------------------------------------
    def _reconstruct_keys(self, keys: np.ndarray) -> np.ndarray:
        X, _, _, slots, _ = self._snap
        n = X.shape[0] if slots is None else slots.size
        bad = (keys < 0) | (keys >= n)
        if bad.any():
            raise ValueError(f"key: id {int(keys[bad][0])} is out of range [0, {n})")
        return self._decode(X[keys if slots is None else slots[keys]])

    def _remove(self, sel: IDSelector) -> int:
        """Delete the selected ids; later ids shift down (FAISS's sequential semantics).
        The graph is repaired at once (:func:`.hnsw_maintenance.remove`)."""
        return maintenance.remove(self, sel)

    def compact(self) -> int:
        """Drop the tombstones of deleted nodes: renumber live nodes contiguously,
        remap the links and reallocate every array at its new size, so the memory
        is returned. Search results do not change. Returns the nodes dropped."""
        self._check_writable()
        with self._write_lock:
            return maintenance.compact(self)

    def compacted_copy(self) -> "IndexHNSW":
        """This index, or a compacted copy of it when it holds tombstones (what
        the file writers serialise: FAISS's format has no tombstones)."""
        if self._snap[2] is None:
            return self
        X, g = maintenance.compacted(self._snap)
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.hnsw = copy.copy(self.hnsw)
        clone._publish(X, g, None)
        return clone

    def _reset(self) -> None:
        self.hnsw._reset_graph()
        self._rng = np.random.default_rng(self.seed)
        self._publish(self._empty_storage(), self.hnsw._g, None)


# the storage variants live in their own modules; they are part of this one's public names
from .hnsw_flat import IndexHNSWFlat  # noqa: E402,F401
from .hnsw_sq import IndexHNSWSQ, padded_width, sq8_padded, sq8_params  # noqa: E402,F401
