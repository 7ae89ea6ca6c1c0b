"""HNSW deletion kernels: graph repair around deleted nodes, and compaction.

Same layout as :mod:`voisin.kernels.hnsw` (``nb0`` (n, 2M), ``upper`` (rows, M)
with ``upper_off``, ``levels``). ``dead`` is a boolean array over nodes.

Repair reads the old lists and writes copies, so a concurrent search keeps
reading a graph that no writer touches; the caller publishes the copies.
"""

import numpy as np
from numba import njit, prange

from . import FASTMATH
from .hnsw import (_next_epoch, _row, apply_reverse_links, dist_nodes, dist_q as dist_q_node,
                   greedy_descend, heap_to_sorted, prep_query, search_layer, select_heuristic)


@njit(cache=True, nogil=True)
def affected_lists(nb0, upper, upper_off, levels, dead):
    """The (node, level) lists of live nodes that link to a dead node.

    Returns ``(nodes, levels)`` as two int64 arrays, level-major per node.
    """
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
                row = _row(level, u, nb0, upper, upper_off)
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


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _node_query(X, u, sq, sqp, q):
    """Node ``u``'s vector as a float query (SQ8 codes decoded at bucket centres)."""
    for t in range(X.shape[1]):
        if sq:
            q[t] = sqp[0, t] + sqp[1, t] * (np.float32(X[u, t]) + np.float32(0.5))
        else:
            q[t] = X[u, t]


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def repair_lists(X, nb0, upper, upper_off, levels, dead, metric, sq, sqp, abort_min_dim,
                 nodes, lvls, nchunk, entry, max_level, efc, nb0_out, upper_out):
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

    Reads ``nb0``/``upper`` and writes only ``nb0_out``/``upper_out`` (copies),
    one writer per list; dead nodes' own lists are cleared, so they are
    unreachable dead ends once the copies are published.
    """
    n = levels.size
    cap0 = nb0.shape[1]
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
        visited = np.zeros(n, dtype=np.uint32)
        epoch = np.zeros(1, dtype=np.int64)
        hd = np.empty(n + 1, dtype=np.float32)
        hi = np.empty(n + 1, dtype=np.int32)
        rd = np.empty(efc + 1, dtype=np.float32)
        ri = np.empty(efc + 1, dtype=np.int32)
        od = np.empty(efc + 1, dtype=np.float32)
        oi = np.empty(efc + 1, dtype=np.int32)
        q = np.empty(X.shape[1], dtype=np.float32)
        qv = np.empty(X.shape[1], dtype=np.float32)
        live = ~dead
        for p in range(ch * step, min(npairs, (ch + 1) * step)):
            u = nodes[p]
            level = lvls[p]
            mark = p + 1
            row = _row(level, u, nb0, upper, upper_off)
            cap = row.shape[0]
            stamp[u] = mark
            nc = _gather(row, u, dead, stamp, mark, cand, 0)
            for t in range(cap):
                v = row[t]
                if v < 0:
                    break
                if dead[v]:
                    nc = _gather(_row(level, v, nb0, upper, upper_off), u, dead, stamp, mark,
                                 cand, nc)
            if nc < cap:
                for t in range(cap):
                    v = row[t]
                    if v < 0:
                        break
                    if not dead[v]:
                        continue
                    r2 = _row(level, v, nb0, upper, upper_off)
                    for t2 in range(cap):
                        w = r2[t2]
                        if w < 0:
                            break
                        if dead[w]:
                            nc = _gather(_row(level, w, nb0, upper, upper_off), u, dead, stamp,
                                         mark, cand, nc)
            if nc < cap and entry >= 0:
                _node_query(X, u, sq, sqp, q)
                qc = prep_query(q, metric, sq, sqp, qv)
                cur = entry
                curd = dist_q_node(qv, X, cur, metric, sq, sqp, qc)
                cur, curd = greedy_descend(qv, qc, X, cur, curd, max_level, level, upper,
                                           upper_off, metric, sq, sqp)
                e = _next_epoch(visited, epoch, 0)
                nres = search_layer(qv, qc, X, level, nb0, upper, upper_off, cur, curd, efc,
                                    metric, sq, sqp, visited, e, hd, hi, rd, ri, live, True, 0,
                                    abort_min_dim)
                m = heap_to_sorted(rd, ri, nres, od, oi)
                for a in range(m):
                    w = oi[a]
                    if w != u and stamp[w] != mark and nc < maxc:
                        stamp[w] = mark
                        cand[nc] = w
                        nc += 1
            for a in range(nc):
                cdist[a] = dist_nodes(X, u, cand[a], metric, sq, sqp)
            order = np.argsort(cdist[:nc], kind="mergesort")
            for a in range(nc):
                sd[a] = cdist[order[a]]
                si[a] = cand[order[a]]
            nsel = select_heuristic(X, sd, si, nc, cap, metric, sq, sqp, sel, abort_min_dim)
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
            out = _row(level, u, nb0_out, upper_out, upper_off)
            for t in range(cap):
                out[t] = sel[t] if t < nsel else -1
    # dead nodes' own lists: cleared, so nothing is ever reached through them
    for u in range(n):
        if dead[u]:
            for level in range(levels[u]):
                out = _row(level, u, nb0_out, upper_out, upper_off)
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


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def add_back_links(X, nb0_old, upper_old, nb0, upper, upper_off, nodes, lvls, nlev, nchunk,
                   metric, sq, sqp, abort_min_dim):
    """For every link u -> w that repair created, add w -> u as an insertion
    would (pruning w's list with the heuristic when full).

    Links in HNSW are made in pairs at insertion; repair alone only rewrites
    the lists that named a dead node, so the nodes those lists now point to
    would not link back and the graph gets sparser around every deletion.
    Grouped by receiving list (sorted, one thread per group), so every list has
    one writer and the result does not depend on the thread count. Works in
    place on the unpublished copies ``nb0``/``upper``.
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
            old = _row(level, u, nb0_old, upper_old, upper_off)
            new = _row(level, u, nb0, upper, upper_off)
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
    apply_reverse_links(keys, srcs, nlev, nchunk, X, nb0, upper, upper_off, metric, sq, sqp,
                        abort_min_dim)
    return total
