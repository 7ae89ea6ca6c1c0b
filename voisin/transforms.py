"""Vector transforms applied before indexing: PCA (with whitening and random
rotation), L2 normalisation, centering, dimension remapping, and any linear map
``y = A x + b``.

Every transform has FAISS's interface, which :class:`IndexPreTransform`
relies on (and which ``OPQMatrix`` in ``voisin.transforms_opq`` follows too):
``d_in``, ``d_out``, ``is_trained``, ``train(x)``, ``apply(x)``,
``reverse_transform(y)``.

Example:
    >>> import numpy as np, voisin
    >>> x = np.random.default_rng(0).normal(size=(2000, 32)).astype("float32")
    >>> pca = voisin.PCAMatrix(32, 8)
    >>> pca.train(x)
    >>> pca.apply(x).shape
    (2000, 8)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validate import as_matrix, check_dimension, check_float, check_int


class VectorTransform:
    """Base class: ``d_in -> d_out``, trained or not."""

    def __init__(self, d_in: int, d_out: int):
        self.d_in = check_dimension(d_in, "d_in")
        self.d_out = check_dimension(d_out, "d_out")
        self.is_trained = True

    def train(self, x: Any) -> None:
        """Nothing to learn by default."""
        as_matrix(x, self.d_in, "x")

    def _check_trained(self) -> None:
        if not self.is_trained:
            raise RuntimeError(f"{type(self).__name__} is not trained: call train(x) first")

    def apply(self, x: Any) -> np.ndarray:
        self._check_trained()
        return self._apply(as_matrix(x, self.d_in, "x"))

    def reverse_transform(self, y: Any) -> np.ndarray:
        self._check_trained()
        return self._reverse(as_matrix(y, self.d_out, "y"))

    def _apply(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _reverse(self, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} cannot be reversed")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(d_in={self.d_in}, d_out={self.d_out})"


class LinearTransform(VectorTransform):
    """``y = A x + b`` with ``A`` (d_out, d_in) and ``b`` (d_out,) (FAISS's LinearTransform).

    ``reverse_transform`` uses ``A^T`` when ``A`` has orthonormal rows (as FAISS
    does) and a pseudo-inverse otherwise (e.g. after PCA whitening).

    Example:
        >>> import numpy as np
        >>> lt = LinearTransform(3, 2)
        >>> lt.A = np.array([[1, 0, 0], [0, 1, 0]], np.float32)
        >>> lt.apply(np.array([[1.0, 2.0, 3.0]])).tolist()
        [[1.0, 2.0]]
    """

    def __init__(self, d_in: int, d_out: int, have_bias: bool = False):
        super().__init__(d_in, d_out)
        self.have_bias = bool(have_bias)
        self.is_orthonormal = False
        self.A = np.eye(self.d_out, self.d_in, dtype=np.float32)
        self.b = np.zeros(self.d_out, dtype=np.float32)

    def _apply(self, x: np.ndarray) -> np.ndarray:
        y = x @ np.ascontiguousarray(self.A, dtype=np.float32).T
        if self.have_bias:
            y += self.b
        return np.ascontiguousarray(y, dtype=np.float32)

    def _reverse(self, y: np.ndarray) -> np.ndarray:
        z = y - self.b if self.have_bias else y
        A = self.A.astype(np.float64)
        if self.is_orthonormal:
            return np.ascontiguousarray(z @ A, dtype=np.float32)
        return np.ascontiguousarray(z @ np.linalg.pinv(A).T, dtype=np.float32)

    def check_orthonormal(self, eps: float = 1e-4) -> bool:
        A = self.A.astype(np.float64)
        self.is_orthonormal = bool(np.abs(A @ A.T - np.eye(self.d_out)).max() < eps)
        return self.is_orthonormal


class PCAMatrix(LinearTransform):
    """PCA from ``d_in`` to ``d_out`` dimensions (FAISS's ``PCAMatrix``).

    ``eigen_power=-0.5`` whitens (FAISS's ``PCAW``: every output component gets
    the same variance, 1/n_train, because FAISS's eigenvalues are those of the
    unnormalised scatter matrix); ``random_rotation`` applies a random orthogonal rotation
    after the projection so the variance spreads evenly over the components
    (``PCAR``, useful before a product quantizer). The mean is subtracted
    (``b = -A mean``). Training uses at most ``max_points_per_d * d_in`` points.

    Example:
        >>> import numpy as np, voisin
        >>> x = np.random.default_rng(0).normal(size=(1000, 16)).astype("float32")
        >>> pca = voisin.PCAMatrix(16, 16)
        >>> pca.train(x)
        >>> bool(np.allclose(pca.reverse_transform(pca.apply(x)), x, atol=1e-4))
        True
    """

    def __init__(self, d_in: int = 0, d_out: int = 0, eigen_power: float = 0.0,
                 random_rotation: bool = False):
        super().__init__(d_in, d_out, have_bias=True)
        if self.d_out > self.d_in:
            raise ValueError(f"d_out: PCA cannot output more dimensions ({self.d_out}) than it gets "
                             f"({self.d_in})")
        self.eigen_power = check_float(eigen_power, "eigen_power")
        self.epsilon = 0.0
        self.random_rotation = bool(random_rotation)
        self.max_points_per_d = 1000
        self.balanced_bins = 0
        self.seed = 1234
        self.mean = np.zeros(0, dtype=np.float32)
        self.eigenvalues = np.zeros(0, dtype=np.float32)
        self.PCAMat = np.zeros(0, dtype=np.float32)
        self.is_trained = False

    def train(self, x: Any) -> None:
        x = as_matrix(x, self.d_in, "x")
        n = x.shape[0]
        if n < 2:
            raise ValueError(f"x: PCA training needs at least 2 vectors, got {n}")
        cap = self.max_points_per_d * self.d_in
        if n > cap:
            idx = np.sort(np.random.default_rng(self.seed).choice(n, cap, replace=False))
            x = x[idx]
        xd = x.astype(np.float64)
        mean = xd.mean(axis=0)
        xc = xd - mean
        # FAISS does not divide by n: its eigenvalues (stored in index files)
        # are those of X^T X, and PCAW output components get variance 1/n
        cov = xc.T @ xc
        evals, evecs = np.linalg.eigh(cov)
        order = np.argsort(evals)[::-1]
        evals = np.maximum(evals[order], 0.0)
        evecs = evecs[:, order].T  # rows are components, largest variance first
        # a deterministic sign (largest coordinate positive) keeps results reproducible
        flip = np.sign(evecs[np.arange(self.d_in), np.abs(evecs).argmax(axis=1)])
        evecs *= np.where(flip == 0, 1.0, flip)[:, None]
        self.mean = mean.astype(np.float32)
        self.eigenvalues = evals.astype(np.float32)
        self.PCAMat = evecs.astype(np.float32).ravel()
        A = evecs[:self.d_out].copy()
        if self.eigen_power != 0.0:
            scale = (evals[:self.d_out] + self.epsilon) ** self.eigen_power
            scale[~np.isfinite(scale)] = 0.0
            A *= scale[:, None]
        if self.random_rotation:
            g = np.random.default_rng(self.seed).normal(size=(self.d_out, self.d_out))
            q, r = np.linalg.qr(g)
            q *= np.sign(np.diag(r))
            A = q @ A
        self.A = np.ascontiguousarray(A, dtype=np.float32)
        self.b = (-(A @ mean)).astype(np.float32)
        self.is_orthonormal = self.eigen_power == 0.0
        self.is_trained = True

    def __repr__(self) -> str:
        extra = (", whitening" if self.eigen_power else "") + (", random rotation" if self.random_rotation else "")
        return f"PCAMatrix(d_in={self.d_in}, d_out={self.d_out}{extra})"


class NormalizationTransform(VectorTransform):
    """Scale each vector to unit L_p norm (FAISS's ``L2norm`` factory token, p=2).

    Inner product on normalised vectors is cosine similarity. The reverse
    transform is the identity (the norm is not kept), as in FAISS.

    Example:
        >>> import numpy as np
        >>> NormalizationTransform(2).apply(np.array([[3.0, 4.0]])).round(2).tolist()
        [[0.6, 0.8]]
    """

    def __init__(self, d: int, norm: float = 2.0):
        super().__init__(d, d)
        self.norm = check_float(norm, "norm")
        if self.norm <= 0:
            raise ValueError(f"norm: expected a positive exponent, got {self.norm}")

    def _apply(self, x: np.ndarray) -> np.ndarray:
        if self.norm == 2.0:
            n = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
        else:
            n = (np.abs(x.astype(np.float64)) ** self.norm).sum(1) ** (1.0 / self.norm)
        n[n == 0] = 1.0
        return np.ascontiguousarray(x / n[:, None].astype(np.float32), dtype=np.float32)

    def _reverse(self, y: np.ndarray) -> np.ndarray:
        return y.copy()


class RemapDimensionsTransform(VectorTransform):
    """Output component j is input component ``map[j]``, or 0 where ``map[j] = -1``
    (FAISS's ``RemapDimensionsTransform``; the factory's ``Pad{n}`` pads with zeros).

    ``uniform=True`` spreads the inputs evenly over a larger output (or picks evenly
    spaced inputs for a smaller one); ``uniform=False`` keeps the first dimensions.

    Example:
        >>> import numpy as np
        >>> RemapDimensionsTransform(2, 4, False).apply(np.array([[1.0, 2.0]])).tolist()
        [[1.0, 2.0, 0.0, 0.0]]
    """

    def __init__(self, d_in: int, d_out: int, uniform: bool = True):
        super().__init__(d_in, d_out)
        self.map = np.full(self.d_out, -1, dtype=np.int32)
        if uniform and self.d_in < self.d_out:
            self.map[np.arange(self.d_in) * self.d_out // self.d_in] = np.arange(self.d_in)
        elif uniform:
            self.map[:] = np.arange(self.d_out) * self.d_in // self.d_out
        else:
            m = min(self.d_in, self.d_out)
            self.map[:m] = np.arange(m)

    def set_map(self, mapping: Any) -> None:
        """Install a map read from a file: d_out entries in [-1, d_in)."""
        mapping = np.asarray(mapping)
        if mapping.shape != (self.d_out,) or mapping.dtype.kind not in "iu":
            raise ValueError(f"map: expected {self.d_out} integers, got shape {mapping.shape}")
        if mapping.size and (mapping.min() < -1 or mapping.max() >= self.d_in):
            raise ValueError(f"map: entries must lie in [-1, {self.d_in}), got "
                             f"[{int(mapping.min())}, {int(mapping.max())}]")
        self.map = mapping.astype(np.int32)

    def _apply(self, x: np.ndarray) -> np.ndarray:
        out = np.zeros((x.shape[0], self.d_out), dtype=np.float32)
        keep = self.map >= 0
        out[:, keep] = x[:, self.map[keep]]
        return out

    def _reverse(self, y: np.ndarray) -> np.ndarray:
        out = np.zeros((y.shape[0], self.d_in), dtype=np.float32)
        keep = self.map >= 0
        out[:, self.map[keep]] = y[:, keep]
        return out


class RandomRotationMatrix(LinearTransform):
    """A random orthogonal map (FAISS's ``RandomRotationMatrix``, ``RR{d}`` token).

    ``init(seed)`` draws the matrix as FAISS does (``float_randn`` then a QR
    factorisation), so the same seed gives FAISS's matrix up to float32
    rounding; ``train`` is ``init(seed)`` (FAISS: ``init(12345)``, the default
    seed). With ``d_out > d_in`` the rows are a tight frame (FAISS's choice).

    Example:
        >>> rr = RandomRotationMatrix(8, 4); rr.init(5)
        >>> bool(np.allclose(rr.A @ rr.A.T, np.eye(4), atol=1e-5))
        True
    """

    def __init__(self, d_in: int, d_out: int, seed: int = 12345):
        super().__init__(d_in, d_out)
        self.seed = check_int(seed, "seed")
        self.is_trained = False

    def init(self, seed: int) -> None:
        """Draw the matrix from ``seed`` (FAISS's ``RandomRotationMatrix::init``)."""
        from .rng import randn
        seed = check_int(seed, "seed")
        rows = self.d_out
        cols = self.d_in if self.d_out <= self.d_in else self.d_out
        # FAISS's QR sees the row-major (rows, cols) draws as a column-major
        # (cols, rows) matrix and keeps its orthonormal columns as A's rows
        from . import _blas
        with _blas.single_threaded():  # a thread pool slows a QR of this size down
            q, _ = np.linalg.qr(randn(rows * cols, seed).reshape(rows, cols).T)
        self.A = np.ascontiguousarray(q.T[:, :self.d_in], dtype=np.float32)
        self.is_orthonormal = True
        self.is_trained = True

    def train(self, x: Any = None) -> None:
        self.init(self.seed)


class CenteringTransform(VectorTransform):
    """Subtract the mean of the training vectors (FAISS's ``CenteringTransform``).

    ``train(x)`` learns ``mean`` (d floats); ``apply`` returns ``x - mean`` and
    ``reverse_transform`` adds it back. As in FAISS it must be trained before use,
    and FAISS's index_factory has no token for it: build it in code, e.g.
    ``IndexPreTransform(CenteringTransform(d), index)``.

    Example:
        >>> import numpy as np
        >>> ct = CenteringTransform(2)
        >>> ct.train(np.array([[1.0, 2.0], [3.0, 6.0]]))
        >>> ct.apply(np.array([[2.0, 4.0]])).tolist()
        [[0.0, 0.0]]
    """

    def __init__(self, d: int = 0):
        super().__init__(d, d)
        self.mean = np.zeros(0, dtype=np.float32)
        self.is_trained = False

    def train(self, x: Any) -> None:
        x = as_matrix(x, self.d_in, "x")
        if x.shape[0] == 0:
            raise ValueError("x: CenteringTransform training needs at least 1 vector, got 0")
        self.mean = x.mean(axis=0, dtype=np.float64).astype(np.float32)
        self.is_trained = True

    def set_mean(self, mean: Any) -> None:
        """Install a mean read from a file (d_in floats) and mark the transform trained."""
        mean = np.asarray(mean)
        if mean.shape != (self.d_in,) or mean.dtype.kind != "f":
            raise ValueError(f"mean: expected {self.d_in} floats, got shape {mean.shape} "
                             f"of {mean.dtype}")
        self.mean = np.ascontiguousarray(mean, dtype=np.float32)
        self.is_trained = True

    def _apply(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x - self.mean, dtype=np.float32)

    def _reverse(self, y: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(y + self.mean, dtype=np.float32)
