"""Additive-quantizer kernels: beam-search encoding, bit fields, look-up-table scans.

An additive quantizer (residual quantizer, product residual quantizer)
approximates a vector by a *sum* of M codewords, one per codebook; FAISS keeps
the M codebooks in one table ``codebooks`` (total_K, d) where codebook m is
rows ``offsets[m] .. offsets[m] + 2**nbits[m]``.

* Encoding is a beam search (FAISS's ``refine_beam``): stage m extends each
  of the B partial codes by every codeword of codebook m and keeps the best
  ``newB`` of the B * K candidates. The inner products residual x codeword
  come from BLAS (the caller), the selection and the residual update from
  :func:`beam_select`.
* Codes are FAISS's little-endian bit stream (``BitstringWriter``): field f
  occupies the ``widths[f]`` bits after the previous fields; the last field
  is the encoded norm when the search type stores one.
* A scan needs, per query, the inner products of the query with every
  codeword (the LUT, one BLAS product for a batch) and, per stored vector, one
  float32 *side value* kept in the last 4 bytes of its storage row: the
  squared norm the search type prescribes (plus, for IVF residuals, the
  ``w <centroid, residual>`` term), so that for L2
  ``dist = bias + side - w * sum_m LUT[offsets[m] + code_m]`` and for inner
  product ``score = bias + sum_m LUT[...]`` whatever the search type. The
  weight w is 2, except for ST_LUT_nonorm under L2 where FAISS subtracts the
  inner product once (w = 1) and voisin does the same.
"""

import numpy as np
from numba import njit, prange

from ..metric import METRIC_L2
from . import FASTMATH
from .heap import finalize_heap, heap_init, heap_replace_top


# --- beam search -------------------------------------------------------------------

@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def beam_select(dots, cnorm, dist, B, codes, resid, cb, m, out_codes, out_resid, out_dist):
    """One beam-search stage over n vectors.

    ``dots`` (n*B, K): inner products of the B current residuals of each
    vector (``resid`` (n, >=B, d), squared norms ``dist`` (n, >=B)) with the
    K codewords ``cb`` (K, d) of stage ``m`` (squared norms ``cnorm``). The
    ``newB = out_dist.shape[1]`` best extensions go to ``out_codes`` (n, newB,
    M) (stages 0..m), ``out_resid`` (n, newB, d) and ``out_dist`` (n, newB),
    best first; their squared residual norms are recomputed exactly.
    """
    n = dist.shape[0]
    K, d = cb.shape
    newB = out_dist.shape[1]
    for i in prange(n):
        bd = np.empty(newB, dtype=np.float32)
        bi = np.empty(newB, dtype=np.int64)
        for t in range(newB):
            bd[t] = np.inf
            bi[t] = 0
        for b in range(B):
            row = dots[i * B + b]
            base = dist[i, b]
            for c in range(K):
                v = base + cnorm[c] - 2.0 * row[c]
                if v < bd[newB - 1]:
                    p = newB - 1
                    while p > 0 and bd[p - 1] > v:
                        bd[p] = bd[p - 1]
                        bi[p] = bi[p - 1]
                        p -= 1
                    bd[p] = v
                    bi[p] = b * K + c
        for t in range(newB):
            js = bi[t] // K
            ls = bi[t] - js * K
            for mm in range(m):
                out_codes[i, t, mm] = codes[i, js, mm]
            out_codes[i, t, m] = ls
            s = np.float32(0.0)
            for j in range(d):
                r = resid[i, js, j] - cb[ls, j]
                out_resid[i, t, j] = r
                s += r * r
            out_dist[i, t] = s


# --- bit fields --------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _read_bits(code, pos, nb):
    v = np.int64(0)
    got = 0
    while got < nb:
        byte = pos >> 3
        off = pos & 7
        take = min(8 - off, nb - got)
        v |= np.int64((np.int64(code[byte]) >> off) & ((1 << take) - 1)) << got
        got += take
        pos += take
    return v


