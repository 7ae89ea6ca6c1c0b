"""IndexBinaryIVF: a binary coarse quantizer, inverted lists of codes, Hamming scans.

Training follows FAISS (``IndexBinaryIVF::train``): the training codes become
±1 float vectors (bit set: +1), k-means with ``nlist`` centroids runs on them
(voisin's Kmeans, FAISS's defaults and seed), and each centroid is binarised
back (bit set where the coordinate is > 0) into the quantizer, an
:class:`IndexBinaryFlat` by default. The lists are :class:`voisin.InvertedLists`
(code_size bytes per entry) and the direct map is voisin's, so ``reconstruct``
and ``remove_ids`` work whatever the direct-map type.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _blas
from .._validate import check_int
from ..clustering import ClusteringParameters, Kmeans
from ..hamming import as_words
from ..selector import IDSelector, SearchParameters
from .binary import IndexBinary, check_binary_index
from .binary_flat import IndexBinaryFlat
from .invlists import DirectMap, InvertedLists
from .ivf import SearchParametersIVF

_QUERIES_PER_TASK = 32


def binary_to_real(codes: np.ndarray) -> np.ndarray:
    """FAISS's ``binary_to_real``: bit j of each code as -1.0 / +1.0, float32 (n, d)."""
    bits = np.unpackbits(codes, axis=1, bitorder="little")
    return bits.astype(np.float32) * 2 - 1


def real_to_binary(x: np.ndarray) -> np.ndarray:
    """FAISS's ``real_to_binary``: bit j set where ``x[:, j] > 0``, uint8 (n, d / 8)."""
    return np.packbits(np.asarray(x) > 0, axis=1, bitorder="little")


