"""RaBitQ kernels: 1-bit codes with two float factors per vector, and the
distance estimator between a (possibly scalar-quantized) query and a code.

Layout of one 1-bit code (FAISS's ``RaBitQuantizer``, nb_bits=1): ``(d+7)//8``
bytes of sign bits (bit j of byte j//8 set when ``x_j - c_j > 0``), then two
little-endian float32: ``or_minus_c_l2sqr`` (``||x - c||^2``, minus ``||x||^2``
under inner product) and ``dp_multiplier`` (``||x - c|| / <o, sign(o)/sqrt(d)>``
with ``o`` the unit residual).

Multi-bit codes (nb_bits = 1 + ex_bits, FAISS's ``RaBitQuantizerMultiBit``):
the sign bytes, three float32 (the two above and ``f_error``, the bound used by
the two-stage search), ``(d*ex_bits+7)//8`` bytes of ex-bit magnitudes (LSB
first, component after component) and two float32 ``f_add_ex``,
``f_rescale_ex``.

Encoding lives in ``rabitq_encode.py`` (its entry points are re-exported
here), with the float32 reductions that replay faiss-cpu's SIMD ``fvec_*``
sums; the query factors use them too. No fastmath: the estimator follows
FAISS's operation order so the distances agree to the last bits.
"""

import numpy as np
from numba import njit, prange

from .heap import finalize_heap, heap_init, heap_replace_top
from .rabitq_encode import decode, encode, fv_dot, fv_l2sqr, get_f32, train_center

__all__ = ["Z_MAX_BY_QB", "NF", "train_center", "encode", "decode", "query_setup", "distance",
           "full_distance", "code_distance", "flat_search", "ivf_search", "ivf_range_search"]

_L2 = 1  # voisin.metric.METRIC_L2

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
F_Q_DOT_C = 6
F_G_ERROR = 7
NF = 8


@njit(cache=True, nogil=True)
def _round_half_away(v):
    # std::round on a non-negative float: halves go up (np.round would go to even)
    f = np.floor(v)
    return f + np.float32(1.0) if v - f >= np.float32(0.5) else f


@njit(cache=True, nogil=True)
def query_setup(q, c, qb, centered, metric, rq, qq, fac, t64):
    """Query factors against centroid ``c`` (FAISS's compute_query_factors, or
    the unquantized computer when qb == 0). Fills ``rq`` (q - c), ``qq`` (the
    qb-bit grid values) and ``fac``; ``t64`` is scratch."""
    d = q.shape[0]
    for j in range(d):
        rq[j] = np.float32(q[j] - c[j])
    l2 = fv_l2sqr(q, c, t64)
    fac[F_QR_TO_C] = l2
    fac[F_G_ERROR] = np.sqrt(l2)
    qn = np.float32(0.0)
    qc = np.float32(0.0)
    if metric != _L2:
        qn = fv_dot(q, q, t64)
        qc = fv_dot(q, c, t64)
    fac[F_QR_NORM] = qn
    fac[F_Q_DOT_C] = qc
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
    # branch-free bit loops: a data-dependent branch per bit (half of them
    # mispredicted on random codes) cost more than the sums; adding rq[j] * 0 = 0
    # leaves the float sum exactly what the branchy loop gave
    if qb == 0:
        dot = np.float32(0.0)
        pop = 0
        for j in range(d):
            bit = (code[j >> 3] >> (j & 7)) & 1
            dot = np.float32(dot + rq[j] * np.float32(bit))
            pop += bit
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
            bit = np.int64((code[j >> 3] >> (j & 7)) & 1)
            dot += np.int64(qq[j]) * bit
            pop += bit
        fd = np.float32(np.float32(np.float32(fac[F_C1] * np.float32(dot))
                                   + np.float32(fac[F_C2] * np.float32(pop))) - fac[F_C34])
    a = get_f32(code, bs)
    m = get_f32(code, bs + 4)
    pre = np.float32(np.float32(a + fac[F_QR_TO_C]) - np.float32(np.float32(np.float32(2.0) * m) * fd))
    if metric == _L2:
        return max(np.float32(0.0), pre)
    return np.float32(np.float32(-0.5) * np.float32(pre - fac[F_QR_NORM]))


@njit(cache=True, nogil=True)
def full_distance(code, d, ex_bits, metric, rq, fac):
    """Multi-bit distance (FAISS's compute_full_multibit_distance): the float
    query against ``(sign << ex_bits) + ex - (2^ex_bits - 1/2)`` per component."""
    bs = (d + 7) // 8
    ex_at = bs + 12
    nex = (d * ex_bits + 7) // 8
    cb = -np.float32(np.float32(1 << ex_bits) - np.float32(0.5))
    ip = np.float32(0.0)
    bit = 0
    for j in range(d):
        v = 0
        for b in range(ex_bits):
            if (code[ex_at + (bit >> 3)] >> (bit & 7)) & 1:
                v |= 1 << b
            bit += 1
        v += ((code[j >> 3] >> (j & 7)) & 1) << ex_bits
        ip = np.float32(ip + np.float32(rq[j] * np.float32(np.float32(v) + cb)))
    f_add = get_f32(code, ex_at + nex)
    f_rescale = get_f32(code, ex_at + nex + 4)
    base = fac[F_QR_TO_C] if metric == _L2 else fac[F_Q_DOT_C]
    dist = np.float32(np.float32(base + f_add) + np.float32(f_rescale * ip))
    if metric == _L2:
        return max(np.float32(0.0), dist)
    return dist


