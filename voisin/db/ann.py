"""The ANN index of a collection: derived state over the vectors in SQLite.

It holds internal ids (dense int64) and answers top-k queries restricted to an
id set through voisin's selectivity-aware filtered search. ``index="auto"``
serves an exact ``Flat`` index while the collection is small and moves to
HNSW once it holds ``AUTO_HNSW_AT`` points (it does not move back while open); a factory
string is built as given, and one that needs training serves exactly until
the collection holds enough vectors to train it (``train_size``), then trains
on all of them.

Example:
    >>> import numpy as np
    >>> ann = AnnIndex(4, "cosine", "auto")
    >>> ann.add(np.array([7, 9]), np.eye(4, dtype="float32")[:2])
    >>> ann.description
    'auto: Flat (exact) below 4096 points'
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np

from ..metric import METRIC_INNER_PRODUCT, METRIC_L2

log = logging.getLogger("voisin.db")

#: ``index="auto"``: exact below this many points, HNSW from there on
AUTO_HNSW_AT = 4096
AUTO_HNSW = {"M": 16, "efConstruction": 100, "efSearch": 128}

METRICS = {"cosine": METRIC_INNER_PRODUCT, "dot": METRIC_INNER_PRODUCT, "euclid": METRIC_L2}
METRIC_ALIASES = {"cosine": "cosine", "dot": "dot", "ip": "dot", "inner_product": "dot",
                  "euclid": "euclid", "euclidean": "euclid", "l2": "euclid"}


def _wrap(index: Any) -> Any:
    """An index that takes arbitrary int64 ids: IVF does natively, IDMap wraps the rest."""
    from ..indexes.idmap import IndexIDMap, IndexIDMap2
    if isinstance(index, IndexIDMap) or getattr(index, "invlists", None) is not None:
        return index
    return IndexIDMap2(index)


def train_size(index: Any) -> int:
    """Vectors an untrained index waits for (FAISS's 39 per centroid, at least 1000)."""
    inner = getattr(index, "index", index)
    nlist = getattr(inner, "nlist", 0) or getattr(index, "nlist", 0)
    return max(1000, 39 * int(nlist)) if nlist else 10_000


class AnnIndex:
    """Internal ids -> vectors, searchable (see the module docstring)."""

    def __init__(self, dim: int, metric: str, spec: str, hnsw: dict | None = None):
        self.dim = dim
        self.metric = metric
        self.metric_type = METRICS[metric]
        self.spec = spec
        self.hnsw = dict(AUTO_HNSW, **(hnsw or {}))
        self.kind = "exact"        # "exact" until the target index is built
        self._gathered: dict = {}  # id(mask) -> (mask, id map state, mask in positions)
        self.index = self._exact()
        self._train_at = 0
        if spec != "auto":
            probe = self._target()  # a bad factory string fails here, at creation
            if probe.is_trained:
                self.index, self.kind = probe, "target"
            else:
                self._train_at = train_size(probe)
        self.description = self._describe()

    # --- construction ----------------------------------------------------------------
    def _exact(self) -> Any:
        from ..factory import index_factory
        return index_factory(self.dim, "IDMap2,Flat", self.metric_type)

    def _target(self) -> Any:
        from ..factory import index_factory
        if self.spec == "auto":
            index = index_factory(self.dim, f"HNSW{self.hnsw['M']},Flat", self.metric_type)
            index.hnsw.efConstruction = self.hnsw["efConstruction"]
            index.hnsw.efSearch = self.hnsw["efSearch"]
        else:
            index = index_factory(self.dim, self.spec, self.metric_type)
        return _wrap(index)

    def _describe(self) -> str:
        h = self.hnsw
        if self.spec == "auto":
            if self.kind == "exact":
                return f"auto: Flat (exact) below {AUTO_HNSW_AT} points"
            return (f"auto: HNSW{h['M']},Flat (M={h['M']}, efConstruction={h['efConstruction']}, "
                    f"efSearch={h['efSearch']}) from {AUTO_HNSW_AT} points on")
        if self.kind == "exact":
            return f"{self.spec}: Flat (exact) until {self._train_at} points to train it"
        return self.spec

    def wants_target(self, count: int) -> bool:
        """Whether the collection, at ``count`` points, should move to its target index."""
        if self.kind == "target":
            return False
        if self.spec == "auto":
            return count >= AUTO_HNSW_AT
        return count >= self._train_at

    def build(self, iids: np.ndarray, X: np.ndarray) -> None:
        """Replace the index by one holding exactly these vectors."""
        if self.wants_target(len(iids)) or self.kind == "target":
            index = self._target()
            if not index.is_trained:
                index.train(X)
            self.kind = "target"
        else:
            index = self._exact()
        if len(iids):
            index.add_with_ids(X, iids)
        self.index = index
        before, self.description = self.description, self._describe()
        if before != self.description:
            log.info("collection index: %s", self.description)

    def adopt(self, index: Any, kind: str) -> None:
        """Take an index read from a checkpoint."""
        self.index = index
        self.kind = kind
        self.description = self._describe()

    # --- maintenance -----------------------------------------------------------------
    @property
    def count(self) -> int:
        return int(self.index.ntotal)

    def add(self, iids: np.ndarray, X: np.ndarray) -> None:
        """Insert or replace these vectors."""
        if len(iids):
            self.index.add_with_ids(X, np.asarray(iids, dtype=np.int64))

    @contextmanager
    def staged_add(self, iids: np.ndarray, X: np.ndarray) -> Iterator[Callable[[], None]]:
        """:meth:`add` in two steps: entering inserts into the graph while searches go
        on (an HNSW target), the yielded call makes the vectors visible and is made
        under the collection's gate with the payloads. For the exact index, or when
        ids are replaced, the call does the whole add."""
        staged = getattr(self.index, "staged_add", None)
        if staged is None or not len(iids):
            yield lambda: self.add(iids, X)
            return
        with staged(X, np.asarray(iids, dtype=np.int64)) as publish:
            yield publish

    def remove(self, iids: np.ndarray) -> None:
        if len(iids):
            self.index.remove_ids(np.asarray(iids, dtype=np.int64))

    # --- search ---------------------------------------------------------------------
    def search(self, X: np.ndarray, k: int, mask: np.ndarray | None, allowed: int,
               ef: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` of each query among the ids where ``mask`` is set (None: all).

        Through an id map the filter is handed to the wrapped index in its own
        positions (one gather of the mask), rather than as an id set the map
        would test id by id; the collection's gate already keeps writers out.
        """
        from ..indexes.idmap import IndexIDMap
        index, id_map = self.index, None
        if isinstance(index, IndexIDMap):
            index, id_map = index.index, index.id_map
            if mask is not None:
                mask = self._positions_mask(mask, id_map)
        params = self._params(index, k, mask, allowed, ef)
        D, I = index.search(X, k, params=params)
        if id_map is not None:
            found = I >= 0
            I[found] = id_map[I[found]]
        return D, I

    def _positions_mask(self, mask: np.ndarray, id_map: np.ndarray) -> np.ndarray:
        """``mask[id_map]``, kept per mask: the collection shares one read-only mask per
        filter between two writes (PayloadStore.masked), and every write makes new
        masks, so a mask object never outlives the id map it was gathered for."""
        cache = self._gathered
        key = id(mask)
        hit = cache.get(key)
        state = (id(id_map.base if id_map.base is not None else id_map), id_map.size)
        if hit is None or hit[0] is not mask or hit[1] != state:
            if len(cache) >= max(1, min(64, (64 << 20) // max(1, mask.size))):  # <= ~64 MB
                cache.clear()
            gathered = mask[id_map]
            gathered.flags.writeable = False
            hit = cache[key] = (mask, state, gathered)
        return hit[2]

    def _params(self, index: Any, k: int, mask: np.ndarray | None, allowed: int,
                ef: int | None) -> Any:
        from .. import selector as S
        from ..indexes.hnsw import IndexHNSW, SearchParametersHNSW
        sel = None
        if mask is not None:
            # a short id list is cheaper to test than a bitmap over the whole space
            from ..indexes.idmap import _MaskSelector  # the mask as it is: no bit packing
            sel = (S.IDSelectorBatch(np.flatnonzero(mask)) if allowed * 64 < mask.size
                   else _MaskSelector(mask))
        if isinstance(index, IndexHNSW):
            return SearchParametersHNSW(efSearch=max(int(ef or index.hnsw.efSearch), k), sel=sel)
        return None if sel is None else S.SearchParameters(sel=sel)

    def scores(self, D: np.ndarray) -> np.ndarray:
        """Qdrant's scores: similarity for cosine / dot, distance for euclid."""
        if self.metric_type == METRIC_L2:
            return np.sqrt(np.maximum(D, 0.0))
        return D
