"""Local search quantizer (FAISS's ``LocalSearchQuantizer``, Martinez et al. LSQ++).

M codebooks of K = 2**nbits codewords, all of dimension d, learnt jointly:
``train_iters`` rounds of (1) the least-squares codebooks for the current
codes (ridge ``lambd``, in float64), (2) a perturbation of the codebooks by
Gaussian noise of the data's per-dimension spread, decaying as
``(1 - (i + 1) / train_iters) ** p``, (3) re-encoding by iterated local
search (``train_ils_iters`` rounds). Encoding starts from random codes and
runs ``encode_ils_iters`` rounds of ICM (voisin/kernels/lsq.py). Randomness
comes from ``random_seed`` through numpy's generator, so codes are
reproducible run to run but not draw for draw FAISS's (its mt19937 stream).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import as_matrix, check_int
from ..kernels import lsq as K
from .additive import ST_decompress, AdditiveQuantizer, as_nbits


class LocalSearchQuantizer(AdditiveQuantizer):
    """Additive quantizer trained and encoded by local search (FAISS ``LocalSearchQuantizer``).

    Example:
        >>> import numpy as np, voisin
        >>> x = np.random.default_rng(0).random((1000, 8), dtype="float32")
        >>> lsq = voisin.LocalSearchQuantizer(8, 2, 4)
        >>> lsq.train_iters = 4
        >>> lsq.train(x)
        >>> lsq.compute_codes(x[:3]).shape
        (3, 1)
    """

    def __init__(self, d: int, M: int, nbits: int, search_type: int = ST_decompress):
        super().__init__(d, as_nbits(M, nbits), search_type)
        self.K = 1 << self.nbits[0]
        self.train_iters = 25
        self.encode_ils_iters = 16
        self.train_ils_iters = 8
        self.icm_iters = 4
        self.p = 0.5
        self.lambd = 1e-2
        self.chunk_size = 10000
        self.random_seed = 0x12345
        self.nperts = 4
        self.update_codebooks_with_double = True

    # --- training ------------------------------------------------------------------
    def train(self, x: Any) -> None:
        self.train_validated(as_matrix(x, self.d, "x"))

    def train_validated(self, x: np.ndarray) -> None:
        n = x.shape[0]
        if n < self.K:
            raise ValueError(f"x: training {self.K}-codeword codebooks needs at least {self.K} "
                             f"vectors, got {n}")
        self.nperts = min(check_int(self.nperts, "nperts", lo=0), self.M)
        rng = np.random.default_rng(check_int(self.random_seed, "random_seed"))
        codes = rng.integers(0, self.K, (n, self.M)).astype(np.int32)
        stddev = x.std(axis=0).astype(np.float32)
        iters = check_int(self.train_iters, "train_iters", lo=0)
        self.codebooks = np.zeros((self.total_codebook_size, self.d), dtype=np.float32)
        for i in range(iters):
            self.update_codebooks(x, codes)
            temp = (1.0 - (i + 1.0) / iters) ** float(self.p)
            noise = rng.standard_normal(self.codebooks.shape).astype(np.float32) * stddev
            self.codebooks = self.codebooks + np.float32(temp / self.M) * noise
            self._icm(x, codes, check_int(self.train_ils_iters, "train_ils_iters", lo=0), rng)
            if self.verbose:
                print(f"LSQ iter {i}: obj = {self.evaluate(codes, x):g}")
        self.is_trained = True
        y = self.decode_unpacked(codes)
        self.train_norm(np.einsum("ij,ij->i", y, y))
        self.compute_codebook_tables()

    def update_codebooks(self, x: np.ndarray, codes: np.ndarray) -> None:
        """Ridge least-squares codebooks for these codes: (B'B + lambd I)^-1 B'X."""
        T = self.total_codebook_size
        g = codes.astype(np.int64) + (np.arange(self.M, dtype=np.int64) * self.K)[None, :]
        pairs = (g[:, :, None] * T + g[:, None, :]).reshape(-1)
        dt = np.float64 if self.update_codebooks_with_double else np.float32
        gram = np.bincount(pairs, minlength=T * T).reshape(T, T).astype(dt)
        gram[np.diag_indices(T)] += self.lambd
        flat = g.reshape(-1)
        rhs = np.empty((T, self.d), dtype=dt)
        for j in range(self.d):
            # B'X one column at a time: a weighted count of each codeword's vectors
            rhs[:, j] = np.bincount(flat, weights=np.repeat(x[:, j].astype(np.float64), self.M),
                                    minlength=T)
        self.codebooks = np.ascontiguousarray(np.linalg.solve(gram, rhs), dtype=np.float32)

    def evaluate(self, codes: np.ndarray, x: np.ndarray) -> float:
        """Mean squared reconstruction error of ``codes`` for ``x``."""
        y = self.decode_unpacked(codes)
        return float(np.mean(np.sum((x.astype(np.float64) - y) ** 2, axis=1)))

    # --- encoding ------------------------------------------------------------------
    def _icm(self, x: np.ndarray, codes: np.ndarray, ils_iters: int, rng) -> None:
        cb = self.codebooks.reshape(self.M, self.K, self.d)
        binaries = 2.0 * np.einsum("akd,bld->abkl", cb, cb).astype(np.float32)
        norms = np.einsum("ij,ij->i", self.codebooks, self.codebooks).astype(np.float32)
        cbt = np.ascontiguousarray(self.codebooks.T)
        step = check_int(self.chunk_size, "chunk_size", lo=1)
        icm_iters = check_int(self.icm_iters, "icm_iters", lo=0)
        nperts = min(self.nperts, self.M)
        for i0 in range(0, x.shape[0], step):
            xi = np.ascontiguousarray(x[i0:i0 + step])
            ni = xi.shape[0]
            unaries = np.ascontiguousarray(norms[None, :] - 2.0 * (xi @ cbt), dtype=np.float32)
            pm = rng.integers(0, self.M, (ils_iters, ni, nperts)).astype(np.int32)
            pk = rng.integers(0, self.K, (ils_iters, ni, nperts)).astype(np.int32)
            block = np.ascontiguousarray(codes[i0:i0 + step])
            K.icm_ils(xi, np.ascontiguousarray(cb), unaries, np.ascontiguousarray(binaries), block,
                      pm, pk, icm_iters)
            codes[i0:i0 + step] = block

    def _encode_idx(self, x: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(self.random_seed)
        codes = rng.integers(0, self.K, (x.shape[0], self.M)).astype(np.int32)
        if x.shape[0]:
            self._icm(x, codes, check_int(self.encode_ils_iters, "encode_ils_iters", lo=0), rng)
        return codes
