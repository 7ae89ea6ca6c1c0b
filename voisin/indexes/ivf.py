"""Inverted-file indexes: a coarse quantizer, inverted lists and a codec.

FAISS's insight, kept visible here: three separate pieces compose.

* the **coarse quantizer** (``index.quantizer``) is itself an Index, usually an
  :class:`IndexFlat` holding the ``nlist`` centroids; a vector belongs to the
  list of its nearest centroid and a query visits its ``nprobe`` nearest lists;
* the **inverted lists** (``index.invlists``, :class:`InvertedLists`) store, per
  list, ``code_size`` bytes per vector and its int64 id, contiguous per list;
* the **codec** (the subclass) decides what the bytes are: raw float32 for
  :class:`IndexIVFFlat`, scalar-quantized for ``IndexIVFScalarQuantizer``,
  product-quantized for ``IndexIVFPQ``.

Extension points for a new codec (subclass :class:`IndexIVF`):

``code_size``
    bytes per vector, passed to ``IndexIVF.__init__``.
``_train_codec(x, list_nos)``
    learn the codec from training vectors already assigned to lists (compute
    residuals with ``self._residuals(x, list_nos)`` when ``self.by_residual``).
    Set ``self._codec_trained`` or override ``_codec_is_trained()``.
``_encode(x, list_nos) -> (n, code_size) uint8``
    codes of vectors that go to the given lists.
``_decode(codes, list_nos) -> (n, d) float32``
    vectors back from codes (for ``reconstruct``).
``_search_preassigned(x, k, probes, probe_dists, ctx, D, I) -> (D, I)``
    the list scan, given each query's probed lists. ``ctx`` (:class:`ScanContext`)
    carries the slab snapshot, the filter mask over slab rows and ``max_codes``.
    Kernels read ``ctx.codes[offsets[l]:offsets[l]+sizes[l]]`` for list l.
``_range_preassigned(x, radius, probes, probe_dists, ctx) -> (lims, D, I)``
    the same for range search.
``_search_single(x, k, nprobe, ctx, D, I) -> (D, I) | None``
    optional fused fast path for small batches on one thread (return None to
    fall back to coarse assignment + ``_search_preassigned``).
``_search_batch(x, k, nprobe, ctx, D, I) -> (D, I) | None``
    optional fused path for large batches (same fallback).

The base class handles training of the quantizer (k-means, FAISS's
``train_q1`` semantics), ``add``/``add_with_ids``, filters, ``remove_ids``,
``reconstruct`` through a direct map, ``nprobe``/``max_codes`` and
:class:`SearchParametersIVF`. Beside it: the lists and the direct map in
``invlists.py``, the filtered search paths in ``ivf_filtered.py``, the raw-vector
codec with its batch pipelines in ``ivf_flat.py``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numba
import numpy as np

from .._validate import as_matrix, check_int
from ..clustering import ClusteringParameters, Kmeans, assign_to_centroids
from ..index import Index
from ..metric import METRIC_INNER_PRODUCT, METRIC_L2
from ..range_results import join_query_blocks
from ..selector import IDSelector, SearchParameters
from .flat import IndexFlat
from .invlists import _NO_MASK, DirectMap, InvertedLists, ScanContext
from .ivf_filtered import ALLOWED_BLOCK_QUERIES, IVFFilteredSearch

# Fewer queries than this take the fused serial path (coarse scan + list scan in
# one numba call): its per-call overhead is a few microseconds, which is what a
# one-query-per-call service sees.
SINGLE_PATH_MAX_QUERIES = 4


def dimension_of(quantizer: Index | None, d: int | None, who: str) -> int:
    """``d``, or the quantizer's when it is not given (FAISS's IVF constructors take either)."""
    if d is not None:
        return d
    if quantizer is None:
        raise TypeError(f"{who}: give a quantizer or the dimension d")
    return quantizer.d


class SearchParametersIVF(SearchParameters):
    """Per-call IVF knobs: ``nprobe`` lists to visit, ``max_codes`` cap on
    scanned codes per query (0 or None = no cap), and ``sel`` (id filter).

    Example:
        >>> import voisin
        >>> params = voisin.SearchParametersIVF(nprobe=16, sel=voisin.IDSelectorRange(0, 1000))
    """

    nprobe: int | None = None
    max_codes: int | None = None


class IndexIVF(IVFFilteredSearch, Index):
    """Base class of inverted-file indexes (see the module docstring).

    Attributes: ``quantizer``, ``nlist``, ``nprobe`` (default 1),
    ``max_codes`` (0 = no cap), ``invlists``, ``direct_map``, ``by_residual``,
    ``code_size``, ``cp`` (k-means parameters of the quantizer training).

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).random((5000, 16), dtype="float32")
        >>> index = voisin.IndexIVFFlat(voisin.IndexFlatL2(16), 16, 32)
        >>> index.train(xb); index.add(xb); index.nprobe = 4
        >>> D, I = index.search(xb[:3], 5)
    """

    params_type = SearchParametersIVF

    def __init__(self, quantizer: Index | None, d: int, nlist: int, code_size: int,
                 metric: int = METRIC_L2):
        super().__init__(d, metric)
        self.nlist = check_int(nlist, "nlist", lo=1)
        if quantizer is None:
            quantizer = IndexFlat(self.d, self.metric_type)
        if not isinstance(quantizer, Index):
            raise TypeError(f"quantizer: expected a voisin Index (e.g. IndexFlatL2(d)), got {quantizer!r}")
        if quantizer.d != self.d:
            raise ValueError(f"quantizer: dimension {quantizer.d} differs from the index dimension {self.d}")
        self.quantizer = quantizer
        self.own_fields = False
        self.nprobe = 1
        # FAISS's Level1Quantizer.quantizer_trains_alone: 0 = k-means, then the
        # centroids are added to the quantizer; 1 = the quantizer trains on the
        # vectors itself (a MultiIndexQuantizer, a ResidualCoarseQuantizer: their
        # entries are what train() makes)
        self.quantizer_trains_alone = 1 if getattr(quantizer, "_trains_alone", False) else 0
        self.max_codes = 0
        self.code_size = check_int(code_size, "code_size", lo=0)
        self.by_residual = False
        self.invlists = InvertedLists(self.nlist, self.code_size)
        self.direct_map = DirectMap()
        # FAISS trains IVF quantizers with 10 k-means iterations, spherical
        # k-means under inner product
        self.cp = ClusteringParameters(niter=10, spherical=self.metric_type == METRIC_INNER_PRODUCT)
        self._codec_trained = True
        self.is_trained = self._quantizer_ready() and self._codec_is_trained()

    # --- the pieces -------------------------------------------------------
    def _quantizer_ready(self) -> bool:
        return bool(self.quantizer.is_trained) and self.quantizer.ntotal == self.nlist

    def _codec_is_trained(self) -> bool:
        return self._codec_trained

    def _flat_centroids(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(centroids, squared norms) when the quantizer is a plain flat index
        with our metric: then coarse assignment runs inside our kernels."""
        q = self.quantizer
        if type(q) in _FLAT_TYPES and q.metric_type == self.metric_type:
            n = q.ntotal
            return q._xb[:n], q._norms[:n]
        return None

    def coarse_assign(self, x: np.ndarray, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``nprobe`` nearest lists of each row: (distances, list numbers)."""
        nprobe = min(nprobe, self.nlist)
        flat = self._flat_centroids()
        if flat is not None:
            # the quantizer's own hook: no re-validation, cached norms
            return self.quantizer._search(x, nprobe, None, None, None)
        return self.quantizer.search(x, nprobe)

    def _assign1(self, x: np.ndarray) -> np.ndarray:
        """Nearest list of each row (k-means's assignment kernel for flat quantizers)."""
        flat = self._flat_centroids()
        if flat is not None:
            return assign_to_centroids(x, flat[0], self.metric_type, cnorm=flat[1])[0]
        return self.coarse_assign(x, 1)[1][:, 0]

    def _residuals(self, x: np.ndarray, list_nos: np.ndarray) -> np.ndarray:
        if x.shape[0] == 0:
            return x.copy()
        flat = self._flat_centroids()
        cent = flat[0][list_nos] if flat is not None else self.quantizer.reconstruct_batch(list_nos)
        return x - cent

    # --- training -----------------------------------------------------------
    def train_q1(self, x: np.ndarray) -> None:
        """Train the coarse quantizer: k-means with ``nlist`` centroids."""
        if self._quantizer_ready():
            if self.verbose:
                print("IVF quantizer does not need training.")
            return
        mode = check_int(getattr(self, "quantizer_trains_alone", 0), "quantizer_trains_alone", lo=0, hi=2)
        if getattr(self.quantizer, "_trains_alone", False):
            mode = 1  # its entries are what its own train() makes: k-means cannot fill it
        if mode == 2:
            raise NotImplementedError("quantizer_trains_alone=2 (k-means on a flat L2 index, then "
                                      "added to the quantizer) is not implemented; use 0 or 1")
        if mode == 1:
            self.quantizer.train(x)
            if self.quantizer.ntotal != self.nlist:
                raise ValueError(f"quantizer: trained alone it holds {self.quantizer.ntotal} "
                                 f"entries, the index has nlist={self.nlist}")
            return
        if x.shape[0] < self.nlist:
            raise ValueError(f"x: training an IVF with nlist={self.nlist} needs at least {self.nlist} "
                             f"vectors, got {x.shape[0]}")
        km = Kmeans(self.d, self.nlist, **{**self.cp.as_kwargs(), "verbose": self.verbose or self.cp.verbose,
                                           "update_index": False})
        km.train(x)
        self.quantizer.reset()
        self.quantizer.train(km.centroids)
        self.quantizer.add(km.centroids)

    def _train(self, x: np.ndarray) -> None:
        self.train_q1(x)
        if not self._codec_is_trained() or self._codec_needs_retrain():
            list_nos = self._assign1(x) if self.by_residual else None
            self._train_codec(x, list_nos)
        self.is_trained = True

    def _codec_needs_retrain(self) -> bool:
        return False

    def _train_codec(self, x: np.ndarray, list_nos: np.ndarray | None) -> None:
        """Learn the codec; IVF-Flat has nothing to learn."""
        self._codec_trained = True

    # --- codec hooks --------------------------------------------------------
    def _encode(self, x: np.ndarray, list_nos: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _decode(self, codes: np.ndarray, list_nos: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def encode_vectors(self, x: Any, list_nos: Any) -> np.ndarray:
        """Public codec access: codes of ``x`` for the given lists."""
        x = as_matrix(x, self.d, "x")
        return self._encode(x, np.ascontiguousarray(list_nos, dtype=np.int64))

    def decode_vectors(self, codes: np.ndarray, list_nos: Any) -> np.ndarray:
        return self._decode(np.ascontiguousarray(codes, dtype=np.uint8),
                            np.ascontiguousarray(list_nos, dtype=np.int64))

    # --- adding ---------------------------------------------------------------
    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        n = x.shape[0]
        if ids is None:
            ids = np.arange(self.ntotal, self.ntotal + n, dtype=np.int64)
        self.add_preassigned(x, ids, self._assign1(x))

    def add_preassigned(self, x: np.ndarray, ids: np.ndarray, list_nos: np.ndarray) -> None:
        """Add vectors whose lists are already known (FAISS's ``add_core``)."""
        codes = self._encode(x, list_nos)
        self.direct_map.invalidate()
        self.invlists.add_entries(list_nos, codes, ids)
        self.ntotal = self.invlists.ntotal

    def make_direct_map(self, new_maintain: bool = True) -> None:
        """Kept for FAISS compatibility: voisin can always reconstruct."""
        self.direct_map.type = DirectMap.Array if new_maintain else DirectMap.NoMap

    def set_direct_map_type(self, type: int) -> None:
        self.direct_map.type = check_int(type, "type", lo=0, hi=2)

    # --- search ---------------------------------------------------------------
    def _context(self, params: SearchParameters | None) -> tuple[ScanContext, int]:
        codes, ids, offsets, sizes = self.invlists.snapshot()
        nprobe = self.nprobe
        max_codes = self.max_codes or 0
        mask, use_mask, plan = _NO_MASK, False, None
        if params is not None:
            if getattr(params, "nprobe", None) is not None:
                nprobe = params.nprobe
            if getattr(params, "max_codes", None) is not None:
                max_codes = params.max_codes
        nprobe = check_int(nprobe, "nprobe", lo=1)
        max_codes = check_int(max_codes, "max_codes", lo=0)
        if params is not None and params.sel is not None:
            plan = self._filter_plan(params.sel, (codes, ids, offsets, sizes))
            mask, use_mask = plan.mask, True
        return (ScanContext(codes, ids, offsets, sizes, mask, use_mask, max_codes, plan),
                min(nprobe, self.nlist))

    def _search(self, x, k, params, D, I):
        ctx, nprobe = self._context(params)
        nq = x.shape[0]
        if D is None:
            D = np.empty((nq, k), dtype=np.float32)
        if I is None:
            I = np.empty((nq, k), dtype=np.int64)
        if ctx.plan is not None:
            return self._search_filtered(x, k, nprobe, ctx, D, I)
        return self._search_unfiltered(x, k, nprobe, ctx, D, I)

    def _search_unfiltered(self, x, k, nprobe, ctx, D, I):
        nq = x.shape[0]
        if nq <= SINGLE_PATH_MAX_QUERIES or numba.get_num_threads() == 1:
            out = self._search_single(x, k, nprobe, ctx, D, I)
        else:
            out = self._search_batch(x, k, nprobe, ctx, D, I)
        if out is not None:
            return out
        Dq, Iq = self.coarse_assign(x, nprobe)
        return self._search_preassigned(x, k, Iq, Dq, ctx, D, I)

    def search_preassigned(self, x: Any, k: int, assign: Any, centroid_dis: Any = None,
                           params: SearchParameters | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Search with the probed lists given (``assign``: (n, nprobe) list numbers)."""
        x, assign, centroid_dis = self._preassigned_args(x, assign, centroid_dis)
        from .._validate import check_k
        k = check_k(k)
        params = self._check_params(params)
        ctx, _ = self._context(params)
        D = np.empty((x.shape[0], k), dtype=np.float32)
        I = np.empty((x.shape[0], k), dtype=np.int64)
        return self._search_preassigned(x, k, assign, centroid_dis, ctx, D, I)

    def range_search_preassigned(self, x: Any, radius: float, assign: Any, centroid_dis: Any = None,
                                 params: SearchParameters | None = None
                                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Range search in the given lists (``assign``: (n, nprobe)); returns ``(lims, D, I)``."""
        from .._validate import check_float
        x, assign, centroid_dis = self._preassigned_args(x, assign, centroid_dis)
        radius = check_float(radius, "radius")
        ctx, _ = self._context(self._check_params(params))
        lims, D, I = self._range_preassigned(x, radius, assign, centroid_dis, ctx)
        return lims.astype(np.uint64, copy=False), D, I

    def _preassigned_args(self, x: Any, assign: Any, centroid_dis: Any
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = as_matrix(x, self.d, "x")
        assign = np.ascontiguousarray(assign, dtype=np.int64)
        if assign.ndim != 2 or assign.shape[0] != x.shape[0]:
            raise ValueError(f"assign: expected shape ({x.shape[0]}, nprobe), got {assign.shape}")
        if assign.size and assign.max() >= self.nlist:
            raise ValueError(f"assign: list numbers must be < nlist={self.nlist}")
        if centroid_dis is None:
            centroid_dis = np.zeros(assign.shape, dtype=np.float32)
        return x, assign, np.ascontiguousarray(centroid_dis, dtype=np.float32)

    def _search_single(self, x, k, nprobe, ctx, D, I):
        return None

    def _search_batch(self, x, k, nprobe, ctx, D, I):
        """Optional fused batch path (coarse products by BLAS + one parallel
        kernel); None falls back to coarse_assign + _search_preassigned."""
        return None

    def _search_preassigned(self, x, k, probes, probe_dists, ctx, D, I):
        raise NotImplementedError

    def _range_search(self, x, radius, params):
        ctx, nprobe = self._context(params)
        plan = ctx.plan
        if plan is None:
            Dq, Iq = self.coarse_assign(x, nprobe)
            return self._range_preassigned(x, radius, Iq, Dq, ctx)
        nq = x.shape[0]
        if plan.allowed == 0 or nq == 0:
            return (np.zeros(nq + 1, dtype=np.int64), np.empty(0, dtype=np.float32),
                    np.empty(0, dtype=np.int64))
        strat = self._filter_strategy(plan, nprobe, 1, ctx.max_codes)
        if strat.exact:
            cctx, lists = self._allowed_slab(ctx)
            parts = []
            for q0 in range(0, nq, ALLOWED_BLOCK_QUERIES):
                xb = x[q0:q0 + ALLOWED_BLOCK_QUERIES]
                probes, pd = self._probes_for(xb, lists)
                parts.append(self._range_preassigned(xb, radius, probes, pd, cctx))
            return join_query_blocks(parts)
        probes, pd = self._widened_probes(x, plan, strat)
        return self._range_preassigned(x, radius, probes, pd, replace(ctx, max_codes=strat.max_codes))

    def _range_preassigned(self, x, radius, probes, probe_dists, ctx):
        raise NotImplementedError(f"{type(self).__name__} does not implement range_search")

    # --- removal, reconstruction --------------------------------------------
    def _remove(self, sel: IDSelector) -> int:
        rows, _ = self.invlists.used_rows()
        if rows.size == 0:
            return 0
        gone = sel.contains(self.invlists.ids[rows])
        removed = int(np.count_nonzero(gone))
        if removed:
            self.invlists.remove_rows(rows[gone])
            self.direct_map.invalidate()
            self.ntotal = self.invlists.ntotal
        return removed

    def _reconstruct_keys(self, keys: np.ndarray) -> np.ndarray:
        # the id lookup is built lazily from the slab and a writer invalidates
        # it: run with writers excluded, or a lookup built from the old slab
        # could index the new one (or be stored after the invalidation)
        with self._write_lock:
            rows, lists = self.direct_map.rows_of(self.invlists, keys)
            if (rows < 0).any():
                raise ValueError(f"key: id {int(keys[rows < 0][0])} is not in the index")
            return self._decode(self.invlists.codes[rows], lists)

    def reconstruct_n(self, i0: int = 0, ni: int | None = None) -> np.ndarray:
        """Vectors with ids i0 .. i0+ni-1 (ids, as FAISS's IVF reconstruct_n)."""
        return super().reconstruct_n(i0, ni)

    def _reset(self) -> None:
        self.invlists.reset()
        self.direct_map.invalidate()
        self.ntotal = 0

    def get_list_size(self, list_no: int) -> int:
        return self.invlists.list_size(check_int(list_no, "list_no", lo=0, hi=self.nlist - 1))

    def imbalance_factor(self) -> float:
        return self.invlists.imbalance_factor()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(d={self.d}, nlist={self.nlist}, nprobe={self.nprobe}, "
                f"ntotal={self.ntotal}, metric={'L2' if self.metric_type == METRIC_L2 else 'IP'})")


def _flat_types() -> tuple[type, ...]:
    from .flat import IndexFlatIP, IndexFlatL2
    return (IndexFlat, IndexFlatL2, IndexFlatIP)


_FLAT_TYPES = _flat_types()


def __getattr__(name: str) -> Any:
    # IndexIVFFlat moved to ivf_flat.py (which imports this module); old imports keep working
    if name == "IndexIVFFlat":
        from .ivf_flat import IndexIVFFlat
        return IndexIVFFlat
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
