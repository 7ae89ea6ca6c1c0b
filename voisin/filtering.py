"""Filtered search: one place for the selectivity policy and its cost model.

A search with ``SearchParameters(sel=...)`` first turns the selector into a
boolean mask over what the index stores (see :mod:`voisin.selector`) and
counts the allowed entries. The *selectivity* ``s = allowed / ntotal`` then
picks the strategy, by comparing the number of codes each one scores per query
(one "code" = one distance between the query and a stored vector or code; a
coarse centroid distance counts as one code too):

exact scan of the allowed entries
    ``allowed + lists_with_allowed * list_overhead`` codes. Every allowed entry
    is scored, so the result is the best the codec can give: exact for
    IVF-Flat and Flat, the codec's own (approximate) ranking for SQ / PQ /
    fast-scan. ``list_overhead`` is what a codec pays to open a list (a
    look-up table, a residual), in codes.

widened probing (IVF)
    an unfiltered search with ``nprobe`` lists scores ``nprobe * ntotal / nlist``
    codes, of which only ``s`` are allowed under a filter. To score about as many
    *allowed* entries, a filtered search probes lists in each query's centroid
    order until it has seen ``nprobe * ntotal / nlist`` allowed entries (at
    least ``k``), i.e. about ``nprobe / s`` lists for a filter independent of
    the geometry. The list scans score every entry they visit (the mask is
    tested only for candidates that would enter the heap), so the cost is
    ``nlist + (nprobe / s) * (ntotal / nlist) * (1 + list_overhead / list_size)``
    codes (the ``nlist`` coarse distances included), capped at the whole index.

The exact scan wins when ``s`` is below about ``sqrt(nprobe / nlist)`` (e.g.
11% for nprobe=16, nlist=1264). In other words: ``nprobe`` (the index's or an
explicit :class:`~voisin.SearchParametersIVF`) states the *unfiltered-equivalent
effort*, and a filter never makes a search score fewer allowed entries than the
same search without it would score entries. ``max_codes`` is scaled the same
way (by ``1 / s``).

Whatever the strategy, a search returns ``min(k, allowed)`` results per query:
queries that a widened probe (or a ``max_codes`` cap) left short are searched
again with the exact strategy.

Plans are cached per (selector, index snapshot) for the selectors whose
membership is a plain value (:class:`~voisin.IDSelectorRange`, ``Batch``,
``Array``, ``Bitmap``, ``All`` and ``Not``/``And``/``Or``/``XOr`` of those), so
a service that reuses one ``SearchParameters`` object for many one-query calls
pays the O(ntotal) mask construction once. Do not modify a selector's arrays in
place while reusing it; build a new selector instead.
:class:`~voisin.IDSelectorFunction` is never cached (its predicate may change).

Example:
    >>> from voisin.filtering import choose_ivf_strategy
    >>> s = choose_ivf_strategy(allowed=100, ntotal=100_000, nlist=1024, nprobe=16, k=10)
    >>> s.exact
    True
    >>> choose_ivf_strategy(allowed=50_000, ntotal=100_000, nlist=1024, nprobe=16, k=10).nprobe_max
    128
"""

from __future__ import annotations

import math
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .selector import (IDSelector, IDSelectorAll, IDSelectorArray, IDSelectorBatch, IDSelectorBitmap,
                       IDSelectorNot, IDSelectorRange, _Binary)

_ID_SET_SELECTORS = (IDSelectorBatch, IDSelectorArray)

#: Flat-like indexes (Flat, PQ, SQ) gather the allowed rows and scan that
#: smaller array when the filter keeps less than this share of the rows
#: (a masked scan still scores every row: the mask is tested after the distance).
GATHER_FRACTION = 0.25
#: ... for this many queries or more; fewer score the allowed rows in place
#: (one query, glove-50 100k, 10% allowed: the gather alone cost 0.6 ms, the
#: in-place scan of the 10,000 allowed rows about 0.1 ms)
GATHER_MIN_QUERIES = 8

