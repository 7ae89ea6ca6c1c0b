"""Free functions: knn, pairwise_distances, normalize_L2 and cosine similarity
through normalise + inner product, against numpy and faiss; plus the one
real-data check on siftsmall."""

from __future__ import annotations

import numpy as np
import pytest

import voisin
from conftest import (assert_knn_valid, assert_same_results, distances_f64, load_hdf5,
                      tolerance)

faiss = pytest.importorskip("faiss")

METRICS = [voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT]
METRIC_IDS = ["L2", "IP"]


@pytest.mark.parametrize("metric", METRICS, ids=METRIC_IDS)
@pytest.mark.parametrize("nq, nb, k", [(1, 50, 5), (19, 2049, 10), (20, 300, 1), (64, 100, 120)])
def test_knn_vs_brute_force_and_faiss(rng, metric, nq, nb, k):
    xb = rng.standard_normal((nb, 10)).astype(np.float32)
    xq = rng.standard_normal((nq, 10)).astype(np.float32)
    D, I = voisin.knn(xq, xb, k, metric)
    assert_knn_valid(D, I, xq, xb, k, metric)
    Df, If = faiss.knn(xq, xb, k, metric=metric)
    assert_same_results(D, I, Df, If, tolerance(xq, xb, metric))
    # knn is the same computation as a flat index
    index = voisin.IndexFlat(10, metric)
    index.add(xb)
    Di, Ii = index.search(xq, k)
    np.testing.assert_array_equal(I, Ii)
    np.testing.assert_array_equal(D, Di)


def test_knn_metric_spellings_and_inputs(rng):
    xb = rng.standard_normal((40, 3))  # float64 lists are converted once
    xq = rng.standard_normal((5, 3))
    ref = voisin.knn(xq, xb, 4, voisin.METRIC_INNER_PRODUCT)
    for spelling in ("ip", "IP", "inner_product", "dot", 0, np.int32(0)):
        D, I = voisin.knn(xq.tolist(), xb.tolist(), 4, spelling)
        np.testing.assert_array_equal(I, ref[1])
    D, I = voisin.knn(xq, xb, 4)  # default metric is L2
    np.testing.assert_array_equal(I, voisin.knn(xq, xb, 4, "euclidean")[1])
    assert_knn_valid(D, I, xq, xb, 4, voisin.METRIC_L2)


@pytest.mark.parametrize("metric", METRICS, ids=METRIC_IDS)
def test_pairwise_distances_vs_numpy_and_faiss(rng, metric):
    xq = rng.standard_normal((33, 20)).astype(np.float32)
    xb = rng.standard_normal((77, 20)).astype(np.float32)
    P = voisin.pairwise_distances(xq, xb, metric)
    assert P.shape == (33, 77) and P.dtype == np.float32
    ref = distances_f64(xq, xb, metric)
    tol = tolerance(xq, xb, metric)[:, None]
    assert (np.abs(P - ref) <= tol).all()
    Pf = faiss.pairwise_distances(xq, xb, metric)
    assert (np.abs(P - Pf) <= 2 * tol).all()
    if metric == voisin.METRIC_L2:
        assert (P >= 0).all()
        # distance of a vector to itself: 0 up to rounding, never negative
        self_d = np.diag(voisin.pairwise_distances(xq, xq))
        assert (self_d >= 0).all() and (self_d <= tolerance(xq, xq, metric)).all()


def test_pairwise_distances_edge_shapes(rng):
    xq = rng.standard_normal((4, 3)).astype(np.float32)
    assert voisin.pairwise_distances(xq, np.zeros((0, 3), np.float32)).shape == (4, 0)
    assert voisin.pairwise_distances(np.zeros((0, 3), np.float32), xq).shape == (0, 4)
    one = voisin.pairwise_distances(xq[0], xq[1])  # 1-D rows are single vectors
    np.testing.assert_allclose(one, [[((xq[0] - xq[1]) ** 2).sum()]], rtol=1e-5)


