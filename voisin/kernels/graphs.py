"""Flat-graph search kernels: NN-Descent kNN graphs and NSG (FAISS's IndexNNDescentFlat,
IndexNSGFlat); their construction is in :mod:`voisin.kernels.graph_build`.

Both indexes keep one fixed-degree graph over float32 rows and search it with the same
greedy "candidate pool" walk (Fu et al. 2019, Dong et al. 2011): a sorted pool of
``L`` candidates, each expanded once, nearest first, until no unexpanded candidate is
left in the pool. The indexes differ in where the walk starts (NN-Descent: a fixed
random set of ``L`` nodes; NSG: the neighbours of one navigation node, topped up at
random) and in how the graph is made.

Distances are "smaller is better": squared L2 (metric flag 1), the negated inner
product for METRIC_INNER_PRODUCT (flag 0), as FAISS's NegativeDistanceComputer does, or
FAISS's further metrics (their own codes, ``arg`` = Lp's p; Jaccard, a similarity,
negated); the index negates similarities back. A NaN distance fails every comparison,
so it never enters a pool ahead of a number (the fastmath flags keep NaN semantics).
Graph arrays are int32, -1 marks an empty slot.

Randomness enters only through arrays and seeds the callers pass, so a search never
touches a random state and runs without the GIL from any number of threads.
"""

import numpy as np
from numba import njit

from . import FASTMATH
from .extra_metrics import JACCARD, pair
from .heap import heap_init, heap_push, heap_sort_inplace
from .hnsw_space import PREFETCH_LINES, prefetch_lines
from .mt19937 import seed as mt_seed
from .mt19937 import word as mt_word

_WORST = np.float32(3.4028234663852886e38)


@njit(cache=True, nogil=True, fastmath=FASTMATH, inline="always")
def _rdist(X, i, j, metric, arg):
    """Distance between stored rows i and j: squared L2 (metric 1), -<xi, xj> (0), or a
    further metric of kernels.extra_metrics (``arg``: Lp's p), Jaccard negated."""
    if metric > 1:
        v = pair(X[i], X[j], metric, arg)
        return -v if metric == JACCARD else v
    s = np.float32(0.0)
    if metric == 1:
        for t in range(X.shape[1]):
            v = X[i, t] - X[j, t]
            s += v * v
        return s
    for t in range(X.shape[1]):
        s += X[i, t] * X[j, t]
    return -s


@njit(cache=True, nogil=True, fastmath=FASTMATH, inline="always")
def _qdist(q, X, j, metric, arg):
    if metric > 1:
        v = pair(q, X[j], metric, arg)
        return -v if metric == JACCARD else v
    s = np.float32(0.0)
    if metric == 1:
        for t in range(X.shape[1]):
            v = q[t] - X[j, t]
            s += v * v
        return s
    for t in range(X.shape[1]):
        s += q[t] * X[j, t]
    return -s


@njit(cache=True, nogil=True)
def sample_distinct(N, size, out):
    """``size`` distinct ids of [0, N) into ``out`` (FAISS's gen_random scheme: sorted
    draws made strictly increasing, then rotated by a random offset). Uses numba's
    random state: call it from a seeded kernel only."""
    span = N - size
    for i in range(size):
        out[i] = np.random.randint(0, span) if span > 0 else 0
    out[:size].sort()
    for i in range(1, size):
        if out[i] <= out[i - 1]:
            out[i] = out[i - 1] + 1
    off = np.random.randint(0, N)
    for i in range(size):
        out[i] = (out[i] + off) % N


@njit(cache=True, nogil=True)
def faiss_gen_random(N, size, seed):
    """FAISS's ``gen_random(std::mt19937(seed), size, N)``: the ``size`` distinct starting
    nodes of every NNDescent::search, bit for bit (size == N: all nodes)."""
    out = np.empty(size, dtype=np.int32)
    if size >= N:
        for i in range(size):
            out[i] = i % N
        return out
    state = np.empty(625, dtype=np.uint32)
    mt_seed(state, seed)
    span = np.uint64(N - size)
    for i in range(size):
        out[i] = np.int32(np.uint64(mt_word(state)) % span)
    out.sort()
    for i in range(1, size):
        if out[i] <= out[i - 1]:
            out[i] = out[i - 1] + 1
    off = np.int64(np.uint64(mt_word(state)) % np.uint64(N))
    for i in range(size):
        out[i] = np.int32((np.int64(out[i]) + off) % N)
    return out


