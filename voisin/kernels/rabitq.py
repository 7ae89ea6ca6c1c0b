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

Encoders use numpy's error model: a zero component gives an infinite
reciprocal as in C++, which the scale search then skips, instead of raising.
No fastmath here: the encoder sums in float32 as FAISS does (its scalar loops
one component after another; its SIMD ``fvec_*`` reductions as ``fv_sum``
replays them), so the bytes are the same; the estimator follows FAISS's
operation order so the distances agree to the last bits.
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
F_Q_DOT_C = 6
F_G_ERROR = 7
NF = 8

# FAISS's kTightStart: where the search for the ex-bit scale starts, per ex_bits
_TIGHT_START = np.array([0.0, 0.15, 0.20, 0.52, 0.59, 0.71, 0.75, 0.77, 0.81], dtype=np.float32)
_KEPS = 1e-5


@njit(cache=True, nogil=True)
def fv_sum(t, n):
    """Sum of the exact (float64) terms t[:n] in the order of faiss-cpu's
    AVX-512 ``fvec_norm_L2sqr`` / ``fvec_L2sqr`` / ``fvec_inner_product``: 16
    float32 lanes accumulated by FMA, folded to 8, one 8-wide step for the
    next 8 terms, a pairwise fold, then the rest one by one."""
    n16 = n // 16 * 16
    acc = np.zeros(16, dtype=np.float32)
    for i in range(0, n16, 16):
        for l in range(16):
            acc[l] = np.float32(np.float64(acc[l]) + t[i + l])
    a8 = np.empty(8, dtype=np.float32)
    for l in range(8):
        a8[l] = np.float32(acc[l] + acc[l + 8])
    i = n16
    if n - n16 >= 8:
        for l in range(8):
            a8[l] = np.float32(np.float64(a8[l]) + t[i + l])
        i += 8
    for l in range(4):
        a8[l] = np.float32(a8[l] + a8[l + 4])
    for l in range(2):
        a8[l] = np.float32(a8[l] + a8[l + 2])
    s = np.float32(a8[0] + a8[1])
    for j in range(i, n):
        s = np.float32(np.float64(s) + t[j])
    return s


@njit(cache=True, nogil=True)
def fv_l2sqr(x, y, t):
    n = x.shape[0]
    for j in range(n):
        e = np.float64(np.float32(x[j] - y[j]))
        t[j] = e * e
    return fv_sum(t, n)


@njit(cache=True, nogil=True)
def fv_dot(x, y, t):
    n = x.shape[0]
    for j in range(n):
        t[j] = np.float64(x[j]) * np.float64(y[j])
    return fv_sum(t, n)


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


@njit(cache=True, nogil=True, error_model="numpy")
def _encode_row(x, c, metric, ex_bits, out):
    """Sign bits and factors (FAISS's compute_vector_factors); with ex_bits > 0
    also ``f_error`` (the 12-byte SignBitFactorsWithError)."""
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
    if ex_bits == 0:
        return
    xu = np.float32(np.float32(d) * np.float32(0.25))
    ip = np.float32(np.float32(0.5) * dp)
    err = np.float32(0.0)
    if abs(ip) > _EPS:
        ratio = np.float32(np.float32(norm2 * xu) / np.float32(ip * ip))
        if ratio > np.float32(1.0):
            if d == 1:
                err = np.float32(np.float32(sq * np.float32(1.9)) * np.sqrt(np.float32(ratio - np.float32(1.0))))
            else:
                err = np.float32(np.float32(sq * np.float32(1.9))
                                 * np.sqrt(np.float32(np.float32(ratio - np.float32(1.0)) / np.float32(d - 1))))
    _put_f32(out, bs + 8, np.float32(np.float32(2.0) * err) if metric == _L2 else err)


@njit(cache=True, nogil=True)
def _heap_less(hk, hi, a, b):
    return hk[a] < hk[b] or (hk[a] == hk[b] and hi[a] < hi[b])


@njit(cache=True, nogil=True)
def _heap_swap(hk, hi, a, b):
    k = hk[a]
    hk[a] = hk[b]
    hk[b] = k
    i = hi[a]
    hi[a] = hi[b]
    hi[b] = i


@njit(cache=True, nogil=True)
def _heap_push(hk, hi, size, key, idx):
    pos = size
    hk[pos] = key
    hi[pos] = idx
    while pos > 0:
        parent = (pos - 1) >> 1
        if not _heap_less(hk, hi, pos, parent):
            break
        _heap_swap(hk, hi, pos, parent)
        pos = parent
    return size + 1


@njit(cache=True, nogil=True)
def _heap_pop(hk, hi, size):
    size -= 1
    hk[0] = hk[size]
    hi[0] = hi[size]
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and _heap_less(hk, hi, child + 1, child):
            child += 1
        if not _heap_less(hk, hi, child, pos):
            break
        _heap_swap(hk, hi, pos, child)
        pos = child
    return size


