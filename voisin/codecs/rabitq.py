"""RaBitQ quantizer (FAISS's ``RaBitQuantizer``), 1 to 9 bits per component.

Each vector ``x`` is coded against a centroid ``c`` by the signs of ``x - c``
(one bit per component) plus two float32 factors, ``||x - c||^2`` (minus
``||x||^2`` under inner product) and ``dp_multiplier``, which let a query's
distance be estimated without decoding (see ``voisin/kernels/rabitq.py``).
FAISS applies no rotation inside the quantizer: wrap the index in a random
rotation (``RR{d},RaBitQ``) for the paper's guarantees.

With ``nb_bits > 1`` each component also gets ``nb_bits - 1`` ex-bits (its
magnitude on a grid whose scale maximizes the cosine with the residual) and the
code three more float32 (``f_error``, ``f_add_ex``, ``f_rescale_ex``).

The codes are byte-identical to faiss-cpu's for the same input and centroid.

Example:
    >>> import numpy as np
    >>> from voisin.codecs.rabitq import RaBitQuantizer
    >>> x = np.random.default_rng(0).standard_normal((100, 16)).astype("float32")
    >>> rq = RaBitQuantizer(16)
    >>> rq.compute_codes(x).shape
    (100, 10)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import as_codes, as_matrix, check_dimension, check_int
from ..kernels import rabitq as K
from ..metric import METRIC_INNER_PRODUCT, METRIC_L2, check_metric

_NO_LISTS = np.zeros(1, dtype=np.int64)


def compute_code_size(d: int, nb_bits: int = 1) -> int:
    """Bytes of one code: FAISS's RaBitQuantizer::compute_code_size."""
    d = check_dimension(d)
    nb_bits = check_int(nb_bits, "nb_bits", lo=1, hi=9)
    ex_bits = nb_bits - 1
    size = (d + 7) // 8 + (8 if ex_bits == 0 else 12)
    if ex_bits:
        size += (d * ex_bits + 7) // 8 + 8
    return size


def check_nb_bits(nb_bits: Any) -> int:
    """Bits per component, 1..9 as FAISS (1 sign bit + nb_bits-1 ex-bits)."""
    return check_int(nb_bits, "nb_bits", lo=1, hi=9)


def check_qb(qb: Any, name: str = "qb") -> int:
    """Query bits: 0 (float query) or 1..8 (scalar-quantized query), as FAISS."""
    return check_int(qb, name, lo=0, hi=8)


class RaBitQuantizer:
    """FAISS's ``RaBitQuantizer``: ``d``, ``metric_type``, ``nb_bits``, ``code_size``,
    ``centroid`` (None: codes against the origin). Training does nothing (the
    indexes own the centroid)."""

    def __init__(self, d: int, metric: int = METRIC_L2, nb_bits: int = 1):
        self.d = check_dimension(d)
        self.metric_type = check_metric(metric)
        if self.metric_type not in (METRIC_L2, METRIC_INNER_PRODUCT):
            raise ValueError(f"metric: RaBitQ supports METRIC_L2 and METRIC_INNER_PRODUCT, got {metric}")
        self.nb_bits = check_nb_bits(nb_bits)
        self.code_size = compute_code_size(self.d, self.nb_bits)
        self.centroid: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"RaBitQuantizer(d={self.d}, nb_bits={self.nb_bits}, code_size={self.code_size})"

    def compute_code_size(self, d: int, nb_bits: int) -> int:
        return compute_code_size(d, nb_bits)

    def train(self, x: Any) -> None:
        """Nothing to learn (FAISS's RaBitQuantizer::train is empty); checks ``x``."""
        as_matrix(x, self.d, "x")

    def _centroid(self, centroid: Any) -> np.ndarray:
        c = self.centroid if centroid is None else centroid
        if c is None:
            return np.zeros((1, self.d), dtype=np.float32)
        return as_matrix(np.asarray(c, dtype=np.float32).reshape(1, -1), self.d, "centroid")

    def encode_rows(self, x: np.ndarray, cent: np.ndarray, list_nos: np.ndarray | None = None) -> np.ndarray:
        """Codes of clean float32 rows against ``cent[list_nos[i]]`` (``cent[0]`` when none)."""
        out = np.empty((x.shape[0], self.code_size), dtype=np.uint8)
        if x.shape[0]:
            use = list_nos is not None
            K.encode(x, cent, list_nos if use else _NO_LISTS, use, self.metric_type, self.nb_bits, out)
        return out

    def decode_rows(self, codes: np.ndarray, cent: np.ndarray, list_nos: np.ndarray | None = None) -> np.ndarray:
        out = np.empty((codes.shape[0], self.d), dtype=np.float32)
        if codes.shape[0]:
            use = list_nos is not None
            K.decode(codes, cent, list_nos if use else _NO_LISTS, use, out)
        return out

    def compute_codes(self, x: Any, centroid: Any = None) -> np.ndarray:
        """(n, code_size) uint8 codes of ``x`` against ``centroid`` (default: ``self.centroid``)."""
        return self.encode_rows(as_matrix(x, self.d, "x"), self._centroid(centroid))

    def decode(self, codes: Any, centroid: Any = None) -> np.ndarray:
        """Vectors back from codes: ``c + (2 bit - 1) * dp_multiplier / sqrt(d)``."""
        return self.decode_rows(as_codes(codes, "codes", self.code_size), self._centroid(centroid))
