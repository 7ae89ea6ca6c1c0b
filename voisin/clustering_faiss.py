"""FAISS's clustering objects: ``Clustering``, ``Clustering1D`` and
``ProgressiveDimClustering`` (the machinery under ``faiss.Kmeans``).

``Clustering(d, k).train(x, index)`` runs Lloyd's k-means with ``index`` as
the assignment engine: the index is reset and given the centroids at each
iteration, so an IndexHNSWFlat makes large-k clustering approximate and fast,
as in FAISS, and holds the final centroids afterwards. Semantics follow
FAISS's ``Clustering::train``: the training set is subsampled to
``k * max_points_per_centroid`` with FAISS's own shuffle (``rand_perm(seed)``,
the same points faiss picks), initial centroids are random training points
(voisin's generator: they differ from faiss's draws), given ``centroids``
seed the first ones (and stay fixed with ``frozen_centroids``), empty
clusters are split from large ones, ``nredo`` keeps the best run.
``iteration_stats`` holds one :class:`ClusteringIterationStats` per
iteration, as faiss (cumulative over redos).

``Clustering1D.train_exact`` is exact 1-D k-means (dynamic programming,
kernels/kmeans1d.py), on the same subsample as faiss.

Example:
    >>> import numpy as np, voisin
    >>> x = np.random.default_rng(0).random((2000, 8), dtype="float32")
    >>> clus = voisin.Clustering(8, 16)
    >>> clus.niter = 10
    >>> index = voisin.IndexFlatL2(8)
    >>> clus.train(x, index)
    >>> voisin.vector_to_array(clus.centroids).reshape(16, 8).shape, index.ntotal
    ((16, 8), 16)
    >>> clus.iteration_stats.size()
    10
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ._validate import as_matrix, as_weights, check_dimension, check_int
from .clustering import ClusteringParameters, split_empty_clusters
from .index import Index
from .metric import is_similarity
from .rng import permutation
from .vectors import Float32Vector, ObjectVector

# FAISS's seed offset between redo runs
_REDO_SEED_STEP = 15486557


@dataclass
class ClusteringIterationStats:
    """One k-means iteration: objective, elapsed seconds (total and in
    assignment), imbalance factor and number of cluster splits."""

    obj: float
    time: float
    time_search: float
    imbalance_factor: float
    nsplit: int


def _imbalance(counts: np.ndarray, n: int) -> float:
    return float(counts.size * np.sum(counts.astype(np.float64) ** 2) / (float(n) ** 2)) if n else 0.0


def _update(x: np.ndarray, labels: np.ndarray, weights: np.ndarray | None, cent: np.ndarray,
            k_frozen: int) -> np.ndarray:
    """Move the non-frozen centroids to the (weighted) mean of their points;
    an empty cluster's centroid is left for the split. Returns the weight per cluster."""
    k = cent.shape[0]
    w = np.ones(x.shape[0], dtype=np.float64) if weights is None else weights.astype(np.float64)
    hassign = np.bincount(labels, weights=w, minlength=k)
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.searchsorted(sorted_labels, np.arange(k))
    xs = x[order].astype(np.float64) * w[order, None]
    present = np.flatnonzero(np.bincount(labels, minlength=k))
    sums = np.add.reduceat(xs, starts[present], axis=0) if present.size else np.zeros((0, x.shape[1]))
    for c, s in zip(present.tolist(), sums):
        if c >= k_frozen and hassign[c] > 0:
            cent[c] = s / hassign[c]
    return hassign


def _setup(clus: Any, d: int, k: int, cp: ClusteringParameters | None) -> None:
    """What FAISS's clustering constructors take: d, k and the parameters of ``cp``."""
    if cp is not None:
        if not isinstance(cp, ClusteringParameters):
            raise TypeError(f"cp: expected ClusteringParameters, got {type(cp).__name__}")
        for key in cp._FIELDS + cp._CLUSTERING_FIELDS:
            setattr(clus, key, getattr(cp, key))
    clus.d = check_dimension(d)
    clus.k = check_int(k, "k", lo=1)
    clus.centroids = Float32Vector()
    clus.iteration_stats = ObjectVector()


