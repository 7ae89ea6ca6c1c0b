"""Exact search over data that arrives in blocks (``faiss.contrib.exhaustive_search``).

``knn_ground_truth`` and ``range_ground_truth`` search each block of a
database iterator with an exact index and merge; ``range_search_max_results``
runs range searches over a query iterator and tightens the radius whenever
the results would exceed ``max_results``. voisin runs on CPU: ``ngpu`` may
be 0 or -1 ("all GPUs", of which there are none); ``range_search_gpu``
keeps FAISS's knn-then-range emulation, with any index as the "GPU" one.

Example:
    >>> import numpy as np
    >>> from voisin.contrib.exhaustive_search import knn_ground_truth
    >>> xb = np.random.default_rng(0).random((1000, 8), dtype="float32")
    >>> D, I = knn_ground_truth(xb[:3], (xb[i:i + 300] for i in range(0, 1000, 300)), 2)
    >>> I[:, 0].tolist()
    [0, 1, 2]
"""

from __future__ import annotations

import logging
import time
from typing import Any, Iterable, Iterator

import numpy as np

from .._validate import as_matrix, check_int, check_k
from ..exact import knn
from ..metric import METRIC_L2, is_similarity
from ..topk import ResultHeap

LOG = logging.getLogger(__name__)

__all__ = ["knn_ground_truth", "knn", "range_search_gpu", "range_ground_truth",
           "threshold_radius_nres", "threshold_radius", "apply_maxres",
           "range_search_max_results", "exponential_query_iterator"]


def _check_ngpu(ngpu: Any) -> None:
    if ngpu not in (0, -1, None, False):
        raise ValueError(f"ngpu: voisin runs on CPU only, expected 0 or -1, got {ngpu!r}")


def _flat(d: int, metric_type: int) -> Any:
    from ..indexes.flat import IndexFlat
    return IndexFlat(d, metric_type)


