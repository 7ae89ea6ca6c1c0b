"""IndexIVFFlat: IVF over the raw float32 vectors, and its batch pipelines.

The list scans are the kernels of ``kernels/ivf.py``; this module picks one per
call: the fused serial path for a few queries, BLAS coarse products plus a
parallel scan (or one pipeline per core) for batches, the list-major scan for
long vectors, and the exact engine over the gathered vectors of a filter.
"""

from __future__ import annotations

import numba
import numpy as np

from .. import _blas, exact, filtering
from ..index import Index
from ..kernels import ivf as K
from ..kernels.flat import row_norms_sqr
from ..metric import METRIC_L2, check_metric, worst_distance
from .ivf import IndexIVF, dimension_of
from .ivf_filtered import COMPACT_MAX_BYTES

# Queries x centroids inner products computed per BLAS call in batch mode.
GEMM_BLOCK_BYTES = 64 << 20
# From this many queries a batch is scanned list by list (each stored vector is
# read once per batch and compared with every query probing its list).
LIST_MAJOR_MIN_QUERIES = 64
LIST_MAJOR_MAX_BYTES = 256 << 20
LIST_MAJOR_MIN_DIM = 128


# Queries per block of a batch pipeline: a (rows x nlist) product block stays
# in the core's cache and the two pipelines share the work out evenly.
PIPELINE_BLOCK_QUERIES = 128


def _pipelines_pay(nq: int) -> bool:
    return numba.get_num_threads() > 1 and nq >= 2 * PIPELINE_BLOCK_QUERIES and _blas.available()


def _flat_gemm_pipelines(x, ct, cnorm, nprobe, vecs, ctx, metric, D, I) -> None:
    """IVF-Flat batch search as one pipeline per thread (as in ``voisin.exact``):
    each takes blocks of queries, computes their coarse products with BLAS on
    one thread and runs the probe selection and list scan for the block on the
    same core. BLAS on its own pool followed by one parallel scan hands the
    cores between two spinning pools, and the product block leaves the cache
    (glove-50, IVF4096, 2,000 queries: 1.3-1.7x more QPS this way).
    """
    nq = x.shape[0]
    nlist = ct.shape[1]
    worst = worst_distance(metric)
    G = np.empty((numba.get_num_threads(), PIPELINE_BLOCK_QUERIES, nlist), dtype=np.float32)

    def work(p: int, q0: int) -> None:
        q1 = min(nq, q0 + PIPELINE_BLOCK_QUERIES)
        g = G[p, :q1 - q0]
        np.matmul(x[q0:q1], ct, out=g)
        K.flat_search_gemm(x[q0:q1], g, cnorm, nprobe, vecs, ctx.ids, ctx.offsets, ctx.sizes,
                           metric, ctx.max_codes, ctx.mask, ctx.use_mask, worst, D[q0:q1], I[q0:q1])

    _blas.run_pipelines(range(0, nq, PIPELINE_BLOCK_QUERIES), work, numba.get_num_threads())


