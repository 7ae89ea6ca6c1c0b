"""IndexHNSWFlat: the HNSW graph over float32 rows (FAISS's IndexHNSWFlat)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import extra_metrics
from ..kernels import hnsw_search as KS
from ..kernels.hnsw_space import FlatSpace, MetricSpace, SQ8Space
from .hnsw import IndexHNSW


class IndexHNSWFlat(IndexHNSW):
    """HNSW graph over raw float32 vectors (FAISS's ``IndexHNSWFlat``).

    Knobs: ``index.hnsw.efConstruction`` (build quality, default 40) and
    ``index.hnsw.efSearch`` (search quality, default 16), or per call
    ``SearchParametersHNSW(efSearch=..., sel=...)``. For faster search at the same
    recall, walk 8-bit codes and re-rank exactly: ``index_factory(d,
    "HNSW32_SQ8,RFlat")`` (docs/hnsw.md).

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.rand(2000, 16).astype("float32")
        >>> index = voisin.IndexHNSWFlat(16, 16)
        >>> index.hnsw.efConstruction = 100
        >>> index.add(xb)
        >>> index.hnsw.efSearch = 32
        >>> D, I = index.search(xb[:3], 5)
        >>> I[:, 0].tolist()
        [0, 1, 2]
        >>> index.remove_ids(np.arange(100))   # later ids shift down, as in IndexFlat
        100
        >>> index.search(xb[100:102], 1)[1].ravel().tolist()
        [0, 1]

    FAISS's further metrics walk the same graph (``IndexHNSWFlat(d, M,
    voisin.METRIC_L1)``; ``metric_arg`` = p for ``METRIC_Lp``), as faiss's
    IndexHNSWFlat does; a NaN distance is never a result (docs/metrics.md).
    """

    # METRIC_L1, METRIC_Lp, ...: the walk's MetricSpace (kernels/hnsw_space.py)
    _extra_metrics = True

    @property
    def _search_kernel(self):
        return KS.search_metric if self.metric_type > 1 else KS.search_flat

    @property
    def _range_kernel(self):
        return KS.range_metric if self.metric_type > 1 else KS.range_flat

    def _is_extra(self) -> bool:
        return extra_metrics.is_extra(self.metric_type)

    def _empty_storage(self) -> np.ndarray:
        return np.empty((0, self.d), dtype=np.float32)

    def _encode(self, x: np.ndarray) -> np.ndarray:
        return x

    def _decode(self, rows: np.ndarray) -> np.ndarray:
        return rows.astype(np.float32, copy=True)

    def _space(self, X: np.ndarray) -> tuple:
        if self._is_extra():
            return MetricSpace(X, np.float32(self.metric_arg))
        return FlatSpace(X)

    def _walk_fields(self, X: np.ndarray) -> tuple:
        # on every single-query call: no namedtuple here (metric_type > 1: a further metric)
        if self.metric_type > 1:
            return (X, np.float32(self.metric_arg))
        return (X,)

    def _build_walk(self, X: np.ndarray, n0: int) -> tuple:
        """An add that at least doubles the graph walks SQ8 codes made for it
        (round_up(d, 32) bytes per vector, freed after) and re-scores each level's
        results from the floats before the neighbour heuristic, which compares
        floats as before: the same graph quality (docs/hnsw.md, "Construction")
        in less time. Smaller adds walk the floats: encoding every row would cost
        more than it saves."""
        if X.shape[0] - n0 < n0 or X.shape[0] < 2 or self._is_extra():
            return self._space(X)
        from ..codecs.sq import QT_8bit, ScalarQuantizer
        sq = ScalarQuantizer(self.d, QT_8bit)
        sq.train(X)
        from .hnsw_sq import padded_width, sq8_padded, sq8_params
        width = padded_width(self.d)
        return SQ8Space(sq8_padded(sq, X, width), sq8_params(sq, width))

    @property
    def xb(self) -> np.ndarray:
        """The stored vectors (ntotal, d) in id order, read-only (a view, or a
        copy while deleted nodes await compaction)."""
        v = self.storage_rows()[:]
        v.flags.writeable = False
        return v

    # the walk knobs of earlier versions became FAISS's index compositions
    _GONE = ("sq8_traversal", "traversal_dims", "sq8_build", "prefetch_lines",
             "early_abort_min_dim", "repair_back_links")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in IndexHNSWFlat._GONE:
            raise AttributeError(
                f"{name}: this knob is gone. Walking 8-bit codes with an exact re-rank is "
                "FAISS's composition IndexRefineFlat(IndexHNSWSQ(d, ScalarQuantizer.QT_8bit, M)), "
                "factory 'HNSW32_SQ8,RFlat' (with a PCA: 'PCA128,HNSW32_SQ8,RFlat'); builds "
                "always walk codes when that is faster. See docs/hnsw.md.")
        super().__setattr__(name, value)
