"""Hamming distances between binary codes: a popcount instruction per word.

Codes arrive as 2-D arrays of machine words (uint64 when the code size is a
multiple of 8 bytes, else uint32 / uint16 / uint8: zero-copy views of the
uint8 codes), so one XOR + ``llvm.ctpop`` handles 64 bits. The top-k scan
walks the database in blocks that stay in L2 and, inside a block, every
query of the caller's range: each block of codes is read from memory once
per range of queries instead of once per query (FAISS's ``hammings_knn_hc``
blocks the same way).

Heaps are kernels/heap.py's (cost, id) max-heaps on int32 costs; ids are
scanned in increasing order, so a candidate that only ties the worst kept
one never enters, and results come out in (distance, id) order.
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .heap import heap_replace_top, heap_sort_inplace

#: the distance FAISS reports for a missing result (INT_MAX)
MISSING = np.int32(np.iinfo(np.int32).max)


@intrinsic
def popcount(typingctx, x):
    """Number of set bits of an integer (``llvm.ctpop``), as int64."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        v = args[0]
        fn = builder.module.declare_intrinsic("llvm.ctpop", [v.type])
        bits = builder.call(fn, [v])
        if v.type.width < 64:
            bits = builder.zext(bits, ir.IntType(64))
        return bits
    return types.int64(x), codegen


@njit(cache=True, nogil=True, inline="always")
def hamming(a, ia, b, ib):
    """Hamming distance between row ``ia`` of ``a`` and row ``ib`` of ``b`` (word arrays)."""
    dist = 0
    for w in range(a.shape[1]):
        dist += popcount(a[ia, w] ^ b[ib, w])
    return dist


@njit(cache=True, nogil=True)
def _scan_rows(xq, i, xb, j0, j1, rd, ri):
    """Offer rows j0..j1-1 of ``xb`` to query i's heap. The common widths (1, 2, 4
    and 8 words: 64 to 512 bits) keep the query in registers and unroll the
    words, as FAISS's HammingComputer8/16/32/64 do; others loop. The heap's
    worst distance is kept in a local: read through the heap array, it would be
    reloaded for every row (the compiler cannot rule out aliasing)."""
    W = xq.shape[1]
    thr = np.int64(rd[0])
    if W == 4:
        a0, a1, a2, a3 = xq[i, 0], xq[i, 1], xq[i, 2], xq[i, 3]
        for j in range(j0, j1):
            dist = (popcount(a0 ^ xb[j, 0]) + popcount(a1 ^ xb[j, 1])
                    + popcount(a2 ^ xb[j, 2]) + popcount(a3 ^ xb[j, 3]))
            if dist < thr:
                heap_replace_top(rd, ri, np.int32(dist), j)
                thr = np.int64(rd[0])
    elif W == 2:
        a0, a1 = xq[i, 0], xq[i, 1]
        for j in range(j0, j1):
            dist = popcount(a0 ^ xb[j, 0]) + popcount(a1 ^ xb[j, 1])
            if dist < thr:
                heap_replace_top(rd, ri, np.int32(dist), j)
                thr = np.int64(rd[0])
    elif W == 1:
        a0 = xq[i, 0]
        for j in range(j0, j1):
            dist = popcount(a0 ^ xb[j, 0])
            if dist < thr:
                heap_replace_top(rd, ri, np.int32(dist), j)
                thr = np.int64(rd[0])
    elif W == 8:
        a0, a1, a2, a3 = xq[i, 0], xq[i, 1], xq[i, 2], xq[i, 3]
        a4, a5, a6, a7 = xq[i, 4], xq[i, 5], xq[i, 6], xq[i, 7]
        for j in range(j0, j1):
            dist = (popcount(a0 ^ xb[j, 0]) + popcount(a1 ^ xb[j, 1])
                    + popcount(a2 ^ xb[j, 2]) + popcount(a3 ^ xb[j, 3])
                    + popcount(a4 ^ xb[j, 4]) + popcount(a5 ^ xb[j, 5])
                    + popcount(a6 ^ xb[j, 6]) + popcount(a7 ^ xb[j, 7]))
            if dist < thr:
                heap_replace_top(rd, ri, np.int32(dist), j)
                thr = np.int64(rd[0])
    else:
        for j in range(j0, j1):
            dist = hamming(xq, i, xb, j)
            if dist < thr:
                heap_replace_top(rd, ri, np.int32(dist), j)
                thr = np.int64(rd[0])


@njit(cache=True, nogil=True)
def knn_scan(xq, xb, q0, q1, block_rows, hd, hi):
    """The k nearest rows of ``xb`` for queries ``q0 .. q1-1`` of ``xq``, into
    the sorted rows of ``hd`` (int32 distances) and ``hi`` (int64 ids)."""
    nb = xb.shape[0]
    for i in range(q0, q1):
        hd[i, :] = MISSING
        hi[i, :] = -1
    for j0 in range(0, nb, block_rows):
        j1 = min(nb, j0 + block_rows)
        for i in range(q0, q1):
            _scan_rows(xq, i, xb, j0, j1, hd[i], hi[i])
    for i in range(q0, q1):
        heap_sort_inplace(hd[i], hi[i])


@njit(cache=True, nogil=True)
def range_count(xq, xb, q0, q1, radius, counts):
    """``counts[i]``: how many rows of ``xb`` lie at distance < ``radius`` of query i."""
    for i in range(q0, q1):
        c = 0
        for j in range(xb.shape[0]):
            if hamming(xq, i, xb, j) < radius:
                c += 1
        counts[i] = c


@njit(cache=True, nogil=True)
def range_fill(xq, xb, q0, q1, radius, lims, D, I):
    """The results counted by :func:`range_count`, at ``lims[i] ..`` in row order."""
    for i in range(q0, q1):
        o = lims[i]
        for j in range(xb.shape[0]):
            dist = hamming(xq, i, xb, j)
            if dist < radius:
                D[o] = dist
                I[o] = j
                o += 1

