"""Sharded indexes in one process: FAISS's IndexShards and IndexShardsIVF.

The database is split over shards; a search asks every shard for its top-k
(in parallel threads) and merges them exactly (kernels/merge.py), so a sharded
exact index answers exactly as one exact index over the union, ids, distances
and ties included.

Ids follow FAISS. With ``successive_ids=True`` (the default) each shard numbers
its own vectors 0.. and the global id of shard s's vector j is j plus the
number of vectors in the shards before s: the ids of one index over the
concatenation. With ``successive_ids=False`` the shards keep the ids they were
given (``add_with_ids``, or ntotal.. for ``add``), so they must take ids
(IndexIDMap, IVF indexes).

Departures from FAISS, each a FAISS limitation rather than a choice of
semantics: a selector (``SearchParameters(sel=...)``) speaks in global ids,
whereas FAISS hands it unchanged to each shard, which then compares it with
shard-local ids; and ``remove_ids``, ``range_search`` and ``reconstruct`` work
(FAISS's IndexShards raises "not implemented").
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from .._validate import check_int
from ..clustering import Kmeans
from ..index import Index
from ..metric import METRIC_INNER_PRODUCT
from ..selector import IDSelector, IDSelectorArray, IDSelectorBatch, IDSelectorRange, SearchParameters
from .ivf import IndexIVF
from ..range_results import concat_range_results
from .threaded import ThreadedIndex, merge_knn_results


class _ShiftedSelector(IDSelector):
    """``sel`` seen from a shard whose local id j is global id j + offset."""

    def __init__(self, sel: IDSelector, offset: int):
        self.sel = sel
        self.offset = offset

    def contains(self, ids: np.ndarray) -> np.ndarray:
        return self.sel.contains(ids + self.offset)


def shift_selector(sel: IDSelector, offset: int) -> IDSelector:
    """The selector a shard with id offset ``offset`` applies to its local ids.

    Ranges and id sets stay ranges and id sets, which the indexes' filter
    planners recognise (voisin/filtering.py); other selectors are wrapped."""
    if offset == 0:
        return sel
    if type(sel) is IDSelectorRange:
        return IDSelectorRange(sel.imin - offset, sel.imax - offset)
    if type(sel) in (IDSelectorBatch, IDSelectorArray):
        return type(sel)(sel.ids - offset)
    return _ShiftedSelector(sel, offset)


def _keeps_own_ids(index: Index) -> bool:
    """Whether removal leaves the other ids of ``index`` as they were (IVF, id
    maps) instead of renumbering positions 0..ntotal-1 (Flat, PQ, SQ, HNSW)."""
    flag = getattr(index, "ids_are_positions", None)
    if flag is not None:
        return not flag
    return hasattr(index, "invlists") or hasattr(index, "id_map")


def _params_for_shard(params: SearchParameters | None, offset: int) -> SearchParameters | None:
    if params is None or params.sel is None or offset == 0:
        return params
    inner = copy.copy(params)
    inner.sel = shift_selector(params.sel, offset)
    return inner


class IndexShards(ThreadedIndex):
    """Vectors split over sub-indexes (shards), searched in parallel and merged exactly.

    ``threaded`` runs the shards in parallel threads (FAISS's default is False;
    results are the same either way). See the module docstring for ids.

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).random((1000, 16), dtype="float32")
        >>> shards = voisin.IndexShards(16)
        >>> for _ in range(4):
        ...     shards.add_shard(voisin.IndexFlatL2(16))
        >>> shards.add(xb)
        >>> one = voisin.IndexFlatL2(16); one.add(xb)
        >>> bool((shards.search(xb[:5], 10)[1] == one.search(xb[:5], 10)[1]).all())
        True
    """

    _member = "shard"

    def __init__(self, d: int, threaded: bool = True, successive_ids: bool = True):
        super().__init__(d, threaded)
        self.successive_ids = bool(successive_ids)

    # --- membership (FAISS names) ----------------------------------------------
    def add_shard(self, index: Index) -> None:
        """Append a shard: same dimension and metric as the others."""
        self._add_member(index)

    def remove_shard(self, index: Index) -> None:
        self._remove_member(index)

    addIndex = add_shard
    removeIndex = remove_shard

    @property
    def ntotal(self) -> int:  # type: ignore[override]
        return sum(s.ntotal for s in self._subs) if hasattr(self, "_subs") else 0

    @ntotal.setter
    def ntotal(self, value: int) -> None:
        pass  # the sum over the shards

    def _offsets(self) -> np.ndarray:
        """Id offset of each shard: its local id 0 is this global id."""
        if not self.successive_ids:
            return np.zeros(len(self._subs), dtype=np.int64)
        sizes = np.array([s.ntotal for s in self._subs], dtype=np.int64)
        return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)

    # --- adding -----------------------------------------------------------------
    def _split_for_add(self, x: np.ndarray, ids: np.ndarray | None) -> np.ndarray | None:
        """Check FAISS's id rules; return the ids each row gets (None: shard-local)."""
        self._require_members()
        if self.successive_ids:
            if ids is not None:
                raise ValueError("ids: an IndexShards with successive_ids=True numbers the vectors "
                                 "itself; use successive_ids=False to pass ids")
            if self.ntotal:
                raise RuntimeError("IndexShards with successive_ids=True takes its vectors in a single "
                                   f"add() (it holds {self.ntotal}): a second add would renumber the "
                                   "later shards; use successive_ids=False to add in several calls")
            return None
        if ids is None:
            ids = np.arange(self.ntotal, self.ntotal + x.shape[0], dtype=np.int64)
        return ids

    @staticmethod
    def _bounds(n: int, nshard: int, no: int) -> tuple[int, int]:
        # FAISS's split: shard no gets rows [no*n/nshard, (no+1)*n/nshard)
        return no * n // nshard, (no + 1) * n // nshard

    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        ids = self._split_for_add(x, ids)
        n, nshard = x.shape[0], len(self._subs)

        def add(no: int, shard: Index) -> None:
            i0, i1 = self._bounds(n, nshard, no)
            if i1 == i0:
                return
            if ids is None:
                shard.add(x[i0:i1])
            else:
                shard.add_with_ids(x[i0:i1], ids[i0:i1])
        # a search must not see a later shard filled before an earlier one's
        # size (its id offset) is final
        with self._gate.exclusive():
            self._run(add)

    # --- search ---------------------------------------------------------------------
    def _search(self, x, k, params, D, I):
        self._require_members()
        coarse = self._coarse_for(x, params)
        with self._gate.shared():
            offsets = self._offsets()
            nq, nshard = x.shape[0], len(self._subs)
            Dall = np.empty((nshard, nq, k), dtype=np.float32)
            Iall = np.empty((nshard, nq, k), dtype=np.int64)

            def search(no: int, shard: Index) -> None:
                self._search_shard(shard, x, k, _params_for_shard(params, int(offsets[no])),
                                   coarse, Dall[no], Iall[no])
                if offsets[no]:
                    found = Iall[no] >= 0
                    Iall[no][found] += offsets[no]
            self._run(search)
        return merge_knn_results(Dall, Iall, self.metric_type, D, I, k)

    def _coarse_for(self, x: np.ndarray, params: SearchParameters | None) -> Any:
        """What a search computes once for all shards (IndexShardsIVF: the probes)."""
        return None

    def _search_shard(self, shard: Index, x: np.ndarray, k: int, params: SearchParameters | None,
                      coarse: Any, D: np.ndarray, I: np.ndarray) -> None:
        shard.search(x, k, params, D=D, I=I)

    def _range_search(self, x, radius, params):
        self._require_members()
        with self._gate.shared():
            offsets = self._offsets()

            def search(no: int, shard: Index) -> tuple:
                lims, D, I = shard.range_search(x, radius, _params_for_shard(params, int(offsets[no])))
                if offsets[no]:
                    I = np.where(I >= 0, I + offsets[no], I)
                return lims, D, I
            parts = self._run(search)
        return concat_range_results(parts, x.shape[0])

    # --- removal and reconstruction ------------------------------------------------------
    def _remove(self, sel: IDSelector) -> int:
        self._require_members()
        if self.successive_ids:
            kept = [type(s).__name__ for s in self._subs if _keeps_own_ids(s)]
            if kept:
                raise NotImplementedError(
                    f"remove_ids: the {kept[0]} shards keep their ids on removal, so with "
                    "successive_ids=True the ids of the later shards would shift under them; "
                    "build the IndexShards with successive_ids=False and add_with_ids")
        with self._gate.exclusive():
            offsets = self._offsets()  # the ids name the state before this call
            counts = self._run(lambda no, s: s.remove_ids(
                shift_selector(sel, int(offsets[no]))) if s.ntotal else 0)
        return int(sum(counts))

    def _reconstruct_keys(self, keys: np.ndarray) -> np.ndarray:
        self._require_members()
        with self._gate.shared():
            out = np.empty((keys.size, self.d), dtype=np.float32)
            if self.successive_ids:
                offsets = self._offsets()
                ends = offsets + np.array([s.ntotal for s in self._subs], dtype=np.int64)
                bad = (keys < 0) | (keys >= (ends[-1] if ends.size else 0))
                if bad.any():
                    raise ValueError(f"key: id {int(keys[bad][0])} is out of range [0, {int(ends[-1])})")
                owner = np.searchsorted(ends, keys, side="right")
                for no in np.unique(owner):
                    rows = np.flatnonzero(owner == no)
                    out[rows] = self._subs[no].reconstruct_batch(keys[rows] - offsets[no])
                return out
            # ids of their own: the shard that holds a key is the one that can rebuild it
            for r, key in enumerate(keys):
                for shard in self._subs:
                    try:
                        out[r] = shard.reconstruct(int(key))
                        break
                    except ValueError:
                        continue
                else:
                    raise ValueError(f"key: id {int(key)} is not in any shard")
            return out

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(d={self.d}, shards={len(self._subs)}, ntotal={self.ntotal}, "
                f"successive_ids={self.successive_ids})")


