"""hnswlib's neighbour loop, for comparison with voisin's two-pass loop (kept apart from
kernels.py so adding it did not invalidate that module's compiled cache).

voisin (and ``kernels.lever_search_one``) first collects a node's unvisited
neighbours, prefetching each one's vector, then scores them. hnswlib
(``searchBaseLayerST``) walks the list once: before handling neighbour j it
prefetches neighbour j+1's visited entry and first vector line, and scores j
immediately. Same graph, same visits, same results; only the memory-access
schedule differs. Epoch visited array, split layout; float vectors, or SQ8
codes with exact re-rank of the ef results (``sq``), as in kernels.py.
"""

import numpy as np
from numba import njit

from voisin.kernels import FASTMATH

from kernels import (METRIC_L2, _greedy, _max_pop, _max_push, _max_replace_top, _min_pop,
                     _min_push, dist, exact_cost, prefetch_elem, prefetch_row, prep_query)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _search0_interleaved(qv, qc, L, width, V, dv, ep, epd, ef, metric, sq, sq2, visited, epoch,
                         cd, ci, rd, ri, pf_lines):
    visited[ep] = epoch
    ncand = _min_push(cd, ci, 0, epd, ep)
    nres = _max_push(rd, ri, 0, epd, ep)
    pf_bytes = min(dv * V.itemsize, pf_lines * 64)
    while ncand > 0:
        c0 = cd[0]
        v0 = ci[0]
        if nres >= ef and c0 > rd[0]:
            break
        ncand = _min_pop(cd, ci, ncand)
        nxt = L[v0, 0]
        if nxt >= 0:
            prefetch_elem(visited, nxt)
            for off in range(0, pf_bytes, 64):
                prefetch_row(V, nxt, off)
        for t in range(width):
            v = nxt
            if v < 0:
                break
            nxt = L[v0, t + 1] if t + 1 < width else -1
            if nxt >= 0:
                prefetch_elem(visited, nxt)
                for off in range(0, pf_bytes, 64):
                    prefetch_row(V, nxt, off)
            if visited[v] == epoch:
                continue
            visited[v] = epoch
            c = dist(qv, V, v, 0, dv, metric, sq, sq2, qc)
            if nres < ef or c < rd[0]:
                ncand = _min_push(cd, ci, ncand, c, v)
                if nres < ef:
                    nres = _max_push(rd, ri, nres, c, v)
                else:
                    _max_replace_top(rd, ri, nres, c, v)
    return nres


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def interleaved_search_serial(xq, k, ef, L, width, V, dv, upper, upper_off, entry, max_level,
                              metric, sq, sqp, Xf, visited, epoch, cd, ci, rd, ri, qv, pf_lines,
                              D, I):
    worst = np.float32(3.4028234663852886e38)
    sq2 = sqp[2]
    for r in range(xq.shape[0]):
        q = xq[r]
        qc = prep_query(q, dv, metric, sq, sqp, qv)
        cur = entry
        curd = dist(qv, V, cur, 0, dv, metric, sq, sq2, qc)
        cur, curd = _greedy(qv, qc, V, 0, dv, cur, curd, max_level, upper, upper_off, metric,
                            sq, sq2)
        e = epoch[0] + 1
        if e >= 4294967295:
            visited[:] = 0
            e = 1
        epoch[0] = e
        nres = _search0_interleaved(qv, qc, L, width, V, dv, cur, curd, ef, metric, sq, sq2,
                                    visited, e, cd, ci, rd, ri, pf_lines)
        if sq:
            m = nres
            for u in range(m):
                cd[u] = exact_cost(q, Xf, ri[u], metric)
                ci[u] = ri[u]
            nres = 0
            for u in range(m):
                if nres < k:
                    nres = _max_push(rd, ri, nres, cd[u], ci[u])
                elif cd[u] < rd[0]:
                    _max_replace_top(rd, ri, nres, cd[u], ci[u])
        while nres > k:
            nres = _max_pop(rd, ri, nres)
        for t in range(k - 1, -1, -1):
            if t >= nres:
                I[r, t] = -1
                D[r, t] = worst if metric == METRIC_L2 else -worst
                continue
            c = rd[0]
            v = ri[0]
            nres = _max_pop(rd, ri, nres)
            I[r, t] = v
            D[r, t] = c if metric == METRIC_L2 else -c
