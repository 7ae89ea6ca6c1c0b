"""The Index contract every voisin index follows (FAISS semantics).

Public methods validate their arguments once (``_validate``) and then call the
underscore hooks a subclass implements with clean float32/int64 arrays:
``_train``, ``_add``, ``_search``, ``_range_search``, ``_remove``,
``_reconstruct``, ``_reset``. A subclass never re-checks input and the base
class never touches storage.

Result conventions (as FAISS): ``search`` returns ``(D, I)``, float32 and int64
arrays of shape (n, k); L2 distances are squared and ascending, inner products
descending; a missing result has id -1 and distance +FLT_MAX (L2) or -FLT_MAX
(inner product).
"""

from __future__ import annotations

import threading
from typing import Any, NamedTuple

import numpy as np

from ._validate import (as_ids, as_matrix, check_dimension, check_float, check_int, check_k,
                        check_out, check_unique, is_clean_batch)
from .metric import METRIC_L2, check_metric, metric_name, worst_distance
from .selector import IDSelector, SearchParameters, selector_from_ids_or_sel


class Refinement(NamedTuple):
    """What an exact re-ranking wrapper (IndexRefineFlat) pushes down to an index
    that can fuse the re-rank into its own search and build (HNSW).

    ``rows``: the exact float rows of every stored vector, in id order (the new
    ones included, during an add). Search: the ``kb`` best candidates of the
    base's own ranking are re-scored against ``rows`` and the best k kept (FAISS's
    IndexRefine semantics). Between the two spaces sit the base's transforms
    (IndexPreTransform): a linear map ``A @ x + b`` (float32 (d_walk, d_exact),
    (d_walk,)) the base applies itself, or ready walk-space rows ``xw``; neither
    means the spaces are the same. ``xe``: during an add, the exact rows of the
    vectors being added.
    """

    rows: np.ndarray
    kb: int = 0
    xe: np.ndarray | None = None
    xw: np.ndarray | None = None
    A: np.ndarray | None = None
    b: np.ndarray | None = None


