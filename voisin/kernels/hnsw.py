"""HNSW graph kernels: the walk, the neighbour heuristic, reverse links and insertion.

Graph layout (FAISS's, split in two arrays so level 0 is one contiguous block),
passed as a :class:`Graph`:

* ``nb0`` (n, 2M) int32: level-0 neighbours of each node, -1 marks an empty slot
  (lists are packed: the first -1 ends the list).
* ``upper`` (rows, M) int32 and ``upper_off`` (n,) int64: node i's level-l list
  (l >= 1) is row ``upper_off[i] + l - 1``; ``levels[i]`` is the number of
  levels of node i (FAISS's convention: level + 1).

The graph knows the vectors only through a *space* (:mod:`voisin.kernels.hnsw_space`):
``query_cost``, ``node_cost``, ``prefetch``. Insertion can walk one space and link in
another (:func:`link_new_nodes`): walk 8-bit codes, re-score each level's results
from float rows and prune with float distances, which builds the graph a float walk
would build in less time.

Build kernels take namedtuples straight from Python (a call does a block of work,
the 5 us typing cost is nothing there); the search entry points in
:mod:`voisin.kernels.hnsw_search` take plain tuples, which type in nanoseconds.
"""

from collections import namedtuple

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from . import FASTMATH
from .heap import max_drain_sorted, max_push, max_replace_top, min_pop, min_push
from .hnsw_space import (PREFETCH_LINES, FlatSpace, node_cost, prefetch, prefetch_row,
                         prepare_query, query_cost, query_width)
from .refine import exact_cost

Graph = namedtuple("Graph", ["nb0", "upper", "upper_off", "levels"])
# a walk's scratch: visited epochs (uint32 per node) and its epoch counter (int64[1]),
# the candidate min-heap cd/ci (n + 1) and the result max-heap rd/ri (ef + 1)
Walk = namedtuple("Walk", ["visited", "epoch", "cd", "ci", "rd", "ri"])


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def row_of(graph, level, node):
    """Node ``node``'s neighbour list at ``level`` (a view: not for the hot loops)."""
    if level == 0:
        return graph.nb0[node]
    return graph.upper[graph.upper_off[node] + level - 1]


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def next_epoch(walk):
    """Advance the walk's visited epoch (clearing the marks when the counter wraps)."""
    e = walk.epoch[0] + 1
    if e >= 4294967295:
        walk.visited[:] = 0
        e = 1
    walk.epoch[0] = e
    return e


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def greedy_descend(space, qv, qc, graph, cur, curd, top, stop, metric):
    """Greedy walk (beam 1) from ``cur`` through levels top..stop+1; returns (node, cost)."""
    upper = graph.upper
    for level in range(top, stop, -1):
        changed = True
        while changed:
            changed = False
            r = graph.upper_off[cur] + level - 1
            for t in range(upper.shape[1]):
                v = upper[r, t]
                if v < 0:
                    break
                c = query_cost(space, qv, qc, v, metric)
                if c < curd:
                    curd = c
                    cur = v
                    changed = True
    return cur, curd


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def search_layer(space, qv, qc, graph, level, ep, epd, ef, metric, walk, mask, use_mask):
    """Best-first search of one level from entry ``ep`` (cost ``epd``).

    Keeps the ``ef`` best nodes in the max-heap ``walk.rd/ri`` and returns how many
    it holds. With ``use_mask``, only allowed nodes enter the results but every
    node may be traversed (FAISS's filtered-HNSW semantics). The caller advances
    the epoch (:func:`next_epoch`). Neighbour lists are read with 2-D indexing,
    never as row views: a view costs reference-count calls in numba, which
    showed up in the hot loop.
    """
    nb0 = graph.nb0
    upper = graph.upper
    visited, cd, ci, rd, ri = walk.visited, walk.cd, walk.ci, walk.rd, walk.ri
    epoch = walk.epoch[0]
    visited[ep] = epoch
    # typed arguments, not literals: a literal 0 or an int64 id would compile the
    # heap functions once more (docs/cold-start.md)
    nres = np.int64(0)
    ncand = min_push(cd, ci, nres, epd, np.int32(ep))
    if not use_mask or mask[ep]:
        nres = max_push(rd, ri, nres, epd, np.int32(ep))
    width = nb0.shape[1] if level == 0 else upper.shape[1]
    buf = np.empty(width, dtype=np.int32)
    while ncand > 0:
        c0 = cd[0]
        v0 = ci[0]
        if nres >= ef and c0 > rd[0]:
            break
        ncand = min_pop(cd, ci, ncand)
        if level == 0:
            r = np.int64(v0)
        else:
            r = graph.upper_off[v0] + level - 1
        # pass 1: collect the unvisited neighbours and start loading their vectors
        nnew = 0
        for t in range(width):
            if level == 0:
                v = nb0[r, t]
            else:
                v = upper[r, t]
            if v < 0:
                break
            if visited[v] == epoch:
                continue
            visited[v] = epoch
            buf[nnew] = v
            nnew += 1
            prefetch(space, v, PREFETCH_LINES)
        # pass 2: score them
        for u in range(nnew):
            v = buf[u]
            c = query_cost(space, qv, qc, v, metric)
            if nres < ef or c < rd[0]:
                ncand = min_push(cd, ci, ncand, c, v)
                if not use_mask or mask[v]:
                    if nres < ef:
                        nres = max_push(rd, ri, nres, c, v)
                    else:
                        max_replace_top(rd, ri, nres, c, v)
        # the next node expanded is the heap's top: start loading its list now
        # (hnswlib does the same), so the walk does not stall on it
        if ncand > 0 and level == 0:
            for off in range(0, width * 4, 64):
                prefetch_row(nb0, ci[0], off)
    return nres


