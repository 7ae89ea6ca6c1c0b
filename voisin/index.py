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

from ._validate import as_matrix, check_dimension, check_float, check_k, check_out, is_clean_batch
from .index_contract import IndexContract
from .metric import METRIC_L2, check_metric, metric_name, worst_distance
from .selector import SearchParameters


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


class Index(IndexContract):
    """Base class of all indexes: ``d``, ``ntotal``, ``metric_type``, ``is_trained``.

    Example:
        >>> import numpy as np, voisin
        >>> index = voisin.IndexFlatL2(8)
        >>> index.add(np.random.rand(100, 8))
        >>> D, I = index.search(np.random.rand(5, 8), 4)
        >>> D.shape, I.shape
        ((5, 4), (5, 4))
    """

    #: whether the index serves voisin.metric.EXTRA_METRICS (L1, Linf, Lp, ...) besides L2 and IP
    _extra_metrics = False

    def __init__(self, d: int, metric: int = METRIC_L2):
        self.d = check_dimension(d)
        self.metric_type = check_metric(metric, extra=type(self)._extra_metrics)
        self.metric_arg = 0.0
        self.ntotal = 0
        self.is_trained = True
        self.verbose = False
        self._write_lock = threading.RLock()

    def __reduce__(self) -> tuple:
        # Pickles carry the FAISS-format bytes (with checksum), so a pickle is
        # as portable and as checked as a file; types without a file format
        # fall back to __getstate__.
        from .io.faiss_format import reduce_index
        return reduce_index(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(d={self.d}, ntotal={self.ntotal}, metric={metric_name(self.metric_type)})"

    def _as_rows(self, x: Any, name: str) -> np.ndarray:
        return as_matrix(x, self.d, name)

    # --- public API ----------------------------------------------------------
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

    # --- hooks for subclasses ------------------------------------------------
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
