"""HNSW graph indexes (FAISS semantics): IndexHNSWFlat and IndexHNSWSQ.

The graph lives in flat arrays (see :mod:`voisin.kernels.hnsw`): level-0
neighbours as one contiguous (n, 2M) int32 block, upper levels as (rows, M)
with a per-node row offset. :class:`HNSW` exposes FAISS's view of the same
graph (``levels``, ``offsets``, ``neighbors``, ``cum_nneighbor_per_level``,
``assign_probas``), computed exactly from the split arrays on demand.

Parallel construction inserts nodes in batches: new nodes of a batch search
the graph as it was before the batch (each writes only its own lists), then
the reverse links are grouped by receiving node and applied one group per
thread. Nothing is written by two threads, no locks are needed, and the graph
does not depend on the thread count. With one numba thread the classic
one-at-a-time insertion runs instead. Both are deterministic for a given seed.
"""

from __future__ import annotations

import copy
import math
import threading
from typing import Any, NamedTuple

import numba
import numpy as np

from .. import _aligned, exact
from .._blas import run_pipelines
from .._validate import as_matrix, check_float, check_int, check_k, check_out
from ..index import Index
from ..kernels import hnsw as K
from ..metric import METRIC_L2, worst_distance
from ..selector import IDSelector, SearchParameters

# One node per batch (classic serial insertion) for the first nodes: batches
# need a graph worth searching.
SERIAL_PREFIX = 2048
# Batch size as a share of the current graph size, and its cap. New nodes of
# one batch do not see each other, so batches stay small relative to the graph.
BATCH_FRACTION = 0.01
MAX_BATCH = 1024
# Blocks per core in each insertion phase (dynamic balance against per-call cost).
PHASE_BLOCKS = 4
# Filtered search: go exact when scanning the allowed vectors costs less than
# the traversal is expected to (about ef * 2M / selectivity distance computations).
FILTER_EXACT_FACTOR = 1.0
# Below this many queries one thread serves the batch (thread start-up dominates).
PARALLEL_MIN_QUERIES = 64
# After an add of at least this share of the graph, level-0 nodes that no list
# names (the neighbour heuristic can prune a node out of every list, which makes
# it unreachable) get an in-link. The check reads every list, so it runs only
# when that costs little next to the insertion itself (not on streams of
# single-vector adds to a large graph).
ORPHAN_CHECK_FRACTION = 1 / 64
# remove_ids compacts the storage once deleted nodes exceed this share of all nodes
# (the default of IndexHNSW.compact_threshold).
COMPACT_THRESHOLD = 0.25


class SearchParametersHNSW(SearchParameters):
    """Per-call HNSW knobs: ``efSearch`` and an id selector ``sel``.

    Example:
        >>> import voisin
        >>> p = voisin.SearchParametersHNSW(efSearch=64, sel=voisin.IDSelectorRange(0, 100))
    """

    efSearch = None
    check_relative_distance = None
    bounded_queue = None


def level_tables(M: int) -> tuple[np.ndarray, np.ndarray]:
    """FAISS's ``assign_probas`` (levelMult = 1/ln M) and ``cum_nneighbor_per_level``."""
    mult = 1.0 / math.log(M)
    probas = []
    level = 0
    while True:
        p = math.exp(-level / mult) * (1.0 - math.exp(-1.0 / mult))
        if p < 1e-9:
            break
        probas.append(p)
        level += 1
    cum = [0]
    for level in range(len(probas)):
        cum.append(cum[-1] + (2 * M if level == 0 else M))
    return np.array(probas, dtype=np.float64), np.array(cum, dtype=np.int32)


def random_levels(probas: np.ndarray, u: np.ndarray) -> np.ndarray:
    """FAISS's ``random_level`` for uniforms ``u``: returns level + 1 per node (int32)."""
    cum = np.cumsum(probas)
    lev = np.searchsorted(cum, u, side="right")
    return (np.minimum(lev, len(probas) - 1) + 1).astype(np.int32)


class HNSW:
    """The graph and its knobs, reachable as ``index.hnsw`` (FAISS names).

    ``efConstruction`` (default 40) and ``efSearch`` (default 16) may be set at
    any time; ``levels``, ``offsets``, ``neighbors``, ``entry_point`` and
    ``max_level`` describe the graph in FAISS's layout (read-only views/copies).

    Example:
        >>> import numpy as np, voisin
        >>> index = voisin.IndexHNSWFlat(8, 16)
        >>> index.hnsw.efConstruction = 80
        >>> index.add(np.random.rand(500, 8).astype("float32"))
        >>> index.hnsw.neighbors.shape == (int(index.hnsw.offsets[-1]),)
        True
    """

    def __init__(self, M: int = 32):
        self.M = check_int(M, "M", lo=2, hi=1 << 15)
        self.efConstruction = 40
        self.efSearch = 16
        self.upper_beam = 1
        self.search_bounded_queue = True
        self.check_relative_distance = True
        self.assign_probas, self.cum_nneighbor_per_level = level_tables(self.M)
        self._reset_graph()

    def _reset_graph(self) -> None:
        # one tuple, replaced whole on every add, so a search reads a consistent graph
        self._g = (np.empty((0, 2 * self.M), np.int32), np.empty((0, self.M), np.int32),
                   np.empty(0, np.int64), np.empty(0, np.int32), np.array([-1, -1], np.int64))

    def nb_neighbors(self, level: int) -> int:
        return 2 * self.M if level == 0 else self.M

    @property
    def entry_point(self) -> int:
        return int(self._g[4][0])

    @property
    def max_level(self) -> int:
        return int(self._g[4][1])

    @property
    def levels(self) -> np.ndarray:
        """Number of levels of each node (level + 1), int32 (FAISS's ``levels``)."""
        return self._g[3]

    @property
    def offsets(self) -> np.ndarray:
        """FAISS's uint64 ``offsets`` (ntotal + 1) into :attr:`neighbors`."""
        lv = self._g[3].astype(np.uint64)
        sizes = np.uint64(2 * self.M) + (lv - np.uint64(1)) * np.uint64(self.M)
        out = np.zeros(lv.size + 1, dtype=np.uint64)
        np.cumsum(sizes, out=out[1:])
        return out

    @property
    def neighbors(self) -> np.ndarray:
        """FAISS's flat int32 ``neighbors`` array (-1 = empty slot)."""
        nb0, upper, upper_off, lv, _ = self._g
        n = lv.size
        M = self.M
        offs = self.offsets.astype(np.int64)
        out = np.full(int(offs[-1]), -1, dtype=np.int32)
        if n == 0:
            return out
        out[(offs[:-1, None] + np.arange(2 * M)).ravel()] = nb0[:n].ravel()
        nup = lv.astype(np.int64) - 1
        owners = np.repeat(np.arange(n), nup)
        if owners.size:
            first = np.repeat(np.cumsum(nup) - nup, nup)
            lvl = np.arange(owners.size) - first  # 0 for level 1
            rows = upper_off[owners] + lvl
            starts = offs[owners] + 2 * M + lvl * M
            out[(starts[:, None] + np.arange(M)).ravel()] = upper[rows].ravel()
        return out

    def neighbors_of(self, node: int, level: int = 0) -> np.ndarray:
        """Neighbour ids (graph numbering) of ``node`` at ``level``, without the -1 padding."""
        nb0, upper, upper_off, lv, _ = self._g
        node = check_int(node, "node", lo=0, hi=lv.size - 1)
        level = check_int(level, "level", lo=0, hi=int(lv[node]) - 1)
        row = nb0[node] if level == 0 else upper[upper_off[node] + level - 1]
        stop = np.flatnonzero(row < 0)
        return row[: stop[0] if stop.size else row.size].copy()

    def __repr__(self) -> str:
        return (f"HNSW(M={self.M}, efConstruction={self.efConstruction}, efSearch={self.efSearch}, "
                f"ntotal={self._g[3].size}, max_level={self.max_level})")


