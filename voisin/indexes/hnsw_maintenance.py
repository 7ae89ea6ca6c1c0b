"""HNSW deletes: tombstones, graph repair around deleted nodes, compaction.

1. the deleted nodes become tombstones at once (searches skip them);
2. every list that named a deleted node is rebuilt (:func:`~voisin.kernels.hnsw_repair.
   repair_lists`) and the nodes those lists now name link back, as an insertion
   would (:func:`~voisin.kernels.hnsw_repair.add_back_links`); a new entry point is
   chosen if the old one was deleted; level-0 nodes no list names get an in-link;
3. the arrays are compacted once tombstones exceed ``compact_threshold`` of all
   nodes, or when nothing is left.

Repair reads the published graph and writes copies, so searches running meanwhile
see the old graph or the new one. Repair measures in the index's own space (for
IndexHNSWSQ, the codes).
"""

from __future__ import annotations

import time
from typing import Any

import numba
import numpy as np

from .. import _aligned
from .._validate import check_float, check_int
from ..kernels import hnsw as K
from ..kernels import hnsw_repair as R
from ..selector import IDSelector


def check_threshold(v: Any) -> float:
    v = check_float(v, "compact_threshold")
    if v < 0:
        raise ValueError(f"compact_threshold: expected a share >= 0, got {v}")
    return v


def relink_orphans(nb0: np.ndarray, dead: np.ndarray | None, n: int, entry: int) -> int:
    return R.relink_orphans(nb0, dead if dead is not None else np.zeros(n, dtype=bool), entry)


def remove(index: Any, sel: IDSelector) -> int:
    """Delete the ids ``sel`` selects from an IndexHNSW (write lock held); returns the count."""
    X, g, labels, slots, live = index._snap
    nlive = X.shape[0] if slots is None else slots.size
    if nlive == 0:
        return 0
    ext = np.asarray(sel.mask_sequential(nlive), dtype=bool)
    count = int(np.count_nonzero(ext))
    if count == 0:
        return 0
    t0 = time.perf_counter()
    n = g[3].size
    dead = np.zeros(n, dtype=bool) if live is None else ~live
    dead[np.flatnonzero(ext) if slots is None else slots[ext]] = True
    index._publish(X, g, dead)
    t1 = time.perf_counter()
    nb0, upper, upper_off, levels, state = g
    graph = K.Graph(nb0, upper, upper_off, levels)
    space = index._space(X)
    nodes, lvls = R.affected_lists(graph, dead)
    out = K.Graph(_aligned.copy(nb0), _aligned.copy(upper), upper_off, levels)
    nthreads = max(1, numba.get_num_threads())
    efc = check_int(index.hnsw.efConstruction, "efConstruction", lo=1)
    R.repair_lists(space, graph, dead, index.metric_type, nodes, lvls, nthreads, int(state[0]),
                   int(state[1]), efc, out)
    backlinks = 0
    if nodes.size:
        backlinks = R.add_back_links(space, graph, out, nodes, lvls, int(levels.max()), nthreads,
                                     index.metric_type)
    state = state.copy()
    if dead.all():
        state[:] = -1
    elif dead[state[0]]:
        # the first live node of the highest level left becomes the entry point
        lv = np.where(dead, 0, levels)
        top = int(lv.max())
        state[0] = int(np.argmax(lv == top))
        state[1] = top - 1
    relinked = R.relink_orphans(out.nb0, dead, int(state[0]))
    index._publish(X, (out.nb0, out.upper, upper_off, levels, state), dead)
    t2 = time.perf_counter()
    ntomb = int(np.count_nonzero(dead))
    if ntomb == n or ntomb > index.compact_threshold * n:
        compact(index)
    t3 = time.perf_counter()
    # read by benchmarks/hnsw_delete_recall.py; not an API
    index._last_remove_timing = {"tombstone_s": t1 - t0, "repair_s": t2 - t1,
                                 "compact_s": t3 - t2, "lists_repaired": int(nodes.size),
                                 "orphans_relinked": int(relinked), "back_links": int(backlinks)}
    return count


def compact(index: Any) -> int:
    """Drop an IndexHNSW's tombstones (write lock held); returns the nodes dropped."""
    X, g = compacted(index._snap)
    dropped = index._snap[1][3].size - g[3].size
    if dropped:
        index._publish(X, g, None)
    return dropped


def compacted(snap: tuple) -> tuple[np.ndarray, tuple]:
    """(storage, graph) of a published state without tombstones (new arrays; the
    state is untouched), or its own when there is nothing to drop."""
    X, g, labels, slots, live = snap
    if labels is None:
        return X, g
    nb0, upper, upper_off, levels, state = g
    newid = np.full(levels.size, -1, dtype=np.int32)
    newid[slots] = np.arange(slots.size, dtype=np.int32)
    lv = np.ascontiguousarray(levels[slots])
    nup = lv.astype(np.int64) - 1
    up_off = (np.cumsum(nup) - nup).astype(np.int64)
    # upper rows of the kept nodes, in node order: row upper_off[s] + j, j < nup[s]
    keep_up = (np.repeat(upper_off[slots], nup)
               + np.arange(int(nup.sum()), dtype=np.int64) - np.repeat(up_off, nup))
    nb0_c = _aligned.empty((slots.size, nb0.shape[1]), np.int32)
    up_c = _aligned.empty((keep_up.size, upper.shape[1]), np.int32)
    R.remap_rows(nb0, slots, newid, nb0_c)
    R.remap_rows(upper, keep_up, newid, up_c)
    st = np.array([-1, -1], dtype=np.int64) if slots.size == 0 else \
        np.array([newid[state[0]], state[1]], dtype=np.int64)
    X_c = _aligned.empty((slots.size,) + X.shape[1:], X.dtype)
    np.take(X, slots, axis=0, out=X_c)
    return X_c, (nb0_c, up_c, up_off, lv, st)
