"""Product-quantizer kernels: encoding, bit packing, look-up tables, ADC scans.

Conventions shared by every kernel here:

* Centroids arrive transposed, ``cent_t[m, t, c]`` (M, dsub, ksub), so the loop
  over the ksub centroids of one sub-space is contiguous and vectorises.
* Codes are FAISS's little-endian bit stream: sub-quantizer ``m`` occupies bits
  ``[m*nbits, (m+1)*nbits)`` of the code (PQEncoderGeneric). For nbits=8 that is
  one byte per sub-quantizer, which gets a dedicated fast path.
* Look-up tables hold *costs* (smaller is better): squared L2 distances, or
  minus the inner product. A scan then only adds table entries, whatever the
  metric, and the caller negates the final costs for inner product.
"""

import numpy as np
from numba import njit, prange

from . import FASTMATH
from .heap import finalize_heap, heap_init, heap_replace_top, heap_sort_inplace

METRIC_IP = 0
METRIC_L2 = 1


# --- encoding ------------------------------------------------------------------

@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _nearest_rows(x, i0, i1, cent_t, out, dist):
    M, dsub, ksub = cent_t.shape
    for i in range(i0, i1):
        for m in range(M):
            for c in range(ksub):
                dist[c] = 0.0
            for t in range(dsub):
                xv = x[i, m * dsub + t]
                row = cent_t[m, t]
                for c in range(ksub):
                    e = xv - row[c]
                    dist[c] += e * e
            best = 0
            bd = dist[0]
            for c in range(1, ksub):
                if dist[c] < bd:
                    bd = dist[c]
                    best = c
            out[i, m] = best


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def assign_subspaces(x, cent_t, out):
    """out[i, m] = index of the centroid of sub-space m nearest to x[i] (first on ties)."""
    n = x.shape[0]
    ksub = cent_t.shape[2]
    nchunks = (n + 255) // 256
    for ch in prange(nchunks):
        dist = np.empty(ksub, dtype=np.float32)
        i0 = ch * 256
        _nearest_rows(x, i0, min(n, i0 + 256), cent_t, out, dist)


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def pack_codes(idx, nbits, out):
    """Pack centroid indices (n, M) into FAISS's little-endian bit stream (n, code_size)."""
    n, M = idx.shape
    cs = out.shape[1]
    for i in prange(n):
        for b in range(cs):
            out[i, b] = 0
        for m in range(M):
            v = np.uint32(idx[i, m])
            pos = m * nbits
            rem = nbits
            while rem > 0:
                byte = pos >> 3
                off = pos & 7
                take = min(8 - off, rem)
                out[i, byte] |= np.uint8((v & ((1 << take) - 1)) << off)
                v >>= take
                pos += take
                rem -= take


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _read_code(code, m, nbits):
    pos = m * nbits
    byte = pos >> 3
    off = pos & 7
    v = np.uint32(0)
    got = 0
    while got < nbits + off:
        v |= np.uint32(code[byte]) << got
        byte += 1
        got += 8
    return (v >> off) & ((1 << nbits) - 1)


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def unpack_codes(codes, M, nbits, out):
    """Inverse of :func:`pack_codes`: (n, code_size) bytes -> (n, M) int32 indices."""
    n = codes.shape[0]
    for i in prange(n):
        for m in range(M):
            out[i, m] = _read_code(codes[i], m, nbits)


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def decode(codes, centroids, nbits, out):
    """Reconstruct vectors (n, d) from codes; ``centroids`` is (M, ksub, dsub)."""
    n = codes.shape[0]
    M, ksub, dsub = centroids.shape
    for i in prange(n):
        for m in range(M):
            c = _read_code(codes[i], m, nbits)
            for t in range(dsub):
                out[i, m * dsub + t] = centroids[m, c, t]


# --- look-up tables ----------------------------------------------------------------

@njit(cache=True, nogil=True, fastmath=FASTMATH)
def lut_l2(q, cent_t, lut):
    """lut[m, c] = ||q_m - C[m, c]||^2."""
    M, dsub, ksub = cent_t.shape
    for m in range(M):
        for c in range(ksub):
            lut[m, c] = 0.0
        for t in range(dsub):
            xv = q[m * dsub + t]
            row = cent_t[m, t]
            for c in range(ksub):
                e = xv - row[c]
                lut[m, c] += e * e


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def lut_neg_ip(q, cent_t, lut):
    """lut[m, c] = -<q_m, C[m, c]> (a cost: smaller is better)."""
    M, dsub, ksub = cent_t.shape
    for m in range(M):
        for c in range(ksub):
            lut[m, c] = 0.0
        for t in range(dsub):
            xv = q[m * dsub + t]
            row = cent_t[m, t]
            for c in range(ksub):
                lut[m, c] -= xv * row[c]


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def compute_lut(q, cent_t, metric, lut):
    if metric == METRIC_L2:
        lut_l2(q, cent_t, lut)
    else:
        lut_neg_ip(q, cent_t, lut)


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def compute_luts(xq, cent_t, metric, out):
    """One table per query: out (nq, M, ksub), as costs."""
    for i in prange(xq.shape[0]):
        compute_lut(xq[i], cent_t, metric, out[i])


