"""HNSW over binary codes (FAISS's IndexBinaryHNSW): Hamming walks, links and pruning.

The graph has the float HNSW's split layout (:mod:`voisin.kernels.hnsw`):
``nb0`` (n, 2M) level-0 lists, ``upper`` (rows, M) lists of levels >= 1 with
node i's level-l row at ``upper_off[i] + l - 1``, ``levels[i]`` = level + 1,
-1 ending a list. The float kernels reach vectors through a space whose query
is a float buffer; a Hamming query is a row of machine words, so this module
walks codes directly. It keeps their ideas: epoch-marked visited arrays, the
heaps of :mod:`voisin.kernels.heap` (float32 costs, int32 nodes: the same
compiled heap functions as the float graphs), the neighbour heuristic.

A query is row ``qi`` of a word array ``Q``; inserting node v uses ``Q = X``,
``qi = v``. Insertion is serial (one node after another, as FAISS's build
with one thread), so a graph is the same on every machine.
"""

import numpy as np
from numba import njit

from .hamming import MISSING, hamming
from .heap import max_drain_sorted, max_push, max_replace_top, min_pop, min_push


@njit(cache=True, nogil=True)
def _cost(Q, qi, X, j):
    return np.float32(hamming(Q, qi, X, j))


@njit(cache=True, nogil=True)
def _next_epoch(visited, epoch):
    e = epoch[0] + 1
    if e >= 4294967295:
        visited[:] = 0
        e = 1
    epoch[0] = e
    return e


@njit(cache=True, nogil=True)
def _greedy(Q, qi, X, upper, upper_off, cur, curd, top, stop):
    """Beam-1 descent from ``cur`` through levels top .. stop+1."""
    for level in range(top, stop, -1):
        changed = True
        while changed:
            changed = False
            r = upper_off[cur] + level - 1
            for t in range(upper.shape[1]):
                v = upper[r, t]
                if v < 0:
                    break
                c = _cost(Q, qi, X, v)
                if c < curd:
                    curd = c
                    cur = v
                    changed = True
    return cur, curd


@njit(cache=True, nogil=True)
def _search_layer(Q, qi, X, nb0, upper, upper_off, level, ep, epd, ef, visited, epoch,
                  cd, ci, rd, ri, mask, use_mask):
    """Best-first search of one level; the ``ef`` best (allowed) nodes end in the
    max-heap rd/ri, whose size is returned. Every node may be traversed."""
    e = _next_epoch(visited, epoch)
    visited[ep] = e
    nres = np.int64(0)
    ncand = min_push(cd, ci, nres, epd, np.int32(ep))
    if not use_mask or mask[ep]:
        nres = max_push(rd, ri, nres, epd, np.int32(ep))
    width = nb0.shape[1] if level == 0 else upper.shape[1]
    while ncand > 0:
        c0 = cd[0]
        v0 = ci[0]
        if nres >= ef and c0 > rd[0]:
            break
        ncand = min_pop(cd, ci, ncand)
        r = np.int64(v0) if level == 0 else upper_off[v0] + level - 1
        for t in range(width):
            v = nb0[r, t] if level == 0 else upper[r, t]
            if v < 0:
                break
            if visited[v] == e:
                continue
            visited[v] = e
            c = _cost(Q, qi, X, v)
            # Hamming distances tie a lot: a node as far as the worst result is
            # still explored (its neighbours may be closer), only not kept
            if nres < ef or c <= rd[0]:
                ncand = min_push(cd, ci, ncand, c, v)
                if not use_mask or mask[v]:
                    if nres < ef:
                        nres = max_push(rd, ri, nres, c, v)
                    elif c < rd[0]:
                        max_replace_top(rd, ri, nres, c, v)
    return nres


@njit(cache=True, nogil=True)
def _select(X, cand_d, cand_i, ncand, mmax, out):
    """The neighbour heuristic (FAISS's ``shrink_neighbor_list``): candidates by
    ascending cost, each kept when no kept neighbour is closer to it than the base
    point is. Writes up to ``mmax`` ids into ``out``; returns how many."""
    nsel = 0
    for a in range(ncand):
        if nsel >= mmax:
            break
        v = cand_i[a]
        good = True
        for b in range(nsel):
            if _cost(X, v, X, out[b]) < cand_d[a]:
                good = False
                break
        if good:
            out[nsel] = v
            nsel += 1
    return nsel