@njit(parallel=True, cache=True, nogil=True)
def pack_fields(vals, widths, out):
    """Pack field values (n, F) int64 of ``widths[f]`` bits each into (n, >=code_size) bytes."""
    n, F = vals.shape
    nbytes = out.shape[1]
    for i in prange(n):
        for b in range(nbytes):
            out[i, b] = 0
        pos = 0
        for f in range(F):
            v = np.uint64(vals[i, f])
            rem = widths[f]
            while rem > 0:
                byte = pos >> 3
                off = pos & 7
                take = min(8 - off, rem)
                out[i, byte] |= np.uint8((v & np.uint64((1 << take) - 1)) << np.uint64(off))
                v >>= np.uint64(take)
                pos += take
                rem -= take


@njit(parallel=True, cache=True, nogil=True)
def unpack_fields(codes, widths, out):
    """Inverse of :func:`pack_fields`: codes (n, >=code_size) -> field values (n, F)."""
    n = codes.shape[0]
    F = widths.shape[0]
    for i in prange(n):
        pos = 0
        for f in range(F):
            out[i, f] = _read_bits(codes[i], pos, widths[f])
            pos += widths[f]


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def decode_codes(codes, widths, offsets, codebooks, out):
    """Sum of the M codewords of each code: codes (n, >=code_size) -> out (n, d)."""
    n = codes.shape[0]
    M = widths.shape[0]
    d = codebooks.shape[1]
    for i in prange(n):
        for j in range(d):
            out[i, j] = 0.0
        pos = 0
        for m in range(M):
            c = offsets[m] + _read_bits(codes[i], pos, widths[m])
            pos += widths[m]
            for j in range(d):
                out[i, j] += codebooks[c, j]


# --- look-up-table scans -----------------------------------------------------------

