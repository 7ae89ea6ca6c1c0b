"""IVF kernels: coarse assignment and the scan of inverted lists.

Inverted lists live in one slab (see ``voisin.indexes.ivf.InvertedLists``):
list ``l`` occupies rows ``offsets[l] .. offsets[l] + sizes[l]`` of the codes
and ids arrays, so scanning a list is a contiguous walk. For IVF-Flat the
codes are the raw float32 vectors (a (rows, d) float32 view of the slab).

Costs are "smaller is better" as in ``heap.py``: the L2 distance or minus the
inner product. ``probe`` matrices hold list numbers (-1 = none).

Two entry points per codec:

* ``*_batch``: many queries, coarse assignment done before (BLAS), parallel
  over queries, one heap per query written straight into the output arrays.
* ``*_single``: one thread, the coarse assignment fused in (a scan over the
  centroids), for the one-query-per-call case where call overhead dominates.
"""

import numpy as np
from numba import njit, prange

from ..metric import METRIC_L2
from . import FASTMATH
from .heap import finalize_heap, heap_init, heap_replace_top, heap_sort_inplace


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def coarse_probe(q, cent, cnorm, metric, nprobe, pd, pi):
    """The ``nprobe`` best centroids of one query by a direct scan, sorted.

    L2 uses ||c||^2 - 2 q.c (the ||q||^2 term does not change the order), so
    ``pd`` holds distances minus ||q||^2; IP costs are -q.c.
    """
    nlist, d = cent.shape
    heap_init(pd, pi)
    thr = pd[0]
    for c in range(nlist):
        s = np.float32(0.0)
        for t in range(d):
            s += q[t] * cent[c, t]
        if metric == METRIC_L2:
            cost = cnorm[c] - 2.0 * s
        else:
            cost = -s
        if cost < thr:
            heap_replace_top(pd, pi, cost, c)
            thr = pd[0]
    heap_sort_inplace(pd, pi)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _scan_flat(q, vecs, ids, o, s, metric, rd, ri, mask, use_mask):
    d = q.shape[0]
    thr = rd[0]
    if metric == METRIC_L2:
        for j in range(o, o + s):
            acc = np.float32(0.0)
            for t in range(d):
                e = q[t] - vecs[j, t]
                acc += e * e
            if acc < thr:
                if use_mask and not mask[j]:
                    continue
                heap_replace_top(rd, ri, acc, ids[j])
                thr = rd[0]
    else:
        for j in range(o, o + s):
            acc = np.float32(0.0)
            for t in range(d):
                acc += q[t] * vecs[j, t]
            if -acc < thr:
                if use_mask and not mask[j]:
                    continue
                heap_replace_top(rd, ri, -acc, ids[j])
                thr = rd[0]


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _flat_query(q, probe, vecs, ids, offsets, sizes, metric, max_codes, mask, use_mask, rd, ri):
    heap_init(rd, ri)
    scanned = 0
    for p in range(probe.shape[0]):
        l = probe[p]
        if l < 0:
            continue
        s = sizes[l]
        if s == 0:
            continue
        _scan_flat(q, vecs, ids, offsets[l], s, metric, rd, ri, mask, use_mask)
        scanned += s
        if max_codes > 0 and scanned >= max_codes:
            break


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def flat_search_batch(xq, probes, vecs, ids, offsets, sizes, metric, max_codes, mask, use_mask,
                      worst, D, I):
    """k-NN over the probed lists of each query (rows of ``probes``), in parallel."""
    for i in prange(xq.shape[0]):
        _flat_query(xq[i], probes[i], vecs, ids, offsets, sizes, metric, max_codes, mask, use_mask,
                    D[i], I[i])
        finalize_heap(D[i], I[i], metric, worst)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def probe_from_products(g, cnorm, metric, pd, pi):
    """The best lists of one query from its inner products ``g`` with the
    centroids (a row of a BLAS product), sorted; same costs as :func:`coarse_probe`."""
    heap_init(pd, pi)
    thr = pd[0]
    for c in range(g.shape[0]):
        cost = cnorm[c] - 2.0 * g[c] if metric == METRIC_L2 else -g[c]
        if cost < thr:
            heap_replace_top(pd, pi, cost, c)
            thr = pd[0]
    heap_sort_inplace(pd, pi)


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def flat_search_gemm(xq, G, cnorm, nprobe, vecs, ids, offsets, sizes, metric, max_codes, mask,
                     use_mask, worst, D, I):
    """Batch search where ``G`` = queries x centroids inner products (BLAS):
    probe selection and list scan in one parallel launch, so threads are
    handed over between BLAS and numba once per block, not per step."""
    for i in prange(xq.shape[0]):
        pd = np.empty(nprobe, dtype=np.float32)
        pi = np.empty(nprobe, dtype=np.int64)
        probe_from_products(G[i], cnorm, metric, pd, pi)
        _flat_query(xq[i], pi, vecs, ids, offsets, sizes, metric, max_codes, mask, use_mask,
                    D[i], I[i])
        finalize_heap(D[i], I[i], metric, worst)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def flat_search_single(xq, cent, cnorm, nprobe, vecs, ids, offsets, sizes, metric, max_codes,
                       mask, use_mask, worst, D, I):
    """Serial search with the coarse assignment fused in (flat quantizer)."""
    pd = np.empty(nprobe, dtype=np.float32)
    pi = np.empty(nprobe, dtype=np.int64)
    for i in range(xq.shape[0]):
        coarse_probe(xq[i], cent, cnorm, metric, nprobe, pd, pi)
        _flat_query(xq[i], pi, vecs, ids, offsets, sizes, metric, max_codes, mask, use_mask,
                    D[i], I[i])
        finalize_heap(D[i], I[i], metric, worst)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _flat_dist(q, vecs, j, metric):
    acc = np.float32(0.0)
    if metric == METRIC_L2:
        for t in range(q.shape[0]):
            e = q[t] - vecs[j, t]
            acc += e * e
    else:
        for t in range(q.shape[0]):
            acc += q[t] * vecs[j, t]
    return acc


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def flat_range_search(xq, probes, vecs, ids, offsets, sizes, metric, radius, max_codes, mask,
                      use_mask):
    """All vectors of the probed lists within ``radius`` (L2: < r; IP: > r).

    Two passes per query (count, then fill) so the output is allocated once.
    """
    nq = xq.shape[0]
    counts = np.zeros(nq, dtype=np.int64)
    for i in prange(nq):
        n = 0
        scanned = 0
        for p in range(probes.shape[1]):
            l = probes[i, p]
            if l < 0:
                continue
            o = offsets[l]
            for j in range(o, o + sizes[l]):
                if use_mask and not mask[j]:
                    continue
                v = _flat_dist(xq[i], vecs, j, metric)
                if (metric == METRIC_L2 and v < radius) or (metric != METRIC_L2 and v > radius):
                    n += 1
            scanned += sizes[l]
            if max_codes > 0 and scanned >= max_codes:
                break
        counts[i] = n
    lims = np.zeros(nq + 1, dtype=np.int64)
    for i in range(nq):
        lims[i + 1] = lims[i] + counts[i]
    D = np.empty(lims[nq], dtype=np.float32)
    I = np.empty(lims[nq], dtype=np.int64)
    for i in prange(nq):
        w = lims[i]
        scanned = 0
        for p in range(probes.shape[1]):
            l = probes[i, p]
            if l < 0:
                continue
            o = offsets[l]
            for j in range(o, o + sizes[l]):
                if use_mask and not mask[j]:
                    continue
                v = _flat_dist(xq[i], vecs, j, metric)
                if (metric == METRIC_L2 and v < radius) or (metric != METRIC_L2 and v > radius):
                    D[w] = v
                    I[w] = ids[j]
                    w += 1
            scanned += sizes[l]
            if max_codes > 0 and scanned >= max_codes:
                break
    return lims, D, I


