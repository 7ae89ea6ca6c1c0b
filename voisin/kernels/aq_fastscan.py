"""Additive-quantizer fast-scan kernels (FAISS ``IndexAdditiveQuantizerFastScan``).

The codes are 4-bit additive-quantizer codes laid out in FAISS's blocks of 32
(``voisin.kernels.fastscan``); under L2 the last two 4-bit fields are the
2x4-bit norm. Per query the float table (M rows of 16: ``-2 <q, c>`` for
L2, ``<q, c>`` for inner product, then the two norm tables divided by
``norm_scale``) is quantized as FAISS's ``round_uint8_per_column`` does: one
scale ``a = 255 / max span`` for every row, no 16-bit bound. The last pair of
sub-quantizers is multiplied by ``norm_scale`` in 16 bits (FAISS's
``NormTableScaler``), and a distance is ``sum / a + b``, b the sum of the
rows' minima, as FAISS (the norm rows' minima enter b unscaled, as in FAISS).

Inner product keeps the largest sums. The scan keeps the smallest costs, so
the entries are complemented (``255 - t``): the sums are then
``255 * M - sum``, exactly, and the cost their negated distance.
"""

import numpy as np
from numba import njit, prange

from ..metric import METRIC_L2
from . import FASTMATH
from .fastscan import scan_blocks, scan_blocks_scaled
from .heap import finalize_heap, heap_init


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def round_uint8_per_column(lut, M2, complement, T):
    """FAISS's round_uint8_per_column of a float table (M, 16) into T (M2 * 16,) uint8.

    Returns (a, b): distance ~= sum / a + b. ``complement`` stores 255 - t.
    """
    M = lut.shape[0]
    max_span = np.float32(0.0)
    b = np.float32(0.0)
    for m in range(M):
        mn = lut[m, 0]
        mx = lut[m, 0]
        for j in range(1, 16):
            mn = min(mn, lut[m, j])
            mx = max(mx, lut[m, j])
        max_span = max(max_span, mx - mn)
    # FAISS takes a = 0 for a constant table (every distance is then b); 1
    # gives the same distances without dividing by zero
    a = np.float32(255.0) / max_span if max_span > 0 else np.float32(1.0)
    for m in range(M):
        mn = lut[m, 0]
        for j in range(1, 16):
            mn = min(mn, lut[m, j])
        b += mn
        for j in range(16):
            t = np.int32(np.floor((lut[m, j] - mn) * a + np.float32(0.5)))
            t = min(max(t, 0), 255)
            T[m * 16 + j] = 255 - t if complement else t
    for m in range(M, M2):
        for j in range(16):
            T[m * 16 + j] = 0
    return a, b


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def aq_query(lut, packed, b0, n, M2, metric, norm_scale, ids, id0, mask, use_mask, T, acc, rd, ri):
    """Fold the n vectors in blocks b0.. into the heap (rd, ri) for one float table."""
    M = lut.shape[0]
    if metric == METRIC_L2:
        a, b = round_uint8_per_column(lut, M2, False, T)
        scan_blocks_scaled(packed, b0, n, T, M2, norm_scale, a, b, ids, id0, mask, use_mask, rd,
                           ri, acc)
    else:
        a, b = round_uint8_per_column(lut, M2, True, T)
        bias = -b - np.float32(255 * M) / a
        scan_blocks(packed, b0, n, T, M2, a, bias, ids, id0, mask, use_mask, rd, ri, acc)


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def aq_search(luts, packed, n, M2, metric, norm_scale, ids, mask, use_mask, worst, parallel, D, I):
    """Flat k-NN: ``luts`` (nq, M, 16) float tables, one per query."""
    nq = luts.shape[0]
    nchunks = min(nq, 64) if parallel else 1
    for ch in prange(nchunks):
        T = np.empty(M2 * 16, dtype=np.uint8)
        acc = np.empty(64, dtype=np.uint16)
        for i in range(ch, nq, nchunks):
            heap_init(D[i], I[i])
            aq_query(luts[i], packed, 0, n, M2, metric, norm_scale, ids, 0, mask, use_mask, T, acc,
                     D[i], I[i])
            finalize_heap(D[i], I[i], metric, worst)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def aq_search_serial(luts, packed, n, M2, metric, norm_scale, ids, mask, use_mask, worst, D, I):
    T = np.empty(M2 * 16, dtype=np.uint8)
    acc = np.empty(64, dtype=np.uint16)
    for i in range(luts.shape[0]):
        heap_init(D[i], I[i])
        aq_query(luts[i], packed, 0, n, M2, metric, norm_scale, ids, 0, mask, use_mask, T, acc,
                 D[i], I[i])
        finalize_heap(D[i], I[i], metric, worst)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def norm_scale_ratio(luts, M_norm):
    """Mean over rows of FAISS's aq_estimate_norm_scale: the norm tables' largest
    span over the other tables' largest span (float64 sum, as FAISS)."""
    n, M = luts.shape[0], luts.shape[1]
    total = 0.0
    for i in range(n):
        span_ip = np.float32(-np.inf)
        span_norm = np.float32(-np.inf)
        for m in range(M):
            mn = luts[i, m, 0]
            mx = luts[i, m, 0]
            for j in range(1, 16):
                mn = min(mn, luts[i, m, j])
                mx = max(mx, luts[i, m, j])
            if m < M - M_norm:
                span_ip = max(span_ip, mx - mn)
            else:
                span_norm = max(span_norm, mx - mn)
        total += np.float64(np.float32(span_norm / span_ip))
    return total / n if n else 1.0