# --- ADC scans -----------------------------------------------------------------------

@njit(cache=True, nogil=True, fastmath=FASTMATH)
def adc_cost8(lut, code, M):
    """Cost of one 8-bit code: sum of M table entries (four partial sums for ILP)."""
    s0 = np.float32(0.0)
    s1 = np.float32(0.0)
    s2 = np.float32(0.0)
    s3 = np.float32(0.0)
    m = 0
    while m + 4 <= M:
        s0 += lut[m, code[m]]
        s1 += lut[m + 1, code[m + 1]]
        s2 += lut[m + 2, code[m + 2]]
        s3 += lut[m + 3, code[m + 3]]
        m += 4
    while m < M:
        s0 += lut[m, code[m]]
        m += 1
    return (s0 + s1) + (s2 + s3)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def adc_cost_generic(lut, code, M, nbits):
    s = np.float32(0.0)
    for m in range(M):
        s += lut[m, _read_code(code, m, nbits)]
    return s


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def scan_codes(codes, j0, j1, lut, nbits, bias, ids, use_ids, mask, use_mask, rd, ri):
    """Fold rows j0..j1-1 of ``codes`` into the heap (rd, ri).

    A row's result id is ``ids[j]`` when ``use_ids`` else ``j``; ``mask`` is
    indexed by that id. ``bias`` is added to every cost (per-list constants).
    """
    M = lut.shape[0]
    thr = rd[0]
    if nbits == 8:
        for j in range(j0, j1):
            c = bias + adc_cost8(lut, codes[j], M)
            if c < thr:
                idx = ids[j] if use_ids else j
                if use_mask and not mask[idx]:
                    continue
                heap_replace_top(rd, ri, c, idx)
                thr = rd[0]
    else:
        for j in range(j0, j1):
            c = bias + adc_cost_generic(lut, codes[j], M, nbits)
            if c < thr:
                idx = ids[j] if use_ids else j
                if use_mask and not mask[idx]:
                    continue
                heap_replace_top(rd, ri, c, idx)
                thr = rd[0]


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _search_one(q, codes, n, cent_t, nbits, metric, lut, mask, use_mask, rd, ri):
    compute_lut(q, cent_t, metric, lut)
    heap_init(rd, ri)
    scan_codes(codes, 0, n, lut, nbits, np.float32(0.0), ri, False, mask, use_mask, rd, ri)
    heap_sort_inplace(rd, ri)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def search_serial(xq, codes, n, cent_t, nbits, metric, mask, use_mask, hd, hi):
    """IndexPQ search, one thread: hd/hi (nq, k) receive sorted costs and ids."""
    M, dsub, ksub = cent_t.shape
    lut = np.empty((M, ksub), dtype=np.float32)
    for i in range(xq.shape[0]):
        _search_one(xq[i], codes, n, cent_t, nbits, metric, lut, mask, use_mask, hd[i], hi[i])


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def search_parallel(xq, codes, n, cent_t, nbits, metric, mask, use_mask, hd, hi):
    """IndexPQ search over a batch, queries split across threads."""
    M, dsub, ksub = cent_t.shape
    nq = xq.shape[0]
    nchunks = min(nq, 64)
    for ch in prange(nchunks):
        lut = np.empty((M, ksub), dtype=np.float32)
        for i in range(ch, nq, nchunks):
            _search_one(xq[i], codes, n, cent_t, nbits, metric, lut, mask, use_mask, hd[i], hi[i])


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _costs_one(q, codes, n, cent_t, nbits, metric, lut, out):
    compute_lut(q, cent_t, metric, lut)
    M = lut.shape[0]
    if nbits == 8:
        for j in range(n):
            out[j] = adc_cost8(lut, codes[j], M)
    else:
        for j in range(n):
            out[j] = adc_cost_generic(lut, codes[j], M, nbits)


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def range_search(xq, codes, n, cent_t, nbits, metric, radius, mask, use_mask):
    """Range search on PQ codes: L2 cost < radius, or inner product > radius.

    Two passes per query (count, fill); returns lims (nq+1), distances, ids.
    """
    M, dsub, ksub = cent_t.shape
    nq = xq.shape[0]
    counts = np.zeros(nq, dtype=np.int64)
    for i in prange(nq):
        lut = np.empty((M, ksub), dtype=np.float32)
        cost = np.empty(n, dtype=np.float32)
        _costs_one(xq[i], codes, n, cent_t, nbits, metric, lut, cost)
        cnt = 0
        for j in range(n):
            if use_mask and not mask[j]:
                continue
            if (metric == METRIC_L2 and cost[j] < radius) or (metric != METRIC_L2 and -cost[j] > radius):
                cnt += 1
        counts[i] = cnt
    lims = np.zeros(nq + 1, dtype=np.int64)
    for i in range(nq):
        lims[i + 1] = lims[i] + counts[i]
    D = np.empty(lims[nq], dtype=np.float32)
    I = np.empty(lims[nq], dtype=np.int64)
    for i in prange(nq):
        lut = np.empty((M, ksub), dtype=np.float32)
        cost = np.empty(n, dtype=np.float32)
        _costs_one(xq[i], codes, n, cent_t, nbits, metric, lut, cost)
        p = lims[i]
        for j in range(n):
            if use_mask and not mask[j]:
                continue
            if metric == METRIC_L2:
                if cost[j] < radius:
                    D[p] = cost[j]
                    I[p] = j
                    p += 1
            elif -cost[j] > radius:
                D[p] = -cost[j]
                I[p] = j
                p += 1
    return lims, D, I