class Clustering(ClusteringParameters):
    """k-means with an index for assignment (FAISS's ``Clustering``).

    ``Clustering(d, k)`` or ``Clustering(d, k, cp)`` with a
    :class:`ClusteringParameters`; every parameter is also an attribute.
    After :meth:`train`, ``centroids`` (a Float32Vector of k*d values: use
    ``vector_to_array(clus.centroids).reshape(k, d)``) and ``iteration_stats``
    hold the result, and the index holds the k centroids.
    """

    def __init__(self, d: int, k: int, cp: ClusteringParameters | None = None):
        super().__init__()
        _setup(self, d, k, cp)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(d={self.d}, k={self.k}, niter={self.niter})"

    def _log(self, msg: str) -> None:
        if self.verbose:
            print(msg, file=sys.stderr, flush=True)

    def post_process_centroids(self) -> None:
        """Normalise (``spherical``) and round (``int_centroids``) the centroids in place."""
        c = self.centroids.data().reshape(-1, self.d)
        self._post_process(c)

    def _post_process(self, c: np.ndarray) -> None:
        if self.spherical:
            norms = np.linalg.norm(c.astype(np.float64), axis=1, keepdims=True)
            np.divide(c, np.maximum(norms, 1e-30), out=c, casting="unsafe")
        if self.int_centroids:
            np.round(c, out=c)

    # --- training ----------------------------------------------------------
    def train(self, x: Any, index: Index, weights: Any = None) -> None:
        """Cluster ``x`` (n, d), assigning points to centroids with ``index``
        (an empty or resettable Index of dimension d)."""
        x = as_matrix(x, self.d, "x", check_finite=bool(self.check_input_data_for_NaNs))
        self._train_decoded(x, index, weights, lambda rows: x[rows])

    def train_encoded(self, x: Any, codec: Index, index: Index, weights: Any = None) -> None:
        """Cluster vectors given as codes of ``codec`` (its ``sa_decode``)."""
        if not hasattr(codec, "sa_decode"):
            raise TypeError(f"codec: expected an index with sa_decode (IndexPQ, ...), "
                            f"got {type(codec).__name__}")
        if codec.d != self.d:
            raise ValueError(f"codec: dimension {codec.d} differs from the clustering's d={self.d}")
        codes = np.ascontiguousarray(x)
        if codes.dtype != np.uint8 or codes.ndim != 2:
            raise TypeError(f"x: expected (n, code_size) uint8 codes, got {codes.dtype} {codes.shape}")
        self._train_decoded(codes, index, weights,
                            lambda rows: np.ascontiguousarray(codec.sa_decode(codes[rows]),
                                                              dtype=np.float32))

    def _check_index(self, index: Any) -> Index:
        if not isinstance(index, Index):
            raise TypeError(f"index: expected a voisin Index for the assignment, got "
                            f"{type(index).__name__}")
        if index.d != self.d:
            raise ValueError(f"index: dimension {index.d} differs from the clustering's d={self.d}")
        return index

    def _subsample(self, n: int) -> np.ndarray:
        """The training rows kept: all, or ``k * max_points_per_centroid`` of
        them drawn as FAISS draws them (``rand_perm(seed)``; the faster
        splitmix64 sampling is replaced by numpy's generator)."""
        keep = self.k * check_int(self.max_points_per_centroid, "max_points_per_centroid", lo=1)
        if n <= keep:
            return np.arange(n)
        self._log(f"Sampling a subset of {keep} / {n} for training")
        if self.use_faster_subsampling:
            return np.random.default_rng(self.seed).integers(0, n, keep)
        return permutation(n, self.seed)[:keep]

    def _initial_centroids(self) -> np.ndarray:
        given = self.centroids.data()
        if given.size % self.d or given.size > self.k * self.d:
            raise ValueError(f"centroids: {given.size} initial values are not a whole number "
                             f"of at most k={self.k} centroids of dimension {self.d}")
        return given.reshape(-1, self.d).copy()

    def _train_decoded(self, data: np.ndarray, index: Any, weights: Any,
                       rows_of: Callable[[np.ndarray], np.ndarray]) -> None:
        index = self._check_index(index)
        n, k, d = data.shape[0], self.k, self.d
        if weights is not None:
            weights = as_weights(weights, n)
        if n < k:
            raise ValueError(f"x: number of training points ({n}) should be at least as large as "
                             f"the number of clusters ({k})")
        given = self._initial_centroids()
        if n == k:
            self._log(f"Number of training points ({n}) same as number of clusters, just copying")
            cent = rows_of(np.arange(n))
            self.iteration_stats.append(ClusteringIterationStats(0.0, 0.0, 0.0, 1.0, 0))
            self._finish(cent, index)
            return
        rows = self._subsample(n)
        if rows.size < n:
            weights = weights[rows] if weights is not None else None
            n = rows.size
        elif n < k * self.min_points_per_centroid:
            warnings.warn(f"clustering {n} points to {k} centroids: please provide at least "
                          f"{k * self.min_points_per_centroid} training points", stacklevel=3)
        x = rows_of(rows)
        k_frozen = given.shape[0] if self.frozen_centroids else 0
        lower_is_better = not is_similarity(index.metric_type)
        rng = np.random.default_rng(self.seed)
        best: tuple[float, np.ndarray, list] | None = None
        t0 = time.perf_counter()
        for redo in range(check_int(self.nredo, "nredo", lo=1)):
            cent = np.empty((k, d), dtype=np.float32)
            cent[:given.shape[0]] = given
            init_rng = np.random.default_rng(self.seed + 1 + redo * _REDO_SEED_STEP)
            cent[given.shape[0]:] = x[init_rng.choice(n, size=k - given.shape[0], replace=False)]
            self._post_process(cent)
            self._reload(index, cent)
            obj = 0.0
            t_search = 0.0
            for it in range(check_int(self.niter, "niter", lo=0)):
                ts = time.perf_counter()
                dis, labels = index.search(x, 1)
                t_search += time.perf_counter() - ts
                labels = labels.ravel()
                if (labels < 0).any():
                    raise RuntimeError(f"index: {type(index).__name__} left training points "
                                       "unassigned (no nearest centroid found)")
                obj = float(np.sum(dis, dtype=np.float64))
                hassign = _update(x, labels, weights, cent, k_frozen)
                nsplit = split_empty_clusters(cent, hassign, n, rng, k_frozen)
                counts = np.bincount(labels, minlength=k)
                self.iteration_stats.append(ClusteringIterationStats(
                    obj, time.perf_counter() - t0, t_search, _imbalance(counts, n), nsplit))
                self._log(f"  Iteration {it} ({time.perf_counter() - t0:.2f} s, search "
                          f"{t_search:.2f} s): objective={obj:g} imbalance="
                          f"{self.iteration_stats[-1].imbalance_factor:.3f} nsplit={nsplit}")
                self._post_process(cent)
                self._reload(index, cent)
            if best is None or (obj < best[0] if lower_is_better else obj > best[0]):
                if self.nredo > 1:
                    self._log(f"Objective improved: keep new clusters (redo {redo})")
                best = (obj, cent.copy(), list(self.iteration_stats))
        assert best is not None
        self.iteration_stats[:] = best[2]
        self._finish(best[1], index)

    def _reload(self, index: Index, cent: np.ndarray) -> None:
        index.reset()
        if self.update_index or not index.is_trained:
            index.train(cent)
        index.add(cent)

    def _finish(self, cent: np.ndarray, index: Index) -> None:
        self.centroids.assign(np.ascontiguousarray(cent, dtype=np.float32).reshape(-1))
        index.reset()
        index.add(cent)


