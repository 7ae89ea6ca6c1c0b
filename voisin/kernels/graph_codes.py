"""NSG search over codes: the walk of :mod:`voisin.kernels.graphs` (FAISS's
NSG::search_on_graph) through a *space* of :mod:`voisin.kernels.hnsw_space`, so an
IndexNSGPQ walks 8-bit PQ codes through the query's distance table (FAISS's ADC) and
an IndexNSGSQ walks 8-bit SQ codes, without decoding the stored vectors.

Costs are "smaller is better" as in graphs.py: squared L2 (metric 1) or minus the
inner product (metric 0); the index negates similarities back. ``mask`` of length 0
means no filter; otherwise the results are the best allowed nodes among all the walk
scored (graphs.py's filtered scheme).
"""

import numpy as np
from numba import njit

from . import FASTMATH
from .graphs import _allowed_topk, _next_epoch, _pool_insert, _write_pool, std_sort_pool
from .hnsw_space import PQSpace, SQ8Space, prepare_query, query_cost, query_width


@njit(cache=True, nogil=True, fastmath=FASTMATH, inline="always")
def _walk(graph, space, qv, qc, metric, ep, size, fill, pid, pd, pf, visited, epoch,
          full_id, full_d):
    """graphs._nsg_walk with the cost of a prepared query: the pool takes ``ep``'s first
    neighbours, then unvisited nodes of ``fill``, then the greedy expansion. Returns the
    number of (id, cost) pairs collected into ``full_id`` / ``full_d`` (none when they
    are empty)."""
    collect = full_id.shape[0] > 0
    n = graph.shape[0]
    num = 0
    for m in range(graph.shape[1]):
        if num >= size:
            break
        nb = graph[ep, m]
        if nb < 0 or nb >= n:
            break
        pid[num] = nb
        visited[nb] = epoch
        num += 1
    t = 0
    while num < size and t < fill.shape[0]:
        nb = fill[t]
        t += 1
        if visited[nb] == epoch:
            continue
        pid[num] = nb
        visited[nb] = epoch
        num += 1
    nfull = 0
    for t in range(num):
        pd[t] = query_cost(space, qv, qc, pid[t], metric)
        pf[t] = True
        if collect:
            full_id[nfull] = pid[t]
            full_d[nfull] = pd[t]
            nfull += 1
    std_sort_pool(pid, pd, pf, num)
    k = 0
    while k < num:
        nk = num
        if pf[k]:
            pf[k] = False
            node = pid[k]
            for m in range(graph.shape[1]):
                nb = graph[node, m]
                if nb < 0 or visited[nb] == epoch:
                    continue
                visited[nb] = epoch
                dist = query_cost(space, qv, qc, nb, metric)
                if collect:
                    full_id[nfull] = nb
                    full_d[nfull] = dist
                    nfull += 1
                if dist >= pd[num - 1]:
                    continue
                r = _pool_insert(pid, pd, pf, num, nb, dist)
                if r < nk:
                    nk = r
        if nk <= k:
            k = nk
        else:
            k += 1
    return nfull


@njit(cache=True, nogil=True, fastmath=FASTMATH, inline="always")
def _search(space, graph, Q, metric, ep, size, fill, k, mask, D, I):
    n = graph.shape[0]
    size = min(size, n)
    visited = np.zeros(n, dtype=np.int32)
    epoch = 0
    pid = np.empty(size + 1, dtype=np.int32)
    pd = np.empty(size + 1, dtype=np.float32)
    pf = np.empty(size + 1, dtype=np.bool_)
    qv = np.empty(query_width(space), dtype=np.float32)
    filtered = mask.shape[0] > 0
    cap = n + size + 1 if filtered else 0
    full_id = np.empty(cap, dtype=np.int32)
    full_d = np.empty(cap, dtype=np.float32)
    taken = np.zeros(n if filtered else 0, dtype=np.int32)
    rd = np.empty(k, dtype=np.float32)
    ri = np.empty(k, dtype=np.int64)
    for qi in range(Q.shape[0]):
        epoch = _next_epoch(visited, epoch)
        qc = prepare_query(space, Q[qi], metric, qv)
        nfull = _walk(graph, space, qv, qc, metric, ep, size, fill, pid, pd, pf, visited,
                      epoch, full_id, full_d)
        if filtered:
            _allowed_topk(full_id, full_d, nfull, mask, taken, epoch, rd, ri, qi, D, I)
        else:
            _write_pool(pid, pd, size, k, qi, D, I)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def nsg_search_pq(graph, codes, cent, Q, metric, ep, size, fill, k, mask, D, I):
    """NSG search over (n, M) 8-bit PQ codes with (M, 256, dsub) centroids."""
    sdc = np.zeros((1, 1, 1), dtype=np.float32)  # node-to-node costs: not used by a search
    _search(PQSpace(codes, cent, sdc), graph, Q, metric, ep, size, fill, k, mask, D, I)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def nsg_search_sq8(graph, codes, sqp, Q, metric, ep, size, fill, k, mask, D, I):
    """NSG search over (n, d) 8-bit SQ codes; ``sqp`` (3, d): cell start, step, step^2."""
    _search(SQ8Space(codes, sqp), graph, Q, metric, ep, size, fill, k, mask, D, I)
