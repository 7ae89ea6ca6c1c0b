"""Clustering / Clustering1D / ProgressiveDimClustering against faiss-cpu.

k-means draws its initial centroids from voisin's generator, so only
quality (objectives within a few percent of faiss's) and FAISS's contract
(what the index and the stats hold afterwards) are compared; the subsample
and exact 1-D k-means are compared value for value.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import voisin

faiss = pytest.importorskip("faiss")
pytestmark = pytest.mark.usefixtures("faiss_single_thread")


def _objective(x: np.ndarray, cent: np.ndarray) -> float:
    d = ((x[:, None, :].astype(np.float64) - cent[None].astype(np.float64)) ** 2).sum(-1)
    return float(d.min(axis=1).sum())


@pytest.fixture(scope="module")
def x():
    return voisin.rand_smooth_vectors(6000, 12, 7)


def test_clustering_quality_and_contract_match_faiss(x):
    k = 40
    ours = voisin.Clustering(12, k)
    ours.niter = 15
    index = voisin.IndexFlatL2(12)
    ours.train(x, index)
    theirs = faiss.Clustering(12, k)
    theirs.niter = 15
    findex = faiss.IndexFlatL2(12)
    theirs.train(x, findex)
    cent = voisin.vector_to_array(ours.centroids).reshape(k, 12)
    fcent = faiss.vector_to_array(theirs.centroids).reshape(k, 12)
    assert ours.iteration_stats.size() == theirs.iteration_stats.size() == 15
    stats = [ours.iteration_stats.at(i) for i in range(15)]
    # the objective of iteration i is measured before its update: it never increases
    objs = np.array([s.obj for s in stats])
    assert (np.diff(objs) <= 1e-6 * objs[0]).all()
    assert all(s.time >= s.time_search >= 0 and s.imbalance_factor >= 1 for s in stats)
    # both optimise the same objective from different random starts
    assert _objective(x, cent) <= 1.05 * _objective(x, fcent)
    # the assignment index holds the final centroids, as FAISS's does
    assert index.ntotal == findex.ntotal == k
    np.testing.assert_array_equal(index.reconstruct_n(0, k), cent)


def test_clustering_with_hnsw_assignment_and_weights(x):
    k = 30
    clus = voisin.Clustering(12, k)
    clus.niter = 8
    index = voisin.IndexHNSWFlat(12, 16)
    w = np.ones(x.shape[0], dtype=np.float32)
    w[:100] = 50.0  # heavy points pull centroids
    clus.train(x, index, weights=w)
    cent = voisin.vector_to_array(clus.centroids).reshape(k, 12)
    assert index.ntotal == k and np.isfinite(cent).all()
    plain = voisin.Clustering(12, k)
    plain.niter = 8
    plain.train(x, voisin.IndexFlatL2(12))
    heavy = x[:100]
    near_heavy = ((heavy[:, None] - cent[None]) ** 2).sum(-1).min(1).mean()
    near_plain = ((heavy[:, None] - voisin.vector_to_array(plain.centroids).reshape(k, 12)[None])
                  ** 2).sum(-1).min(1).mean()
    assert near_heavy < near_plain


def test_clustering_initial_and_frozen_centroids(x):
    k = 10
    given = x[:4].copy()
    clus = voisin.Clustering(12, k)
    clus.niter = 5
    clus.frozen_centroids = True
    voisin.copy_array_to_vector(given.ravel(), clus.centroids)
    clus.train(x, voisin.IndexFlatL2(12))
    cent = voisin.vector_to_array(clus.centroids).reshape(k, 12)
    np.testing.assert_array_equal(cent[:4], given)
    assert not np.array_equal(cent[4:], x[4:10])


def test_clustering_spherical_nredo_and_copy_case(x):
    clus = voisin.Clustering(12, 8)
    clus.spherical = True
    clus.niter = 4
    clus.nredo = 3
    clus.train(x, voisin.IndexFlatIP(12))
    cent = voisin.vector_to_array(clus.centroids).reshape(8, 12)
    np.testing.assert_allclose(np.linalg.norm(cent, axis=1), 1, rtol=1e-5)
    # FAISS keeps the stats accumulated up to the best redo
    assert clus.iteration_stats.size() in (4, 8, 12)
    same = voisin.Clustering(12, 8)
    index = voisin.IndexFlatL2(12)
    same.train(x[:8], index)  # as many points as clusters: copied
    np.testing.assert_array_equal(voisin.vector_to_array(same.centroids).reshape(8, 12), x[:8])
    assert same.iteration_stats.size() == 1 and index.ntotal == 8


def test_clustering_bad_input(x):
    clus = voisin.Clustering(12, 10)
    with pytest.raises(ValueError, match="x: number of training points \\(5\\) should be at least"):
        clus.train(x[:5], voisin.IndexFlatL2(12))
    with pytest.raises(ValueError, match="index: dimension 8 differs"):
        clus.train(x, voisin.IndexFlatL2(8))
    with pytest.raises(TypeError, match="index: expected a voisin Index"):
        clus.train(x, None)
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="x: contains NaN or inf"):
        clus.train(bad, voisin.IndexFlatL2(12))
    with pytest.raises(ValueError, match="weights: expected 6000 weights"):
        clus.train(x, voisin.IndexFlatL2(12), weights=np.ones(3))
    with pytest.raises(TypeError, match="cp: expected ClusteringParameters"):
        voisin.Clustering(12, 10, cp={"niter": 3})
    with pytest.raises(TypeError, match="unknown parameter"):
        voisin.ClusteringParameters(nitre=3)


def test_clustering_parameters_carry_faiss_fields():
    cp = voisin.ClusteringParameters(niter=7, frozen_centroids=True, use_faster_subsampling=True)
    clus = voisin.Clustering(4, 3, cp)
    assert (clus.niter, clus.frozen_centroids, clus.use_faster_subsampling) == (7, True, True)
    f = faiss.ClusteringParameters()
    for field in ("niter", "nredo", "min_points_per_centroid", "max_points_per_centroid", "seed",
                  "decode_block_size", "check_input_data_for_NaNs", "frozen_centroids",
                  "update_index", "spherical", "int_centroids"):
        assert getattr(voisin.ClusteringParameters(), field) == getattr(f, field), field
    p = voisin.ProgressiveDimClusteringParameters()
    fp = faiss.ProgressiveDimClusteringParameters()
    assert (p.niter, p.progressive_dim_steps, p.apply_pca) == (fp.niter, fp.progressive_dim_steps,
                                                                fp.apply_pca)


def test_train_encoded_decodes_with_the_codec(x):
    codec = voisin.IndexScalarQuantizer(12, voisin.ScalarQuantizer.QT_8bit)
    codec.train(x)
    codes = codec.sa_encode(x)
    enc = voisin.Clustering(12, 16)
    enc.niter = 6
    enc.train_encoded(codes, codec, voisin.IndexFlatL2(12))
    dec = voisin.Clustering(12, 16)
    dec.niter = 6
    dec.train(codec.sa_decode(codes), voisin.IndexFlatL2(12))
    np.testing.assert_allclose(voisin.vector_to_array(enc.centroids),
                               voisin.vector_to_array(dec.centroids), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n,k", [(60, 3), (500, 7), (3000, 2), (900, 30)])
def test_clustering1d_equals_faiss(n, k):
    # n > 256 k subsamples (3000, 2): equal results show voisin keeps faiss's rand_perm sample
    v = np.random.RandomState(n + k).standard_normal((n, 1)).astype(np.float32) * 3
    ours = voisin.Clustering1D(k)
    ours.train_exact(v)
    theirs = faiss.Clustering1D(k)
    theirs.train_exact(v)
    c, fc = voisin.vector_to_array(ours.centroids), faiss.vector_to_array(theirs.centroids)
    sample = v.ravel() if n <= 256 * k else v.ravel()[voisin.rng.permutation(n, 1234)[:256 * k]]
    # voisin's DP is exact in float64; FAISS's keeps float32 costs, so on a
    # near-tie its partition may differ: compare the costs, and the centroids
    # wherever FAISS's partition is the optimal one
    ours_cost = _objective(sample[:, None], c[:, None])
    faiss_cost = _objective(sample[:, None], fc[:, None])
    assert ours_cost <= faiss_cost * (1 + 1e-7)
    if faiss_cost <= ours_cost * (1 + 1e-9):
        np.testing.assert_allclose(c, fc, rtol=1e-5, atol=1e-6)
    assert (np.diff(c) > 0).all()
    st = ours.iteration_stats.at(0)
    np.testing.assert_allclose(st.imbalance_factor, theirs.iteration_stats.at(0).imbalance_factor,
                               rtol=1e-3)


def test_clustering1d_bad_input():
    with pytest.raises(ValueError, match="should be at least as large"):
        voisin.Clustering1D(5).train_exact(np.zeros((3, 1), np.float32))
    with pytest.raises(ValueError, match="x: expected vectors of dimension d=1"):
        voisin.Clustering1D(2).train_exact(np.zeros((10, 2), np.float32))
    # all values equal: FAISS fails ("Cluster 1: size 0"), voisin gives the
    # optimal (zero-cost) answer with non-empty clusters
    c = voisin.Clustering1D(3)
    c.train_exact(np.zeros((10, 1), np.float32))
    assert voisin.vector_to_array(c.centroids).tolist() == [0.0, 0.0, 0.0]


def test_progressive_dim_clustering_matches_faiss_quality(x):
    k = 20
    cp = voisin.ProgressiveDimClusteringParameters(progressive_dim_steps=4)
    ours = voisin.ProgressiveDimClustering(12, k, cp)
    ours.train(x.shape[0], voisin.swig_ptr(x), voisin.ProgressiveDimIndexFactory())
    fcp = faiss.ProgressiveDimClusteringParameters()
    fcp.progressive_dim_steps = 4
    theirs = faiss.ProgressiveDimClustering(12, k, fcp)
    theirs.train(x.shape[0], faiss.swig_ptr(x), faiss.ProgressiveDimIndexFactory())
    c = voisin.vector_to_array(ours.centroids).reshape(k, 12)
    fc = faiss.vector_to_array(theirs.centroids).reshape(k, 12)
    assert ours.iteration_stats.size() == theirs.iteration_stats.size() == 4 * 10
    assert _objective(x, c) <= 1.05 * _objective(x, fc)
    again = voisin.ProgressiveDimClustering(12, k, cp)
    again.train(x)  # voisin's shorter form
    assert again.iteration_stats.size() == 40
    with pytest.raises(TypeError, match="factory: expected a callable"):
        again.train(x, 3)


def test_kmeans_and_clustering_warn_on_few_points():
    x = voisin.rand((200, 4), 1)
    clus = voisin.Clustering(4, 20)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clus.train(x, voisin.IndexFlatL2(4))
    assert any("please provide at least" in str(w.message) for w in caught)
