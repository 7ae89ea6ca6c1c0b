"""IndexBinaryIDMap / IndexBinaryIDMap2: arbitrary int64 ids on a binary index.

The same contract as :class:`voisin.IndexIDMap` (and its read/write gate):
filters and ``remove_ids`` speak in user ids, an id added again replaces its
code, and both classes reconstruct by id (FAISS's IDMap2 does, its IDMap does
not; they differ only in the file tag).
"""

from __future__ import annotations

import numpy as np

from .binary import IndexBinary, check_binary_index
from .idmap import _Gated, _IdTable


class IndexBinaryIDMap(_Gated, _IdTable, IndexBinary):
    """Gives the codes of an empty, position-numbered binary ``index`` user ids.

    Example:
        >>> import numpy as np, voisin
        >>> index = voisin.IndexBinaryIDMap(voisin.IndexBinaryFlat(16))
        >>> index.add_with_ids(np.array([[1, 2], [3, 4]], np.uint8), np.array([10, 20]))
        >>> index.search(np.array([[3, 4]], np.uint8), 1)[1].tolist()
        [[20]]
    """

    _item = "code"

    def __init__(self, index: IndexBinary):
        check_binary_index(index)
        if index.ntotal != 0:
            raise ValueError(f"index: must be empty when wrapped in {type(self).__name__}, "
                             f"it holds {index.ntotal} codes")
        if getattr(index, "invlists", None) is not None or not getattr(index, "ids_are_positions", True):
            raise TypeError(f"index: {type(index).__name__} keeps its own ids; call "
                            "add_with_ids on it directly instead of wrapping it")
        super().__init__(index.d)
        self._init_ids(index)

    def set_id_map(self, ids: np.ndarray) -> None:
        """Install the ids of a loaded index (one per position of the wrapped index)."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if ids.size != self.index.ntotal:
            raise ValueError(f"ids: expected {self.index.ntotal} ids, got {ids.size}")
        self._ids = ids.copy()
        self.ntotal = ids.size
        self._sorted = None

    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        with self._gate.writing():
            self._add_locked(x, ids)

    def _search(self, x, k, params):
        with self._gate.reading():
            ids = self._ids
            D, I = self.index._search(x, k, self._translate(params))
        I = I.copy()
        valid = I >= 0
        I[valid] = ids[I[valid]]
        return D, I


class IndexBinaryIDMap2(IndexBinaryIDMap):
    """:class:`IndexBinaryIDMap` with FAISS's IDMap2 file tag (``IBM2``).

    Example:
        >>> import numpy as np, voisin
        >>> index = voisin.IndexBinaryIDMap2(voisin.IndexBinaryFlat(8))
        >>> index.add_with_ids(np.array([[5]], np.uint8), np.array([7]))
        >>> index.reconstruct(7).tolist()
        [5]
    """
