"""RaBitQ encoding kernels (FAISS's RaBitQuantizer::compute_codes_core and
RaBitQuantizerMultiBit): the sign bits and factors of a residual, the ex-bit
magnitudes of multi-bit codes, decoding, and the float32 reductions that
replay faiss-cpu's SIMD ``fvec_*`` sums. The code layout is described in
``voisin/kernels/rabitq.py``, which also holds the search side.

Encoders use numpy's error model: a zero component gives an infinite
reciprocal as in C++, which the scale search then skips, instead of raising.
No fastmath: every sum is float32 in FAISS's order, so the bytes are FAISS's.
"""

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

_L2 = 1  # voisin.metric.METRIC_L2
_EPS = np.float32(np.finfo(np.float32).eps)

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
def put_f32(out, pos, v):
    b = np.empty(1, dtype=np.float32)
    b[0] = v
    u = b.view(np.uint8)
    for t in range(4):
        out[pos + t] = u[t]


@intrinsic
def _load_f32(typingctx, code, pos):
    """float32 stored at byte ``pos`` of a contiguous 1-D uint8 array (no bounds check)."""
    if not (isinstance(code, types.Array) and code.ndim == 1 and code.dtype == types.uint8
            and code.layout == "C") or not isinstance(pos, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        off = context.cast(builder, args[1], sig.args[1], types.intp)
        ptr = builder.gep(builder.bitcast(ary.data, ir.IntType(8).as_pointer()), [off])
        return builder.load(builder.bitcast(ptr, ir.FloatType().as_pointer()), align=1)
    return types.float32(code, pos), codegen


@njit(cache=True, nogil=True)
def get_f32(code, pos):
    # an unaligned 4-byte load (the former copy into a fresh 4-byte array was a heap
    # allocation per call: two per scanned code, most of a RaBitQ scan's time)
    return _load_f32(code, pos)


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
    put_f32(out, bs, first)
    put_f32(out, bs + 4, np.float32(inv_dp * sq))
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
    put_f32(out, bs + 8, np.float32(np.float32(2.0) * err) if metric == _L2 else err)


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
        put_f32(out, ex_at + nex, np.float32(0.0))
        put_f32(out, ex_at + nex + 4, np.float32(0.0))
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
    put_f32(out, ex_at + nex, f_add)
    put_f32(out, ex_at + nex + 4, f_rescale)


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
        dpm = get_f32(codes[i], bs + 4)
        for j in range(d):
            bit = np.float32(1.0) if (codes[i, j >> 3] >> (j & 7)) & 1 else np.float32(0.0)
            v = np.float32(np.float32(np.float32(bit - np.float32(0.5)) * dpm) * np.float32(2.0))
            out[i, j] = np.float32(np.float32(v * inv_d_sqrt) + cent[l, j])
