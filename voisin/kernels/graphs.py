"""Flat-graph kernels: NN-Descent kNN graphs and NSG (FAISS's IndexNNDescentFlat, IndexNSGFlat).

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


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _expand(graph, X, q, metric, arg, pid, pd, pf, size, visited, epoch, full_id, full_d,
            nfull):
    """The greedy loop over a filled, sorted pool. With ``full_id`` of nonzero length
    every distance computed is also appended there (NSG's build collects them);
    returns the new fill of the collection."""
    collect = full_id.shape[0] > 0
    k = 0
    while k < size:
        nk = size
        if pf[k]:
            pf[k] = False
            node = pid[k]
            for m in range(graph.shape[1]):
                nb = graph[node, m]
                if nb < 0 or visited[nb] == epoch:
                    continue
                visited[nb] = epoch
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
        for t in range(k):
            if t < size:
                I[qi, t] = pid[t]
                D[qi, t] = pd[t]
            else:
                I[qi, t] = -1
                D[qi, t] = _WORST


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
    _sort_pool(pid, pd, pf, num)
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
        for t in range(k):
            if t < size:
                I[qi, t] = pid[t]
                D[qi, t] = pd[t]
            else:
                I[qi, t] = -1
                D[qi, t] = _WORST


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


# ---------------------------------------------------------------------------
# NN-Descent construction (Dong, Charikar, Li 2011; FAISS's NNDescent)
# ---------------------------------------------------------------------------

@njit(cache=True, nogil=True, inline="always")
def _heap_insert(hid, hd, hf, cnt, L, nid, nd):
    """Max-heap (on distance) pool of capacity L; FAISS's Nhood::insert. Returns the
    new count."""
    if nd != nd or (cnt > 0 and nd > hd[0]):  # a NaN distance never enters a pool
        return cnt
    for t in range(cnt):
        if hid[t] == nid:
            return cnt
    if cnt < L:
        p = cnt
        cnt += 1
    else:
        # replace the top, then sift down
        p = 0
        while True:
            c = 2 * p + 1
            if c >= cnt:
                break
            if c + 1 < cnt and hd[c + 1] > hd[c]:
                c += 1
            if hd[c] <= nd:
                break
            hid[p] = hid[c]
            hd[p] = hd[c]
            hf[p] = hf[c]
            p = c
        hid[p] = nid
        hd[p] = nd
        hf[p] = True
        return cnt
    # sift up from the new leaf
    while p > 0:
        parent = (p - 1) // 2
        if hd[parent] >= nd:
            break
        hid[p] = hid[parent]
        hd[p] = hd[parent]
        hf[p] = hf[parent]
        p = parent
    hid[p] = nid
    hd[p] = nd
    hf[p] = True
    return cnt


@njit(cache=True, nogil=True)
def _heapify(hid, hd, hf, cnt):
    _sort_pool(hid, hd, hf, cnt)
    # a descending array is a max-heap
    hid[:cnt] = hid[:cnt][::-1].copy()
    hd[:cnt] = hd[:cnt][::-1].copy()
    hf[:cnt] = hf[:cnt][::-1].copy()


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def nndescent_build(X, metric, arg, K, S, R, L, niter, seed):
    """An approximate K-NN graph (n, K) int32 of the rows of ``X`` (n > L required)."""
    n = X.shape[0]
    np.random.seed(seed)
    hid = np.empty((n, L), dtype=np.int32)
    hd = np.empty((n, L), dtype=np.float32)
    hf = np.zeros((n, L), dtype=np.bool_)
    cnt = np.zeros(n, dtype=np.int32)
    M = np.full(n, S, dtype=np.int32)
    cap_new = max(2 * S, S + R)
    cap_old = L + R
    nn_new = np.empty((n, cap_new), dtype=np.int32)
    n_new = np.zeros(n, dtype=np.int32)
    nn_old = np.empty((n, cap_old), dtype=np.int32)
    n_old = np.zeros(n, dtype=np.int32)
    rnn_new = np.empty((n, max(R, 1)), dtype=np.int32)
    r_new = np.zeros(n, dtype=np.int32)
    rnn_old = np.empty((n, max(R, 1)), dtype=np.int32)
    r_old = np.zeros(n, dtype=np.int32)
    worst = np.empty(n, dtype=np.float32)
    tmp = np.empty(max(2 * S, 1), dtype=np.int32)

    # init: 2S random join partners and S random pool entries per node
    for i in range(n):
        sample_distinct(n, 2 * S, tmp)
        nn_new[i, :2 * S] = tmp[:2 * S]
        n_new[i] = 2 * S
    for i in range(n):
        sample_distinct(n, S, tmp)
        c = 0
        for j in range(S):
            nid = tmp[j]
            if nid == i:
                continue
            hid[i, c] = nid
            hd[i, c] = _rdist(X, i, nid, metric, arg)
            hf[i, c] = True
            c += 1
        cnt[i] = c
        _heapify(hid[i], hd[i], hf[i], c)

    for _ in range(niter):
        # local join: pairs among the new partners, and new x old
        for v in range(n):
            for a in range(n_new[v]):
                i = nn_new[v, a]
                for b in range(n_new[v]):
                    j = nn_new[v, b]
                    if i < j:
                        dist = _rdist(X, i, j, metric, arg)
                        cnt[i] = _heap_insert(hid[i], hd[i], hf[i], cnt[i], L, j, dist)
                        cnt[j] = _heap_insert(hid[j], hd[j], hf[j], cnt[j], L, i, dist)
                for b in range(n_old[v]):
                    j = nn_old[v, b]
                    if i != j:
                        dist = _rdist(X, i, j, metric, arg)
                        cnt[i] = _heap_insert(hid[i], hd[i], hf[i], cnt[i], L, j, dist)
                        cnt[j] = _heap_insert(hid[j], hd[j], hf[j], cnt[j], L, i, dist)
        # update: sort pools, pick at most S new partners, sample reverse links
        for v in range(n):
            n_new[v] = 0
            n_old[v] = 0
            r_new[v] = 0
            r_old[v] = 0
        for v in range(n):
            c = cnt[v]
            _sort_pool(hid[v], hd[v], hf[v], c)
            worst[v] = hd[v, c - 1] if c > 0 else _WORST
            maxl = min(M[v] + S, c)
            cc = 0
            ll = 0
            while ll < maxl and cc < S:
                if hf[v, ll]:
                    cc += 1
                ll += 1
            M[v] = ll
        for v in range(n):
            for ll in range(M[v]):
                nid = hid[v, ll]
                dist = hd[v, ll]
                if hf[v, ll]:
                    nn_new[v, n_new[v]] = nid
                    n_new[v] += 1
                    if dist > worst[nid] and R > 0:
                        if r_new[nid] < R:
                            rnn_new[nid, r_new[nid]] = v
                            r_new[nid] += 1
                        else:
                            rnn_new[nid, np.random.randint(0, R)] = v
                    hf[v, ll] = False
                else:
                    nn_old[v, n_old[v]] = nid
                    n_old[v] += 1
                    if dist > worst[nid] and R > 0:
                        if r_old[nid] < R:
                            rnn_old[nid, r_old[nid]] = v
                            r_old[nid] += 1
                        else:
                            rnn_old[nid, np.random.randint(0, R)] = v
        for v in range(n):
            _heapify(hid[v], hd[v], hf[v], cnt[v])
            for t in range(r_new[v]):
                if n_new[v] < cap_new:
                    nn_new[v, n_new[v]] = rnn_new[v, t]
                    n_new[v] += 1
            for t in range(r_old[v]):
                nn_old[v, n_old[v]] = rnn_old[v, t]
                n_old[v] += 1
            if n_old[v] > 2 * R:
                n_old[v] = 2 * R

    out = np.empty((n, K), dtype=np.int32)
    for v in range(n):
        c = cnt[v]
        _sort_pool(hid[v], hd[v], hf[v], c)
        for j in range(K):
            if j < c:
                out[v, j] = hid[v, j]
            elif c > 0:
                out[v, j] = hid[v, j % c]  # repeats: a walk skips visited nodes
            else:
                out[v, j] = (v + 1) % n
    return out


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def exact_knn_graph(X, metric, arg, K):
    """The exact K-NN graph (n, K) int32, self excluded; rows of a set smaller than
    K + 1 repeat their neighbours (never -1, so FAISS can walk the file)."""
    n = X.shape[0]
    out = np.empty((n, K), dtype=np.int32)
    dist = np.empty(n, dtype=np.float32)
    others = np.empty(max(n - 1, 1), dtype=np.int64)
    for i in range(n):
        for j in range(n):
            dist[j] = _rdist(X, i, j, metric, arg)
        order = np.argsort(dist, kind="mergesort")  # NaN distances last
        have = 0
        for j in range(n):
            if order[j] != i:
                others[have] = order[j]
                have += 1
        for j in range(K):
            out[i, j] = others[j % have] if have > 0 else i
    return out


# ---------------------------------------------------------------------------
# NSG construction (FAISS's NSG::build)
# ---------------------------------------------------------------------------

@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _occlude_prune(X, metric, arg, q, cand_id, cand_d, ncand, R, C, out_id, out_d):
    """The MRNG edge selection of node ``q`` over sorted candidates (the first is kept;
    ``q`` itself never is); returns how many were kept."""
    nres = 0
    start = 0
    out_id[nres] = cand_id[start]
    out_d[nres] = cand_d[start]
    nres += 1
    while nres < R:
        start += 1
        if start >= ncand or start >= C:
            break
        p = cand_id[start]
        pdist = cand_d[start]
        occlude = p == q
        for t in range(nres):
            if p == out_id[t]:
                occlude = True
                break
            if _rdist(X, out_id[t], p, metric, arg) < pdist:
                occlude = True
                break
        if not occlude:
            out_id[nres] = p
            out_d[nres] = pdist
            nres += 1
    return nres


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _dfs(graph, root, visited, cnt):
    """FAISS's NSG::dfs (first unvisited neighbour, iterative); returns the count."""
    n = graph.shape[0]
    stack = np.empty(n + 1, dtype=np.int32)
    top = 0
    stack[top] = root
    top += 1
    node = root
    if not visited[root]:
        cnt += 1
    visited[root] = True
    while top > 0:
        nxt = -1
        for i in range(graph.shape[1]):
            nb = graph[node, i]
            if nb >= 0 and not visited[nb]:
                nxt = nb
                break
        if nxt < 0:
            top -= 1
            if top == 0:
                break
            node = stack[top - 1]
            continue
        node = nxt
        visited[node] = True
        stack[top] = node
        top += 1
        cnt += 1
    return cnt


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def nsg_build(X, metric, arg, knn, R, L, C, search_L, ep0, fill):
    """FAISS's NSG build over the K-NN graph ``knn``: navigation node, per-node search
    and MRNG pruning, reverse links, then DFS attachments until every node is
    reachable from the navigation node (the node nearest the centroid; ``ep0`` is the
    first one tried, and wins ties). ``fill`` lists the nodes that top up initial pools
    (FAISS's random stream, then every node). Returns
    (graph (n, R) int32 with -1 padding, navigation node, attached count)."""
    n, d = X.shape
    center = np.zeros(d, dtype=np.float32)
    for i in range(n):
        for t in range(d):
            center[t] += X[i, t]
    for t in range(d):
        center[t] /= n
    size = min(L, n)
    pid = np.empty(max(size, search_L, 1) + 1, dtype=np.int32)
    pd = np.empty(pid.shape[0], dtype=np.float32)
    pf = np.empty(pid.shape[0], dtype=np.bool_)
    visited = np.zeros(n, dtype=np.int32)
    epoch = 1
    # the navigation node: FAISS takes the best node a walk of the k-NN graph from a
    # random node finds; on clustered data that walk stays in the random node's
    # cluster, so voisin scans for the node nearest the centroid (one pass over X)
    ep = ep0
    best = _qdist(center, X, ep0, metric, arg)
    for i in range(n):
        dc = _qdist(center, X, i, metric, arg)
        if dc < best:
            best = dc
            ep = i

    # link: a search from the navigation node collects candidates, plus the K-NN
    full_id = np.empty(n + knn.shape[1] + 1, dtype=np.int32)
    full_d = np.empty(n + knn.shape[1] + 1, dtype=np.float32)
    cand_id = np.empty(full_id.shape[0], dtype=np.int32)
    cand_d = np.empty(full_id.shape[0], dtype=np.float32)
    g_id = np.full((n, R), -1, dtype=np.int32)
    g_d = np.zeros((n, R), dtype=np.float32)
    res_id = np.empty(R + 1, dtype=np.int32)
    res_d = np.empty(R + 1, dtype=np.float32)
    for i in range(n):
        epoch = _next_epoch(visited, epoch)
        nfull = _nsg_walk(knn, X, X[i], metric, arg, ep, size, fill, pid, pd, pf, visited, epoch,
                          full_id, full_d)
        for j in range(knn.shape[1]):
            nb = knn[i, j]
            if nb < 0 or nb >= n or visited[nb] == epoch:
                continue
            full_id[nfull] = nb
            full_d[nfull] = _rdist(X, i, nb, metric, arg)
            nfull += 1
        order = np.argsort(full_d[:nfull], kind="mergesort")
        for t in range(nfull):
            cand_id[t] = full_id[order[t]]
            cand_d[t] = full_d[order[t]]
        start = 1 if nfull > 0 and cand_id[0] == i else 0
        nres = 0
        if start < nfull:
            nres = _occlude_prune(X, metric, arg, i, cand_id[start:], cand_d[start:], nfull - start,
                                  R, C - start, res_id, res_d)
        for t in range(nres):
            g_id[i, t] = res_id[t]
            g_d[i, t] = res_d[t]

    # reverse links: q becomes a candidate of each of its neighbours
    tp_id = np.empty(R + 1, dtype=np.int32)
    tp_d = np.empty(R + 1, dtype=np.float32)
    for q in range(n):
        for s in range(R):
            des = g_id[q, s]
            if des < 0:
                break
            dq = g_d[q, s]
            dup = False
            m = 0
            for j in range(R):
                o = g_id[des, j]
                if o < 0:
                    break
                if o == q:
                    dup = True
                    break
                tp_id[m] = o
                tp_d[m] = g_d[des, j]
                m += 1
            if dup:
                continue
            if m < R:
                g_id[des, m] = q
                g_d[des, m] = dq
                continue
            tp_id[m] = q
            tp_d[m] = dq
            m += 1
            order = np.argsort(tp_d[:m], kind="mergesort")
            sid = tp_id[:m][order].copy()
            sd = tp_d[:m][order].copy()
            nres = _occlude_prune(X, metric, arg, des, sid, sd, m, R, m + 1, res_id, res_d)
            # as FAISS: the kept edges overwrite the first slots, the rest stay
            for t in range(nres):
                g_id[des, t] = res_id[t]
                g_d[des, t] = res_d[t]

    graph = np.full((n, R), -1, dtype=np.int32)
    degrees = np.zeros(n, dtype=np.int32)
    for i in range(n):
        c = 0
        for j in range(R):
            if g_id[i, j] >= 0:
                graph[i, c] = g_id[i, j]
                c += 1
        degrees[i] = c

    # tree grow: attach every node the navigation node cannot reach
    reached = np.zeros(n, dtype=np.bool_)
    root = ep
    cnt = 0
    attached = 0
    ssize = min(max(search_L, 1), n)
    while True:
        cnt = _dfs(graph, root, reached, cnt)
        if cnt >= n:
            break
        lone = -1
        for i in range(n):
            if not reached[i]:
                lone = i
                break
        if lone < 0:
            break
        epoch = _next_epoch(visited, epoch)
        nfull = _nsg_walk(graph, X, X[lone], metric, arg, ep, ssize, fill, pid, pd, pf, visited,
                          epoch, full_id, full_d)
        order = np.argsort(full_d[:nfull], kind="mergesort")
        # the nearest node with a free slot; unlike FAISS it must be reachable itself
        # (FAISS may pick a node the walk's random top-up found, which leaves both
        # unreachable)
        node = -1
        near = -1
        for t in range(nfull):
            c = full_id[order[t]]
            if not reached[c] or c == lone:
                continue
            if near < 0:
                near = c
            if degrees[c] < R:
                node = c
                break
        if node < 0:
            # any reached node with a free slot (FAISS draws at random until one is)
            for t in range(fill.shape[0]):
                c = fill[t]
                if reached[c] and degrees[c] < R and c != lone:
                    node = c
                    break
        if node >= 0:
            graph[node, degrees[node]] = lone
            degrees[node] += 1
        else:
            # every reachable node is full (FAISS would loop for ever): the nearest one
            # hands its last edge to the lone node, which links on to that edge's end,
            # so nothing reachable becomes unreachable
            node = near if near >= 0 else ep
            moved = graph[node, R - 1]
            graph[node, R - 1] = lone
            if moved != lone:
                if degrees[lone] < R:
                    graph[lone, degrees[lone]] = moved
                    degrees[lone] += 1
                else:
                    graph[lone, R - 1] = moved
        root = node
        attached += 1
    return graph, ep, attached
