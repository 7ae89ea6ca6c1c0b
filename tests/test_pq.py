"""ProductQuantizer and IndexPQ: codec exactness vs faiss, ADC search vs brute force."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import voisin
from voisin.codecs.pq import ProductQuantizer
from voisin.indexes.pq import IndexPQ

from conftest import assert_knn_valid, brute_force

faiss = pytest.importorskip("faiss")

D_ = 32


def clustered(rng, n, d=D_, nclusters=50):
    centers = rng.normal(size=(nclusters, d)).astype(np.float32) * 3
    return (centers[rng.integers(0, nclusters, n)] + rng.normal(size=(n, d))).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    xb = clustered(rng, 6000)
    xq = clustered(rng, 40)
    return xb, xq


@pytest.fixture(scope="module")
def trained_pq(data):
    """(nbits -> ProductQuantizer) trained on the same data, reused by the tests."""
    xb, _ = data
    out = {}
    for nbits in (8, 4, 6):
        pq = ProductQuantizer(D_, 8, nbits)
        pq.train(xb[:4000])
        out[nbits] = pq
    return out


def faiss_pq_with(pq: ProductQuantizer):
    fpq = faiss.ProductQuantizer(pq.d, pq.M, pq.nbits)
    faiss.copy_array_to_vector(pq.centroids.ravel(), fpq.centroids)
    return fpq


# --------------------------------------------------------------------------- #
# codec
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("nbits", [8, 4, 6])
def test_codes_equal_faiss_given_same_centroids(trained_pq, data, nbits):
    pq = trained_pq[nbits]
    xb, _ = data
    fpq = faiss_pq_with(pq)
    codes = pq.compute_codes(xb)
    assert codes.shape == (xb.shape[0], fpq.code_size) and codes.dtype == np.uint8
    np.testing.assert_array_equal(codes, fpq.compute_codes(xb))
    np.testing.assert_array_equal(pq.decode(codes), fpq.decode(codes))


@pytest.mark.parametrize("nbits", [8, 4, 6])
def test_distance_tables_equal_faiss(trained_pq, data, nbits):
    pq = trained_pq[nbits]
    _, xq = data
    fpq = faiss_pq_with(pq)
    ref = np.empty((xq.shape[0], pq.M, pq.ksub), np.float32)
    fpq.compute_distance_tables(xq.shape[0], faiss.swig_ptr(xq), faiss.swig_ptr(ref))
    np.testing.assert_allclose(pq.compute_distance_tables(xq), ref, rtol=1e-5, atol=1e-4)
    fpq.compute_inner_prod_tables(xq.shape[0], faiss.swig_ptr(xq), faiss.swig_ptr(ref))
    np.testing.assert_allclose(pq.compute_inner_prod_tables(xq), ref, rtol=1e-5, atol=1e-4)


def test_encoding_picks_nearest_subcentroid(trained_pq, data):
    """Each sub-vector's reconstruction is its nearest sub-centroid (numpy brute force)."""
    pq = trained_pq[6]
    xb, _ = data
    x = xb[:500]
    rec = pq.decode(pq.compute_codes(x))
    for m in range(pq.M):
        sub = x[:, m * pq.dsub:(m + 1) * pq.dsub].astype(np.float64)
        cent = pq.centroids[m].astype(np.float64)
        best = ((sub[:, None, :] - cent[None]) ** 2).sum(-1).min(1)
        got = ((sub - rec[:, m * pq.dsub:(m + 1) * pq.dsub]) ** 2).sum(1)
        np.testing.assert_allclose(got, best, rtol=1e-4, atol=1e-5)


def test_training_reduces_error_with_more_bits(trained_pq, data):
    xb, _ = data
    x = xb[4000:5000]  # held out
    err = {nb: float(((x - pq.decode(pq.compute_codes(x))) ** 2).sum(1).mean())
           for nb, pq in trained_pq.items()}
    total = float(((x - x.mean(0)) ** 2).sum(1).mean())
    assert err[8] < err[6] < err[4] < 0.8 * total, err
    # comparable to faiss training on the same data (its k-means, its seed)
    fpq = faiss.ProductQuantizer(D_, 8, 8)
    fpq.train(xb[:4000])
    ferr = float(((x - fpq.decode(fpq.compute_codes(x))) ** 2).sum(1).mean())
    assert err[8] < 1.1 * ferr, (err[8], ferr)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 16), st.integers(1, 9), st.integers(0, 2**31 - 1))
