"""IndexIVFScalarQuantizer: IVF whose lists hold scalar-quantized (residual) codes."""

from __future__ import annotations

import numpy as np

from ..codecs.sq import QT_8bit, ScalarQuantizer, qtype_name
from ..index import Index
from ..kernels import sq as K
from ..metric import METRIC_L2, check_metric, worst_distance
from .ivf import IndexIVF, dimension_of


class IndexIVFScalarQuantizer(IndexIVF):
    """IVF + scalar quantizer (FAISS's ``IndexIVFScalarQuantizer``).

    With ``by_residual`` (the default, as FAISS) the quantizer encodes
    ``x - centroid``: residuals have a smaller range, so the same bits give a
    finer grid. Under L2 the query residual is compared with the decoded
    code; under inner product the score is ``<q, c> + <q, decode(code)>``.

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).random((5000, 16), dtype="float32")
        >>> index = voisin.IndexIVFScalarQuantizer(voisin.IndexFlatL2(16), 16, 32,
        ...                                        voisin.ScalarQuantizer.QT_8bit)
        >>> index.train(xb); index.add(xb); index.nprobe = 8
        >>> D, I = index.search(xb[:2], 3)
    """

    def __init__(self, quantizer: Index | None = None, d: int | None = None, nlist: int = 1,
                 qtype: int = QT_8bit, metric: int = METRIC_L2, by_residual: bool = True):
        d = dimension_of(quantizer, d, "IndexIVFScalarQuantizer")
        sq = ScalarQuantizer(int(d), qtype)
        # set before the base constructor: it asks _codec_is_trained() when the
        # quantizer arrives already trained
        self.sq = sq
        super().__init__(quantizer, d, nlist, sq.code_size, check_metric(metric))
        self.by_residual = bool(by_residual)
        self._codec_trained = sq.is_trained
        self.is_trained = self._quantizer_ready() and self._codec_is_trained()

    def __repr__(self) -> str:
        return (f"IndexIVFScalarQuantizer(d={self.d}, nlist={self.nlist}, {qtype_name(self.sq.qtype)}, "
                f"nprobe={self.nprobe}, ntotal={self.ntotal})")

    def _codec_is_trained(self) -> bool:
        return self.sq.is_trained

    def _train_codec(self, x: np.ndarray, list_nos: np.ndarray | None) -> None:
        if self.sq.needs_training():
            self.sq.train(self._residuals(x, list_nos) if self.by_residual else x)

    def _codec_needs_retrain(self) -> bool:
        # the ranges depend on the centroids when coding residuals
        return self.sq.needs_training()

    def _encode(self, x: np.ndarray, list_nos: np.ndarray) -> np.ndarray:
        return self.sq.encode(self._residuals(x, list_nos) if self.by_residual else x)

    def _decode(self, codes: np.ndarray, list_nos: np.ndarray) -> np.ndarray:
        x = self.sq.decode(codes)
        if self.by_residual and x.shape[0]:
            x += self.quantizer.reconstruct_batch(list_nos)
        return x

    def _centroids(self) -> np.ndarray:
        if not self.by_residual:
            return np.zeros((1, self.d), dtype=np.float32)
        flat = self._flat_centroids()
        if flat is not None:
            return flat[0]
        return self.quantizer.reconstruct_n(0, self.nlist)

    def _list_overhead(self) -> float:
        # the query's residual to the list's centroid: d subtractions, ~one code
        return 1.0 if self.by_residual else 0.0

    def _search_preassigned(self, x, k, probes, probe_dists, ctx, D, I):
        kind, a, b, lut = self.sq.tables()
        K.ivf_search_batch(x, np.ascontiguousarray(probes, dtype=np.int64), self._centroids(),
                           self.by_residual, ctx.codes, ctx.ids, ctx.offsets, ctx.sizes, kind, a, b, lut,
                           self.metric_type, ctx.max_codes, ctx.mask, ctx.use_mask,
                           worst_distance(self.metric_type), D, I)
        return D, I

    def _range_preassigned(self, x, radius, probes, probe_dists, ctx):
        kind, a, b, lut = self.sq.tables()
        return K.ivf_range_search(x, np.ascontiguousarray(probes, dtype=np.int64), self._centroids(),
                                  self.by_residual, ctx.codes, ctx.ids, ctx.offsets, ctx.sizes, kind, a,
                                  b, lut, self.metric_type, np.float32(radius), ctx.max_codes, ctx.mask,
                                  ctx.use_mask)
