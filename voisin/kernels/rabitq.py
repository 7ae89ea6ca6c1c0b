"""RaBitQ kernels: 1-bit codes with two float factors per vector, and the
distance estimator between a (possibly scalar-quantized) query and a code.

Layout of one 1-bit code (FAISS's ``RaBitQuantizer``, nb_bits=1): ``(d+7)//8``
bytes of sign bits (bit j of byte j//8 set when ``x_j - c_j > 0``), then two
little-endian float32: ``or_minus_c_l2sqr`` (``||x - c||^2``, minus ``||x||^2``
under inner product) and ``dp_multiplier`` (``||x - c|| / <o, sign(o)/sqrt(d)>``
with ``o`` the unit residual).

No fastmath here: the encoder sums in float32, one component after another,
exactly as FAISS's scalar loop, so the bytes are the same; the estimator
follows FAISS's operation order so the distances agree to the last bits.
"""

import numpy as np
from numba import njit, prange

from .heap import finalize_heap, heap_init, heap_replace_top

_L2 = 1  # voisin.metric.METRIC_L2
_EPS = np.float32(np.finfo(np.float32).eps)

# FAISS's Z_MAX_BY_QB: radius (in units of ||q - c|| / sqrt(d)) of the centred
# query grid for qb = 1 .. 8 bits
Z_MAX_BY_QB = np.array([0.79688, 1.49375, 2.05078, 2.50938, 2.91250, 3.26406, 3.59844, 3.91016],
                       dtype=np.float32)

# query factors, one float32 vector per (query, centroid)
F_C1 = 0
F_C2 = 1
F_C34 = 2
F_QR_TO_C = 3
F_QR_NORM = 4
F_INT_SCALE = 5
NF = 6


@njit(cache=True, nogil=True)
def train_center(x):
    """Mean of the rows, summed in float32 row after row (FAISS's IndexRaBitQ::train)."""
    n, d = x.shape
    c = np.zeros(d, dtype=np.float32)
    for i in range(n):
        for j in range(d):
            c[j] = np.float32(c[j] + x[i, j])
    if n:
        fn = np.float32(n)
        for j in range(d):
            c[j] = np.float32(c[j] / fn)
    return c


@njit(cache=True, nogil=True)
def _put_f32(out, pos, v):
    b = np.empty(1, dtype=np.float32)
    b[0] = v
    u = b.view(np.uint8)
    for t in range(4):
        out[pos + t] = u[t]


@njit(cache=True, nogil=True)
def _get_f32(code, pos):
    b = np.empty(4, dtype=np.uint8)
    for t in range(4):
        b[t] = code[pos + t]
    return b.view(np.float32)[0]


@njit(cache=True, nogil=True)
def _encode_row(x, c, metric, out):
    d = x.shape[0]
    bs = (d + 7) // 8
    for t in range(out.shape[0]):
        out[t] = 0
    norm2 = np.float32(0.0)
    or2 = np.float32(0.0)
    dp = np.float32(0.0)
    for j in range(d):
        r = np.float32(x[j] - c[j])
        norm2 = np.float32(norm2 + np.float32(r * r))
        or2 = np.float32(or2 + np.float32(x[j] * x[j]))
        if r > np.float32(0.0):
            dp = np.float32(dp + r)
            out[j >> 3] |= np.uint8(1 << (j & 7))
        else:
            dp = np.float32(dp - r)
    inv_d_sqrt = np.float32(1.0) / np.sqrt(np.float32(d)) if d else np.float32(1.0)
    sq = np.sqrt(norm2)
    inv_norm = np.float32(1.0) if norm2 < _EPS else np.float32(np.float32(1.0) / sq)
    ndp = np.float32(np.float32(dp * inv_norm) * inv_d_sqrt)
    inv_dp = np.float32(1.0) if abs(ndp) < _EPS else np.float32(np.float32(1.0) / ndp)
    first = np.float32(norm2 - or2) if metric != _L2 else norm2
    _put_f32(out, bs, first)
    _put_f32(out, bs + 4, np.float32(inv_dp * sq))


@njit(parallel=True, cache=True, nogil=True)
def encode(x, cent, list_nos, use_lists, metric, out):
    """1-bit codes of the rows of ``x`` against centroid ``cent[list_nos[i]]``
    (``cent[0]`` for every row when not ``use_lists``); rows whose list is
    negative are left zero."""
    for i in prange(x.shape[0]):
        l = list_nos[i] if use_lists else 0
        if l < 0:
            for t in range(out.shape[1]):
                out[i, t] = 0
            continue
        _encode_row(x[i], cent[l], metric, out[i])


