"""OPQMatrix: the rotation of Optimized Product Quantization (Ge et al., 2013).

A PQ cuts vectors into contiguous sub-vectors, so it wastes bits when the
variance is concentrated in a few dimensions or when dimensions that belong
together are split. OPQ learns an orthonormal (d_out x d_in) matrix ``A`` so
that ``y = A x`` quantizes better, alternating (as FAISS's ``OPQMatrix``):
train a PQ on the rotated data, then solve the orthogonal Procrustes problem
``min_A ||A X - decode(encode(A X))||`` with one SVD.

Use it in front of a PQ index with ``IndexPreTransform`` or the factory
string ``OPQ{M}[_{d_out}],...``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validate import as_matrix, check_dimension, check_int
from .codecs.pq import train_subquantizers
from .kernels import pq as K


class OPQMatrix:
    """Learnt rotation (d_in -> d_out) that makes an M-way product quantizer more precise.

    Attributes as in FAISS: ``d_in``, ``d_out``, ``M``, ``niter`` (50),
    ``niter_pq`` (4), ``niter_pq_0`` (40), ``max_train_points`` (65536),
    ``A`` (d_out, d_in) float32, ``is_trained``.

    Example:
        >>> import numpy as np, voisin
        >>> x = np.random.default_rng(0).normal(size=(3000, 16)).astype("float32")
        >>> opq = voisin.OPQMatrix(16, 4)
        >>> opq.niter = 5
        >>> opq.train(x)
        >>> opq.apply(x[:2]).shape
        (2, 16)
    """

    def __init__(self, d: int = 0, M: int = 1, d2: int = -1):
        self.d_in = check_dimension(d, "d")
        self.M = check_int(M, "M", lo=1)
        self.d_out = self.d_in if d2 is None or d2 == -1 else check_dimension(d2, "d2")
        if self.d_out > self.d_in:
            raise ValueError(f"d2: OPQ output dimension {self.d_out} exceeds the input dimension {self.d_in}")
        if self.d_out % self.M:
            raise ValueError(f"M: the output dimension {self.d_out} must be a multiple of M={self.M}")
        self.niter = 50
        self.niter_pq = 4
        self.niter_pq_0 = 40
        self.max_train_points = 256 * 256
        self.nbits = 8
        self.seed = 123
        self.verbose = False
        self.is_orthonormal = True
        self.have_bias = False
        self.A = np.eye(self.d_out, self.d_in, dtype=np.float32)
        self.b = np.zeros(self.d_out, dtype=np.float32)
        self.is_trained = False

    def __repr__(self) -> str:
        return f"OPQMatrix(d_in={self.d_in}, d_out={self.d_out}, M={self.M})"

    def train(self, x: Any) -> None:
        x = as_matrix(x, self.d_in, "x")
        n = x.shape[0]
        rng = np.random.default_rng(self.seed)
        if n > self.max_train_points:
            x = x[np.sort(rng.permutation(n)[:self.max_train_points])]
            n = x.shape[0]
        ksub = 1 << self.nbits
        if n < ksub:
            raise ValueError(f"x: training OPQ needs at least {ksub} vectors, got {n}")
        xd = x.astype(np.float64)
        # random orthonormal start (rows of an orthogonal matrix), as FAISS
        g = rng.normal(size=(self.d_in, self.d_in))
        q, _ = np.linalg.qr(g)
        A = q[:self.d_out].astype(np.float64)
        cent = None
        for it in range(self.niter):
            y = np.ascontiguousarray((xd @ A.T).astype(np.float32))
            if cent is None:
                cent = train_subquantizers(y, self.M, ksub, niter=self.niter_pq_0, seed=self.seed + it,
                                           max_points_per_centroid=1 << 30)
            else:
                K.refine_subspaces(y, self.M, self.niter_pq, cent)
            idx = np.empty((n, self.M), dtype=np.int32)
            K.assign_subspaces(y, np.ascontiguousarray(cent.transpose(0, 2, 1)), idx)
            rec = np.empty((n, self.d_out), dtype=np.float32)
            dsub = self.d_out // self.M
            for m in range(self.M):
                rec[:, m * dsub:(m + 1) * dsub] = cent[m][idx[:, m]]
            if self.verbose:
                err = float(((y - rec) ** 2).sum() / n)
                print(f"OPQ iter {it}: PQ error {err:.5g}")
            # orthogonal Procrustes: A = argmax tr(A X^T R) over row-orthonormal A
            u, _, vt = np.linalg.svd(rec.astype(np.float64).T @ xd, full_matrices=False)
            A = u @ vt
        self.A = np.ascontiguousarray(A, dtype=np.float32)
        self.is_trained = True

    def _check_trained(self) -> None:
        if not self.is_trained:
            raise RuntimeError("OPQMatrix is not trained: call train(x) first")

    def apply(self, x: Any) -> np.ndarray:
        """Rotated vectors (n, d_out)."""
        self._check_trained()
        x = as_matrix(x, self.d_in, "x")
        return np.ascontiguousarray(x @ self.A.T)

    apply_py = apply

    def apply_noalloc(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x @ self.A.T)

    def reverse_transform(self, y: Any) -> np.ndarray:
        """Back to the input space (A is row-orthonormal, so its transpose inverts it)."""
        self._check_trained()
        y = as_matrix(y, self.d_out, "y")
        return np.ascontiguousarray(y @ self.A)
