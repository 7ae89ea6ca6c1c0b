"""IndexRaBitQ: every vector stored as a RaBitQ code, searched exhaustively."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import filtering
from .._validate import as_codes, check_bool
from ..codecs.rabitq import RaBitQuantizer, check_qb
from ..index import Index
from ..kernels import rabitq as K
from ..metric import METRIC_L2, check_metric, worst_distance
from ..selector import SearchParameters
from .code_storage import PublishedCodes


class RaBitQSearchParameters(SearchParameters):
    """Per-call RaBitQ knobs (FAISS's ``RaBitQSearchParameters``): ``qb`` query
    bits (0 = float query; FAISS's default 4) and ``centered`` (a symmetric query
    grid scored with XOR popcounts), plus ``sel``.

    As in FAISS, passing these parameters replaces the index's ``qb`` and
    ``centered`` with the parameters' values (whose defaults are 4 and False).

    Example:
        >>> import voisin
        >>> p = voisin.RaBitQSearchParameters(qb=8, centered=True)
    """

    qb = 4
    centered = False


def search_knobs(index: Any, params: SearchParameters | None, cls: type) -> tuple[int, bool]:
    """(qb, centered) for one search: the parameters' when they are ``cls``, else the index's."""
    if isinstance(params, cls):
        return check_qb(params.qb, "params.qb"), check_bool(params.centered, "params.centered")
    return check_qb(index.qb, "qb"), check_bool(getattr(index, "centered", False), "centered")


class IndexRaBitQ(PublishedCodes, Index):
    """Flat index over RaBitQ codes (FAISS's ``IndexRaBitQ``): ``d/8 + 8`` bytes
    per vector with ``nb_bits=1``. ``train`` computes ``center`` (the mean);
    codes are the signs of ``x - center`` with two correction factors (plus
    ex-bits when ``nb_bits > 1``). Search estimates distances from the codes;
    ``qb`` (default 4, as FAISS) quantizes the query to that many bits (0 keeps
    it in float), ``centered`` uses a symmetric query grid. Multi-bit codes are
    searched in FAISS's two stages (1-bit estimate and error bound, then the
    full distance).

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).standard_normal((2000, 32)).astype("float32")
        >>> index = voisin.IndexRaBitQ(32)
        >>> index.train(xb); index.add(xb)
        >>> D, I = index.search(xb[:3], 10)
        >>> I.shape
        (3, 10)
    """

    params_type = RaBitQSearchParameters

    def __init__(self, d: int, metric: int = METRIC_L2, nb_bits: int = 1):
        super().__init__(d, check_metric(metric))
        self.rabitq = RaBitQuantizer(self.d, self.metric_type, nb_bits)
        self.code_size = self.rabitq.code_size
        self.center = np.zeros(0, dtype=np.float32)
        self.qb = 4
        self.centered = False
        self._codes = np.empty((0, self.code_size), dtype=np.uint8)
        self.is_trained = False

    def __repr__(self) -> str:
        return f"IndexRaBitQ(d={self.d}, qb={self.qb}, ntotal={self.ntotal})"

    def _cent(self) -> np.ndarray:
        return np.ascontiguousarray(self.center, dtype=np.float32).reshape(1, self.d)

    def _train(self, x: np.ndarray) -> None:
        self.center = K.train_center(x)
        self.is_trained = True

    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        if ids is not None:
            raise NotImplementedError("IndexRaBitQ numbers vectors by position: wrap it in "
                                      "IndexIDMap to add with ids")
        self._append(self.rabitq.encode_rows(x, self._cent()))

    def _search(self, x, k, params, D, I):
        qb, centered = search_knobs(self, params, RaBitQSearchParameters)
        if D is None:
            D = np.empty((x.shape[0], k), dtype=np.float32)
        if I is None:
            I = np.empty((x.shape[0], k), dtype=np.int64)
        got = self._scan_rows(params)
        if got is None:
            return filtering.no_results(x.shape[0], k, self.metric_type, D, I)
        codes, n, mask, use_mask, rows = got
        K.flat_search(x, codes, n, self._cent()[0], self.rabitq.nb_bits, qb, centered, self.metric_type, mask, use_mask,
                      worst_distance(self.metric_type), D, I)
        if rows is not None:
            I[:] = np.where(I >= 0, rows[np.maximum(I, 0)], -1)
        return D, I

    def _range_search(self, x, radius, params):
        # FAISS's IndexRaBitQ::range_search takes qb from the parameters but
        # always scores with the uncentred grid
        qb, _ = search_knobs(self, params, RaBitQSearchParameters)
        codes, n = self._snap
        mask, use_mask = self._mask(params, n)
        probes = np.zeros((x.shape[0], 1), dtype=np.int64)
        return K.ivf_range_search(x, probes, self._cent(), codes, np.arange(n, dtype=np.int64),
                                  np.zeros(1, np.int64), np.array([n], dtype=np.int64), self.rabitq.nb_bits, qb, False,
                                  self.metric_type, np.float32(radius), 0, mask, use_mask)

    def sa_code_size(self) -> int:
        return self.code_size

    def sa_encode(self, x) -> np.ndarray:
        """Codes of ``x`` without adding them (FAISS's standalone codec API)."""
        self._check_trained()
        return self.rabitq.encode_rows(self._as_rows(x, "x"), self._cent())

    def sa_decode(self, codes) -> np.ndarray:
        self._check_trained()
        return self._decode_rows(as_codes(codes, "codes", self.code_size))

    def _decode_rows(self, rows: np.ndarray) -> np.ndarray:
        return self.rabitq.decode_rows(rows, self._cent())
