"""Index2Layer kernels: distances between queries and stored two-level codes.

A code is ``code_size_1`` bytes of coarse list number (little endian) then a
PQ code of the residual. The stored vector is ``coarse[row] + PQ decode``;
``rows[j]`` is the row of code j's centroid in ``coarse`` (only the
centroids codes use are gathered: a multi-index has too many to list).
Costs are smaller-is-better: squared L2, or minus the inner product.
"""

import numpy as np
from numba import njit, prange

from ..metric import METRIC_L2
from .heap import heap_init, heap_replace_top, heap_sort_inplace
from .pq import _read_code


@njit(cache=True, nogil=True)
def _cost(q, coarse, row, code, cs1, pqcent, nbits, metric):
    M, ksub, dsub = pqcent.shape
    s = np.float32(0.0)
    for m in range(M):
        c = _read_code(code[cs1:], m, nbits)
        for t in range(dsub):
            v = coarse[row, m * dsub + t] + pqcent[m, c, t]
            if metric == METRIC_L2:
                e = q[m * dsub + t] - v
                s += e * e
            else:
                s -= q[m * dsub + t] * v
    return s


@njit(parallel=True, cache=True, nogil=True)
def search(xq, codes, n, rows, coarse, cs1, pqcent, nbits, metric, mask, use_mask, hd, hi):
    """Exhaustive k-NN over the n codes: hd/hi (nq, k) get sorted costs and positions."""
    for i in prange(xq.shape[0]):
        rd = hd[i]
        ri = hi[i]
        heap_init(rd, ri)
        q = xq[i]
        for j in range(n):
            if use_mask and not mask[j]:
                continue
            c = _cost(q, coarse, rows[j], codes[j], cs1, pqcent, nbits, metric)
            if c < rd[0]:
                heap_replace_top(rd, ri, c, j)
        heap_sort_inplace(rd, ri)


@njit(parallel=True, cache=True, nogil=True)
def all_costs(xq, codes, n, rows, coarse, cs1, pqcent, nbits, metric, out):
    """out[i, j] = cost of query i to code j (range search, by query blocks)."""
    for i in prange(xq.shape[0]):
        for j in range(n):
            out[i, j] = _cost(xq[i], coarse, rows[j], codes[j], cs1, pqcent, nbits, metric)