# --- exact re-scoring of a walk's results -------------------------------------------------

@njit(cache=True, nogil=True, fastmath=FASTMATH)
def rescore(q, rows, rowmap, use_map, metric, rd, ri, nres, keep, cd, ci):
    """Re-score the ``nres`` results of a walk on approximate costs, held in the
    max-heap ``rd``/``ri``, exactly against float ``rows`` (node v's row is
    ``rowmap[v]`` with ``use_map``, else v); keep the ``keep`` best in that heap
    and return its size. ``cd``/``ci`` are scratch. The rows are scattered, so
    they are all requested before the first is read."""
    exact = FlatSpace(rows)
    n = rows.shape[0]
    for u in range(nres):
        j = rowmap[ri[u]] if use_map else ri[u]
        if j < n:
            prefetch(exact, j, PREFETCH_LINES)
    for u in range(nres):
        j = rowmap[ri[u]] if use_map else ri[u]
        # a row past the end can only come from a torn read of a graph and rows
        # published by different writes (IndexRefineFlat's optimistic search,
        # which then discards the answer): never read it
        cd[u] = exact_cost(q, rows, j, metric) if 0 <= j < n else np.float32(np.inf)
        ci[u] = ri[u]
    m = 0
    for u in range(nres):
        if m < keep:
            m = max_push(rd, ri, m, cd[u], ci[u])
        elif cd[u] < rd[0]:
            max_replace_top(rd, ri, m, cd[u], ci[u])
    return m


def rescore_in(node_space, q, metric, walk, nres):
    """:func:`rescore` of all ``nres`` walk results against ``node_space`` when it
    holds float rows; other spaces have nothing more exact to offer (no-op)."""


@overload(rescore_in, jit_options={"fastmath": FASTMATH, "nogil": True})
def _ol_rescore_in(node_space, q, metric, walk, nres):
    if isinstance(node_space, types.NamedUniTuple) and node_space.instance_class is FlatSpace:
        def flat(node_space, q, metric, walk, nres):
            nomap = np.zeros(1, dtype=np.int64)
            return rescore(q, node_space.rows, nomap, np.bool_(False), metric, walk.rd, walk.ri,
                           nres, nres, walk.cd, walk.ci)
        return flat
    return lambda node_space, q, metric, walk, nres: nres


# --- neighbour selection -----------------------------------------------------------------