@njit(cache=True, nogil=True)
def _add_link(X, nb0, upper, upper_off, level, src, dst, pd, pi, sd, si):
    """Link ``src -> dst`` at ``level``; a full list is re-pruned by the heuristic.
    ``pd/pi`` (heap) and ``sd/si`` (sorted) are scratch of 2M + 1 entries."""
    if level == 0:
        row = nb0[src]
    else:
        row = upper[upper_off[src] + level - 1]
    width = row.shape[0]
    for t in range(width):
        if row[t] == dst:
            return
        if row[t] < 0:
            row[t] = dst
            return
    # full: order (existing + new) by distance to src, keep the heuristic's choice
    n = np.int64(0)
    for t in range(width):
        n = min_push(pd, pi, n, _cost(X, src, X, row[t]), row[t])
    n = min_push(pd, pi, n, _cost(X, src, X, dst), np.int32(dst))
    m = n
    for t in range(m):
        sd[t] = pd[0]
        si[t] = pi[0]
        n = min_pop(pd, pi, n)
    nsel = _select(X, sd, si, m, width, row)
    for t in range(nsel, width):
        row[t] = -1


@njit(cache=True, nogil=True)
def insert_nodes(X, order, nb0, upper, upper_off, levels, state, efc,
                 visited, epoch, cd, ci, rd, ri):
    """Link the nodes ``order`` (rows of ``X``) into the graph, one after another
    (FAISS's order: highest levels first, so the upper levels exist before the
    bulk of level 0 is linked). ``state`` = [entry point, max level] is updated
    in place."""
    nomask = np.zeros(1, dtype=np.bool_)
    width0 = nb0.shape[1]
    sel = np.empty(width0, dtype=np.int32)
    sorted_d = np.empty(rd.shape[0], dtype=np.float32)
    sorted_i = np.empty(rd.shape[0], dtype=np.int32)
    pd = np.empty(width0 + 1, dtype=np.float32)
    pi = np.empty(width0 + 1, dtype=np.int32)
    sd = np.empty(width0 + 1, dtype=np.float32)
    si = np.empty(width0 + 1, dtype=np.int32)
    for o in range(order.shape[0]):
        v = order[o]
        lv = levels[v] - 1
        if state[0] < 0:
            state[0] = v
            state[1] = lv
            continue
        ep = np.int32(state[0])
        top = state[1]
        epd = _cost(X, v, X, ep)
        ep, epd = _greedy(X, v, X, upper, upper_off, ep, epd, top, lv)
        for level in range(min(lv, top), -1, -1):
            nres = _search_layer(X, v, X, nb0, upper, upper_off, level, ep, epd, efc,
                                 visited, epoch, cd, ci, rd, ri, nomask, False)
            nres = max_drain_sorted(rd, ri, nres, sorted_d, sorted_i)
            mmax = width0 if level == 0 else upper.shape[1]
            nsel = _select(X, sorted_d, sorted_i, nres, mmax, sel)
            for t in range(nsel):
                _add_link(X, nb0, upper, upper_off, level, np.int64(v), np.int64(sel[t]),
                          pd, pi, sd, si)
            for t in range(nsel):
                _add_link(X, nb0, upper, upper_off, level, np.int64(sel[t]), np.int64(v),
                          pd, pi, sd, si)
            if nres > 0:
                ep = sorted_i[0]
                epd = sorted_d[0]
        if lv > top:
            state[0] = v
            state[1] = lv


@njit(cache=True, nogil=True)
def search_knn(Q, X, nb0, upper, upper_off, entry, max_level, ef, q0, q1, mask, use_mask,
               visited, epoch, cd, ci, rd, ri, D, I):
    """k-NN of queries q0..q1-1: greedy descent, then an ``ef``-wide level-0 search;
    the k best (allowed) results go to D (int32) / I (int64), ascending."""
    k = D.shape[1]
    outd = np.empty(rd.shape[0], dtype=np.float32)
    outi = np.empty(rd.shape[0], dtype=np.int32)
    for i in range(q0, q1):
        ep = np.int32(entry)
        epd = _cost(Q, i, X, ep)
        ep, epd = _greedy(Q, i, X, upper, upper_off, ep, epd, max_level, 0)
        nres = _search_layer(Q, i, X, nb0, upper, upper_off, 0, ep, epd, ef, visited, epoch,
                             cd, ci, rd, ri, mask, use_mask)
        nres = max_drain_sorted(rd, ri, nres, outd, outi)
        for t in range(k):
            if t < nres:
                D[i, t] = np.int32(outd[t])
                I[i, t] = outi[t]
            else:
                D[i, t] = MISSING
                I[i, t] = -1
