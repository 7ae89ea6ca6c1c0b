"""k-means clustering with FAISS's semantics (``faiss.Kmeans`` / ``Clustering``).

The algorithm is Lloyd's: assign every training point to its nearest
centroid, move each centroid to the mean of its points, repeat ``niter``
times. What makes it FAISS-like:

* the training set is subsampled to ``k * max_points_per_centroid`` points
  (seeded), and too few points per centroid give a warning, fewer points than
  centroids an error;
* centroids start as ``k`` distinct random training points;
* an empty cluster is re-seeded by splitting a large one in two (copy its
  centroid, perturb both copies by +-1/1024 in alternating coordinates);
* ``spherical=True`` renormalises the centroids after each update and assigns
  by inner product (what IVF does for ``METRIC_INNER_PRODUCT``);
* ``nredo`` restarts keep the run with the best objective.

Assignment is the expensive part: one pipeline per core multiplies a block
of points by the centroids (BLAS, one thread) and a numba kernel takes each
row's argmin and adds the row to its centroid's running sum while the block
is in cache, so an iteration reads the points once.
"""

from __future__ import annotations

import sys
import time
import warnings
from typing import Any

import numba
import numpy as np

from . import _blas
from ._validate import as_matrix, as_weights, check_dimension, check_int
from .kernels import kmeans as K
from .kernels.flat import row_norms_sqr
from .metric import METRIC_INNER_PRODUCT, METRIC_L2

# Rows of the (rows x k) inner-product block of one pipeline: about 1 MiB, so
# the block BLAS writes is still in the core's cache when the argmin reads it
# (a whole 262,144 x 1024 block through memory cost as much as the products).
_BLOCK_BYTES = 1 << 20
# Fewer rows than this per pipeline: the threads cost more than they save.
_MIN_ROWS_PER_PIPELINE = 4096


