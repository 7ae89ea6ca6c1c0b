"""IndexRandom: FAISS's test index, which returns random results.

It stores nothing: ``ntotal`` is a number that ``add`` increases, a search
draws k distinct ids in [0, ntotal) and increasing distances from a generator
seeded by ``seed`` and the query's bits (so the same query always gets the
same answer), and ``reconstruct(i)`` draws d uniform values from
``seed + 123332 + i``. Results equal faiss's for the same arguments.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import check_int
from ..index import Index
from ..metric import METRIC_L2, is_similarity
from ..selector import SearchParameters


class IndexRandom(Index):
    """Random results, reproducibly (FAISS's ``IndexRandom``): for testing
    code that consumes search results without building an index.

    Differences from FAISS: ``reconstruct`` checks that the id is in
    [0, ntotal) (FAISS draws a vector for any id).

    Example:
        >>> import numpy as np, voisin
        >>> index = voisin.IndexRandom(8, 1000, seed=1234)
        >>> D, I = index.search(np.ones((2, 8), np.float32), 3)
        >>> bool((I[0] == I[1]).all()), bool((np.diff(D, axis=1) > 0).all())
        (True, True)
    """

    def __init__(self, d: int, ntotal: int = 0, seed: int = 1234, metric: int = METRIC_L2):
        super().__init__(d, metric)
        self.ntotal = check_int(ntotal, "ntotal", lo=0, hi=1 << 62)
        self.seed = check_int(seed, "seed")

    def _state(self) -> np.ndarray:
        return np.empty(625, dtype=np.uint32)

    def search(self, x: Any, k: int, params: SearchParameters | None = None, *,
               D: np.ndarray | None = None, I: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        if params is not None:
            raise NotImplementedError("IndexRandom takes no search parameters (as FAISS)")
        if check_int(k, "k", lo=1) > self.ntotal:
            raise ValueError(f"k: IndexRandom draws k distinct ids among ntotal={self.ntotal}, "
                             f"so k must be <= ntotal, got {k}")
        return super().search(x, k, None, D=D, I=I)

    def _search(self, x, k, params, D, I):
        from ..kernels.random_index import random_search
        n = x.shape[0]
        D = np.empty((n, k), dtype=np.float32) if D is None else D
        I = np.empty((n, k), dtype=np.int64) if I is None else I
        random_search(x.view(np.uint32), np.uint64(self.seed % (1 << 64)), self.ntotal,
                      is_similarity(self.metric_type), self._state(), D, I)
        return D, I

    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        if ids is not None:
            raise NotImplementedError("IndexRandom draws ids in [0, ntotal) and cannot take ids")
        self.ntotal += x.shape[0]

    def _reconstruct_keys(self, keys: np.ndarray) -> np.ndarray:
        from ..kernels.random_index import random_vector
        bad = (keys < 0) | (keys >= self.ntotal)
        if bad.any():
            raise ValueError(f"key: id {int(keys[bad][0])} is out of range [0, {self.ntotal})")
        out = np.empty((keys.shape[0], self.d), dtype=np.float32)
        state = self._state()
        for row, key in zip(out, keys.tolist()):
            random_vector(np.uint64((self.seed + 123332 + key) % (1 << 64)), row, state)
        return out

    def _reset(self) -> None:
        self.ntotal = 0
