"""Exact search under FAISS's further metrics (``METRIC_L1``, ``METRIC_Linf``,
``METRIC_Lp`` with ``metric_arg`` = p, ``METRIC_Canberra``, ``METRIC_BrayCurtis``,
``METRIC_JensenShannon``, ``METRIC_Jaccard``): what ``IndexFlat(d, metric)``,
``voisin.knn`` and ``voisin.pairwise_distances`` do for them.

As FAISS: Lp is sum |x - y|^p without the root; Jaccard (sum min / sum max) is
a similarity, sorted descending; a pair whose distance is NaN (Canberra on two
zeros, JensenShannon on a zero) is never a result.

Example:
    >>> import numpy as np, voisin
    >>> index = voisin.IndexFlat(3, voisin.METRIC_L1)
    >>> index.add(np.array([[0, 0, 0], [1, 2, 3]], dtype="float32"))
    >>> D, I = index.search(np.array([[1, 1, 2]], dtype="float32"), 2)
    >>> D.tolist(), I.tolist()
    ([[2.0, 4.0]], [[1, 0]])
"""

from __future__ import annotations

import numpy as np

from .kernels import extra_metrics as K
from .metric import EXTRA_METRICS, is_similarity, worst_distance

_NO_MASK = np.zeros(1, dtype=np.bool_)
#: pairwise blocks hold at most this many distances (64 MB of float32)
BLOCK_CELLS = 1 << 24


def is_extra(metric: int) -> bool:
    return metric in EXTRA_METRICS


def search(xq: np.ndarray, xb: np.ndarray, nb: int, metric: int, arg: float, k: int,
           mask: np.ndarray | None = None, D: np.ndarray | None = None,
           I: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """k best rows of ``xb[:nb]`` for each query; inputs already validated."""
    nq = xq.shape[0]
    D = np.empty((nq, k), dtype=np.float32) if D is None else D
    I = np.empty((nq, k), dtype=np.int64) if I is None else I
    if nq == 0:
        return D, I
    use_mask = mask is not None
    K.topk(xq, xb, nb, metric, np.float32(arg), mask if use_mask else _NO_MASK, use_mask, D, I)
    D[I < 0] = worst_distance(metric)
    return D, I


def pairwise(xq: np.ndarray, xb: np.ndarray, metric: int, arg: float) -> np.ndarray:
    out = np.empty((xq.shape[0], xb.shape[0]), dtype=np.float32)
    K.pairwise(xq, xb, metric, np.float32(arg), out)
    return out


def range_search(xq: np.ndarray, xb: np.ndarray, nb: int, metric: int, arg: float, radius: float,
                 mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FAISS's range search: distances below ``radius`` (similarities above it)."""
    nq = xq.shape[0]
    lims = np.zeros(nq + 1, dtype=np.int64)
    Ds, Is = [], []
    step = max(1, BLOCK_CELLS // max(1, nb))
    r = np.float32(radius)
    for q0 in range(0, nq, step):
        q1 = min(nq, q0 + step)
        block = pairwise(xq[q0:q1], xb[:nb], metric, arg)
        with np.errstate(invalid="ignore"):
            hit = block > r if is_similarity(metric) else block < r
        if mask is not None:
            hit &= mask[:nb][None, :]
        rows, cols = np.nonzero(hit)
        lims[q0 + 1:q1 + 1] = np.bincount(rows, minlength=q1 - q0)
        Ds.append(block[rows, cols])
        Is.append(cols.astype(np.int64))
    np.cumsum(lims, out=lims)
    D = np.concatenate(Ds) if Ds else np.zeros(0, np.float32)
    I = np.concatenate(Is) if Is else np.zeros(0, np.int64)
    return lims, D, I
