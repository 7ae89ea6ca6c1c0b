"""ResidualCoarseQuantizer: a residual quantizer used as an IVF coarse quantizer.

The 2**tot_bits reconstructions of an RQ are the centroids; centroid ``l``
is the one whose codes, stage m in bits ``sum(nbits[:m]) ..`` of ``l``, are
its codeword indices. ``IVF256(RCQ2x4),Flat`` gets 256 lists from two
16-entry codebooks, trained by the quantizer itself (not by the IVF's
k-means). A search is a beam search of width ``k * beam_factor`` (default 4,
as FAISS; the distances are exact squared L2 to the reconstructions), or,
with ``beam_factor < 0``, an exhaustive scan of all centroids.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import check_float
from ..codecs.rq import ResidualQuantizer
from ..index import Index
from ..metric import METRIC_L2, check_metric, worst_distance
from ..selector import SearchParameters

# more reconstructions than this are not listed for an exhaustive search
MAX_EXHAUSTIVE_BITS = 24


class SearchParametersResidualCoarseQuantizer(SearchParameters):
    """Per-call beam factor of a :class:`ResidualCoarseQuantizer`."""

    beam_factor: float = 4.0


class ResidualCoarseQuantizer(Index):
    """Coarse quantizer whose centroids are all reconstructions of a residual quantizer.

    ``ResidualCoarseQuantizer(d, M, nbits, metric=METRIC_L2)`` or ``(d, [nbits...], metric)``.

    Example:
        >>> import numpy as np, voisin
        >>> x = np.random.default_rng(0).random((4000, 8), dtype="float32")
        >>> rcq = voisin.ResidualCoarseQuantizer(8, 2, 4)
        >>> rcq.rq.train_type = voisin.ResidualQuantizer.Train_default
        >>> rcq.train(x)
        >>> rcq.ntotal
        256
        >>> D, I = rcq.search(x[:2], 3)
    """

    params_type = SearchParametersResidualCoarseQuantizer
    #: an IVF trains this quantizer on its training set instead of running k-means
    #: (FAISS's quantizer_trains_alone = 1)
    _trains_alone = True

    def __init__(self, d: int, M: Any = 1, nbits: Any = None, metric: int | None = None):
        if isinstance(M, (list, tuple, np.ndarray)):
            metric, rq = nbits, ResidualQuantizer(d, list(M))
        else:
            rq = ResidualQuantizer(d, M, 8 if nbits is None else nbits)
        super().__init__(d, check_metric(METRIC_L2 if metric is None else metric))
        if sum(rq.nbits) > 63:
            raise ValueError(f"nbits: {sum(rq.nbits)} bits do not fit a 64-bit list number")
        self.rq = rq
        self.beam_factor = 4.0
        self.is_trained = False
        self._centroids: np.ndarray | None = None

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_centroids"] = None
        return state

    def set_beam_factor(self, beam_factor: float) -> None:
        """Beam width per result (>= 1), or < 0 for an exhaustive search."""
        beam_factor = check_float(beam_factor, "beam_factor")
        if 0 <= beam_factor < 1:
            raise ValueError(f"beam_factor: expected >= 1 or < 0 (exhaustive), got {beam_factor}")
        self.beam_factor = beam_factor

    def _train(self, x: np.ndarray) -> None:
        self.rq.train_validated(x)
        self._centroids = None
        self.ntotal = 1 << sum(self.rq.nbits)
        self.is_trained = True

    def install_rq(self, rq: ResidualQuantizer, is_trained: bool) -> None:
        """Take a trained residual quantizer (the file reader's entry point)."""
        self.rq = rq
        self._centroids = None
        self.is_trained = bool(is_trained)
        self.ntotal = (1 << sum(rq.nbits)) if is_trained else 0

    def _all_centroids(self) -> np.ndarray:
        if self._centroids is None:
            if sum(self.rq.nbits) > MAX_EXHAUSTIVE_BITS:
                raise ValueError(f"beam_factor: an exhaustive search over 2**{sum(self.rq.nbits)} "
                                 "centroids is too large; use a beam (beam_factor >= 1)")
            self._centroids = self.rq.all_centroids()
        return self._centroids

    def _add(self, x, ids):
        raise NotImplementedError("ResidualCoarseQuantizer: add is not applicable (its centroids "
                                  "are the quantizer's reconstructions; call train)")

    def _reset(self) -> None:
        raise NotImplementedError("ResidualCoarseQuantizer: reset is not applicable")

    def _labels(self, codes: np.ndarray) -> np.ndarray:
        shifts = np.concatenate([[0], np.cumsum(self.rq.nbits)[:-1]]).astype(np.int64)
        return (codes.astype(np.int64) << shifts).sum(axis=-1)

    def _search(self, x, k, params, D, I):
        nq = x.shape[0]
        D = np.empty((nq, k), dtype=np.float32) if D is None else D
        I = np.empty((nq, k), dtype=np.int64) if I is None else I
        bf = self.beam_factor
        if params is not None and isinstance(params, SearchParametersResidualCoarseQuantizer):
            bf = check_float(params.beam_factor, "beam_factor")
        if bf < 0:
            from ..exact import knn
            Dk, Ik = knn(x, self._all_centroids(), k, self.metric_type)
            D[:], I[:] = Dk, Ik
            return D, I
        width = max(1, min(int(k * bf), self.ntotal))
        codes, _, dist = self.rq.refine_beam(x, width)
        got = min(k, codes.shape[1])
        D.fill(worst_distance(METRIC_L2))
        I.fill(-1)
        D[:, :got] = dist[:, :got]
        I[:, :got] = self._labels(codes[:, :got])
        return D, I

    def _reconstruct_keys(self, keys: np.ndarray) -> np.ndarray:
        bad = (keys < 0) | (keys >= self.ntotal)
        if bad.any():
            raise ValueError(f"key: {int(keys[bad][0])} is out of range [0, {self.ntotal})")
        idx = np.empty((keys.shape[0], self.rq.M), dtype=np.int64)
        rest = keys.astype(np.int64)
        for m, b in enumerate(self.rq.nbits):
            idx[:, m] = rest & ((1 << b) - 1)
            rest = rest >> b
        return self.rq.decode_unpacked(idx)
