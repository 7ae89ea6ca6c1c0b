"""HNSW deletion kernels: graph repair around deleted nodes, and compaction.

Same layout as :mod:`voisin.kernels.hnsw` (a ``Graph``: ``nb0`` (n, 2M), ``upper``
(rows, M) with ``upper_off``, ``levels``) and the same distance interface (a space of
:mod:`voisin.kernels.hnsw_space`). ``dead`` is a boolean array over nodes.

Repair reads the old lists and writes copies, so a concurrent search keeps
reading a graph that no writer touches; the caller publishes the copies.
"""

import numpy as np
from numba import njit, prange

from . import FASTMATH
from .heap import max_drain_sorted
from .hnsw import (Walk, apply_reverse_links, greedy_descend, next_epoch, row_of,
                   search_layer, select_heuristic)
from .hnsw_space import node_cost, node_vector, prepare_query, query_cost, query_width


@njit(cache=True, nogil=True)
def affected_lists(graph, dead):
    """The (node, level) lists of live nodes that link to a dead node.

    Returns ``(nodes, levels)`` as two int64 arrays, level-major per node.
    """
    levels = graph.levels
    n = levels.size
    count = 0
    for pas in range(2):
        if pas == 1:
            nodes = np.empty(count, dtype=np.int64)
            lvls = np.empty(count, dtype=np.int64)
            count = 0
        for u in range(n):
            if dead[u]:
                continue
            for level in range(levels[u]):
                row = row_of(graph, level, u)
                hit = False
                for t in range(row.shape[0]):
                    v = row[t]
                    if v < 0:
                        break
                    if dead[v]:
                        hit = True
                        break
                if hit:
                    if pas == 1:
                        nodes[count] = u
                        lvls[count] = level
                    count += 1
    return nodes, lvls


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _gather(row, u, dead, stamp, mark, cand, nc):
    """Append the live, not yet seen entries of ``row`` (except ``u``) to ``cand``."""
    for t in range(row.shape[0]):
        w = row[t]
        if w < 0:
            break
        if w == u or dead[w] or stamp[w] == mark or nc >= cand.size:
            continue
        stamp[w] = mark
        cand[nc] = w
        nc += 1
    return nc


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def repair_lists(space, graph, dead, metric, nodes, lvls, nchunk, entry, max_level, efc,
                 graph_out):
    """Rebuild every listed (node, level) list without its dead neighbours.

    Candidates for node u at level l: u's live neighbours, plus the live
    neighbours of each dead neighbour d (the nodes u reached through d), plus,
    while fewer than the list capacity have been found, the live neighbours of
    d's own dead neighbours (two hops through deleted nodes, which matters once
    many nodes are deleted). They are ranked by distance to u and pruned with
    the insertion heuristic (:func:`select_heuristic`) to the level's capacity
    (2M at level 0, M above), as hnswlib's repair does, then filled up with the
    nearest candidates the heuristic passed over until the list is as long as it
    was before the deletion (the paper's keepPrunedConnections option).

    When that neighbourhood holds fewer live nodes than the list's capacity
    (most of it was deleted), u also searches the old graph from the entry
    point (``efc`` wide, dead nodes may be traversed but are never returned),
    as an insertion would: without it a node whose whole neighbourhood went
    away would be cut off from the graph.

    Reads ``graph`` and writes only ``graph_out`` (a copy of its lists),
    one writer per list; dead nodes' own lists are cleared, so they are
    unreachable dead ends once the copies are published.
    """
    levels = graph.levels
    n = levels.size
    cap0 = graph.nb0.shape[1]
    npairs = nodes.size
    step = (npairs + nchunk - 1) // nchunk
    maxc = cap0 * (cap0 + 2)
    for ch in prange(nchunk):
        stamp = np.zeros(n, dtype=np.int64)
        cand = np.empty(maxc, dtype=np.int32)
        cdist = np.empty(maxc, dtype=np.float32)
        sd = np.empty(maxc, dtype=np.float32)
        si = np.empty(maxc, dtype=np.int32)
        sel = np.empty(cap0, dtype=np.int32)
        # scratch of the fallback search
        walk = Walk(np.zeros(n, dtype=np.uint32), np.zeros(1, dtype=np.int64),
                    np.empty(n + 1, dtype=np.float32), np.empty(n + 1, dtype=np.int32),
                    np.empty(efc + 1, dtype=np.float32), np.empty(efc + 1, dtype=np.int32))
        od = np.empty(efc + 1, dtype=np.float32)
        oi = np.empty(efc + 1, dtype=np.int32)
        q = np.empty(query_width(space), dtype=np.float32)
        qv = np.empty(query_width(space), dtype=np.float32)
        live = ~dead
        for p in range(ch * step, min(npairs, (ch + 1) * step)):
            u = nodes[p]
            level = lvls[p]
            mark = p + 1
            row = row_of(graph, level, u)
            cap = row.shape[0]
            stamp[u] = mark
            nc = _gather(row, u, dead, stamp, mark, cand, 0)
            for t in range(cap):
                v = row[t]
                if v < 0:
                    break
                if dead[v]:
                    nc = _gather(row_of(graph, level, v), u, dead, stamp, mark,
                                 cand, nc)
            if nc < cap:
                for t in range(cap):
                    v = row[t]
                    if v < 0:
                        break
                    if not dead[v]:
                        continue
                    r2 = row_of(graph, level, v)
                    for t2 in range(cap):
                        w = r2[t2]
                        if w < 0:
                            break
                        if dead[w]:
                            nc = _gather(row_of(graph, level, w), u, dead, stamp,
                                         mark, cand, nc)
            if nc < cap and entry >= 0:
                node_vector(space, u, q)
                qc = prepare_query(space, q, metric, qv)
                cur = entry
                curd = query_cost(space, qv, qc, cur, metric)
                cur, curd = greedy_descend(space, qv, qc, graph, cur, curd, max_level, level,
                                           metric)
                next_epoch(walk)
                nres = search_layer(space, qv, qc, graph, level, cur, curd, efc, metric, walk,
                                    live, True)
                m = max_drain_sorted(walk.rd, walk.ri, nres, od, oi)
                for a in range(m):
                    w = oi[a]
                    if w != u and stamp[w] != mark and nc < maxc:
                        stamp[w] = mark
                        cand[nc] = w
                        nc += 1
            for a in range(nc):
                cdist[a] = node_cost(space, u, cand[a], metric)
            order = np.argsort(cdist[:nc], kind="mergesort")
            for a in range(nc):
                sd[a] = cdist[order[a]]
                si[a] = cand[order[a]]
            nsel = select_heuristic(space, sd, si, nc, cap, metric, sel)
            # keep the list as long as it was: the heuristic alone returns fewer
            # neighbours than a list accumulates through reverse links, and a
            # sparser graph loses recall at low efSearch (measured on glove)
            target = 0
            for t in range(cap):
                if row[t] < 0:
                    break
                target += 1
            if nsel < target:
                for a in range(nsel):
                    stamp[sel[a]] = -mark
                for a in range(nc):
                    if nsel >= target:
                        break
                    w = si[a]
                    if stamp[w] != -mark:
                        stamp[w] = -mark
                        sel[nsel] = w
                        nsel += 1
            out = row_of(graph_out, level, u)
            for t in range(cap):
                out[t] = sel[t] if t < nsel else -1
    # dead nodes' own lists: cleared, so nothing is ever reached through them
    for u in range(n):
        if dead[u]:
            for level in range(levels[u]):
                out = row_of(graph_out, level, u)
                for t in range(out.shape[0]):
                    out[t] = -1


