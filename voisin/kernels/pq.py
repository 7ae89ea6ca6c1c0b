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

from ..metric import METRIC_L2
from . import FASTMATH
from .heap import heap_init, heap_replace_top, heap_sort_inplace


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
