"""Search quality: recall@k that counts ties, and plain id-overlap recall.

Ground truth lists one arbitrary order among neighbours at equal distance, so
comparing id sets alone punishes an index for returning a different, equally
near, vector. :func:`recall_at_k` instead recomputes the true distance of each
returned id and counts it when it is within the k-th true distance
(times 1 + 1e-6), as docs/benchmarking.md defines.

>>> import numpy as np
>>> from voisin.evaluate import recall_at_k
>>> xb = np.array([[0.0], [1.0], [-1.0], [5.0]], dtype="float32")
>>> xq = np.zeros((1, 1), dtype="float32")
>>> # ids 1 and 2 tie at distance 1: either one is a correct 2nd neighbour
>>> recall_at_k(np.array([[0, 2]]), np.array([[0.0, 1.0]]), 2, xq=xq, xb=xb, metric="euclidean")
1.0
"""

from __future__ import annotations

import numpy as np

from ._validate import as_matrix, check_k
from .datasets import check_dataset_metric

#: relative slack on the k-th true distance, so float rounding does not turn a tie into a miss
TIE_TOLERANCE = 1e-6

# Queries per block when gathering (block, k, d) float64 vectors.
_BLOCK_ELEMS = 1 << 22


def _as_ids(I, name: str) -> np.ndarray:
    I = np.asarray(I)
    if I.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected an integer array of ids, got dtype {I.dtype}")
    if I.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D (nq, k) array of ids, got shape {I.shape}")
    return I.astype(np.int64, copy=False)


def true_distances(xq, xb, I, metric: str) -> np.ndarray:
    """Exact float64 distances (dataset metric) between each query and the ids in its row of ``I``.

    ``euclidean``: plain L2; ``angular``: 1 - cos (0 for zero vectors' cos).
    Ids of -1 (or any id outside ``xb``) get +inf.
    """
    metric = check_dataset_metric(metric)
    xb = as_matrix(xb, None, "xb")
    xq = as_matrix(xq, xb.shape[1], "xq")
    I = _as_ids(I, "I")
    if I.shape[0] != xq.shape[0]:
        raise ValueError(f"I: expected one row per query ({xq.shape[0]}), got {I.shape[0]} rows")
    nq, k = I.shape
    out = np.full((nq, k), np.inf, dtype=np.float64)
    if nq == 0 or k == 0:
        return out
    valid = (I >= 0) & (I < xb.shape[0])
    safe = np.where(valid, I, 0)
    d = xb.shape[1]
    step = max(1, _BLOCK_ELEMS // max(1, k * d))
    for q0 in range(0, nq, step):
        q1 = min(nq, q0 + step)
        q = xq[q0:q1].astype(np.float64)
        v = xb[safe[q0:q1]].astype(np.float64)           # (b, k, d)
        if metric == "euclidean":
            diff = v - q[:, None, :]
            dist = np.sqrt(np.einsum("bkd,bkd->bk", diff, diff))
        else:
            dots = np.einsum("bkd,bd->bk", v, q)
            vn = np.sqrt(np.einsum("bkd,bkd->bk", v, v))
            qn = np.sqrt(np.einsum("bd,bd->b", q, q))[:, None]
            denom = vn * qn
            cos = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
            dist = 1.0 - cos
        out[q0:q1] = np.where(valid[q0:q1], dist, np.inf)
    return out


def recall_at_k(I, gt_distances, k: int = 10, *, xq, xb, metric: str,
                gt_ids=None, per_query: bool = False) -> float | np.ndarray:
    """recall@k counting ties: the mean share of each query's first ``k`` returned
    ids whose true distance is <= the k-th true distance * (1 + 1e-6).

    ``I`` (nq, >=k) are the returned ids (-1 = missing, a miss);
    ``gt_distances`` (nq, >=k) the dataset's sorted true distances, in the
    dataset ``metric`` (``euclidean`` or ``angular``); the returned ids'
    distances are recomputed from ``xq`` and ``xb`` in float64. When
    ``gt_ids`` is given, the threshold is also raised to the recomputed
    distance of the k-th ground-truth id, so a ground truth stored in lower
    precision never marks its own neighbours as misses.

    Returns the mean over queries, or the per-query recalls with ``per_query=True``.
    """
    k = check_k(k)
    I = _as_ids(I, "I")
    gt = np.asarray(gt_distances, dtype=np.float64)
    if gt.ndim != 2 or gt.shape[0] != I.shape[0]:
        raise ValueError(f"gt_distances: expected shape ({I.shape[0]}, >= {k}), got {gt.shape}")
    if I.shape[1] < k or gt.shape[1] < k:
        raise ValueError(f"k={k} but I has {I.shape[1]} and gt_distances {gt.shape[1]} columns")
    thresh = gt[:, k - 1].copy()
    if gt_ids is not None:
        gi = _as_ids(gt_ids, "gt_ids")
        if gi.shape[0] != I.shape[0] or gi.shape[1] < k:
            raise ValueError(f"gt_ids: expected shape ({I.shape[0]}, >= {k}), got {gi.shape}")
        recomputed = true_distances(xq, xb, gi[:, k - 1:k], metric)[:, 0]
        thresh = np.maximum(thresh, np.where(np.isfinite(recomputed), recomputed, thresh))
    dist = true_distances(xq, xb, I[:, :k], metric)
    # An id returned twice is one neighbour: only its first occurrence may count.
    dist[~_first_occurrence(I[:, :k])] = np.inf
    # Angular distances of (near) duplicates can round to tiny negatives: clamp so that
    # a zero threshold still accepts an exact duplicate.
    limit = np.maximum(thresh, 0.0) * (1.0 + TIE_TOLERANCE)
    hits = (np.maximum(dist, 0.0) <= limit[:, None]).sum(axis=1)
    r = hits / float(k)
    return r if per_query else float(r.mean()) if r.size else 0.0


def _first_occurrence(I: np.ndarray) -> np.ndarray:
    order = np.argsort(I, axis=1, kind="stable")
    s = np.take_along_axis(I, order, axis=1)
    repeat = np.zeros(I.shape, dtype=bool)
    repeat[:, 1:] = s[:, 1:] == s[:, :-1]
    first = np.ones(I.shape, dtype=bool)
    np.put_along_axis(first, order, ~repeat, axis=1)
    return first


def id_recall_at_k(I, gt_ids, k: int = 10, *, per_query: bool = False) -> float | np.ndarray:
    """Plain recall@k: the share of the true top-``k`` ids found among the first ``k`` returned.

    Ignores ties (an equally near vector with another id counts as a miss);
    reported beside :func:`recall_at_k` for comparison with tools that use it.
    """
    k = check_k(k)
    I = _as_ids(I, "I")
    G = _as_ids(gt_ids, "gt_ids")
    if G.shape[0] != I.shape[0]:
        raise ValueError(f"gt_ids: expected {I.shape[0]} rows, got {G.shape[0]}")
    if I.shape[1] < k or G.shape[1] < k:
        raise ValueError(f"k={k} but I has {I.shape[1]} and gt_ids {G.shape[1]} columns")
    found = I[:, :k]
    truth = G[:, :k]
    # (nq, k, k) comparison: k is small (10-100), so this stays vectorised and cheap.
    match = (found[:, :, None] == truth[:, None, :]) & (found[:, :, None] >= 0)
    # any() over the returned axis: a true id found twice still counts once
    hits = match.any(axis=1).sum(axis=1)
    r = hits / float(k)
    return r if per_query else float(r.mean()) if r.size else 0.0
