"""Merge the sorted top-k lists of several shards into one exact top-k.

Each shard returns, per query, its k best results in (cost, id) order with
missing slots (id -1) last; the union's top-k is then a k-way merge that reads
at most k entries per shard. Ties break on the smaller id, as every single
index does (kernels/heap.py), so a sharded exact search returns exactly what
one exact index over the union returns, ties included. A linear pass over the
shards per output slot beats a heap at the shard counts in use (<= 64).
"""

import numpy as np
from numba import njit

from . import FASTMATH

# voisin.metric.METRIC_L2; any other metric ranks larger scores first
_METRIC_L2 = 1


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def merge_topk(Dall, Iall, metric, worst, D, I):
    """Dall, Iall: (nshard, nq, kin) per-shard sorted results; D, I: (nq, k) output."""
    nshard, nq, kin = Dall.shape
    k = D.shape[1]
    sign = 1.0 if metric == _METRIC_L2 else -1.0
    ptr = np.zeros(nshard, dtype=np.int64)
    for q in range(nq):
        ptr[:] = 0
        j = 0
        while j < k:
            best = -1
            best_cost = 0.0
            best_id = -1
            for s in range(nshard):
                p = ptr[s]
                if p >= kin:
                    continue
                idx = Iall[s, q, p]
                if idx < 0:
                    continue
                cost = sign * Dall[s, q, p]
                if best < 0 or cost < best_cost or (cost == best_cost and idx < best_id):
                    best = s
                    best_cost = cost
                    best_id = idx
            if best < 0:
                break
            D[q, j] = Dall[best, q, ptr[best]]
            I[q, j] = best_id
            ptr[best] += 1
            j += 1
        while j < k:
            D[q, j] = worst
            I[q, j] = -1
            j += 1
