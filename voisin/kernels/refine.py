"""Re-ranking kernel of IndexRefineFlat: exact distances of the base index's
candidates, gathered straight from the flat storage, and their top k.

One query per task: its candidate rows are gathered and scored in one loop
(no (n, k*k_factor, d) temporary), then sorted stably so that equal
distances keep the base index's order, as the former numpy path did.
"""

import numpy as np
from numba import njit, prange

from . import FASTMATH
from .heap import heap_init, heap_push, heap_sort_inplace
from .hnsw_space import PREFETCH_LINES, FlatSpace, prefetch
from .simd import dot_qrow, sqdist_qrow
from ..metric import METRIC_L2


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def exact_cost(q, rows, j, metric):
    """Exact cost (smaller is better) between query ``q`` and float row ``j`` of
    ``rows``: the one definition every re-rank uses (this kernel, and HNSW's walk
    with the re-rank fused in)."""
    if metric == METRIC_L2:
        return sqdist_qrow(q, rows, j)
    return -dot_qrow(q, rows, j)


# out of line: inlined into the prange kernel, the namedtuple trips numba's parfor
# array analysis (IndexError in _gen_shape_call)
@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _rerank_one(q, xb, nb, cand, metric, worst, D, I):
    kb = cand.shape[0]
    k = D.shape[0]
    # the candidate rows are scattered over the storage: request them all before
    # the first is read (160 rows of glove-50 cost 16 us a query, one miss each)
    rows = FlatSpace(xb)
    for j in range(kb):
        c = cand[j]
        if 0 <= c < nb:
            prefetch(rows, c, PREFETCH_LINES)
    # top k by (cost, position): the same order as a stable sort of the costs,
    # so equal distances keep the base index's order
    hd = np.empty(k, dtype=np.float32)
    hi = np.empty(k, dtype=np.int64)
    heap_init(hd, hi)
    for j in range(kb):
        c = cand[j]
        if 0 <= c < nb:
            heap_push(hd, hi, exact_cost(q, xb, c, metric), j)
    heap_sort_inplace(hd, hi)
    for r in range(k):
        if hi[r] >= 0 and hd[r] < np.inf:
            I[r] = cand[hi[r]]
            D[r] = hd[r] if metric == METRIC_L2 else -hd[r]
        else:
            I[r] = -1
            D[r] = worst


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def rerank_flat_serial(xq, xb, nb, cand, metric, worst, D, I):
    """Top ``D.shape[1]`` of each query's candidates ``cand`` (ids into ``xb``,
    -1 for none) by exact distance; missing results get id -1 and ``worst``."""
    for i in range(xq.shape[0]):
        _rerank_one(xq[i], xb, nb, cand[i], metric, worst, D[i], I[i])


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def rerank_flat_parallel(xq, xb, nb, cand, metric, worst, D, I):
    """:func:`rerank_flat_serial` with the queries split between threads."""
    for i in prange(xq.shape[0]):
        _rerank_one(xq[i], xb, nb, cand[i], metric, worst, D[i], I[i])
