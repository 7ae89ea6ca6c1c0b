"""Distance metrics, with FAISS's numeric values so files and code interoperate.

Cosine similarity is inner product on L2-normalised vectors: call
:func:`voisin.normalize_L2` on both the database and the queries, then use
``METRIC_INNER_PRODUCT`` (``IndexFlatIP``). Scores are then cosines in [-1, 1].
"""

from __future__ import annotations

import numpy as np

METRIC_INNER_PRODUCT = 0
METRIC_L2 = 1

_NAMES = {METRIC_INNER_PRODUCT: "METRIC_INNER_PRODUCT", METRIC_L2: "METRIC_L2"}

# FAISS fills missing results with id -1 and the worst float32 value, not inf:
# we do the same so code that checks `D == np.finfo(np.float32).max` keeps working.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def metric_name(metric: int) -> str:
    return _NAMES.get(metric, f"metric {metric}")


def check_metric(metric: object) -> int:
    """Return ``metric`` as an int, or raise naming the supported values."""
    if isinstance(metric, str):
        key = metric.strip().lower()
        aliases = {"l2": METRIC_L2, "euclidean": METRIC_L2, "ip": METRIC_INNER_PRODUCT,
                   "inner_product": METRIC_INNER_PRODUCT, "dot": METRIC_INNER_PRODUCT}
        if key in aliases:
            return aliases[key]
        raise ValueError(
            f"metric: expected METRIC_L2, METRIC_INNER_PRODUCT, 'l2' or 'ip', got {metric!r}"
            " (for cosine, normalize_L2 the vectors and use METRIC_INNER_PRODUCT)")
    if isinstance(metric, (bool, np.bool_)) or not isinstance(metric, (int, np.integer)):
        raise TypeError(f"metric: expected METRIC_L2 or METRIC_INNER_PRODUCT, got {metric!r}")
    if int(metric) not in _NAMES:
        raise ValueError(
            f"metric: only METRIC_L2 (1) and METRIC_INNER_PRODUCT (0) are supported, got {metric}")
    return int(metric)


def is_similarity(metric: int) -> bool:
    """True when larger is better (inner product): results sort descending."""
    return metric == METRIC_INNER_PRODUCT


def worst_distance(metric: int) -> float:
    """The distance FAISS reports for a missing result under ``metric``."""
    return -FLOAT32_MAX if is_similarity(metric) else FLOAT32_MAX


#: FAISS's name for :func:`is_similarity` (``faiss.is_similarity_metric``)
is_similarity_metric = is_similarity