@njit(cache=True, nogil=True)
def code_distance(code, d, nb_bits, qb, centered, metric, rq, qq, fac):
    """The distance a code gets outside the two-stage scan (range search): the
    1-bit estimate, or the full multi-bit distance."""
    if nb_bits == 1:
        return distance(code, d, qb, centered, metric, rq, qq, fac)
    return full_distance(code, d, nb_bits - 1, metric, rq, fac)


@njit(cache=True, nogil=True)
def _scan(codes, ids, o, s, d, nb_bits, qb, centered, metric, rq, qq, fac, mask, use_mask, rd, ri):
    """Fold codes o .. o+s into the heap (costs: L2, or minus the inner product).
    Multi-bit codes take FAISS's two stages: the 1-bit estimate widened by
    ``f_error * ||q - c||`` must be able to beat the current worst result
    before the full distance is computed."""
    thr = rd[0]
    bs = (d + 7) // 8
    for j in range(o, o + s):
        if use_mask and not mask[j]:
            continue
        v = distance(codes[j], d, qb, centered, metric, rq, qq, fac)
        if nb_bits > 1:
            err = np.float32(get_f32(codes[j], bs + 8) * fac[F_G_ERROR])
            if metric == _L2:
                if not (max(np.float32(0.0), np.float32(v - err)) < thr):
                    continue
            elif not (np.float32(v + err) > -thr):
                continue
            v = full_distance(codes[j], d, nb_bits - 1, metric, rq, fac)
        cost = v if metric == _L2 else -v
        if cost < thr:
            heap_replace_top(rd, ri, cost, ids[j])
            thr = rd[0]


@njit(parallel=True, cache=True, nogil=True)
def flat_search(xq, codes, n, cent, nb_bits, qb, centered, metric, mask, use_mask, worst, D, I):
    """Exhaustive k-NN over ``n`` codes whose ids are their positions."""
    nq, d = xq.shape
    ids = np.arange(n)
    for i in prange(nq):
        rq = np.empty(d, dtype=np.float32)
        qq = np.empty(d, dtype=np.int64)
        fac = np.empty(NF, dtype=np.float32)
        t64 = np.empty(d, dtype=np.float64)
        query_setup(xq[i], cent, qb, centered, metric, rq, qq, fac, t64)
        heap_init(D[i], I[i])
        _scan(codes, ids, 0, n, d, nb_bits, qb, centered, metric, rq, qq, fac, mask, use_mask, D[i], I[i])
        finalize_heap(D[i], I[i], metric, worst)


@njit(parallel=True, cache=True, nogil=True)
def ivf_search(xq, probes, cent, codes, ids, offsets, sizes, nb_bits, qb, centered, metric, max_codes,
               mask, use_mask, worst, D, I):
    """k-NN over the probed lists; the codes of list l are residuals to ``cent[l]``."""
    nq, d = xq.shape
    for i in prange(nq):
        rq = np.empty(d, dtype=np.float32)
        qq = np.empty(d, dtype=np.int64)
        fac = np.empty(NF, dtype=np.float32)
        t64 = np.empty(d, dtype=np.float64)
        heap_init(D[i], I[i])
        scanned = 0
        for p in range(probes.shape[1]):
            l = probes[i, p]
            if l < 0 or sizes[l] == 0:
                continue
            query_setup(xq[i], cent[l], qb, centered, metric, rq, qq, fac, t64)
            _scan(codes, ids, offsets[l], sizes[l], d, nb_bits, qb, centered, metric, rq, qq, fac, mask,
                  use_mask, D[i], I[i])
            scanned += sizes[l]
            if max_codes > 0 and scanned >= max_codes:
                break
        finalize_heap(D[i], I[i], metric, worst)


@njit(parallel=True, cache=True, nogil=True)
def ivf_range_search(xq, probes, cent, codes, ids, offsets, sizes, nb_bits, qb, centered, metric, radius,
                     max_codes, mask, use_mask):
    """Range search over the probed lists (L2: distance < radius, IP: > radius);
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
            t64 = np.empty(d, dtype=np.float64)
            w = lims[i]
            cnt = 0
            scanned = 0
            for p in range(probes.shape[1]):
                l = probes[i, p]
                if l < 0 or sizes[l] == 0:
                    continue
                query_setup(xq[i], cent[l], qb, centered, metric, rq, qq, fac, t64)
                for j in range(offsets[l], offsets[l] + sizes[l]):
                    if use_mask and not mask[j]:
                        continue
                    v = code_distance(codes[j], d, nb_bits, qb, centered, metric, rq, qq, fac)
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
