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

from .._validate import as_codes, check_dimension, check_int, check_k
from ..index_contract import IndexContract
from ..metric import METRIC_L2
from ..selector import SearchParameters

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


class IndexBinary(IndexContract):
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

    _rows_noun = "codes"

    def __init__(self, d: int):
        self.d = check_binary_dimension(d)
        self.code_size = self.d // 8
        self.ntotal = 0
        self.is_trained = True
        self.metric_type = METRIC_L2
        self.verbose = False
        self._write_lock = threading.RLock()

    def _as_rows(self, x: Any, name: str) -> np.ndarray:
        return as_codes(x, name, self.code_size)

    # --- pickling: the FAISS-format bytes, like the float indexes -----------
    def __reduce__(self) -> tuple:
        from ..io.binary import reduce_index_binary
        return reduce_index_binary(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(d={self.d}, ntotal={self.ntotal})"

    # --- public API ----------------------------------------------------------
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

    # --- hooks ---------------------------------------------------------------
    def _search(self, x: np.ndarray, k: int, params: SearchParameters | None):
        raise NotImplementedError(f"{type(self).__name__} does not implement search")


def check_binary_index(index: Any, name: str = "index") -> IndexBinary:
    if not isinstance(index, IndexBinary):
        raise TypeError(f"{name}: expected a binary index (IndexBinaryFlat, ...), "
                        f"got {type(index).__name__}")
    return index