class _Scratch(threading.local):
    """Per-thread search scratch, reused across calls (the visited array is the big one)."""

    def get(self, n: int, ef: int):
        if getattr(self, "n", -1) < n:
            self.n = max(n, 1)
            self.visited = np.zeros(self.n, dtype=np.uint32)
            self.epoch = np.zeros(1, dtype=np.int64)
            self.cd = np.empty(self.n + 1, dtype=np.float32)
            self.ci = np.empty(self.n + 1, dtype=np.int32)
        if getattr(self, "ef", -1) < ef:
            self.ef = ef
            self.rd = np.empty(ef + 1, dtype=np.float32)
            self.ri = np.empty(ef + 1, dtype=np.int32)
        return self.visited, self.epoch, self.cd, self.ci, self.rd, self.ri


_F32 = np.dtype(np.float32)
_NO_MASK = np.zeros(1, dtype=np.bool_)
_NO_LABELS = np.zeros(1, dtype=np.int64)
_NO_XF = np.zeros((1, 1), dtype=np.float32)
_NO_PROJ = np.zeros((1, 0), dtype=np.float32)
# SQ8 traversal codes: rows padded to a multiple of this many bytes (the
# prototype's fastest layout, docs/hnsw-levers.md), padding bytes are 0 and unread
SQ8_ROW_ALIGN = 32
# an add whose values leave the trained SQ8 range by more than this share of
# the range's width re-trains the range (widened by SQ8_RETRAIN_MARGIN of its
# width each side) and re-encodes every row; smaller excursions are clipped
SQ8_RETRAIN_SLACK = 1.0 / 32
SQ8_RETRAIN_MARGIN = 1.0 / 8
# rows the traversal PCA (IndexHNSWFlat.traversal_dims) is trained on, at most
PCA_TRAIN_ROWS = 16384
# rows encoded per numpy pass (bounds the float temporaries)
_SQ8_CHUNK = 65536


class _SQ8Codes(NamedTuple):
    """IndexHNSWFlat's traversal codes, published with the storage they encode.

    ``codes`` (n, round_up(d, 32)) uint8, one row per graph node; ``sqp``
    (3, round_up(d, 32)) float32 rows (vmin, scale, scale^2) in
    :mod:`voisin.kernels.hnsw`'s SQ8 convention, 0 past column d, or None while
    nothing was added (trained on the first add).
    """

    codes: np.ndarray
    sqp: np.ndarray | None
    # (d, k) float32: the codes encode rows @ proj (IndexHNSWFlat.traversal_dims = k), or None
    proj: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        return int(self.codes.nbytes + sum(a.nbytes for a in (self.sqp, self.proj) if a is not None))


def sq8_range_params(lo: np.ndarray, hi: np.ndarray, width: int) -> np.ndarray:
    """SQ8 parameters (3, width): (vmin, scale, scale^2) covering [lo, hi] per
    dimension (code c stands for ``vmin + scale * (c + 0.5)``, 256 equal cells);
    the columns past d are 0, so padded code columns add nothing to a distance."""
    lo = np.asarray(lo, dtype=np.float64)
    scale = np.maximum(np.asarray(hi, dtype=np.float64) - lo, 0.0) / 256.0
    out = np.zeros((3, width), dtype=np.float32)
    out[:, :lo.size] = np.stack([lo, scale, scale * scale])
    return out


def sq8_encode(x: np.ndarray, sqp: np.ndarray, width: int) -> np.ndarray:
    """Codes (n, width) uint8 of float rows ``x`` under ``sqp``, clipped to its range;
    columns past d are 0."""
    n, d = x.shape
    out = _aligned.zeros((n, width), np.uint8)
    vmin = sqp[0, :d]
    scale = sqp[1, :d]
    inv = np.where(scale > 0, 1.0 / np.where(scale > 0, scale, 1.0), 0.0).astype(np.float32)
    for a in range(0, n, _SQ8_CHUNK):
        c = (x[a:a + _SQ8_CHUNK] - vmin) * inv
        np.floor(c, out=c)
        np.clip(c, 0, 255, out=c)
        out[a:a + _SQ8_CHUNK, :d] = c
    return out