def test_normalize_l2_in_place_like_faiss(rng):
    x = (rng.standard_normal((50, 7)) * 10).astype(np.float32)
    x[3] = 0.0  # a zero row stays zero (no NaN)
    ours = x.copy()
    out = voisin.normalize_L2(ours)
    assert out is ours
    theirs = x.copy()
    faiss.normalize_L2(theirs)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7)
    norms = np.linalg.norm(ours.astype(np.float64), axis=1)
    np.testing.assert_allclose(np.delete(norms, 3), 1.0, rtol=1e-6)
    assert (ours[3] == 0).all()
    v = np.array([3.0, 4.0], np.float32)  # a single 1-D vector
    voisin.normalize_L2(v)
    np.testing.assert_allclose(v, [0.6, 0.8], rtol=1e-6)
    empty = np.zeros((0, 4), np.float32)
    assert voisin.normalize_L2(empty).shape == (0, 4)


@pytest.mark.parametrize("nq", [3, 30], ids=["scan", "blas"])
def test_cosine_via_normalize_and_inner_product(rng, nq):
    xb = (rng.standard_normal((1500, 16)) + 0.5).astype(np.float32)
    xq = (rng.standard_normal((nq, 16)) + 0.5).astype(np.float32)
    cos = (xq.astype(np.float64) @ xb.T.astype(np.float64)) / np.outer(
        np.linalg.norm(xq.astype(np.float64), axis=1), np.linalg.norm(xb.astype(np.float64), axis=1))
    nb_, nq_ = xb.copy(), xq.copy()
    voisin.normalize_L2(nb_)
    voisin.normalize_L2(nq_)
    index = voisin.IndexFlatIP(16)
    index.add(nb_)
    D, I = index.search(nq_, 10)
    order = np.argsort(-cos, axis=1)[:, :10]
    np.testing.assert_allclose(D, np.take_along_axis(cos, order, 1), atol=1e-5)
    np.testing.assert_allclose(D, np.take_along_axis(cos, I, 1), atol=1e-5)
    assert (D <= 1.0 + 1e-6).all() and (D >= -1.0 - 1e-6).all()
    # and L2 on normalised vectors ranks identically (||a-b||^2 = 2 - 2cos)
    l2 = voisin.IndexFlatL2(16)
    l2.add(nb_)
    D2, I2 = l2.search(nq_, 10)
    np.testing.assert_allclose(D2, 2.0 - 2.0 * D, atol=1e-5)


@pytest.mark.slow
def test_siftsmall_recall_at_100_is_exact():
    data = load_hdf5("siftsmall-128-euclidean")
    assert data["distance"] == "euclidean"
    xb, xq, gt, gt_d = data["train"], data["test"], data["neighbors"], data["distances"]
    index = voisin.IndexFlatL2(xb.shape[1])
    index.add(xb)
    for queries in (xq[:10], xq):  # scan path and BLAS path
        n = queries.shape[0]
        D, I = index.search(queries, 100)
        # ground-truth distances are non-squared L2: a returned id is correct when its
        # true distance is within the 100th true distance (ties count, as in ann-benchmarks)
        true = np.sqrt(distances_f64(queries, xb, voisin.METRIC_L2))
        kth = gt_d[:n, 99:100].astype(np.float64)
        got = np.take_along_axis(true, I, 1)
        recall = (got <= kth * (1 + 1e-5) + 1e-4).sum() / I.size
        assert recall == 1.0
        np.testing.assert_allclose(np.sqrt(D), gt_d[:n], rtol=1e-4, atol=1e-3)
        # and the id sets agree with the file except where distances tie
        for i in range(n):
            differ = set(I[i].tolist()) ^ set(gt[i].tolist())
            assert all(abs(true[i, j] - kth[i, 0]) <= 1e-3 * kth[i, 0] for j in differ)
