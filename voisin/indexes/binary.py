"""Binary indexes (FAISS's ``IndexBinary`` family): uint8 codes, Hamming distances.

A binary vector of ``d`` bits (d a multiple of 8) is stored as ``code_size =
d // 8`` bytes; bit j is bit ``j & 7`` of byte ``j >> 3`` (FAISS's order, the
one ``np.packbits(..., bitorder="little")`` gives). Distances are int32
Hamming distances, ascending; a missing result is ``(INT_MAX, -1)`` as in
FAISS. ``range_search(x, radius)`` returns the codes at distance < radius.

:class:`IndexBinary` is the contract (validation once, then the underscore
hooks, as :class:`voisin.Index` does for float vectors); it is not an
``Index``: FAISS keeps the two families apart, and so do the wrappers that
take float indexes.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from .._validate import as_codes, as_ids, check_dimension, check_int, check_k, check_unique
from ..metric import METRIC_L2
from ..selector import IDSelector, SearchParameters, selector_from_ids_or_sel

#: the distance of a missing result (FAISS: INT_MAX)
MISSING_DISTANCE = np.int32(np.iinfo(np.int32).max)


def check_binary_dimension(d: Any) -> int:
    """``d`` in bits: a positive multiple of 8."""
    d = check_dimension(d, "d")
    if d % 8:
        raise ValueError(f"d: binary indexes take a number of bits that is a multiple of 8, got {d}")
    return d


def empty_result(n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return (np.full((n, k), MISSING_DISTANCE, dtype=np.int32), np.full((n, k), -1, dtype=np.int64))


def empty_range(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.zeros(n + 1, dtype=np.uint64), np.zeros(0, dtype=np.int32),
            np.zeros(0, dtype=np.int64))


class IndexBinary:
    """Base class of the binary indexes: ``d`` (bits), ``code_size`` (bytes),
    ``ntotal``, ``is_trained``, ``metric_type`` (FAISS writes METRIC_L2 for them).

    Example:
        >>> import numpy as np, voisin
        >>> index = voisin.IndexBinaryFlat(64)
        >>> index.add(np.random.default_rng(0).integers(0, 256, (100, 8), dtype=np.uint8))
        >>> D, I = index.search(index.reconstruct_n(0, 2), 1)
        >>> D.ravel().tolist(), I.ravel().tolist()
        ([0, 0], [0, 1])
    """

    #: the SearchParameters subclass this index understands
    params_type: type = SearchParameters
    _read_only = False

    def __init__(self, d: int):
        self.d = check_binary_dimension(d)
        self.code_size = self.d // 8
        self.ntotal = 0
        self.is_trained = True
        self.metric_type = METRIC_L2
        self.verbose = False
        self._write_lock = threading.RLock()

    # --- pickling: the FAISS-format bytes, like the float indexes -----------
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_write_lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._write_lock = threading.RLock()

    def __reduce__(self) -> tuple:
        from ..io.binary import reduce_index_binary
        return reduce_index_binary(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(d={self.d}, ntotal={self.ntotal})"

    def __len__(self) -> int:
        return self.ntotal

    # --- public API ----------------------------------------------------------
    def train(self, x: Any) -> None:
        """Learn what the index needs from representative codes ``x`` (n, code_size)."""
        x = as_codes(x, "x", self.code_size)
        if x.shape[0] == 0:
            raise ValueError("x: training needs at least one vector, got 0")
        self._check_writable()
        with self._write_lock:
            self._train(x)

    def add(self, x: Any) -> None:
        """Add codes ``x`` (n, code_size) uint8; they get the ids ntotal .. ntotal+n-1."""
        x = as_codes(x, "x", self.code_size)
        self._check_trained()
        if x.shape[0] == 0:
            return
        self._check_writable()
        with self._write_lock:
            self._add(x, None)

    def add_with_ids(self, x: Any, ids: Any) -> None:
        """Add codes ``x`` (n, code_size) with the int64 ``ids`` (n,)."""
        x = as_codes(x, "x", self.code_size)
        ids = as_ids(ids, x.shape[0], "ids")
        check_unique(ids)
        self._check_trained()
        if x.shape[0] == 0:
            return
        self._check_writable()
        with self._write_lock:
            self._add(x, ids)

    def search(self, x: Any, k: int, params: SearchParameters | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest stored codes of each query code in ``x`` (n, code_size).

        Returns ``(D, I)``: int32 Hamming distances and int64 ids, (n, k).
        """
        x = as_codes(x, "x", self.code_size)
        k = check_k(k)
        params = self._check_params(params)
        self._check_trained()
        if self.ntotal == 0 or x.shape[0] == 0:
            return empty_result(x.shape[0], k)
        return self._search(x, k, params)

    def range_search(self, x: Any, radius: int, params: SearchParameters | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All stored codes at Hamming distance < ``radius`` of each query.

        Returns ``(lims, D, I)``: the results of query i are ``D[lims[i]:lims[i+1]]``.
        """
        x = as_codes(x, "x", self.code_size)
        radius = check_int(radius, "radius")
        params = self._check_params(params)
        self._check_trained()
        if self.ntotal == 0 or x.shape[0] == 0:
            return empty_range(x.shape[0])
        lims, D, I = self._range_search(x, radius, params)
        return lims.astype(np.uint64, copy=False), D.astype(np.int32, copy=False), I

    def assign(self, x: Any, k: int = 1) -> np.ndarray:
        return self.search(x, k)[1]

    def remove_ids(self, x: Any) -> int:
        """Remove the codes whose ids are selected (IDSelector or ids); returns how many."""
        sel = selector_from_ids_or_sel(x, "x")
        self._check_writable()
        with self._write_lock:
            return int(self._remove(sel))

    def reconstruct(self, key: int) -> np.ndarray:
        """The stored code with id ``key``, uint8 (code_size,)."""
        key = check_int(key, "key")
        return self._reconstruct_keys(np.array([key], dtype=np.int64))[0]

    def reconstruct_batch(self, keys: Any) -> np.ndarray:
        return self._reconstruct_keys(as_ids(keys, name="keys"))

    def reconstruct_n(self, i0: int = 0, ni: int | None = None) -> np.ndarray:
        """Codes with ids i0 .. i0+ni-1, uint8 (ni, code_size)."""
        i0 = check_int(i0, "i0", lo=0, hi=self.ntotal)
        ni = self.ntotal - i0 if ni is None else check_int(ni, "ni", lo=0)
        if i0 + ni > self.ntotal:
            raise ValueError(f"i0, ni: range [{i0}, {i0 + ni}) exceeds ntotal={self.ntotal}")
        return self._reconstruct_keys(np.arange(i0, i0 + ni, dtype=np.int64))

    def search_and_reconstruct(self, x: Any, k: int, params: SearchParameters | None = None
                               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``search`` plus the stored code of each result (R: (n, k, code_size);
        missing results get 0xff bytes, as FAISS)."""
        D, I = self.search(x, k, params)
        R = np.full(I.shape + (self.code_size,), 0xFF, dtype=np.uint8)
        found = I >= 0
        if found.any():
            R[found] = self._reconstruct_keys(np.ascontiguousarray(I[found]))
        return D, I, R

    def reset(self) -> None:
        """Remove every code; training is kept."""
        self._check_writable()
        with self._write_lock:
            self._reset()

    # --- hooks ---------------------------------------------------------------
    def _train(self, x: np.ndarray) -> None:
        """Default: nothing to learn."""

    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot add vectors")

    def _search(self, x: np.ndarray, k: int, params: SearchParameters | None):
        raise NotImplementedError(f"{type(self).__name__} does not implement search")

    def _range_search(self, x: np.ndarray, radius: int, params: SearchParameters | None):
        raise NotImplementedError(f"{type(self).__name__} does not implement range_search")

    def _remove(self, sel: IDSelector) -> int:
        raise NotImplementedError(f"{type(self).__name__} does not support remove_ids")

    def _reconstruct_keys(self, keys: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not support reconstruct")

    def _reset(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not support reset")

    # --- shared checks -------------------------------------------------------
    def _check_writable(self) -> None:
        if self._read_only:
            raise RuntimeError(f"{type(self).__name__} was opened with IO_FLAG_READ_ONLY and "
                               "cannot be modified: read it without that flag to change it")

    def _check_trained(self) -> None:
        if not self.is_trained:
            raise RuntimeError(f"{type(self).__name__} is not trained: call index.train(x) "
                               "with representative codes before adding or searching")

    def _check_params(self, params: Any) -> SearchParameters | None:
        if params is None:
            return None
        if not isinstance(params, SearchParameters):
            raise TypeError(f"params: expected a SearchParameters instance, got {params!r}")
        specific = self.params_type is not SearchParameters and isinstance(params, self.params_type)
        if type(params) is not SearchParameters and not specific:
            raise TypeError(f"params: {type(self).__name__} takes {self.params_type.__name__}, "
                            f"got {type(params).__name__}")
        return params


def check_binary_index(index: Any, name: str = "index") -> IndexBinary:
    if not isinstance(index, IndexBinary):
        raise TypeError(f"{name}: expected a binary index (IndexBinaryFlat, ...), "
                        f"got {type(index).__name__}")
    return index