@njit(parallel=True, cache=True, nogil=True)
def decode(codes, cent, list_nos, use_lists, out):
    """``(bit - 1/2) * dp_multiplier * 2 / sqrt(d) + c``, FAISS's decode_core."""
    d = out.shape[1]
    bs = (d + 7) // 8
    inv_d_sqrt = np.float32(1.0) / np.sqrt(np.float32(d)) if d else np.float32(1.0)
    for i in prange(codes.shape[0]):
        l = list_nos[i] if use_lists else 0
        dpm = _get_f32(codes[i], bs + 4)
        for j in range(d):
            bit = np.float32(1.0) if (codes[i, j >> 3] >> (j & 7)) & 1 else np.float32(0.0)
            v = np.float32(np.float32(np.float32(bit - np.float32(0.5)) * dpm) * np.float32(2.0))
            out[i, j] = np.float32(np.float32(v * inv_d_sqrt) + cent[l, j])


@njit(cache=True, nogil=True)
def _round_half_away(v):
    # std::round on a non-negative float: halves go up (np.round would go to even)
    f = np.floor(v)
    return f + np.float32(1.0) if v - f >= np.float32(0.5) else f


@njit(cache=True, nogil=True)
def query_setup(q, c, qb, centered, metric, rq, qq, fac):
    """Query factors against centroid ``c`` (FAISS's compute_query_factors, or
    the unquantized computer when qb == 0). Fills ``rq`` (q - c), ``qq`` (the
    qb-bit grid values) and ``fac``."""
    d = q.shape[0]
    l2 = np.float32(0.0)
    for j in range(d):
        r = np.float32(q[j] - c[j])
        rq[j] = r
        l2 = np.float32(l2 + np.float32(r * r))
    fac[F_QR_TO_C] = l2
    qn = np.float32(0.0)
    if metric != _L2:
        for j in range(d):
            qn = np.float32(qn + np.float32(q[j] * q[j]))
    fac[F_QR_NORM] = qn
    fac[F_INT_SCALE] = np.float32(1.0)
    inv_d = np.float32(1.0) / np.sqrt(np.float32(d)) if d else np.float32(1.0)
    if qb == 0:
        s = np.float32(0.0)
        for j in range(d):
            s = np.float32(s + rq[j])
        fac[F_C1] = np.float32(np.float32(2.0) * inv_d)
        fac[F_C2] = np.float32(0.0)
        fac[F_C34] = np.float32(s * inv_d)
        return
    if centered:
        radius = np.float32(Z_MAX_BY_QB[qb - 1] * np.sqrt(np.float32(l2 / np.float32(d))))
        vmin = -radius
        vmax = radius
    else:
        vmin = np.float32(np.inf)
        vmax = np.float32(-np.inf)
        for j in range(d):
            vmin = min(vmin, rq[j])
            vmax = max(vmax, rq[j])
    max_code = (1 << qb) - 1
    delta = np.float32(np.float32(vmax - vmin) / np.float32(max_code))
    inv_delta = np.float32(np.float32(1.0) / delta)
    sum_qq = 0
    sum2 = 0
    for j in range(d):
        v = _round_half_away(np.float32(np.float32(rq[j] - vmin) * inv_delta))
        if not (v >= np.float32(0.0)):  # also NaN (a zero-width grid): FAISS's clamp gives 0
            v = np.float32(0.0)
        if v > np.float32(max_code):
            v = np.float32(max_code)
        iv = np.int64(v)
        qq[j] = iv
        sum_qq += iv
        if centered:
            s = 2 * iv - max_code
            sum2 += s * s
    fac[F_C1] = np.float32(np.float32(np.float32(2.0) * delta) * inv_d)
    fac[F_C2] = np.float32(np.float32(np.float32(2.0) * vmin) * inv_d)
    fac[F_C34] = np.float32(inv_d * np.float32(np.float32(delta * np.float32(sum_qq))
                                               + np.float32(np.float32(d) * vmin)))
    if centered:
        fac[F_INT_SCALE] = np.float32(np.sqrt(np.float32(l2 / np.float32(sum2 * d))))


@njit(cache=True, nogil=True)
def distance(code, d, qb, centered, metric, rq, qq, fac):
    """FAISS's RaBitQ distance estimate between the set-up query and one code
    (an L2 distance, or an inner product under METRIC_INNER_PRODUCT)."""
    bs = (d + 7) // 8
    if qb == 0:
        dot = np.float32(0.0)
        pop = 0
        for j in range(d):
            if (code[j >> 3] >> (j & 7)) & 1:
                dot = np.float32(dot + rq[j])
                pop += 1
        fd = np.float32(np.float32(np.float32(fac[F_C1] * dot) + np.float32(fac[F_C2] * np.float32(pop)))
                        - fac[F_C34])
    elif centered:
        max_code = (1 << qb) - 1
        acc = 0
        for j in range(d):
            b = 2 * ((code[j >> 3] >> (j & 7)) & 1) - 1
            acc += (2 * qq[j] - max_code) * b
        fd = np.float32(np.float32(acc) * fac[F_INT_SCALE])
    else:
        dot = 0
        pop = 0
        for j in range(d):
            if (code[j >> 3] >> (j & 7)) & 1:
                dot += qq[j]
                pop += 1
        fd = np.float32(np.float32(np.float32(fac[F_C1] * np.float32(dot))
                                   + np.float32(fac[F_C2] * np.float32(pop))) - fac[F_C34])
    a = _get_f32(code, bs)
    m = _get_f32(code, bs + 4)
    pre = np.float32(np.float32(a + fac[F_QR_TO_C]) - np.float32(np.float32(np.float32(2.0) * m) * fd))
    if metric == _L2:
        return max(np.float32(0.0), pre)
    return np.float32(np.float32(-0.5) * np.float32(pre - fac[F_QR_NORM]))