def test_pack_unpack_roundtrip(nbits, M, seed):
    rng = np.random.default_rng(seed)
    pq = ProductQuantizer(M * 2, M, nbits)
    idx = rng.integers(0, 1 << nbits, size=(13, M)).astype(np.int32)
    codes = pq.pack(idx)
    assert codes.shape == (13, (M * nbits + 7) // 8)
    np.testing.assert_array_equal(pq.unpack(codes), idx)
    # little-endian bit stream, as FAISS's PQEncoderGeneric
    bits = np.unpackbits(codes, axis=1, bitorder="little")[:, :M * nbits].reshape(13, M, nbits)
    np.testing.assert_array_equal((bits * (1 << np.arange(nbits))).sum(-1), idx)


def test_code_size_matches_faiss():
    for d, M, nbits in [(64, 16, 8), (50, 25, 4), (32, 8, 6), (30, 3, 5), (128, 64, 8)]:
        assert ProductQuantizer(d, M, nbits).code_size == faiss.ProductQuantizer(d, M, nbits).code_size
        assert IndexPQ(d, M, nbits).code_size == faiss.IndexPQ(d, M, nbits).code_size


# --------------------------------------------------------------------------- #
# IndexPQ
# --------------------------------------------------------------------------- #
def make_index(pq: ProductQuantizer, xb, metric):
    index = IndexPQ(pq.d, pq.M, pq.nbits, metric)
    index.pq.set_centroids(pq.centroids)
    index.is_trained = True
    index.add(xb)
    return index


@pytest.mark.parametrize("metric", [voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT])
@pytest.mark.parametrize("nbits", [8, 4, 6])
def test_search_is_exact_adc(trained_pq, data, metric, nbits):
    """ADC = exact search of the query against the decoded database vectors."""
    xb, xq = data
    pq = trained_pq[nbits]
    index = make_index(pq, xb, metric)
    decoded = pq.decode(pq.compute_codes(xb))
    D, I = index.search(xq, 10)
    assert_knn_valid(D, I, xq, decoded, 10, metric)
    # one query at a time (serial kernel) gives the same answer as the batch
    D1, I1 = index.search(xq[3:4], 10)
    np.testing.assert_array_equal(I1, I[3:4])
    np.testing.assert_allclose(D1, D[3:4], rtol=1e-6)


@pytest.mark.parametrize("metric", [voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT])
def test_search_matches_faiss_index_pq(trained_pq, data, metric):
    xb, xq = data
    pq = trained_pq[8]
    index = make_index(pq, xb, metric)
    f = faiss.IndexPQ(D_, pq.M, 8, metric)
    faiss.copy_array_to_vector(pq.centroids.ravel(), f.pq.centroids)
    f.is_trained = True
    f.add(xb)
    np.testing.assert_array_equal(index.codes, faiss.vector_to_array(f.codes).reshape(-1, pq.code_size))
    D, I = index.search(xq, 10)
    Df, If = f.search(xq, 10)
    np.testing.assert_allclose(D, Df, rtol=1e-5, atol=1e-4)
    assert (I == If).mean() > 0.99  # only ties may differ


def test_recall_floor_against_exact(trained_pq, data):
    xb, xq = data
    index = IndexPQ(D_, 8, 8)
    index.pq = trained_pq[8]  # trained by the fixture with IndexPQ's own training path
    index.is_trained = True
    index.add(xb)
    _, I = index.search(xq, 10)
    _, gt = brute_force(xq, xb, 10, voisin.METRIC_L2)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(I, gt)])
    f = faiss.IndexPQ(D_, 8, 8)
    f.train(xb[:4000])
    f.add(xb)
    _, If = f.search(xq, 10)
    frecall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(If, gt)])
    assert recall > 0.35 and recall >= frecall - 0.05, (recall, frecall)
    assert index.is_trained and index.ntotal == xb.shape[0]


