"""Fixed-degree graph indexes over float32 rows: IndexNNDescentFlat and IndexNSGFlat.

FAISS builds both graphs once, over every vector of the index, and searches them with
a greedy candidate-pool walk (:mod:`voisin.kernels.graphs`). As in FAISS the vectors
live in an :class:`IndexFlat` ``storage``; the graph holds positions in it, so ids are
positions 0..ntotal-1.

What voisin adds to FAISS's behaviour (docs/graphs.md): ``k`` larger than the pool or
than ``ntotal`` pads with id -1; a search with an id selector
(``SearchParameters(sel=...)``, which FAISS refuses) walks the graph keeping the allowed
nodes, or scans the allowed vectors exactly when the filter is selective; small sets
(FAISS's NN-Descent needs more than 100 vectors) get an exact k-NN graph; a second
``add`` rebuilds the graph over all vectors (FAISS's IndexNSG refuses it; its
IndexNNDescent rebuilds, as here).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numba
import numpy as np

from .. import exact, filtering
from .._blas import run_pipelines
from .._validate import check_int
from ..index import Index
from ..kernels import graph_build as KB
from ..kernels import graphs as KG
from ..metric import METRIC_INNER_PRODUCT, METRIC_L2, is_similarity, worst_distance
from ..selector import IDSelector
from .flat import IndexFlat

# FAISS's NNDescent::build refuses sets of at most this many vectors (its recall probe
# samples 100 of them); voisin builds those graphs exactly.
NNDESCENT_MIN_N = 100
# Below this many queries one thread serves the batch (thread start-up dominates).
PARALLEL_MIN_QUERIES = 64


class _Knobs:
    """A FAISS knob holder: integer fields checked when set (``name: lowest value``)."""

    _INTS: dict = {}
    _owner = "index"

    def __setattr__(self, name: str, value: Any) -> None:
        lo = self._INTS.get(name)
        if lo is not None:
            value = check_int(value, f"{self._owner}.{name}", lo=lo)
        object.__setattr__(self, name, value)


class NNDescent(_Knobs):
    """FAISS's ``NNDescent`` parameters and graph (``index.nndescent``).

    ``K`` neighbours per node; build: ``S`` new join partners sampled per node and
    round, ``R`` reverse links kept, pool size ``L`` (default K + 50), ``iter`` rounds,
    ``random_seed``; search: pool size ``search_L`` (at least k; default 0 = k).
    """

    _INTS = {"K": 1, "S": 1, "R": 0, "L": 1, "iter": 0, "search_L": 0, "random_seed": None}
    _owner = "nndescent"

    def __init__(self, d: int, K: int):
        object.__setattr__(self, "d", d)
        self.K = K
        self.S = 10
        self.R = 100
        self.L = self.K + 50
        self.iter = 10
        self.search_L = 0
        object.__setattr__(self, "random_seed", 2021)
        object.__setattr__(self, "ntotal", 0)
        object.__setattr__(self, "has_built", False)
        object.__setattr__(self, "final_graph", np.empty(0, dtype=np.int32))

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "random_seed":
            value = check_int(value, "nndescent.random_seed", lo=-(1 << 31), hi=(1 << 31) - 1)
            object.__setattr__(self, name, value)
            return
        super().__setattr__(name, value)


class NSG(_Knobs):
    """FAISS's ``NSG`` parameters and graph (``index.nsg``): out-degree ``R``, build
    pool ``L`` (default R + 32) and candidate cap ``C`` (R + 100), search pool
    ``search_L`` (16), the navigation node ``enterpoint``, ``final_graph`` (n, R)."""

    _INTS = {"R": 1, "L": 1, "C": 1, "search_L": 0}
    _owner = "nsg"

    def __init__(self, R: int):
        self.R = R
        self.L = self.R + 32
        self.C = self.R + 100
        self.search_L = 16
        object.__setattr__(self, "enterpoint", 0)
        object.__setattr__(self, "is_built", False)
        object.__setattr__(self, "ntotal", 0)
        object.__setattr__(self, "final_graph", np.empty((0, R), dtype=np.int32))

    def get_final_graph(self) -> GraphView:
        """The graph as FAISS's ``NSG::get_final_graph`` gives it (read-only)."""
        g = self.final_graph.view()
        g.flags.writeable = False
        return GraphView(g.reshape(-1), g.shape[0], g.shape[1])


