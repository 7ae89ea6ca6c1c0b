"""FAISS's ``IDSelectorTranslated`` and ``PyCallbackIDSelector``.

``IDSelectorTranslated(id_map, sel)`` selects position i when ``sel`` selects
``id_map[i]``: it filters the index *inside* an IndexIDMap by the external
ids. ``PyCallbackIDSelector(fn)`` asks a Python function about one id at a
time, as FAISS does; :class:`voisin.IDSelectorFunction` is its vectorised,
much faster counterpart (one call per search with an array of ids).

Example:
    >>> import numpy as np, voisin
    >>> index = voisin.IndexIDMap(voisin.IndexFlatL2(2))
    >>> index.add_with_ids(np.eye(2, dtype="float32"), np.array([10, 20]))
    >>> sel = voisin.IDSelectorTranslated(index, voisin.IDSelectorBatch([20]))
    >>> D, I = index.index.search(np.eye(2, dtype="float32")[:1], 1,
    ...                           params=voisin.SearchParameters(sel=sel))
    >>> I.tolist()  # position 1 of the inner index holds id 20
    [[1]]
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ._validate import as_ids
from .selector import IDSelector, check_selector


class IDSelectorTranslated(IDSelector):
    """Select position ``i`` when ``sel`` selects ``id_map[i]``.

    ``id_map`` is an int64 array (e.g. ``index.id_map``) or an IndexIDMap,
    whose current id map is then used at each search. Positions outside the
    map are not selected.
    """

    def __init__(self, id_map: Any, sel: IDSelector):
        from .indexes.idmap import IndexIDMap
        self.sel = check_selector(sel, "sel")
        if isinstance(id_map, IndexIDMap):
            self._index: Any = id_map
            self._ids = None
        else:
            self._index = None
            self._ids = as_ids(np.asarray(id_map), name="id_map", allow_minus_one=True)

    @property
    def id_map(self) -> np.ndarray:
        return self._index.id_map if self._index is not None else self._ids

    def contains(self, ids: np.ndarray) -> np.ndarray:
        id_map = self.id_map
        inside = (ids >= 0) & (ids < id_map.size)
        out = np.zeros(len(ids), dtype=bool)
        if inside.any():
            out[inside] = self.sel.contains(id_map[ids[inside]])
        return out

    def mask_sequential(self, n: int) -> np.ndarray:
        id_map = self.id_map
        m = min(n, id_map.size)
        mask = np.zeros(n, dtype=bool)
        mask[:m] = self.sel.contains(np.ascontiguousarray(id_map[:m]))
        return mask

    def __repr__(self) -> str:
        return f"IDSelectorTranslated({self.id_map.size} ids, {self.sel!r})"


class PyCallbackIDSelector(IDSelector):
    """Select the ids for which ``callback(id) -> bool`` is true, one call per id.

    Slow by nature (a Python call per stored vector scanned); prefer
    :class:`voisin.IDSelectorFunction`, which takes an array of ids.
    """

    def __init__(self, callback: Callable[[int], Any]):
        if not callable(callback):
            raise TypeError(f"callback: expected a function id -> bool, got {callback!r}")
        self.callback = callback

    def contains(self, ids: np.ndarray) -> np.ndarray:
        return np.fromiter((bool(self.callback(i)) for i in ids.tolist()), dtype=bool,
                           count=len(ids))

    def is_member(self, id: int) -> bool:
        return bool(self.callback(int(id)))