@njit(cache=True, nogil=True)
def slab_positions(list_nos, offsets, sizes, nlist):
    """Slab row for each new entry: appended after the current end of its list,
    in input order within a list."""
    n = list_nos.shape[0]
    fill = np.zeros(nlist, dtype=np.int64)
    pos = np.empty(n, dtype=np.int64)
    for i in range(n):
        l = list_nos[i]
        pos[i] = offsets[l] + sizes[l] + fill[l]
        fill[l] += 1
    return pos


# --- list-major batch search ------------------------------------------------
# With many queries, several of them probe the same list. Scanning list by list
# and comparing each stored vector with every query that probes it loads each
# vector from memory once per batch instead of once per query. Every (query,
# probe) pair owns a k-slot heap, so threads working on different lists never
# write to the same heap; a final pass merges each query's nprobe heaps.

@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def select_probes(G, cnorm, metric, probes):
    """Best ``probes.shape[1]`` lists of each query from its inner products with the centroids."""
    nprobe = probes.shape[1]
    for i in prange(G.shape[0]):
        pd = np.empty(nprobe, dtype=np.float32)
        probe_from_products(G[i], cnorm, metric, pd, probes[i])


@njit(cache=True, nogil=True)
def group_pairs(probes, sizes, nlist, max_codes):
    """(query, probe slot) pairs grouped by list: pairs of list l are
    ``start[l]:start[l+1]`` of ``pair_q``/``pair_p``. Probes past ``max_codes``
    (counted in probe order, as the per-query scan does) are dropped."""
    nq, npb = probes.shape
    start = np.zeros(nlist + 1, dtype=np.int64)
    keep = np.zeros((nq, npb), dtype=np.bool_)
    for i in range(nq):
        scanned = 0
        for p in range(npb):
            l = probes[i, p]
            if l < 0:
                continue
            if max_codes > 0 and scanned >= max_codes:
                break
            keep[i, p] = True
            start[l + 1] += 1
            scanned += sizes[l]
    for l in range(nlist):
        start[l + 1] += start[l]
    fill = start[:nlist].copy()
    pair_q = np.empty(start[nlist], dtype=np.int64)
    pair_p = np.empty(start[nlist], dtype=np.int64)
    for i in range(nq):
        for p in range(npb):
            if keep[i, p]:
                l = probes[i, p]
                pair_q[fill[l]] = i
                pair_p[fill[l]] = p
                fill[l] += 1
    return start, pair_q, pair_p


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def scan_lists(xq, order, start, pair_q, pair_p, vecs, ids, offsets, sizes, metric, mask, use_mask,
               SD, SI):
    """Scan each list once for all the queries probing it (``order``: the lists
    in a shuffled order so threads get similar work)."""
    d = xq.shape[1]
    for t in prange(order.shape[0]):
        l = order[t]
        a = start[l]
        b = start[l + 1]
        s = sizes[l]
        if a == b or s == 0:
            continue
        o = offsets[l]
        for j in range(o, o + s):
            if use_mask and not mask[j]:
                continue
            v = vecs[j]
            for e in range(a, b):
                i = pair_q[e]
                p = pair_p[e]
                q = xq[i]
                acc = np.float32(0.0)
                if metric == METRIC_L2:
                    for u in range(d):
                        df = q[u] - v[u]
                        acc += df * df
                else:
                    for u in range(d):
                        acc += q[u] * v[u]
                    acc = -acc
                if acc < SD[i, p, 0]:
                    heap_replace_top(SD[i, p], SI[i, p], acc, ids[j])


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def merge_slots(SD, SI, metric, worst, D, I):
    """Each query's k best among its nprobe slot heaps, sorted, as FAISS distances."""
    nq, npb, k = SD.shape
    for i in prange(nq):
        rd = D[i]
        ri = I[i]
        heap_init(rd, ri)
        for p in range(npb):
            for t in range(k):
                idx = SI[i, p, t]
                if idx >= 0:
                    c = SD[i, p, t]
                    if c < rd[0] or (c == rd[0] and idx < ri[0]):
                        heap_replace_top(rd, ri, c, idx)
        finalize_heap(rd, ri, metric, worst)
