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
            rd = hd[i]
            ri = hi[i]
            for j in range(j0, j1):
                dist = hamming(xq, i, xb, j)
                if dist < rd[0]:
                    heap_replace_top(rd, ri, np.int32(dist), j)
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