@njit(cache=True, nogil=True)
def faiss_rand_ints(seed, count, vmax):
    """``count`` draws of FAISS's ``RandomGenerator(seed).rand_int(vmax)``, i.e.
    ``mt() % vmax`` in faiss 1.15 (later versions switched to a multiply-shift range;
    tests/test_nsg.py pins the one the installed faiss uses)."""
    state = np.empty(625, dtype=np.uint32)
    mt_seed(state, seed)
    out = np.empty(count, dtype=np.int32)
    for i in range(count):
        out[i] = np.int32(np.uint64(mt_word(state)) % np.uint64(vmax))
    return out


# ---------------------------------------------------------------------------
# the candidate pool (sorted ascending, one spare slot at the end)
# ---------------------------------------------------------------------------

@njit(cache=True, nogil=True, inline="always")
def _pool_insert(pid, pd, pf, size, nid, nd):
    """Insert (nid, nd) into the first ``size`` sorted entries, dropping the last one;
    returns the position, or size + 1 when ``nid`` is already in the pool."""
    for t in range(size):
        if pid[t] == nid:
            return size + 1
    p = size
    while p > 0 and pd[p - 1] > nd:
        p -= 1
    if p >= size:
        return size
    for t in range(size - 1, p, -1):
        pid[t] = pid[t - 1]
        pd[t] = pd[t - 1]
        pf[t] = pf[t - 1]
    pid[p] = nid
    pd[p] = nd
    pf[p] = True
    return p


@njit(cache=True, nogil=True)
def _sort_pool(pid, pd, pf, size):
    order = np.argsort(pd[:size], kind="mergesort")
    a = pid[:size][order].copy()
    b = pd[:size][order].copy()
    c = pf[:size][order].copy()
    pid[:size] = a
    pd[:size] = b
    pf[:size] = c


# --- libstdc++'s std::sort of the initial NSG pool ------------------------------------------
# FAISS sorts the starting pool with std::sort, which is not stable: among equal distances
# (identical codes of a compressed storage) its order is the introsort's. These kernels
# replay GCC's introsort (median-of-three partition, heapsort past the depth limit, final
# insertion sort over runs of 16) so that ties come out in FAISS's order. The bound
# checks the C++ leaves out only matter for NaN distances (where it would run off).

@njit(cache=True, nogil=True, inline="always")
def _swap3(pid, pd, pf, a, b):
    pid[a], pid[b] = pid[b], pid[a]
    pd[a], pd[b] = pd[b], pd[a]
    pf[a], pf[b] = pf[b], pf[a]


@njit(cache=True, nogil=True)
def _adjust_heap(pid, pd, pf, first, hole, n, vid, vd, vf):
    top = hole
    child = hole
    while child < (n - 1) // 2:
        child = 2 * (child + 1)
        if pd[first + child] < pd[first + child - 1]:
            child -= 1
        pid[first + hole] = pid[first + child]
        pd[first + hole] = pd[first + child]
        pf[first + hole] = pf[first + child]
        hole = child
    if (n & 1) == 0 and child == (n - 2) // 2:
        child = 2 * (child + 1)
        pid[first + hole] = pid[first + child - 1]
        pd[first + hole] = pd[first + child - 1]
        pf[first + hole] = pf[first + child - 1]
        hole = child - 1
    parent = (hole - 1) // 2
    while hole > top and pd[first + parent] < vd:
        pid[first + hole] = pid[first + parent]
        pd[first + hole] = pd[first + parent]
        pf[first + hole] = pf[first + parent]
        hole = parent
        parent = (hole - 1) // 2
    pid[first + hole] = vid
    pd[first + hole] = vd
    pf[first + hole] = vf


