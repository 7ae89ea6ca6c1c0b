"""Flat-graph construction kernels: the NN-Descent k-NN graph (Dong, Charikar, Li 2011;
FAISS's NNDescent), the exact k-NN graph of small sets, and NSG's pruning,
navigation and connectivity repair (Fu et al. 2019; FAISS's NSG). The distances,
the candidate pool and its walk are shared with the search in :mod:`voisin.kernels.graphs`.
"""

import numpy as np
from numba import njit

from . import FASTMATH
from .graphs import _WORST, _next_epoch, _nsg_walk, _qdist, _rdist, _sort_pool, sample_distinct


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