class IndexShardsIVF(IndexShards):
    """IVF shards that share one coarse quantizer: a batch is assigned to its
    lists once, then each shard scans only its own inverted lists
    (``search_preassigned`` / ``add_preassigned``). FAISS's IndexShardsIVF.

    Filtered searches (``SearchParameters(sel=...)``) are the exception: each
    shard runs its own filtered search, so voisin's filter policy (widened
    probing or an exact scan of the allowed entries, voisin/filtering.py) keeps
    the recall one index would have.

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).random((4000, 16), dtype="float32")
        >>> shards = voisin.IndexShardsIVF(voisin.IndexFlatL2(16), 32)
        >>> for _ in range(2):
        ...     shards.add_shard(voisin.IndexIVFFlat(voisin.IndexFlatL2(16), 16, 32))
        >>> shards.train(xb); shards.add(xb)
        >>> D, I = shards.search(xb[:3], 5, params=voisin.SearchParametersIVF(nprobe=4))
    """

    def __init__(self, quantizer: Index, nlist: int, threaded: bool = True, successive_ids: bool = True):
        if not isinstance(quantizer, Index):
            raise TypeError(f"quantizer: expected a voisin Index (e.g. IndexFlatL2(d)), got {quantizer!r}")
        super().__init__(quantizer.d, threaded, successive_ids)
        self.quantizer = quantizer
        self.nlist = check_int(nlist, "nlist", lo=1)

    def _check_new_member(self, index: Index) -> None:
        if not isinstance(index, IndexIVF):
            raise TypeError(f"index: IndexShardsIVF takes IVF shards (IndexIVFFlat, IndexIVFPQ, ...), "
                            f"got {type(index).__name__}")
        if index.nlist != self.nlist:
            raise ValueError(f"index: expected a shard with nlist={self.nlist}, got nlist={index.nlist}")

    @property
    def nprobe(self) -> int:
        """The first shard's nprobe (set it on every shard through this attribute)."""
        return self._subs[0].nprobe if self._subs else 1

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        for s in self._subs:
            s.nprobe = value

    @property
    def is_trained(self) -> bool:  # type: ignore[override]
        return self._quantizer_ready() and all(s.is_trained for s in self._subs)

    @is_trained.setter
    def is_trained(self, value: bool) -> None:
        pass

    def _quantizer_ready(self) -> bool:
        return bool(self.quantizer.is_trained) and self.quantizer.ntotal == self.nlist

    # --- training: the quantizer once, its centroids copied into every shard ----------
    def _train(self, x: np.ndarray) -> None:
        self._require_members()
        if not self._quantizer_ready():
            if x.shape[0] < self.nlist:
                raise ValueError(f"x: training an IVF with nlist={self.nlist} needs at least "
                                 f"{self.nlist} vectors, got {x.shape[0]}")
            # k-means as the first shard would run it (its ClusteringParameters)
            cp = self._subs[0].cp.as_kwargs()
            cp["spherical"] = cp.get("spherical") or self.metric_type == METRIC_INNER_PRODUCT
            km = Kmeans(self.d, self.nlist, **{**cp, "update_index": False})
            km.train(x)
            self.quantizer.reset()
            self.quantizer.train(km.centroids)
            self.quantizer.add(km.centroids)
        centroids = self.quantizer.reconstruct_n(0, self.nlist)

        def train(no: int, shard: IndexIVF) -> None:
            q = shard.quantizer
            if q is not self.quantizer:
                q.reset()
                q.train(centroids)
                q.add(centroids)
            if not shard.is_trained:
                shard.train(x)  # the quantizer is ready: this trains the codec only
        self._run(train)

    # --- adding and searching through the shared quantizer -----------------------------
    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        ids = self._split_for_add(x, ids)
        if not self._quantizer_ready():
            raise RuntimeError("IndexShardsIVF is not trained: call train(x) first")
        n, nshard = x.shape[0], len(self._subs)
        list_nos = np.ascontiguousarray(self.quantizer.assign(x, 1)[:, 0])

        def add(no: int, shard: IndexIVF) -> None:
            i0, i1 = self._bounds(n, nshard, no)
            if i1 == i0:
                return
            own = ids[i0:i1] if ids is not None else \
                np.arange(shard.ntotal, shard.ntotal + i1 - i0, dtype=np.int64)
            with shard._write_lock:
                shard.add_preassigned(x[i0:i1], own, list_nos[i0:i1])
        with self._gate.exclusive():
            self._run(add)

    def _coarse_for(self, x, params):
        if params is not None and params.sel is not None:
            return None  # each shard plans its own filtered search
        nprobe = getattr(params, "nprobe", None)
        nprobe = check_int(self._subs[0].nprobe if nprobe is None else nprobe, "nprobe", lo=1)
        return self.quantizer.search(x, min(nprobe, self.nlist))

    def _search_shard(self, shard, x, k, params, coarse, D, I):
        if coarse is None:
            shard.search(x, k, params, D=D, I=I)
            return
        Dq, Iq = coarse
        D[:], I[:] = shard.search_preassigned(x, k, Iq, Dq, params)
