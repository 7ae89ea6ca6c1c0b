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
:class:`SearchParametersIVF`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numba
import numpy as np

from .. import _blas, exact, filtering
from .._validate import as_matrix, check_int
from ..clustering import ClusteringParameters, Kmeans, assign_to_centroids
from ..index import Index
from ..kernels import filtered as KF
from ..kernels import ivf as K
from ..kernels.flat import row_norms_sqr
from ..metric import METRIC_INNER_PRODUCT, METRIC_L2, check_metric, worst_distance
from ..selector import IDSelector, SearchParameters
from .flat import IndexFlat

# Fewer queries than this take the fused serial path (coarse scan + list scan in
# one numba call): its per-call overhead is a few microseconds, which is what a
# one-query-per-call service sees.
SINGLE_PATH_MAX_QUERIES = 4
# Queries x centroids inner products computed per BLAS call in batch mode.
GEMM_BLOCK_BYTES = 64 << 20
# From this many queries a batch is scanned list by list (each stored vector is
# read once per batch and compared with every query probing its list).
LIST_MAJOR_MIN_QUERIES = 64
LIST_MAJOR_MAX_BYTES = 256 << 20
LIST_MAJOR_MIN_DIM = 128
# Filtered exact strategy: the allowed entries are gathered into their own
# small slab unless that copy would exceed this; above it the lists holding
# allowed entries are scanned in place under the mask.
COMPACT_MAX_BYTES = 256 << 20
# Queries per block when every query probes the same (many) lists.
ALLOWED_BLOCK_QUERIES = 1024


class SearchParametersIVF(SearchParameters):
    """Per-call IVF knobs: ``nprobe`` lists to visit, ``max_codes`` cap on
    scanned codes per query (0 or None = no cap), and ``sel`` (id filter).

    Example:
        >>> import voisin
        >>> params = voisin.SearchParametersIVF(nprobe=16, sel=voisin.IDSelectorRange(0, 1000))
    """

    nprobe: int | None = None
    max_codes: int | None = None


def _slab_field(i: int) -> property:
    def get(self):
        return self._state[i]

    def set_(self, value):
        state = list(self._state)
        state[i] = value
        self._state = tuple(state)
    return property(get, set_)