#: Cost of one code in an exact scan that runs as BLAS blocks (IVF-Flat with
#: 20 queries or more, d > 32) relative to a list-scan code. Measured on this
#: 2-core machine: glove-50 100k at nprobe 96, 50% allowed: BLAS over the
#: 50,000 allowed vectors 9,300 QPS vs widened probing (~16,000 codes) 3,000;
#: fashion-mnist at nprobe 8, 20% allowed: 4,800 vs 2,200, 50%: 2,900 vs 5,400.
BLAS_CODE_COST = 0.2

#: Widened probing considers up to ``PROBE_HEADROOM * nprobe / s`` lists per
#: query (and at most ``nlist``): room for filters whose allowed entries are
#: sparser near the query than on average. Queries that still see fewer than k
#: allowed entries are finished by the exact strategy.
PROBE_HEADROOM = 4


@dataclass(frozen=True)
class IVFStrategy:
    """What :func:`choose_ivf_strategy` decided, with the costs it compared."""

    exact: bool
    #: lists each query may probe (widened), before the per-query cut
    nprobe_max: int
    #: allowed entries each query must see before it stops probing
    target_allowed: int
    #: ``max_codes`` scaled by 1 / selectivity (0 = no cap)
    max_codes: int
    cost_exact: float
    cost_probe: float


def choose_ivf_strategy(allowed: int, ntotal: int, nlist: int, nprobe: int, k: int,
                        lists_with_allowed: int | None = None, list_overhead: float = 0.0,
                        max_codes: int = 0, exact_code_cost: float = 1.0) -> IVFStrategy:
    """Pick exact scan of the allowed entries or widened probing (module docstring).

    ``allowed``: entries the filter keeps (> 0); ``lists_with_allowed``: lists
    holding at least one of them (defaults to ``min(nlist, allowed)``);
    ``list_overhead``: a codec's cost of opening a list, in codes;
    ``exact_code_cost``: what scoring one allowed entry costs in the exact
    strategy relative to a list scan (IVF-Flat batches: BLAS_CODE_COST, and no
    per-list cost).
    """
    if allowed <= 0 or ntotal <= 0:
        raise ValueError(f"allowed: expected 0 < allowed <= ntotal, got {allowed} of {ntotal}")
    s = min(1.0, allowed / ntotal)
    if lists_with_allowed is None:
        lists_with_allowed = min(nlist, allowed)
    mean_list = ntotal / nlist
    lists = min(float(nlist), nprobe / s)
    cost_probe = nlist + min(float(ntotal), lists * mean_list) + lists * list_overhead
    if exact_code_cost < 1.0:
        cost_exact = allowed * exact_code_cost
    else:
        cost_exact = allowed + lists_with_allowed * (list_overhead + 1.0)
    # the target is in allowed entries: what nprobe lists hold unfiltered
    target = max(int(k), int(math.ceil(nprobe * mean_list)))
    nprobe_max = int(min(nlist, max(nprobe, math.ceil(PROBE_HEADROOM * nprobe / s))))
    if s >= 1.0:
        nprobe_max = min(nlist, nprobe)
    scaled_codes = int(math.ceil(max_codes / s)) if max_codes > 0 else 0
    return IVFStrategy(exact=cost_exact <= cost_probe, nprobe_max=nprobe_max, target_allowed=target,
                       max_codes=scaled_codes, cost_exact=float(cost_exact), cost_probe=float(cost_probe))


#: HNSW: scan the allowed vectors exactly when that costs at most this share of
#: the expected filtered traversal (see :func:`hnsw_plan`)
HNSW_EXACT_FACTOR = 1.0


