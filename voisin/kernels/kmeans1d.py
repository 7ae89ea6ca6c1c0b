"""Exact 1-D k-means (``Clustering1D.train_exact``): dynamic programming over sorted values.

D[m][j], the least cost of splitting x[0..j] into m+1 clusters, is
min over i of D[m-1][i-1] + cost(i, j), and the best i never decreases as j
grows (the cost is a Monge array), so each row is computed by divide and
conquer over j in O(n log n) cost evaluations: O(k n log n) in all, against
FAISS's O(k n) SMAWK, with less bookkeeping. cost(i, j) is the sum of
squared deviations of x[i..j], from prefix sums in float64.
"""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, inline="always")
def _cost(s1, s2, i, j):
    if j < i:
        return 0.0
    cnt = j - i + 1
    a = s1[j + 1] - s1[i]
    return (s2[j + 1] - s2[i]) - a * a / cnt


@njit(cache=True, nogil=True)
def optimal_starts(xs, k):
    """Start index of each of the ``k`` clusters of sorted ``xs`` (len n >= k) in
    an optimal partition, as an int64 array (starts[0] == 0)."""
    n = xs.shape[0]
    s1 = np.zeros(n + 1)
    s2 = np.zeros(n + 1)
    for t in range(n):
        v = np.float64(xs[t])
        s1[t + 1] = s1[t] + v
        s2[t + 1] = s2[t] + v * v
    prev = np.empty(n)
    cur = np.empty(n)
    for j in range(n):
        prev[j] = _cost(s1, s2, 0, j)
    start = np.zeros((k, n), dtype=np.int32)
    # explicit stack of (j_lo, j_hi, opt_lo, opt_hi) ranges instead of recursion
    stack = np.empty((256, 4), dtype=np.int64)  # live ranges <= 2 log2(n) + 1
    for m in range(1, k):
        cur[:m] = np.inf
        top = 0
        stack[0, 0] = m
        stack[0, 1] = n - 1
        stack[0, 2] = m
        stack[0, 3] = n - 1
        top = 1
        while top > 0:
            top -= 1
            jlo, jhi, olo, ohi = stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3]
            if jlo > jhi:
                continue
            j = (jlo + jhi) // 2
            best = np.inf
            arg = olo
            for i in range(olo, min(ohi, j) + 1):
                c = prev[i - 1] + _cost(s1, s2, i, j)
                if c < best:
                    best = c
                    arg = i
            cur[j] = best
            start[m, j] = arg
            stack[top, 0] = jlo
            stack[top, 1] = j - 1
            stack[top, 2] = olo
            stack[top, 3] = arg
            stack[top + 1, 0] = j + 1
            stack[top + 1, 1] = jhi
            stack[top + 1, 2] = arg
            stack[top + 1, 3] = ohi
            top += 2
        for j in range(n):
            prev[j] = cur[j]
    starts = np.zeros(k, dtype=np.int64)
    end = n - 1
    for m in range(k - 1, 0, -1):
        starts[m] = start[m, end]
        end = starts[m] - 1
    return starts
