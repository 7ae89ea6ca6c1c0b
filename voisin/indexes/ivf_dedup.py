"""IndexIVFFlatDedup: IVF-Flat that stores one copy of exact duplicates.

FAISS's ``IndexIVFFlatDedup``. ``add`` compares each vector byte for byte
with the vectors already in its list: a new one is stored, a duplicate is not
stored but remembered in ``instances`` (FAISS's multimap stored id ->
duplicate ids). A search scans the stored vectors and then lists every result
followed by its duplicates at the same distance, cut at k.

FAISS semantics kept on purpose:

* ``ntotal`` counts every added vector, duplicates included;
* ``train`` runs k-means on the distinct training vectors (first occurrences,
  in order);
* ``remove_ids`` returns (and subtracts from ``ntotal``) only the stored
  entries that disappear: a removed stored vector whose duplicate survives is
  kept under that duplicate's id, and removed duplicates are not counted;
* a filter (``sel``) applies to the stored ids; the duplicates of an allowed
  result come with it;
* no direct map (``make_direct_map`` raises), no range search.

voisin adds ``reconstruct`` (FAISS raises "not implemented"): a duplicate's id
gives its stored copy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..index import Index
from ..kernels import ivf_dedup as KD
from ..metric import METRIC_L2
from ..selector import IDSelector, SearchParameters
from .ivf import DirectMap, IndexIVFFlat

_EMPTY = np.empty(0, dtype=np.int64)


def _distinct_rows(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` that are the first occurrence of their bytes, in order."""
    if x.shape[0] == 0:
        return x
    raw = np.ascontiguousarray(x).view(np.uint8).reshape(x.shape[0], -1)
    keys = raw.view(np.dtype((np.void, raw.shape[1]))).ravel()
    _, first = np.unique(keys, return_index=True)
    return x[np.sort(first)]