class InvertedLists:
    """``nlist`` lists of (code, id) entries stored in one slab.

    List ``l`` occupies slab rows ``offsets[l] .. offsets[l] + sizes[l]``
    (``capacity[l]`` rows reserved), so a scan reads one contiguous block of
    codes. Growing a list past its capacity rebuilds the slab with slack
    proportional to each list's size (amortised O(1) per added entry).
    Writers build new ``sizes`` arrays instead of mutating them, so a search
    holding a :meth:`snapshot` never sees half-written entries.

    Example:
        >>> import numpy as np
        >>> il = InvertedLists(4, 2)
        >>> il.add_entries(np.array([1, 1, 3]), np.zeros((3, 2), np.uint8), np.array([7, 8, 9]))
        >>> il.list_size(1), il.get_ids(1).tolist()
        (2, [7, 8])
    """

    # The slab arrays live in one tuple, replaced in a single assignment: a
    # search's snapshot() reads it in one step, so a rebuild racing the search
    # cannot pair the new codes with the old offsets (seen in
    # tests/test_concurrency.py). Each name still reads and assigns alone.
    codes, ids, offsets, sizes, capacity = (_slab_field(i) for i in range(5))

    def __init__(self, nlist: int, code_size: int):
        self.nlist = check_int(nlist, "nlist", lo=1)
        self.code_size = check_int(code_size, "code_size", lo=0)
        self._state = (np.empty((0, self.code_size), dtype=np.uint8), np.empty(0, dtype=np.int64),
                       np.zeros(self.nlist, dtype=np.int64), np.zeros(self.nlist, dtype=np.int64),
                       np.zeros(self.nlist, dtype=np.int64))

    # --- reading ----------------------------------------------------------
    def list_size(self, list_no: int) -> int:
        return int(self.sizes[list_no])

    def get_codes(self, list_no: int) -> np.ndarray:
        """Codes of list ``list_no``, (size, code_size) uint8 (a view)."""
        o = int(self.offsets[list_no])
        return self.codes[o:o + int(self.sizes[list_no])]

    def get_ids(self, list_no: int) -> np.ndarray:
        o = int(self.offsets[list_no])
        return self.ids[o:o + int(self.sizes[list_no])]

    def snapshot(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return self._state[:4]

    @property
    def ntotal(self) -> int:
        return int(self.sizes.sum())

    def imbalance_factor(self) -> float:
        """nlist * sum(size^2) / ntotal^2: 1 when lists are even (FAISS's measure)."""
        n = self.ntotal
        return float(self.nlist * np.sum(self.sizes.astype(np.float64) ** 2) / n ** 2) if n else 0.0

    def used_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """(slab row, list number) of every stored entry, list by list."""
        total = int(self.sizes.sum())
        lists = np.repeat(np.arange(self.nlist, dtype=np.int64), self.sizes)
        starts = np.cumsum(self.sizes) - self.sizes
        rows = self.offsets[lists] + (np.arange(total, dtype=np.int64) - starts[lists])
        return rows, lists

    # --- writing ----------------------------------------------------------
    def _rebuild(self, capacity: np.ndarray, keep_rows: np.ndarray | None = None) -> None:
        """New slab with the given capacities, copying the current entries
        (or only the rows in ``keep_rows``, which must be in list order)."""
        rows, lists = self.used_rows()
        if keep_rows is not None:
            rows, lists = rows[keep_rows], lists[keep_rows]
        sizes = np.bincount(lists, minlength=self.nlist).astype(np.int64)
        capacity = np.maximum(capacity, sizes)
        offsets = np.cumsum(capacity) - capacity
        total = int(capacity.sum())
        codes = np.empty((total, self.code_size), dtype=np.uint8)
        ids = np.full(total, -1, dtype=np.int64)
        starts = np.cumsum(sizes) - sizes
        dest = offsets[lists] + (np.arange(rows.size, dtype=np.int64) - starts[lists])
        codes[dest] = self.codes[rows]
        ids[dest] = self.ids[rows]
        self._state = (codes, ids, offsets, sizes, capacity)

    def add_entries(self, list_nos: np.ndarray, codes: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Append entries; returns the slab row of each. list_nos int64 (n,),
        codes uint8 (n, code_size), ids int64 (n,)."""
        list_nos = np.ascontiguousarray(list_nos, dtype=np.int64)
        if list_nos.size and (list_nos.min() < 0 or list_nos.max() >= self.nlist):
            raise ValueError(f"list_nos: list numbers must be in [0, {self.nlist})")
        counts = np.bincount(list_nos, minlength=self.nlist).astype(np.int64)
        need = self.sizes + counts
        if (need > self.capacity).any():
            # slack proportional to what a list held before this call: a bulk
            # load stays tight, lists that keep growing get room to grow
            self._rebuild(need + self.sizes // 2 + np.where(self.sizes > 0, 4, 0))
        pos = K.slab_positions(list_nos, self.offsets, self.sizes, self.nlist)
        self.codes[pos] = codes
        self.ids[pos] = ids
        self.sizes = need  # a new array: running searches keep the old sizes
        return pos

    def remove_rows(self, rows: np.ndarray) -> None:
        """Remove the entries at the given slab rows (copy-on-write)."""
        used, _ = self.used_rows()
        keep = ~np.isin(used, rows)
        self._rebuild(self.capacity.copy(), np.flatnonzero(keep))

    def reset(self) -> None:
        self.__init__(self.nlist, self.code_size)

    def compact(self) -> None:
        """Drop the slack so memory equals the stored entries."""
        self._rebuild(self.sizes.copy())


class DirectMap:
    """id -> (list, offset) lookup for ``reconstruct`` (FAISS's DirectMap).

    ``type`` is kept for FAISS file compatibility (0 none, 1 array, 2
    hashtable). voisin reconstructs whatever the type: the lookup (sorted ids
    and their slab rows) is built lazily on the first ``reconstruct`` after a
    write.
    """

    NoMap, Array, Hashtable = 0, 1, 2

    def __init__(self) -> None:
        self.type = DirectMap.NoMap
        self._lookup: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def invalidate(self) -> None:
        self._lookup = None

    def rows_of(self, invlists: InvertedLists, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(slab row, list number) of each key; row -1 when absent."""
        if self._lookup is None:
            rows, lists = invlists.used_rows()
            ids = invlists.ids[rows]
            order = np.argsort(ids, kind="stable")
            self._lookup = (ids[order], rows[order], lists[order])
        sids, rows, lists = self._lookup
        if sids.size == 0:
            return np.full(keys.shape, -1, np.int64), np.full(keys.shape, -1, np.int64)
        pos = np.searchsorted(sids, keys)
        pos[pos == sids.size] = 0
        found = sids[pos] == keys
        return np.where(found, rows[pos], -1), np.where(found, lists[pos], -1)


@dataclass
class ScanContext:
    """What a list scan needs, snapshotted once per search call.

    ``plan``: the filter resolved over this snapshot (None without a filter).
    ``cache``: where a codec keeps data derived from a transient slab (the
    gathered allowed entries of a filter) instead of on the index.
    """

    codes: np.ndarray
    ids: np.ndarray
    offsets: np.ndarray
    sizes: np.ndarray
    mask: np.ndarray
    use_mask: bool
    max_codes: int
    plan: filtering.IVFFilterPlan | None = None
    cache: dict | None = None


_NO_MASK = np.zeros(1, dtype=np.bool_)


class IndexIVF(Index):
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

    def _filter_plan(self, sel: IDSelector, snap: tuple) -> filtering.IVFFilterPlan:
        """The selector resolved over this snapshot, reused while both stay the same."""
        cache = self.__dict__.get("_filter_cache")
        if cache is None:
            cache = self.__dict__.setdefault("_filter_cache", filtering.PlanCache())
        plan = cache.get(sel, snap)
        if plan is None:
            lookup = None
            if filtering.uses_lookup(sel, int(snap[3].sum())):
                lookup = self._id_lookup(snap)
            plan = filtering.plan_ivf(sel, snap[1], snap[2], snap[3], lookup)
            cache.put(sel, snap, plan)
        return plan

    def _id_lookup(self, snap: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sorted ids of a snapshot with their rows and lists (one per snapshot)."""
        cache = self.__dict__.get("_lookup_cache")
        if cache is None:
            cache = self.__dict__.setdefault("_lookup_cache", filtering.PlanCache())
        key = snap[1:]
        got = cache.get(None, key)
        if got is None:
            got = filtering.id_lookup(snap[1], snap[2], snap[3])
            cache.put(None, key, got)
        return got

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
            return _concat_range(parts)
        probes, pd = self._widened_probes(x, plan, strat)
        return self._range_preassigned(x, radius, probes, pd, replace(ctx, max_codes=strat.max_codes))

    # --- filtered search (policy and cost model: voisin/filtering.py) -------
    def _list_overhead(self) -> float:
        """Cost of opening one list, in codes (a codec's per-list table or residual)."""
        return 0.0

    def _needs_probe_dists(self) -> bool:
        """Whether ``_search_preassigned`` reads the coarse distances."""
        return False

    def _exact_code_cost(self, x: np.ndarray, plan) -> float:
        """Cost of an exact-strategy code relative to a list-scan code (see filtering)."""
        return 1.0

    def _filter_strategy(self, plan, nprobe, k, max_codes, x=None) -> filtering.IVFStrategy:
        cost = 1.0 if x is None else self._exact_code_cost(x, plan)
        return filtering.choose_ivf_strategy(plan.allowed, plan.ntotal, self.nlist, nprobe, k,
                                             plan.lists_with_allowed, self._list_overhead(), max_codes,
                                             cost)

    def _search_filtered(self, x, k, nprobe, ctx, D, I):
        plan = ctx.plan
        if plan.allowed == 0 or x.shape[0] == 0:
            D.fill(worst_distance(self.metric_type))
            I.fill(-1)
            return D, I
        if plan.allowed == plan.ntotal:
            # everything allowed (IDSelectorAll, a range covering all ids): the
            # plain search, fused paths included
            return self._search_unfiltered(x, k, nprobe, replace(ctx, mask=_NO_MASK, use_mask=False, plan=None),
                                           D, I)
        strat = self._filter_strategy(plan, nprobe, k, ctx.max_codes, x)
        if strat.exact:
            return self._search_allowed(x, k, ctx, D, I)
        probes, pd = self._widened_probes(x, plan, strat)
        self._search_preassigned(x, k, probes, pd, replace(ctx, max_codes=strat.max_codes), D, I)
        # a query whose neighbourhood holds few allowed entries (or a max_codes
        # cap) may come back short: finish it with the exact strategy
        need = min(k, plan.allowed)
        short = np.flatnonzero(I[:, need - 1] < 0)
        if short.size:
            Ds = np.empty((short.size, k), dtype=np.float32)
            Is = np.empty((short.size, k), dtype=np.int64)
            self._search_allowed(np.ascontiguousarray(x[short]), k, ctx, Ds, Is)
            D[short] = Ds
            I[short] = Is
        return D, I

    def _widened_probes(self, x, plan, strat) -> tuple[np.ndarray, np.ndarray]:
        """Each query's lists in centroid order, cut once it has seen
        ``strat.target_allowed`` allowed entries (see voisin/filtering.py)."""
        Dq, Iq = self.coarse_assign(x, strat.nprobe_max)
        Iq = np.array(Iq, dtype=np.int64, order="C")
        kept = np.empty(Iq.shape[0], dtype=np.int64)
        KF.cut_probes(Iq, plan.list_allowed, np.int64(strat.target_allowed), kept)
        width = max(1, int(kept.max()) if kept.size else 1)
        return (np.ascontiguousarray(Iq[:, :width]),
                np.ascontiguousarray(np.asarray(Dq, dtype=np.float32)[:, :width]))

    def _allowed_slab(self, ctx) -> tuple[ScanContext, np.ndarray]:
        """(context, lists) that score exactly the allowed entries: the entries
        gathered into a small slab of their own (kept with the plan), or, when
        that copy is too large, the lists holding them scanned under the mask."""
        plan = ctx.plan
        got = plan.compact.get("slab")
        if got is not None:
            return got
        lists = np.flatnonzero(plan.list_allowed).astype(np.int64)
        if plan.allowed * max(1, self.code_size) <= COMPACT_MAX_BYTES:
            sizes = plan.list_allowed.copy()
            offsets = np.cumsum(sizes) - sizes
            cctx = ScanContext(np.ascontiguousarray(ctx.codes[plan.rows]), ctx.ids[plan.rows], offsets, sizes,
                               _NO_MASK, False, 0, None, {})
        else:
            cctx = replace(ctx, max_codes=0)
        plan.compact["slab"] = (cctx, lists)
        return cctx, lists

    def _probes_for(self, x, lists) -> tuple[np.ndarray, np.ndarray]:
        """Every query probes ``lists``; with their coarse distances when the codec reads them."""
        probes = np.ascontiguousarray(np.broadcast_to(lists, (x.shape[0], lists.size)))
        if not self._needs_probe_dists() or lists.size == 0:
            return probes, np.zeros(probes.shape, dtype=np.float32)
        flat = self._flat_centroids()
        cent = flat[0][lists] if flat is not None else self.quantizer.reconstruct_batch(lists)
        if self.metric_type == METRIC_L2:
            pd = exact.pairwise_distances(x, cent)
        else:
            pd = x @ cent.T
        return probes, np.ascontiguousarray(pd, dtype=np.float32)

    def _search_allowed(self, x, k, ctx, D, I):
        """k-NN over exactly the allowed entries, scored by the codec."""
        cctx, lists = self._allowed_slab(ctx)
        for q0 in range(0, x.shape[0], ALLOWED_BLOCK_QUERIES):
            q1 = min(x.shape[0], q0 + ALLOWED_BLOCK_QUERIES)
            probes, pd = self._probes_for(x[q0:q1], lists)
            self._search_preassigned(x[q0:q1], k, probes, pd, cctx, D[q0:q1], I[q0:q1])
        return D, I

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


# Queries per block of a batch pipeline: a (rows x nlist) product block stays
# in the core's cache and the two pipelines share the work out evenly.
PIPELINE_BLOCK_QUERIES = 128


def _pipelines_pay(nq: int) -> bool:
    return numba.get_num_threads() > 1 and nq >= 2 * PIPELINE_BLOCK_QUERIES and _blas.available()


def _flat_gemm_pipelines(x, ct, cnorm, nprobe, vecs, ctx, metric, D, I) -> None:
    """IVF-Flat batch search as one pipeline per thread (as in ``voisin.exact``):
    each takes blocks of queries, computes their coarse products with BLAS on
    one thread and runs the probe selection and list scan for the block on the
    same core. BLAS on its own pool followed by one parallel scan hands the
    cores between two spinning pools, and the product block leaves the cache
    (glove-50, IVF4096, 2,000 queries: 1.3-1.7x more QPS this way).
    """
    nq = x.shape[0]
    nlist = ct.shape[1]
    worst = worst_distance(metric)
    G = np.empty((numba.get_num_threads(), PIPELINE_BLOCK_QUERIES, nlist), dtype=np.float32)

    def work(p: int, q0: int) -> None:
        q1 = min(nq, q0 + PIPELINE_BLOCK_QUERIES)
        g = G[p, :q1 - q0]
        np.matmul(x[q0:q1], ct, out=g)
        K.flat_search_gemm(x[q0:q1], g, cnorm, nprobe, vecs, ctx.ids, ctx.offsets, ctx.sizes,
                           metric, ctx.max_codes, ctx.mask, ctx.use_mask, worst, D[q0:q1], I[q0:q1])

    _blas.run_pipelines(range(0, nq, PIPELINE_BLOCK_QUERIES), work, numba.get_num_threads())


class IndexIVFFlat(IndexIVF):
    """IVF storing the raw float32 vectors: exact distances within the probed lists.

    With ``nprobe == nlist`` the result equals an exact (Flat) search.

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).random((10000, 32), dtype="float32")
        >>> quantizer = voisin.IndexFlatL2(32)
        >>> index = voisin.IndexIVFFlat(quantizer, 32, 64)
        >>> index.train(xb)
        >>> index.add(xb)
        >>> index.nprobe = 8
        >>> D, I = index.search(xb[:5], 10)
        >>> I[:, 0].tolist()
        [0, 1, 2, 3, 4]
    """

    def __init__(self, quantizer: Index | None = None, d: int | None = None, nlist: int = 1,
                 metric: int = METRIC_L2):
        if d is None:
            if quantizer is None:
                raise TypeError("IndexIVFFlat: give a quantizer or the dimension d")
            d = quantizer.d
        metric = check_metric(metric)
        super().__init__(quantizer, d, nlist, 4 * int(d), metric)

    def _vecs(self, codes: np.ndarray) -> np.ndarray:
        return codes.view(np.float32).reshape(codes.shape[0], self.d)

    def _encode(self, x: np.ndarray, list_nos: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x, dtype=np.float32).view(np.uint8).reshape(x.shape[0], self.code_size)

    def _decode(self, codes: np.ndarray, list_nos: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(codes).view(np.float32).reshape(codes.shape[0], self.d).copy()

    def _search_single(self, x, k, nprobe, ctx, D, I):
        flat = self._flat_centroids()
        if flat is None:
            return None
        cent, cnorm = flat
        K.flat_search_single(x, cent, cnorm, nprobe, self._vecs(ctx.codes), ctx.ids, ctx.offsets,
                             ctx.sizes, self.metric_type, ctx.max_codes, ctx.mask, ctx.use_mask,
                             worst_distance(self.metric_type), D, I)
        return D, I

    def _search_batch(self, x, k, nprobe, ctx, D, I):
        flat = self._flat_centroids()
        if flat is None:
            return None
        cent, cnorm = flat
        ct = np.ascontiguousarray(cent.T)
        step = max(1, GEMM_BLOCK_BYTES // (4 * max(1, self.nlist)))
        G = np.empty((min(step, x.shape[0]), self.nlist), dtype=np.float32)
        vecs = self._vecs(ctx.codes)
        # the per-(query, probe) heaps cost rows*nprobe*k*12 bytes: large k or
        # nprobe fall back to the per-query scan rather than allocate too much
        slot_bytes = min(step, x.shape[0]) * nprobe * k * 12
        # and it pays off where memory traffic dominates: long vectors. Short
        # ones (glove's 200 bytes) stay in cache anyway and the extra slot-heap
        # inserts make it slower there.
        list_major = (x.shape[0] >= LIST_MAJOR_MIN_QUERIES and slot_bytes <= LIST_MAJOR_MAX_BYTES
                      and self.d >= LIST_MAJOR_MIN_DIM)
        order = np.random.default_rng(0).permutation(self.nlist).astype(np.int64) if list_major else None
        if not list_major and _pipelines_pay(x.shape[0]):
            _flat_gemm_pipelines(x, ct, cnorm, nprobe, vecs, ctx, self.metric_type, D, I)
            return D, I
        for i0 in range(0, x.shape[0], step):
            i1 = min(x.shape[0], i0 + step)
            g = G[:i1 - i0]
            np.matmul(x[i0:i1], ct, out=g)
            if list_major:
                probes = np.empty((i1 - i0, nprobe), dtype=np.int64)
                K.select_probes(g, cnorm, self.metric_type, probes)
                start, pair_q, pair_p = K.group_pairs(probes, ctx.sizes, self.nlist, ctx.max_codes)
                SD = np.full((i1 - i0, nprobe, k), np.inf, dtype=np.float32)
                SI = np.full((i1 - i0, nprobe, k), -1, dtype=np.int64)
                K.scan_lists(x[i0:i1], order, start, pair_q, pair_p, vecs, ctx.ids, ctx.offsets, ctx.sizes,
                             self.metric_type, ctx.mask, ctx.use_mask, SD, SI)
                K.merge_slots(SD, SI, self.metric_type, worst_distance(self.metric_type), D[i0:i1], I[i0:i1])
                continue
            K.flat_search_gemm(x[i0:i1], g, cnorm, nprobe, vecs, ctx.ids, ctx.offsets, ctx.sizes,
                               self.metric_type, ctx.max_codes, ctx.mask, ctx.use_mask,
                               worst_distance(self.metric_type), D[i0:i1], I[i0:i1])
        return D, I

    def _blas_exact(self, nq: int, allowed: int) -> bool:
        """Whether the exact strategy runs as BLAS blocks over the gathered vectors."""
        return (nq >= exact.BLAS_THRESHOLD and self.d > exact.DIRECT_MAX_D
                and allowed * self.code_size <= COMPACT_MAX_BYTES)

    def _exact_code_cost(self, x, plan):
        return filtering.BLAS_CODE_COST if self._blas_exact(x.shape[0], plan.allowed) else 1.0

    def _search_allowed(self, x, k, ctx, D, I):
        cctx, lists = self._allowed_slab(ctx)
        if not self._blas_exact(x.shape[0], ctx.plan.allowed) or cctx.use_mask:
            return super()._search_allowed(x, k, ctx, D, I)
        # many queries: the gathered vectors are a plain matrix, searched by
        # the exact engine (BLAS blocks); row norms kept with the plan
        vecs = self._vecs(cctx.codes)
        norms = None
        if exact.uses_norms(x, self.metric_type):
            norms = cctx.cache.get("norms")
            if norms is None:
                norms = cctx.cache["norms"] = row_norms_sqr(vecs)
        exact.search(x, vecs, vecs.shape[0], self.metric_type, k, None, D, I, norms)
        I[:] = np.where(I >= 0, cctx.ids[np.maximum(I, 0)], -1)
        return D, I

    def _search_preassigned(self, x, k, probes, probe_dists, ctx, D, I):
        K.flat_search_batch(x, np.ascontiguousarray(probes, dtype=np.int64), self._vecs(ctx.codes),
                            ctx.ids, ctx.offsets, ctx.sizes, self.metric_type, ctx.max_codes,
                            ctx.mask, ctx.use_mask, worst_distance(self.metric_type), D, I)
        return D, I

    def _range_preassigned(self, x, radius, probes, probe_dists, ctx):
        return K.flat_range_search(x, np.ascontiguousarray(probes, dtype=np.int64), self._vecs(ctx.codes),
                                   ctx.ids, ctx.offsets, ctx.sizes, self.metric_type, np.float32(radius),
                                   ctx.max_codes, ctx.mask, ctx.use_mask)


def _concat_range(parts: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Join the (lims, D, I) of consecutive query blocks."""
    if len(parts) == 1:
        return parts[0]
    lims = [np.zeros(1, dtype=np.int64)]
    base = 0
    for lm, _, _ in parts:
        lims.append(lm[1:] + base)
        base += int(lm[-1])
    return (np.concatenate(lims), np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]))


def _flat_types() -> tuple[type, ...]:
    from .flat import IndexFlatIP, IndexFlatL2
    return (IndexFlat, IndexFlatL2, IndexFlatIP)


_FLAT_TYPES = _flat_types()
