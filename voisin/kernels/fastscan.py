"""4-bit PQ fast-scan kernels: FAISS's block layout, uint8 tables, 16-bit sums.

Layout (FAISS ``pq4_pack_codes``, bbs = 32): vectors go in blocks of 32; a
block holds, for each pair of sub-quantizers (2p, 2p+1), 32 bytes. Byte i of
the first 16 holds sub-quantizer 2p's code of vector ``perm0[i]`` in its low
nibble and of vector ``perm0[i] + 16`` in its high nibble; the next 16 bytes
do the same for sub-quantizer 2p+1. perm0 = 0, 8, 1, 9, ..., 7, 15. An odd M
is padded with a sub-quantizer whose codes and table are 0.

The scan is FAISS's: per pair of sub-quantizers, one 32-byte load of codes,
two ``pshufb`` table look-ups (low and high nibbles) against the pair's two
16-entry uint8 tables, and 16-bit accumulation (FAISS's trick: add the
pshufb result as 16-bit lanes and, separately, shifted right by 8, then
subtract to separate the even bytes). numba has no pshufb, so
:func:`pshufb_block` is a numba ``@intrinsic`` that emits LLVM's
``llvm.x86.avx2.pshuf.b`` for a whole block; on CPUs without AVX2 it emits a
per-byte table load instead (same results, slower). Measured on the dev box
(loaded, indicative): 1.8 ns per code for M=25, against 11.6 ns for the best
pure-numba alternative (a 256-entry uint32 table per sub-quantizer giving two
vectors' entries per load, summed in two 16-bit lanes of a uint32) and ~37 ns
for the float 8-bit ADC scan of the same number of sub-quantizers.
"""

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from ..metric import METRIC_L2
from . import FASTMATH
from .heap import finalize_heap, heap_init, heap_replace_top
from .ivfpq import _coarse, ivfpq_list_table, ivfpq_query_tables, probes_from_products
from .pq import compute_lut

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


def _host_has_avx2() -> bool:
    """Checked when the kernel is compiled (numba's cache is keyed by CPU features).
    VOISIN_FASTSCAN_PORTABLE=1 forces the portable path (for testing it)."""
    import os
    if os.environ.get("VOISIN_FASTSCAN_PORTABLE") == "1":
        return False
    from llvmlite import binding
    return bool(binding.get_host_cpu_features().get("avx2", False))