@njit(parallel=True, cache=True, nogil=True)
def remap_rows(rows, keep_rows, newid, out):
    """``out[i]`` = row ``keep_rows[i]`` of ``rows`` with every id renumbered by
    ``newid`` (old -> new, -1 = gone), ids that are gone dropped, list packed."""
    for i in prange(keep_rows.size):
        r = keep_rows[i]
        m = 0
        for t in range(rows.shape[1]):
            v = rows[r, t]
            if v < 0:
                break
            w = newid[v]
            if w >= 0:
                out[i, m] = w
                m += 1
        for t in range(m, rows.shape[1]):
            out[i, t] = -1


@njit(cache=True, nogil=True)
def relink_orphans(nb0, dead, entry):
    """Give every live level-0 node that no live node links to an in-link.

    Repair rebuilds lists with a pruning heuristic, so a node that was only
    reached through deleted nodes may be picked by nobody and become
    unreachable. Such a node is appended to the list of its nearest neighbour
    that has a free slot; when all are full, it replaces the last (farthest)
    entry of the first neighbour whose last entry has another in-link, so no
    new orphan is made. Works in place on an unpublished copy; returns the
    number of nodes relinked.
    """
    n, cap = nb0.shape
    indeg = np.zeros(n, dtype=np.int32)
    for u in range(n):
        if dead[u]:
            continue
        for t in range(cap):
            v = nb0[u, t]
            if v < 0:
                break
            indeg[v] += 1
    fixed = 0
    for v in range(n):
        if dead[v] or v == entry or indeg[v] > 0:
            continue
        placed = False
        for t in range(cap):
            w = nb0[v, t]
            if w < 0:
                break
            for s in range(cap):
                if nb0[w, s] < 0:
                    nb0[w, s] = v
                    placed = True
                    break
            if placed:
                break
        if not placed:
            for t in range(cap):
                w = nb0[v, t]
                if w < 0:
                    break
                last = nb0[w, cap - 1]
                if last != v and indeg[last] > 1:
                    indeg[last] -= 1
                    nb0[w, cap - 1] = v
                    placed = True
                    break
        if placed:
            indeg[v] += 1
            fixed += 1
    return fixed


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def add_back_links(space, graph_old, graph, nodes, lvls, nlev, nchunk, metric):
    """For every link u -> w that repair created, add w -> u as an insertion
    would (pruning w's list with the heuristic when full).

    Links in HNSW are made in pairs at insertion; repair alone only rewrites
    the lists that named a dead node, so the nodes those lists now point to
    would not link back and the graph gets sparser around every deletion.
    Grouped by receiving list (sorted, one thread per group), so every list has
    one writer and the result does not depend on the thread count. Works in
    place on the unpublished copy ``graph``.
    """
    total = 0
    for pas in range(2):
        if pas == 1:
            keys = np.empty(total, dtype=np.int64)
            srcs = np.empty(total, dtype=np.int32)
            total = 0
        for p in range(nodes.size):
            u = nodes[p]
            level = lvls[p]
            old = row_of(graph_old, level, u)
            new = row_of(graph, level, u)
            for t in range(new.shape[0]):
                w = new[t]
                if w < 0:
                    break
                seen = False
                for s in range(old.shape[0]):
                    if old[s] < 0:
                        break
                    if old[s] == w:
                        seen = True
                        break
                if not seen:
                    if pas == 1:
                        keys[total] = np.int64(w) * nlev + level
                        srcs[total] = u
                    total += 1
    apply_reverse_links(space, graph, keys, srcs, nlev, nchunk, metric)
    return total