# --- training ----------------------------------------------------------------------

@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _lloyd_subspace(x, m, dsub, cent, niter, assign, dist, sums, counts):
    """k-means of sub-space m of x (n, d) in place on cent (ksub, dsub).

    Assignment computes distances directly (dsub is small, a GEMM would be
    mostly overhead); empty clusters take half of the largest one, as FAISS
    splits them.
    """
    n = x.shape[0]
    ksub = cent.shape[0]
    ct = np.empty((dsub, ksub), dtype=np.float32)
    for it in range(niter + 1):
        for t in range(dsub):
            for c in range(ksub):
                ct[t, c] = cent[c, t]
        for i in range(n):
            for c in range(ksub):
                dist[c] = 0.0
            for t in range(dsub):
                xv = x[i, m * dsub + t]
                row = ct[t]
                for c in range(ksub):
                    e = xv - row[c]
                    dist[c] += e * e
            best = 0
            bd = dist[0]
            for c in range(1, ksub):
                if dist[c] < bd:
                    bd = dist[c]
                    best = c
            assign[i] = best
        if it == niter:
            break
        sums[:] = 0.0
        counts[:] = 0
        for i in range(n):
            a = assign[i]
            counts[a] += 1
            for t in range(dsub):
                sums[a, t] += x[i, m * dsub + t]
        for c in range(ksub):
            if counts[c] > 0:
                for t in range(dsub):
                    cent[c, t] = sums[c, t] / counts[c]
        for c in range(ksub):
            if counts[c] == 0:
                big = 0
                for c2 in range(ksub):
                    if counts[c2] > counts[big]:
                        big = c2
                for t in range(dsub):
                    v = cent[big, t]
                    # FAISS's symmetric perturbation (EPS = 1/1024)
                    if t % 2 == 0:
                        cent[c, t] = v * (1 + 1.0 / 1024)
                        cent[big, t] = v * (1 - 1.0 / 1024)
                    else:
                        cent[c, t] = v * (1 - 1.0 / 1024)
                        cent[big, t] = v * (1 + 1.0 / 1024)
                counts[c] = counts[big] // 2
                counts[big] -= counts[c]


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def train_subspaces(x, init_rows, M, niter, out):
    """Train the M sub-quantizers of a PQ at once, one sub-space per task.

    ``x`` (n, d) is the (already sampled) training set, ``init_rows`` the ksub
    rows whose sub-vectors seed the centroids, ``out`` (M, ksub, dsub).
    """
    n, d = x.shape
    dsub = d // M
    ksub = init_rows.shape[0]
    for m in prange(M):
        cent = out[m]
        for c in range(ksub):
            for t in range(dsub):
                cent[c, t] = x[init_rows[c], m * dsub + t]
        assign = np.empty(n, dtype=np.int32)
        dist = np.empty(ksub, dtype=np.float32)
        sums = np.empty((ksub, dsub), dtype=np.float64)
        counts = np.empty(ksub, dtype=np.int64)
        _lloyd_subspace(x, m, dsub, cent, niter, assign, dist, sums, counts)


# --- IVF-PQ ------------------------------------------------------------------------

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


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def refine_subspaces(x, M, niter, cent):
    """More Lloyd iterations on existing sub-quantizer centroids cent (M, ksub, dsub)."""
    n, d = x.shape
    dsub = d // M
    ksub = cent.shape[1]
    for m in prange(M):
        assign = np.empty(n, dtype=np.int32)
        dist = np.empty(ksub, dtype=np.float32)
        sums = np.empty((ksub, dsub), dtype=np.float64)
        counts = np.empty(ksub, dtype=np.int64)
        _lloyd_subspace(x, m, dsub, cent[m], niter, assign, dist, sums, counts)


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