class IndexBinaryIVF(IndexBinary):
    """Inverted-file binary index: codes live in the list of their nearest centroid
    (Hamming), a query scans its ``nprobe`` nearest lists.

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).integers(0, 256, (5000, 16), dtype=np.uint8)
        >>> index = voisin.IndexBinaryIVF(voisin.IndexBinaryFlat(128), 128, 32)
        >>> index.train(xb); index.add(xb); index.nprobe = 4
        >>> D, I = index.search(xb[:3], 1)
        >>> I.ravel().tolist(), D.ravel().tolist()
        ([0, 1, 2], [0, 0, 0])
    """

    params_type = SearchParametersIVF
    ids_are_positions = False

    def __init__(self, quantizer: IndexBinary | None = None, d: int | None = None,
                 nlist: int = 1):
        if quantizer is None:
            if d is None:
                raise TypeError("IndexBinaryIVF: give a quantizer or d")
            quantizer = IndexBinaryFlat(d)
        check_binary_index(quantizer, "quantizer")
        d = quantizer.d if d is None else d
        super().__init__(d)
        if quantizer.d != self.d:
            raise ValueError(f"quantizer: its d={quantizer.d} differs from d={self.d}")
        self.quantizer = quantizer
        self.nlist = check_int(nlist, "nlist", lo=1)
        self.nprobe = 1
        self.max_codes = 0
        self.cp = ClusteringParameters()
        self.invlists = InvertedLists(self.nlist, self.code_size)
        self.direct_map = DirectMap()
        self.own_fields = True
        self.use_heap = True
        self.per_invlist_search = False
        self.is_trained = quantizer.is_trained and quantizer.ntotal == self.nlist

    # --- training ------------------------------------------------------------
    def _train(self, x: np.ndarray) -> None:
        if self.quantizer.is_trained and self.quantizer.ntotal == self.nlist:
            self.is_trained = True
            return
        if x.shape[0] < self.nlist:
            raise ValueError(f"x: training an IndexBinaryIVF with nlist={self.nlist} needs at "
                             f"least {self.nlist} codes, got {x.shape[0]}")
        km = Kmeans(self.d, self.nlist, **{**self.cp.as_kwargs(), "update_index": False,
                                           "verbose": self.verbose or self.cp.verbose})
        km.train(binary_to_real(x))
        self.quantizer.reset()
        self.quantizer.train(real_to_binary(km.centroids))
        self.quantizer.add(real_to_binary(km.centroids))
        self.is_trained = True

    # --- adding ----------------------------------------------------------------
    def _assign(self, x: np.ndarray, k: int) -> np.ndarray:
        return self.quantizer._search(x, k, None)[1]

    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        if ids is None:
            ids = np.arange(self.ntotal, self.ntotal + x.shape[0], dtype=np.int64)
        self.add_core(x, ids, self._assign(x, 1)[:, 0])

    def add_core(self, x: np.ndarray, ids: np.ndarray, list_nos: np.ndarray) -> None:
        """Add codes to given lists (FAISS's ``add_core``; list -1 drops the code)."""
        keep = list_nos >= 0
        self.invlists.add_entries(list_nos[keep], x[keep], ids[keep])
        self.direct_map.invalidate()
        self.ntotal += int(keep.sum())

    def make_direct_map(self, new_maintain: bool = True) -> None:
        self.direct_map.type = DirectMap.Array if new_maintain else DirectMap.NoMap

    def set_direct_map_type(self, type: int) -> None:
        self.direct_map.type = check_int(type, "type", lo=0, hi=2)

    # --- searching -------------------------------------------------------------
    def _knobs(self, params: SearchParameters | None) -> tuple[int, int]:
        nprobe, max_codes = self.nprobe, self.max_codes
        if isinstance(params, SearchParametersIVF):
            nprobe = params.nprobe if params.nprobe is not None else nprobe
            max_codes = params.max_codes if params.max_codes is not None else max_codes
        nprobe = min(check_int(nprobe, "nprobe", lo=1), self.nlist)
        return nprobe, check_int(max_codes or 0, "max_codes", lo=0)

    def _scan_state(self, params):
        codes, ids, offsets, sizes = self.invlists.snapshot()
        mask = np.zeros(1, dtype=np.bool_)
        use_mask = params is not None and params.sel is not None
        if use_mask:
            mask = np.ascontiguousarray(params.sel.contains(ids))
        return as_words(codes), ids, offsets, sizes, mask, use_mask

    def _search(self, x, k, params):
        nprobe, max_codes = self._knobs(params)
        probes = np.ascontiguousarray(self._assign(x, nprobe))
        return self.search_preassigned(x, k, probes, params, max_codes)

    def search_preassigned(self, x: Any, k: int, assign: Any, params=None,
                           max_codes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Search given each query's lists ``assign`` (n, nprobe) int64."""
        from ..kernels.binary_ivf import ivf_knn
        codes, ids, offsets, sizes, mask, use_mask = self._scan_state(params)
        assign = np.ascontiguousarray(assign, dtype=np.int64)
        if max_codes is None:
            max_codes = self._knobs(params)[1]
        n = x.shape[0]
        D = np.empty((n, k), dtype=np.int32)
        I = np.empty((n, k), dtype=np.int64)
        wq = as_words(x)

        def work(p: int, q0: int) -> None:
            ivf_knn(wq, codes, ids, offsets, sizes, assign, q0, min(n, q0 + _QUERIES_PER_TASK),
                    max_codes, mask, use_mask, D, I)

        _blas.run_pipelines(range(0, n, _QUERIES_PER_TASK), work, _npipe(n))
        return D, I

    def _range_search(self, x, radius, params):
        from ..kernels.binary_ivf import ivf_range
        nprobe, _ = self._knobs(params)
        probes = np.ascontiguousarray(self._assign(x, nprobe))
        codes, ids, offsets, sizes, mask, use_mask = self._scan_state(params)
        n = x.shape[0]
        wq = as_words(x)
        radius = int(min(max(radius, -1), 1 << 30))
        counts = np.zeros(n, dtype=np.int64)
        lims = np.zeros(n + 1, dtype=np.int64)
        D0, I0 = np.empty(0, np.int32), np.empty(0, np.int64)
        ivf_range(wq, codes, ids, offsets, sizes, probes, 0, n, radius, mask, use_mask,
                  counts, lims, D0, I0, False)
        np.cumsum(counts, out=lims[1:])
        D = np.empty(int(lims[-1]), dtype=np.int32)
        I = np.empty(int(lims[-1]), dtype=np.int64)
        ivf_range(wq, codes, ids, offsets, sizes, probes, 0, n, radius, mask, use_mask,
                  counts, lims, D, I, True)
        return lims, D, I

    # --- maintenance -------------------------------------------------------------
    def _remove(self, sel: IDSelector) -> int:
        rows, _ = self.invlists.used_rows()
        gone = rows[sel.contains(self.invlists.ids[rows])]
        if gone.size:
            self.invlists.remove_rows(gone)
            self.direct_map.invalidate()
            self.ntotal -= int(gone.size)
        return int(gone.size)

    def _reconstruct_keys(self, keys: np.ndarray) -> np.ndarray:
        rows, _ = self.direct_map.rows_of(self.invlists, keys)
        if (rows < 0).any():
            raise ValueError(f"key: id {int(keys[rows < 0][0])} is not in the index")
        return self.invlists.codes[rows].copy()

    def _reset(self) -> None:
        self.invlists.reset()
        self.direct_map.invalidate()
        self.ntotal = 0

    def get_list_size(self, list_no: int) -> int:
        return self.invlists.list_size(check_int(list_no, "list_no", lo=0, hi=self.nlist - 1))

    def imbalance_factor(self) -> float:
        return self.invlists.imbalance_factor()

    def __repr__(self) -> str:
        return (f"IndexBinaryIVF(d={self.d}, nlist={self.nlist}, nprobe={self.nprobe}, "
                f"ntotal={self.ntotal})")


def _npipe(n: int) -> int:
    import numba
    return min(numba.get_num_threads(), -(-n // _QUERIES_PER_TASK))
