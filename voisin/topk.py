"""Top-k of arbitrary tables: FAISS's ``kmin``, ``kmax`` and ``ResultHeap``.

The answers are FAISS's own, ties included (kernels/result_heap.py says why
that needs FAISS's heap rules rather than a sort).

Example:
    >>> import numpy as np, voisin
    >>> D, I = voisin.kmin(np.array([[3.0, 1.0, 2.0]]), 2)
    >>> D.tolist(), I.tolist()
    ([[1.0, 2.0]], [[1, 2]])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validate import as_ids, as_matrix, check_int, check_k
from .metric import FLOAT32_MAX as FLT_MAX

_NO_IDS = np.zeros((1, 1), dtype=np.int64)


def _as_table(x: Any, name: str, ncols: int | None = None) -> np.ndarray:
    """A 2-D float32 table; +-inf are values like any other, NaN has no order."""
    arr = as_matrix(x, ncols, name, allow_1d=False, check_finite=False)
    if arr.size and np.isnan(arr).any():
        raise ValueError(f"{name}: contains NaN (first at index "
                         f"{tuple(int(i) for i in np.argwhere(np.isnan(arr))[0])}), "
                         "which has no order")
    return arr


def _top(array: Any, k: int, keep_max: bool) -> tuple[np.ndarray, np.ndarray]:
    from .kernels import result_heap as K
    a = _as_table(array, "array")
    k = check_k(k)
    neutral = np.float32(-FLT_MAX if keep_max else FLT_MAX)
    D = np.full((a.shape[0], k), neutral, dtype=np.float32)
    I = np.full((a.shape[0], k), -1, dtype=np.int64)
    K.addn(D, I, a, _NO_IDS, False, keep_max)
    K.reorder(D, I, keep_max, neutral)
    return D, I


def kmin(array: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` smallest values of each row of ``array`` and their column
    numbers, ascending; ``(FLT_MAX, -1)`` where a row has fewer than k."""
    return _top(array, k, False)


def kmax(array: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest values of each row and their column numbers,
    descending; ``(-FLT_MAX, -1)`` where a row has fewer than k."""
    return _top(array, k, True)


class ResultHeap:
    """Keep the ``k`` best (distance, id) results of ``nq`` queries over
    several partial searches (FAISS's ``ResultHeap``); read ``D`` and ``I``
    after :meth:`finalize`.

    Example:
        >>> import numpy as np, voisin
        >>> rh = voisin.ResultHeap(1, 2)
        >>> rh.add_result(np.array([[3.0, 1.0]]), np.array([[30, 10]]))
        >>> rh.add_result(np.array([[2.0, 5.0]]), np.array([[20, 50]]))
        >>> rh.finalize(); rh.I.tolist()
        [[10, 20]]
    """

    def __init__(self, nq: int, k: int, keep_max: bool = False):
        self.nq = check_int(nq, "nq", lo=0)
        self.k = check_k(k)
        self.keep_max = bool(keep_max)
        self._neutral = np.float32(-FLT_MAX if self.keep_max else FLT_MAX)
        # D and I hold the heaps in FAISS's layout until finalize() sorts them
        self.D = np.full((self.nq, self.k), self._neutral, dtype=np.float32)
        self.I = np.full((self.nq, self.k), -1, dtype=np.int64)

    def _results(self, D: Any, I: Any, nrows: int) -> tuple[np.ndarray, np.ndarray]:
        D = _as_table(D, "D")
        if D.shape[0] != nrows:
            raise ValueError(f"D: expected {nrows} rows of results, got shape {D.shape}")
        ids = np.asarray(I)
        if ids.ndim == 1 and ids.shape[0] == D.shape[1]:
            ids = ids.reshape(1, -1)
        elif ids.shape != D.shape:
            raise ValueError(f"I: expected shape {D.shape} (or ({D.shape[1]},) shared by all rows), "
                             f"got {ids.shape}")
        ids = as_ids(ids.reshape(-1), name="I", allow_minus_one=True).reshape(ids.shape)
        return D, ids

    def add_result(self, D: Any, I: Any) -> None:
        """Merge results ``D``, ``I`` of shape (nq, kd), in any order."""
        from .kernels import result_heap as K
        D, I = self._results(D, I, self.nq)
        K.addn(self.D, self.I, D, I, True, self.keep_max)

    def add_result_subset(self, subset: Any, D: Any, I: Any) -> None:
        """Merge results for the queries ``subset`` (nsubset,); ``I`` may be a
        single (kd,) row of ids shared by all of them."""
        from .kernels import result_heap as K
        subset = as_ids(subset, name="subset", allow_minus_one=True)
        if subset.size and (subset.min() < 0 or subset.max() >= self.nq):
            raise ValueError(f"subset: query numbers must lie in [0, {self.nq})")
        D, I = self._results(D, I, subset.size)
        K.addn_rows(self.D, self.I, subset, D, I, self.keep_max)

    def finalize(self) -> None:
        """Sort every row best first (results with id -1 go last)."""
        from .kernels import result_heap as K
        K.reorder(self.D, self.I, self.keep_max, self._neutral)