class IndexIVFFlatDedup(IndexIVFFlat):
    """IVF-Flat storing each set of exact duplicates once (FAISS IndexIVFFlatDedup).

    ``instances``: dict stored id -> list of the ids of its duplicates, in the
    order they were added (FAISS's multimap, whose searches and files list
    them newest first).

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).random((2000, 8), dtype="float32")
        >>> xb[1000:] = xb[:1000]                    # every vector twice
        >>> index = voisin.IndexIVFFlatDedup(voisin.IndexFlatL2(8), 8, 16)
        >>> index.train(xb); index.add(xb)
        >>> index.ntotal, index.invlists.ntotal
        (2000, 1000)
        >>> D, I = index.search(xb[:1], 2)
        >>> sorted(I[0].tolist())
        [0, 1000]
    """

    def __init__(self, quantizer: Index | None = None, d: int | None = None, nlist: int = 1,
                 metric: int = METRIC_L2):
        super().__init__(quantizer, d, nlist, metric)
        self.instances: dict[int, list[int]] = {}
        self._table = None

    # --- the duplicate table ----------------------------------------------
    def _dup_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(keys sorted, starts, counts, values) of ``instances``, kept until a write."""
        table = self._table
        if table is None:
            keys = np.array(sorted(self.instances), dtype=np.int64)
            # FAISS's unordered_multimap puts a new duplicate in front of
            # its group: equal_range (search order, file order) is newest first
            vals = [self.instances[int(k)][::-1] for k in keys]
            counts = np.array([len(v) for v in vals], dtype=np.int64)
            starts = np.cumsum(counts) - counts
            values = np.array([i for v in vals for i in v], dtype=np.int64)
            table = self._table = (keys, starts, counts, values if values.size else _EMPTY)
        return table

    def _changed(self) -> None:
        self._table = None
        self.direct_map.invalidate()

    def instance_pairs(self) -> np.ndarray:
        """(n, 2) int64 pairs (stored id, duplicate id), each stored id's duplicates
        newest first (FAISS's equal_range order, which its files hold)."""
        keys, starts, counts, values = self._dup_table()
        return np.stack([np.repeat(keys, counts), values], axis=1) if values.size else \
            np.empty((0, 2), dtype=np.int64)

    def set_instance_pairs(self, pairs: np.ndarray) -> None:
        """Replace ``instances`` by (stored id, duplicate id) pairs inserted in the given
        order (as FAISS reads a file: each group comes back in reverse)."""
        inst: dict[int, list[int]] = {}
        for a, b in np.asarray(pairs, dtype=np.int64).reshape(-1, 2).tolist():
            inst.setdefault(a, []).append(b)
        self.instances = inst
        self._changed()

    # --- training and adding ----------------------------------------------
    def _train(self, x: np.ndarray) -> None:
        distinct = _distinct_rows(x)
        if self.verbose:
            print(f"IndexIVFFlatDedup::train: train on {distinct.shape[0]} points after dedup "
                  f"(was {x.shape[0]} points)")
        super()._train(distinct)

    def make_direct_map(self, new_maintain: bool = True) -> None:
        if new_maintain:
            raise ValueError("new_maintain: IndexIVFFlatDedup has no direct map (FAISS's rule)")
        super().make_direct_map(False)

    def set_direct_map_type(self, type: int) -> None:
        if type != DirectMap.NoMap:
            raise ValueError("type: IndexIVFFlatDedup has no direct map (FAISS's rule)")
        super().set_direct_map_type(type)

    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        if self.direct_map.type != DirectMap.NoMap:
            raise ValueError("IndexIVFFlatDedup: add is not implemented with a direct map")
        n = x.shape[0]
        if ids is None:
            ids = np.arange(self.ntotal, self.ntotal + n, dtype=np.int64)
        list_nos = self._assign1(x)
        codes = self._encode(x, list_nos)
        il = self.invlists
        rows, lists = il.used_rows()
        near = np.isin(lists, np.unique(list_nos))
        rows, lists = rows[near], lists[near]
        e = rows.size
        # (list number, vector bytes) of the stored entries of the touched
        # lists, then of the new vectors: the first occurrence of each key is
        # the copy that is (or gets) stored
        key = np.empty((e + n, 8 + self.code_size), dtype=np.uint8)
        key[:e, :8] = lists.astype("<i8").view(np.uint8).reshape(e, 8)
        key[:e, 8:] = il.codes[rows]
        key[e:, :8] = list_nos.astype("<i8").view(np.uint8).reshape(n, 8)
        key[e:, 8:] = codes
        _, first, inverse = np.unique(key.view(np.dtype((np.void, key.shape[1]))).ravel(),
                                      return_index=True, return_inverse=True)
        src = first[inverse.ravel()][e:]
        stored = src == np.arange(e, e + n)
        dup = np.flatnonzero(~stored)
        if dup.size:
            old_ids = il.ids[rows]
            first_of = src[dup]
            old = first_of < e
            owner = np.empty(dup.size, dtype=np.int64)
            owner[old] = old_ids[first_of[old]]
            owner[~old] = ids[first_of[~old] - e]
            for a, b in zip(owner.tolist(), ids[dup].tolist()):
                self.instances.setdefault(a, []).append(b)
        if self.verbose:
            print(f"IndexIVFFlat::add_with_ids: added {n} / {n} vectors "
                  f"(out of which {dup.size} are duplicates)")
        self._changed()
        il.add_entries(list_nos[stored], codes[stored], ids[stored])
        self.ntotal += n

    # --- search -------------------------------------------------------------
    def _expand(self, D: np.ndarray, I: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.instances:
            keys, starts, counts, values = self._dup_table()
            KD.expand_duplicates(D, I, keys, starts, counts, values)
        return D, I

    def _search(self, x, k, params, D, I):
        D, I = super()._search(x, k, params, D, I)
        return self._expand(D, I)

    def search_preassigned(self, x: Any, k: int, assign: Any, centroid_dis: Any = None,
                           params: SearchParameters | None = None) -> tuple[np.ndarray, np.ndarray]:
        D, I = super().search_preassigned(x, k, assign, centroid_dis, params)
        return self._expand(D, I)

    def _range_search(self, x, radius, params):
        raise NotImplementedError("IndexIVFFlatDedup does not implement range_search (neither does FAISS)")

    def range_search_preassigned(self, *args, **kwargs):
        raise NotImplementedError("IndexIVFFlatDedup does not implement range_search (neither does FAISS)")

    # --- removal, reconstruction --------------------------------------------
    def _remove(self, sel: IDSelector) -> int:
        # the duplicates first, in the multimap's order (FAISS's loop)
        pairs = self.instance_pairs()
        replace: dict[int, int] = {}
        if pairs.size:
            gone_a = sel.contains(np.ascontiguousarray(pairs[:, 0]))
            gone_b = sel.contains(np.ascontiguousarray(pairs[:, 1]))
            kept: list[tuple[int, int]] = []
            toadd: list[tuple[int, int]] = []
            for (a, b), ga, gb in zip(pairs.tolist(), gone_a.tolist(), gone_b.tolist()):
                if ga:
                    if not gb:
                        if a not in replace:
                            replace[a] = b
                        else:
                            toadd.append((replace[a], b))
                elif not gb:
                    kept.append((a, b))
            inst: dict[int, list[int]] = {}
            for a, b in kept:  # newest first: back to insertion order below
                inst.setdefault(a, []).append(b)
            for lst in inst.values():
                lst.reverse()
            for a, b in toadd:
                inst.setdefault(a, []).append(b)
            self.instances = inst
        self._changed()
        # then the lists, in FAISS's order (a removed entry takes the last one)
        il = self.invlists
        codes, ids, offsets, sizes = il.snapshot()
        rep_keys = np.array(sorted(replace), dtype=np.int64)
        rep_vals = np.array([replace[k] for k in rep_keys.tolist()], dtype=np.int64)
        new_codes, new_ids, new_sizes = [], [], np.zeros(self.nlist, dtype=np.int64)
        nremove = 0
        for l in range(self.nlist):
            o, s = int(offsets[l]), int(sizes[l])
            lid = ids[o:o + s]
            member = sel.contains(lid) if s else np.zeros(0, dtype=bool)
            if s and member.any():
                has = np.isin(lid, rep_keys)
                order = KD.removal_order(np.ascontiguousarray(member, dtype=np.bool_),
                                         np.ascontiguousarray(member & has, dtype=np.bool_))
                c, i = codes[o:o + s][order], lid[order].copy()
                swap = np.flatnonzero(member[order])
                if swap.size:
                    i[swap] = rep_vals[np.searchsorted(rep_keys, i[swap])]
                nremove += s - order.size
            else:
                c, i = codes[o:o + s], lid
            new_codes.append(c)
            new_ids.append(i)
            new_sizes[l] = c.shape[0]
        if new_codes:
            all_codes = np.concatenate(new_codes).reshape(-1, self.code_size)
            all_ids = np.concatenate(new_ids).astype(np.int64)
        else:
            all_codes = np.empty((0, self.code_size), dtype=np.uint8)
            all_ids = _EMPTY
        new_offsets = np.cumsum(new_sizes) - new_sizes
        il._state = (np.ascontiguousarray(all_codes), all_ids, new_offsets, new_sizes, new_sizes.copy())
        self._changed()
        self.ntotal -= nremove
        return nremove

    def _reconstruct_keys(self, keys: np.ndarray) -> np.ndarray:
        # a duplicate's id reads its stored copy
        if self.instances:
            pairs = self.instance_pairs()
            order = np.argsort(pairs[:, 1], kind="stable")
            dups, owners = pairs[order, 1], pairs[order, 0]
            pos = np.minimum(np.searchsorted(dups, keys), max(dups.size - 1, 0))
            hit = dups[pos] == keys
            keys = np.where(hit, owners[pos], keys)
        return super()._reconstruct_keys(keys)

    def _reset(self) -> None:
        super()._reset()
        self.instances = {}
        self._changed()
