"""voisin.evaluate: recall@k that counts ties, plain id recall, exact distances."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voisin.datasets import ground_truth
from voisin.evaluate import id_recall_at_k, recall_at_k, true_distances

# Points on a line around the query 0: ids 1 and 2 tie at distance 1, 3 and 4 at distance 2.
LINE = np.array([[0.0], [1.0], [-1.0], [2.0], [-2.0], [3.0], [9.0]], dtype=np.float32)
Q0 = np.zeros((1, 1), dtype=np.float32)
GT_IDS = np.array([[0, 1, 2, 3, 4, 5]])
GT_D = np.array([[0.0, 1.0, 1.0, 2.0, 2.0, 3.0]])


def recall(I, k, **kw):
    return recall_at_k(np.array(I), GT_D, k, xq=Q0, xb=LINE, metric="euclidean", **kw)


def test_tie_at_the_boundary_counts_as_a_hit():
    # ground truth chose id 3 as 4th neighbour, the index returns its tie 4 instead
    assert recall([[0, 1, 2, 4]], 4) == 1.0
    assert id_recall_at_k(np.array([[0, 1, 2, 4]]), GT_IDS, 4) == 0.75
    # order inside the top-k does not matter
    assert recall([[2, 0, 4, 1]], 4) == 1.0


def test_worse_than_the_kth_is_a_miss():
    assert recall([[0, 1, 2, 5]], 4) == 0.75      # id 5 is at 3 > 2
    assert recall([[6, 5, 4, 3]], 2) == 0.0       # ids 6 and 5 are too far for k=2
    assert recall([[0, 3, 2, 1]], 2) == 0.5       # only the first k columns are judged


def test_missing_and_duplicate_ids_are_misses():
    assert recall([[0, 1, -1, -1]], 4) == 0.5
    assert recall([[0, 0, 0, 0]], 4) == 0.25      # one neighbour returned four times counts once
    assert recall([[-1, -1]], 2) == 0.0
    assert id_recall_at_k(np.array([[0, 0, 1, -1]]), GT_IDS, 4) == 0.5


def test_relative_tolerance_is_one_in_a_million():
    xb = np.array([[0.0], [1.0], [1.0 + 5e-7], [1.0 + 5e-6]], dtype=np.float64).astype(np.float32)
    gt = np.array([[0.0, 1.0]])
    d = true_distances(Q0, xb, np.array([[2, 3]]), "euclidean")[0]
    assert d[0] <= 1.0 * (1 + 1e-6) < d[1]
    r = recall_at_k(np.array([[0, 2], [0, 3]]), np.vstack([gt, gt]), 2, xq=np.zeros((2, 1), np.float32),
                    xb=xb, metric="euclidean", per_query=True)
    assert r.tolist() == [1.0, 0.5]


def test_angular_ties_and_scale_invariance():
    xb = np.array([[1, 0], [0, 1], [0, -1], [5, 5], [-1, 0]], dtype=np.float32)
    q = np.array([[2.0, 0.0]], dtype=np.float32)
    gt = np.array([[0.0, 1 - np.sqrt(0.5), 1.0]])
    # ids 1 and 2 are both at cosine distance 1 (orthogonal): either is the 3rd neighbour
    for third in (1, 2):
        assert recall_at_k(np.array([[0, 3, third]]), gt, 3, xq=q, xb=xb, metric="angular") == 1.0
    assert recall_at_k(np.array([[0, 3, 4]]), gt, 3, xq=q, xb=xb, metric="angular") == pytest.approx(2 / 3)


def test_duplicate_vectors_with_zero_distance():
    # exact duplicates: the k-th true distance is 0 and angular rounding must not turn it into a miss
    xb = np.tile(np.array([[0.3, 0.7, 0.1]], np.float32), (4, 1))
    q = xb[:1] * 3
    gt = np.zeros((1, 2))
    assert recall_at_k(np.array([[3, 2]]), gt, 2, xq=q, xb=xb, metric="angular") == 1.0
    assert recall_at_k(np.array([[3, 2]]), gt, 2, xq=xb[:1], xb=xb, metric="euclidean") == 1.0


def test_gt_ids_protect_against_low_precision_ground_truth():
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((300, 8)).astype(np.float32)
    xq = rng.standard_normal((20, 8)).astype(np.float32)
    ids, dist = ground_truth(xb, xq, 10, "euclidean")
    low = dist.astype(np.float16).astype(np.float64)   # a file stored with fewer digits
    low = np.nextafter(np.minimum(low, dist), -np.inf)  # and rounded down
    without = recall_at_k(ids, low, 10, xq=xq, xb=xb, metric="euclidean")
    with_ids = recall_at_k(ids, low, 10, xq=xq, xb=xb, metric="euclidean", gt_ids=ids)
    assert without < 1.0
    assert with_ids == 1.0


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 8), metric=st.sampled_from(["euclidean", "angular"]))
def test_matches_a_python_reference(seed, k, metric):
    rng = np.random.default_rng(seed)
    # small integer coordinates make exact ties common
    xb = rng.integers(-2, 3, size=(40, 3)).astype(np.float32)
    xq = rng.integers(-2, 3, size=(6, 3)).astype(np.float32)
    xb[0] = 1  # at least one non-zero vector for angular
    _, gd = ground_truth(xb, xq, k, metric)
    I = rng.integers(-1, 40, size=(6, k))
    got = recall_at_k(I, gd, k, xq=xq, xb=xb, metric=metric, per_query=True)
    for qi in range(6):
        q = xq[qi].astype(np.float64)
        seen, hits = set(), 0
        for j in I[qi]:
            if j < 0 or j in seen:
                continue
            seen.add(j)
            v = xb[j].astype(np.float64)
            if metric == "euclidean":
                dj = np.sqrt(((q - v) ** 2).sum())
            else:
                nn = np.linalg.norm(q) * np.linalg.norm(v)
                dj = 1 - (q @ v) / nn if nn > 0 else 1.0
            hits += max(dj, 0) <= max(gd[qi, k - 1], 0) * (1 + 1e-6)
        assert got[qi] == hits / k
    # the exact answer always scores 1, whatever ties it picked
    ids, _ = ground_truth(xb, xq, k, metric)
    assert recall_at_k(ids, gd, k, xq=xq, xb=xb, metric=metric) == 1.0


def test_true_distances():
    rng = np.random.default_rng(2)
    xb = rng.standard_normal((50, 4)).astype(np.float32)
    xq = rng.standard_normal((3, 4)).astype(np.float32)
    I = np.array([[0, 5, -1], [49, 50, 1], [2, 2, 3]])
    d = true_distances(xq, xb, I, "euclidean")
    assert np.isinf(d[0, 2]) and np.isinf(d[1, 1])  # -1 and out of range
    assert d[1, 0] == pytest.approx(np.linalg.norm(xq[1].astype(np.float64) - xb[49]))
    a = true_distances(xq, xb, I, "angular")
    cos = xq[2].astype(np.float64) @ xb[3] / np.linalg.norm(xq[2].astype(np.float64)) / np.linalg.norm(xb[3].astype(np.float64))
    assert a[2, 2] == pytest.approx(1 - cos)


def test_bad_input():
    with pytest.raises(ValueError, match="columns"):
        recall([[0, 1]], 3)
    with pytest.raises(ValueError, match="gt_distances"):
        recall_at_k(np.array([[0], [1]]), GT_D, 1, xq=Q0, xb=LINE, metric="euclidean")
    with pytest.raises(TypeError, match="integer"):
        recall_at_k(np.array([[0.0, 1.0]]), GT_D, 2, xq=Q0, xb=LINE, metric="euclidean")
    with pytest.raises(ValueError, match="metric"):
        recall_at_k(np.array([[0, 1]]), GT_D, 2, xq=Q0, xb=LINE, metric="cosine-ish")
    with pytest.raises(ValueError, match="positive"):
        recall([[0, 1]], 0)
    with pytest.raises(ValueError, match="rows"):
        id_recall_at_k(np.array([[0, 1]]), np.zeros((2, 2), int), 2)
    with pytest.raises(ValueError, match="dimension"):
        recall_at_k(np.array([[0]]), GT_D, 1, xq=np.zeros((1, 2)), xb=LINE, metric="euclidean")