class Clustering1D(Clustering):
    """Clustering of scalars (d = 1); :meth:`train_exact` finds the optimal
    k-means partition (FAISS's ``Clustering1D``).

    Example:
        >>> import numpy as np, voisin
        >>> x = np.array([[0.0], [0.1], [5.0], [5.2]], dtype="float32")
        >>> c = voisin.Clustering1D(2); c.train_exact(x)
        >>> [round(float(v), 2) for v in voisin.vector_to_array(c.centroids)]
        [0.05, 5.1]
    """

    def __init__(self, k: int, cp: ClusteringParameters | None = None):
        super().__init__(1, k, cp)

    def train_exact(self, x: Any) -> None:
        """Exact 1-D k-means of ``x`` (n, 1); centroids come out ascending.

        voisin's dynamic programme keeps costs in float64 where FAISS keeps
        float32, so on near-ties voisin's partition is the (slightly) better one.
        """
        from .kernels.kmeans1d import optimal_starts
        x = as_matrix(x, 1, "x").reshape(-1)
        n, k = x.shape[0], self.k
        if n < k:
            raise ValueError(f"x: number of training points ({n}) should be at least as large as "
                             f"the number of clusters ({k})")
        x = x[self._subsample(n)]
        n = x.shape[0]
        if n == k:  # FAISS copies the points as they come
            cent = x.copy()
            uf = 0.0
        else:
            xs = np.sort(x)
            starts = optimal_starts(xs, k)
            sizes = np.diff(np.append(starts, n))
            if (sizes == 0).any():
                raise ValueError("x: too few distinct values for k clusters (an optimal "
                                 "partition would leave a cluster empty)")
            cent = (np.add.reduceat(xs.astype(np.float64), starts) / sizes).astype(np.float32)
            uf = float(np.sum(sizes.astype(np.float64) ** 2) * k / float(n) ** 2)
        self.centroids.assign(cent)
        # FAISS records the run as one iteration with obj 0 and the imbalance
        self.iteration_stats.append(ClusteringIterationStats(0.0, 0.0, 0.0, uf, 0))