class IndexIVFFlat(IndexIVF):
    """IVF storing the raw float32 vectors: exact distances within the probed lists.

    With ``nprobe == nlist`` the result equals an exact (Flat) search.

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).random((10000, 32), dtype="float32")
        >>> quantizer = voisin.IndexFlatL2(32)
        >>> index = voisin.IndexIVFFlat(quantizer, 32, 64)
        >>> index.train(xb)
        >>> index.add(xb)
        >>> index.nprobe = 8
        >>> D, I = index.search(xb[:5], 10)
        >>> I[:, 0].tolist()
        [0, 1, 2, 3, 4]
    """

    def __init__(self, quantizer: Index | None = None, d: int | None = None, nlist: int = 1,
                 metric: int = METRIC_L2):
        d = dimension_of(quantizer, d, "IndexIVFFlat")
        metric = check_metric(metric)
        super().__init__(quantizer, d, nlist, 4 * int(d), metric)

    def _vecs(self, codes: np.ndarray) -> np.ndarray:
        return codes.view(np.float32).reshape(codes.shape[0], self.d)

    def _encode(self, x: np.ndarray, list_nos: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x, dtype=np.float32).view(np.uint8).reshape(x.shape[0], self.code_size)

    def _decode(self, codes: np.ndarray, list_nos: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(codes).view(np.float32).reshape(codes.shape[0], self.d).copy()

    def _search_single(self, x, k, nprobe, ctx, D, I):
        flat = self._flat_centroids()
        if flat is None:
            return None
        cent, cnorm = flat
        K.flat_search_single(x, cent, cnorm, nprobe, self._vecs(ctx.codes), ctx.ids, ctx.offsets,
                             ctx.sizes, self.metric_type, ctx.max_codes, ctx.mask, ctx.use_mask,
                             worst_distance(self.metric_type), D, I)
        return D, I

    def _search_batch(self, x, k, nprobe, ctx, D, I):
        flat = self._flat_centroids()
        if flat is None:
            return None
        cent, cnorm = flat
        ct = np.ascontiguousarray(cent.T)
        step = max(1, GEMM_BLOCK_BYTES // (4 * max(1, self.nlist)))
        G = np.empty((min(step, x.shape[0]), self.nlist), dtype=np.float32)
        vecs = self._vecs(ctx.codes)
        # the per-(query, probe) heaps cost rows*nprobe*k*12 bytes: large k or
        # nprobe fall back to the per-query scan rather than allocate too much
        slot_bytes = min(step, x.shape[0]) * nprobe * k * 12
        # and it pays off where memory traffic dominates: long vectors. Short
        # ones (glove's 200 bytes) stay in cache anyway and the extra slot-heap
        # inserts make it slower there.
        list_major = (x.shape[0] >= LIST_MAJOR_MIN_QUERIES and slot_bytes <= LIST_MAJOR_MAX_BYTES
                      and self.d >= LIST_MAJOR_MIN_DIM)
        order = np.random.default_rng(0).permutation(self.nlist).astype(np.int64) if list_major else None
        if not list_major and _pipelines_pay(x.shape[0]):
            _flat_gemm_pipelines(x, ct, cnorm, nprobe, vecs, ctx, self.metric_type, D, I)
            return D, I
        for i0 in range(0, x.shape[0], step):
            i1 = min(x.shape[0], i0 + step)
            g = G[:i1 - i0]
            np.matmul(x[i0:i1], ct, out=g)
            if list_major:
                probes = np.empty((i1 - i0, nprobe), dtype=np.int64)
                K.select_probes(g, cnorm, self.metric_type, probes)
                start, pair_q, pair_p = K.group_pairs(probes, ctx.sizes, self.nlist, ctx.max_codes)
                SD = np.full((i1 - i0, nprobe, k), np.inf, dtype=np.float32)
                SI = np.full((i1 - i0, nprobe, k), -1, dtype=np.int64)
                K.scan_lists(x[i0:i1], order, start, pair_q, pair_p, vecs, ctx.ids, ctx.offsets, ctx.sizes,
                             self.metric_type, ctx.mask, ctx.use_mask, SD, SI)
                K.merge_slots(SD, SI, self.metric_type, worst_distance(self.metric_type), D[i0:i1], I[i0:i1])
                continue
            K.flat_search_gemm(x[i0:i1], g, cnorm, nprobe, vecs, ctx.ids, ctx.offsets, ctx.sizes,
                               self.metric_type, ctx.max_codes, ctx.mask, ctx.use_mask,
                               worst_distance(self.metric_type), D[i0:i1], I[i0:i1])
        return D, I

    def _blas_exact(self, nq: int, allowed: int) -> bool:
        """Whether the exact strategy runs as BLAS blocks over the gathered vectors."""
        return (nq >= exact.BLAS_THRESHOLD and self.d > exact.DIRECT_MAX_D
                and allowed * self.code_size <= COMPACT_MAX_BYTES)

    def _exact_code_cost(self, x, plan):
        return filtering.BLAS_CODE_COST if self._blas_exact(x.shape[0], plan.allowed) else 1.0

    def _search_allowed(self, x, k, ctx, D, I):
        cctx, lists = self._allowed_slab(ctx)
        if not self._blas_exact(x.shape[0], ctx.plan.allowed) or cctx.use_mask:
            return super()._search_allowed(x, k, ctx, D, I)
        # many queries: the gathered vectors are a plain matrix, searched by
        # the exact engine (BLAS blocks); row norms kept with the plan
        vecs = self._vecs(cctx.codes)
        norms = None
        if exact.uses_norms(x, self.metric_type):
            norms = cctx.cache.get("norms")
            if norms is None:
                norms = cctx.cache["norms"] = row_norms_sqr(vecs)
        exact.search(x, vecs, vecs.shape[0], self.metric_type, k, None, D, I, norms)
        I[:] = np.where(I >= 0, cctx.ids[np.maximum(I, 0)], -1)
        return D, I

    def _search_preassigned(self, x, k, probes, probe_dists, ctx, D, I):
        K.flat_search_batch(x, np.ascontiguousarray(probes, dtype=np.int64), self._vecs(ctx.codes),
                            ctx.ids, ctx.offsets, ctx.sizes, self.metric_type, ctx.max_codes,
                            ctx.mask, ctx.use_mask, worst_distance(self.metric_type), D, I)
        return D, I

    def _range_preassigned(self, x, radius, probes, probe_dists, ctx):
        return K.flat_range_search(x, np.ascontiguousarray(probes, dtype=np.int64), self._vecs(ctx.codes),
                                   ctx.ids, ctx.offsets, ctx.sizes, self.metric_type, np.float32(radius),
                                   ctx.max_codes, ctx.mask, ctx.use_mask)