def hnsw_plan(allowed: int, ntotal: int, ef: int, M: int) -> tuple[str, int]:
    """How an HNSW search filtered down to ``allowed`` of ``ntotal`` vectors runs at
    efSearch ``ef``: ``("exact", ef)``, a scan of the allowed vectors, or
    ``("traverse", ef)``, the graph walk with the mask.

    A filtered traversal has to see about ef / s nodes (s = allowed / ntotal)
    before its result list holds ef allowed ones, each costing up to 2M
    distances; at low selectivity it also loses recall as the allowed nodes get
    disconnected, so the exact scan is both faster and exact there.

    >>> hnsw_plan(100, 100_000, 16, 16)
    ('exact', 16)
    >>> hnsw_plan(50_000, 100_000, 16, 16)
    ('traverse', 16)
    """
    if ntotal <= 0 or allowed >= ntotal:
        return "traverse", ef
    traversal = ef * 2 * M / (allowed / ntotal) if allowed else 0.0
    return ("exact", ef) if allowed <= HNSW_EXACT_FACTOR * traversal else ("traverse", ef)


def no_results(nq: int, k: int, metric: int, D: np.ndarray | None, I: np.ndarray | None
               ) -> tuple[np.ndarray, np.ndarray]:
    """FAISS's answer when nothing is allowed: ids -1, the metric's worst distance."""
    from .metric import worst_distance
    D = np.empty((nq, k), dtype=np.float32) if D is None else D
    I = np.empty((nq, k), dtype=np.int64) if I is None else I
    D.fill(worst_distance(metric))
    I.fill(-1)
    return D, I


def should_gather(allowed: int, n: int) -> bool:
    """Flat-like indexes: scan the gathered allowed rows instead of masking all ``n``."""
    return allowed < GATHER_FRACTION * n


@dataclass
class IVFFilterPlan:
    """A selector resolved against one IVF snapshot (built by :func:`plan_ivf`).

    ``mask`` is over slab rows; ``rows`` are the allowed slab rows, list by
    list; ``list_allowed[l]`` counts the allowed entries of list l.
    ``compact`` holds derived data the index builds lazily (the allowed
    entries gathered into their own small slab), cached with the plan.
    """

    allowed: int
    ntotal: int
    mask: np.ndarray
    rows: np.ndarray
    list_allowed: np.ndarray
    compact: dict = field(default_factory=dict)

    @property
    def selectivity(self) -> float:
        return self.allowed / self.ntotal if self.ntotal else 0.0

    @property
    def lists_with_allowed(self) -> int:
        return int(np.count_nonzero(self.list_allowed))


#: An id-set selector holding fewer ids than this share of the entries is
#: resolved by looking its ids up (O(m log n)) instead of testing every stored
#: id against the set (O(n log m)).
LOOKUP_FRACTION = 0.25


