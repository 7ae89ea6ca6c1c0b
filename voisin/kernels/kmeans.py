"""k-means kernels: nearest-centroid assignment and centroid update.

Assignment is a matrix product (BLAS, done by the caller in blocks) followed
by :func:`argmin_block`, which turns a block of inner products into the index
of the best centroid and its distance. The update splits the *centroids*
between threads (as FAISS does), so each thread owns its output rows and no
reduction is needed.
"""

import numpy as np
from numba import njit, prange

from . import FASTMATH

METRIC_IP = 0
METRIC_L2 = 1


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def argmin_block(G, cnorm, xnorm, metric, labels, dists, row0):
    """Best centroid of rows ``row0 .. row0+G.shape[0]`` from their inner products ``G``.

    L2: distance = ||x||^2 - 2 x.c + ||c||^2 (clipped at 0); inner product:
    the largest x.c wins and ``dists`` holds that similarity. ``G`` is scratch:
    each row is overwritten with its costs so that a vectorised min pass and
    an exact-equality search for its position replace a branchy argmin loop
    (the first index wins ties, as a sequential argmin would).
    """
    b, k = G.shape
    for i in prange(b):
        g = G[i]
        best = np.float32(np.inf)
        if metric == METRIC_L2:
            for j in range(k):
                c = cnorm[j] - np.float32(2.0) * g[j]
                g[j] = c
                best = min(best, c)
        else:
            for j in range(k):
                c = -g[j]
                g[j] = c
                best = min(best, c)
        arg = 0
        for j in range(k):
            if g[j] == best:
                arg = j
                break
        if metric == METRIC_L2:
            v = best + xnorm[row0 + i]
            dists[row0 + i] = v if v > 0.0 else 0.0
        else:
            dists[row0 + i] = -best
        labels[row0 + i] = arg


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def update_centroids(x, labels, weights, use_weights, k, centroids, counts, nt):
    """Mean of the points of each cluster (weighted when ``use_weights``).

    Each thread owns a contiguous range of centroids and scans every point,
    summing only those assigned to its range, in float64. Empty clusters keep
    a count of 0 and are handled by the caller (split). Returns the weight sums.
    """
    n, d = x.shape
    wsum = np.zeros(k, dtype=np.float64)
    for t in prange(nt):
        c0 = (k * t) // nt
        c1 = (k * (t + 1)) // nt
        acc = np.zeros((c1 - c0, d), dtype=np.float64)
        for i in range(n):
            c = labels[i]
            if c0 <= c < c1:
                w = weights[i] if use_weights else 1.0
                counts[c] += 1
                wsum[c] += w
                row = acc[c - c0]
                for j in range(d):
                    row[j] += w * x[i, j]
        for c in range(c0, c1):
            if wsum[c] > 0:
                inv = 1.0 / wsum[c]
                for j in range(d):
                    centroids[c, j] = acc[c - c0, j] * inv
    return wsum


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
