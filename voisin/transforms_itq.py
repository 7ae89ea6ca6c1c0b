"""Iterative quantization (Gong & Lazebnik's ITQ): a rotation that makes the
signs of the rotated vectors a good binary code (FAISS's ``ITQMatrix`` and
``ITQTransform``, the ``ITQ{n}`` factory token before ``LSH``).

ITQ alternates two steps from a random rotation R: binarize ``B = sign(X R)``,
then take the rotation closest to mapping X onto B (orthogonal Procrustes:
with ``B^T X = U S V^T``, ``R = V U^T``). Each step can only lower the
quantization loss ``||B - X R||^2``, so the loss after training is at most
the random rotation's.

FAISS runs the same loop from the same starting rotation (``seed`` 123), but
its update multiplies the SVD factors in an order that depends on the sign
convention of its LAPACK's SVD, so its rotation is not reproducible across
LAPACK builds and its loss is higher than the Procrustes step's; voisin does
not copy that. The codes differ from faiss's, the loss is lower (tests check
it on the same data), and on real data more true neighbours share codes
(figures in docs/lsh.md; on a few tight synthetic clusters, fewer:
``max_iter = 0`` keeps the random rotation).

Example:
    >>> import numpy as np, voisin
    >>> x = np.random.default_rng(0).normal(size=(2000, 32)).astype("float32")
    >>> itq = voisin.ITQTransform(32, 16, do_pca=True)
    >>> itq.train(x)
    >>> itq.apply(x).shape
    (2000, 16)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _blas
from ._validate import as_matrix, check_bool, check_int
from .transforms import LinearTransform, RandomRotationMatrix, VectorTransform

#: FAISS subsamples the training set to max(d_in * max_train_per_dim, this)
_MIN_TRAIN_POINTS = 32768
#: the seed of FAISS's training subsample (fvecs_maybe_subsample)
_SUBSAMPLE_SEED = 1234


def quantization_loss(y: Any) -> float:
    """``||sign(y) - y||^2`` summed over all values: what ITQ minimises."""
    y = np.asarray(y, dtype=np.float64)
    return float(((np.where(y < 0, -1.0, 1.0) - y) ** 2).sum())


def _renorm_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; zero rows stay zero (FAISS's fvec_renorm_L2)."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(x / norms[:, None], dtype=np.float32)


class ITQMatrix(LinearTransform):
    """The ITQ rotation of ``d`` dimensions (FAISS's ``ITQMatrix``): ``y = A x``
    with ``A`` orthogonal, learnt in ``max_iter`` iterations from the random
    rotation of ``seed`` (or from ``init_rotation``, d*d values, when set).

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(1).normal(size=(500, 8)).astype("float32")
        >>> itq = ITQMatrix(8); itq.train(x)
        >>> rr = RandomRotationMatrix(8, 8); rr.init(itq.seed)
        >>> quantization_loss(itq.apply(x)) <= quantization_loss(rr.apply(x))
        True
    """

    def __init__(self, d: int = 0):
        super().__init__(d, d, have_bias=False)
        self.max_iter = 50
        self.seed = 123
        self.init_rotation = np.zeros(0, dtype=np.float64)
        self.is_trained = False

    def _start(self) -> np.ndarray:
        d = self.d_in
        init = np.asarray(self.init_rotation, dtype=np.float64).ravel()
        # the loop works on R with rotated = x @ R; FAISS reads a d*d start
        # (init_rotation or the random rotation's A) as R, row-major
        if init.size == d * d:
            return init.reshape(d, d).copy()
        if init.size:
            raise ValueError(f"init_rotation: expected {d * d} values (d x d), got {init.size}")
        rr = RandomRotationMatrix(d, d)
        rr.init(self.seed)
        return rr.A.astype(np.float64)

    def train(self, x: Any) -> None:
        x = as_matrix(x, self.d_in, "x")
        if x.shape[0] == 0:
            raise ValueError("x: ITQ training needs at least one vector, got 0")
        max_iter = check_int(self.max_iter, "max_iter", lo=0)
        check_int(self.seed, "seed")
        X = x.astype(np.float64)
        # d x d SVDs and thin products: OpenBLAS's thread pool only adds
        # hand-offs (50 iterations at d=64 took 8.6 s on 2 busy cores, 0.23 s on one)
        with _blas.single_threaded():
            R = self._start()
            for _ in range(max_iter):
                B = np.where(X @ R < 0, -1.0, 1.0)
                U, _s, Vt = np.linalg.svd(B.T @ X)
                R = Vt.T @ U.T
        self.A = np.ascontiguousarray(R.T, dtype=np.float32)
        self.is_orthonormal = True
        self.is_trained = True

    def __repr__(self) -> str:
        return f"ITQMatrix(d={self.d_in}, max_iter={self.max_iter}, seed={self.seed})"


class ITQTransform(VectorTransform):
    """ITQ with its preprocessing (FAISS's ``ITQTransform``): subtract the
    training mean, L2-normalise, project on the top ``d_out`` principal
    components (``do_pca``; otherwise ``d_out == d_in``), then rotate with an
    :class:`ITQMatrix`. The projection and the rotation are kept as one
    ``pca_then_itq`` linear map. Not reversible, as in FAISS.

    Example:
        >>> import numpy as np, voisin
        >>> x = np.random.default_rng(0).normal(size=(1000, 16)).astype("float32")
        >>> index = voisin.IndexPreTransform(voisin.ITQTransform(16, 16), voisin.IndexLSH(16, 16, False))
        >>> index.train(x); index.add(x)
        >>> index.search(x[:2], 1)[1].ravel().tolist()
        [0, 1]
    """

    def __init__(self, d_in: int = 0, d_out: int = 0, do_pca: bool = False):
        super().__init__(d_in, d_out)
        self.do_pca = check_bool(do_pca, "do_pca")
        if not self.do_pca and self.d_in != self.d_out:
            raise ValueError(f"d_out: without do_pca ITQ keeps the dimension, so d_out must be "
                             f"d_in={self.d_in}, got {self.d_out}")
        if self.d_out > self.d_in:
            raise ValueError(f"d_out: the PCA cannot output more dimensions ({self.d_out}) than "
                             f"it gets ({self.d_in})")
        self.itq = ITQMatrix(self.d_out)
        self.pca_then_itq = LinearTransform(self.d_in, self.d_out, have_bias=False)
        self.pca_then_itq.is_trained = False
        self.mean = np.zeros(0, dtype=np.float32)
        self.max_train_per_dim = 10
        self.is_trained = False

    def train(self, x: Any) -> None:
        x = as_matrix(x, self.d_in, "x")
        if self.is_trained:
            raise RuntimeError("ITQTransform is already trained (FAISS trains it once)")
        n = x.shape[0]
        if n < 2:
            raise ValueError(f"x: ITQ training needs at least 2 vectors, got {n}")
        nmax = max(self.d_in * check_int(self.max_train_per_dim, "max_train_per_dim", lo=1),
                   _MIN_TRAIN_POINTS)
        if n > nmax:
            from .rng import permutation
            x = x[permutation(n, _SUBSAMPLE_SEED)[:nmax]]
        with _blas.single_threaded():  # small products (see ITQMatrix.train)
            self._train_on(x)

    def _train_on(self, x: np.ndarray) -> None:
        mean = x.mean(axis=0, dtype=np.float64).astype(np.float32)
        xn = _renorm_rows(x - mean)
        if self.do_pca:
            # FAISS's PCA here keeps no bias (the data are centred already)
            xd = xn.astype(np.float64)
            evals, evecs = np.linalg.eigh(xd.T @ xd)
            top = evecs[:, np.argsort(evals)[::-1][:self.d_out]].T
            P = np.ascontiguousarray(top, dtype=np.float32)
            xp = np.ascontiguousarray(xn @ P.T, dtype=np.float32)
        else:
            P, xp = None, xn
        self.itq.train(xp)
        A = self.itq.A if P is None else self.itq.A.astype(np.float64) @ P.astype(np.float64)
        self.pca_then_itq.A = np.ascontiguousarray(A, dtype=np.float32)
        self.pca_then_itq.is_trained = True
        self.pca_then_itq.check_orthonormal()
        self.mean = mean
        self.is_trained = True

    def _apply(self, x: np.ndarray) -> np.ndarray:
        return self.pca_then_itq._apply(_renorm_rows(x - self.mean))

    def __repr__(self) -> str:
        pca = ", do_pca" if self.do_pca else ""
        return f"ITQTransform(d_in={self.d_in}, d_out={self.d_out}{pca})"
