"""The multi-index's search (Babenko & Lempitsky's multi-sequence algorithm): the
k product centroids nearest a query, from its M sub-quantizer distance tables,
without scoring the ksub**M products.

The k best sums of M independent terms only combine the k best partial sums of
the first m terms, so the sub-quantizers are merged one at a time: the k
smallest ``a[i] + b[j]`` of two sorted lists come out of a heap holding one
candidate per ``i`` (its next ``j``), k pops in all.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_WORST = np.float32(3.4028234663852886e38)


@njit(cache=True, nogil=True, inline="always")
def _sift_down(hc, hi, hj, size, pos):
    c, i, j = hc[pos], hi[pos], hj[pos]
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and hc[child + 1] < hc[child]:
            child += 1
        if hc[child] >= c:
            break
        hc[pos], hi[pos], hj[pos] = hc[child], hi[child], hj[child]
        pos = child
    hc[pos], hi[pos], hj[pos] = c, i, j


@njit(cache=True, nogil=True)
def _one(tab, k, nbits, Drow, Irow):
    """multi_sequence for one query's (M, ksub) table (apart from the parallel loop:
    numba's parfor lowering mishandles arrays rebound inside its body)."""
    M, ksub = tab.shape
    order = np.empty((M, ksub), dtype=np.int64)
    vals = np.empty((M, ksub), dtype=np.float32)
    for m in range(M):
        order[m] = np.argsort(tab[m])
        for t in range(ksub):
            vals[m, t] = tab[m, order[m, t]]
    nc = min(k, ksub)
    cur_c = vals[0, :nc].copy()
    cur_l = order[0, :nc].copy()
    nb = min(k, ksub)
    for m in range(1, M):
        total = min(k, nc * nb)
        # one candidate per i, at j = 0: cur_c is sorted, so this is already a heap
        hc = cur_c + vals[m, 0]
        hi = np.arange(nc).astype(np.int64)
        hj = np.zeros(nc, dtype=np.int64)
        size = nc
        new_c = np.empty(total, dtype=np.float32)
        new_l = np.empty(total, dtype=np.int64)
        shift = np.int64(m * nbits)
        for t in range(total):
            i, j = hi[0], hj[0]
            new_c[t] = hc[0]
            new_l[t] = cur_l[i] + (order[m, j] << shift)
            if j + 1 < nb:
                hc[0] = cur_c[i] + vals[m, j + 1]
                hj[0] = j + 1
            else:
                size -= 1
                hc[0] = hc[size]
                hi[0] = hi[size]
                hj[0] = hj[size]
            if size > 0:
                _sift_down(hc, hi, hj, size, 0)
        cur_c = new_c
        cur_l = new_l
        nc = total
    for t in range(k):
        if t < nc:
            Drow[t] = cur_c[t]
            Irow[t] = cur_l[t]
        else:
            Drow[t] = _WORST
            Irow[t] = -1


@njit(parallel=True, cache=True, nogil=True)
def multi_sequence(tables, k, nbits, D, I):
    """tables (nq, M, ksub) of sub-distances -> the k smallest sums (D, ascending) and
    their labels (I: sum over m of code_m << (m * nbits), as FAISS numbers them)."""
    for q in prange(tables.shape[0]):
        _one(tables[q], k, nbits, D[q], I[q])