def knn_ground_truth(xq: Any, db_iterator: Iterable[Any], k: int, metric_type: int = METRIC_L2,
                     shard: bool = False, ngpu: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``k``-NN of ``xq`` in the concatenation of the blocks of
    ``db_iterator`` (ids count from 0 over all blocks)."""
    _check_ngpu(ngpu)
    xq = as_matrix(xq, None, "xq")
    k = check_k(k)
    t0 = time.time()
    rh = ResultHeap(xq.shape[0], k, keep_max=is_similarity(metric_type))
    index = _flat(xq.shape[1], metric_type)
    i0 = 0
    for xbi in db_iterator:
        index.add(xbi)
        D, I = index.search(xq, k)
        I[I >= 0] += i0
        rh.add_result(D, I)
        i0 += index.ntotal
        index.reset()
        LOG.info("%d db elements, %.3f s", i0, time.time() - t0)
    rh.finalize()
    return rh.D, rh.I


def range_ground_truth(xq: Any, db_iterator: Iterable[Any], threshold: float,
                       metric_type: int = METRIC_L2, shard: bool = False, ngpu: int = -1
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact range search of ``xq`` over the blocks of ``db_iterator``:
    ``(lims, D, I)``, each query's results block by block."""
    _check_ngpu(ngpu)
    xq = as_matrix(xq, None, "xq")
    nq = xq.shape[0]
    index = _flat(xq.shape[1], metric_type)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    i0 = 0
    for xbi in db_iterator:
        index.add(xbi)
        lims, D, I = index.range_search(xq, threshold)
        parts.append((np.diff(lims.astype(np.int64)), D, I + i0))
        i0 += index.ntotal
        index.reset()
    return _interleave(nq, parts)


def _interleave(nq: int, parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-block range results -> one result list per query, blocks in order."""
    counts = np.zeros(nq, dtype=np.int64)
    for c, _, _ in parts:
        counts += c
    lims = np.zeros(nq + 1, dtype=np.uint64)
    lims[1:] = np.cumsum(counts)
    D = np.empty(int(lims[-1]), dtype=np.float32)
    I = np.empty(int(lims[-1]), dtype=np.int64)
    fill = lims[:-1].astype(np.int64).copy()
    for c, Dp, Ip in parts:
        # the slots of block p inside each query's range, then a vectorised scatter
        q = np.repeat(np.arange(nq), c)
        within = np.arange(q.size) - np.repeat(np.cumsum(c) - c, c)
        dest = fill[q] + within
        D[dest], I[dest] = Dp, Ip
        fill += c
    return lims, D, I


def range_search_gpu(xq: Any, r2: float, index_gpu: Any, index_cpu: Any, gpu_k: int = 1024
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Range search emulated by a k-NN search of ``index_gpu`` (k = min(ntotal,
    gpu_k)); queries whose k-th result is still inside the radius are redone
    by ``index_cpu`` (an index with range_search, or an array to build a flat
    one from; None keeps the at most k results)."""
    xq = as_matrix(xq, index_gpu.d, "xq")
    keep_max = is_similarity(index_gpu.metric_type)
    r2 = float(r2)
    k = max(1, min(index_gpu.ntotal, check_k(gpu_k, "gpu_k")))
    D, I = index_gpu.search(xq, k)
    inside = (D > r2) if keep_max else (D < r2)
    inside &= I >= 0
    redo = np.zeros(xq.shape[0], dtype=bool)
    if index_cpu is not None:
        redo = inside[:, -1]
    counts = np.where(redo, 0, inside.sum(axis=1))
    parts = [(counts, D[inside & ~redo[:, None]], I[inside & ~redo[:, None]])]
    if redo.any():
        if isinstance(index_cpu, np.ndarray):
            xb = index_cpu
            index_cpu = _flat(xq.shape[1], index_gpu.metric_type)
            index_cpu.add(xb)
        lims_r, D_r, I_r = index_cpu.range_search(xq[redo], r2)
        c = np.zeros(xq.shape[0], dtype=np.int64)
        c[redo] = np.diff(lims_r.astype(np.int64))
        parts.append((c, D_r, I_r))
    lims, Dout, Iout = _interleave(xq.shape[0], parts)
    return lims.astype(np.int64), Dout, Iout


def threshold_radius_nres(nres: Any, dis: np.ndarray, ids: np.ndarray, thresh: float,
                          keep_max: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the results strictly inside ``thresh``; ``nres`` counts per query."""
    nres = np.asarray(nres)
    mask = dis > thresh if keep_max else dis < thresh
    q = np.repeat(np.arange(nres.size), nres.astype(np.int64))
    new_nres = np.bincount(q[mask], minlength=nres.size).astype(nres.dtype)
    return new_nres, dis[mask], ids[mask]


def threshold_radius(lims: Any, dis: np.ndarray, ids: np.ndarray, thresh: float,
                     keep_max: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Restrict range-search results ``(lims, dis, ids)`` to those inside ``thresh``."""
    lims = np.asarray(lims)
    nres, D, I = threshold_radius_nres(np.diff(lims.astype(np.int64)), dis, ids, thresh, keep_max)
    new_lims = np.zeros_like(lims)
    new_lims[1:] = np.cumsum(nres)
    return new_lims, D, I


def apply_maxres(res_batches: list, target_nres: int, keep_max: bool = False) -> tuple[Any, int]:
    """The radius that leaves ``target_nres`` results over all batches, applied
    to ``res_batches`` [(nres, dis, ids)] in place; returns (radius, total)."""
    alldis = np.hstack([dis for _, dis, _ in res_batches])
    target_nres = check_int(target_nres, "target_nres", lo=0)
    if alldis.size <= target_nres:
        raise ValueError(f"target_nres: {alldis.size} results are not more than {target_nres}")
    if keep_max:
        radius = np.partition(alldis, alldis.size - target_nres - 1)[alldis.size - target_nres - 1]
    else:
        radius = np.partition(alldis, target_nres)[target_nres]
    radius = float(radius) if alldis.dtype.kind == "f" else int(radius)
    total = 0
    for i, (nres, dis, ids) in enumerate(res_batches):
        res_batches[i] = threshold_radius_nres(nres, dis, ids, radius, keep_max)
        total += res_batches[i][1].size
    return radius, total


def range_search_max_results(index: Any, query_iterator: Iterable[Any], radius: float,
                             max_results: int | None = None, min_results: int | None = None,
                             shard: bool = False, ngpu: int = 0, clip_to_min: bool = False
                             ) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
    """Range search a stream of query batches, lowering the radius (to keep
    ``min_results``) whenever the results exceed ``max_results``.

    Returns ``(radius, lims, D, I)`` with the final radius applied to all results.
    """
    _check_ngpu(ngpu)
    if min_results is None:
        if max_results is None:
            raise ValueError("max_results, min_results: give at least one of them")
        min_results = int(0.8 * max_results)
    if max_results is None:
        max_results = int(min_results * 1.5)
    keep_max = is_similarity(index.metric_type)
    batches: list = []
    total = 0
    for xqi in query_iterator:
        lims, D, I = index.range_search(xqi, radius)
        batches.append((np.diff(lims.astype(np.int64)), D, I))
        total += D.size
        if total > max_results:
            LOG.info("too many results %d > %d, scaling back radius", total, max_results)
            radius, total = apply_maxres(batches, min_results, keep_max)
    if clip_to_min and total > min_results:
        radius, total = apply_maxres(batches, min_results, keep_max)
    nres = np.hstack([b[0] for b in batches]) if batches else np.zeros(0, np.int64)
    lims = np.zeros(nres.size + 1, dtype=np.uint64)
    lims[1:] = np.cumsum(nres)
    D = np.hstack([b[1] for b in batches]) if batches else np.zeros(0, np.float32)
    I = np.hstack([b[2] for b in batches]) if batches else np.zeros(0, np.int64)
    return radius, lims, D, I


def exponential_query_iterator(xq: Any, start_bs: int = 32, max_bs: int = 20000
                               ) -> Iterator[np.ndarray]:
    """Batches of ``xq`` that double in size from ``start_bs`` up to ``max_bs``."""
    bs = check_int(start_bs, "start_bs", lo=1)
    max_bs = check_int(max_bs, "max_bs", lo=1)
    i = 0
    while i < len(xq):
        yield xq[i:i + bs]
        i += bs
        if bs < max_bs:  # doubles until it reaches (or first passes) max_bs, as FAISS
            bs *= 2
