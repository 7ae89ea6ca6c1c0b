"""What the float and the binary index families share: the write lock, pickling
without it, the guarded writers (train, add, remove, reset), reconstruction by id
and the shared checks.

FAISS keeps ``Index`` and ``IndexBinary`` apart (a binary index is not an
``Index``, and the wrappers that take float indexes refuse it), so this is a
common base, not a public type: each family says how its rows are read
(``_as_rows``: float (n, d) vectors or uint8 (n, code_size) codes) and keeps its own
search, range search and pickle format.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from ._validate import as_ids, check_int, check_unique
from .selector import IDSelector, SearchParameters, selector_from_ids_or_sel


class IndexContract:
    #: the SearchParameters subclass this index understands
    params_type: type = SearchParameters
    #: set on indexes opened with IO_FLAG_READ_ONLY (voisin.io): their arrays
    #: may be read-only file mappings, so every modification is refused up front
    _read_only = False
    #: what the rows are called in messages ("vectors", "codes")
    _rows_noun = "vectors"

    def _as_rows(self, x: Any, name: str) -> np.ndarray:
        raise NotImplementedError

    # --- pickling: everything but the lock ----------------------------------
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_write_lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._write_lock = threading.RLock()

    def __len__(self) -> int:
        return self.ntotal

    # --- guarded writers ------------------------------------------------------
    # Writers (train/add/remove/reset) are serialised by the lock; searches take
    # a snapshot of the storage arrays and run without it.
    def train(self, x: Any) -> None:
        """Learn whatever the index needs from representative rows ``x``."""
        x = self._as_rows(x, "x")
        if x.shape[0] == 0:
            raise ValueError("x: training needs at least one vector, got 0")
        self._check_writable()
        with self._write_lock:
            self._train(x)

    def add(self, x: Any) -> None:
        """Add rows ``x``; they get the ids ntotal .. ntotal+n-1."""
        x = self._as_rows(x, "x")
        self._check_trained()
        if x.shape[0] == 0:
            return
        self._check_writable()
        with self._write_lock:
            self._add(x, None)

    def add_with_ids(self, x: Any, ids: Any) -> None:
        """Add rows ``x`` with the given int64 ``ids`` (n,), all distinct."""
        x = self._as_rows(x, "x")
        ids = as_ids(ids, x.shape[0], "ids")
        check_unique(ids)
        self._check_trained()
        if x.shape[0] == 0:
            return
        self._check_writable()
        with self._write_lock:
            self._add(x, ids)

    def assign(self, x: Any, k: int = 1) -> np.ndarray:
        """Ids of the ``k`` nearest stored rows (FAISS's ``assign``)."""
        return self.search(x, k)[1]

    def remove_ids(self, x: Any) -> int:
        """Remove the rows whose ids are selected; returns how many were removed.

        ``x`` is an IDSelector or an array of ids.
        """
        sel = selector_from_ids_or_sel(x, "x")
        self._check_writable()
        with self._write_lock:
            return int(self._remove(sel))

    def reset(self) -> None:
        """Remove every row; training is kept."""
        self._check_writable()
        with self._write_lock:
            self._reset()

    # --- reconstruction ---------------------------------------------------------
    def reconstruct(self, key: int) -> np.ndarray:
        """The stored (decoded) row with id ``key``."""
        key = check_int(key, "key")
        return self._reconstruct_keys(np.array([key], dtype=np.int64))[0]

    def reconstruct_batch(self, keys: Any) -> np.ndarray:
        """The stored (decoded) rows of the ids ``keys``."""
        return self._reconstruct_keys(as_ids(keys, name="keys"))

    def reconstruct_n(self, i0: int = 0, ni: int | None = None) -> np.ndarray:
        """Rows with ids i0 .. i0+ni-1."""
        i0 = check_int(i0, "i0", lo=0, hi=self.ntotal)
        ni = self.ntotal - i0 if ni is None else check_int(ni, "ni", lo=0)
        if i0 + ni > self.ntotal:
            raise ValueError(f"i0, ni: range [{i0}, {i0 + ni}) exceeds ntotal={self.ntotal}")
        return self._reconstruct_keys(np.arange(i0, i0 + ni, dtype=np.int64))

    # --- hooks for subclasses -----------------------------------------------------
    def _train(self, x: np.ndarray) -> None:
        """Default: nothing to learn."""

    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot add vectors")

    def _range_search(self, x: np.ndarray, radius: Any, params: SearchParameters | None):
        raise NotImplementedError(f"{type(self).__name__} does not implement range_search")

    def _remove(self, sel: IDSelector) -> int:
        raise NotImplementedError(f"{type(self).__name__} does not support remove_ids")

    def _reconstruct_keys(self, keys: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not support reconstruct")

    def _reset(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not support reset")

    # --- shared checks ------------------------------------------------------------
    def _check_writable(self) -> None:
        if self._read_only:
            raise RuntimeError(f"{type(self).__name__} was opened with IO_FLAG_READ_ONLY and "
                               "cannot be modified: read it without that flag to change it")

    def _check_trained(self) -> None:
        if not self.is_trained:
            raise RuntimeError(f"{type(self).__name__} is not trained: call index.train(x) "
                               f"with representative {self._rows_noun} before adding or searching")

    def _check_params(self, params: Any) -> SearchParameters | None:
        if params is None:
            return None
        if not isinstance(params, SearchParameters):
            raise TypeError(f"params: expected a SearchParameters instance, got {params!r}")
        # plain SearchParameters (a filter) suit every index; a subclass carries
        # knobs of one index family, which another index would silently ignore
        # (e.g. nprobe given to a flat index), so it must match params_type
        specific = self.params_type is not SearchParameters and isinstance(params, self.params_type)
        if type(params) is not SearchParameters and not specific:
            raise TypeError(f"params: {type(self).__name__} takes {self.params_type.__name__}, "
                            f"got {type(params).__name__}")
        return params