class IndexHNSW(Index):
    """Common base of the HNSW indexes; subclasses choose the vector storage."""

    params_type = SearchParametersHNSW
    _sq = False
    @property
    def prefetch_lines(self) -> int:
        """Cache lines of each neighbour's vector prefetched while searching (0 = off)."""
        return int(self._tune[0])

    @prefetch_lines.setter
    def prefetch_lines(self, v: int) -> None:
        self._tune = np.array([check_int(v, "prefetch_lines", lo=0), self._tune[1]], np.int64)

    @property
    def early_abort_min_dim(self) -> int:
        """Float L2 distances of at least this many dimensions are abandoned as
        soon as they exceed the current ef-th result (exact; a huge value turns it off)."""
        return int(self._tune[1])

    @early_abort_min_dim.setter
    def early_abort_min_dim(self, v: int) -> None:
        self._tune = np.array([self._tune[0], check_int(v, "early_abort_min_dim", lo=0)], np.int64)

    def __init__(self, d: int, M: int = 32, metric: int = METRIC_L2, *, seed: int = 12345):
        super().__init__(d, metric)
        self.hnsw = HNSW(M)
        self.seed = check_int(seed, "seed")
        self._rng = np.random.default_rng(self.seed)
        self._sqp = np.zeros((3, self.d), dtype=np.float32)
        self._scratch = _Scratch()
        self._tune = np.array([K.PREFETCH_LINES, K.EARLY_ABORT_MIN_DIM], dtype=np.int64)
        self.compact_threshold = COMPACT_THRESHOLD
        #: repair also links back from the nodes a repaired list now names (as insertion does)
        self.repair_back_links = True
        self.last_remove_timing: dict[str, float] = {}
        self._publish(self._empty_storage(), self.hnsw._g, None, self._empty_extra())

    @property
    def compact_threshold(self) -> float:
        """``remove_ids`` compacts once deleted nodes exceed this share of all nodes
        (default 0.25; 0 = after every removal, 1 or more = only on :meth:`compact`)."""
        return self._compact_threshold

    @compact_threshold.setter
    def compact_threshold(self, v: float) -> None:
        v = check_float(v, "compact_threshold")
        if v < 0:
            raise ValueError(f"compact_threshold: expected a share >= 0, got {v}")
        self._compact_threshold = v

    # --- storage hooks ---------------------------------------------------------------
    def _empty_storage(self) -> np.ndarray:
        return np.empty((0, self.d), dtype=np.float32)

    def _encode(self, x: np.ndarray) -> np.ndarray:
        return x

    def _decode(self, rows: np.ndarray) -> np.ndarray:
        return rows.astype(np.float32, copy=True)

    def _empty_extra(self) -> np.ndarray | None:
        """Per-node data kept beside the storage, one row per graph node (IndexHNSWSQ's
        float rows for rerank, IndexHNSWFlat's SQ8 traversal codes), published with it."""
        return None

    def _extra_for(self, extra: Any, x: np.ndarray, X: np.ndarray) -> Any:
        """The extra data after adding float rows ``x`` (``X``: the new storage)."""
        return None

    def _extra_take(self, extra: Any, rows: np.ndarray) -> Any:
        """The extra data of the kept nodes ``rows`` (compaction)."""
        return None if extra is None else np.ascontiguousarray(extra[rows])

    def _extra_from_storage(self, X: np.ndarray) -> Any:
        """The extra data for a storage installed whole (file readers)."""
        return self._empty_extra()

    # --- the published state -------------------------------------------------------
    # A search reads ``self._snap`` once: (storage, graph, labels, slots, live, extra).
    # Graph nodes ("slots") are numbered in insertion order and keep their number
    # until compaction; deleted ones stay in the arrays as tombstones. Without
    # tombstones labels/slots/live are None and node number = id. With them,
    # ``labels`` maps node -> id (-1 = deleted), ``slots`` id -> node and ``live``
    # is the mask of live nodes. Writers build new arrays and publish a new tuple,
    # so a search sees the old state or the new one, never a mix.
    def _publish(self, X: np.ndarray, g: tuple, dead: np.ndarray | None,
                 extra: np.ndarray | None) -> None:
        n = g[3].size
        labels = slots = live = None
        ntotal = n
        if dead is not None and dead.any():
            live = ~dead
            slots = np.flatnonzero(live).astype(np.int64)
            labels = np.full(n, -1, dtype=np.int64)
            labels[slots] = np.arange(slots.size, dtype=np.int64)
            ntotal = slots.size
        else:
            dead = None
        self._snap = (X, g, labels, slots, live, extra)
        # mirrors for the FAISS-view properties and the file writers
        self._X = X
        self._dead = dead
        self._extra = extra
        self.hnsw._g = g
        self.ntotal = ntotal

    def _set_state(self, X: np.ndarray, g: tuple) -> None:
        """Install a graph and storage without tombstones (file readers).

        Rows read into fresh memory are moved to cache-line boundaries (see
        :mod:`voisin._aligned`); mapped files are used where they lie."""
        X = _aligned.realigned(X)
        g = (_aligned.realigned(g[0]), _aligned.realigned(g[1])) + tuple(g[2:])
        self._publish(X, g, None, self._extra_from_storage(X))

    @property
    def ntombstones(self) -> int:
        """Deleted nodes still held in the arrays (0 after :meth:`compact`)."""
        live = self._snap[4]
        return 0 if live is None else int(live.size - np.count_nonzero(live))

    @property
    def nbytes(self) -> int:
        """Bytes held by the storage, the graph arrays and the id tables."""
        X, g, labels, slots, live, extra = self._snap
        arrays = (X, g[0], g[1], g[2], g[3], labels, slots, live, extra)
        return int(sum(a.nbytes for a in arrays if a is not None))

    # --- pickling: the per-thread scratch is rebuilt ------------------------------------
    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_scratch", None)
        return state

    def __setstate__(self, state: dict) -> None:
        state.setdefault("_tune", np.array([K.PREFETCH_LINES, K.EARLY_ABORT_MIN_DIM], np.int64))
        state.setdefault("_compact_threshold", state.pop("compact_threshold", COMPACT_THRESHOLD))
        state.setdefault("repair_back_links", True)
        state.setdefault("last_remove_timing", {})
        super().__setstate__(state)
        self._scratch = _Scratch()
        if "_snap" not in state:
            self._publish(self._X, self.hnsw._g, None, getattr(self, "_extra", None))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(d={self.d}, M={self.hnsw.M}, ntotal={self.ntotal}, "
                f"efConstruction={self.hnsw.efConstruction}, efSearch={self.hnsw.efSearch})")

    # --- add ---------------------------------------------------------------------
    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        if ids is not None:
            raise NotImplementedError(
                f"{type(self).__name__} numbers vectors by position and cannot take ids: "
                f"wrap it, e.g. IndexIDMap({type(self).__name__}(d, M)).add_with_ids(x, ids)")
        h = self.hnsw
        check_int(h.efConstruction, "efConstruction", lo=1)
        M = h.M
        X_old, g_old, _, _, _, extra_old = self._snap
        nb0_old, up_old, uoff_old, lv_old, state_old = g_old
        n0, n = lv_old.size, x.shape[0]
        n1 = n0 + n
        new_lv = random_levels(h.assign_probas, self._rng.random(n))
        levels = np.concatenate([lv_old, new_lv])
        nup_new = new_lv.astype(np.int64) - 1
        rows0 = up_old.shape[0]
        upper_off = np.concatenate([uoff_old, rows0 + np.cumsum(nup_new) - nup_new])
        nb0 = _aligned.full((n1, 2 * M), -1, np.int32)
        nb0[:n0] = nb0_old
        upper = _aligned.full((rows0 + int(nup_new.sum()), M), -1, np.int32)
        upper[:rows0] = up_old
        X = _aligned.empty((n1,) + X_old.shape[1:], X_old.dtype)
        X[:n0] = X_old[:n0]
        X[n0:] = self._encode(x)
        state = state_old.copy()
        extra = self._extra_for(extra_old, x, X)
        # deleted nodes are unreachable after repair (no live list names them,
        # their own lists are empty), so insertion never links to them
        self._insert(x, n0, X, levels, nb0, upper, upper_off, state,
                     self._build_walk(X, extra, n0))
        dead = None
        if self._dead is not None:
            dead = np.concatenate([self._dead, np.zeros(n, dtype=bool)])
        if n >= ORPHAN_CHECK_FRACTION * n1:
            from ..kernels import hnsw_repair as R
            R.relink_orphans(nb0, dead if dead is not None else np.zeros(n1, dtype=bool),
                             int(state[0]))
        self._publish(X, (nb0, upper, upper_off, levels, state), dead, extra)

    def _build_walk(self, X: np.ndarray, extra: Any, n0: int) -> tuple:
        """(storage walked, its sq flag, its sqp, rerank) for inserting rows n0.. of X:
        the storage itself here; IndexHNSWFlat may walk SQ8 codes."""
        return X, self._sq, self._sqp, False

    def _insert(self, x, n0, X, levels, nb0, upper, upper_off, state, walk) -> None:
        """Batched insertion of nodes n0.. (docs/hnsw.md, "Construction").

        Per batch: phase 1 (:func:`~voisin.kernels.hnsw.link_new_nodes`) gives
        each core a slice of the new nodes, which search the graph as it was
        and write only their own lists; phase 2
        (:func:`~voisin.kernels.hnsw.apply_link_groups`) gives each core whole
        groups of reverse links, one group per receiving list. Both are serial
        kernels run from Python threads (GIL released): no parallel kernel to
        compile, and nothing depends on timing or the thread count.
        """
        h = self.hnsw
        efc, M, metric, sq, sqp = h.efConstruction, h.M, self.metric_type, self._sq, self._sqp
        abort = self.early_abort_min_dim
        S, ssq, ssqp, rerank = walk
        n1 = n0 + x.shape[0]
        i = n0
        if state[0] < 0:
            # the first node becomes the entry point; it has nobody to link to
            state[0], state[1] = i, levels[i] - 1
            i += 1
        nthreads = numba.get_num_threads()
        visited = np.zeros((nthreads, n1), dtype=np.uint32)
        epochs = np.zeros(nthreads, dtype=np.int64)
        while i < n1:
            # batch sizes depend on the graph size only, never on the thread
            # count: the graph is the same for any number of threads
            b = 1 if i < SERIAL_PREFIX else int(min(MAX_BATCH, i * BATCH_FRACTION))
            stop = min(n1, i + b)
            npipe = min(nthreads, stop - i)
            entry, max_level = int(state[0]), int(state[1])
            # several blocks per core: a core that finishes early takes another
            step = -(-(stop - i) // (PHASE_BLOCKS * npipe))

            def phase1(p: int, lo: int) -> None:
                K.link_new_nodes(x, n0, lo, min(stop, lo + step), X, S, levels, nb0, upper,
                                 upper_off, entry, max_level, efc, M, metric, sq, sqp, ssq, ssqp,
                                 rerank, abort, visited[p], epochs[p:p + 1])

            run_pipelines(range(i, stop, step), phase1, npipe)
            keys, srcs = K.reverse_link_keys(i, stop, levels, nb0, upper, upper_off, max_level)
            order, gstart = K.link_groups(keys)
            ngroups = gstart.size - 1
            gstep = max(1, -(-ngroups // (PHASE_BLOCKS * npipe)))

            def phase2(p: int, g0: int) -> None:
                K.apply_link_groups(keys, srcs, order, gstart, g0, min(ngroups, g0 + gstep),
                                    max_level + 1, X, nb0, upper, upper_off, metric, sq, sqp,
                                    abort)

            run_pipelines(range(0, ngroups, gstep), phase2, npipe)
            # the highest new node (the first one on ties) becomes the entry point
            top = levels[i:stop]
            j = int(np.argmax(top))
            if int(top[j]) - 1 > state[1]:
                state[0], state[1] = i + j, int(top[j]) - 1
            i = stop

    # --- search ---------------------------------------------------------------------
    def search(self, x: Any, k: int, params: SearchParameters | None = None, *,
               D: np.ndarray | None = None, I: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest stored vectors of each query in ``x`` (n, d): ``(D, I)``.

        ``params`` may be :class:`SearchParametersHNSW` (``efSearch``, ``sel``).
        """
        # One well-formed query and no options is the online-service (and
        # ann-benchmarks) loop: skip the generic validation, whose cost is of
        # the order of the search itself; the kernel checks finiteness and any
        # other case takes the validated path.
        if (params is None and D is None and I is None and type(x) is np.ndarray
                and x.dtype == _F32 and x.ndim == 2 and x.shape[0] == 1 and x.shape[1] == self.d
                and x.flags.c_contiguous and type(k) is int and k > 0 and self.ntotal > 0):
            ef = self.hnsw.efSearch
            if type(ef) is int and ef > 0:
                X, g, labels, _, live, extra = self._snap
                nb0, upper, upper_off, levels, state = g
                Xs, sq, sqp, Xf, rerank, proj = self._walk_arrays(X, extra)
                if state[0] >= 0 and self.ntotal > max(ef, k):
                    ef = ef if ef > k else k
                    vis, ep, cd, ci, rd, ri = self._scratch.get(levels.size, ef)
                    D = np.empty((1, k), dtype=_F32)
                    I = np.empty((1, k), dtype=np.int64)
                    tomb = labels is not None
                    if K.search_serial(x, k, ef, Xs, nb0, upper, upper_off, int(state[0]),
                                       int(state[1]), self.metric_type, sq, sqp, vis,
                                       ep, cd, ci, rd, ri, live if tomb else _NO_MASK, tomb,
                                       labels if tomb else _NO_LABELS, tomb, self._tune, Xf,
                                       rerank, proj, D, I):
                        return D, I
                    D = I = None
        return super().search(x, k, params, D=D, I=I)

    def _search(self, x, k, params, D, I):
        return self._search_snap(self._snap, x, k, params, D, I, True)

    def _walk_arrays(self, X: np.ndarray, extra: Any):
        """(traversal storage, sq, sqp, float rows for re-rank, rerank, projection)
        of one published state: the SQ8 codes when they are published with it."""
        if type(extra) is _SQ8Codes and extra.sqp is not None:
            return (extra.codes, True, extra.sqp, X, True,
                    _NO_PROJ if extra.proj is None else extra.proj)
        return X, self._sq, self._sqp, _NO_XF, False, _NO_PROJ

    def _search_snap(self, snap, x, k, params, D, I, to_ids: bool):
        """Search one published state; ``to_ids=False`` returns node numbers."""
        X, g, labels, slots, live, extra = snap
        nb0, upper, upper_off, levels, state = g
        n = levels.size
        nlive = n if slots is None else slots.size
        nq = x.shape[0]
        ef = self.hnsw.efSearch
        sel = None
        if params is not None:
            sel = params.sel
            if getattr(params, "efSearch", None) is not None:
                ef = params.efSearch
        ef = max(check_int(ef, "efSearch", lo=1), k)
        if D is None:
            D = np.empty((nq, k), dtype=np.float32)
        if I is None:
            I = np.empty((nq, k), dtype=np.int64)
        tomb = labels is not None
        use_labels = to_ids and tomb
        mask, use_mask = (live, True) if tomb else (_NO_MASK, False)
        if nlive == 0 or state[0] < 0:
            D.fill(worst_distance(self.metric_type))
            I.fill(-1)
            return D, I
        if sel is not None:
            ext = np.ascontiguousarray(sel.mask_sequential(nlive), dtype=np.bool_)
            allowed = int(np.count_nonzero(ext))
            if allowed == 0:
                D.fill(worst_distance(self.metric_type))
                I.fill(-1)
                return D, I
            if allowed < nlive:
                if tomb:
                    # the selector speaks in ids; the kernels in node numbers
                    mask = np.zeros(n, dtype=np.bool_)
                    mask[slots] = ext
                else:
                    mask = ext
                use_mask = True
                plan, ef = self.filter_plan(allowed, ef, nlive)
                if plan == "exact":
                    return self._search_exact_subset(x, k, mask, X, D, I,
                                                     labels if use_labels else None)
        if nlive <= ef:
            # the walk would score every node anyway; the scan also reaches nodes
            # the graph cannot (a node pruned out of every list), so small
            # indexes answer exactly
            if not use_mask:
                mask = np.ones(n, dtype=np.bool_)
            return self._search_exact_subset(x, k, mask, X, D, I, labels if use_labels else None)
        entry, max_level = int(state[0]), int(state[1])
        lab = labels if use_labels else _NO_LABELS
        nthreads = numba.get_num_threads()
        Xs, sq, sqp, Xf, rerank, proj = self._walk_arrays(X, extra)
        metric, tune = self.metric_type, self._tune

        def run(lo: int, hi: int) -> None:
            # per-thread scratch (caller and pool threads each keep their own)
            vis, ep, cd, ci, rd, ri = self._scratch.get(n, ef)
            K.search_serial(x[lo:hi], k, ef, Xs, nb0, upper, upper_off, entry, max_level,
                            metric, sq, sqp, vis, ep, cd, ci, rd, ri, mask, use_mask,
                            lab, use_labels, tune, Xf, rerank, proj, D[lo:hi], I[lo:hi])

        if nq < PARALLEL_MIN_QUERIES or nthreads == 1:
            run(0, nq)
        else:
            # one serial kernel per core on blocks of queries (no second, parallel
            # specialisation to compile: ~3.5 s less cold JIT per storage type)
            block = max(PARALLEL_MIN_QUERIES // 4, -(-nq // (8 * nthreads)))
            run_pipelines(range(0, nq, block), lambda p, lo: run(lo, min(nq, lo + block)),
                          nthreads)
        return D, I

    def _filter_goes_exact(self, allowed: int, n: int, ef: int) -> bool:
        """Exact scan of the allowed vectors when it is cheaper than the expected traversal.

        A filtered traversal has to see about ef/selectivity nodes before its
        result list holds ef allowed ones, each costing up to 2M distances;
        at low selectivity it also loses recall as the allowed nodes get
        disconnected, so the exact scan is both faster and exact there.
        """
        selectivity = allowed / n
        traversal = ef * 2 * self.hnsw.M / selectivity
        return allowed <= FILTER_EXACT_FACTOR * traversal

    def filter_plan(self, allowed: int, ef: int, n: int | None = None) -> tuple[str, int]:
        """How a search filtered down to ``allowed`` of ``n`` ids (default: ntotal)
        runs at efSearch ``ef``: ``("exact", ef)`` (scan of the allowed vectors)
        or ``("traverse", ef')`` (filtered graph traversal at efSearch ef')."""
        n = self.ntotal if n is None else n
        allowed = check_int(allowed, "allowed", lo=0)
        ef = check_int(ef, "ef", lo=1)
        if n <= 0 or allowed >= n:
            return "traverse", ef
        if self._filter_goes_exact(allowed, n, ef):
            return "exact", ef
        return "traverse", ef

    def _search_exact_subset(self, x, k, mask, X, D, I, labels=None):
        rows = np.flatnonzero(mask)
        sub = self._decode(X[rows])
        Ds, Is = exact.search(x, sub, rows.size, self.metric_type, k)
        D[:] = Ds
        out = rows if labels is None else labels[rows]
        I[:] = np.where(Is >= 0, out[np.maximum(Is, 0)], -1)
        return D, I

    # --- other hooks --------------------------------------------------------------------
    def _reconstruct_keys(self, keys: np.ndarray) -> np.ndarray:
        X, _, _, slots, _, _ = self._snap
        n = X.shape[0] if slots is None else slots.size
        bad = (keys < 0) | (keys >= n)
        if bad.any():
            raise ValueError(f"key: id {int(keys[bad][0])} is out of range [0, {n})")
        return self._decode(X[keys if slots is None else slots[keys]])

    # --- removal -----------------------------------------------------------------------
    def _remove(self, sel: IDSelector) -> int:
        """Delete the selected ids; later ids shift down (FAISS's sequential semantics).

        1. the nodes become tombstones at once (searches skip them);
        2. every list that named a deleted node is rebuilt (``repair``), a new
           entry point is chosen if the old one was deleted;
        3. the arrays are compacted once tombstones exceed ``compact_threshold``
           of all nodes, or when nothing is left.
        """
        import time
        from ..kernels import hnsw_repair as R
        X, g, labels, slots, live, extra = self._snap
        nlive = X.shape[0] if slots is None else slots.size
        if nlive == 0:
            return 0
        ext = np.asarray(sel.mask_sequential(nlive), dtype=bool)
        count = int(np.count_nonzero(ext))
        if count == 0:
            return 0
        t0 = time.perf_counter()
        n = g[3].size
        dead = np.zeros(n, dtype=bool) if live is None else ~live
        dead[np.flatnonzero(ext) if slots is None else slots[ext]] = True
        self._publish(X, g, dead, extra)
        t1 = time.perf_counter()
        nb0, upper, upper_off, levels, state = g
        nodes, lvls = R.affected_lists(nb0, upper, upper_off, levels, dead)
        nb0_new, upper_new = _aligned.copy(nb0), _aligned.copy(upper)
        R.repair_lists(X, nb0, upper, upper_off, levels, dead, self.metric_type, self._sq,
                       self._sqp, self.early_abort_min_dim, nodes, lvls,
                       max(1, numba.get_num_threads()), int(state[0]), int(state[1]),
                       max(check_int(self.hnsw.efConstruction, "efConstruction", lo=1), 1),
                       nb0_new, upper_new)
        backlinks = 0
        if self.repair_back_links and nodes.size:
            backlinks = R.add_back_links(X, nb0, upper, nb0_new, upper_new, upper_off, nodes,
                                         lvls, int(levels.max()), max(1, numba.get_num_threads()),
                                         self.metric_type, self._sq, self._sqp,
                                         self.early_abort_min_dim)
        state = state.copy()
        if dead.all():
            state[:] = -1
        elif dead[state[0]]:
            # the first live node of the highest level left becomes the entry point
            lv = np.where(dead, 0, levels)
            top = int(lv.max())
            state[0] = int(np.argmax(lv == top))
            state[1] = top - 1
        relinked = R.relink_orphans(nb0_new, dead, int(state[0]))
        self._publish(X, (nb0_new, upper_new, upper_off, levels, state), dead, extra)
        t2 = time.perf_counter()
        ntomb = int(np.count_nonzero(dead))
        if ntomb == n or ntomb > self.compact_threshold * n:
            self._compact_locked()
        t3 = time.perf_counter()
        self.last_remove_timing = {"tombstone_s": t1 - t0, "repair_s": t2 - t1,
                                   "compact_s": t3 - t2, "lists_repaired": int(nodes.size),
                                   "orphans_relinked": int(relinked), "back_links": int(backlinks)}
        return count

    def compact(self) -> int:
        """Drop the tombstones of deleted nodes: renumber live nodes contiguously,
        remap the links and reallocate every array at its new size, so the memory
        is returned. Search results do not change. Returns the nodes dropped."""
        self._check_writable()
        with self._write_lock:
            return self._compact_locked()

    def _compact_locked(self) -> int:
        X, g, extra = self._compacted()
        dropped = self._snap[1][3].size - g[3].size
        if dropped:
            self._publish(X, g, None, extra)
        return dropped

    def _compacted(self):
        """(storage, graph, extra) of the current state without tombstones (new
        arrays; the published state is untouched). Returns the current ones
        when there is nothing to drop."""
        from ..kernels import hnsw_repair as R
        X, g, labels, slots, live, extra = self._snap
        if labels is None:
            return X, g, extra
        nb0, upper, upper_off, levels, state = g
        newid = np.full(levels.size, -1, dtype=np.int32)
        newid[slots] = np.arange(slots.size, dtype=np.int32)
        lv = np.ascontiguousarray(levels[slots])
        nup = lv.astype(np.int64) - 1
        up_off = (np.cumsum(nup) - nup).astype(np.int64)
        # upper rows of the kept nodes, in node order: row upper_off[s] + j, j < nup[s]
        keep_up = (np.repeat(upper_off[slots], nup)
                   + np.arange(int(nup.sum()), dtype=np.int64) - np.repeat(up_off, nup))
        nb0_c = _aligned.empty((slots.size, nb0.shape[1]), np.int32)
        up_c = _aligned.empty((keep_up.size, upper.shape[1]), np.int32)
        R.remap_rows(nb0, slots, newid, nb0_c)
        R.remap_rows(upper, keep_up, newid, up_c)
        st = np.array([-1, -1], dtype=np.int64) if slots.size == 0 else \
            np.array([newid[state[0]], state[1]], dtype=np.int64)
        X_c = _aligned.empty((slots.size,) + X.shape[1:], X.dtype)
        np.take(X, slots, axis=0, out=X_c)
        extra_c = self._extra_take(extra, slots)
        return X_c, (nb0_c, up_c, up_off, lv, st), extra_c

    def _compacted_copy(self) -> "IndexHNSW":
        """This index, or a compacted copy of it when it holds tombstones (what
        the file writers serialise: FAISS's format has no tombstones)."""
        if self._snap[2] is None:
            return self
        X, g, extra = self._compacted()
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.hnsw = copy.copy(self.hnsw)
        clone._publish(X, g, None, extra)
        return clone

    def _reset(self) -> None:
        self.hnsw._reset_graph()
        self._rng = np.random.default_rng(self.seed)
        self._publish(self._empty_storage(), self.hnsw._g, None, self._empty_extra())

    @property
    def bytes_per_vector(self) -> float:
        """Memory of storage + graph (tombstones included) divided by ntotal."""
        if self.ntotal == 0:
            return 0.0
        return self.nbytes / self.ntotal


class IndexHNSWFlat(IndexHNSW):
    """HNSW graph over raw float32 vectors (FAISS's ``IndexHNSWFlat``).

    Knobs: ``index.hnsw.efConstruction`` (build quality, default 40),
    ``index.hnsw.efSearch`` (search quality, default 16) or per call
    ``SearchParametersHNSW(efSearch=..., sel=...)``, and ``index.sq8_traversal``
    (default False): walk the graph on SQ8 codes kept beside the floats and
    re-rank the efSearch results exactly (faster search, returned distances
    stay exact, + round_up(d, 32) bytes per vector; see :attr:`sq8_traversal`).

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.rand(2000, 16).astype("float32")
        >>> index = voisin.IndexHNSWFlat(16, 16)
        >>> index.hnsw.efConstruction = 100
        >>> index.add(xb)
        >>> index.hnsw.efSearch = 32
        >>> D, I = index.search(xb[:3], 5)
        >>> I[:, 0].tolist()
        [0, 1, 2]
        >>> index.remove_ids(np.arange(100))   # later ids shift down, as in IndexFlat
        100
        >>> index.search(xb[100:102], 1)[1].ravel().tolist()
        [0, 1]
    """

    _sq8_traversal = False
    _traversal_dims = 0
    _sq8_build = True

    @property
    def sq8_build(self) -> bool:
        """Insertion walks the graph on SQ8 codes and re-ranks exactly (default True).

        Each new vector's neighbour search runs on 8-bit codes (a quarter of
        the bytes per distance) and each level's efConstruction results are
        re-scored from the float vectors before the neighbour heuristic, which
        compares float rows as before: the same graph quality (recall equal to
        the 4th decimal on glove-50 and fashion-mnist) for a 1.2-1.5x faster
        build. False walks the floats. Build-time only: not stored in files.
        """
        return self._sq8_build

    @sq8_build.setter
    def sq8_build(self, on: bool) -> None:
        if not isinstance(on, (bool, np.bool_)) and not (
                isinstance(on, (int, np.integer)) and int(on) in (0, 1)):
            raise TypeError(f"sq8_build: expected a bool (or 0/1), got {on!r}")
        self._sq8_build = bool(on)

    @property
    def xb(self) -> np.ndarray:
        """The stored vectors (ntotal, d) in id order, read-only (a view, or a
        copy while deleted nodes await compaction)."""
        X, _, _, slots, _, _ = self._snap
        v = X[:] if slots is None else X[slots]
        v.flags.writeable = False
        return v

    # --- SQ8 traversal + exact re-rank ---------------------------------------------------
    @property
    def sq8_traversal(self) -> bool:
        """Search walks the graph on SQ8 codes, then re-ranks exactly (default False).

        When True, a uint8 code row (d bytes, padded to a multiple of 32) is
        kept per vector next to the float rows. The graph is walked with SQ8
        distances (a quarter of the bytes per distance) and all efSearch
        results are re-scored from the float vectors before the k best are
        kept, so the returned distances are exact and recall stays close to
        the float search at the same efSearch. The build keeps float
        distances (same graph either way).

        The per-dimension range is trained on the first add (or, when set on
        a filled index, on the vectors it holds); later adds are clipped to it,
        unless they leave it by more than 1/32 of its width, which re-trains
        the range (union, widened by 1/8 each side) and re-encodes every row.
        Setting it False frees the codes. FAISS's file format has no place for
        it: ``read_index`` returns it off (set it again, one encode pass).
        """
        return self._sq8_traversal

    @sq8_traversal.setter
    def sq8_traversal(self, on: bool) -> None:
        if not isinstance(on, (bool, np.bool_)) and not (
                isinstance(on, (int, np.integer)) and int(on) in (0, 1)):
            raise TypeError(f"sq8_traversal: expected a bool (or 0/1), got {on!r}")
        on = bool(on)
        # allowed on read-only (mmap) indexes too: the codes are derived, the stored floats untouched
        with self._write_lock:
            if on == self._sq8_traversal:
                return
            self._sq8_traversal = on
            X, g, _, _, _, _ = self._snap
            self._publish(X, g, self._dead, self._extra_from_storage(X) if on else None)

    @property
    def traversal_dims(self) -> int:
        """Dimensions of the SQ8 traversal codes: 0 (default) codes the vectors
        as they are; k > 0 codes their projection on the k leading principal
        axes (PCA, trained with the codes) and projects each query the same way.

        Only used with :attr:`sq8_traversal`. For high-dimensional data whose
        variance sits in few directions, a walk on k-dimensional codes costs
        a fraction of a full one and the exact re-rank of the efSearch results
        restores the order: on fashion-mnist (784-d), k = 128 reaches recall
        0.95 at about 1.4x the QPS of plain SQ8 traversal, though at a larger
        efSearch (docs/hnsw.md). Memory: round_up(k, 32) bytes per vector
        instead of round_up(d, 32), plus the (d, k) projection.

        >>> import numpy as np, voisin
        >>> index = voisin.IndexHNSWFlat(64, 16)
        >>> index.sq8_traversal = True
        >>> index.traversal_dims = 16
        >>> index.add(np.random.rand(1000, 64).astype("float32"))
        >>> index.search(index.xb[:2], 1)[1].ravel().tolist()
        [0, 1]
        """
        return self._traversal_dims

    @traversal_dims.setter
    def traversal_dims(self, k: int) -> None:
        k = check_int(k, "traversal_dims", lo=0, hi=self.d)
        with self._write_lock:
            if k == self._traversal_dims:
                return
            self._traversal_dims = k
            if self._sq8_traversal:
                X, g, _, _, _, _ = self._snap
                self._publish(X, g, self._dead, self._extra_from_storage(X))

    @property
    def _sq8_width(self) -> int:
        coded = self._traversal_dims or self.d
        return -(-coded // SQ8_ROW_ALIGN) * SQ8_ROW_ALIGN

    def _empty_extra(self) -> Any:
        if not self._sq8_traversal:
            return None
        return _SQ8Codes(_aligned.zeros((0, self._sq8_width), np.uint8), None)

    def _train_projection(self, x: np.ndarray) -> np.ndarray | None:
        """(d, k) PCA axes of ``x`` for k = traversal_dims, or None when off."""
        k = self._traversal_dims
        if not k:
            return None
        from ..transforms import PCAMatrix
        pca = PCAMatrix(self.d, k)
        # the axes settle long before the covariance has seen every row
        pca.max_points_per_d = max(1, PCA_TRAIN_ROWS // self.d)
        pca.seed = self.seed
        if x.shape[0] < 2:  # one vector has no spread: any orthonormal axes will do
            x = np.concatenate([x, x + np.float32(1.0)])
        pca.train(x)
        return np.ascontiguousarray(pca.A.T)

    def _traversal_rows(self, x: np.ndarray, proj: np.ndarray | None) -> np.ndarray:
        return x if proj is None else x @ proj

    def _codes_trained_on(self, train: np.ndarray, X: np.ndarray) -> _SQ8Codes:
        """Codes of every row of ``X``, projection and range trained on ``train``."""
        proj = self._train_projection(train)
        t = self._traversal_rows(train, proj)
        sqp = sq8_range_params(t.min(axis=0), t.max(axis=0), self._sq8_width)
        return _SQ8Codes(sq8_encode(self._traversal_rows(X, proj), sqp, self._sq8_width), sqp, proj)

    def _extra_from_storage(self, X: np.ndarray) -> Any:
        if not self._sq8_traversal:
            return None
        if X.shape[0] == 0:
            return self._empty_extra()
        # trained on the live vectors (tombstones are encoded, clipped, but never returned)
        live = self._snap[4] if self._snap[0] is X else None
        src = X if live is None or live.size != X.shape[0] or not live.any() else X[live]
        return self._codes_trained_on(src, X)

    def _extra_for(self, extra: Any, x: np.ndarray, X: np.ndarray) -> Any:
        if extra is None or not self._sq8_traversal:
            return None
        n0 = X.shape[0] - x.shape[0]
        if extra.sqp is None or n0 == 0:
            # first vectors: train on them (an index emptied by remove_ids re-trains too)
            return self._codes_trained_on(x, X)
        sqp, proj = extra.sqp, extra.proj
        xp = self._traversal_rows(x, proj)
        width = xp.shape[1]
        lo = sqp[0, :width].astype(np.float64)
        hi = lo + 256.0 * sqp[1, :width].astype(np.float64)
        xlo = xp.min(axis=0).astype(np.float64)
        xhi = xp.max(axis=0).astype(np.float64)
        slack = SQ8_RETRAIN_SLACK * (hi - lo)
        if np.any(xlo < lo - slack) or np.any(xhi > hi + slack):
            # far outside the range: clipping would flatten the new rows onto
            # its edge, so widen the range and re-encode everything once
            nlo, nhi = np.minimum(lo, xlo), np.maximum(hi, xhi)
            margin = SQ8_RETRAIN_MARGIN * (nhi - nlo)
            sqp = sq8_range_params(nlo - margin, nhi + margin, self._sq8_width)
            return _SQ8Codes(sq8_encode(self._traversal_rows(X, proj), sqp, self._sq8_width),
                             sqp, proj)
        codes = _aligned.empty((X.shape[0], self._sq8_width), np.uint8)
        codes[:n0] = extra.codes[:n0]
        codes[n0:] = sq8_encode(xp, sqp, self._sq8_width)
        return _SQ8Codes(codes, sqp, proj)

    def _build_walk(self, X: np.ndarray, extra: Any, n0: int) -> tuple:
        """Insertion walks the graph on SQ8 codes and re-ranks each level's
        efConstruction results exactly before the neighbour heuristic (which
        compares float rows): the codes published for search when they code the
        vectors themselves, else, for an add that at least doubles the graph,
        codes made for this add only (round_up(d, 32) bytes per vector, freed
        after). Small adds to a large graph walk the floats (encoding every
        row would cost more than it saves)."""
        if not self._sq8_build:
            return super()._build_walk(X, extra, n0)
        if type(extra) is _SQ8Codes and extra.sqp is not None and extra.proj is None:
            return extra.codes, True, extra.sqp, True
        if X.shape[0] - n0 < n0 or X.shape[0] < 2:
            return super()._build_walk(X, extra, n0)
        width = -(-self.d // SQ8_ROW_ALIGN) * SQ8_ROW_ALIGN
        sqp = sq8_range_params(X.min(axis=0), X.max(axis=0), width)
        return sq8_encode(X, sqp, width), True, sqp, True

    def _extra_take(self, extra: Any, rows: np.ndarray) -> Any:
        if extra is None:
            return None
        codes = _aligned.empty((rows.size, extra.codes.shape[1]), np.uint8)
        np.take(extra.codes, rows, axis=0, out=codes)
        return _SQ8Codes(codes, extra.sqp, extra.proj)

    def _pickle_knobs(self) -> list:
        """Settings FAISS's bytes have no place for, carried beside them by pickles
        (also when this index sits inside a wrapper); the codes are derived
        again on load. Projection first, so the codes are made once."""
        out = []
        if self._traversal_dims:
            out.append(("traversal_dims", self._traversal_dims))
        if self._sq8_traversal:
            out.append(("sq8_traversal", True))
        if not self._sq8_build:
            out.append(("sq8_build", False))
        return out


def _restore_with_sq8(fn, args, on: bool = True, dims: int = 0) -> IndexHNSWFlat:
    """Loads pickles written before the knobs travelled with every index."""
    index = fn(*args)
    index.traversal_dims = dims
    index.sq8_traversal = on
    return index


class IndexHNSWSQ(IndexHNSW):
    """HNSW graph over SQ8 codes (FAISS's ``IndexHNSWSQ``): 4x less vector memory.

    Needs ``train`` (per-dimension ranges) before ``add``. Traversal compares
    the float query with the codes directly. With ``rerank=True`` the float
    vectors are kept too and the ``k * k_factor`` best candidates are re-scored
    exactly (what FAISS's ``IndexRefineFlat`` wrapper does), which restores the
    recall lost to quantisation at the cost of the memory saved.

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.rand(2000, 16).astype("float32")
        >>> index = voisin.IndexHNSWSQ(16, 0, 16)   # qtype 0 = QT_8bit (SQ8), M = 16
        >>> index.train(xb); index.add(xb)
        >>> D, I = index.search(xb[:2], 3)
    """

    _sq = True

    def __init__(self, d: int, qtype: int = 0, M: int = 32, metric: int = METRIC_L2, *,
                 rerank: bool = False, k_factor: int = 4, seed: int = 12345):
        from ..codecs.sq import QT_8bit, ScalarQuantizer
        if check_int(qtype, "qtype") != QT_8bit:
            raise NotImplementedError(f"qtype: IndexHNSWSQ supports QT_8bit (SQ8) only, got {qtype}")
        self.sq = ScalarQuantizer(d, QT_8bit)
        self.rerank = bool(rerank)
        self.k_factor = check_int(k_factor, "k_factor", lo=1)
        super().__init__(d, M, metric, seed=seed)
        self.is_trained = False

    def _empty_storage(self) -> np.ndarray:
        return np.empty((0, self.d), dtype=np.uint8)

    def _train(self, x: np.ndarray) -> None:
        self.sq.train(x)
        _, a, b, _ = self.sq.tables()
        self._sqp = np.ascontiguousarray(np.stack([a - 0.5 * b, b, b * b]), dtype=np.float32)
        self.is_trained = True

    def _encode(self, x: np.ndarray) -> np.ndarray:
        return self.sq.encode(x)

    def _decode(self, rows: np.ndarray) -> np.ndarray:
        return self.sq.decode(rows)

    # with rerank, the float vectors live beside the codes, one row per graph node
    def _empty_extra(self) -> np.ndarray | None:
        return np.empty((0, self.d), dtype=np.float32) if self.rerank else None

    def _extra_for(self, extra: Any, x: np.ndarray, X: np.ndarray) -> Any:
        return None if extra is None else np.concatenate([extra, x])

    @property
    def _xf(self) -> np.ndarray:
        """The float vectors kept for rerank, one row per id (live vectors only)."""
        X, g, labels, slots, live, extra = self._snap
        if extra is None:
            return np.empty((0, self.d), dtype=np.float32)
        return extra if slots is None else extra[slots]

    def search(self, x: Any, k: int, params: SearchParameters | None = None, *,
               D: np.ndarray | None = None, I: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        if not self.rerank:
            return super().search(x, k, params, D=D, I=I)
        # rerank: the graph proposes k * k_factor candidates, exact distances decide
        k = check_k(k)
        xq = as_matrix(x, self.d, "x")
        params = self._check_params(params)
        self._check_trained()
        if self.ntotal == 0 or xq.shape[0] == 0:
            return super().search(xq, k, params, D=D, I=I)
        # one published state for both steps: node numbers, float rows and ids agree
        snap = self._snap
        xf, labels = snap[5], snap[2]
        if xf is None or xf.shape[0] != snap[1][3].size:
            raise RuntimeError("rerank: this IndexHNSWSQ did not keep its float vectors; "
                               "set rerank=True before adding (or construct with rerank=True)")
        Dc, Ic = self._search_snap(snap, xq, k * self.k_factor, params, None, None, False)
        safe = np.maximum(Ic, 0)
        if self.metric_type == METRIC_L2:
            cost = ((xf[safe] - xq[:, None, :]) ** 2).sum(-1)
        else:
            cost = -np.einsum("qd,qkd->qk", xq, xf[safe])
        cost[Ic < 0] = np.inf
        order = np.argsort(cost, axis=1, kind="stable")[:, :k]
        Iout = np.take_along_axis(Ic, order, 1)
        if labels is not None:
            Iout = np.where(Iout >= 0, labels[np.maximum(Iout, 0)], -1)
        Dout = np.take_along_axis(cost, order, 1).astype(np.float32)
        if self.metric_type != METRIC_L2:
            Dout = -Dout
        Dout[Iout < 0] = worst_distance(self.metric_type)
        if D is not None:
            check_out(D, Dout.shape, np.float32, "D")[:] = Dout
            Dout = D
        if I is not None:
            check_out(I, Iout.shape, np.int64, "I")[:] = Iout
            Iout = I
        return Dout, Iout

