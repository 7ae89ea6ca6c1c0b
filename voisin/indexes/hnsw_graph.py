"""The HNSW graph as FAISS presents it (``index.hnsw``), its level draw, and walk scratch.

voisin keeps the graph in split arrays (level 0 as one (n, 2M) block, upper
levels as (rows, M) with a per-node row offset; :mod:`voisin.kernels.hnsw`);
:class:`HNSW` computes FAISS's views of the same graph (``levels``, ``offsets``,
``neighbors``, ``cum_nneighbor_per_level``, ``assign_probas``) exactly on demand,
and holds the knobs FAISS keeps there.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from .._validate import check_bool, check_int

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
        self._upper_beam = 1
        self._bounded_queue = True
        self._relative_distance = True
        self.assign_probas, self.cum_nneighbor_per_level = level_tables(self.M)
        self._reset_graph()

    def _reset_graph(self) -> None:
        # one tuple, replaced whole on every add, so a search reads a consistent graph
        self._g = (np.empty((0, 2 * self.M), np.int32), np.empty((0, self.M), np.int32),
                   np.empty(0, np.int64), np.empty(0, np.int32), np.array([-1, -1], np.int64))

    # FAISS's walk variants: voisin walks hnswlib's way (greedy descent of the
    # upper levels, a best-first level-0 search with an ef-bounded result list),
    # which is what FAISS's defaults do; other values are refused, not ignored
    @property
    def upper_beam(self) -> int:
        """Beam width on the upper levels: 1 (greedy descent), the only value voisin walks."""
        return self._upper_beam

    @upper_beam.setter
    def upper_beam(self, v: int) -> None:
        if check_int(v, "upper_beam") != 1:
            raise ValueError(f"upper_beam: voisin descends the upper levels greedily (beam 1); "
                             f"got {v}, which it does not implement")

    @property
    def search_bounded_queue(self) -> bool:
        """FAISS's bounded candidate queue: True, the only walk voisin implements."""
        return self._bounded_queue

    @search_bounded_queue.setter
    def search_bounded_queue(self, v: bool) -> None:
        if not check_bool(v, "search_bounded_queue"):
            raise ValueError("search_bounded_queue: voisin's walk keeps an efSearch-bounded queue; "
                             "False (FAISS's unbounded variant) is not implemented")

    @property
    def check_relative_distance(self) -> bool:
        """Stop when the best candidate is worse than the ef-th result: True, as FAISS's default."""
        return self._relative_distance

    @check_relative_distance.setter
    def check_relative_distance(self, v: bool) -> None:
        if not check_bool(v, "check_relative_distance"):
            raise ValueError("check_relative_distance: voisin's walk always stops on the relative "
                             "distance test; False (FAISS's fixed step count) is not implemented")

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


class Scratch(threading.local):
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