@njit(cache=True, nogil=True)
def _heap_sort(pid, pd, pf, first, last):
    """std::__partial_sort(first, last, last): make_heap then sort_heap."""
    n = last - first
    if n >= 2:
        parent = (n - 2) // 2
        while True:
            _adjust_heap(pid, pd, pf, first, parent, n, pid[first + parent], pd[first + parent],
                         pf[first + parent])
            if parent == 0:
                break
            parent -= 1
    while last - first > 1:
        last -= 1
        vid, vd, vf = pid[last], pd[last], pf[last]
        pid[last], pd[last], pf[last] = pid[first], pd[first], pf[first]
        _adjust_heap(pid, pd, pf, first, 0, last - first, vid, vd, vf)


@njit(cache=True, nogil=True)
def _linear_insert(pid, pd, pf, i, lo):
    vid, vd, vf = pid[i], pd[i], pf[i]
    j = i - 1
    while j >= lo and vd < pd[j]:
        pid[j + 1] = pid[j]
        pd[j + 1] = pd[j]
        pf[j + 1] = pf[j]
        j -= 1
    pid[j + 1] = vid
    pd[j + 1] = vd
    pf[j + 1] = vf


@njit(cache=True, nogil=True)
def std_sort_pool(pid, pd, pf, size):
    """Sort the first ``size`` entries by distance exactly as GCC's std::sort does."""
    if size < 2:
        return
    lg = 0
    while (size >> (lg + 1)) > 0:
        lg += 1
    stack = np.empty((2 * lg + 8, 3), dtype=np.int64)
    stack[0, 0], stack[0, 1], stack[0, 2] = 0, size, 2 * lg
    top = 1
    while top > 0:
        top -= 1
        first, last, depth = stack[top, 0], stack[top, 1], stack[top, 2]
        while last - first > 16:
            if depth == 0:
                _heap_sort(pid, pd, pf, first, last)
                break
            depth -= 1
            # __move_median_to_first(first, first + 1, mid, last - 1)
            a, b, c = first + 1, first + (last - first) // 2, last - 1
            if pd[a] < pd[b]:
                m = b if pd[b] < pd[c] else (c if pd[a] < pd[c] else a)
            else:
                m = a if pd[a] < pd[c] else (c if pd[b] < pd[c] else b)
            _swap3(pid, pd, pf, first, m)
            # __unguarded_partition(first + 1, last, pivot = first)
            lo, hi = first + 1, last
            while True:
                while lo < last and pd[lo] < pd[first]:
                    lo += 1
                hi -= 1
                while hi > first and pd[first] < pd[hi]:
                    hi -= 1
                if not lo < hi:
                    break
                _swap3(pid, pd, pf, lo, hi)
                lo += 1
            # recurse on [cut, last), loop on [first, cut)
            stack[top, 0], stack[top, 1], stack[top, 2] = lo, last, depth
            top += 1
            last = lo
    # __final_insertion_sort
    for i in range(1, size):
        if i < 16 and pd[i] < pd[0]:
            vid, vd, vf = pid[i], pd[i], pf[i]
            for j in range(i, 0, -1):
                pid[j] = pid[j - 1]
                pd[j] = pd[j - 1]
                pf[j] = pf[j - 1]
            pid[0], pd[0], pf[0] = vid, vd, vf
        else:
            _linear_insert(pid, pd, pf, i, 0)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _expand(graph, X, q, metric, arg, pid, pd, pf, size, visited, epoch, full_id, full_d,
            nfull):
    """The greedy loop over a filled, sorted pool. With ``full_id`` of nonzero length
    every distance computed is also appended there (NSG's build collects them);
    returns the new fill of the collection."""
    collect = full_id.shape[0] > 0
    buf = np.empty(graph.shape[1], dtype=np.int64)
    k = 0
    while k < size:
        nk = size
        if pf[k]:
            pf[k] = False
            node = pid[k]
            # the unvisited neighbours' rows are all requested before the first
            # distance (as HNSW's walk does), so their cache misses overlap
            nnew = 0
            for m in range(graph.shape[1]):
                nb = graph[node, m]
                if nb < 0 or visited[nb] == epoch:
                    continue
                visited[nb] = epoch
                buf[nnew] = nb
                nnew += 1
                prefetch_lines(X, nb, PREFETCH_LINES)
            for u in range(nnew):
                nb = buf[u]
                dist = _qdist(q, X, nb, metric, arg)
                if collect:
                    full_id[nfull] = nb
                    full_d[nfull] = dist
                    nfull += 1
                if dist >= pd[size - 1]:
                    continue
                r = _pool_insert(pid, pd, pf, size, nb, dist)
                if r < nk:
                    nk = r
        if nk <= k:
            k = nk
        else:
            k += 1
    return nfull