@njit(cache=True, nogil=True, error_model="numpy")
def _optimal_scale(o_abs, ex_bits, cur, inv, hk, hi):
    """FAISS's compute_optimal_scaling_factor: the scale t maximizing the cosine
    between the residual and its ex-bit grid, walking the grid's breakpoints in
    increasing order (a min-heap of (t, component), ties to the smaller one)."""
    d = o_abs.shape[0]
    max_code = (1 << ex_bits) - 1
    max_o = o_abs[0]
    for i in range(1, d):
        if o_abs[i] > max_o:
            max_o = o_abs[i]
    t_end = np.float32(np.float32(max_code + 10) / max_o)
    t_start = np.float32(t_end * _TIGHT_START[ex_bits])
    for i in range(d):
        inv[i] = np.float32(np.float32(1.0) / o_abs[i])
    den = np.float32(np.float32(d) * np.float32(0.25))
    num = np.float32(0.0)
    for i in range(d):
        v = int(np.float64(np.float32(t_start * o_abs[i])) + _KEPS)
        cur[i] = v
        den = np.float32(den + np.float32(v * v + v))
        num = np.float32(num + np.float32(np.float32(np.float32(v) + np.float32(0.5)) * o_abs[i]))
    inv_sqrt = np.float32(np.float32(1.0) / np.sqrt(den))
    size = 0
    for i in range(d):
        tn = np.float32(np.float32(cur[i] + 1) * inv[i])
        if tn < t_end:
            size = _heap_push(hk, hi, size, tn, i)
    max_ip = np.float32(0.0)
    t = np.float32(0.0)
    while size > 0:
        cur_t = hk[0]
        u = hi[0]
        size = _heap_pop(hk, hi, size)
        cur[u] += 1
        uo = cur[u]
        delta = np.float32(np.float32(2.0) * np.float32(uo))
        den = np.float32(den + delta)
        num = np.float32(num + o_abs[u])
        old = np.float32(den - delta)
        inv_sqrt = np.float32(inv_sqrt * np.float32(np.float32(1.0) - np.float32(
            np.float32(np.float32(0.5) * delta) / np.float32(old + np.float32(delta * np.float32(0.5))))))
        ip = np.float32(num * inv_sqrt)
        if ip > max_ip:
            max_ip = ip
            t = cur_t
        if uo < max_code:
            tn = np.float32(np.float32(uo + 1) * inv[u])
            if tn < t_end:
                size = _heap_push(hk, hi, size, tn, u)
    return t


@njit(cache=True, nogil=True, error_model="numpy")
def _encode_ex(x, c, metric, ex_bits, out, r, o_abs, cur, inv, hk, hi, t64):
    """FAISS's quantize_ex_bits: ex-bit magnitudes of the residual at the best
    scale, flipped where the sign bit is 0, then f_add_ex, f_rescale_ex."""
    d = x.shape[0]
    bs = (d + 7) // 8
    ex_at = bs + 12
    nex = (d * ex_bits + 7) // 8
    for j in range(d):
        r[j] = np.float32(x[j] - c[j])
        t64[j] = np.float64(r[j]) * np.float64(r[j])
    norm = np.sqrt(fv_sum(t64, d))
    if norm < np.float32(1e-10):
        _put_f32(out, ex_at + nex, np.float32(0.0))
        _put_f32(out, ex_at + nex + 4, np.float32(0.0))
        return
    for j in range(d):
        o_abs[j] = abs(np.float32(r[j] / norm))
    t = _optimal_scale(o_abs, ex_bits, cur, inv, hk, hi)
    max_code = (1 << ex_bits) - 1
    ipnorm = 0.0
    bit = 0
    for j in range(d):
        v = min(int(np.float64(np.float32(t * o_abs[j])) + _KEPS), max_code)
        ipnorm += (v + 0.5) * np.float64(o_abs[j])
        if not r[j] > np.float32(0.0):
            # faiss-cpu 1.15.1 flips every component whose sign bit is 0, zeros
            # included (a zero residual component gets max_code)
            v = (~v) & max_code
        for b in range(ex_bits):
            if v & (1 << b):
                out[ex_at + (bit >> 3)] |= np.uint8(1 << (bit & 7))
            bit += 1
    ipinv = np.float32(1.0 / ipnorm)
    if not (np.isfinite(ipinv) and abs(ipinv) >= np.finfo(np.float32).tiny):
        ipinv = np.float32(1.0)
    if metric == _L2:
        f_add = np.float32(norm * norm)
        f_rescale = np.float32(np.float32(ipinv * np.float32(-2.0)) * norm)
    else:
        f_add = fv_dot(r, c, t64)
        f_rescale = np.float32(ipinv * norm)
    _put_f32(out, ex_at + nex, f_add)
    _put_f32(out, ex_at + nex + 4, f_rescale)


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def encode(x, cent, list_nos, use_lists, metric, nb_bits, out):
    """Codes of the rows of ``x`` against centroid ``cent[list_nos[i]]``
    (``cent[0]`` for every row when not ``use_lists``); rows whose list is
    negative are left zero."""
    d = x.shape[1]
    ex_bits = nb_bits - 1
    for i in prange(x.shape[0]):
        l = list_nos[i] if use_lists else 0
        if l < 0:
            for t in range(out.shape[1]):
                out[i, t] = 0
            continue
        _encode_row(x[i], cent[l], metric, ex_bits, out[i])
        if ex_bits:
            _encode_ex(x[i], cent[l], metric, ex_bits, out[i], np.empty(d, np.float32),
                       np.empty(d, np.float32), np.empty(d, np.int64), np.empty(d, np.float32),
                       np.empty(d, np.float32), np.empty(d, np.int64), np.empty(d, np.float64))


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
    f_add = _get_f32(code, ex_at + nex)
    f_rescale = _get_f32(code, ex_at + nex + 4)
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
            err = np.float32(_get_f32(codes[j], bs + 8) * fac[F_G_ERROR])
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