@njit(cache=True, nogil=True)
def _scan(codes, ids, o, s, d, qb, centered, metric, rq, qq, fac, mask, use_mask, rd, ri):
    thr = rd[0]
    for j in range(o, o + s):
        if use_mask and not mask[j]:
            continue
        v = distance(codes[j], d, qb, centered, metric, rq, qq, fac)
        cost = v if metric == _L2 else -v
        if cost < thr:
            heap_replace_top(rd, ri, cost, ids[j])
            thr = rd[0]


@njit(parallel=True, cache=True, nogil=True)
def flat_search(xq, codes, n, cent, qb, centered, metric, mask, use_mask, worst, D, I):
    """Exhaustive k-NN over ``n`` codes whose ids are their positions."""
    nq, d = xq.shape
    ids = np.arange(n)
    for i in prange(nq):
        rq = np.empty(d, dtype=np.float32)
        qq = np.empty(d, dtype=np.int64)
        fac = np.empty(NF, dtype=np.float32)
        query_setup(xq[i], cent, qb, centered, metric, rq, qq, fac)
        heap_init(D[i], I[i])
        _scan(codes, ids, 0, n, d, qb, centered, metric, rq, qq, fac, mask, use_mask, D[i], I[i])
        finalize_heap(D[i], I[i], metric, worst)


@njit(parallel=True, cache=True, nogil=True)
def ivf_search(xq, probes, cent, codes, ids, offsets, sizes, qb, centered, metric, max_codes, mask,
               use_mask, worst, D, I):
    """k-NN over the probed lists; the codes of list l are residuals to ``cent[l]``."""
    nq, d = xq.shape
    for i in prange(nq):
        rq = np.empty(d, dtype=np.float32)
        qq = np.empty(d, dtype=np.int64)
        fac = np.empty(NF, dtype=np.float32)
        heap_init(D[i], I[i])
        scanned = 0
        for p in range(probes.shape[1]):
            l = probes[i, p]
            if l < 0 or sizes[l] == 0:
                continue
            query_setup(xq[i], cent[l], qb, centered, metric, rq, qq, fac)
            _scan(codes, ids, offsets[l], sizes[l], d, qb, centered, metric, rq, qq, fac, mask,
                  use_mask, D[i], I[i])
            scanned += sizes[l]
            if max_codes > 0 and scanned >= max_codes:
                break
        finalize_heap(D[i], I[i], metric, worst)


@njit(parallel=True, cache=True, nogil=True)
def ivf_range_search(xq, probes, cent, codes, ids, offsets, sizes, qb, centered, metric, radius,
                     max_codes, mask, use_mask):
    """Range search over the probed lists (L2: estimate < radius, IP: > radius);
    two passes, count then fill. A flat index passes one list holding everything."""
    nq, d = xq.shape
    counts = np.zeros(nq, dtype=np.int64)
    lims = np.zeros(nq + 1, dtype=np.int64)
    D = np.empty(0, dtype=np.float32)
    I = np.empty(0, dtype=np.int64)
    for phase in range(2):
        if phase == 1:
            for i in range(nq):
                lims[i + 1] = lims[i] + counts[i]
            D = np.empty(lims[nq], dtype=np.float32)
            I = np.empty(lims[nq], dtype=np.int64)
        for i in prange(nq):
            rq = np.empty(d, dtype=np.float32)
            qq = np.empty(d, dtype=np.int64)
            fac = np.empty(NF, dtype=np.float32)
            w = lims[i]
            cnt = 0
            scanned = 0
            for p in range(probes.shape[1]):
                l = probes[i, p]
                if l < 0 or sizes[l] == 0:
                    continue
                query_setup(xq[i], cent[l], qb, centered, metric, rq, qq, fac)
                for j in range(offsets[l], offsets[l] + sizes[l]):
                    if use_mask and not mask[j]:
                        continue
                    v = distance(codes[j], d, qb, centered, metric, rq, qq, fac)
                    if (v < radius) if metric == _L2 else (v > radius):
                        if phase == 1:
                            D[w + cnt] = v
                            I[w + cnt] = ids[j]
                        cnt += 1
                scanned += sizes[l]
                if max_codes > 0 and scanned >= max_codes:
                    break
            counts[i] = cnt
    return lims, D, I