@pytest.mark.parametrize("metric", [voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT])
def test_filters_removal_reconstruct(trained_pq, data, metric):
    xb, xq = data
    pq = trained_pq[4]
    index = make_index(pq, xb, metric)
    decoded = pq.decode(pq.compute_codes(xb))
    allowed = np.zeros(len(xb), bool)
    allowed[::7] = True
    params = voisin.SearchParameters(sel=voisin.IDSelectorBatch(np.flatnonzero(allowed)))
    D, I = index.search(xq, 10, params=params)
    assert_knn_valid(D, I, xq, decoded, 10, metric, allowed=allowed)
    np.testing.assert_array_equal(index.reconstruct(17), decoded[17])
    np.testing.assert_array_equal(index.reconstruct_n(5, 3), decoded[5:8])
    # remove compacts positions, as FAISS
    removed = index.remove_ids(voisin.IDSelectorRange(0, 1000))
    assert removed == 1000 and index.ntotal == len(xb) - 1000
    D, I = index.search(xq, 10)
    assert_knn_valid(D, I, xq, decoded[1000:], 10, metric)
    assert index.remove_ids(np.array([10**9])) == 0
    index.reset()
    assert index.ntotal == 0
    D, I = index.search(xq[:2], 3)
    assert (I == -1).all()


def test_filter_allowing_fewer_than_k_pads(trained_pq, data):
    xb, xq = data
    index = make_index(trained_pq[4], xb, voisin.METRIC_L2)
    params = voisin.SearchParameters(sel=voisin.IDSelectorBatch([3, 9]))
    D, I = index.search(xq[:2], 5, params=params)
    assert set(I[0, :2]) == {3, 9} and (I[:, 2:] == -1).all()
    assert (D[:, 2:] == np.finfo(np.float32).max).all()


@pytest.mark.parametrize("metric", [voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT])
def test_range_search_matches_adc_brute_force(trained_pq, data, metric):
    xb, xq = data
    pq = trained_pq[8]
    index = make_index(pq, xb, metric)
    decoded = pq.decode(pq.compute_codes(xb)).astype(np.float64)
    q = xq[:5].astype(np.float64)
    full = ((q[:, None] - decoded[None]) ** 2).sum(-1) if metric == voisin.METRIC_L2 else q @ decoded.T
    radius = float(np.median(np.sort(full, 1)[:, 20 if metric == voisin.METRIC_L2 else -20]))
    lims, D, I = index.range_search(xq[:5], radius)
    for i in range(5):
        ids = I[lims[i]:lims[i + 1]]
        want = np.flatnonzero(full[i] < radius if metric == voisin.METRIC_L2 else full[i] > radius)
        near_edge = np.abs(full[i] - radius) < 1e-3 * (abs(radius) + 1)
        assert set(ids) ^ set(want) <= set(np.flatnonzero(near_edge))
        np.testing.assert_allclose(D[lims[i]:lims[i + 1]], full[i][ids], rtol=1e-4, atol=1e-3)


def test_idmap_wrap(trained_pq, data):
    xb, xq = data
    pq = trained_pq[4]
    inner = IndexPQ(D_, pq.M, pq.nbits)
    inner.pq.set_centroids(pq.centroids)
    inner.is_trained = True
    index = voisin.IndexIDMap(inner)
    ids = np.arange(len(xb), dtype=np.int64) * 3 + 100
    index.add_with_ids(xb, ids)
    D, I = index.search(xq, 5)
    assert np.isin(I, ids).all()
    Dr, Ir = inner.search(xq, 5)
    np.testing.assert_array_equal(I, ids[Ir])
    np.testing.assert_array_equal(D, Dr)


def test_sa_encode_decode_and_add_codes(trained_pq, data):
    xb, xq = data
    pq = trained_pq[8]
    index = make_index(pq, xb[:10], voisin.METRIC_L2)
    codes = index.sa_encode(xb[10:20])
    np.testing.assert_array_equal(codes, pq.compute_codes(xb[10:20]))
    index.add_codes(codes)
    assert index.ntotal == 20
    np.testing.assert_array_equal(index.reconstruct_n(10, 10), index.sa_decode(codes))


# --------------------------------------------------------------------------- #
# bad input
# --------------------------------------------------------------------------- #
def test_bad_construction():
    with pytest.raises(ValueError, match="multiple of M"):
        ProductQuantizer(10, 3)
    with pytest.raises(ValueError, match="nbits"):
        ProductQuantizer(8, 2, 17)
    with pytest.raises(ValueError, match="M"):
        IndexPQ(8, 0)
    with pytest.raises(TypeError):
        IndexPQ(8, 2.5)