def _block_rows(k: int) -> int:
    return int(max(64, _BLOCK_BYTES // (4 * max(k, 1))))


def assign_to_centroids(x: np.ndarray, centroids: np.ndarray, metric: int = METRIC_L2,
                        xnorm: np.ndarray | None = None, cnorm: np.ndarray | None = None
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid of each row of ``x`` (float32 C-contiguous, validated).

    Returns ``(labels int64, dists float32)``; for L2 ``dists`` are squared
    distances, for inner product the similarities.
    """
    labels, dists, _ = _assign(x, centroids, metric, xnorm, cnorm)
    return labels, dists


def _assign(x: np.ndarray, centroids: np.ndarray, metric: int, xnorm: np.ndarray | None,
            cnorm: np.ndarray | None, weights: np.ndarray | None = None, accumulate: bool = False
            ) -> tuple[np.ndarray, np.ndarray, tuple | None]:
    """Assignment, and with ``accumulate`` the sums of the centroid update.

    One pipeline per thread, as in :mod:`voisin.exact`: each takes blocks of
    rows, multiplies them by the centroids with BLAS on one thread and runs
    the argmin (plus the update's sums, into arrays of its own) on the same
    core while the block is in cache. Alternating BLAS's thread pool with
    numba's instead costs two hand-offs per block and a pass over an n x k
    matrix in memory (glove-50, k=1024: 2.3x slower than faiss.Kmeans).
    Returns ``(labels, dists, (sums, counts, wsum) or None)``.
    """
    n, d = x.shape
    k = centroids.shape[0]
    labels = np.empty(n, dtype=np.int64)
    dists = np.empty(n, dtype=np.float32)
    if metric == METRIC_L2:
        if xnorm is None:
            xnorm = row_norms_sqr(x)
        if cnorm is None:
            cnorm = row_norms_sqr(centroids)
    else:
        xnorm = cnorm = np.zeros(1, dtype=np.float32)
    use_w = weights is not None
    w = weights if use_w else np.zeros(1, dtype=np.float32)
    bs = _block_rows(k)
    nthreads = numba.get_num_threads()
    npipe = nthreads if n >= _MIN_ROWS_PER_PIPELINE * 2 and _blas.available() else 1
    npipe = max(1, min(npipe, -(-n // bs)))
    shape = (npipe, k, d) if accumulate else (npipe, 1, 1)
    sums = np.zeros(shape, dtype=np.float64)
    counts = np.zeros((npipe, k if accumulate else 1), dtype=np.int64)
    wsum = np.zeros((npipe, k if accumulate else 1), dtype=np.float64)
    ct = np.ascontiguousarray(centroids.T)
    G = np.empty((npipe, min(bs, n), k), dtype=np.float32)

    def work(p: int, i0: int) -> None:
        i1 = min(n, i0 + bs)
        g = G[p, :i1 - i0]
        np.matmul(x[i0:i1], ct, out=g)
        K.assign_block_accumulate(g, cnorm, xnorm, metric, x, i0, w, use_w, labels, dists,
                                  accumulate, sums[p], counts[p], wsum[p])

    _blas.run_pipelines(range(0, n, bs), work, npipe)
    if not accumulate:
        return labels, dists, None
    return labels, dists, (sums.sum(axis=0), counts.sum(axis=0), wsum.sum(axis=0))


def split_empty_clusters(centroids: np.ndarray, counts: np.ndarray, n: int,
                         rng: np.random.Generator, k_frozen: int = 0) -> int:
    """Re-seed empty clusters by splitting big ones (FAISS's ``split_clusters``).

    ``counts`` are the cluster sizes (or weights); the first ``k_frozen``
    centroids are fixed: neither re-seeded nor split.
    """
    empty = np.flatnonzero(counts[k_frozen:] == 0) + k_frozen
    if empty.size == 0:
        return 0
    eps = 1.0 / 1024.0
    d = centroids.shape[1]
    sign = np.where(np.arange(d) % 2 == 0, 1.0, -1.0).astype(np.float32)
    hassign = counts.astype(np.float64)
    k = centroids.shape[0]
    for ci in empty:
        # a cluster is picked with probability proportional to (size - 1),
        # the same law FAISS's rejection loop samples from
        p = np.maximum(hassign - 1.0, 0.0)
        p[:k_frozen] = 0.0
        total = p.sum()
        if total <= 0:
            break
        cj = int(rng.choice(k, p=p / total))
        centroids[ci] = centroids[cj] * (1 + eps * sign)
        centroids[cj] = centroids[cj] * (1 - eps * sign)
        hassign[ci] = np.floor(hassign[cj] / 2)
        hassign[cj] -= hassign[ci]
    return int(empty.size)


_split_empty_clusters = split_empty_clusters  # its former name (tests import it)


class ClusteringParameters:
    """FAISS's ``ClusteringParameters``: the knobs an IVF index trains its
    coarse quantizer with (``index.cp``).

    Example:
        >>> cp = ClusteringParameters(niter=10)
        >>> cp.niter, cp.max_points_per_centroid
        (10, 256)
    """

    _FIELDS = ("niter", "nredo", "verbose", "spherical", "int_centroids", "update_index",
               "min_points_per_centroid", "max_points_per_centroid", "seed")
    # FAISS fields that only voisin.Clustering reads (Kmeans does not take them)
    _CLUSTERING_FIELDS = ("frozen_centroids", "decode_block_size", "check_input_data_for_NaNs",
                          "use_faster_subsampling")

    def __init__(self, **kwargs: Any):
        self.niter = 25
        self.nredo = 1
        self.verbose = False
        self.spherical = False
        self.int_centroids = False
        self.update_index = False
        self.min_points_per_centroid = 39
        self.max_points_per_centroid = 256
        self.seed = 1234
        self.frozen_centroids = False
        self.decode_block_size = 32768
        self.check_input_data_for_NaNs = True
        self.use_faster_subsampling = False
        for key, value in kwargs.items():
            if key not in self._FIELDS and key not in self._CLUSTERING_FIELDS:
                raise TypeError(f"{type(self).__name__}: unknown parameter {key!r}")
            setattr(self, key, value)

    def as_kwargs(self) -> dict:
        return {key: getattr(self, key) for key in self._FIELDS}

    def __repr__(self) -> str:
        return "ClusteringParameters(" + ", ".join(f"{k}={v!r}" for k, v in self.as_kwargs().items()) + ")"


class Kmeans:
    """k-means clustering, FAISS's ``faiss.Kmeans`` API.

    After :meth:`train`, ``centroids`` holds the (k, d) centroids, ``obj`` the
    objective after each iteration (sum of squared distances, or of
    similarities when spherical), and ``index`` an IndexFlatL2 (IndexFlatIP
    when spherical) over the centroids for :meth:`assign`.

    Example:
        >>> import numpy as np, voisin
        >>> x = np.random.default_rng(0).random((2000, 8), dtype="float32")
        >>> km = voisin.Kmeans(8, 16, niter=10, seed=1)
        >>> final_obj = km.train(x)
        >>> km.centroids.shape
        (16, 8)
        >>> D, I = km.assign(x[:5])
    """

    def __init__(self, d: int, k: int, niter: int = 25, nredo: int = 1, spherical: bool = False,
                 seed: int = 1234, max_points_per_centroid: int = 256,
                 min_points_per_centroid: int = 39, verbose: bool = False,
                 int_centroids: bool = False, update_index: bool = True, **kwargs: Any):
        for key in kwargs:
            if key == "gpu" and not kwargs[key]:
                continue
            raise TypeError(f"Kmeans: unknown parameter {key!r} (voisin runs on CPU only)"
                            if key == "gpu" else f"Kmeans: unknown parameter {key!r}")
        self.d = check_dimension(d)
        self.k = check_int(k, "k", lo=1)
        self.niter = check_int(niter, "niter", lo=0)
        self.nredo = check_int(nredo, "nredo", lo=1)
        self.spherical = bool(spherical)
        self.seed = check_int(seed, "seed")
        self.max_points_per_centroid = check_int(max_points_per_centroid, "max_points_per_centroid", lo=1)
        self.min_points_per_centroid = check_int(min_points_per_centroid, "min_points_per_centroid", lo=0)
        self.verbose = bool(verbose)
        self.int_centroids = bool(int_centroids)
        self.update_index = bool(update_index)
        self.centroids: np.ndarray | None = None
        self.obj: np.ndarray | None = None
        self.iteration_stats: list[dict] | None = None
        self._make_index()

    @property
    def metric(self) -> int:
        return METRIC_INNER_PRODUCT if self.spherical else METRIC_L2

    def _make_index(self) -> None:
        from .indexes.flat import IndexFlat
        self.index = IndexFlat(self.d, self.metric)

    def reset(self, k: int | None = None) -> None:
        """Forget the centroids (optionally change ``k``) before a new ``train``."""
        if k is not None:
            self.k = check_int(k, "k", lo=1)
        self.centroids = None
        self.obj = None
        self.iteration_stats = None
        self._make_index()

    def __repr__(self) -> str:
        return f"Kmeans(d={self.d}, k={self.k}, niter={self.niter}, spherical={self.spherical})"

    def _log(self, msg: str) -> None:
        if self.verbose:
            print(msg, file=sys.stderr, flush=True)

    def train(self, x: Any, weights: Any = None, init_centroids: Any = None) -> float:
        """Cluster ``x`` (n, d); returns the final objective.

        ``weights`` (n,) weighs each point in the centroid means;
        ``init_centroids`` (k, d) replaces the random initialisation.
        """
        x = as_matrix(x, self.d, "x")
        n = x.shape[0]
        k = self.k
        if weights is not None:
            weights = as_weights(weights, n)
        if init_centroids is not None:
            init_centroids = as_matrix(init_centroids, self.d, "init_centroids")
            if init_centroids.shape[0] != k:
                raise ValueError(f"init_centroids: expected {k} centroids, got {init_centroids.shape[0]}")
        if n < k:
            raise ValueError(f"x: number of training points ({n}) should be at least as large as "
                             f"the number of clusters ({k})")
        rng = np.random.default_rng(self.seed)
        if n == k and init_centroids is None:
            self._log(f"Number of training points ({n}) same as number of clusters, just copying")
            cent = x.copy()
            if self.spherical:
                K.normalize_rows(cent)
            self._finish(cent, [])
            return 0.0
        if n > k * self.max_points_per_centroid:
            keep = k * self.max_points_per_centroid
            self._log(f"Sampling a subset of {keep} / {n} for training")
            perm = rng.permutation(n)[:keep]
            perm.sort()  # keeps memory access sequential
            x = x[perm]
            weights = weights[perm] if weights is not None else None
            n = keep
        elif n < k * self.min_points_per_centroid:
            warnings.warn(f"clustering {n} points to {k} centroids: please provide at least "
                          f"{k * self.min_points_per_centroid} training points", stacklevel=2)
        metric = self.metric
        xnorm = row_norms_sqr(x) if metric == METRIC_L2 else None
        lower_is_better = metric == METRIC_L2
        best = None
        for redo in range(self.nredo):
            if init_centroids is not None:
                cent = init_centroids.copy()
            else:
                cent = np.ascontiguousarray(x[rng.choice(n, size=k, replace=False)])
            if self.spherical:
                K.normalize_rows(cent)
            stats: list[dict] = []
            t0 = time.perf_counter()
            for it in range(self.niter):
                ts = time.perf_counter()
                labels, dists, acc = _assign(x, cent, metric, xnorm, None, weights, accumulate=True)
                t_search = time.perf_counter() - ts
                obj = float(np.sum(dists, dtype=np.float64))
                assert acc is not None
                sums, counts, wsums = acc
                new = cent.copy()
                filled = wsums > 0
                new[filled] = sums[filled] / wsums[filled, None]
                nsplit = split_empty_clusters(new, counts, n, rng)
                if self.spherical:
                    K.normalize_rows(new)
                if self.int_centroids:
                    np.round(new, out=new)
                cent = new
                imbalance = float(k * np.sum(counts.astype(np.float64) ** 2) / float(n) ** 2)
                stats.append({"obj": obj, "time": time.perf_counter() - t0, "time_search": t_search,
                              "imbalance_factor": imbalance, "nsplit": nsplit})
                self._log(f"  Iteration {it} ({stats[-1]['time']:.2f} s, search {t_search:.2f} s): "
                          f"objective={obj:g} imbalance={imbalance:.3f} nsplit={nsplit}")
            final = stats[-1]["obj"] if stats else 0.0
            if self.nredo > 1:
                self._log(f"Outer iteration {redo} -> new best objective: {final:g}"
                          if best is None or (final < best[0] if lower_is_better else final > best[0])
                          else f"Outer iteration {redo}: objective {final:g}")
            if best is None or (final < best[0] if lower_is_better else final > best[0]):
                best = (final, cent, stats)
        assert best is not None
        self._finish(best[1], best[2])
        return best[0]

    def _finish(self, cent: np.ndarray, stats: list[dict]) -> None:
        self.centroids = np.ascontiguousarray(cent, dtype=np.float32)
        self.iteration_stats = stats
        self.obj = np.array([s["obj"] for s in stats], dtype=np.float64)
        if self.update_index:
            self.index.reset()
            self.index.add(self.centroids)

    def assign(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        """Nearest centroid of each row: ``(D, I)``, each of shape (n,)."""
        if self.centroids is None:
            raise RuntimeError("Kmeans.assign: call train(x) first")
        x = as_matrix(x, self.d, "x")
        labels, dists = assign_to_centroids(x, self.centroids, self.metric)
        return dists, labels


def kmeans_clustering(x: Any, k: int, niter: int = 25, spherical: bool = False,
                      seed: int = 1234, verbose: bool = False) -> np.ndarray:
    """The (k, d) centroids of ``x`` (FAISS's ``kmeans_clustering`` helper)."""
    x = as_matrix(x, None, "x")
    km = Kmeans(x.shape[1], k, niter=niter, spherical=spherical, seed=seed, verbose=verbose,
                update_index=False)
    km.train(x)
    assert km.centroids is not None
    return km.centroids