class Index:
    """Base class of all indexes: ``d``, ``ntotal``, ``metric_type``, ``is_trained``.

    Example:
        >>> import numpy as np, voisin
        >>> index = voisin.IndexFlatL2(8)
        >>> index.add(np.random.rand(100, 8))
        >>> D, I = index.search(np.random.rand(5, 8), 4)
        >>> D.shape, I.shape
        ((5, 4), (5, 4))
    """

    #: the SearchParameters subclass this index understands
    params_type: type = SearchParameters
    #: whether the index serves voisin.metric.EXTRA_METRICS (L1, Linf, Lp, ...) besides L2 and IP
    _extra_metrics = False

    def __init__(self, d: int, metric: int = METRIC_L2):
        self.d = check_dimension(d)
        self.metric_type = check_metric(metric, extra=type(self)._extra_metrics)
        self.metric_arg = 0.0
        self.ntotal = 0
        self.is_trained = True
        self.verbose = False
        # Writers (add/remove/reset/train) are serialised; searches take a
        # snapshot of the storage arrays and run without the lock.
        self._write_lock = threading.RLock()

    # --- pickling: everything but the lock --------------------------------
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_write_lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._write_lock = threading.RLock()

    def __reduce__(self) -> tuple:
        # Pickles carry the FAISS-format bytes (with checksum), so a pickle is
        # as portable and as checked as a file; types without a file format
        # fall back to __getstate__.
        from .io.faiss_format import reduce_index
        return reduce_index(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(d={self.d}, ntotal={self.ntotal}, metric={metric_name(self.metric_type)})"

    def __len__(self) -> int:
        return self.ntotal

    # --- public API ----------------------------------------------------------
    def train(self, x: Any) -> None:
        """Learn whatever the index needs from representative vectors ``x`` (n, d)."""
        x = as_matrix(x, self.d, "x")
        if x.shape[0] == 0:
            raise ValueError("x: training needs at least one vector, got 0")
        self._check_writable()
        with self._write_lock:
            self._train(x)

    def add(self, x: Any) -> None:
        """Add vectors ``x`` (n, d); they get the ids ntotal .. ntotal+n-1."""
        x = as_matrix(x, self.d, "x")
        self._check_trained()
        if x.shape[0] == 0:
            return
        self._check_writable()
        with self._write_lock:
            self._add(x, None)

    def add_with_ids(self, x: Any, ids: Any) -> None:
        """Add vectors ``x`` (n, d) with the given int64 ``ids`` (n,)."""
        x = as_matrix(x, self.d, "x")
        ids = as_ids(ids, x.shape[0], "ids")
        check_unique(ids)
        self._check_trained()
        if x.shape[0] == 0:
            return
        self._check_writable()
        with self._write_lock:
            self._add(x, ids)

    def search(self, x: Any, k: int, params: SearchParameters | None = None, *,
               D: np.ndarray | None = None, I: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest stored vectors of each query in ``x`` (n, d).

        Returns ``(D, I)``, each (n, k). ``params`` may restrict the result to
        an id selection (``SearchParameters(sel=...)``) or set index knobs.
        """
        if params is None and D is None and I is None and is_clean_batch(x, self.d, k):
            out = self._search_fast(x, k)
            if out is not None:
                return out
        x = as_matrix(x, self.d, "x")
        k = check_k(k)
        params = self._check_params(params)
        n = x.shape[0]
        if D is not None:
            check_out(D, (n, k), np.float32, "D")
        if I is not None:
            check_out(I, (n, k), np.int64, "I")
        self._check_trained()
        if self.ntotal == 0 or n == 0:
            D = np.empty((n, k), dtype=np.float32) if D is None else D
            I = np.empty((n, k), dtype=np.int64) if I is None else I
            D.fill(worst_distance(self.metric_type))
            I.fill(-1)
            return D, I
        return self._search(x, k, params, D, I)

    def range_search(self, x: Any, radius: float,
                     params: SearchParameters | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All stored vectors within ``radius`` of each query.

        L2: squared distance < radius; inner product: score > radius. Returns
        ``(lims, D, I)``: the results of query i are ``D[lims[i]:lims[i+1]]``.
        """
        x = as_matrix(x, self.d, "x")
        radius = check_float(radius, "radius")
        params = self._check_params(params)
        self._check_trained()
        n = x.shape[0]
        if self.ntotal == 0 or n == 0:
            return (np.zeros(n + 1, dtype=np.uint64), np.zeros(0, dtype=np.float32),
                    np.zeros(0, dtype=np.int64))
        lims, D, I = self._range_search(x, radius, params)
        return lims.astype(np.uint64, copy=False), D, I

    def search_and_reconstruct(self, x: Any, k: int, params: SearchParameters | None = None, *,
                               D: np.ndarray | None = None, I: np.ndarray | None = None,
                               R: np.ndarray | None = None
                               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``search`` plus the stored (decoded) vector of each result.

        Returns ``(D, I, R)`` with ``R`` of shape (n, k, d); a missing result
        (id -1) gets a vector of NaN, as FAISS (which fills it with 0xff
        bytes). Works on every index that can ``reconstruct``. A vector
        removed between the search and the reconstruction raises ValueError.
        """
        x = as_matrix(x, self.d, "x")
        k = check_k(k)
        if R is not None:
            check_out(R, (x.shape[0], k, self.d), np.float32, "R")
        D, I = self.search(x, k, params, D=D, I=I)
        if R is None:
            R = np.empty((x.shape[0], k, self.d), dtype=np.float32)
        R.fill(np.nan)
        found = I >= 0
        if found.any():
            R[found] = self._reconstruct_keys(np.ascontiguousarray(I[found]))
        return D, I, R

    def assign(self, x: Any, k: int = 1) -> np.ndarray:
        """Ids of the ``k`` nearest stored vectors (FAISS's ``assign``)."""
        return self.search(x, k)[1]

    def remove_ids(self, x: Any) -> int:
        """Remove the vectors whose ids are selected; returns how many were removed.

        ``x`` is an IDSelector or an array of ids.
        """
        sel = selector_from_ids_or_sel(x, "x")
        self._check_writable()
        with self._write_lock:
            return int(self._remove(sel))

    def reconstruct(self, key: int) -> np.ndarray:
        """The stored (decoded) vector with id ``key``, shape (d,)."""
        key = check_int(key, "key")
        return self._reconstruct_keys(np.array([key], dtype=np.int64))[0]

    def reconstruct_batch(self, keys: Any) -> np.ndarray:
        keys = as_ids(keys, name="keys")
        return self._reconstruct_keys(keys)

    def reconstruct_n(self, i0: int = 0, ni: int | None = None) -> np.ndarray:
        """Vectors with ids i0 .. i0+ni-1, shape (ni, d)."""
        i0 = check_int(i0, "i0", lo=0, hi=self.ntotal)
        if ni is None:
            ni = self.ntotal - i0
        ni = check_int(ni, "ni", lo=0)
        if i0 + ni > self.ntotal:
            raise ValueError(f"i0, ni: range [{i0}, {i0 + ni}) exceeds ntotal={self.ntotal}")
        return self._reconstruct_keys(np.arange(i0, i0 + ni, dtype=np.int64))

    def reset(self) -> None:
        """Remove every vector; training is kept."""
        self._check_writable()
        with self._write_lock:
            self._reset()

    # --- hooks for subclasses ------------------------------------------------
    def _train(self, x: np.ndarray) -> None:
        """Default: nothing to learn."""

    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot add vectors")

    def _search(self, x: np.ndarray, k: int, params: SearchParameters | None,
                D: np.ndarray | None, I: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError(f"{type(self).__name__} does not implement search")

    def _search_fast(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Search clean queries (float32 C-contiguous (n, d), k > 0; finiteness not
        checked) with no options, or return None for the validated path. Indexes
        whose single-query calls are short enough for the validation to show
        implement it; the kernel must refuse NaN/inf itself."""
        return None

    def _search_refined(self, xe: np.ndarray, k: int, params: SearchParameters | None,
                        ref: Refinement, D: np.ndarray, I: np.ndarray,
                        fast: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
        """Search fused with an exact re-rank (see :class:`Refinement`), or None when
        this index cannot fuse it (the wrapper then re-ranks the candidates itself).
        ``xe`` are the exact-space queries; with ``fast`` they were not validated
        and None is also the answer to NaN/inf."""
        return None

    def _add_refined(self, x: np.ndarray, ref: Refinement) -> bool:
        """Add ``x`` using the exact rows ``ref`` holds (see :class:`Refinement`) to
        build better; False when this index has no use for them (a plain add follows)."""
        return False

    def _range_search(self, x: np.ndarray, radius: float, params: SearchParameters | None):
        raise NotImplementedError(f"{type(self).__name__} does not implement range_search")

    def _remove(self, sel: IDSelector) -> int:
        raise NotImplementedError(f"{type(self).__name__} does not support remove_ids")

    def _reconstruct_keys(self, keys: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not support reconstruct")

    def _reset(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not support reset")

    # --- shared checks -------------------------------------------------------
    #: set on indexes opened with IO_FLAG_READ_ONLY (voisin.io): their arrays
    #: may be read-only file mappings, so every modification is refused up front
    _read_only = False

    def _check_writable(self) -> None:
        if self._read_only:
            raise RuntimeError(f"{type(self).__name__} was opened with IO_FLAG_READ_ONLY and "
                               "cannot be modified: read it without that flag to change it")

    def _check_trained(self) -> None:
        if not self.is_trained:
            raise RuntimeError(f"{type(self).__name__} is not trained: call index.train(x) "
                               "with representative vectors before adding or searching")

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