class GraphView(NamedTuple):
    """FAISS's ``nsg::Graph`` as ``NSG.get_final_graph()`` hands it out: ``data``
    (N * K int32, -1 = empty slot), ``N`` nodes, ``K`` slots each."""

    data: np.ndarray
    N: int
    K: int


class _FlatGraphIndex(Index):
    """What the two graph indexes share: an IndexFlat storage, a graph published with
    the rows it was built over, filtered search, no deletes."""

    # METRIC_L1, METRIC_Lp (p in metric_arg), ...: as faiss, whose graphs take any metric
    _extra_metrics = True

    def __init__(self, d: int, metric: int = METRIC_L2):
        super().__init__(d, metric)
        self.storage = IndexFlat(self.d, self.metric_type)
        self._snap = None  # (rows, graph, extra): what a search reads, None when empty

    # --- FAISS's mutators ---------------------------------------------------------
    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        if ids is not None:
            raise NotImplementedError(
                f"{type(self).__name__} numbers vectors by position and cannot take ids: "
                f"wrap it, e.g. IndexIDMap({type(self).__name__}(d, ...)).add_with_ids(x, ids)")
        # build over old + new rows first: a build that fails (a bad knob, an interrupt)
        # leaves the index as it was
        old = self.storage.xb
        X = np.concatenate([old, x]) if old.shape[0] else np.array(x, dtype=np.float32)
        # read-only, as the storage view the searches get: one compiled kernel type
        X.flags.writeable = False
        state = self._build(X)
        self.storage.add(x)
        rows = self.storage.xb
        self._install(rows, *state)
        self.ntotal = rows.shape[0]

    def _reset(self) -> None:
        self.storage.reset()
        self._snap = None
        self.ntotal = 0
        self._clear()

    def _remove(self, sel: IDSelector) -> int:
        raise NotImplementedError(
            f"{type(self).__name__} cannot remove vectors (its graph is built once over all "
            "of them, as in FAISS): use IndexHNSWFlat, whose remove_ids repairs the graph, "
            "or rebuild this index without them")

    def _reconstruct_keys(self, keys: np.ndarray) -> np.ndarray:
        return self.storage._reconstruct_keys(keys)

    # --- search -------------------------------------------------------------------
    def _search(self, x, k, params, D, I):
        snap = self._snap
        nq = x.shape[0]
        D = np.empty((nq, k), dtype=np.float32) if D is None else D
        I = np.empty((nq, k), dtype=np.int64) if I is None else I
        if snap is None:
            return filtering.no_results(nq, k, self.metric_type, D, I)
        sel = params.sel if params is not None else None
        if sel is None:
            self._run_blocks(nq, lambda lo, hi: self._walk(snap, x[lo:hi], k, D[lo:hi],
                                                           I[lo:hi], None))
            return self._finish(D, I)
        # FAISS refuses search parameters here. voisin walks the graph and keeps the
        # allowed nodes, with a pool widened by 1 / selectivity, or scans the allowed
        # vectors when that costs less (filtering.hnsw_plan's rule)
        X, graph, _ = snap
        n = X.shape[0]
        mask = np.ascontiguousarray(sel.mask_sequential(n), dtype=np.bool_)
        allowed = int(np.count_nonzero(mask))
        if allowed == 0:
            return filtering.no_results(nq, k, self.metric_type, D, I)
        size = self._pool_size(k, n)
        how, _ = filtering.hnsw_plan(allowed, n, size, max(1, graph.shape[1] // 2))
        if how == "exact":
            return self._synced_storage().search(x, k, params, D=D, I=I)
        wide = min(n, max(size, -(-size * n // allowed)))
        self._run_blocks(nq, lambda lo, hi: self._walk(snap, x[lo:hi], k, D[lo:hi], I[lo:hi],
                                                       (wide, mask)))
        self._finish(D, I)
        # a query whose walk met fewer allowed nodes than it needs is answered exactly
        short = np.flatnonzero(I[:, min(k, allowed) - 1] < 0)
        if short.size:
            Ds, Is = self._synced_storage().search(x[short], k, params)
            D[short] = Ds
            I[short] = Is
        return D, I

    def _finish(self, D: np.ndarray, I: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Kernel costs to FAISS distances: inner products back to positive, -1 padding."""
        if is_similarity(self.metric_type):
            np.negative(D, out=D)
        missing = (I < 0) | np.isnan(D)  # a NaN distance (Canberra of 0 and 0) is no result
        I[missing] = -1
        if missing.any():
            D[missing] = worst_distance(self.metric_type)
        return D, I

    @staticmethod
    def _run_blocks(nq: int, run) -> None:
        """``run(lo, hi)`` over the queries: on this thread for a few, else one serial
        kernel per core on blocks of queries (the kernels release the GIL)."""
        nthreads = numba.get_num_threads()
        if nq < PARALLEL_MIN_QUERIES or nthreads == 1:
            run(0, nq)
            return
        block = max(PARALLEL_MIN_QUERIES // 4, -(-nq // (8 * nthreads)))
        run_pipelines(range(0, nq, block), lambda _p, lo: run(lo, min(nq, lo + block)),
                      nthreads)

    def _range_search(self, x, radius, params):
        # no graph range search in FAISS either: the storage answers exactly
        return self._synced_storage()._range_search(x, radius, params)

    @property
    def _kmetric(self) -> int:
        """The kernels' metric flag: 1 = squared L2, 0 = negated inner product, else
        the further metric's own code (kernels.extra_metrics)."""
        if self.metric_type == METRIC_INNER_PRODUCT:
            return 0
        return self.metric_type

    @property
    def _karg(self) -> np.float32:
        return np.float32(self.metric_arg)

    def _synced_storage(self) -> IndexFlat:
        """The storage, with this index's metric_arg (Lp's p may be set after creation)."""
        self.storage.metric_arg = self.metric_arg
        return self.storage

    # --- what a subclass supplies -------------------------------------------------
    def _build(self, X: np.ndarray) -> tuple:
        """The graph state of rows ``X`` (what ``_install`` takes after the rows)."""
        raise NotImplementedError

    def _install(self, X: np.ndarray, *state: Any) -> None:
        raise NotImplementedError

    def _clear(self) -> None:
        raise NotImplementedError

    def _pool_size(self, k: int, n: int) -> int:
        """The search pool for ``k`` results among ``n`` nodes."""
        raise NotImplementedError

    def _walk(self, snap: tuple, x: np.ndarray, k: int, D: np.ndarray, I: np.ndarray,
              filt: tuple | None) -> None:
        """Search ``x`` into ``D``, ``I`` (kernel costs); ``filt`` = (pool size, mask)
        walks a widened pool and keeps the nodes the mask allows."""
        raise NotImplementedError

    @property
    def xb(self) -> np.ndarray:
        """The stored vectors (ntotal, d), read-only."""
        return self.storage.xb

    def graph(self) -> np.ndarray:
        """The graph searches walk, (ntotal, degree) int32 (-1 = empty slot); (0, 0)
        when empty."""
        snap = self._snap
        return np.empty((0, 0), dtype=np.int32) if snap is None else snap[1]


def knn_graph(X: np.ndarray, kmetric: int, karg: np.float32, metric: int, K: int,
              nnd: NNDescent | None) -> np.ndarray:
    """The (n, K) int32 k-NN graph of the rows: NN-Descent with the knobs of ``nnd``, or
    exact (``nnd`` None, or too few rows for NN-Descent); self excluded, never -1."""
    n = X.shape[0]
    if nnd is not None and n > max(NNDESCENT_MIN_N, 2 * nnd.S, K):
        L = max(nnd.L, K)
        return KB.nndescent_build(X, kmetric, karg, K, nnd.S, nnd.R, L, nnd.iter,
                                  nnd.random_seed & 0x7FFFFFFF)
    if n <= 2 * K + 2 or kmetric > 1:  # exact.search knows L2 and inner product only
        return KB.exact_knn_graph(X, kmetric, karg, K)
    _, I = exact.search(X, X, n, metric, K + 1)
    # drop each row's own id (first for L2; anywhere among ties or for inner products)
    other = I != np.arange(n)[:, None]
    keep = np.argsort(~other, axis=1, kind="stable")[:, :K]
    return np.take_along_axis(I, keep, 1).astype(np.int32)


class IndexNNDescentFlat(_FlatGraphIndex):
    """A K-NN graph built by NN-Descent over float32 rows (FAISS's ``IndexNNDescentFlat``).

    Knobs on ``index.nndescent``: ``K`` (the constructor's, default 32), build ``S``,
    ``R``, ``L``, ``iter``, ``random_seed``, and search ``search_L`` (pool size, default
    0 = k: raise it for recall). Every ``add`` rebuilds the graph over all vectors.
    FAISS's index_factory has no string for it.

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.rand(1000, 16).astype("float32")
        >>> index = voisin.IndexNNDescentFlat(16, 32)
        >>> index.add(xb)
        >>> index.nndescent.search_L = 64
        >>> D, I = index.search(xb[:3], 5)
        >>> I[:, 0].tolist()
        [0, 1, 2]
    """

    def __init__(self, d: int, K: int = 32, metric: int = METRIC_L2):
        super().__init__(d, metric)
        self.nndescent = NNDescent(self.d, check_int(K, "K", lo=1))

    def _build(self, X: np.ndarray) -> tuple:
        nnd = self.nndescent
        if nnd.L < nnd.K:
            raise ValueError(f"nndescent.L: must be >= nndescent.K={nnd.K}, got {nnd.L}")
        return (knn_graph(X, self._kmetric, self._karg, self.metric_type, nnd.K, nnd),)

    def _install(self, X: np.ndarray, graph: np.ndarray) -> None:
        nnd = self.nndescent
        object.__setattr__(nnd, "final_graph", graph.reshape(-1))
        object.__setattr__(nnd, "ntotal", X.shape[0])
        object.__setattr__(nnd, "has_built", True)
        self._snap = (X, graph, {})

    def load_state(self, rows: np.ndarray, graph: np.ndarray) -> None:
        """Install stored rows (n, d) and a graph (n, K) read from a file."""
        self.storage = IndexFlat(self.d, self.metric_type)
        if rows.shape[0]:
            self.storage.add(rows)
        self.ntotal = rows.shape[0]
        if rows.shape[0]:
            self._install(self.storage.xb, graph)

    def _clear(self) -> None:
        object.__setattr__(self.nndescent, "final_graph", np.empty(0, dtype=np.int32))
        object.__setattr__(self.nndescent, "ntotal", 0)
        object.__setattr__(self.nndescent, "has_built", False)

    def _pool_size(self, k: int, n: int) -> int:
        return min(max(self.nndescent.search_L, k), n)

    def _walk(self, snap, x, k, D, I, filt) -> None:
        X, graph, inits = snap
        n = X.shape[0]
        size = self._pool_size(k, n) if filt is None else filt[0]
        seed = self.nndescent.random_seed & 0xFFFFFFFF
        init = inits.get((size, seed))
        if init is None:
            # FAISS's starting nodes, the same for every query (a fresh mt19937(seed))
            init = inits[(size, seed)] = KG.faiss_gen_random(n, size, seed)
        if filt is None:
            KG.nndescent_search(graph, X, x, self._kmetric, self._karg, init, k, D, I)
        else:
            KG.nndescent_search_filtered(graph, X, x, self._kmetric, self._karg, init, k,
                                         filt[1], D, I)


class IndexNSGFlat(_FlatGraphIndex):
    """A Navigating Spreading-out Graph over float32 rows (FAISS's ``IndexNSGFlat``).

    Out-degree ``R`` (default 32). The build starts from a k-NN graph of ``GK``
    neighbours (default 64) made by NN-Descent (``build_type`` 1, FAISS's default for
    IndexNSGFlat, knobs ``nndescent_S``, ``nndescent_R``, ``nndescent_L``,
    ``nndescent_iter``) or exactly (``build_type`` 0), prunes it with the MRNG rule
    (``nsg.L``, ``nsg.C``), and links every node to the navigation node
    ``nsg.enterpoint``. Search pool: ``nsg.search_L`` (16). Factory: ``"NSG32"``.

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.rand(1000, 16).astype("float32")
        >>> index = voisin.index_factory(16, "NSG32")
        >>> index.add(xb)
        >>> index.nsg.search_L = 32
        >>> D, I = index.search(xb[:3], 5)
        >>> I[:, 0].tolist()
        [0, 1, 2]
    """

    def __init__(self, d: int, R: int = 32, metric: int = METRIC_L2):
        super().__init__(d, metric)
        self.nsg = NSG(check_int(R, "R", lo=1))
        self.GK = 64
        self.build_type = 1
        self.nndescent_S = 10
        self.nndescent_R = 100
        self.nndescent_L = self.GK + 50
        self.nndescent_iter = 10
        self.is_built = False

    _INTS = {"GK": 1, "nndescent_S": 1, "nndescent_R": 0, "nndescent_L": 1, "nndescent_iter": 0}

    def __setattr__(self, name: str, value: Any) -> None:
        if name in IndexNSGFlat._INTS:
            value = check_int(value, name, lo=IndexNSGFlat._INTS[name])
        elif name == "build_type":
            value = check_int(value, "build_type", lo=0, hi=1)
        super().__setattr__(name, value)

    def _build(self, X: np.ndarray) -> tuple:
        n = X.shape[0]
        nnd = None
        if self.build_type == 1:
            nnd = NNDescent(self.d, self.GK)
            nnd.S, nnd.R, nnd.iter = self.nndescent_S, self.nndescent_R, self.nndescent_iter
            nnd.L = max(self.nndescent_L, self.GK + 50)
        knn = knn_graph(X, self._kmetric, self._karg, self.metric_type, self.GK, nnd)
        ep0 = int(np.random.default_rng(0x0903).integers(n))
        nsg = self.nsg
        fill = self._fill(n, max(nsg.L, nsg.search_L))
        graph, ep, _ = KB.nsg_build(X, self._kmetric, self._karg, knn, nsg.R, nsg.L, nsg.C,
                                    nsg.search_L, ep0, fill)
        return graph, int(ep)

    @staticmethod
    def _fill(n: int, size: int) -> np.ndarray:
        """The nodes that top up a walk's initial pool of ``size``: FAISS's stream
        (``RandomGenerator(0x1234).rand_int(n)``, repeats included, which a walk skips),
        then every node, so that the pool always fills."""
        return np.concatenate([KG.faiss_rand_ints(0x1234, 2 * size + 64, n),
                               np.arange(n, dtype=np.int32)])

    def _install(self, X: np.ndarray, graph: np.ndarray, ep: int) -> None:
        nsg = self.nsg
        object.__setattr__(nsg, "final_graph", graph)
        object.__setattr__(nsg, "enterpoint", ep)
        object.__setattr__(nsg, "ntotal", X.shape[0])
        object.__setattr__(nsg, "is_built", True)
        self.is_built = True
        self._snap = (X, graph, (ep, {}))

    def load_state(self, rows: np.ndarray, graph: np.ndarray, enterpoint: int) -> None:
        """Install stored rows (n, d), a graph (n, R) with -1 padding and its
        navigation node, read from a file."""
        self.storage = IndexFlat(self.d, self.metric_type)
        n = rows.shape[0]
        self.ntotal = n
        if n:
            self.storage.add(rows)
            self._install(self.storage.xb, graph, enterpoint)

    def navigation_node(self) -> int:
        """The node every search starts from (``nsg.enterpoint`` as built or read)."""
        snap = self._snap
        return 0 if snap is None else snap[2][0]

    def _clear(self) -> None:
        nsg = self.nsg
        object.__setattr__(nsg, "final_graph", np.empty((0, nsg.R), dtype=np.int32))
        object.__setattr__(nsg, "ntotal", 0)
        object.__setattr__(nsg, "is_built", False)
        self.is_built = False

    def _pool_size(self, k: int, n: int) -> int:
        return min(max(self.nsg.search_L, k), n)

    def _walk(self, snap, x, k, D, I, filt) -> None:
        X, graph, (ep, fills) = snap
        n = X.shape[0]
        size = self._pool_size(k, n) if filt is None else filt[0]
        fill = fills.get(size)
        if fill is None:
            fill = fills[size] = self._fill(n, size)
        if filt is None:
            KG.nsg_search(graph, X, x, self._kmetric, self._karg, ep, size, fill, k, D, I)
        else:
            KG.nsg_search_filtered(graph, X, x, self._kmetric, self._karg, ep, size, fill, k,
                                   filt[1], D, I)