# --- IVF (IndexIVFAdditiveQuantizerFastScan) -------------------------------------------

@njit(cache=True, nogil=True, fastmath=FASTMATH)
def quantize_lut_and_bias(lut, bias, use_bias, M2, complement, T, biasq):
    """FAISS's quantize_LUT_and_bias for one shared table (M, 16) and per-probe
    biases (nprobe,): a = min(255 / max span, 65535 / (bias span + sum of spans)).

    Writes T (M2 * 16,) and biasq (nprobe,) (the biases in units of 1/a,
    rounded as FAISS's uint16), returns (a, b).
    """
    M = lut.shape[0]
    max_span = np.float32(-np.inf)
    span_dis = np.float32(0.0)
    bmin = np.float32(0.0)
    if use_bias:
        bmin = bias[0]
        bmax = bias[0]
        for j in range(1, bias.shape[0]):
            bmin = min(bmin, bias[j])
            bmax = max(bmax, bias[j])
        span_dis = bmax - bmin
    b = np.float32(0.0)
    for m in range(M):
        mn = lut[m, 0]
        mx = lut[m, 0]
        for j in range(1, 16):
            mn = min(mn, lut[m, j])
            mx = max(mx, lut[m, j])
        max_span = max(max_span, mx - mn)
        span_dis += mx - mn
        b += mn
    a1 = np.float32(255.0) / max_span if max_span > 0 else np.float32(np.inf)
    a2 = np.float32(65535.0) / span_dis if span_dis > 0 else np.float32(np.inf)
    a = min(a1, a2)
    if not np.isfinite(a):
        a = np.float32(1.0)
    b += bmin
    for m in range(M):
        mn = lut[m, 0]
        for j in range(1, 16):
            mn = min(mn, lut[m, j])
        for j in range(16):
            t = np.int32(np.floor((lut[m, j] - mn) * a + np.float32(0.5)))
            t = min(max(t, 0), 255)
            T[m * 16 + j] = 255 - t if complement else t
    for m in range(M, M2):
        for j in range(16):
            T[m * 16 + j] = 0
    if use_bias:
        for j in range(bias.shape[0]):
            biasq[j] = np.float32(np.uint16(np.int32(np.floor((bias[j] - bmin) * a + np.float32(0.5)))))
    else:
        for j in range(biasq.shape[0]):
            biasq[j] = 0
    return a, b


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _ivf_aq_query(lut, probe, bias, use_bias, packed, blk_off, offsets, sizes, ids, M2, metric,
                  norm_scale, max_codes, mask, use_mask, T, biasq, acc, rd, ri):
    M = lut.shape[0]
    l2 = metric == METRIC_L2
    a, b = quantize_lut_and_bias(lut, bias, use_bias, M2, not l2, T, biasq)
    heap_init(rd, ri)
    scanned = 0
    for p in range(probe.shape[0]):
        l = probe[p]
        if l < 0:
            continue
        s = sizes[l]
        if s == 0:
            continue
        if l2:
            # FAISS: (sum + biasq) / a + b
            scan_blocks_scaled(packed, blk_off[l], s, T, M2, norm_scale, a, biasq[p] / a + b, ids,
                               offsets[l], mask, use_mask, rd, ri, acc)
        else:
            # complemented entries: cost = -((255 M - sum'') + biasq) / a - b
            cbias = -(np.float32(255 * M) + biasq[p]) / a - b
            scan_blocks(packed, blk_off[l], s, T, M2, a, cbias, ids, offsets[l], mask, use_mask,
                        rd, ri, acc)
        scanned += s
        if max_codes > 0 and scanned >= max_codes:
            break


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def ivf_aq_search(luts, probes, biases, use_bias, packed, blk_off, offsets, sizes, ids, M2, metric,
                  norm_scale, max_codes, mask, use_mask, worst, D, I):
    """IVF k-NN: ``luts`` (nq, M, 16) shared by every list, ``biases`` (nq, nprobe)
    the per-(query, list) constants (FAISS's ``coef * <q, c>``)."""
    nq = luts.shape[0]
    nchunks = min(nq, 256)
    for ch in prange(nchunks):
        T = np.empty(M2 * 16, dtype=np.uint8)
        biasq = np.empty(probes.shape[1], dtype=np.float32)
        acc = np.empty(64, dtype=np.uint16)
        for i in range(ch, nq, nchunks):
            _ivf_aq_query(luts[i], probes[i], biases[i], use_bias, packed, blk_off, offsets, sizes,
                          ids, M2, metric, norm_scale, max_codes, mask, use_mask, T, biasq, acc,
                          D[i], I[i])
            finalize_heap(D[i], I[i], metric, worst)
