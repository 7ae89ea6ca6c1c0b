"""FAISS's further metrics (L1, Linf, Lp, Canberra, BrayCurtis, JensenShannon,
Jaccard) between float32 rows, as faiss/utils/extra_distances-inl.h defines them:
float32 accumulation, no root for Lp, Jaccard a similarity.

Compiled without fastmath: a 0/0 in Canberra or a log of 0 in JensenShannon is
NaN, and a NaN distance must fail every comparison so that it never enters a
result list, which is what FAISS's heaps do with it.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .heap import heap_init, heap_replace_top, heap_sort_inplace

L1, LINF, LP, CANBERRA, BRAYCURTIS, JENSENSHANNON, JACCARD = 2, 3, 4, 20, 21, 22, 23


@njit(cache=True, nogil=True, inline="always")
def _div(a, b):
    """IEEE a / b (0/0 NaN, a/0 +-inf) under any numba error model: the graph
    kernels that call :func:`pair` compile with Python's, which raises instead."""
    if b != 0:
        return a / b
    if a == 0 or a != a:
        return np.float32(np.nan)
    return np.float32(np.inf) if a > 0 else np.float32(-np.inf)


@njit(cache=True, nogil=True, inline="always")
def pair(x, y, metric, arg):
    """The distance (Jaccard: similarity) of rows ``x`` and ``y``, float32."""
    d = x.shape[0]
    acc = np.float32(0.0)
    if metric == L1:
        for t in range(d):
            acc += abs(x[t] - y[t])
    elif metric == LINF:
        for t in range(d):
            acc = max(acc, abs(x[t] - y[t]))
    elif metric == LP:
        for t in range(d):
            acc += abs(x[t] - y[t]) ** arg
    elif metric == CANBERRA:
        for t in range(d):
            acc += _div(abs(x[t] - y[t]), abs(x[t]) + abs(y[t]))
    elif metric == BRAYCURTIS:
        den = np.float32(0.0)
        for t in range(d):
            acc += abs(x[t] - y[t])
            den += abs(x[t] + y[t])
        acc = _div(acc, den)
    elif metric == JENSENSHANNON:
        for t in range(d):
            m = np.float32(0.5) * (x[t] + y[t])
            acc += -x[t] * np.log(_div(m, x[t])) - y[t] * np.log(_div(m, y[t]))
        acc = np.float32(0.5) * acc
    else:  # JACCARD
        den = np.float32(0.0)
        for t in range(d):
            acc += min(x[t], y[t])
            den += max(x[t], y[t])
        acc = _div(acc, den)
    return acc


@njit(parallel=True, cache=True, nogil=True)
def pairwise(xq, xb, metric, arg, out):
    """out[i, j] = distance of xq[i] and xb[j]."""
    for i in prange(xq.shape[0]):
        for j in range(xb.shape[0]):
            out[i, j] = pair(xq[i], xb[j], metric, arg)


@njit(parallel=True, cache=True, nogil=True)
def topk(xq, xb, nb, metric, arg, mask, use_mask, hd, hi):
    """The k best of xb[:nb] (where mask allows) for each query, best first, in
    (hd, hi); similarities are kept negated so one min-heap serves both kinds."""
    sign = np.float32(-1.0) if metric == JACCARD else np.float32(1.0)
    for i in prange(xq.shape[0]):
        rd, ri = hd[i], hi[i]
        heap_init(rd, ri)
        thr = rd[0]
        for j in range(nb):
            if use_mask and not mask[j]:
                continue
            c = sign * pair(xq[i], xb[j], metric, arg)
            if c < thr:  # False for NaN
                heap_replace_top(rd, ri, c, j)
                thr = rd[0]
        heap_sort_inplace(rd, ri)
        if metric == JACCARD:
            for t in range(rd.shape[0]):
                rd[t] = -rd[t]