@njit(cache=True, nogil=True)
def _next_epoch(visited, epoch):
    epoch += 1
    if epoch >= 2 ** 30:
        visited[:] = 0
        epoch = 1
    return epoch


@njit(cache=True, nogil=True, inline="always")
def _write_pool(pid, pd, size, k, qi, D, I):
    """Row ``qi`` of the results: the pool's first k entries, -1 / worst past its size."""
    for t in range(k):
        if t < size:
            I[qi, t] = pid[t]
            D[qi, t] = pd[t]
        else:
            I[qi, t] = -1
            D[qi, t] = _WORST


# ---------------------------------------------------------------------------
# NN-Descent search: the pool starts from fixed random nodes
# ---------------------------------------------------------------------------

@njit(cache=True, nogil=True, fastmath=FASTMATH)
def nndescent_search(graph, X, Q, metric, arg, init_ids, k, D, I):
    """Each query's pool starts from ``init_ids`` (its length is the pool size), as
    FAISS's NNDescent::search; the initial nodes are not marked visited (FAISS)."""
    n = X.shape[0]
    size = init_ids.shape[0]
    visited = np.zeros(n, dtype=np.int32)
    epoch = 0
    pid = np.empty(size + 1, dtype=np.int32)
    pd = np.empty(size + 1, dtype=np.float32)
    pf = np.empty(size + 1, dtype=np.bool_)
    none_i = np.empty(0, dtype=np.int32)
    none_d = np.empty(0, dtype=np.float32)
    for qi in range(Q.shape[0]):
        q = Q[qi]
        epoch = _next_epoch(visited, epoch)
        for t in range(size):
            pid[t] = init_ids[t]
            pd[t] = _qdist(q, X, init_ids[t], metric, arg)
            pf[t] = True
        _sort_pool(pid, pd, pf, size)
        _expand(graph, X, q, metric, arg, pid, pd, pf, size, visited, epoch, none_i, none_d, 0)
        _write_pool(pid, pd, size, k, qi, D, I)


# ---------------------------------------------------------------------------
# NSG walk: the pool starts at the navigation node's neighbours
# ---------------------------------------------------------------------------

@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _nsg_walk(graph, X, q, metric, arg, ep, size, fill, pid, pd, pf, visited, epoch,
              full_id, full_d):
    """FAISS's NSG::search_on_graph: the pool takes ``ep``'s first neighbours (up to the
    first empty slot; a repeated one is taken twice, as FAISS does), then the unvisited
    nodes of ``fill``, in order, until it holds ``size``; all are marked visited.
    Returns the number of (id, dist) collected in ``full_id`` / ``full_d``."""
    collect = full_id.shape[0] > 0
    n = X.shape[0]
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
        pd[t] = _qdist(q, X, pid[t], metric, arg)
        pf[t] = True
        if collect:
            full_id[nfull] = pid[t]
            full_d[nfull] = pd[t]
            nfull += 1
    std_sort_pool(pid, pd, pf, num)
    return _expand(graph, X, q, metric, arg, pid, pd, pf, num, visited, epoch, full_id, full_d,
                   nfull)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def nsg_search(graph, X, Q, metric, arg, ep, size, fill, k, D, I):
    n = X.shape[0]
    size = min(size, n)
    visited = np.zeros(n, dtype=np.int32)
    epoch = 0
    pid = np.empty(size + 1, dtype=np.int32)
    pd = np.empty(size + 1, dtype=np.float32)
    pf = np.empty(size + 1, dtype=np.bool_)
    none_i = np.empty(0, dtype=np.int32)
    none_d = np.empty(0, dtype=np.float32)
    for qi in range(Q.shape[0]):
        epoch = _next_epoch(visited, epoch)
        _nsg_walk(graph, X, Q[qi], metric, arg, ep, size, fill, pid, pd, pf, visited, epoch,
                  none_i, none_d)
        _write_pool(pid, pd, size, k, qi, D, I)


