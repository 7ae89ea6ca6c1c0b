"""Kmeans: FAISS semantics, objective against faiss-cpu, errors and warnings."""

import warnings

import numpy as np
import pytest

import voisin
from voisin.clustering import _split_empty_clusters, assign_to_centroids

faiss = pytest.importorskip("faiss")


def _blobs(n=3000, d=8, k=10, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 10, (k, d)).astype("float32")
    lab = rng.integers(0, k, n)
    return (centers[lab] + rng.normal(0, 1, (n, d))).astype("float32"), centers


def test_objective_matches_bruteforce_and_decreases():
    x, _ = _blobs()
    km = voisin.Kmeans(8, 10, niter=15, seed=3, max_points_per_centroid=1000)  # no subsampling
    final = km.train(x)
    assert km.centroids.shape == (10, 8) and km.centroids.dtype == np.float32
    assert km.obj.shape == (15,)
    # obj[i] is the objective of the assignment made at iteration i
    assert np.all(np.diff(km.obj) <= 1e-3 * km.obj[0])
    assert final == km.obj[-1]
    # recompute: the last objective is the cost of assigning to the centroids *before* the last update
    D, I = km.assign(x)
    d2 = ((x[:, None, :] - km.centroids[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(I, d2.argmin(1))
    np.testing.assert_allclose(D, d2.min(1), rtol=1e-4, atol=1e-3)
    assert D.sum() <= final * (1 + 1e-4)


def test_objective_close_to_faiss():
    # unstructured data: the local optimum barely depends on the initialisation
    # (on well-separated blobs both libraries land in seed-dependent optima)
    x = np.random.default_rng(0).normal(size=(20000, 16)).astype("float32")
    ours = voisin.Kmeans(16, 64, niter=20).train(x)
    theirs = faiss.Kmeans(16, 64, niter=20).train(x)
    assert abs(ours - theirs) <= 0.02 * theirs


def test_index_and_assign():
    x, _ = _blobs()
    km = voisin.Kmeans(8, 10, niter=5)
    km.train(x)
    assert isinstance(km.index, voisin.IndexFlat) and km.index.ntotal == 10
    D, I = km.index.search(x[:50], 1)
    D2, I2 = km.assign(x[:50])
    np.testing.assert_array_equal(I[:, 0], I2)


def test_spherical_uses_inner_product_and_unit_centroids():
    x, _ = _blobs(d=12)
    km = voisin.Kmeans(12, 10, niter=8, spherical=True)
    km.train(x)
    np.testing.assert_allclose(np.linalg.norm(km.centroids, axis=1), 1.0, rtol=1e-5)
    assert km.index.metric_type == voisin.METRIC_INNER_PRODUCT
    D, I = km.assign(x[:20])
    np.testing.assert_array_equal(I, (x[:20] @ km.centroids.T).argmax(1))


def test_errors_and_warnings():
    x, _ = _blobs(n=100)
    with pytest.raises(ValueError, match="at least as large"):
        voisin.Kmeans(8, 200).train(x)
    with pytest.warns(UserWarning, match="please provide at least"):
        voisin.Kmeans(8, 10, niter=2).train(x)
    with pytest.raises(ValueError, match="dimension"):
        voisin.Kmeans(4, 2).train(x)
    with pytest.raises(TypeError, match="unknown parameter"):
        voisin.Kmeans(8, 2, nonsense=1)
    with pytest.raises(ValueError, match="NaN"):
        bad = x.copy()
        bad[3, 2] = np.nan
        voisin.Kmeans(8, 2).train(bad)
    with pytest.raises(RuntimeError, match="train"):
        voisin.Kmeans(8, 2).assign(x)
    with pytest.raises(ValueError, match="k"):
        voisin.Kmeans(8, 0)


def test_n_equals_k_copies_points():
    x, _ = _blobs(n=10)
    km = voisin.Kmeans(8, 10)
    km.train(x)
    np.testing.assert_array_equal(km.centroids, x)


def test_sampling_caps_training_set():
    x, _ = _blobs(n=5000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 5000 > 10*39: no warning expected
        km = voisin.Kmeans(8, 10, niter=3, max_points_per_centroid=50, verbose=False)
        km.train(x)
    assert km.centroids.shape == (10, 8)


def test_nredo_keeps_best_and_seed_is_deterministic():
    x, _ = _blobs(n=2000, k=20)
    a = voisin.Kmeans(8, 20, niter=5, seed=7)
    a.train(x)
    b = voisin.Kmeans(8, 20, niter=5, seed=7)
    b.train(x)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    r = voisin.Kmeans(8, 20, niter=5, nredo=4, seed=7)
    best = r.train(x)
    assert best <= a.obj[-1] * (1 + 1e-6)


def test_empty_clusters_are_split():
    # exact duplicates: several initial centroids coincide, ties go to the
    # first one, so the others start empty and must be split off big clusters
    rng = np.random.default_rng(0)
    base = rng.normal(size=(5, 4)).astype("float32")
    x = np.repeat(base, 200, axis=0)
    km = voisin.Kmeans(4, 20, niter=10, min_points_per_centroid=1)
    km.train(x)
    assert sum(s["nsplit"] for s in km.iteration_stats) > 0
    assert np.isfinite(km.centroids).all()


def test_split_helper_perturbs_symmetrically():
    cent = np.ones((3, 4), dtype=np.float32)
    counts = np.array([0, 10, 0])
    n = _split_empty_clusters(cent, counts, 10, np.random.default_rng(0))
    assert n == 2
    assert not np.allclose(cent[0], cent[1])


def test_weights_pull_centroid():
    x = np.array([[0.0], [1.0], [10.0]], dtype=np.float32)
    km = voisin.Kmeans(1, 1, niter=1)
    km.train(x, weights=np.array([1.0, 1.0, 0.0]))
    np.testing.assert_allclose(km.centroids[0, 0], 0.5, rtol=1e-6)
    with pytest.raises(ValueError, match="weights"):
        km.train(x, weights=np.array([1.0, 2.0]))


def test_assign_kernel_matches_numpy_ip_and_l2():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(700, 9)).astype("float32")
    c = rng.normal(size=(33, 9)).astype("float32")
    lab, dis = assign_to_centroids(x, c, voisin.METRIC_L2)
    d2 = ((x[:, None] - c[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(lab, d2.argmin(1))
    np.testing.assert_allclose(dis, d2.min(1), rtol=1e-4, atol=1e-4)
    lab, dis = assign_to_centroids(x, c, voisin.METRIC_INNER_PRODUCT)
    np.testing.assert_array_equal(lab, (x @ c.T).argmax(1))


def test_kmeans_clustering_helper():
    x, _ = _blobs()
    cent = voisin.kmeans_clustering(x, 10, niter=5)
    assert cent.shape == (10, 8)
