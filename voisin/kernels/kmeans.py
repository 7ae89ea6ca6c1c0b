"""k-means kernels: nearest-centroid assignment fused with the centroid sums.

Assignment is a matrix product (BLAS, done by the caller in blocks, one
pipeline per core) followed by :func:`assign_block_accumulate`, which turns a
block of inner products into the index of the best centroid and its distance
and adds each row to that centroid's sum while the block is still in cache.
"""

import numpy as np
from numba import njit

from ..metric import METRIC_L2
from . import FASTMATH


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def assign_block_accumulate(G, cnorm, xnorm, metric, x, row0, weights, use_weights,
                            labels, dists, accumulate, sums, counts, wsum):
    """Best centroid of rows ``row0 .. row0+G.shape[0]`` of ``x`` from their
    inner products ``G`` with the centroids, on the calling thread.

    L2: distance = ||x||^2 - 2 x.c + ||c||^2 (clipped at 0); inner product:
    the largest x.c wins and ``dists`` holds that similarity. ``G`` is scratch.
    When ``accumulate``, each row is added (weighted) in float64 to
    ``sums[label]`` and counted in ``counts``/``wsum``: the caller's pipeline
    owns these arrays, so the centroid update needs no second pass over ``x``.

    LLVM does not vectorise a float minimum reduction without a no-NaN
    function attribute, which numba never sets, but it does vectorise an
    int32 one: each cost's bits are mapped to an int32 key that sorts like
    the float (flip the magnitude bits of negatives), the smallest key is
    found, then the first position holding it (so the first index wins ties,
    as in a sequential argmin). Measured on k=1024: 0.22 vs 0.7 ns per cost.
    """
    b, k = G.shape
    d = x.shape[1]
    key = np.empty(k, dtype=np.int32)
    big = np.int32(0x7FFFFFFF)
    kk = np.int32(k)
    for i in range(b):
        g = G[i]
        if metric == METRIC_L2:
            for j in range(k):
                g[j] = cnorm[j] - np.float32(2.0) * g[j]
        else:
            for j in range(k):
                g[j] = -g[j]
        bits = g.view(np.int32)
        # numba widens int32 arithmetic to int64: the casts keep 8 lanes per vector
        m = big
        for j in range(k):
            v = bits[j]
            v = np.int32(v ^ np.int32(np.int32(v >> np.int32(31)) & big))
            key[j] = v
            m = np.int32(min(m, v))
        arg = kk
        for j in range(k):
            arg = np.int32(min(arg, np.int32(j) if key[j] == m else kk))
        best = g[arg]
        r = row0 + i
        if metric == METRIC_L2:
            v2 = best + xnorm[r]
            dists[r] = v2 if v2 > 0.0 else 0.0
        else:
            dists[r] = -best
        labels[r] = arg
        if accumulate:
            w = np.float64(weights[r]) if use_weights else 1.0
            counts[arg] += 1
            wsum[arg] += w
            acc = sums[arg]
            for j in range(d):
                acc[j] += w * x[r, j]


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def normalize_rows(x):
    n, d = x.shape
    for i in range(n):
        s = 0.0
        for j in range(d):
            s += x[i, j] * x[i, j]
        if s > 0:
            inv = 1.0 / np.sqrt(s)
            for j in range(d):
                x[i, j] *= inv
