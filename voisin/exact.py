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

from . import _blas
from . import extra_metrics
from ._validate import as_matrix, check_float, check_k
from .filtering import GATHER_FRACTION, GATHER_MIN_QUERIES
from .metric import METRIC_L2, check_metric, is_similarity, worst_distance
from .kernels import flat as K

# Below this many queries a fused scan beats a GEMM (FAISS uses 20 too).
BLAS_THRESHOLD = 20
# Up to this dimension every query takes the direct scan, whatever their
# number: a GEMM has little to gain there, and the ||x||^2 - 2<q, x> expansion
# it relies on cancels catastrophically in float32 for data far from the
# origin, where sum((q - x)^2) stays exact (FAISS also switches to a fused
# direct kernel for small d).
DIRECT_MAX_D = 32
# Block shape of the GEMM path: the (BQ, BB) float32 block of inner products
# (BLOCK_ELEMENTS of them, 8 MB) stays in the L3 cache while the top-k kernel
# reads it. Few queries get wide database blocks: every block hands the cores
# from BLAS's threads to numba's and back, which costs most on a busy machine.
BLOCK_QUERIES = 1024
BLOCK_ELEMENTS = 1 << 21
BLOCK_DATABASE = 2048
# A parallel region costs a thread hand-off per call, and on a busy machine a
# wait for a descheduled worker: split a scan only when it has ~1 ms of work.
PARALLEL_MIN_WORK = 1 << 22
# Gather the allowed rows when a filter keeps less than GATHER_FRACTION of the
# database (the policy of every flat-like index, in voisin/filtering.py).

_NO_MASK = np.zeros(1, dtype=np.bool_)


def uses_norms(xq: np.ndarray, metric: int) -> bool:
    """Whether :func:`search` takes the BLAS path that ranks L2 with row norms."""
    return metric == METRIC_L2 and xq.shape[0] >= BLAS_THRESHOLD and xq.shape[1] > DIRECT_MAX_D