# ---------------------------------------------------------------------------
# filtered search: the walk as above, the results drawn from every node it scored
# ---------------------------------------------------------------------------

@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _allowed_topk(full_id, full_d, nfull, mask, taken, epoch, rd, ri, qi, D, I):
    """The k best allowed nodes among the ``nfull`` scored ones into row ``qi``
    (missing: id -1, distance inf); a node scored twice counts once."""
    heap_init(rd, ri)
    for t in range(nfull):
        nb = full_id[t]
        if mask[nb] and taken[nb] != epoch:
            taken[nb] = epoch
            heap_push(rd, ri, full_d[t], nb)
    heap_sort_inplace(rd, ri)
    for t in range(rd.shape[0]):
        I[qi, t] = ri[t]
        D[qi, t] = rd[t]


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def nndescent_search_filtered(graph, X, Q, metric, arg, init_ids, k, mask, D, I):
    """:func:`nndescent_search` whose results are the best nodes ``mask`` allows among
    all the walk scored (the walk itself goes through every node)."""
    n = X.shape[0]
    size = init_ids.shape[0]
    visited = np.zeros(n, dtype=np.int32)
    taken = np.zeros(n, dtype=np.int32)
    epoch = 0
    pid = np.empty(size + 1, dtype=np.int32)
    pd = np.empty(size + 1, dtype=np.float32)
    pf = np.empty(size + 1, dtype=np.bool_)
    full_id = np.empty(n + size + 1, dtype=np.int32)
    full_d = np.empty(n + size + 1, dtype=np.float32)
    rd = np.empty(k, dtype=np.float32)
    ri = np.empty(k, dtype=np.int64)
    for qi in range(Q.shape[0]):
        q = Q[qi]
        epoch = _next_epoch(visited, epoch)
        for t in range(size):
            pid[t] = init_ids[t]
            pd[t] = _qdist(q, X, init_ids[t], metric, arg)
            pf[t] = True
            full_id[t] = pid[t]
            full_d[t] = pd[t]
        _sort_pool(pid, pd, pf, size)
        nfull = _expand(graph, X, q, metric, arg, pid, pd, pf, size, visited, epoch, full_id,
                        full_d, size)
        _allowed_topk(full_id, full_d, nfull, mask, taken, epoch, rd, ri, qi, D, I)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def nsg_search_filtered(graph, X, Q, metric, arg, ep, size, fill, k, mask, D, I):
    """:func:`nsg_search` whose results are the best allowed nodes the walk scored."""
    n = X.shape[0]
    size = min(size, n)
    visited = np.zeros(n, dtype=np.int32)
    taken = np.zeros(n, dtype=np.int32)
    epoch = 0
    pid = np.empty(size + 1, dtype=np.int32)
    pd = np.empty(size + 1, dtype=np.float32)
    pf = np.empty(size + 1, dtype=np.bool_)
    full_id = np.empty(n + size + 1, dtype=np.int32)
    full_d = np.empty(n + size + 1, dtype=np.float32)
    rd = np.empty(k, dtype=np.float32)
    ri = np.empty(k, dtype=np.int64)
    for qi in range(Q.shape[0]):
        epoch = _next_epoch(visited, epoch)
        nfull = _nsg_walk(graph, X, Q[qi], metric, arg, ep, size, fill, pid, pd, pf, visited, epoch,
                          full_id, full_d)
        _allowed_topk(full_id, full_d, nfull, mask, taken, epoch, rd, ri, qi, D, I)
