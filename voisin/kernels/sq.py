"""Scalar-quantizer kernels: encode, decode and distance scans over SQ codes.

Every supported code type decodes each component with an affine map
``x_t = a_t + b_t * c_t`` of an integer ``c_t`` (SQ8: the byte, SQ4: the
nibble) or through a look-up table (fp16: a 65536-entry table; bf16: the
top 16 bits of a float32). ``a``/``b`` fold FAISS's ``vmin + (c + 0.5) / K * vdiff``
once per index, so a distance costs one FMA per component.

``kind`` selects the layout: KIND_8BIT (one byte per component),
KIND_4BIT (two components per byte, low nibble first), KIND_6BIT (a
little-endian stream of 6-bit values: four components in three bytes), KIND_FP16,
KIND_BF16 (two little-endian bytes per component).
"""

import numpy as np
from numba import njit, prange

from ..metric import METRIC_L2
from . import FASTMATH
from .heap import heap_init, heap_replace_top, heap_sort_inplace


KIND_8BIT = 0
KIND_4BIT = 1
KIND_FP16 = 2
KIND_BF16 = 3
KIND_6BIT = 4


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def encode_levels(x, vmin, vdiff, levels, bits, out):
    """FAISS's non-uniform SQ encoding: c = floor(levels * clip((x - vmin) / vdiff, 0, 1)).

    ``levels`` is 2**bits - 1: 255 (SQ8), 63 (SQ6) or 15 (SQ4). Below 8 bits the
    codes form a little-endian bit stream (component t at bits [t*bits, (t+1)*bits)),
    which for SQ4 puts component 2i in the low nibble.
    """
    n, d = x.shape
    for i in range(n):
        if bits != 8:
            for b in range(out.shape[1]):
                out[i, b] = 0
        for t in range(d):
            v = 0.0
            if vdiff[t] != 0:
                v = (x[i, t] - vmin[t]) / vdiff[t]
            if v < 0.0:
                v = 0.0
            if v > 1.0:
                v = 1.0
            c = np.int64(levels * v)
            if bits == 8:
                out[i, t] = np.uint8(c)
            else:
                pos = t * bits
                shift = pos & 7
                out[i, pos >> 3] |= np.uint8((c << shift) & 255)
                if shift + bits > 8:
                    out[i, (pos >> 3) + 1] |= np.uint8(c >> (8 - shift))


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _six(code, t):
    """Component t of a 6-bit stream."""
    pos = 6 * t
    byte = pos >> 3
    shift = pos & 7
    v = np.int64(code[byte]) >> shift
    if shift > 2:
        v |= np.int64(code[byte + 1]) << (8 - shift)
    return v & 63


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _component(code, t, kind, a, b, lut):
    if kind == KIND_8BIT:
        return a[t] + b[t] * np.float32(code[t])
    if kind == KIND_4BIT:
        c = (code[t >> 1] >> ((t & 1) << 2)) & 15
        return a[t] + b[t] * np.float32(c)
    if kind == KIND_6BIT:
        return a[t] + b[t] * np.float32(_six(code, t))
    h = np.int64(code[2 * t]) | (np.int64(code[2 * t + 1]) << 8)
    return lut[h]


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def decode(codes, kind, a, b, lut, out):
    n, d = out.shape
    for i in prange(n):
        for t in range(d):
            out[i, t] = _component(codes[i], t, kind, a, b, lut)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _dist(q, code, kind, a, b, lut, metric):
    """L2 distance or inner product between a float query and one code."""
    d = q.shape[0]
    acc = np.float32(0.0)
    if kind == KIND_8BIT:
        if metric == METRIC_L2:
            for t in range(d):
                e = q[t] - (a[t] + b[t] * np.float32(code[t]))
                acc += e * e
        else:
            for t in range(d):
                acc += q[t] * (a[t] + b[t] * np.float32(code[t]))
        return acc
    if kind == KIND_4BIT:
        for t2 in range(d >> 1):
            byte = code[t2]
            t = 2 * t2
            x0 = a[t] + b[t] * np.float32(byte & 15)
            x1 = a[t + 1] + b[t + 1] * np.float32(byte >> 4)
            if metric == METRIC_L2:
                e0 = q[t] - x0
                e1 = q[t + 1] - x1
                acc += e0 * e0 + e1 * e1
            else:
                acc += q[t] * x0 + q[t + 1] * x1
        if d & 1:
            t = d - 1
            x0 = a[t] + b[t] * np.float32(code[t >> 1] & 15)
            if metric == METRIC_L2:
                acc += (q[t] - x0) * (q[t] - x0)
            else:
                acc += q[t] * x0
        return acc
    if kind == KIND_6BIT:
        for t in range(d):
            x0 = a[t] + b[t] * np.float32(_six(code, t))
            if metric == METRIC_L2:
                e = q[t] - x0
                acc += e * e
            else:
                acc += q[t] * x0
        return acc
    for t in range(d):
        h = np.int64(code[2 * t]) | (np.int64(code[2 * t + 1]) << 8)
        if metric == METRIC_L2:
            e = q[t] - lut[h]
            acc += e * e
        else:
            acc += q[t] * lut[h]
    return acc


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _scan(q, bias, codes, ids, o, s, kind, a, b, lut, metric, rd, ri, mask, use_mask):
    """Fold rows o .. o+s of ``codes`` into the heap; ``bias`` is added to
    inner products (the <q, centroid> term of residual IVF)."""
    thr = rd[0]
    for j in range(o, o + s):
        v = _dist(q, codes[j], kind, a, b, lut, metric)
        cost = v if metric == METRIC_L2 else -(v + bias)
        if cost < thr:
            if use_mask and not mask[j]:
                continue
            heap_replace_top(rd, ri, cost, ids[j])
            thr = rd[0]


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _finish(rd, ri, metric, worst):
    heap_sort_inplace(rd, ri)
    for t in range(rd.shape[0]):
        if ri[t] < 0:
            rd[t] = worst
        elif metric != METRIC_L2:
            rd[t] = -rd[t]


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def flat_search(xq, codes, n, kind, a, b, lut, metric, mask, use_mask, worst, D, I):
    """Exhaustive search over ``n`` codes whose ids are their positions."""
    ids = np.arange(n)
    for i in prange(xq.shape[0]):
        heap_init(D[i], I[i])
        _scan(xq[i], np.float32(0.0), codes, ids, 0, n, kind, a, b, lut, metric, D[i], I[i], mask,
              use_mask)
        _finish(D[i], I[i], metric, worst)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _ivf_query(q, probe, cent, by_residual, codes, ids, offsets, sizes, kind, a, b, lut, metric,
               max_codes, mask, use_mask, rd, ri, r):
    heap_init(rd, ri)
    d = q.shape[0]
    scanned = 0
    for p in range(probe.shape[0]):
        l = probe[p]
        if l < 0 or sizes[l] == 0:
            continue
        bias = np.float32(0.0)
        if by_residual:
            if metric == METRIC_L2:
                for t in range(d):
                    r[t] = q[t] - cent[l, t]
            else:
                for t in range(d):
                    r[t] = q[t]
                    bias += q[t] * cent[l, t]
        else:
            for t in range(d):
                r[t] = q[t]
        _scan(r, bias, codes, ids, offsets[l], sizes[l], kind, a, b, lut, metric, rd, ri, mask, use_mask)
        scanned += sizes[l]
        if max_codes > 0 and scanned >= max_codes:
            break


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def ivf_search_batch(xq, probes, cent, by_residual, codes, ids, offsets, sizes, kind, a, b, lut,
                     metric, max_codes, mask, use_mask, worst, D, I):
    d = xq.shape[1]
    for i in prange(xq.shape[0]):
        r = np.empty(d, dtype=np.float32)
        _ivf_query(xq[i], probes[i], cent, by_residual, codes, ids, offsets, sizes, kind, a, b, lut,
                   metric, max_codes, mask, use_mask, D[i], I[i], r)
        _finish(D[i], I[i], metric, worst)


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def ivf_range_search(xq, probes, cent, by_residual, codes, ids, offsets, sizes, kind, a, b, lut,
                     metric, radius, max_codes, mask, use_mask):
    """Range search over the probed lists (two passes: count, fill)."""
    nq, d = xq.shape
    counts = np.zeros(nq, dtype=np.int64)
    for phase in range(2):
        if phase == 1:
            lims = np.zeros(nq + 1, dtype=np.int64)
            for i in range(nq):
                lims[i + 1] = lims[i] + counts[i]
            D = np.empty(lims[nq], dtype=np.float32)
            I = np.empty(lims[nq], dtype=np.int64)
        else:
            lims = np.zeros(1, dtype=np.int64)
            D = np.empty(0, dtype=np.float32)
            I = np.empty(0, dtype=np.int64)
        for i in prange(nq):
            r = np.empty(d, dtype=np.float32)
            q = xq[i]
            w = lims[i] if phase == 1 else 0
            cnt = 0
            scanned = 0
            for p in range(probes.shape[1]):
                l = probes[i, p]
                if l < 0:
                    continue
                bias = np.float32(0.0)
                for t in range(d):
                    r[t] = q[t]
                if by_residual:
                    if metric == METRIC_L2:
                        for t in range(d):
                            r[t] = q[t] - cent[l, t]
                    else:
                        for t in range(d):
                            bias += q[t] * cent[l, t]
                for j in range(offsets[l], offsets[l] + sizes[l]):
                    if use_mask and not mask[j]:
                        continue
                    v = _dist(r, codes[j], kind, a, b, lut, metric)
                    if metric != METRIC_L2:
                        v += bias
                    if (metric == METRIC_L2 and v < radius) or (metric != METRIC_L2 and v > radius):
                        if phase == 1:
                            D[w] = v
                            I[w] = ids[j]
                            w += 1
                        cnt += 1
                scanned += sizes[l]
                if max_codes > 0 and scanned >= max_codes:
                    break
            if phase == 0:
                counts[i] = cnt
        if phase == 1:
            return lims, D, I
    return np.zeros(nq + 1, dtype=np.int64), np.empty(0, dtype=np.float32), np.empty(0, dtype=np.int64)
