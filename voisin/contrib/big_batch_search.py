"""Search a large batch of queries list by list (``faiss.contrib.big_batch_search``).

Instead of each query scanning its ``nprobe`` lists, each inverted list is
decoded once and compared with every query that probes it, then the
partial results go into one heap per query. That pays when there are many
more queries than lists. IVFFlat, IVFPQ and IVFScalarQuantizer are
supported, with FAISS's three ways of comparing a bucket ("knn_function",
"pairwise_distances", "index"), optional prefetching threads, and
checkpoints that let an interrupted run resume.

Example:
    >>> import numpy as np, voisin
    >>> from voisin.contrib.big_batch_search import big_batch_search
    >>> xb = np.random.default_rng(0).random((2000, 8), dtype="float32")
    >>> index = voisin.index_factory(8, "IVF8,Flat"); index.train(xb); index.add(xb)
    >>> index.nprobe = 8
    >>> D, I = big_batch_search(index, xb[:5], 1)
    >>> I.ravel().tolist()
    [0, 1, 2, 3, 4]
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np

from .._validate import as_matrix, check_int, check_k
from ..exact import knn as _knn
from ..exact import pairwise_distances as _pairwise
from ..metric import is_similarity
from ..topk import ResultHeap
from .inspect_tools import get_invlist

__all__ = ["BigBatchSearcher", "BlockComputer", "big_batch_search"]

LOG = logging.getLogger(__name__)


class BigBatchSearcher:
    """The data of one run: queries grouped by probed list, the result heap, timings."""

    def __init__(self, index: Any, xq: np.ndarray, k: int, verbose: int = 0,
                 use_float16: bool = False):
        self.index = index
        self.xq = xq
        self.verbose = verbose
        self.use_float16 = use_float16
        self.rh = ResultHeap(len(xq), k, keep_max=is_similarity(index.metric_type))
        # prepare queries, prepare lists, compute, add results, wait in, wait out
        self.t_accu = [0.0] * 6
        self.t0 = self.t_display = time.time()
        self.decode_func: Callable | None = None
        self.by_residual = False

    def _tick(self, name: str) -> float:
        if self.verbose > 0:
            print(name, end="\r", flush=True, file=sys.stderr)
        return time.time()

    def coarse_quantization(self) -> None:
        t = self._tick("coarse quantization")
        nq, nprobe = len(self.xq), self.index.nprobe
        self.q_assign = np.empty((nq, nprobe), dtype=np.int64)
        for i0 in range(0, nq, 65536):
            self.q_assign[i0:i0 + 65536] = self.index.quantizer.search(self.xq[i0:i0 + 65536],
                                                                       nprobe)[1]
        if self.verbose > 0:
            print(f"coarse quantization: {time.time() - t:.3f} s", file=sys.stderr)

    def reorder_assign(self) -> None:
        """Group the (query, list) pairs by list: the queries of list l are
        ``query_ids[bucket_lims[l]:bucket_lims[l + 1]]``; unassigned (-1) dropped."""
        flat = self.q_assign.ravel()
        queries = np.repeat(np.arange(self.q_assign.shape[0]), self.q_assign.shape[1])
        keep = flat >= 0
        flat, queries = flat[keep], queries[keep]
        order = np.argsort(flat, kind="stable")
        self.query_ids = queries[order]
        self.bucket_lims = np.searchsorted(flat[order], np.arange(self.index.nlist + 1))
        del self.q_assign

    def prepare_bucket(self, l: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any]:
        """(query numbers, their vectors, list ids, decoded list vectors) of list ``l``."""
        t0 = time.time()
        q_subset = self.query_ids[self.bucket_lims[l]:self.bucket_lims[l + 1]]
        xq_l = self.xq[q_subset]
        if self.by_residual:
            xq_l = xq_l - self.index.quantizer.reconstruct(l)
        t1 = time.time()
        list_ids, codes = get_invlist(self.index.invlists, l)
        xb_l: Any = codes if self.decode_func is None else self.decode_func(codes)
        if self.use_float16:
            xq_l, xb_l = xq_l.astype(np.float16), np.asarray(xb_l).astype(np.float16)
        self.t_accu[0] += t1 - t0
        self.t_accu[1] += time.time() - t1
        return q_subset, xq_l, list_ids, xb_l

    def add_results_to_heap(self, q_subset: np.ndarray, D: Any, list_ids: np.ndarray,
                            I: Any) -> None:
        if D is None:
            return
        t0 = time.time()
        ids = list_ids if I is None else np.where(I >= 0, list_ids[np.maximum(I, 0)], -1)
        self.rh.add_result_subset(q_subset, D, ids)
        self.t_accu[3] += time.time() - t0

    def sizes_in_checkpoint(self) -> tuple:
        return (self.xq.shape, self.index.nprobe, self.index.nlist)

    def write_checkpoint(self, fname: str, completed: set) -> None:
        tmp = fname + ".tmp"
        with open(tmp, "wb") as f:
            pickle.dump({"sizes": self.sizes_in_checkpoint(), "completed": completed,
                         "rh": (self.rh.D, self.rh.I)}, f, -1)
        os.replace(tmp, fname)

    def read_checkpoint(self, fname: str) -> set:
        with open(fname, "rb") as f:
            ckp = pickle.load(f)
        if ckp["sizes"] != self.sizes_in_checkpoint():
            raise ValueError(f"checkpoint: {fname} was written for other queries or another "
                             f"index ({ckp['sizes']} vs {self.sizes_in_checkpoint()})")
        self.rh.D[:] = ckp["rh"][0]
        self.rh.I[:] = ckp["rh"][1]
        return ckp["completed"]


class BlockComputer:
    """The comparison of one bucket: queries against the decoded vectors of one list."""

    def __init__(self, index: Any, method: str = "knn_function",
                 pairwise_distances: Callable = _pairwise, knn: Callable = _knn):
        from ..indexes.flat import IndexFlat
        from ..indexes.ivf_flat import IndexIVFFlat
        from ..indexes.ivf_sq import IndexIVFScalarQuantizer
        from ..indexes.ivfpq import IndexIVFPQ
        from ..indexes.pq import IndexPQ
        if method not in ("index", "pairwise_distances", "knn_function"):
            raise ValueError(f"method: expected 'index', 'pairwise_distances' or 'knn_function', "
                             f"got {method!r}")
        self.index = index
        self.method = method
        self.pairwise_distances = pairwise_distances
        self.knn = knn
        cls = type(index)
        if cls is IndexIVFFlat:
            helper: Any = IndexFlat(index.d, index.metric_type)
            decode: Callable = lambda codes: codes.view(np.float32)
            by_residual = False
        elif cls is IndexIVFPQ:
            helper = IndexPQ(index.d, index.pq.M, index.pq.nbits, index.metric_type)
            helper.pq = index.pq
            helper.is_trained = True
            decode = index.pq.decode
            by_residual = index.by_residual
        elif cls is IndexIVFScalarQuantizer:
            # voisin's IndexScalarQuantizer takes no raw codes: the "index"
            # method searches the decoded vectors (the distances an SQ index computes)
            helper = IndexFlat(index.d, index.metric_type)
            decode = index.sq.decode
            by_residual = index.by_residual
        else:
            raise TypeError(f"index: {cls.__name__} is not supported (IndexIVFFlat, IndexIVFPQ, "
                            "IndexIVFScalarQuantizer)")
        self.index_help = helper
        codes_in = method == "index" and cls is not IndexIVFScalarQuantizer
        self.decode_func = None if codes_in else decode
        self.by_residual = by_residual

    def block_search(self, xq_l: np.ndarray, xb_l: Any, list_ids: np.ndarray, k: int,
                     **extra_args: Any) -> tuple[Any, Any]:
        if len(xq_l) == 0 or len(list_ids) == 0:
            return None, None
        metric = self.index.metric_type
        if self.method == "index":
            helper = self.index_help
            helper.reset()
            if hasattr(helper, "add_codes"):
                helper.add_codes(xb_l)
            elif self.decode_func is None:  # IVFFlat codes are the float32 bytes
                helper.add(np.ascontiguousarray(xb_l).view(np.float32))
            else:
                helper.add(xb_l)
            return helper.search(xq_l, min(k, helper.ntotal))
        if self.method == "pairwise_distances":
            return self.pairwise_distances(xq_l, xb_l, metric=metric), None
        return self.knn(xq_l, xb_l, min(k, len(list_ids)), metric=metric, **extra_args)


def big_batch_search(index: Any, xq: Any, k: int, method: str = "knn_function",
                     pairwise_distances: Callable = _pairwise, knn: Callable = _knn,
                     verbose: int = 0, threaded: int = 0, use_float16: bool = False,
                     prefetch_threads: int = 1, computation_threads: int = 1,
                     q_assign: Any = None, checkpoint: str | None = None,
                     checkpoint_freq: float = 7200, start_list: int = 0,
                     end_list: int | None = None, crash_at: int = -1
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest neighbours of ``xq`` in the IVF ``index`` with its
    ``nprobe``, computed list by list; returns ``(D, I)`` as ``index.search``
    (same results up to ties and the order of float sums).

    ``threaded=0`` runs buckets in turn; ``threaded=1`` prepares the next
    bucket while the current one is compared; ``threaded>=2`` prepares
    ``prefetch_threads`` buckets ahead and compares with ``computation_threads``
    threads (a custom knn function then gets a ``thread_id``). ``q_assign`` replaces
    the coarse assignment; ``checkpoint`` names a file written every
    ``checkpoint_freq`` seconds and read back to resume; ``start_list`` /
    ``end_list`` restrict the run to some lists; ``crash_at`` raises after that
    list (to test checkpoints).
    """
    xq = as_matrix(xq, index.d, "xq")
    k = check_k(k)
    threaded = check_int(threaded, "threaded", lo=0)
    prefetch_threads = check_int(prefetch_threads, "prefetch_threads", lo=1)
    computation_threads = check_int(computation_threads, "computation_threads", lo=1)
    comp = BlockComputer(index, method, pairwise_distances, knn)
    bbs = BigBatchSearcher(index, xq, k, verbose, use_float16)
    bbs.decode_func, bbs.by_residual = comp.decode_func, comp.by_residual
    if q_assign is None:
        bbs.coarse_quantization()
    else:
        q_assign = np.asarray(q_assign)
        if q_assign.ndim != 2 or q_assign.shape[0] != xq.shape[0]:
            raise ValueError(f"q_assign: expected shape ({xq.shape[0]}, nprobe), got {q_assign.shape}")
        bbs.q_assign = q_assign.astype(np.int64)
    bbs.reorder_assign()
    end_list = index.nlist if end_list is None else check_int(end_list, "end_list", lo=0,
                                                              hi=index.nlist)
    start_list = check_int(start_list, "start_list", lo=0, hi=end_list)
    completed: set = set()
    if checkpoint is not None:
        if (start_list, end_list) != (0, index.nlist):
            raise ValueError("checkpoint: only for a run over all the lists")
        if os.path.exists(checkpoint):
            completed = bbs.read_checkpoint(checkpoint)
            LOG.info("recovered checkpoint %s: %d lists done", checkpoint, len(completed))
    todo = [l for l in range(start_list, end_list) if l not in completed]
    t_ckp = time.time()

    def compute(bucket: tuple, thread_id: int | None = None) -> tuple:
        q_subset, xq_l, list_ids, xb_l = bucket
        t0 = time.time()
        extra = {"thread_id": thread_id} if thread_id is not None else {}
        D, I = comp.block_search(xq_l, xb_l, list_ids, k, **extra)
        bbs.t_accu[2] += time.time() - t0
        return q_subset, D, list_ids, I

    def finish(l: int, result: tuple) -> None:
        nonlocal t_ckp
        if l == crash_at:  # before the list counts as done, as FAISS's test hook
            raise RuntimeError(f"crash_at: stopping at list {l} as asked")
        bbs.add_results_to_heap(*result)
        completed.add(l)
        if checkpoint is not None and time.time() - t_ckp > checkpoint_freq:
            bbs.write_checkpoint(checkpoint, completed)
            t_ckp = time.time()

    if threaded == 0:
        for l in todo:
            finish(l, compute(bbs.prepare_bucket(l)))
    else:
        ahead = 1 if threaded == 1 else prefetch_threads
        workers = 1 if threaded == 1 else computation_threads
        with ThreadPoolExecutor(ahead) as prep, ThreadPoolExecutor(workers) as pool:
            prepared = [prep.submit(bbs.prepare_bucket, l) for l in todo[:ahead]]
            running: list = []
            for n, l in enumerate(todo):
                bucket = prepared[n].result()
                if n + ahead < len(todo):
                    prepared.append(prep.submit(bbs.prepare_bucket, todo[n + ahead]))
                # FAISS hands a custom knn function the worker number; voisin's
                # own knn has no use for it (and FAISS's would reject it)
                tid = n % workers if computation_threads > 1 and knn is not _knn else None
                running.append((l, pool.submit(compute, bucket, tid)))
                while len(running) > workers or (running and running[0][1].done()):
                    done_l, fut = running.pop(0)
                    finish(done_l, fut.result())
            for done_l, fut in running:
                finish(done_l, fut.result())
    bbs.rh.finalize()
    return bbs.rh.D, bbs.rh.I