class ProgressiveDimClusteringParameters(ClusteringParameters):
    """:class:`ClusteringParameters` plus ``progressive_dim_steps`` (10) and
    ``apply_pca`` (True); ``niter`` defaults to 10 here, as in FAISS."""

    _CLUSTERING_FIELDS = ClusteringParameters._CLUSTERING_FIELDS + ("progressive_dim_steps",
                                                                    "apply_pca")

    def __init__(self, **kwargs: Any):
        super().__init__()
        self.niter = 10
        self.progressive_dim_steps = 10
        self.apply_pca = True
        for key, value in kwargs.items():
            if key not in self._FIELDS and key not in self._CLUSTERING_FIELDS:
                raise TypeError(f"{type(self).__name__}: unknown parameter {key!r}")
            setattr(self, key, value)


class ProgressiveDimIndexFactory:
    """Makes the assignment index for each dimension (default: IndexFlatL2)."""

    def __call__(self, dim: int) -> Index:
        from .indexes.flat import IndexFlatL2
        return IndexFlatL2(dim)


class ProgressiveDimClustering(ProgressiveDimClusteringParameters):
    """k-means that starts in a few leading (PCA) dimensions and warm-starts
    each step in more, up to d (FAISS's ``ProgressiveDimClustering``).

    Step s clusters in ``int(d ** ((s + 1) / steps))`` dimensions, starting
    from the previous step's centroids padded with zeros; the final centroids
    are mapped back through the PCA.
    """

    def __init__(self, d: int, k: int, cp: ClusteringParameters | None = None):
        super().__init__()
        _setup(self, d, k, cp)

    def train(self, *args: Any) -> None:
        """``train(n, x, factory)`` as FAISS (x from ``swig_ptr``), or ``train(x, factory=None)``."""
        if len(args) == 3:
            n = check_int(args[0], "n", lo=0)
            x = as_matrix(np.asarray(args[1]).reshape(-1)[:n * self.d].reshape(n, self.d), self.d, "x")
            factory = args[2]
        elif len(args) in (1, 2):
            x = as_matrix(args[0], self.d, "x")
            factory = args[1] if len(args) == 2 else None
        else:
            raise TypeError("train: expected (n, x, factory) or (x, factory=None)")
        factory = factory if factory is not None else ProgressiveDimIndexFactory()
        if not callable(factory):
            raise TypeError(f"factory: expected a callable dim -> Index, got {factory!r}")
        steps = check_int(self.progressive_dim_steps, "progressive_dim_steps", lo=1)
        pca = None
        if self.apply_pca:
            from .transforms import PCAMatrix
            pca = PCAMatrix(self.d, self.d)
            pca.train(x)
            x = np.ascontiguousarray(pca.apply(x), dtype=np.float32)
        prev: np.ndarray | None = None
        for step in range(steps):
            di = int(self.d ** ((1.0 + step) / steps))
            self._log_step(step, di)
            clus = Clustering(di, self.k, self)
            if prev is not None:
                warm = np.zeros((self.k, di), dtype=np.float32)
                warm[:, :prev.shape[1]] = prev
                clus.centroids.assign(warm.reshape(-1))
            clus.train(np.ascontiguousarray(x[:, :di]), factory(di))
            prev = np.asarray(clus.centroids).reshape(self.k, di)
            self.iteration_stats.extend(clus.iteration_stats)
        assert prev is not None
        cent = prev
        if pca is not None:
            cent = np.ascontiguousarray(pca.reverse_transform(cent), dtype=np.float32)
        self.centroids.assign(cent.reshape(-1))

    def _log_step(self, step: int, di: int) -> None:
        if self.verbose:
            print(f"Progressive dim step {step}: cluster in dimension {di}", file=sys.stderr,
                  flush=True)