def test_untrained_and_bad_input(data):
    xb, xq = data
    index = IndexPQ(D_, 8, 4)
    with pytest.raises(RuntimeError, match="not trained"):
        index.add(xb[:10])
    with pytest.raises(RuntimeError, match="not trained"):
        index.search(xq, 3)
    with pytest.raises(RuntimeError, match="not trained"):
        index.pq.compute_codes(xb[:3])
    with pytest.raises(ValueError, match="at least 16"):
        index.train(xb[:10])
    index.train(xb[:2000])
    with pytest.raises(ValueError, match="dimension"):
        index.add(xb[:5, :10])
    bad = xq[:2].copy()
    bad[0, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        index.search(bad, 3)
    with pytest.raises(ValueError, match="k"):
        index.search(xq, 0)
    with pytest.raises(NotImplementedError, match="IndexIDMap"):
        index.add_with_ids(xb[:3], np.arange(3))
    with pytest.raises(TypeError, match="uint8"):
        index.pq.decode(np.zeros((2, 4), np.int32))
    with pytest.raises(ValueError, match="shape"):
        index.pq.decode(np.zeros((2, 5), np.uint8))
    with pytest.raises(ValueError, match="centroids"):
        index.pq.set_centroids(np.zeros(7, np.float32))
    with pytest.raises(ValueError, match="out of range"):
        index.reconstruct(0)


# --------------------------------------------------------------------------- #
# OPQ
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def anisotropic():
    rng = np.random.default_rng(3)
    d = 32
    rot = np.linalg.qr(rng.normal(size=(d, d)))[0]
    x = (rng.normal(size=(5000, d)) * np.linspace(3, 0.1, d)) @ rot
    return np.ascontiguousarray(x, dtype=np.float32)


def test_opq_rotation_reduces_pq_error(anisotropic):
    from voisin.transforms_opq import OPQMatrix
    x = anisotropic
    train, held = x[:4000], x[4000:]
    opq = OPQMatrix(32, 8)
    opq.niter, opq.nbits = 8, 5
    opq.train(train)
    A = opq.A
    assert A.shape == (32, 32) and A.dtype == np.float32
    np.testing.assert_allclose(A @ A.T, np.eye(32), atol=1e-4)  # orthonormal rows
    np.testing.assert_allclose(opq.reverse_transform(opq.apply(held[:5])), held[:5], atol=1e-4)
    np.testing.assert_allclose(opq.apply(held[:5]), held[:5] @ A.T, rtol=1e-5, atol=1e-5)

    def pq_error(tr, te):
        pq = ProductQuantizer(32, 8, 5)
        pq.train(tr)
        return float(((te - pq.decode(pq.compute_codes(te))) ** 2).sum(1).mean())

    plain = pq_error(train, held)
    rotated = pq_error(opq.apply(train), opq.apply(held))
    assert rotated < 0.85 * plain, (rotated, plain)
    # faiss's OPQ on the same data reaches a comparable error
    fopq = faiss.OPQMatrix(32, 8)
    fopq.niter = 8
    fopq.train(train)
    fy_tr, fy_te = fopq.apply(train), fopq.apply(held)
    assert rotated < 1.15 * pq_error(fy_tr, fy_te)


def test_opq_output_dimension_and_bad_input(anisotropic):
    from voisin.transforms_opq import OPQMatrix
    opq = OPQMatrix(32, 4, 16)
    opq.niter, opq.nbits = 2, 4
    with pytest.raises(RuntimeError, match="not trained"):
        opq.apply(anisotropic[:2])
    opq.train(anisotropic[:1000])
    assert opq.apply(anisotropic[:3]).shape == (3, 16)
    np.testing.assert_allclose(opq.A @ opq.A.T, np.eye(16), atol=1e-4)
    with pytest.raises(ValueError, match="multiple of M"):
        OPQMatrix(32, 5)
    with pytest.raises(ValueError, match="exceeds"):
        OPQMatrix(16, 4, 32)
    with pytest.raises(ValueError, match="dimension"):
        opq.apply(np.zeros((2, 31), np.float32))