def search(xq: np.ndarray, xb: np.ndarray, nb: int, metric: int, k: int,
           mask: np.ndarray | None = None, D: np.ndarray | None = None,
           I: np.ndarray | None = None,
           xnorm: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """k nearest rows of ``xb[:nb]`` for each query; inputs already validated.

    ``xnorm``: squared norms of the rows for the L2 BLAS path (computed when
    None; an index caches them). Returns FAISS-style (D, I): missing results
    have id -1.
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
        if allowed < GATHER_FRACTION * nb and nq < GATHER_MIN_QUERIES:
            # a few queries: score the allowed rows where they lie (a gather would
            # copy them once for so few scans)
            rows = np.flatnonzero(mask[:nb])
            hd = np.empty((nq, k), dtype=np.float32)
            K.scan_rows_topk(xq, xb, rows, metric, hd, I)
            if is_similarity(metric):
                np.negative(hd, out=D)
            else:
                D[:] = hd
            if (I[:, -1] < 0).any():
                D[I < 0] = worst_distance(metric)
            return D, I
        if allowed < GATHER_FRACTION * nb:
            rows = np.flatnonzero(mask[:nb])
            Ds, Is = search(xq, xb[rows], allowed, metric, k)
            D[:] = Ds
            I[:] = np.where(Is >= 0, rows[np.maximum(Is, 0)], -1)
            return D, I
    use_mask = mask is not None
    m = mask if use_mask else _NO_MASK
    if nq < BLAS_THRESHOLD or xq.shape[1] <= DIRECT_MAX_D:
        _search_scan(xq, xb, nb, metric, k, m, use_mask, D, I)
    else:
        if metric == METRIC_L2 and xnorm is None:
            xnorm = K.row_norms_sqr(xb[:nb])
        _search_gemm_pipelines(xq, xb, nb, xnorm, metric, k, m, use_mask, D, I)
    # sorted rows end with their missing results: a cheap test on the last
    # column covers k > allowed rows and rows whose distances overflowed
    if (I[:, -1] < 0).any():
        D[I < 0] = worst_distance(metric)
    return D, I


def _search_scan(xq, xb, nb, metric, k, mask, use_mask, D, I):
    nq = xq.shape[0]
    hd = np.empty((nq, k), dtype=np.float32)
    nthreads = numba.get_num_threads()
    if nthreads == 1 or nb * xq.shape[1] * nq < PARALLEL_MIN_WORK:
        K.scan_topk_serial(xq, xb, nb, metric, hd, I, mask, use_mask)
    else:
        nchunks = max(1, min(-(-2 * nthreads // nq), nb // 2048))
        K.scan_topk_parallel(xq, xb, nb, metric, nchunks, hd, I, mask, use_mask)
    if is_similarity(metric):
        np.negative(hd, out=D)
    else:
        D[:] = hd


def _search_gemm_pipelines(xq, xb, nb, xnorm, metric, k, mask, use_mask, D, I):
    """One pipeline per thread: each takes query blocks and runs the BLAS
    product and the top-k of a block on its own core, BLAS single-threaded.

    Alternating between BLAS's thread pool and numba's instead hands the cores
    over twice per block, and the idle workers of each pool spin against the
    busy ones (measured on glove-50, 10,000 queries: 600 vs 2,200 QPS).
    """
    nthreads = numba.get_num_threads()
    nq = xq.shape[0]
    if nthreads == 1 or nq < 2 * BLAS_THRESHOLD or not _blas.available():
        _search_gemm(xq, xb, nb, xnorm, metric, k, mask, use_mask, D, I)
        return
    step = min(BLOCK_QUERIES, -(-nq // nthreads))

    def work(_: int, q0: int) -> None:
        q1 = min(nq, q0 + step)
        _search_gemm(xq[q0:q1], xb, nb, xnorm, metric, k, mask, use_mask, D[q0:q1], I[q0:q1])

    _blas.run_pipelines(range(0, nq, step), work, nthreads)


def _search_gemm(xq, xb, nb, xnorm, metric, k, mask, use_mask, D, I):
    """Blocks of BLAS inner products folded into per-query heaps.

    Heaps hold costs: ||x||^2 - 2<q, x> for L2 (||q||^2 is the same for every
    row of a query, so it is left out) and -<q, x> for inner product. The kept
    L2 candidates get their exact distance sum((q - x)^2) at the end.
    """
    nq = xq.shape[0]
    l2 = metric == METRIC_L2
    s = np.float32(-2.0 if l2 else -1.0)
    bdb = max(BLOCK_DATABASE, BLOCK_ELEMENTS // min(nq, BLOCK_QUERIES))
    zero = np.zeros(min(nb, bdb), dtype=np.float32)
    G = np.empty((min(nq, BLOCK_QUERIES), min(nb, bdb)), np.float32)
    for q0 in range(0, nq, BLOCK_QUERIES):
        q1 = min(nq, q0 + BLOCK_QUERIES)
        bq = q1 - q0
        hd = np.full((bq, k), np.inf, dtype=np.float32)
        hi = np.full((bq, k), -1, dtype=np.int64)
        for b0 in range(0, nb, bdb):
            b1 = min(nb, b0 + bdb)
            bb = b1 - b0
            g = G if G.shape == (bq, bb) else np.empty((bq, bb), np.float32)
            with np.errstate(over="ignore", invalid="ignore"):
                np.matmul(xq[q0:q1], xb[b0:b1].T, out=g)
            K.topk_gemm_block(g, xnorm[b0:b1] if l2 else zero[:bb], s, hd, hi, b0, mask, use_mask)
        if l2:
            K.finish_l2_exact(xq[q0:q1], xb, hd, hi, D[q0:q1], I[q0:q1])
        else:
            K.finish_sorted(hd, hi, np.float32(-1.0), D[q0:q1], I[q0:q1])


def range_search(xq: np.ndarray, xb: np.ndarray, nb: int, metric: int, radius: float,
                 mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    use_mask = mask is not None
    return K.range_scan(xq, xb[:nb], nb, metric, np.float32(radius),
                        mask if use_mask else _NO_MASK, use_mask)


def knn(xq, xb, k: int, metric: int = METRIC_L2,
        metric_arg: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of each row of ``xq`` among the rows of ``xb``.

    Same as building an ``IndexFlat(d, metric)`` on ``xb`` and searching it,
    without keeping an index. Returns (D, I) as :meth:`Index.search` does.

    >>> import numpy as np, voisin
    >>> xb = np.eye(3, dtype="float32")
    >>> D, I = voisin.knn(xb, xb, 1)
    >>> I.ravel().tolist()
    [0, 1, 2]
    """
    metric = check_metric(metric, extra=True)
    xb = as_matrix(xb, None, "xb")
    xq = as_matrix(xq, xb.shape[1], "xq")
    k = check_k(k)
    if extra_metrics.is_extra(metric):
        return extra_metrics.search(xq, xb, xb.shape[0], metric, check_float(metric_arg, "metric_arg"), k)
    return search(xq, xb, xb.shape[0], metric, k)


def pairwise_distances(xq, xb, metric: int = METRIC_L2, metric_arg: float = 0.0) -> np.ndarray:
    """All distances between rows of ``xq`` and rows of ``xb``: an (nq, nb) float32 matrix.

    L2 distances are squared (as everywhere in voisin and FAISS); inner
    product gives the dot products; the further metrics (METRIC_L1, METRIC_Lp
    with ``metric_arg`` = p, ...) are as in :mod:`voisin.extra_metrics`.
    """
    metric = check_metric(metric, extra=True)
    xb = as_matrix(xb, None, "xb")
    xq = as_matrix(xq, xb.shape[1], "xq")
    if extra_metrics.is_extra(metric):
        return extra_metrics.pairwise(xq, xb, metric, check_float(metric_arg, "metric_arg"))
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
