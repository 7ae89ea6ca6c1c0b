"""IndexBinaryIDMap / IndexBinaryIDMap2: arbitrary int64 ids on a binary index.

The same contract as :class:`voisin.IndexIDMap` (and its read/write gate):
filters and ``remove_ids`` speak in user ids, an id added again replaces its
code, and both classes reconstruct by id (FAISS's IDMap2 does, its IDMap does
not; they differ only in the file tag).
"""

from __future__ import annotations

import copy

import numpy as np

from ..selector import IDSelector, SearchParameters
from .binary import IndexBinary, check_binary_index
from .idmap import _Gated, _MaskSelector, _ReadWriteGate


class IndexBinaryIDMap(_Gated, IndexBinary):
    """Gives the codes of an empty, position-numbered binary ``index`` user ids.

    Example:
        >>> import numpy as np, voisin
        >>> index = voisin.IndexBinaryIDMap(voisin.IndexBinaryFlat(16))
        >>> index.add_with_ids(np.array([[1, 2], [3, 4]], np.uint8), np.array([10, 20]))
        >>> index.search(np.array([[3, 4]], np.uint8), 1)[1].tolist()
        [[20]]
    """

    def __init__(self, index: IndexBinary):
        check_binary_index(index)
        if index.ntotal != 0:
            raise ValueError(f"index: must be empty when wrapped in {type(self).__name__}, "
                             f"it holds {index.ntotal} codes")
        if getattr(index, "invlists", None) is not None or not getattr(index, "ids_are_positions", True):
            raise TypeError(f"index: {type(index).__name__} keeps its own ids; call "
                            "add_with_ids on it directly instead of wrapping it")
        super().__init__(index.d)
        self.index = index
        self.params_type = index.params_type
        self._ids = np.empty(0, dtype=np.int64)
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None
        self._gate = _ReadWriteGate()

    @property
    def is_trained(self) -> bool:  # type: ignore[override]
        return self.index.is_trained

    @is_trained.setter
    def is_trained(self, value: bool) -> None:
        pass  # follows the wrapped index

    @property
    def id_map(self) -> np.ndarray:
        """External id of each position of the wrapped index (read-only view)."""
        v = self._ids[:self.ntotal]
        v.flags.writeable = False
        return v

    def set_id_map(self, ids: np.ndarray) -> None:
        """Install the ids of a loaded index (one per position of the wrapped index)."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if ids.size != self.index.ntotal:
            raise ValueError(f"ids: expected {self.index.ntotal} ids, got {ids.size}")
        self._ids = ids.copy()
        self.ntotal = ids.size
        self._sorted = None

    def add(self, x) -> None:
        raise NotImplementedError(f"{type(self).__name__}.add: every code needs an id, "
                                  "call add_with_ids(x, ids)")

    def _train(self, x: np.ndarray) -> None:
        self.index._train(x)
        self.index.is_trained = True

    def _positions(self, keys: np.ndarray) -> np.ndarray:
        n = self.ntotal
        if n == 0:
            return np.full(keys.shape, -1, dtype=np.int64)
        if self._sorted is None:
            order = np.argsort(self._ids[:n], kind="stable")
            self._sorted = (self._ids[:n][order], order)
        sids, order = self._sorted
        pos = np.searchsorted(sids, keys)
        pos[pos == n] = 0
        return np.where(sids[pos] == keys, order[pos], -1)

    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        with self._gate.writing():
            ids = ids.copy()
            existing = self._positions(ids)
            if (existing >= 0).any():
                x = x.copy()
                self._remove_positions(existing[existing >= 0])
            n0 = self.ntotal
            self.index._add(x, None)
            need = n0 + ids.size
            if need > self._ids.size:
                grown = np.empty(max(need, 2 * self._ids.size, 1024), dtype=np.int64)
                grown[:n0] = self._ids[:n0]
                self._ids = grown
            self._ids[n0:need] = ids
            self.ntotal = need
            self._sorted = None

    def _translate(self, params: SearchParameters | None) -> SearchParameters | None:
        if params is None or params.sel is None:
            return params
        inner = copy.copy(params)
        inner.sel = _MaskSelector(params.sel.contains(self._ids[:self.ntotal]))
        return inner

    def _search(self, x, k, params):
        with self._gate.reading():
            ids = self._ids
            D, I = self.index._search(x, k, self._translate(params))
        I = I.copy()
        valid = I >= 0
        I[valid] = ids[I[valid]]
        return D, I

    def _range_search(self, x, radius, params):
        with self._gate.reading():
            ids = self._ids
            lims, D, I = self.index._range_search(x, radius, self._translate(params))
        return lims, D, ids[I]

    def _remove_positions(self, pos: np.ndarray) -> int:
        n = self.ntotal
        mask = np.zeros(n, dtype=bool)
        mask[pos] = True
        removed = self.index._remove(_MaskSelector(mask))
        kept = self._ids[:n][~mask]
        self._ids[:kept.size] = kept
        self.ntotal = self.index.ntotal
        self._sorted = None
        return removed

    def _remove(self, sel: IDSelector) -> int:
        mask = sel.contains(self._ids[:self.ntotal])
        if not mask.any():
            return 0
        with self._gate.writing():
            return self._remove_positions(np.flatnonzero(mask))

    def _reconstruct_keys(self, keys: np.ndarray) -> np.ndarray:
        with self._gate.reading():
            pos = self._positions(keys)
            if (pos < 0).any():
                raise ValueError(f"key: id {int(keys[pos < 0][0])} is not in the index")
            return self.index._reconstruct_keys(pos)

    def reconstruct_n(self, i0: int = 0, ni: int | None = None) -> np.ndarray:
        """Codes at positions i0 .. i0+ni-1 of the wrapped index (not ids)."""
        with self._gate.reading():
            return self.index.reconstruct_n(i0, ni)

    def _reset(self) -> None:
        with self._gate.writing():
            self.index._reset()
            self.ntotal = 0
            self._ids = np.empty(0, dtype=np.int64)
            self._sorted = None


class IndexBinaryIDMap2(IndexBinaryIDMap):
    """:class:`IndexBinaryIDMap` with FAISS's IDMap2 file tag (``IBM2``).

    Example:
        >>> import numpy as np, voisin
        >>> index = voisin.IndexBinaryIDMap2(voisin.IndexBinaryFlat(8))
        >>> index.add_with_ids(np.array([[5]], np.uint8), np.array([7]))
        >>> index.reconstruct(7).tolist()
        [5]
    """
