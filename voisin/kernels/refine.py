"""Re-ranking kernel of IndexRefineFlat: exact distances of the base index's
candidates, gathered straight from the flat storage, and their top k.

One query per task: its candidate rows are gathered and scored in one loop
(no (n, k*k_factor, d) temporary), then sorted stably so that equal
distances keep the base index's order, as the former numpy path did.
"""

import numpy as np
from numba import njit, prange

from . import FASTMATH
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


@njit(cache=True, nogil=True, fastmath=FASTMATH, inline="always")
def _rerank_one(q, xb, nb, cand, metric, worst, D, I):
    kb = cand.shape[0]
    k = D.shape[0]
    cost = np.empty(kb, dtype=np.float32)
    for j in range(kb):
        c = cand[j]
        cost[j] = exact_cost(q, xb, c, metric) if 0 <= c < nb else np.float32(np.inf)
    order = np.argsort(cost, kind="mergesort")
    for r in range(k):
        if r < kb and cost[order[r]] < np.inf:
            j = order[r]
            I[r] = cand[j]
            D[r] = cost[j] if metric == METRIC_L2 else -cost[j]
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