@njit(cache=True, nogil=True, fastmath=FASTMATH)
def select_heuristic(space, cand_d, cand_i, ncand, mmax, metric, out):
    """HNSW's neighbour heuristic over candidates sorted by ascending cost.

    A candidate is kept when it is closer to the base point than to every
    neighbour already kept (Malkov & Yashunin, alg. 4, no fill-up): the kept
    set spreads around the base point instead of clustering on one side.
    Writes up to ``mmax`` ids into ``out``; returns how many.
    """
    nsel = 0
    for a in range(ncand):
        if nsel >= mmax:
            break
        v = cand_i[a]
        cv = cand_d[a]
        good = True
        for b in range(nsel):
            if node_cost(space, v, out[b], metric) < cv:
                good = False
                break
        if good:
            out[nsel] = v
            nsel += 1
    return nsel


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def add_reverse_link(space, graph, src, dst, level, metric, tmpd, tmpi, sel):
    """Make ``src`` a neighbour of ``dst`` at ``level``, pruning ``dst``'s list
    with the heuristic when it is full (as hnswlib does)."""
    row = row_of(graph, level, dst)
    cap = row.shape[0]
    for t in range(cap):
        v = row[t]
        if v == src:
            return
        if v < 0:
            row[t] = src
            return
    # full: rank the old list plus src by cost to dst and keep the heuristic's choice
    n = 0
    for t in range(cap):
        n = max_push(tmpd, tmpi, n, node_cost(space, dst, row[t], metric), row[t])
    n = max_push(tmpd, tmpi, n, node_cost(space, dst, src, metric), src)
    m = max_drain_sorted(tmpd, tmpi, n, tmpd[cap + 1:], tmpi[cap + 1:])
    nsel = select_heuristic(space, tmpd[cap + 1:cap + 1 + m], tmpi[cap + 1:cap + 1 + m], m, cap,
                            metric, sel)
    for t in range(cap):
        row[t] = sel[t] if t < nsel else -1


@njit(cache=True, nogil=True)
def link_groups(keys):
    """(order, gstart): a stable sort of ``keys`` and the start of each run of
    equal keys in it (``gstart[-1]`` = len(keys))."""
    total = keys.size
    order = np.argsort(keys, kind="mergesort")
    ngroups = 0
    for p in range(total):
        if p == 0 or keys[order[p]] != keys[order[p - 1]]:
            ngroups += 1
    gstart = np.empty(ngroups + 1, dtype=np.int64)
    g = 0
    for p in range(total):
        if p == 0 or keys[order[p]] != keys[order[p - 1]]:
            gstart[g] = p
            g += 1
    gstart[ngroups] = total
    return order, gstart


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def apply_link_groups(space, graph, keys, srcs, order, gstart, g0, g1, nlev, metric):
    """Apply groups g0..g1-1 of :func:`link_groups`: every link ``srcs[p] ->
    keys[p] // nlev`` at level ``keys[p] % nlev``, in the given order.

    A group is every link one list receives, so threads given disjoint group
    ranges never write the same list, and the result does not depend on the
    thread count (batched insertion and repair both rely on this).
    """
    cap0 = graph.nb0.shape[1]
    tmpd = np.empty(2 * (cap0 + 1), dtype=np.float32)
    tmpi = np.empty(2 * (cap0 + 1), dtype=np.int32)
    sel = np.empty(cap0 + 1, dtype=np.int32)
    for g in range(g0, g1):
        key = keys[order[gstart[g]]]
        dst = key // nlev
        level = key % nlev
        for p in range(gstart[g], gstart[g + 1]):
            add_reverse_link(space, graph, srcs[order[p]], dst, level, metric, tmpd, tmpi, sel)


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def apply_reverse_links(space, graph, keys, srcs, nlev, nchunk, metric):
    """All links of ``keys``/``srcs`` (see :func:`apply_link_groups`), the groups
    split over ``nchunk`` threads (used by repair, inside its parallel kernel)."""
    order, gstart = link_groups(keys)
    ngroups = gstart.size - 1
    gstep = (ngroups + nchunk - 1) // nchunk
    for ch in prange(nchunk):
        apply_link_groups(space, graph, keys, srcs, order, gstart, ch * gstep,
                          min(ngroups, (ch + 1) * gstep), nlev, metric)


# --- insertion -----------------------------------------------------------------------

