"""4-bit PQ fast-scan kernels: FAISS's block layout, uint8 tables, 16-bit sums.

Layout (FAISS ``pq4_pack_codes``, bbs = 32): vectors go in blocks of 32; a
block holds, for each pair of sub-quantizers (2p, 2p+1), 32 bytes. Byte i of
the first 16 holds sub-quantizer 2p's code of vector ``perm0[i]`` in its low
nibble and of vector ``perm0[i] + 16`` in its high nibble; the next 16 bytes
do the same for sub-quantizer 2p+1. perm0 = 0, 8, 1, 9, ..., 7, 15. An odd M
is padded with a sub-quantizer whose codes and table are 0.

FAISS scans this with pshufb, which numba cannot emit. The equivalent here
exploits that one byte carries *two vectors'* codes for the same
sub-quantizer: a 256-entry uint32 table ``E[m][byte] = T[m][lo] | T[m][hi] << 16``
returns both vectors' uint8 table entries at once, and one uint32 add
accumulates both in two 16-bit lanes (SWAR). A block of 32 vectors then costs
16 table loads and adds per sub-quantizer -- half a load per code and
sub-quantizer, from a table that stays in L1 -- against one load and a float
add per code and sub-quantizer for the 8-bit float ADC scan. The table scale
keeps every lane's sum below 2**16, so lanes never carry into each other.
"""

import numpy as np
from numba import njit, prange

from . import FASTMATH
from .heap import heap_init, heap_replace_top, heap_sort_inplace
from .pq import ivfpq_list_table, ivfpq_query_tables, compute_lut

METRIC_IP = 0
METRIC_L2 = 1
BBS = 32


@njit(cache=True, nogil=True)
def _slot(t):
    """(byte index within a 16-byte half, nibble shift) of vector t of a block."""
    half = t >> 4
    tt = t & 15
    i = 2 * tt if tt < 8 else 2 * (tt - 8) + 1
    return i, 4 * half


