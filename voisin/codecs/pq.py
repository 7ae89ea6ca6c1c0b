"""Product quantizer (FAISS's ``ProductQuantizer``).

A vector of dimension d is cut into M sub-vectors of dsub = d / M dimensions;
each is replaced by the index of its nearest centroid among ksub = 2**nbits
centroids learnt by k-means on that sub-space. A code takes
``ceil(M * nbits / 8)`` bytes, packed as FAISS packs it, so codes and centroids
move between voisin and FAISS unchanged.

Distances to a query are computed without decoding (asymmetric distance
computation): a look-up table holds the distance from each query sub-vector to
each sub-centroid, and a code's distance is the sum of M table entries.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .._validate import as_matrix, check_dimension, check_int
from ..kernels import pq as K
from ..metric import METRIC_L2, check_metric


def train_subquantizers(x: np.ndarray, M: int, ksub: int, niter: int = 25, seed: int = 1234,
                        max_points_per_centroid: int = 256) -> np.ndarray:
    """k-means on each of the M sub-spaces of ``x`` (n, d): centroids (M, ksub, d // M).

    FAISS's semantics (niter Lloyd iterations from ksub random training points,
    at most ``ksub * max_points_per_centroid`` points sampled with ``seed``,
    empty clusters split from the largest), in one numba kernel that trains
    the sub-spaces in parallel and computes the small-dsub distances directly:
    ``voisin.Kmeans`` goes through BLAS, which is built for wide vectors and
    is an order of magnitude slower on 2- to 8-dimensional sub-vectors.
    """
    n, d = x.shape
    rng = np.random.default_rng(seed)
    if n > ksub * max_points_per_centroid:
        rows = np.sort(rng.permutation(n)[:ksub * max_points_per_centroid])
        x = x[rows]
        n = x.shape[0]
    elif n < ksub * 39:
        warnings.warn(f"clustering {n} points to {ksub} centroids: please provide at least "
                      f"{ksub * 39} training points", stacklevel=3)
    init = rng.choice(n, size=ksub, replace=False).astype(np.int64)
    out = np.empty((M, ksub, d // M), dtype=np.float32)
    K.train_subspaces(np.ascontiguousarray(x), init, M, niter, out)
    return out


class ProductQuantizer:
    """M sub-quantizers of 2**nbits centroids each (FAISS ``ProductQuantizer``).

    ``centroids`` is laid out [M][ksub][dsub] (float32), as in FAISS.

    Example:
        >>> import numpy as np, voisin
        >>> x = np.random.rand(2000, 16).astype("float32")
        >>> pq = voisin.ProductQuantizer(16, 4, 8)
        >>> pq.train(x)
        >>> codes = pq.compute_codes(x[:5])
        >>> codes.shape, codes.dtype
        ((5, 4), dtype('uint8'))
        >>> pq.decode(codes).shape
        (5, 16)
    """

    def __init__(self, d: int, M: int, nbits: int = 8):
        self.d = check_dimension(d)
        self.M = check_int(M, "M", lo=1)
        self.nbits = check_int(nbits, "nbits", lo=1, hi=16)
        if self.d % self.M != 0:
            raise ValueError(f"M: the dimension d={self.d} must be a multiple of M={self.M}")
        self.dsub = self.d // self.M
        self.ksub = 1 << self.nbits
        self.code_size = (self.M * self.nbits + 7) // 8
        self.centroids = np.zeros((self.M, self.ksub, self.dsub), dtype=np.float32)
        self.is_trained = False
        #: k-means parameters used by :meth:`train` (FAISS ClusteringParameters defaults)
        self.niter = 25
        self.seed = 1234
        self.max_points_per_centroid = 256
        self._cent_t: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"ProductQuantizer(d={self.d}, M={self.M}, nbits={self.nbits})"

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_cent_t"] = None
        return state

    # --- centroids ---------------------------------------------------------
    def set_centroids(self, centroids: Any) -> None:
        """Install centroids given as (M, ksub, dsub) or FAISS's flat M*ksub*dsub array."""
        c = np.ascontiguousarray(centroids, dtype=np.float32)
        if c.size != self.M * self.ksub * self.dsub:
            raise ValueError(f"centroids: expected {self.M}*{self.ksub}*{self.dsub} = "
                             f"{self.M * self.ksub * self.dsub} values, got shape {c.shape}")
        if not np.isfinite(c).all():
            raise ValueError("centroids: contains NaN or inf")
        self.centroids = c.reshape(self.M, self.ksub, self.dsub).copy()
        self._cent_t = None
        self.is_trained = True

    def get_centroids(self, m: int, i: int) -> np.ndarray:
        """Centroid ``i`` of sub-quantizer ``m`` (dsub,)."""
        m = check_int(m, "m", lo=0, hi=self.M - 1)
        i = check_int(i, "i", lo=0, hi=self.ksub - 1)
        return self.centroids[m, i].copy()

    @property
    def cent_t(self) -> np.ndarray:
        """Centroids transposed to (M, dsub, ksub): the layout the kernels scan."""
        if self._cent_t is None:
            self._cent_t = np.ascontiguousarray(self.centroids.transpose(0, 2, 1))
        return self._cent_t

    # --- training ----------------------------------------------------------
    def train(self, x: Any) -> None:
        """k-means on each sub-space (FAISS: niter=25, seed=1234, <= 256 points per centroid)."""
        x = as_matrix(x, self.d, "x")
        self.train_validated(x)

    def train_validated(self, x: np.ndarray) -> None:
        n = x.shape[0]
        if n < self.ksub:
            raise ValueError(f"x: training a {self.ksub}-centroid product quantizer needs at least "
                             f"{self.ksub} vectors, got {n}")
        self.centroids = train_subquantizers(x, self.M, self.ksub, self.niter, self.seed,
                                             self.max_points_per_centroid)
        self._cent_t = None
        self.is_trained = True

    # --- codec -------------------------------------------------------------
    def _check_trained(self) -> None:
        if not self.is_trained:
            raise RuntimeError("ProductQuantizer is not trained: call pq.train(x) first")

    def compute_assignments(self, x: np.ndarray) -> np.ndarray:
        """Nearest sub-centroid of each sub-vector, (n, M) int32 (validated input)."""
        out = np.empty((x.shape[0], self.M), dtype=np.int32)
        if x.shape[0]:
            K.assign_subspaces(x, self.cent_t, out)
        return out

    def pack(self, idx: np.ndarray) -> np.ndarray:
        out = np.empty((idx.shape[0], self.code_size), dtype=np.uint8)
        if self.nbits == 8:
            out[:] = idx
        elif idx.shape[0]:
            K.pack_codes(np.ascontiguousarray(idx, dtype=np.int32), self.nbits, out)
        return out

    def unpack(self, codes: np.ndarray) -> np.ndarray:
        """Centroid indices (n, M) int32 of packed codes."""
        out = np.empty((codes.shape[0], self.M), dtype=np.int32)
        if codes.shape[0]:
            K.unpack_codes(codes, self.M, self.nbits, out)
        return out

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Codes of already-validated float32 vectors."""
        return self.pack(self.compute_assignments(x))

    def compute_codes(self, x: Any) -> np.ndarray:
        """Codes of ``x`` (n, d): (n, code_size) uint8."""
        self._check_trained()
        return self.encode(as_matrix(x, self.d, "x"))

    def compute_code(self, x: Any) -> np.ndarray:
        return self.compute_codes(x)[0]

    def _as_codes(self, codes: Any) -> np.ndarray:
        c = np.asarray(codes)
        if c.dtype != np.uint8:
            raise TypeError(f"codes: expected uint8 codes, got dtype {c.dtype}")
        if c.ndim == 1 and c.size == self.code_size:
            c = c.reshape(1, -1)
        if c.ndim != 2 or c.shape[1] != self.code_size:
            raise ValueError(f"codes: expected shape (n, {self.code_size}), got {c.shape}")
        return np.ascontiguousarray(c)

    def decode(self, codes: Any) -> np.ndarray:
        """Reconstructions (n, d) float32 of codes (n, code_size)."""
        self._check_trained()
        c = self._as_codes(codes)
        out = np.empty((c.shape[0], self.d), dtype=np.float32)
        if c.shape[0]:
            K.decode(c, self.centroids, self.nbits, out)
        return out

    # --- distance tables ---------------------------------------------------
    def compute_distance_tables(self, x: Any) -> np.ndarray:
        """Squared L2 distance of each query sub-vector to each sub-centroid, (n, M, ksub)."""
        self._check_trained()
        x = as_matrix(x, self.d, "x")
        return self._tables(x, METRIC_L2)

    def compute_inner_prod_tables(self, x: Any) -> np.ndarray:
        """Inner product of each query sub-vector with each sub-centroid, (n, M, ksub)."""
        self._check_trained()
        x = as_matrix(x, self.d, "x")
        return -self._tables(x, 0)

    def _tables(self, x: np.ndarray, metric: int) -> np.ndarray:
        out = np.empty((x.shape[0], self.M, self.ksub), dtype=np.float32)
        if x.shape[0]:
            K.compute_luts(x, self.cent_t, check_metric(metric), out)
        return out
