"""Residual quantizer (FAISS's ``ResidualQuantizer``).

Stage m quantizes what the stages before it left over: codebook m is learnt
by k-means on the residuals of the training set after stages 0..m-1, and a
vector's code is found by beam search (``max_beam_size`` partial codes kept
at each stage, 5 by default as in FAISS), which beats greedy encoding at the
cost of ``max_beam_size`` times more distance computations.

Training follows FAISS's ``ResidualQuantizer::train``: the clustering of each
stage is progressive-dimension k-means (``Train_progressive_dim``, the
default) or plain k-means (``Train_default``) with FAISS's
ProgressiveDimClusteringParameters (``cp``: niter=10, seed=1234, at most 256
points per centroid), run on the residuals of every beam entry (or of the
best one with ``Train_top_beam``); ``Train_refine_codebook`` then re-fits all
codebooks jointly by least squares ``niter_codebook_refine`` times. k-means
draws its random starts with voisin's generator, so codebooks differ from
faiss's draw for draw but not in quality.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .._validate import as_matrix, check_int
from ..kernels import rq as K
from .additive import ST_decompress, AdditiveQuantizer, as_nbits


class ResidualQuantizer(AdditiveQuantizer):
    """M stages of 2**nbits codewords summed (FAISS ``ResidualQuantizer``).

    ``ResidualQuantizer(d, M, nbits, search_type=ST_decompress)`` or
    ``ResidualQuantizer(d, [nbits_0, nbits_1, ...])``.

    Example:
        >>> import numpy as np, voisin
        >>> x = np.random.default_rng(0).random((3000, 16), dtype="float32")
        >>> rq = voisin.ResidualQuantizer(16, 2, 6)
        >>> rq.train_type = voisin.ResidualQuantizer.Train_default
        >>> rq.train(x)
        >>> codes = rq.compute_codes(x[:5])
        >>> codes.shape, rq.codebooks.shape
        ((5, 2), (128, 16))
        >>> rq.decode(codes).shape
        (5, 16)
    """

    Train_default = 0
    Train_progressive_dim = 1
    Train_refine_codebook = 2
    Train_top_beam = 1024
    Skip_codebook_tables = 2048

    def __init__(self, d: int, M: int | Sequence[int] = 1, nbits: int | Sequence[int] | None = None,
                 search_type: int = ST_decompress):
        if nbits is None or isinstance(M, (list, tuple, np.ndarray)):
            # ResidualQuantizer(d, [bits...], search_type)
            if isinstance(M, (list, tuple, np.ndarray)):
                if nbits is not None:
                    search_type = nbits  # the third positional argument
                bits = as_nbits(None, list(M))
            else:
                bits = as_nbits(M, 8)
        else:
            bits = as_nbits(M, nbits)
        super().__init__(d, bits, search_type)
        self.train_type = self.Train_progressive_dim
        self.max_beam_size = 5
        self.niter_codebook_refine = 5
        #: FAISS's beam search with codebook tables; voisin's beam search gives the same
        #: codes either way, the flag is kept (and written to files) for compatibility
        self.use_beam_LUT = 0
        from ..clustering_faiss import ProgressiveDimClusteringParameters
        self.cp = ProgressiveDimClusteringParameters()
        #: callable dim -> Index used for k-means assignment (FAISS's assign_index_factory)
        self.assign_index_factory = None

    # --- training ---------------------------------------------------------------
    def train(self, x: Any) -> None:
        """Learn the M codebooks stage by stage, then the norm encoding."""
        x = as_matrix(x, self.d, "x")
        self.train_validated(x)

    def _cluster(self, data: np.ndarray, k: int) -> np.ndarray:
        from ..clustering_faiss import Clustering, ProgressiveDimClustering
        if data.shape[0] < k:
            raise ValueError(f"x: training a stage of {k} codewords needs at least {k} vectors, "
                             f"got {data.shape[0]}")
        data = np.ascontiguousarray(data, dtype=np.float32)
        if self.train_type & self.Train_progressive_dim:
            clus = ProgressiveDimClustering(self.d, k, self.cp)
            clus.verbose = self.verbose
            clus.train(data, self.assign_index_factory)
        else:
            from ..indexes.flat import IndexFlatL2
            clus = Clustering(self.d, k, self.cp)
            clus.verbose = self.verbose
            fac = self.assign_index_factory
            clus.train(data, fac(self.d) if fac is not None else IndexFlatL2(self.d))
        return np.asarray(clus.centroids.data(), dtype=np.float32).reshape(k, self.d).copy()

    def train_validated(self, x: np.ndarray) -> None:
        n, d = x.shape
        self.codebooks = np.zeros((self.total_codebook_size, d), dtype=np.float32)
        beam = self._beam_start(x)
        for m in range(self.M):
            k = 1 << self.nbits[m]
            resid = beam[1]
            data = resid[:, 0] if self.train_type & self.Train_top_beam else resid.reshape(-1, d)
            cb = self._cluster(data, k)
            o = self.codebook_offsets[m]
            self.codebooks[o:o + k] = cb
            new_b = min(resid.shape[1] * k, check_int(self.max_beam_size, "max_beam_size", lo=1))
            beam = self._beam_stage(beam, cb, m, new_b)
            if self.verbose:
                print(f"train stage {m}: {self.nbits[m]} bits, total distance "
                      f"{float(beam[2][:, 0].sum()):g}, beam size {new_b}")
        self.is_trained = True
        if self.train_type & self.Train_refine_codebook:
            for _ in range(check_int(self.niter_codebook_refine, "niter_codebook_refine", lo=0)):
                self.retrain_AQ_codebook(x)
        # the norms to encode are those of the reconstructions x - residual
        recon = x - beam[1][:, 0]
        self.train_norm(np.einsum("ij,ij->i", recon, recon))
        if not self.train_type & self.Skip_codebook_tables:
            self.compute_codebook_tables()

    def retrain_AQ_codebook(self, x: Any) -> float:
        """Re-fit every codebook jointly by least squares on the current codes of ``x``;
        returns the new quantization error (FAISS's retrain_AQ_codebook)."""
        self._check_trained()
        x = as_matrix(x, self.d, "x")
        n = x.shape[0]
        if n < self.total_codebook_size:
            raise ValueError(f"x: too few training points ({n}) for {self.total_codebook_size} "
                             "codewords")
        g = self._encode_idx(x).astype(np.int64) + self.codebook_offsets[None, :-1]
        T = self.total_codebook_size
        gram = np.zeros((T, T), dtype=np.float64)
        for a in range(self.M):
            for b in range(self.M):
                np.add.at(gram, (g[:, a], g[:, b]), 1.0)
        rhs = np.zeros((T, self.d), dtype=np.float64)
        for a in range(self.M):
            np.add.at(rhs, g[:, a], x.astype(np.float64))
        sol = np.linalg.lstsq(gram, rhs, rcond=1e-8)[0]
        if not np.isfinite(sol).all():
            raise RuntimeError("retrain_AQ_codebook: the least-squares solution is not finite")
        self.codebooks = np.ascontiguousarray(sol, dtype=np.float32)
        y = self.decode_unpacked(g - self.codebook_offsets[None, :-1])
        return float(np.sum((x.astype(np.float64) - y) ** 2))

    def initialize_from(self, other: "ResidualQuantizer", skip_M: int = 0) -> None:
        """Take stages skip_M .. skip_M + M - 1 of ``other``'s codebooks."""
        skip_M = check_int(skip_M, "skip_M", lo=0)
        if self.M + skip_M > other.M or other.d != self.d:
            raise ValueError(f"other: needs d={self.d} and at least {self.M + skip_M} stages")
        self.nbits = list(other.nbits[skip_M:skip_M + self.M])
        self.set_derived_values()
        o0 = other.codebook_offsets[skip_M]
        self.codebooks = other.codebooks[o0:o0 + self.total_codebook_size].copy()
        self.is_trained = other.is_trained
        self.norm_min, self.norm_max = other.norm_min, other.norm_max
        self.compute_codebook_tables()

    # --- beam search --------------------------------------------------------------
    def _beam_start(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = x.shape[0]
        codes = np.zeros((n, 1, self.M), dtype=np.int32)
        resid = np.ascontiguousarray(x, dtype=np.float32).reshape(n, 1, self.d).copy()
        dist = np.einsum("ij,ij->i", x, x).astype(np.float32).reshape(n, 1)
        return codes, resid, dist

    def _beam_stage(self, beam: tuple, cb: np.ndarray, m: int, new_b: int) -> tuple:
        codes, resid, dist = beam
        n, b, d = resid.shape
        k = cb.shape[0]
        new_b = min(new_b, b * k)
        out_codes = np.empty((n, new_b, self.M), dtype=np.int32)
        out_resid = np.empty((n, new_b, d), dtype=np.float32)
        out_dist = np.empty((n, new_b), dtype=np.float32)
        cnorm = np.einsum("ij,ij->i", cb, cb).astype(np.float32)
        cbt = np.ascontiguousarray(cb.T)
        # rows per block: the (rows * b, k) product block stays within ~64 MB
        block = max(1, min(n, (64 << 20) // max(1, b * k * 4)))
        for i0 in range(0, n, block):
            i1 = min(n, i0 + block)
            dots = np.ascontiguousarray(resid[i0:i1].reshape(-1, d) @ cbt, dtype=np.float32)
            K.beam_select(dots, cnorm, dist[i0:i1], b, codes[i0:i1], resid[i0:i1], cb, m,
                          out_codes[i0:i1], out_resid[i0:i1], out_dist[i0:i1])
        return out_codes, out_resid, out_dist

    def refine_beam(self, x: Any, beam_size: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Beam search from scratch: (codes (n, beam, M), residuals (n, beam, d),
        squared residual norms (n, beam)), best first."""
        self._check_trained()
        x = as_matrix(x, self.d, "x")
        width = check_int(self.max_beam_size if beam_size is None else beam_size, "beam_size", lo=1)
        beam = self._beam_start(x)
        for m in range(self.M):
            beam = self._beam_stage(beam, self.get_codebook(m), m, width)
        return beam

    def _encode_idx(self, x: np.ndarray) -> np.ndarray:
        return self._encode_idx_resid(x)[0]

    def _encode_idx_resid(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = x.shape[0]
        if n == 0:
            return np.zeros((0, self.M), dtype=np.int32), np.zeros((0, self.d), dtype=np.float32)
        width = check_int(self.max_beam_size, "max_beam_size", lo=1)
        # whole beams of a block of vectors at a time bound the scratch memory
        per_vec = width * self.d * 8 + width * max(1 << b for b in self.nbits) * 4
        block = max(1, min(n, (256 << 20) // per_vec))
        out = np.empty((n, self.M), dtype=np.int32)
        resid = np.empty((n, self.d), dtype=np.float32)
        for i0 in range(0, n, block):
            beam = self._beam_start(x[i0:i0 + block])
            for m in range(self.M):
                beam = self._beam_stage(beam, self.get_codebook(m), m, width)
            out[i0:i0 + block] = beam[0][:, 0]
            resid[i0:i0 + block] = beam[1][:, 0]
        return out, resid

    def memory_per_point(self, beam_size: int = -1) -> int:
        """FAISS's estimate of the beam-search scratch bytes per encoded vector."""
        b = self.max_beam_size if beam_size < 0 else beam_size
        return b * self.d * 2 * 4 + b * b * (4 + 8)