@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _ip8(lut, code, offsets, M):
    s0 = np.float32(0.0)
    s1 = np.float32(0.0)
    m = 0
    while m + 2 <= M:
        s0 += lut[offsets[m] + code[m]]
        s1 += lut[offsets[m + 1] + code[m + 1]]
        m += 2
    if m < M:
        s0 += lut[offsets[m] + code[m]]
    return s0 + s1


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _ip_generic(lut, code, offsets, widths, M):
    s = np.float32(0.0)
    pos = 0
    for m in range(M):
        s += lut[offsets[m] + _read_bits(code, pos, widths[m])]
        pos += widths[m]
    return s


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _cost(lut, code, side_v, bias, offsets, widths, M, all8, metric, ipw):
    if all8:
        ip = _ip8(lut, code, offsets, M)
    else:
        ip = _ip_generic(lut, code, offsets, widths, M)
    if metric == METRIC_L2:
        return bias + side_v - ipw * ip
    return -(bias + ip)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _scan_query(q, luts, probes, pbias, codes, side, side_col, ids, use_ids, offsets, sizes,
                cb_offsets, widths, all8, metric, ipw, max_codes, mask, use_mask, worst, D, I):
    M = widths.shape[0]
    rd = D[q]
    ri = I[q]
    heap_init(rd, ri)
    lut = luts[q]
    thr = rd[0]
    seen = 0
    for p in range(probes.shape[1]):
        l = probes[q, p]
        if l < 0:
            continue
        s = sizes[l]
        o = offsets[l]
        bias = pbias[q, p]
        for j in range(o, o + s):
            c = _cost(lut, codes[j], side[j, side_col], bias, cb_offsets, widths, M, all8,
                      metric, ipw)
            if c < thr:
                if use_mask and not mask[j]:
                    continue
                heap_replace_top(rd, ri, c, ids[j] if use_ids else j)
                thr = rd[0]
        seen += s
        if max_codes > 0 and seen >= max_codes:
            break
    finalize_heap(rd, ri, metric, worst)


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def scan_lists(luts, probes, pbias, codes, side, side_col, ids, use_ids, offsets, sizes,
               cb_offsets, widths, all8, metric, ipw, max_codes, mask, use_mask, worst, D, I):
    """k-NN over the probed lists of a slab of additive codes, queries across threads.

    ``luts`` (nq, total_K): query x codeword inner products; ``probes`` (nq, P)
    list numbers (-1 = none) with a per-probe ``pbias`` (L2: the squared
    distance the codes are relative to; IP: the score they add to). List l is
    slab rows ``offsets[l] .. offsets[l] + sizes[l]``; ``side[j, side_col]``
    is row j's side value (a float32 view of the same rows). ``mask`` is over
    slab rows; a result's id is ``ids[j]`` when ``use_ids`` else ``j``.
    D/I (nq, k) receive FAISS distances and ids, best first.
    """
    for q in prange(luts.shape[0]):
        _scan_query(q, luts, probes, pbias, codes, side, side_col, ids, use_ids, offsets, sizes,
                    cb_offsets, widths, all8, metric, ipw, max_codes, mask, use_mask, worst, D, I)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def scan_lists_serial(luts, probes, pbias, codes, side, side_col, ids, use_ids, offsets, sizes,
                      cb_offsets, widths, all8, metric, ipw, max_codes, mask, use_mask, worst, D, I):
    """:func:`scan_lists` on the calling thread: a few queries do not pay a thread launch."""
    for q in range(luts.shape[0]):
        _scan_query(q, luts, probes, pbias, codes, side, side_col, ids, use_ids, offsets, sizes,
                    cb_offsets, widths, all8, metric, ipw, max_codes, mask, use_mask, worst, D, I)


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def range_lists(luts, probes, pbias, codes, side, side_col, ids, use_ids, offsets, sizes,
                cb_offsets, widths, all8, metric, ipw, radius, max_codes, mask, use_mask):
    """Range search over the probed lists (L2: distance < radius; IP: score > radius).

    Two passes per query (count, fill); returns (lims (nq+1), D, I).
    """
    nq = luts.shape[0]
    M = widths.shape[0]
    counts = np.zeros(nq, dtype=np.int64)
    for q in prange(nq):
        cnt = 0
        seen = 0
        for p in range(probes.shape[1]):
            l = probes[q, p]
            if l < 0:
                continue
            for j in range(offsets[l], offsets[l] + sizes[l]):
                if use_mask and not mask[j]:
                    continue
                c = _cost(luts[q], codes[j], side[j, side_col], pbias[q, p], cb_offsets, widths, M,
                          all8, metric, ipw)
                if (metric == METRIC_L2 and c < radius) or (metric != METRIC_L2 and -c > radius):
                    cnt += 1
            seen += sizes[l]
            if max_codes > 0 and seen >= max_codes:
                break
        counts[q] = cnt
    lims = np.zeros(nq + 1, dtype=np.int64)
    for q in range(nq):
        lims[q + 1] = lims[q] + counts[q]
    Dr = np.empty(lims[nq], dtype=np.float32)
    Ir = np.empty(lims[nq], dtype=np.int64)
    for q in prange(nq):
        at = lims[q]
        seen = 0
        for p in range(probes.shape[1]):
            l = probes[q, p]
            if l < 0:
                continue
            for j in range(offsets[l], offsets[l] + sizes[l]):
                if use_mask and not mask[j]:
                    continue
                c = _cost(luts[q], codes[j], side[j, side_col], pbias[q, p], cb_offsets, widths, M,
                          all8, metric, ipw)
                if metric == METRIC_L2:
                    if c < radius:
                        Dr[at] = c
                        Ir[at] = ids[j] if use_ids else j
                        at += 1
                elif -c > radius:
                    Dr[at] = -c
                    Ir[at] = ids[j] if use_ids else j
                    at += 1
            seen += sizes[l]
            if max_codes > 0 and seen >= max_codes:
                break
    return lims, Dr, Ir