def used_rows(offsets: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(slab row, list number) of every entry of a snapshot, list by list."""
    nlist = sizes.shape[0]
    total = int(sizes.sum())
    lists = np.repeat(np.arange(nlist, dtype=np.int64), sizes)
    starts = np.cumsum(sizes) - sizes
    return offsets[lists] + (np.arange(total, dtype=np.int64) - starts[lists]), lists


def id_lookup(ids: np.ndarray, offsets: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sorted ids, their slab rows, their lists) of a snapshot, for :func:`plan_ivf`."""
    rows, lists = used_rows(offsets, sizes)
    keys = ids[rows]
    order = np.argsort(keys, kind="stable")
    return keys[order], rows[order], lists[order]


#: Stored ids within [0, DENSE_ID_FACTOR * ntotal) let a large id set be
#: resolved through a boolean table over the id space (O(ntotal + m)).
DENSE_ID_FACTOR = 4


def uses_lookup(sel: IDSelector, ntotal: int) -> bool:
    """Whether :func:`plan_ivf` wants the snapshot's :func:`id_lookup` for ``sel``
    (id sets: a small one is searched for, a large one may use a dense table)."""
    return type(sel) in _ID_SET_SELECTORS and ntotal > 0


def plan_ivf(sel: IDSelector, ids: np.ndarray, offsets: np.ndarray, sizes: np.ndarray,
             lookup: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> IVFFilterPlan:
    """Resolve ``sel`` over the entries of an inverted-list snapshot.

    Only rows inside a list (``offsets[l] .. offsets[l] + sizes[l]``) count:
    slack rows, and rows a concurrent ``add`` wrote after the snapshot, do not.
    ``lookup`` (:func:`id_lookup` of the same snapshot) lets a small id set
    be resolved by searching for its ids (:func:`uses_lookup`).
    """
    nlist = sizes.shape[0]
    total = int(sizes.sum())
    dense = (lookup is not None and uses_lookup(sel, total) and lookup[0].size > 0
             and lookup[0][0] >= 0 and lookup[0][-1] < DENSE_ID_FACTOR * max(total, 1))
    if lookup is not None and uses_lookup(sel, total) and sel.ids.size < LOOKUP_FRACTION * total:
        sids, srows, slists = lookup
        lo = np.searchsorted(sids, sel.ids, side="left")
        cnt = np.searchsorted(sids, sel.ids, side="right") - lo
        # an id stored more than once (add_with_ids allows it) is allowed everywhere
        hit = np.repeat(lo, cnt) + (np.arange(int(cnt.sum()), dtype=np.int64) - np.repeat(np.cumsum(cnt) - cnt, cnt))
        order = np.lexsort((srows[hit], slists[hit]))
        rows, kept_lists = srows[hit][order], slists[hit][order]
    else:
        used, lists = used_rows(offsets, sizes)
        if dense:
            table = np.zeros(int(lookup[0][-1]) + 1, dtype=np.bool_)
            want = sel.ids[(sel.ids >= 0) & (sel.ids < table.size)]
            table[want] = True
            keep = table[ids[used]]
        else:
            keep = np.asarray(sel.contains(ids[used]), dtype=bool)
        rows, kept_lists = used[keep], lists[keep]
    mask = np.zeros(ids.shape[0], dtype=np.bool_)
    mask[rows] = True
    list_allowed = np.bincount(kept_lists, minlength=nlist).astype(np.int64)
    return IVFFilterPlan(int(rows.size), total, mask, rows, list_allowed)


_VALUE_SELECTORS = (IDSelectorAll, IDSelectorRange, IDSelectorBatch, IDSelectorBitmap)


def is_value_selector(sel: IDSelector) -> bool:
    """Whether ``sel``'s membership depends only on its own (immutable) fields."""
    if type(sel) in (IDSelectorNot,):
        return is_value_selector(sel.sel)
    if isinstance(sel, _Binary) and type(sel).__module__ == _Binary.__module__:
        return is_value_selector(sel.lhs) and is_value_selector(sel.rhs)
    return type(sel) in _VALUE_SELECTORS or (
        isinstance(sel, IDSelectorBatch) and type(sel).__module__ == IDSelectorBatch.__module__)


class PlanCache:
    """Remembers the last plan of an index: keyed by the selector object and
    the identity of the snapshot arrays it was resolved against (both held
    weakly, so the cache keeps no retired slab alive). ``sel=None`` keys on
    the snapshot alone (data derived from the snapshot only)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entry: tuple[Any, tuple, Any] | None = None

    def get(self, sel: IDSelector | None, snapshot: tuple) -> Any:
        with self._lock:
            entry = self._entry
        if entry is None:
            return None
        ref, snap, plan = entry
        if (ref() if ref is not None else None) is not sel or len(snap) != len(snapshot) \
                or any(r() is not a for r, a in zip(snap, snapshot)):
            return None
        return plan

    def put(self, sel: IDSelector | None, snapshot: tuple, plan: Any) -> None:
        if sel is not None and not is_value_selector(sel):
            return
        try:
            ref = weakref.ref(sel) if sel is not None else None
            snap = tuple(weakref.ref(a) for a in snapshot)
        except TypeError:
            return
        with self._lock:
            self._entry = (ref, snap, plan)

    def clear(self) -> None:
        with self._lock:
            self._entry = None

    # a copy or a pickle of an index starts with an empty cache
    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()