@njit(cache=True, nogil=True, fastmath=FASTMATH, inline="always")
def _link_new_node(i, qw, qe, qv, qc, walk_space, node_space, rescore_exact, graph, entry,
                   max_level, efc, M, metric, walk, sd, si, nomask):
    """Search the graph for node ``i``'s neighbours and write *its own* lists
    (never another node's), so several new nodes can do this at once.

    The walk runs in ``walk_space`` (query ``qw`` prepared as ``qv``/``qc``);
    with ``rescore_exact``, ``node_space`` is a FlatSpace of float rows (node
    order) and each level's efConstruction results are re-scored from it
    (query ``qe``) before the neighbour heuristic, which always compares
    vectors of ``node_space``.
    """
    top = graph.levels[i] - 1
    cur = entry
    curd = query_cost(walk_space, qv, qc, cur, metric)
    if max_level > top:
        cur, curd = greedy_descend(walk_space, qv, qc, graph, cur, curd, max_level, top, metric)
    for level in range(min(top, max_level), -1, -1):
        next_epoch(walk)
        nres = search_layer(walk_space, qv, qc, graph, level, cur, curd, efc, metric, walk,
                            nomask, np.bool_(False))
        if rescore_exact:
            nres = rescore_in(node_space, qe, metric, walk, nres)
        m = max_drain_sorted(walk.rd, walk.ri, nres, sd, si)
        row = row_of(graph, level, i)
        nsel = select_heuristic(node_space, sd, si, m, M, metric, row)
        for t in range(nsel, row.shape[0]):
            row[t] = -1
        # the closest node found is the entry of the next level down
        cur = si[0]
        curd = query_cost(walk_space, qv, qc, cur, metric) if rescore_exact else sd[0]


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def link_new_nodes(xw, xe, i0, lo, hi, walk_space, node_space, rescore_exact, graph, entry,
                   max_level, efc, M, metric, visited, epoch):
    """Phase 1 of a batched insertion, for new nodes lo..hi-1 (rows lo-i0.. of
    ``xw``, their vectors in the walk space, and of ``xe``, in the node space).

    Each new node searches the graph as it was before the batch and writes
    only its own neighbour lists: old lists are not touched and new nodes are
    not reachable yet, so threads given disjoint ranges share nothing they
    write. ``visited``/``epoch`` are this thread's visited epochs.
    """
    n = graph.levels.size
    ef = max(efc, 1)
    walk = Walk(visited, epoch, np.empty(n + 1, dtype=np.float32), np.empty(n + 1, dtype=np.int32),
                np.empty(ef + 1, dtype=np.float32), np.empty(ef + 1, dtype=np.int32))
    sd = np.empty(ef + 1, dtype=np.float32)
    si = np.empty(ef + 1, dtype=np.int32)
    qv = np.empty(query_width(walk_space), dtype=np.float32)
    nomask = np.zeros(1, dtype=np.bool_)
    for i in range(lo, hi):
        qc = prepare_query(walk_space, xw[i - i0], metric, qv)
        _link_new_node(i, xw[i - i0], xe[i - i0], qv, qc, walk_space, node_space, rescore_exact,
                       graph, entry, max_level, ef, M, metric, walk, sd, si, nomask)


@njit(cache=True, nogil=True)
def reverse_link_keys(graph, b0, b1, max_level):
    """Phase 2's work list: for every link new node i (b0 <= i < b1) made to
    node v at a level, key v * (max_level + 1) + level and source i."""
    nlev = max_level + 1
    total = 0
    for i in range(b0, b1):
        for level in range(min(graph.levels[i] - 1, max_level), -1, -1):
            row = row_of(graph, level, i)
            for t in range(row.shape[0]):
                if row[t] < 0:
                    break
                total += 1
    keys = np.empty(total, dtype=np.int64)
    srcs = np.empty(total, dtype=np.int32)
    p = 0
    for i in range(b0, b1):
        for level in range(min(graph.levels[i] - 1, max_level), -1, -1):
            row = row_of(graph, level, i)
            for t in range(row.shape[0]):
                v = row[t]
                if v < 0:
                    break
                keys[p] = np.int64(v) * nlev + level
                srcs[p] = i
                p += 1
    return keys, srcs
