"""IVF-PQ kernels: per-list look-up tables (with FAISS's precomputed-table
modes), list scans, and the batch, single-query, GEMM and range entry points.

The product-quantizer pieces they build on (tables, ADC costs, heaps) are in
``kernels/pq.py``; the conventions stated there (transposed centroids, costs
not scores) hold here too.
"""

import numpy as np
from numba import njit, prange

from ..metric import METRIC_L2
from . import FASTMATH
from .heap import finalize_heap, heap_init, heap_replace_top, heap_sort_inplace
from .pq import adc_cost8, adc_cost_generic, compute_lut, lut_l2

@njit(cache=True, nogil=True, fastmath=FASTMATH)
def scan_list(codes, o, s, lut, nbits, bias, ids, mask, use_mask, rd, ri):
    """Fold slab rows o..o+s-1 of an inverted list into the heap; ``mask`` is over slab rows."""
    M = lut.shape[0]
    thr = rd[0]
    if nbits == 8:
        for j in range(o, o + s):
            c = bias + adc_cost8(lut, codes[j], M)
            if c < thr:
                if use_mask and not mask[j]:
                    continue
                heap_replace_top(rd, ri, c, ids[j])
                thr = rd[0]
    else:
        for j in range(o, o + s):
            c = bias + adc_cost_generic(lut, codes[j], M, nbits)
            if c < thr:
                if use_mask and not mask[j]:
                    continue
                heap_replace_top(rd, ri, c, ids[j])
                thr = rd[0]


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def ivfpq_query_tables(q, cent, cent_t, metric, mode, q_lut):
    """Per-query part of the look-up tables.

    mode 1 (L2, residuals, precomputed tables): q_lut = -2 <q_m, C[m, j]>;
    mode 2 (IP, residuals) and mode 0 (no residuals): q_lut = the plain ADC
    table of q. mode 3 (L2, residuals, no precomputed tables) builds its
    table per list and leaves q_lut alone.
    """
    M, dsub, ksub = cent_t.shape
    if mode == 1:
        for m in range(M):
            for c in range(ksub):
                q_lut[m, c] = 0.0
            for t in range(dsub):
                xv = -2.0 * q[m * dsub + t]
                row = cent_t[m, t]
                for c in range(ksub):
                    q_lut[m, c] += xv * row[c]
    elif mode != 3:
        compute_lut(q, cent_t, metric, q_lut)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def ivfpq_list_table(q, l, coarse_cost, cent, cent_t, metric, mode, precomp, q_lut, lut, resid):
    """Table for list ``l`` and the constant added to every code's cost.

    ``coarse_cost`` is the query's coarse cost for l: ||q - c_l||^2 (L2) or
    -<q, c_l> (IP). Returns (table to use, bias).
    """
    M, dsub, ksub = cent_t.shape
    if mode == 1:
        # d = ||q - c||^2 + (||r||^2 + 2 <c, r>) - 2 <q, r>: the middle term is
        # precomputed per (list, m, j), the last per query
        tab = precomp[l]
        for m in range(M):
            for c in range(ksub):
                lut[m, c] = tab[m, c] + q_lut[m, c]
        return lut, coarse_cost
    if mode == 3:
        for t in range(q.shape[0]):
            resid[t] = q[t] - cent[l, t]
        lut_l2(resid, cent_t, lut)
        return lut, np.float32(0.0)
    # IP with residuals: <q, c + r> = <q, c> + <q, r>; no residuals: plain ADC
    return q_lut, coarse_cost if mode == 2 else np.float32(0.0)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _ivfpq_query(q, probe, pcost, codes, ids, offsets, sizes, cent, cent_t, nbits, metric, mode,
                 precomp, max_codes, mask, use_mask, q_lut, lut, resid, rd, ri):
    heap_init(rd, ri)
    ivfpq_query_tables(q, cent, cent_t, metric, mode, q_lut)
    scanned = 0
    for p in range(probe.shape[0]):
        l = probe[p]
        if l < 0:
            continue
        s = sizes[l]
        if s == 0:
            continue
        tab, bias = ivfpq_list_table(q, l, pcost[p], cent, cent_t, metric, mode, precomp, q_lut, lut, resid)
        scan_list(codes, offsets[l], s, tab, nbits, bias, ids, mask, use_mask, rd, ri)
        scanned += s
        if max_codes > 0 and scanned >= max_codes:
            break


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def ivfpq_search_batch(xq, probes, pdist, codes, ids, offsets, sizes, cent, cent_t, nbits, metric,
                       mode, precomp, max_codes, mask, use_mask, worst, D, I):
    """IVF-PQ k-NN of many queries; coarse assignment given as (probes, pdist) in
    FAISS distances (L2 squared distance, or inner product)."""
    nq = xq.shape[0]
    M, dsub, ksub = cent_t.shape
    nchunks = min(nq, 256)
    for ch in prange(nchunks):
        q_lut = np.empty((M, ksub), dtype=np.float32)
        lut = np.empty((M, ksub), dtype=np.float32)
        resid = np.empty(xq.shape[1], dtype=np.float32)
        pcost = np.empty(probes.shape[1], dtype=np.float32)
        for i in range(ch, nq, nchunks):
            for p in range(probes.shape[1]):
                pcost[p] = pdist[i, p] if metric == METRIC_L2 else -pdist[i, p]
            _ivfpq_query(xq[i], probes[i], pcost, codes, ids, offsets, sizes, cent, cent_t, nbits,
                         metric, mode, precomp, max_codes, mask, use_mask, q_lut, lut, resid, D[i], I[i])
            finalize_heap(D[i], I[i], metric, worst)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _coarse(q, cent, cnorm, metric, nprobe, pd, pi):
    """nprobe best lists by a direct scan; pd receives coarse costs
    (||q - c||^2 for L2, -<q, c> for IP), sorted."""
    nlist, d = cent.shape
    heap_init(pd, pi)
    thr = pd[0]
    qn = np.float32(0.0)
    for t in range(d):
        qn += q[t] * q[t]
    for c in range(nlist):
        s = np.float32(0.0)
        for t in range(d):
            s += q[t] * cent[c, t]
        cost = cnorm[c] - 2.0 * s if metric == METRIC_L2 else -s
        if cost < thr:
            heap_replace_top(pd, pi, cost, c)
            thr = pd[0]
    heap_sort_inplace(pd, pi)
    if metric == METRIC_L2:
        for p in range(nprobe):
            pd[p] = max(pd[p] + qn, np.float32(0.0))


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def ivfpq_search_single(xq, cent, cnorm, nprobe, codes, ids, offsets, sizes, cent_t, nbits, metric,
                        mode, precomp, max_codes, mask, use_mask, worst, D, I):
    """One thread, coarse assignment fused in: the one-query-per-call path."""
    M, dsub, ksub = cent_t.shape
    pd = np.empty(nprobe, dtype=np.float32)
    pi = np.empty(nprobe, dtype=np.int64)
    q_lut = np.empty((M, ksub), dtype=np.float32)
    lut = np.empty((M, ksub), dtype=np.float32)
    resid = np.empty(xq.shape[1], dtype=np.float32)
    for i in range(xq.shape[0]):
        _coarse(xq[i], cent, cnorm, metric, nprobe, pd, pi)
        _ivfpq_query(xq[i], pi, pd, codes, ids, offsets, sizes, cent, cent_t, nbits, metric, mode,
                     precomp, max_codes, mask, use_mask, q_lut, lut, resid, D[i], I[i])
        finalize_heap(D[i], I[i], metric, worst)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _range_query(q, probe, pdist, codes, ids, offsets, sizes, cent, cent_t, nbits, metric, mode,
                 precomp, radius, max_codes, mask, use_mask, fill, w, Dout, Iout):
    """Count (fill=False) or write from position w (fill=True) one query's range results."""
    M, dsub, ksub = cent_t.shape
    q_lut = np.empty((M, ksub), dtype=np.float32)
    lut = np.empty((M, ksub), dtype=np.float32)
    resid = np.empty(q.shape[0], dtype=np.float32)
    ivfpq_query_tables(q, cent, cent_t, metric, mode, q_lut)
    cnt = 0
    scanned = 0
    for p in range(probe.shape[0]):
        l = probe[p]
        if l < 0:
            continue
        pc = pdist[p] if metric == METRIC_L2 else -pdist[p]
        tab, bias = ivfpq_list_table(q, l, pc, cent, cent_t, metric, mode, precomp, q_lut, lut, resid)
        o = offsets[l]
        for j in range(o, o + sizes[l]):
            if use_mask and not mask[j]:
                continue
            if nbits == 8:
                c = bias + adc_cost8(tab, codes[j], M)
            else:
                c = bias + adc_cost_generic(tab, codes[j], M, nbits)
            if (c < radius) if metric == METRIC_L2 else (-c > radius):
                if fill:
                    Dout[w + cnt] = c if metric == METRIC_L2 else -c
                    Iout[w + cnt] = ids[j]
                cnt += 1
        scanned += sizes[l]
        if max_codes > 0 and scanned >= max_codes:
            break
    return cnt


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def ivfpq_range_search(xq, probes, pdist, codes, ids, offsets, sizes, cent, cent_t, nbits, metric,
                       mode, precomp, radius, max_codes, mask, use_mask):
    """Range search over the probed lists (L2: d < radius; IP: score > radius).

    Two passes per query (count, fill) so the output is allocated once.
    """
    nq = xq.shape[0]
    counts = np.zeros(nq, dtype=np.int64)
    dummy_d = np.empty(0, dtype=np.float32)
    dummy_i = np.empty(0, dtype=np.int64)
    for i in prange(nq):
        counts[i] = _range_query(xq[i], probes[i], pdist[i], codes, ids, offsets, sizes, cent, cent_t,
                                 nbits, metric, mode, precomp, radius, max_codes, mask, use_mask,
                                 False, 0, dummy_d, dummy_i)
    lims = np.zeros(nq + 1, dtype=np.int64)
    for i in range(nq):
        lims[i + 1] = lims[i] + counts[i]
    Dout = np.empty(lims[nq], dtype=np.float32)
    Iout = np.empty(lims[nq], dtype=np.int64)
    for i in prange(nq):
        _range_query(xq[i], probes[i], pdist[i], codes, ids, offsets, sizes, cent, cent_t, nbits,
                     metric, mode, precomp, radius, max_codes, mask, use_mask, True, lims[i], Dout, Iout)
    return lims, Dout, Iout


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def precompute_l2_tables(cent, centroids, out):
    """out[l, m, j] = ||C[m, j]||^2 + 2 <c_l[m], C[m, j]> for every coarse centroid l."""
    nlist, d = cent.shape
    M, ksub, dsub = centroids.shape
    norms = np.empty((M, ksub), dtype=np.float32)
    for m in range(M):
        for j in range(ksub):
            s = np.float32(0.0)
            for t in range(dsub):
                s += centroids[m, j, t] * centroids[m, j, t]
            norms[m, j] = s
    for l in prange(nlist):
        for m in range(M):
            for j in range(ksub):
                s = np.float32(0.0)
                for t in range(dsub):
                    s += cent[l, m * dsub + t] * centroids[m, j, t]
                out[l, m, j] = norms[m, j] + 2.0 * s


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def probes_from_products(g, cnorm, q, metric, pd, pi):
    """The len(pd) best lists of one query from its inner products ``g`` with
    the centroids (a row of a BLAS product): pd receives FAISS coarse costs
    (||q - c||^2 for L2, -<q, c> for IP), sorted, pi the list numbers."""
    heap_init(pd, pi)
    thr = pd[0]
    for c in range(g.shape[0]):
        cost = cnorm[c] - 2.0 * g[c] if metric == METRIC_L2 else -g[c]
        if cost < thr:
            heap_replace_top(pd, pi, cost, c)
            thr = pd[0]
    heap_sort_inplace(pd, pi)
    if metric == METRIC_L2:
        qn = np.float32(0.0)
        for t in range(q.shape[0]):
            qn += q[t] * q[t]
        for p in range(pd.shape[0]):
            pd[p] = max(pd[p] + qn, np.float32(0.0))


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def ivfpq_search_gemm(xq, G, cnorm, nprobe, codes, ids, offsets, sizes, cent, cent_t, nbits, metric,
                      mode, precomp, max_codes, mask, use_mask, worst, D, I):
    """Batch IVF-PQ search with the coarse step fused: ``G`` = xq @ centroids.T
    (BLAS); each task picks its queries' lists and scans them."""
    nq = xq.shape[0]
    M, dsub, ksub = cent_t.shape
    nchunks = min(nq, 256)
    for ch in prange(nchunks):
        q_lut = np.empty((M, ksub), dtype=np.float32)
        lut = np.empty((M, ksub), dtype=np.float32)
        resid = np.empty(xq.shape[1], dtype=np.float32)
        pd = np.empty(nprobe, dtype=np.float32)
        pi = np.empty(nprobe, dtype=np.int64)
        for i in range(ch, nq, nchunks):
            probes_from_products(G[i], cnorm, xq[i], metric, pd, pi)
            _ivfpq_query(xq[i], pi, pd, codes, ids, offsets, sizes, cent, cent_t, nbits, metric, mode,
                         precomp, max_codes, mask, use_mask, q_lut, lut, resid, D[i], I[i])
            finalize_heap(D[i], I[i], metric, worst)
