"""Distance metrics, with FAISS's numeric values so files and code interoperate.

Cosine similarity is inner product on L2-normalised vectors: call
:func:`voisin.normalize_L2` on both the database and the queries, then use
``METRIC_INNER_PRODUCT`` (``IndexFlatIP``). Scores are then cosines in [-1, 1].
"""

from __future__ import annotations

import numpy as np

METRIC_INNER_PRODUCT = 0
METRIC_L2 = 1
# FAISS's further metrics (faiss/MetricType.h), served by IndexFlat and the
# wrappers around it (see voisin/extra_metrics.py); every other index refuses them
METRIC_L1 = 2
METRIC_Linf = 3
METRIC_Lp = 4          # sum |x - y| ** metric_arg (no root, as FAISS)
METRIC_Canberra = 20
METRIC_BrayCurtis = 21
METRIC_JensenShannon = 22
METRIC_Jaccard = 23    # a similarity: sum min / sum max, larger is better

_NAMES = {METRIC_INNER_PRODUCT: "METRIC_INNER_PRODUCT", METRIC_L2: "METRIC_L2"}
EXTRA_METRICS = {METRIC_L1: "METRIC_L1", METRIC_Linf: "METRIC_Linf", METRIC_Lp: "METRIC_Lp",
                 METRIC_Canberra: "METRIC_Canberra", METRIC_BrayCurtis: "METRIC_BrayCurtis",
                 METRIC_JensenShannon: "METRIC_JensenShannon", METRIC_Jaccard: "METRIC_Jaccard"}
#: FAISS metrics voisin does not implement (NaN-aware Euclidean, Gower)
_NOT_IMPLEMENTED = {24: "METRIC_NaNEuclidean", 25: "METRIC_GOWER"}

# FAISS fills missing results with id -1 and the worst float32 value, not inf:
# we do the same so code that checks `D == np.finfo(np.float32).max` keeps working.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def metric_name(metric: int) -> str:
    return _NAMES.get(metric) or EXTRA_METRICS.get(metric) or f"metric {metric}"


def check_metric(metric: object, extra: bool = False) -> int:
    """Return ``metric`` as an int, or raise naming the supported values.
    ``extra``: the caller (IndexFlat, knn) also serves :data:`EXTRA_METRICS`."""
    if isinstance(metric, str):
        key = metric.strip().lower()
        aliases = {"l2": METRIC_L2, "euclidean": METRIC_L2, "ip": METRIC_INNER_PRODUCT,
                   "inner_product": METRIC_INNER_PRODUCT, "dot": METRIC_INNER_PRODUCT}
        if extra:
            aliases.update({"l1": METRIC_L1, "manhattan": METRIC_L1, "linf": METRIC_Linf,
                            "chebyshev": METRIC_Linf, "lp": METRIC_Lp, "canberra": METRIC_Canberra,
                            "braycurtis": METRIC_BrayCurtis, "jensenshannon": METRIC_JensenShannon,
                            "jaccard": METRIC_Jaccard})
        if key in aliases:
            return aliases[key]
        raise ValueError(
            f"metric: expected one of {sorted(aliases)} or a METRIC_* constant, got {metric!r}"
            " (for cosine, normalize_L2 the vectors and use METRIC_INNER_PRODUCT)")
    if isinstance(metric, (bool, np.bool_)) or not isinstance(metric, (int, np.integer)):
        raise TypeError(f"metric: expected METRIC_L2 or METRIC_INNER_PRODUCT, got {metric!r}")
    m = int(metric)
    if m in _NAMES or (extra and m in EXTRA_METRICS):
        return m
    if m in EXTRA_METRICS:
        raise ValueError(f"metric: {EXTRA_METRICS[m]} ({m}) is served by IndexFlat, IndexHNSWFlat (and "
                         "IndexIDMap / IndexPreTransform around them), voisin.knn and "
                         "pairwise_distances; this "
                         "index takes METRIC_L2 (1) or METRIC_INNER_PRODUCT (0)")
    if m in _NOT_IMPLEMENTED:
        raise ValueError(f"metric: {_NOT_IMPLEMENTED[m]} ({m}) is not implemented by voisin")
    raise ValueError(
        f"metric: only METRIC_L2 (1) and METRIC_INNER_PRODUCT (0) are supported here, got {metric}")


def is_similarity(metric: int) -> bool:
    """True when larger is better (inner product, Jaccard): results sort descending."""
    return metric == METRIC_INNER_PRODUCT or metric == METRIC_Jaccard


def worst_distance(metric: int) -> float:
    """The distance FAISS reports for a missing result under ``metric``."""
    return -FLOAT32_MAX if is_similarity(metric) else FLOAT32_MAX


#: FAISS's name for :func:`is_similarity` (``faiss.is_similarity_metric``)
is_similarity_metric = is_similarity