@njit(cache=True, nogil=True)
def pack_rows(codes, rows, M2, out, b0):
    """Pack plain 4-bit PQ codes (rows of ``codes``, in order) into blocks
    ``out[b0:]`` (each ``M2 // 2 * 32`` bytes), FAISS layout. ``out`` must be zeroed."""
    cs = codes.shape[1]
    for t_all in range(rows.shape[0]):
        r = rows[t_all]
        b = b0 + t_all // BBS
        i, shift = _slot(t_all % BBS)
        for p in range(M2 // 2):
            byte = codes[r, p] if p < cs else np.uint8(0)
            c0 = byte & 15
            c1 = byte >> 4
            out[b, p * 32 + i] |= np.uint8(c0 << shift)
            out[b, p * 32 + 16 + i] |= np.uint8(c1 << shift)


@njit(parallel=True, cache=True, nogil=True)
def pack_lists(codes, offsets, sizes, blk_off, M2, out):
    """Blocks of every inverted list: list l's vectors fill blocks blk_off[l]..blk_off[l+1]-1."""
    nlist = sizes.shape[0]
    for l in prange(nlist):
        s = sizes[l]
        if s == 0:
            continue
        rows = np.arange(offsets[l], offsets[l] + s)
        pack_rows(codes, rows, M2, out, blk_off[l])


@njit(cache=True, nogil=True)
def unpack_block_codes(packed, b, M2, t, out):
    """Sub-quantizer indices (M2,) of vector t of block b (tests and reconstruct)."""
    i, shift = _slot(t)
    for p in range(M2 // 2):
        out[2 * p] = (packed[b, p * 32 + i] >> shift) & 15
        out[2 * p + 1] = (packed[b, p * 32 + 16 + i] >> shift) & 15


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def quantize_expand(lut, M2, E):
    """uint8-quantize a float table (M, 16) and expand it to E (M2, 256) uint32.

    Returns (scale a, offset b): cost ~= acc / a + b where acc sums the uint8
    entries. As FAISS, one scale for all sub-quantizers, chosen so that each
    entry fits 8 bits and any sum of M entries fits 16 bits.
    """
    M = lut.shape[0]
    bsum = np.float32(0.0)
    max_span = np.float32(0.0)
    sum_span = np.float32(0.0)
    for m in range(M):
        mn = lut[m, 0]
        mx = lut[m, 0]
        for j in range(1, 16):
            v = lut[m, j]
            mn = min(mn, v)
            mx = max(mx, v)
        bsum += mn
        max_span = max(max_span, mx - mn)
        sum_span += mx - mn
    if max_span <= 0:
        a = np.float32(1.0)
    else:
        a = min(np.float32(255.0) / max_span, np.float32(65535 - M2) / sum_span)
        if not a > 0:
            # spans overflowed to inf (extreme but finite centroids): the
            # results are meaningless anyway, but must not raise ZeroDivisionError
            a = np.float32(1.0)
    # E[m, 16 h + lo] = q[lo] | q[h] << 16, written through a (M2, 16, 16) view so
    # the inner loop is a plain 16-lane vector op
    E3 = E.reshape(M2, 16, 16)
    for m in range(M2):
        if m < M:
            mn = lut[m, 0]
            for j in range(1, 16):
                mn = min(mn, lut[m, j])
            for j in range(16):
                # int32 conversion vectorises (float -> uint32 does not)
                E[m, j] = np.int32((lut[m, j] - mn) * a + np.float32(0.5))
        else:
            for j in range(16):
                E[m, j] = 0
        for h in range(15, -1, -1):
            qh = E[m, h] << 16
            for lo in range(16):
                E3[m, h, lo] = E[m, lo] | qh
    return a, bsum


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def scan_blocks(packed, b0, n, E, M2, a, bias, ids, id0, mask, use_mask, rd, ri, acc):
    """Fold the n vectors stored in blocks b0.. into the heap (rd, ri).

    ``packed`` is the block array viewed as uint64 (nblocks, M2 // 2 * 4).

    Vector j (0 <= j < n) has id ``ids[id0 + j]`` and filter entry
    ``mask[id0 + j]``; its cost is ``acc / a + bias``.
    """
    nblocks = (n + BBS - 1) // BBS
    npairs = M2 // 2
    inv_a = np.float32(1.0) / a
    for bl in range(nblocks):
        blk = packed[b0 + bl]
        s0 = np.uint32(0)
        s1 = np.uint32(0)
        s2 = np.uint32(0)
        s3 = np.uint32(0)
        s4 = np.uint32(0)
        s5 = np.uint32(0)
        s6 = np.uint32(0)
        s7 = np.uint32(0)
        s8 = np.uint32(0)
        s9 = np.uint32(0)
        s10 = np.uint32(0)
        s11 = np.uint32(0)
        s12 = np.uint32(0)
        s13 = np.uint32(0)
        s14 = np.uint32(0)
        s15 = np.uint32(0)
        for p in range(npairs):
            e0 = E[2 * p]
            e1 = E[2 * p + 1]
            # the 32 code bytes of this pair as four words: loads are the
            # bottleneck, so bytes are extracted with shifts (ALU) instead
            w0 = blk[4 * p]
            w1 = blk[4 * p + 1]
            w2 = blk[4 * p + 2]
            w3 = blk[4 * p + 3]
            s0 += e0[(w0 >> 0) & 255] + e1[(w2 >> 0) & 255]
            s1 += e0[(w0 >> 8) & 255] + e1[(w2 >> 8) & 255]
            s2 += e0[(w0 >> 16) & 255] + e1[(w2 >> 16) & 255]
            s3 += e0[(w0 >> 24) & 255] + e1[(w2 >> 24) & 255]
            s4 += e0[(w0 >> 32) & 255] + e1[(w2 >> 32) & 255]
            s5 += e0[(w0 >> 40) & 255] + e1[(w2 >> 40) & 255]
            s6 += e0[(w0 >> 48) & 255] + e1[(w2 >> 48) & 255]
            s7 += e0[(w0 >> 56) & 255] + e1[(w2 >> 56) & 255]
            s8 += e0[(w1 >> 0) & 255] + e1[(w3 >> 0) & 255]
            s9 += e0[(w1 >> 8) & 255] + e1[(w3 >> 8) & 255]
            s10 += e0[(w1 >> 16) & 255] + e1[(w3 >> 16) & 255]
            s11 += e0[(w1 >> 24) & 255] + e1[(w3 >> 24) & 255]
            s12 += e0[(w1 >> 32) & 255] + e1[(w3 >> 32) & 255]
            s13 += e0[(w1 >> 40) & 255] + e1[(w3 >> 40) & 255]
            s14 += e0[(w1 >> 48) & 255] + e1[(w3 >> 48) & 255]
            s15 += e0[(w1 >> 56) & 255] + e1[(w3 >> 56) & 255]
        acc[0] = s0
        acc[1] = s1
        acc[2] = s2
        acc[3] = s3
        acc[4] = s4
        acc[5] = s5
        acc[6] = s6
        acc[7] = s7
        acc[8] = s8
        acc[9] = s9
        acc[10] = s10
        acc[11] = s11
        acc[12] = s12
        acc[13] = s13
        acc[14] = s14
        acc[15] = s15
        # compare in the integer domain: (thr - bias) * a
        thr_q = (rd[0] - bias) * a
        base = bl * BBS
        for i in range(16):
            v2 = acc[i]
            for half in range(2):
                v = (v2 >> (16 * half)) & 0xFFFF
                if np.float32(v) < thr_q:
                    t = (i >> 1) + ((i & 1) << 3) + 16 * half
                    j = base + t
                    if j >= n:
                        continue
                    if use_mask and not mask[id0 + j]:
                        continue
                    heap_replace_top(rd, ri, np.float32(v) * inv_a + bias, ids[id0 + j])
                    thr_q = (rd[0] - bias) * a


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _finish(rd, ri, metric, worst):
    heap_sort_inplace(rd, ri)
    for t in range(rd.shape[0]):
        if ri[t] < 0:
            rd[t] = worst
        elif metric != METRIC_L2:
            rd[t] = -rd[t]


# --- flat (IndexPQFastScan) -----------------------------------------------------------

@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _pq_query(q, packed, n, cent_t, M2, metric, ids, mask, use_mask, lut, E, acc, rd, ri):
    compute_lut(q, cent_t, metric, lut)
    a, bias = quantize_expand(lut, M2, E)
    heap_init(rd, ri)
    scan_blocks(packed, 0, n, E, M2, a, bias, ids, 0, mask, use_mask, rd, ri, acc)


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def pq_search(xq, packed, n, cent_t, M2, metric, ids, mask, use_mask, worst, parallel, D, I):
    """IndexPQFastScan k-NN; ``ids`` maps positions to ids (arange for a plain index)."""
    nq = xq.shape[0]
    M = cent_t.shape[0]
    nchunks = min(nq, 64) if parallel else 1
    for ch in prange(nchunks):
        lut = np.empty((M, 16), dtype=np.float32)
        E = np.empty((M2, 256), dtype=np.uint32)
        acc = np.empty(16, dtype=np.uint32)
        for i in range(ch, nq, nchunks):
            _pq_query(xq[i], packed, n, cent_t, M2, metric, ids, mask, use_mask, lut, E, acc, D[i], I[i])
            _finish(D[i], I[i], metric, worst)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def pq_search_serial(xq, packed, n, cent_t, M2, metric, ids, mask, use_mask, worst, D, I):
    M = cent_t.shape[0]
    lut = np.empty((M, 16), dtype=np.float32)
    E = np.empty((M2, 256), dtype=np.uint32)
    acc = np.empty(16, dtype=np.uint32)
    for i in range(xq.shape[0]):
        _pq_query(xq[i], packed, n, cent_t, M2, metric, ids, mask, use_mask, lut, E, acc, D[i], I[i])
        _finish(D[i], I[i], metric, worst)


# --- IVF (IndexIVFPQFastScan) ---------------------------------------------------------

@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _ivf_query(q, probe, pcost, packed, blk_off, offsets, sizes, ids, cent, cent_t, M2, metric,
               mode, precomp, max_codes, mask, use_mask, q_lut, lut, resid, E, acc, rd, ri):
    heap_init(rd, ri)
    ivfpq_query_tables(q, cent, cent_t, metric, mode, q_lut)
    # inner product and non-residual codes share one table across lists (only
    # the per-list constant changes): quantize and expand it once per query
    shared = mode == 0 or mode == 2
    a = np.float32(1.0)
    b = np.float32(0.0)
    if shared:
        a, b = quantize_expand(q_lut, M2, E)
    scanned = 0
    for p in range(probe.shape[0]):
        l = probe[p]
        if l < 0:
            continue
        s = sizes[l]
        if s == 0:
            continue
        if shared:
            bias = pcost[p] if mode == 2 else np.float32(0.0)
        else:
            tab, bias = ivfpq_list_table(q, l, pcost[p], cent, cent_t, metric, mode, precomp, q_lut,
                                         lut, resid)
            a, b = quantize_expand(tab, M2, E)
        scan_blocks(packed, blk_off[l], s, E, M2, a, bias + b, ids, offsets[l], mask, use_mask,
                    rd, ri, acc)
        scanned += s
        if max_codes > 0 and scanned >= max_codes:
            break


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def ivf_search_batch(xq, probes, pdist, packed, blk_off, offsets, sizes, ids, cent, cent_t, M2,
                     metric, mode, precomp, max_codes, mask, use_mask, worst, D, I):
    nq = xq.shape[0]
    M = cent_t.shape[0]
    nchunks = min(nq, 256)
    for ch in prange(nchunks):
        q_lut = np.empty((M, 16), dtype=np.float32)
        lut = np.empty((M, 16), dtype=np.float32)
        resid = np.empty(xq.shape[1], dtype=np.float32)
        E = np.empty((M2, 256), dtype=np.uint32)
        acc = np.empty(16, dtype=np.uint32)
        pcost = np.empty(probes.shape[1], dtype=np.float32)
        for i in range(ch, nq, nchunks):
            for p in range(probes.shape[1]):
                pcost[p] = pdist[i, p] if metric == METRIC_L2 else -pdist[i, p]
            _ivf_query(xq[i], probes[i], pcost, packed, blk_off, offsets, sizes, ids, cent, cent_t, M2,
                       metric, mode, precomp, max_codes, mask, use_mask, q_lut, lut, resid, E, acc,
                       D[i], I[i])
            _finish(D[i], I[i], metric, worst)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _coarse(q, cent, cnorm, metric, nprobe, pd, pi):
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
def ivf_search_single(xq, cent, cnorm, nprobe, packed, blk_off, offsets, sizes, ids, cent_t, M2,
                      metric, mode, precomp, max_codes, mask, use_mask, worst, D, I):
    M = cent_t.shape[0]
    pd = np.empty(nprobe, dtype=np.float32)
    pi = np.empty(nprobe, dtype=np.int64)
    q_lut = np.empty((M, 16), dtype=np.float32)
    lut = np.empty((M, 16), dtype=np.float32)
    resid = np.empty(xq.shape[1], dtype=np.float32)
    E = np.empty((M2, 256), dtype=np.uint32)
    acc = np.empty(16, dtype=np.uint32)
    for i in range(xq.shape[0]):
        _coarse(xq[i], cent, cnorm, metric, nprobe, pd, pi)
        _ivf_query(xq[i], pi, pd, packed, blk_off, offsets, sizes, ids, cent, cent_t, M2, metric, mode,
                   precomp, max_codes, mask, use_mask, q_lut, lut, resid, E, acc, D[i], I[i])
        _finish(D[i], I[i], metric, worst)
