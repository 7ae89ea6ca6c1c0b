"""Exact k-NN and range search over a float32 matrix: the engine behind
IndexFlat and the free functions :func:`knn` and :func:`pairwise_distances`.

Many queries go through BLAS (numpy ``@``) in cache-sized blocks with a numba
top-k folded over each block; few queries take a fused numba scan that needs
no temporary matrix. Filters arrive as a boolean mask over row numbers; when
the mask allows few rows we gather them and search that smaller matrix.
"""

from __future__ import annotations

import numpy as np
import numba

from ._validate import as_matrix, check_k
from .metric import METRIC_L2, check_metric, is_similarity, worst_distance
from .kernels import flat as K

# Below this many queries a fused scan beats a GEMM (FAISS uses 20 too).
BLAS_THRESHOLD = 20
# Block shape of the GEMM path: the (BQ, BB) float32 block of inner products
# stays in L2/L3 cache while the top-k kernel reads it.
BLOCK_QUERIES = 1024
BLOCK_DATABASE = 2048
# Gather the allowed rows when a filter keeps less than this share of the database.
GATHER_FRACTION = 0.25

_NO_MASK = np.zeros(1, dtype=np.bool_)


def get_num_threads() -> int:
    return numba.get_num_threads()


def search(xq: np.ndarray, xb: np.ndarray, nb: int, xnorm: np.ndarray | None,
           metric: int, k: int, mask: np.ndarray | None = None,
           D: np.ndarray | None = None, I: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """k nearest rows of ``xb[:nb]`` for each query; inputs already validated.

    ``xnorm`` holds the squared norms of the rows (L2 only; computed when None).
    Returns FAISS-style (D, I): missing results have id -1.
    """
    nq = xq.shape[0]
    if D is None:
        D = np.empty((nq, k), dtype=np.float32)
    if I is None:
        I = np.empty((nq, k), dtype=np.int64)
    if nq == 0:
        return D, I
    allowed = nb
    if mask is not None:
        allowed = int(np.count_nonzero(mask[:nb]))
        if allowed == 0:
            D.fill(worst_distance(metric))
            I.fill(-1)
            return D, I
        if allowed < GATHER_FRACTION * nb:
            rows = np.flatnonzero(mask[:nb])
            sub = xb[rows]
            Ds, Is = search(xq, sub, allowed, None, metric, k, None)
            D[:] = Ds
            I[:] = np.where(Is >= 0, rows[np.maximum(Is, 0)], -1)
            return D, I
    xb = xb[:nb]
    use_mask = mask is not None
    m = mask if use_mask else _NO_MASK
    if nq < BLAS_THRESHOLD:
        _search_scan(xq, xb, nb, metric, k, m, use_mask, D, I)
    else:
        _search_gemm(xq, xb, nb, xnorm, metric, k, m, use_mask, D, I)
    if allowed < k:
        D[I < 0] = worst_distance(metric)
    return D, I


def _search_scan(xq, xb, nb, metric, k, mask, use_mask, D, I):
    hd = np.empty((xq.shape[0], k), dtype=np.float32)
    nthreads = numba.get_num_threads()
    if nthreads == 1 or nb < 4096:
        K.scan_topk_serial(xq, xb, nb, metric, hd, I, mask, use_mask)
    else:
        nchunks = max(1, min(-(-2 * nthreads // xq.shape[0]), nb // 2048))
        K.scan_topk_parallel(xq, xb, nb, metric, nchunks, hd, I, mask, use_mask)
    if is_similarity(metric):
        np.negative(hd, out=D)
    else:
        D[:] = hd


def _search_gemm(xq, xb, nb, xnorm, metric, k, mask, use_mask, D, I):
    nq = xq.shape[0]
    if metric == METRIC_L2:
        if xnorm is None:
            xnorm = K.row_norms_sqr(xb)
        a_all = xnorm
        s = np.float32(-2.0)
    else:
        a_all = np.zeros(min(nb, BLOCK_DATABASE), dtype=np.float32)
        s = np.float32(-1.0)
    hd = np.empty((min(nq, BLOCK_QUERIES), k), dtype=np.float32)
    hi = np.empty((min(nq, BLOCK_QUERIES), k), dtype=np.int64)
    G = np.empty((min(nq, BLOCK_QUERIES), min(nb, BLOCK_DATABASE)), dtype=np.float32)
    for q0 in range(0, nq, BLOCK_QUERIES):
        q1 = min(nq, q0 + BLOCK_QUERIES)
        bq = q1 - q0
        hdq = hd[:bq]
        hiq = hi[:bq]
        hdq.fill(np.inf)
        hiq.fill(-1)
        xqb = xq[q0:q1]
        for b0 in range(0, nb, BLOCK_DATABASE):
            b1 = min(nb, b0 + BLOCK_DATABASE)
            bb = b1 - b0
            g = G[:bq, :bb] if (bq == G.shape[0] and bb == G.shape[1]) else np.empty((bq, bb), np.float32)
            np.matmul(xqb, xb[b0:b1].T, out=g)
            a = a_all[b0:b1] if metric == METRIC_L2 else a_all[:bb]
            K.topk_gemm_block(g, a, s, hdq, hiq, b0, mask, use_mask)
        K.finish_gemm(xqb, xb, metric, hdq, hiq, D[q0:q1], I[q0:q1])


def range_search(xq: np.ndarray, xb: np.ndarray, nb: int, metric: int, radius: float,
                 mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    use_mask = mask is not None
    return K.range_scan(xq, xb[:nb], nb, metric, np.float32(radius),
                        mask if use_mask else _NO_MASK, use_mask)


def knn(xq, xb, k: int, metric: int = METRIC_L2) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of each row of ``xq`` among the rows of ``xb``.

    Same as building an ``IndexFlat(d, metric)`` on ``xb`` and searching it,
    without keeping an index. Returns (D, I) as :meth:`Index.search` does.

    >>> import numpy as np, voisin
    >>> xb = np.eye(3, dtype="float32")
    >>> D, I = voisin.knn(xb, xb, 1)
    >>> I.ravel().tolist()
    [0, 1, 2]
    """
    metric = check_metric(metric)
    xb = as_matrix(xb, None, "xb")
    xq = as_matrix(xq, xb.shape[1], "xq")
    k = check_k(k)
    return search(xq, xb, xb.shape[0], None, metric, k)


def pairwise_distances(xq, xb, metric: int = METRIC_L2) -> np.ndarray:
    """All distances between rows of ``xq`` and rows of ``xb``: an (nq, nb) float32 matrix.

    L2 distances are squared (as everywhere in voisin and FAISS); inner
    product gives the dot products.
    """
    metric = check_metric(metric)
    xb = as_matrix(xb, None, "xb")
    xq = as_matrix(xq, xb.shape[1], "xq")
    G = xq @ xb.T
    if metric != METRIC_L2:
        return G
    qn = K.row_norms_sqr(xq)
    xn = K.row_norms_sqr(xb)
    G *= -2.0
    G += qn[:, None]
    G += xn[None, :]
    np.maximum(G, 0.0, out=G)
    return G
