"""IndexIVFRaBitQ: IVF whose lists hold RaBitQ codes of the residuals to their centroid."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from .._validate import check_bool
from ..codecs.rabitq import RaBitQuantizer, check_qb
from ..index import Index
from ..kernels import rabitq as K
from ..metric import METRIC_L2, check_metric, worst_distance
from ..selector import SearchParameters
from .ivf import IndexIVF, SearchParametersIVF, dimension_of
from .rabitq import search_knobs


class IVFRaBitQSearchParameters(SearchParametersIVF):
    """Per-call knobs of IndexIVFRaBitQ (FAISS's ``IVFRaBitQSearchParameters``):
    ``nprobe``, ``max_codes``, ``sel`` and the RaBitQ ``qb`` (default 4) and
    ``centered`` (default False). As in FAISS, these parameters replace the
    index's ``qb``; plain ``SearchParametersIVF`` keep it.

    Example:
        >>> import voisin
        >>> p = voisin.IVFRaBitQSearchParameters(nprobe=8, qb=8, centered=True)
    """

    qb = 4
    centered = False


class IndexIVFRaBitQ(IndexIVF):
    """IVF + RaBitQ (FAISS's ``IndexIVFRaBitQ``): a vector of list ``l`` is coded
    by the signs of ``x - centroid_l`` and two factors, so ``by_residual`` is
    always on (FAISS codes the same either way). Search estimates distances
    list by list with the query quantized to ``qb`` bits (default 4; 0 keeps it
    in float).

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).standard_normal((3000, 32)).astype("float32")
        >>> index = voisin.IndexIVFRaBitQ(voisin.IndexFlatL2(32), 32, 16)
        >>> index.train(xb); index.add(xb); index.nprobe = 4
        >>> D, I = index.search(xb[:2], 5)
    """

    def __init__(self, quantizer: Index | None = None, d: int | None = None, nlist: int = 1,
                 metric: int = METRIC_L2, own_invlists: bool = True, nb_bits: int = 1):
        d = dimension_of(quantizer, d, "IndexIVFRaBitQ")
        self.rabitq = RaBitQuantizer(int(d), check_metric(metric), nb_bits)
        super().__init__(quantizer, d, nlist, self.rabitq.code_size, self.rabitq.metric_type)
        check_bool(own_invlists, "own_invlists")
        self.by_residual = True
        self.qb = 4
        # FAISS's constructor leaves the index untrained even over a trained
        # quantizer: train() must run (it then only skips the k-means)
        self.is_trained = False

    def __repr__(self) -> str:
        return (f"IndexIVFRaBitQ(d={self.d}, nlist={self.nlist}, qb={self.qb}, nprobe={self.nprobe}, "
                f"ntotal={self.ntotal})")

    # --- codec --------------------------------------------------------------
    def _all_centroids(self) -> np.ndarray:
        flat = self._flat_centroids()
        if flat is not None:
            return np.ascontiguousarray(flat[0], dtype=np.float32)
        return np.ascontiguousarray(self.quantizer.reconstruct_n(0, self.nlist), dtype=np.float32)

    def _encode(self, x: np.ndarray, list_nos: np.ndarray) -> np.ndarray:
        return self.rabitq.encode_rows(x, self._all_centroids(), list_nos)

    def _decode(self, codes: np.ndarray, list_nos: np.ndarray) -> np.ndarray:
        return self.rabitq.decode_rows(codes, self._all_centroids(), list_nos)

    def _list_overhead(self) -> float:
        # the query factors against each probed centroid: about one code's work
        return 1.0

    # --- per-call knobs ------------------------------------------------------
    def _set_knobs(self, params: SearchParameters | None) -> None:
        tls = self.__dict__.get("_knob_tls")
        if tls is None:
            tls = self.__dict__.setdefault("_knob_tls", threading.local())
        tls.value = search_knobs(self, params, IVFRaBitQSearchParameters)

    def _knobs(self) -> tuple[int, bool]:
        tls = self.__dict__.get("_knob_tls")
        got = getattr(tls, "value", None) if tls is not None else None
        return got if got is not None else (check_qb(self.qb), False)

    def _search(self, x, k, params, D, I):
        self._set_knobs(params)
        try:
            return super()._search(x, k, params, D, I)
        finally:
            self._knob_tls.value = None

    def _range_search(self, x, radius, params):
        self._set_knobs(params)
        try:
            return super()._range_search(x, radius, params)
        finally:
            self._knob_tls.value = None

    def search_preassigned(self, x: Any, k: int, assign: Any, centroid_dis: Any = None,
                           params: SearchParameters | None = None) -> tuple[np.ndarray, np.ndarray]:
        self._set_knobs(self._check_params(params))
        try:
            return super().search_preassigned(x, k, assign, centroid_dis, params)
        finally:
            self._knob_tls.value = None

    def range_search_preassigned(self, x: Any, radius: float, assign: Any, centroid_dis: Any = None,
                                 params: SearchParameters | None = None):
        self._set_knobs(self._check_params(params))
        try:
            return super().range_search_preassigned(x, radius, assign, centroid_dis, params)
        finally:
            self._knob_tls.value = None

    # --- scans ----------------------------------------------------------------
    def _search_preassigned(self, x, k, probes, probe_dists, ctx, D, I):
        qb, centered = self._knobs()
        K.ivf_search(x, np.ascontiguousarray(probes, dtype=np.int64), self._all_centroids(), ctx.codes,
                     ctx.ids, ctx.offsets, ctx.sizes, self.rabitq.nb_bits, qb, centered, self.metric_type,
                     ctx.max_codes,
                     ctx.mask, ctx.use_mask, worst_distance(self.metric_type), D, I)
        return D, I

    def _range_preassigned(self, x, radius, probes, probe_dists, ctx):
        qb, centered = self._knobs()
        return K.ivf_range_search(x, np.ascontiguousarray(probes, dtype=np.int64), self._all_centroids(),
                                  ctx.codes, ctx.ids, ctx.offsets, ctx.sizes, self.rabitq.nb_bits, qb, centered,
                                  self.metric_type, np.float32(radius), ctx.max_codes, ctx.mask,
                                  ctx.use_mask)

    def sa_code_size(self) -> int:
        return self.code_size
