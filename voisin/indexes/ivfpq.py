"""IndexIVFPQ: inverted lists of product-quantizer codes (FAISS's IVF-PQ).

With ``by_residual`` (the default) a vector is stored as the PQ code of its
residual ``x - c_l`` to the centroid of its list, which makes the codes more
precise for the same size. Searching a list then needs a look-up table that
depends on the list; for L2 FAISS's decomposition is used::

    ||q - c - r||^2 = ||q - c||^2  +  (||r||^2 + 2 <c, r>)  -  2 <q, r>
                      coarse dist.     precomputed per list   per query

so a list's table is the sum of two tables (``use_precomputed_table``), not a
fresh M x ksub x dsub computation. For inner product the residual term
``<q, r>`` does not depend on the list at all: one table per query.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from .._validate import check_int
from ..codecs.pq import ProductQuantizer
from ..index import Index
from ..kernels import ivfpq as K
from ..metric import METRIC_L2, check_metric, worst_distance
from .ivf import SINGLE_PATH_MAX_QUERIES, IndexIVF, dimension_of

_NO_TABLE = np.zeros((1, 1, 1), dtype=np.float32)

# FAISS's precomputed_table_max_bytes: above this the tables are built per list.
PRECOMPUTED_TABLE_MAX_BYTES = 2 << 30

# queries per BLAS block of the batch path (bounds the nq x nlist product matrix)
GEMM_BLOCK = 4096

MODE_PLAIN, MODE_L2_PRECOMPUTED, MODE_IP_RESIDUAL, MODE_L2_RESIDUAL = 0, 1, 2, 3


class IndexIVFPQ(IndexIVF):
    """IVF with product-quantized (residual) codes: ``M`` sub-quantizers of ``nbits``.

    Each vector costs ``code_size = ceil(M * nbits / 8)`` bytes plus its
    8-byte id, as in FAISS. Distances are approximate; re-rank with
    ``IndexRefineFlat`` when exact top results matter.

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).random((20000, 32), dtype="float32")
        >>> index = voisin.IndexIVFPQ(voisin.IndexFlatL2(32), 32, 64, 8, 8)
        >>> index.train(xb)
        >>> index.add(xb)
        >>> index.nprobe = 8
        >>> D, I = index.search(xb[:3], 10)
        >>> index.code_size
        8
    """

    def __init__(self, quantizer: Index | None = None, d: int | None = None, nlist: int = 1,
                 M: int = 8, nbits: int = 8, metric: int = METRIC_L2, by_residual: bool = True):
        d = dimension_of(quantizer, d, "IndexIVFPQ")
        metric = check_metric(metric)
        pq = ProductQuantizer(d, M, nbits)
        super().__init__(quantizer, d, nlist, pq.code_size, metric)
        self.pq = pq
        self.by_residual = bool(by_residual)
        #: FAISS's knob: 0 = build each list's table from scratch, 1 = precomputed
        #: tables (chosen automatically after training for L2 with residuals)
        self.use_precomputed_table = 0
        self.precomputed_table = _NO_TABLE
        #: FAISS's polysemous filter: > 0 scores only the codes at Hamming distance
        #: below it from the query's code (0 = off, FAISS's default)
        self.polysemous_ht = 0
        #: train the PQ for polysemous filtering (see voisin.polysemous)
        self.do_polysemous_training = False
        self.polysemous_training = None
        self._cent_cache: np.ndarray | None = None
        self._codec_trained = False
        self.is_trained = self._quantizer_ready() and self._codec_is_trained()

    @property
    def M(self) -> int:
        return self.pq.M

    @property
    def nbits(self) -> int:
        return self.pq.nbits

    # --- training -----------------------------------------------------------
    def train_encoder_num_vectors(self) -> int:
        """Training vectors the PQ looks at (FAISS: ksub * max_points_per_centroid)."""
        return self.pq.ksub * self.pq.max_points_per_centroid

    def _train_codec(self, x: np.ndarray, list_nos: np.ndarray | None) -> None:
        n = x.shape[0]
        cap = self.train_encoder_num_vectors()
        if n > cap:
            rows = np.sort(np.random.default_rng(self.cp.seed).permutation(n)[:cap])
            x = x[rows]
            list_nos = list_nos[rows] if list_nos is not None else None
        self._cent_cache = None
        if self.by_residual:
            x = x - self._centroids()[list_nos]
        self.pq.train_validated(np.ascontiguousarray(x, dtype=np.float32))
        if self.do_polysemous_training:
            # FAISS's train_encoder: the PQ's centroids relabelled for Hamming
            # filtering (the index's PolysemousTraining, or the defaults)
            from ..polysemous import PolysemousTraining
            pt = self.polysemous_training if self.polysemous_training is not None else PolysemousTraining()
            if not isinstance(pt, PolysemousTraining):
                raise TypeError(f"polysemous_training: expected a voisin.PolysemousTraining, got {pt!r}")
            pt.optimize_pq_for_hamming(self.pq, x)
        self._codec_trained = True
        self.precompute_table()

    def _train(self, x: np.ndarray) -> None:
        self._cent_cache = None
        super()._train(x)
        if self.use_precomputed_table and self.precomputed_table is _NO_TABLE:
            self.precompute_table()  # the quantizer was retrained over a trained PQ

    def precompute_table(self) -> None:
        """Build the per-list L2 tables (||r||^2 + 2 <c, r>) when they pay off (FAISS)."""
        self._cent_cache = None
        if not (self.by_residual and self.metric_type == METRIC_L2 and self._quantizer_ready()
                and self._codec_is_trained()):
            self.precomputed_table = _NO_TABLE
            return
        size = self.nlist * self.pq.M * self.pq.ksub * 4
        if self.use_precomputed_table == 0:
            self.use_precomputed_table = 1 if size <= PRECOMPUTED_TABLE_MAX_BYTES else 0
        if self.use_precomputed_table != 1:
            self.precomputed_table = _NO_TABLE
            return
        table = np.empty((self.nlist, self.pq.M, self.pq.ksub), dtype=np.float32)
        K.precompute_l2_tables(self._centroids(), self.pq.centroids, table)
        self.precomputed_table = table

    def _centroids(self) -> np.ndarray:
        flat = self._flat_centroids()
        if flat is not None:
            return flat[0]
        if self._cent_cache is None:
            self._cent_cache = np.ascontiguousarray(self.quantizer.reconstruct_n(0, self.nlist))
        return self._cent_cache

    # --- codec ----------------------------------------------------------------
    def _encode(self, x: np.ndarray, list_nos: np.ndarray) -> np.ndarray:
        if self.by_residual:
            x = np.ascontiguousarray(x - self._centroids()[list_nos])
        return self.pq.encode(x)

    def _decode(self, codes: np.ndarray, list_nos: np.ndarray) -> np.ndarray:
        out = self.pq.decode(codes)
        if self.by_residual:
            out += self._centroids()[list_nos]
        return out

    def sa_code_size(self) -> int:
        return self.code_size

    # --- search ---------------------------------------------------------------
    def _mode(self) -> int:
        if not self.by_residual:
            return MODE_PLAIN
        if self.metric_type != METRIC_L2:
            return MODE_IP_RESIDUAL
        if self.use_precomputed_table == 1 and self.precomputed_table is not _NO_TABLE:
            return MODE_L2_PRECOMPUTED
        return MODE_L2_RESIDUAL

    def _list_overhead(self) -> float:
        # opening a list costs a table: ksub sums per sub-quantizer with
        # precomputed tables (one code costs one look-up per sub-quantizer),
        # ksub * dsub products when the table is built from the residual
        mode = self._mode()
        if mode == MODE_L2_PRECOMPUTED:
            return float(self.pq.ksub)
        if mode == MODE_L2_RESIDUAL:
            return float(self.pq.ksub * self.pq.dsub)
        return 0.0

    def _needs_probe_dists(self) -> bool:
        return True

    def _search_unfiltered(self, x, k, nprobe, ctx, D, I):
        flat = self._flat_centroids()
        nq = x.shape[0]
        if flat is None or nq <= SINGLE_PATH_MAX_QUERIES or numba.get_num_threads() == 1:
            return super()._search_unfiltered(x, k, nprobe, ctx, D, I)
        # batch: one BLAS product gives every query's centroid scores, and the
        # list selection runs inside the parallel scan kernel (no separate
        # top-k pass over the nq x nlist matrix)
        cent, cnorm = flat
        with numba.parallel_chunksize(1):
            for q0 in range(0, nq, GEMM_BLOCK):
                q1 = min(nq, q0 + GEMM_BLOCK)
                G = x[q0:q1] @ cent.T
                self._scan_gemm(x[q0:q1], G, cnorm, nprobe, ctx, D[q0:q1], I[q0:q1])
        return D, I

    def _scan_gemm(self, x, G, cnorm, nprobe, ctx, D, I):
        K.ivfpq_search_gemm(x, G, cnorm, nprobe, ctx.codes, ctx.ids, ctx.offsets, ctx.sizes,
                            self._centroids(), self.pq.cent_t, self.pq.nbits, self.metric_type,
                            self._mode(), self.precomputed_table, ctx.max_codes, ctx.mask,
                            ctx.use_mask, worst_distance(self.metric_type), D, I)

    #: whether polysemous_ht filters this class's scans (not fast-scan's, as in FAISS)
    _polysemous = True
    polysemous_training = None

    def _search(self, x, k, params, D, I):
        ht = check_int(self.polysemous_ht, "polysemous_ht", lo=0, hi=(1 << 31) - 1)
        if ht == 0 or not self._polysemous:
            return super()._search(x, k, params, D, I)
        # polysemous filtering: the lists the coarse quantizer picks, each
        # code scored only when it passes the Hamming filter (a filter's mask
        # applies to the passing codes; no widening of the probes)
        ctx, nprobe = self._context(params)
        if D is None:
            D = np.empty((x.shape[0], k), dtype=np.float32)
        if I is None:
            I = np.empty((x.shape[0], k), dtype=np.int64)
        Dq, Iq = self.coarse_assign(x, nprobe)
        from ..kernels import polysemous as KP
        with numba.parallel_chunksize(1):
            self.n_hamming_pass = int(KP.ivfpq_search(
                x, np.ascontiguousarray(Iq, dtype=np.int64), np.ascontiguousarray(Dq, dtype=np.float32),
                ctx.codes, ctx.ids, ctx.offsets, ctx.sizes, self._centroids(), self.pq.cent_t,
                self.pq.nbits, self.metric_type, self._mode(), self.precomputed_table, ctx.max_codes,
                ctx.mask, ctx.use_mask, ht, self.by_residual, worst_distance(self.metric_type), D, I))
        return D, I

    def _search_single(self, x, k, nprobe, ctx, D, I):
        flat = self._flat_centroids()
        if flat is None:
            return None
        cent, cnorm = flat
        K.ivfpq_search_single(x, cent, cnorm, nprobe, ctx.codes, ctx.ids, ctx.offsets, ctx.sizes,
                              self.pq.cent_t, self.pq.nbits, self.metric_type, self._mode(),
                              self.precomputed_table, ctx.max_codes, ctx.mask, ctx.use_mask,
                              worst_distance(self.metric_type), D, I)
        return D, I

    def _search_preassigned(self, x, k, probes, probe_dists, ctx, D, I):
        # chunks of queries are handed out dynamically: list sizes vary, and on a
        # shared machine a static split waits for the slowest thread
        with numba.parallel_chunksize(1):
            K.ivfpq_search_batch(x, np.ascontiguousarray(probes, dtype=np.int64),
                                 np.ascontiguousarray(probe_dists, dtype=np.float32), ctx.codes, ctx.ids,
                                 ctx.offsets, ctx.sizes, self._centroids(), self.pq.cent_t, self.pq.nbits,
                                 self.metric_type, self._mode(), self.precomputed_table, ctx.max_codes,
                                 ctx.mask, ctx.use_mask, worst_distance(self.metric_type), D, I)
        return D, I

    def _range_preassigned(self, x, radius, probes, probe_dists, ctx):
        return K.ivfpq_range_search(x, np.ascontiguousarray(probes, dtype=np.int64),
                                    np.ascontiguousarray(probe_dists, dtype=np.float32), ctx.codes,
                                    ctx.ids, ctx.offsets, ctx.sizes, self._centroids(), self.pq.cent_t,
                                    self.pq.nbits, self.metric_type, self._mode(),
                                    self.precomputed_table, np.float32(radius), ctx.max_codes,
                                    ctx.mask, ctx.use_mask)

    def set_trained_parts(self, centroids: Any, pq_centroids: Any) -> None:
        """Install coarse centroids (nlist, d) and PQ centroids (M, ksub, dsub) learnt
        elsewhere (e.g. copied from a FAISS index), then precompute the tables."""
        centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        if centroids.shape != (self.nlist, self.d):
            raise ValueError(f"centroids: expected shape ({self.nlist}, {self.d}), got {centroids.shape}")
        with self._write_lock:
            self.quantizer.reset()
            self.quantizer.add(centroids)
            self.pq.set_centroids(pq_centroids)
            self._codec_trained = True
            self.is_trained = True
            self.precompute_table()