def _accumulate_block(context, builder, sig, args, scaled=False):
    """IR of one block's table look-ups: returns FAISS's four 16-lane uint16 sums.

    ``scaled``: after the ``npairs`` plain pairs comes one more pair whose looked-up
    entries are multiplied by an integer scale in 16 bits (FAISS's NormTableScaler,
    the additive quantizers' 2x4-bit norm); args are then (codes, off, lut, npairs,
    scale, ...)."""
    i8 = ir.IntType(8)
    i16 = ir.IntType(16)
    intp = context.get_value_type(types.intp)
    v32i8 = ir.VectorType(i8, 32)
    v16i16 = ir.VectorType(i16, 16)
    carr = context.make_array(sig.args[0])(context, builder, args[0])
    larr = context.make_array(sig.args[2])(context, builder, args[2])
    off = context.cast(builder, args[1], sig.args[1], types.intp)
    cbase = builder.gep(builder.bitcast(carr.data, i8.as_pointer()), [off])
    lbase = builder.bitcast(larr.data, i8.as_pointer())
    simd = _host_has_avx2()
    if simd:
        fnty = ir.FunctionType(v32i8, [v32i8, v32i8])
        pshufb = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.avx2.pshuf.b")
    accs = [cgutils.alloca_once_value(builder, ir.Constant(v16i16, [0] * 16)) for _ in range(4)]
    mask = ir.Constant(v32i8, [15] * 32)
    four = ir.Constant(v32i8, [4] * 32)
    eight = ir.Constant(v16i16, [8] * 16)
    n = context.cast(builder, args[3], sig.args[3], types.intp)

    def lookup(o, idx, table):
        if simd:
            return builder.call(pshufb, [table, idx])
        # portable: one table load per byte (what pshufb does in one instruction)
        r = ir.Constant(v32i8, [0] * 32)
        for t in range(32):
            k = builder.zext(builder.extract_element(idx, ir.Constant(ir.IntType(32), t)), intp)
            at = builder.add(builder.add(o, ir.Constant(intp, 16 * (t // 16))), k)
            r = builder.insert_element(r, builder.load(builder.gep(lbase, [at])),
                                       ir.Constant(ir.IntType(32), t))
        return r

    def pair(index, scale):
        o = builder.mul(index, ir.Constant(intp, 32))
        c = builder.load(builder.bitcast(builder.gep(cbase, [o]), v32i8.as_pointer()), align=1)
        table = builder.load(builder.bitcast(builder.gep(lbase, [o]), v32i8.as_pointer()), align=1)
        lo = builder.and_(c, mask)
        hi = builder.and_(builder.lshr(c, four), mask)
        r0 = builder.bitcast(lookup(o, lo, table), v16i16)
        r1 = builder.bitcast(lookup(o, hi, table), v16i16)
        for a, v in ((accs[0], r0), (accs[1], builder.lshr(r0, eight)),
                     (accs[2], r1), (accs[3], builder.lshr(r1, eight))):
            if scale is not None:
                v = builder.mul(v, scale)
            builder.store(builder.add(builder.load(a), v), a)

    with cgutils.for_range(builder, n) as loop:
        pair(loop.index, None)
    if scaled:
        s16 = builder.trunc(context.cast(builder, args[4], sig.args[4], types.intp), i16)
        vec = ir.Constant(v16i16, [0] * 16)
        for t in range(16):
            vec = builder.insert_element(vec, s16, ir.Constant(ir.IntType(32), t))
        pair(n, vec)
    return [builder.load(a) for a in accs]


@intrinsic
def pshufb_block(typingctx, codes, off, lut, npairs, acc):
    """Accumulate one block: ``acc`` (64 uint16) <- FAISS's four 16-lane sums.

    ``codes`` (uint8, 1-D) holds the block at byte ``off``; ``lut`` (uint8,
    1-D) the quantized tables, 16 bytes per sub-quantizer; ``npairs`` pairs.
    """
    def codegen(context, builder, sig, args):
        v16i16 = ir.VectorType(ir.IntType(16), 16)
        intp = context.get_value_type(types.intp)
        aarr = context.make_array(sig.args[4])(context, builder, args[4])
        abase = builder.bitcast(aarr.data, v16i16.as_pointer())
        for t, v in enumerate(_accumulate_block(context, builder, sig, args)):
            builder.store(v, builder.gep(abase, [ir.Constant(intp, t)]), align=1)
        return context.get_dummy_value()
    return types.void(codes, off, lut, npairs, acc), codegen


@intrinsic
def pshufb_block_scaled(typingctx, codes, off, lut, npairs, scale, acc):
    """:func:`pshufb_block` over ``npairs`` pairs, then pair ``npairs`` with its
    entries multiplied by ``scale`` (16-bit wrap-around, as FAISS's SIMD)."""
    def codegen(context, builder, sig, args):
        v16i16 = ir.VectorType(ir.IntType(16), 16)
        intp = context.get_value_type(types.intp)
        aarr = context.make_array(sig.args[5])(context, builder, args[5])
        abase = builder.bitcast(aarr.data, v16i16.as_pointer())
        for t, v in enumerate(_accumulate_block(context, builder, sig, args, scaled=True)):
            builder.store(v, builder.gep(abase, [ir.Constant(intp, t)]), align=1)
        return context.get_dummy_value()
    return types.void(codes, off, lut, npairs, scale, acc), codegen


@intrinsic
def block_sums_below(typingctx, codes, off, lut, npairs, sums, thr):
    """One block's 32 costs (uint16, vector order) into ``sums``; returns the 32-bit
    mask (as int64) of the vectors whose sum is below ``thr`` (int64, 0..65536).

    Why: picking the 32 sums out of FAISS's four accumulators and testing each
    against the heap's bound one at a time took ~3x the look-ups themselves
    (M = 25); as FAISS, the sums are formed and compared as vectors and only the
    (few, once the heap is warm) set bits are visited.
    """
    def codegen(context, builder, sig, args):
        i16 = ir.IntType(16)
        i32 = ir.IntType(32)
        intp = context.get_value_type(types.intp)
        v16i16 = ir.VectorType(i16, 16)
        a0, a1, a2, a3 = _accumulate_block(context, builder, sig, args)
        eight = ir.Constant(v16i16, [8] * 16)
        first = ir.Constant(ir.VectorType(i32, 16), list(range(8)) + list(range(16, 24)))
        second = ir.Constant(ir.VectorType(i32, 16), list(range(8, 16)) + list(range(24, 32)))

        def sums_of(even, odd):
            # vectors 0-7 from the even bytes (even - odd << 8), 8-15 from the odd ones
            low = builder.sub(even, builder.shl(odd, eight))
            return builder.add(builder.shuffle_vector(low, odd, first),
                               builder.shuffle_vector(low, odd, second))

        s01 = sums_of(a0, a1)
        s23 = sums_of(a2, a3)
        sarr = context.make_array(sig.args[4])(context, builder, args[4])
        sbase = builder.bitcast(sarr.data, v16i16.as_pointer())
        builder.store(s01, builder.gep(sbase, [ir.Constant(intp, 0)]), align=1)
        builder.store(s23, builder.gep(sbase, [ir.Constant(intp, 1)]), align=1)
        v16i32 = ir.VectorType(i32, 16)
        t32 = builder.trunc(context.cast(builder, args[5], sig.args[5], types.int64), i32)
        splat = builder.insert_element(ir.Constant(v16i32, ir.Undefined), t32, ir.Constant(i32, 0))
        splat = builder.shuffle_vector(splat, splat, ir.Constant(v16i32, [0] * 16))
        m01 = builder.bitcast(builder.icmp_unsigned("<", builder.zext(s01, v16i32), splat), i16)
        m23 = builder.bitcast(builder.icmp_unsigned("<", builder.zext(s23, v16i32), splat), i16)
        m = builder.or_(builder.zext(m01, i32), builder.shl(builder.zext(m23, i32),
                                                            ir.Constant(i32, 16)))
        return builder.zext(m, ir.IntType(64))
    return types.int64(codes, off, lut, npairs, sums, thr), codegen


@intrinsic
def lowest_bit(typingctx, m):
    """Index of the lowest set bit of an int64 (llvm.cttz); m must not be 0."""
    if m != types.int64:
        return None

    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i64, [i64, ir.IntType(1)]),
                                            "llvm.cttz.i64")
        return builder.call(fn, [args[0], ir.Constant(ir.IntType(1), 1)])
    return types.int64(m), codegen


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def quantize_lut(lut, M2, T):
    """uint8-quantize a float table (M, 16) into T (M2 * 16,), padded with zeros.

    Returns (scale a, offset b): cost ~= sum / a + b where sum adds the uint8
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
    for m in range(M2):
        if m < M:
            mn = lut[m, 0]
            for j in range(1, 16):
                mn = min(mn, lut[m, j])
            for j in range(16):
                T[m * 16 + j] = np.int32((lut[m, j] - mn) * a + np.float32(0.5))
        else:
            for j in range(16):
                T[m * 16 + j] = 0
    return a, bsum


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def scan_blocks(packed, b0, n, T, M2, a, bias, ids, id0, mask, use_mask, rd, ri, acc):
    """Fold the n vectors stored in blocks b0.. into the heap (rd, ri).

    ``packed`` is the block array flattened (uint8, 1-D), ``T`` the quantized
    tables (:func:`quantize_lut`), ``acc`` 64 uint16 of scratch. Vector j
    (0 <= j < n) has id ``ids[id0 + j]`` and filter entry ``mask[id0 + j]``;
    its cost is ``sum / a + bias``.
    """
    nblocks = (n + BBS - 1) // BBS
    npairs = M2 // 2
    bsize = npairs * 32
    inv_a = np.float32(1.0) / a
    thr_q = (rd[0] - bias) * a
    for bl in range(nblocks):
        # sum < thr_q for an integer sum <=> sum < ceil(thr_q)
        thr = np.int64(65536)
        if thr_q < np.float32(65536.0):
            thr = np.int64(np.ceil(thr_q)) if thr_q > 0 else np.int64(0)
        m = block_sums_below(packed, (b0 + bl) * bsize, T, npairs, acc, thr)
        base = bl * BBS
        while m != 0:
            v = lowest_bit(m)
            m &= m - 1
            j = base + v
            if j >= n:
                break
            sf = np.float32(acc[v])
            # the bound tightened since the mask was taken
            if sf < thr_q:
                if use_mask and not mask[id0 + j]:
                    continue
                heap_replace_top(rd, ri, sf * inv_a + bias, ids[id0 + j])
                thr_q = (rd[0] - bias) * a


@njit(cache=True, nogil=True, fastmath=FASTMATH, inline="always")
def fold_block(acc, base, n, a, inv_a, bias, ids, id0, mask, use_mask, rd, ri):
    """Fold the 32 sums of one block accumulated by :func:`pshufb_block_scaled`
    (vectors base..base+31 of n) into the heap, one sum at a time."""
    # compare in the integer domain: sum < (thr - bias) * a
    thr_q = (rd[0] - bias) * a
    for g in range(4):
        for v in range(8):
            if g == 0:    # vectors 0..7: even bytes of the low-nibble sums
                s = np.uint16(acc[v] - (acc[16 + v] << 8)) + np.uint16(acc[8 + v] - (acc[24 + v] << 8))
            elif g == 1:  # vectors 8..15: odd bytes
                s = acc[16 + v] + acc[24 + v]
            elif g == 2:  # vectors 16..31 from the high nibbles
                s = np.uint16(acc[32 + v] - (acc[48 + v] << 8)) + np.uint16(acc[40 + v] - (acc[56 + v] << 8))
            else:
                s = acc[48 + v] + acc[56 + v]
            sf = np.float32(np.uint16(s))
            if sf < thr_q:
                j = base + 8 * g + v
                if j >= n:
                    continue
                if use_mask and not mask[id0 + j]:
                    continue
                heap_replace_top(rd, ri, sf * inv_a + bias, ids[id0 + j])
                thr_q = (rd[0] - bias) * a


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def scan_blocks_scaled(packed, b0, n, T, M2, scale, a, bias, ids, id0, mask, use_mask, rd, ri, acc):
    """:func:`scan_blocks` with the last pair of sub-quantizers' entries
    multiplied by ``scale`` (the additive quantizers' norm, FAISS's NormTableScaler)."""
    nblocks = (n + BBS - 1) // BBS
    npairs = M2 // 2
    bsize = npairs * 32
    inv_a = np.float32(1.0) / a
    for bl in range(nblocks):
        pshufb_block_scaled(packed, (b0 + bl) * bsize, T, npairs - 1, scale, acc)
        fold_block(acc, bl * BBS, n, a, inv_a, bias, ids, id0, mask, use_mask, rd, ri)


# --- large k: a reservoir instead of the heap ------------------------------------------
# With a re-rank on top (k_factor 8-32, so 80-320 candidates) most codes of the first
# lists beat the heap's bound, and a sift through a 160-entry heap per accepted
# code cost more than the look-ups (glove-50, nprobe 32: 74 us a query for k=160
# against 42 for k=10). As FAISS's ReservoirResultHandler: accepted codes are
# appended to a buffer of 4k; a full buffer is cut back to its k best by
# quickselect and the bound tightens to the k-th. The last step pushes the
# survivors through the heap, so the result is the heap's: the k smallest
# (cost, id) pairs.

RESERVOIR_MIN_K = 100
# the buffer holds this many times k (a cut costs ~k compares per k new entries)
RESERVOIR_SPAN = 4


@njit(cache=True, nogil=True, inline="always")
def _before(c0, i0, c1, i1):
    return c0 < c1 or (c0 == c1 and i0 < i1)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def reservoir_cut(rc, rid, n, k):
    """Move the k smallest (cost, id) of rc/rid[:n] to the front; returns the largest
    cost among them (the new bound)."""
    lo = 0
    hi = n - 1
    target = k - 1
    while lo < hi:
        mid = (lo + hi) >> 1
        pc = rc[mid]
        pi = rid[mid]
        i = lo
        j = hi
        while i <= j:
            while _before(rc[i], rid[i], pc, pi):
                i += 1
            while _before(pc, pi, rc[j], rid[j]):
                j -= 1
            if i <= j:
                tc = rc[i]
                rc[i] = rc[j]
                rc[j] = tc
                ti = rid[i]
                rid[i] = rid[j]
                rid[j] = ti
                i += 1
                j -= 1
        if target <= j:
            hi = j
        elif target >= i:
            lo = i
        else:
            break
    t = rc[0]
    for u in range(1, k):
        t = max(t, rc[u])
    return t


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def reservoir_finish(rc, rid, fill, metric, worst, D, I):
    """The k = len(D) best of the reservoir, ascending by (cost, id), as FAISS distances
    into D/I (-1 / ``worst`` past the end). A heap-sort of 160 results cost ~11 us a
    query (a mispredicted branch per level); a quicksort then one insertion pass for
    the (rare) equal costs is a few."""
    k = D.shape[0]
    if fill > k:
        reservoir_cut(rc, rid, fill, k)
        fill = k
    order = np.argsort(rc[:fill])
    for r in range(fill):
        D[r] = rc[order[r]]
        I[r] = rid[order[r]]
    for r in range(1, fill):
        c = D[r]
        v = I[r]
        u = r - 1
        while u >= 0 and D[u] == c and I[u] > v:
            D[u + 1] = D[u]
            I[u + 1] = I[u]
            u -= 1
        D[u + 1] = c
        I[u + 1] = v
    for r in range(fill):
        if metric != METRIC_L2:
            D[r] = -D[r]
    for r in range(fill, k):
        D[r] = worst
        I[r] = -1


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def scan_blocks_reservoir(packed, b0, n, T, M2, a, bias, ids, id0, mask, use_mask, rc, rid, st,
                          acc):
    """:func:`scan_blocks` into a reservoir ``rc``/``rid`` (RESERVOIR_SPAN * k entries); ``st`` (float64
    [2]) holds its fill and its bound (cost <= bound enters). Returns nothing."""
    k = rc.shape[0] // RESERVOIR_SPAN
    nblocks = (n + BBS - 1) // BBS
    npairs = M2 // 2
    bsize = npairs * 32
    inv_a = np.float32(1.0) / a
    fill = np.int64(st[0])
    bound = np.float32(st[1])
    for bl in range(nblocks):
        # cost <= bound <=> sum <= (bound - bias) * a; one step of slack for rounding,
        # the exact test is on the float cost below
        thr_q = (bound - bias) * a
        thr = np.int64(65536)
        if thr_q < np.float32(65534.0):
            thr = np.int64(np.floor(thr_q)) + 2 if thr_q > -1 else np.int64(0)
        m = block_sums_below(packed, (b0 + bl) * bsize, T, npairs, acc, thr)
        base = bl * BBS
        while m != 0:
            v = lowest_bit(m)
            m &= m - 1
            j = base + v
            if j >= n:
                break
            cost = np.float32(acc[v]) * inv_a + bias
            if cost <= bound:
                if use_mask and not mask[id0 + j]:
                    continue
                rc[fill] = cost
                rid[fill] = ids[id0 + j]
                fill += 1
                if fill == rc.shape[0]:
                    bound = reservoir_cut(rc, rid, fill, k)
                    fill = k
    st[0] = fill
    st[1] = bound


# --- flat (IndexPQFastScan) -----------------------------------------------------------

@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _pq_query(q, packed, n, cent_t, M2, metric, ids, mask, use_mask, lut, T, acc, rd, ri):
    compute_lut(q, cent_t, metric, lut)
    a, bias = quantize_lut(lut, M2, T)
    heap_init(rd, ri)
    scan_blocks(packed, 0, n, T, M2, a, bias, ids, 0, mask, use_mask, rd, ri, acc)


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def pq_search(xq, packed, n, cent_t, M2, metric, ids, mask, use_mask, worst, parallel, D, I):
    """IndexPQFastScan k-NN; ``ids`` maps positions to ids (arange for a plain index)."""
    nq = xq.shape[0]
    M = cent_t.shape[0]
    nchunks = min(nq, 64) if parallel else 1
    for ch in prange(nchunks):
        lut = np.empty((M, 16), dtype=np.float32)
        T = np.empty(M2 * 16, dtype=np.uint8)
        acc = np.empty(64, dtype=np.uint16)
        for i in range(ch, nq, nchunks):
            _pq_query(xq[i], packed, n, cent_t, M2, metric, ids, mask, use_mask, lut, T, acc, D[i], I[i])
            finalize_heap(D[i], I[i], metric, worst)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def pq_search_serial(xq, packed, n, cent_t, M2, metric, ids, mask, use_mask, worst, D, I):
    M = cent_t.shape[0]
    lut = np.empty((M, 16), dtype=np.float32)
    T = np.empty(M2 * 16, dtype=np.uint8)
    acc = np.empty(64, dtype=np.uint16)
    for i in range(xq.shape[0]):
        _pq_query(xq[i], packed, n, cent_t, M2, metric, ids, mask, use_mask, lut, T, acc, D[i], I[i])
        finalize_heap(D[i], I[i], metric, worst)


# --- IVF (IndexIVFPQFastScan) ---------------------------------------------------------

@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _ivf_query(q, probe, pcost, packed, blk_off, offsets, sizes, ids, cent, cent_t, M2, metric,
               mode, precomp, max_codes, mask, use_mask, worst, q_lut, lut, resid, T, acc, rd, ri):
    """One query's IVF fast-scan into its final (D, I) rows ``rd``/``ri``."""
    heap_init(rd, ri)
    ivfpq_query_tables(q, cent, cent_t, metric, mode, q_lut)
    # inner product and non-residual codes share one table across lists (only
    # the per-list constant changes): quantize and expand it once per query
    shared = mode == 0 or mode == 2
    a = np.float32(1.0)
    b = np.float32(0.0)
    if shared:
        a, b = quantize_lut(q_lut, M2, T)
    k = rd.shape[0]
    big = k >= RESERVOIR_MIN_K
    if big:
        rc = np.empty(RESERVOIR_SPAN * k, dtype=np.float32)
        rid = np.empty(RESERVOIR_SPAN * k, dtype=np.int64)
    else:
        rc = np.empty(0, dtype=np.float32)
        rid = np.empty(0, dtype=np.int64)
    st = np.zeros(2, dtype=np.float64)
    st[1] = np.inf
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
            a, b = quantize_lut(tab, M2, T)
        if big:
            scan_blocks_reservoir(packed, blk_off[l], s, T, M2, a, bias + b, ids, offsets[l], mask,
                                  use_mask, rc, rid, st, acc)
        else:
            scan_blocks(packed, blk_off[l], s, T, M2, a, bias + b, ids, offsets[l], mask, use_mask,
                        rd, ri, acc)
        scanned += s
        if max_codes > 0 and scanned >= max_codes:
            break
    if big:
        reservoir_finish(rc, rid, np.int64(st[0]), metric, worst, rd, ri)
    else:
        finalize_heap(rd, ri, metric, worst)


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
        T = np.empty(M2 * 16, dtype=np.uint8)
        acc = np.empty(64, dtype=np.uint16)
        pcost = np.empty(probes.shape[1], dtype=np.float32)
        for i in range(ch, nq, nchunks):
            for p in range(probes.shape[1]):
                pcost[p] = pdist[i, p] if metric == METRIC_L2 else -pdist[i, p]
            _ivf_query(xq[i], probes[i], pcost, packed, blk_off, offsets, sizes, ids, cent, cent_t, M2,
                       metric, mode, precomp, max_codes, mask, use_mask, worst, q_lut, lut, resid, T,
                       acc, D[i], I[i])


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def ivf_search_single(xq, cent, cnorm, nprobe, packed, blk_off, offsets, sizes, ids, cent_t, M2,
                      metric, mode, precomp, max_codes, mask, use_mask, worst, D, I):
    M = cent_t.shape[0]
    pd = np.empty(nprobe, dtype=np.float32)
    pi = np.empty(nprobe, dtype=np.int64)
    q_lut = np.empty((M, 16), dtype=np.float32)
    lut = np.empty((M, 16), dtype=np.float32)
    resid = np.empty(xq.shape[1], dtype=np.float32)
    T = np.empty(M2 * 16, dtype=np.uint8)
    acc = np.empty(64, dtype=np.uint16)
    for i in range(xq.shape[0]):
        _coarse(xq[i], cent, cnorm, metric, nprobe, pd, pi)
        _ivf_query(xq[i], pi, pd, packed, blk_off, offsets, sizes, ids, cent, cent_t, M2, metric, mode,
                   precomp, max_codes, mask, use_mask, worst, q_lut, lut, resid, T, acc, D[i], I[i])


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def ivf_search_gemm(xq, G, cnorm, nprobe, packed, blk_off, offsets, sizes, ids, cent, cent_t, M2,
                    metric, mode, precomp, max_codes, mask, use_mask, worst, D, I):
    """Batch IVF fast-scan search with the coarse step fused (``G`` = xq @ centroids.T)."""
    nq = xq.shape[0]
    M = cent_t.shape[0]
    nchunks = min(nq, 256)
    for ch in prange(nchunks):
        q_lut = np.empty((M, 16), dtype=np.float32)
        lut = np.empty((M, 16), dtype=np.float32)
        resid = np.empty(xq.shape[1], dtype=np.float32)
        T = np.empty(M2 * 16, dtype=np.uint8)
        acc = np.empty(64, dtype=np.uint16)
        pd = np.empty(nprobe, dtype=np.float32)
        pi = np.empty(nprobe, dtype=np.int64)
        for i in range(ch, nq, nchunks):
            probes_from_products(G[i], cnorm, xq[i], metric, pd, pi)
            _ivf_query(xq[i], pi, pd, packed, blk_off, offsets, sizes, ids, cent, cent_t, M2, metric,
                       mode, precomp, max_codes, mask, use_mask, worst, q_lut, lut, resid, T, acc,
                       D[i], I[i])
