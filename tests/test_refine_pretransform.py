"""IndexRefine / IndexRefineFlat, IndexPreTransform with PCA (W, R), L2norm and OPQ."""

import numpy as np
import pytest

import voisin

L2, IP = voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT
faiss = pytest.importorskip("faiss")


def _data(n=3000, d=24, seed=0):
    rng = np.random.default_rng(seed)
    scales = np.linspace(5, 0.1, d)
    return (rng.normal(size=(n, d)) * scales + 1.0).astype("float32")


def _recall(I, gt):
    return np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(I, gt)])


@pytest.mark.parametrize("metric", [L2, IP])
def test_refine_flat_improves_sq4_and_reports_exact_distances(metric):
    xb, xq = _data(), _data(n=50, seed=1)
    flat = voisin.IndexFlat(24, metric)
    flat.add(xb)
    Dt, gt = flat.search(xq, 10)
    base = voisin.IndexScalarQuantizer(24, voisin.ScalarQuantizer.QT_4bit, metric)
    base.train(xb)
    base.add(xb)
    r_base = _recall(base.search(xq, 10)[1], gt)
    index = voisin.IndexRefineFlat(voisin.IndexScalarQuantizer(24, voisin.ScalarQuantizer.QT_4bit, metric), 4)
    index.train(xb)
    index.add(xb)
    D, I = index.search(xq, 10)
    assert _recall(I, gt) >= max(r_base, 0.95)
    # refined distances are exact for the returned ids
    exact = (((xb[I] - xq[:, None]) ** 2).sum(-1) if metric == L2 else (xb[I] * xq[:, None]).sum(-1))
    np.testing.assert_allclose(D, exact, rtol=1e-4, atol=1e-3)
    # k_factor per call
    D1, I1 = index.search(xq, 10, params=voisin.SearchParametersRefine(k_factor=1))
    assert _recall(I1, gt) <= _recall(I, gt)


def test_refine_generic_filters_remove_reconstruct():
    xb, xq = _data(), _data(n=20, seed=2)
    index = voisin.IndexRefine(voisin.IndexScalarQuantizer(24, voisin.ScalarQuantizer.QT_4bit),
                               voisin.IndexScalarQuantizer(24, voisin.ScalarQuantizer.QT_fp16))
    index.k_factor = 3
    assert not index.is_trained
    index.train(xb)
    index.add(xb)
    sel = voisin.IDSelectorRange(0, 500)
    D, I = index.search(xq, 5, params=voisin.SearchParametersRefine(sel=sel))
    assert ((I >= 0) & (I < 500)).all()
    D, I = index.search(xq, 5, params=voisin.SearchParameters(sel=sel))
    assert ((I >= 0) & (I < 500)).all()
    np.testing.assert_allclose(index.reconstruct(7), xb[7], rtol=1e-3, atol=1e-3)
    assert index.remove_ids(np.arange(100)) == 100
    assert index.ntotal == 2900 and index.refine_index.ntotal == 2900
    lims, Dr, Ir = index.range_search(xq[:3], 50.0)
    assert (Dr < 50.0).all()
    with pytest.raises(ValueError, match="k_factor"):
        index.search(xq, 5, params=voisin.SearchParametersRefine(k_factor=0.5))
    with pytest.raises(ValueError, match="dimension"):
        voisin.IndexRefine(voisin.IndexFlatL2(4), voisin.IndexFlatL2(5))
    with pytest.raises(TypeError):
        voisin.IndexRefineFlat("ivf")


def test_refine_fewer_results_than_k():
    xb = _data(n=5)
    index = voisin.IndexRefineFlat(voisin.IndexFlatL2(24))
    index.add(xb)
    D, I = index.search(xb[:1], 8)
    assert sorted(I[0, :5].tolist()) == list(range(5)) and (I[0, 5:] == -1).all()


@pytest.mark.parametrize("metric", [L2, IP])
@pytest.mark.parametrize("nq", [3, 40])  # the serial and the parallel re-rank kernels
def test_refine_flat_kernel_matches_generic_refine(metric, nq):
    # IndexRefineFlat ranks with a numba kernel over its flat storage; the
    # generic IndexRefine (numpy gather + stable argsort) with the same base
    # and an exact IndexFlat as refine index must return the same ranking
    xb, xq = _data(n=2000), _data(n=nq, seed=4)
    fast = voisin.IndexRefineFlat(voisin.index_factory(24, "IVF64,SQ4", metric), 12)
    fast.train(xb)
    fast.add(xb)
    fast.base_index.nprobe = 1  # small lists: some queries get fewer than k*k_factor candidates (-1 ids)
    flat = voisin.IndexFlat(24, metric)
    flat.add(xb)
    slow = voisin.IndexRefine(fast.base_index, flat)
    slow.k_factor = 12
    D1, I1 = fast.search(xq, 10)
    D2, I2 = slow.search(xq, 10)
    np.testing.assert_allclose(D1, D2, rtol=1e-5, atol=1e-4)
    ties = np.isclose(D1[:, 1:], D1[:, :-1], rtol=1e-6).any()
    if not ties:
        np.testing.assert_array_equal(I1, I2)
    else:
        assert (np.sort(I1, 1) == np.sort(I2, 1)).mean() > 0.99
    np.testing.assert_array_equal(I1 < 0, I2 < 0)


def test_pca_matches_faiss_subspace_and_variance():
    x = _data(n=5000)
    ours = voisin.PCAMatrix(24, 6)
    ours.train(x)
    theirs = faiss.PCAMatrix(24, 6)
    theirs.train(x)
    np.testing.assert_allclose(ours.eigenvalues[:6], faiss.vector_to_array(theirs.eigenvalues)[:6], rtol=1e-3)
    # same projection up to the sign of each component
    yo, yt = ours.apply(x[:100]), theirs.apply(x[:100])
    np.testing.assert_allclose(np.abs(yo), np.abs(yt), rtol=1e-3, atol=1e-3)
    # reverse of a full-rank PCA is the identity
    full = voisin.PCAMatrix(24, 24)
    full.train(x)
    np.testing.assert_allclose(full.reverse_transform(full.apply(x[:50])), x[:50], atol=1e-3)


def test_pca_whitening_and_rotation():
    x = _data(n=5000)
    w = voisin.PCAMatrix(24, 8, eigen_power=-0.5)
    w.train(x)
    # FAISS's whitening: equal variances of 1/n (eigenvalues of the unnormalised scatter)
    np.testing.assert_allclose(w.apply(x).var(axis=0), 1.0 / len(x), rtol=0.05)
    fw = faiss.PCAMatrix(24, 8, -0.5)
    fw.train(x)
    np.testing.assert_allclose(np.abs(w.apply(x[:20])), np.abs(fw.apply(x[:20])), rtol=1e-3, atol=1e-5)
    r = voisin.PCAMatrix(24, 8, random_rotation=True)
    r.train(x)
    plain = voisin.PCAMatrix(24, 8)
    plain.train(x)
    # rotation preserves the distances between projected points, spreads the variance
    yr, yp = r.apply(x[:200]), plain.apply(x[:200])
    np.testing.assert_allclose(np.linalg.norm(yr[1:] - yr[0], axis=1),
                               np.linalg.norm(yp[1:] - yp[0], axis=1), rtol=1e-3, atol=1e-3)
    assert yr.var(axis=0).max() / yr.var(axis=0).min() < yp.var(axis=0).max() / yp.var(axis=0).min()
    with pytest.raises(ValueError, match="d_out"):
        voisin.PCAMatrix(8, 16)
    with pytest.raises(RuntimeError, match="not trained"):
        voisin.PCAMatrix(8, 4).apply(np.zeros((1, 8)))


def test_pretransform_pca_flat_equals_flat_on_projected():
    xb, xq = _data(), _data(n=20, seed=3)
    index = voisin.IndexPreTransform(voisin.PCAMatrix(24, 8), voisin.IndexFlatL2(8))
    assert not index.is_trained
    index.train(xb)
    index.add(xb)
    pca = index.chain[0]
    flat = voisin.IndexFlatL2(8)
    flat.add(pca.apply(xb))
    D, I = index.search(xq, 5)
    D2, I2 = flat.search(pca.apply(xq), 5)
    np.testing.assert_array_equal(I, I2)
    np.testing.assert_allclose(index.reconstruct(3), pca.reverse_transform(pca.apply(xb[3:4]))[0], atol=1e-4)
    assert index.remove_ids(np.arange(10)) == 10 and index.ntotal == len(xb) - 10
    lims, Dr, Ir = index.range_search(xq[:2], 10.0)
    assert (Dr < 10.0).all()


def test_pretransform_l2norm_gives_cosine():
    xb, xq = _data(), _data(n=10, seed=4)
    index = voisin.index_factory(24, "L2norm,Flat", voisin.METRIC_INNER_PRODUCT)
    index.add(xb)
    D, I = index.search(xq, 3)
    nb = xb / np.linalg.norm(xb, axis=1, keepdims=True)
    nq = xq / np.linalg.norm(xq, axis=1, keepdims=True)
    cos = nq @ nb.T
    np.testing.assert_array_equal(I[:, 0], cos.argmax(1))
    np.testing.assert_allclose(D[:, 0], cos.max(1), rtol=1e-5)


def test_pretransform_chain_and_foreign_transform():
    xb = _data()

    class Scale:  # any object with the transform interface works
        d_in = d_out = 24
        is_trained = True

        def train(self, x):
            pass

        def apply(self, x):
            return np.asarray(x, dtype="float32") * 2

        def reverse_transform(self, y):
            return np.asarray(y, dtype="float32") / 2

    index = voisin.IndexPreTransform([Scale(), voisin.PCAMatrix(24, 6)], voisin.IndexFlatL2(6))
    index.train(xb)
    index.add(xb)
    assert index.search(xb[:1], 1)[1][0, 0] == 0
    idx2 = voisin.IndexPreTransform(voisin.IndexFlatL2(24))
    idx2.prepend_transform(Scale())
    idx2.add(xb[:3])
    np.testing.assert_allclose(idx2.reconstruct(1), xb[1], rtol=1e-6)
    with pytest.raises(TypeError, match="transform"):
        voisin.IndexPreTransform(object(), voisin.IndexFlatL2(24))
    with pytest.raises(ValueError, match="dimension"):
        voisin.IndexPreTransform(voisin.PCAMatrix(24, 6), voisin.IndexFlatL2(7))


def test_pretransform_opq_from_part_b():
    opq = pytest.importorskip("voisin.transforms_opq")
    xb = _data(n=3000)
    index = voisin.IndexPreTransform(opq.OPQMatrix(24, 4), voisin.IndexFlatL2(24))
    index.train(xb)
    index.add(xb)
    assert index.search(xb[:3], 1)[1].ravel().tolist() == [0, 1, 2]


@pytest.mark.parametrize("d_in,d_out,uniform", [(5, 12, True), (12, 5, True), (5, 12, False), (12, 5, False)])
def test_remap_dimensions_matches_faiss(d_in, d_out, uniform):
    faiss = pytest.importorskip("faiss")
    x = np.random.default_rng(0).normal(size=(20, d_in)).astype("float32")
    ours = voisin.RemapDimensionsTransform(d_in, d_out, uniform)
    theirs = faiss.RemapDimensionsTransform(d_in, d_out, uniform)
    np.testing.assert_array_equal(ours.map, faiss.vector_to_array(theirs.map))
    np.testing.assert_array_equal(ours.apply(x), theirs.apply(x))
    y = ours.apply(x)
    np.testing.assert_array_equal(ours.reverse_transform(y), theirs.reverse_transform(y))


def test_pad_factory_files_both_ways():
    faiss = pytest.importorskip("faiss")
    x = np.random.default_rng(1).normal(size=(300, 12)).astype("float32")
    index = voisin.index_factory(12, "Pad16,Flat")
    assert index.index.d == 16 and index.chain[0].map.tolist() == list(range(12)) + [-1] * 4
    index.add(x)
    ref = faiss.deserialize_index(voisin.serialize_index(index))
    D1, I1 = index.search(x[:10], 5)
    D2, I2 = ref.search(x[:10], 5)
    np.testing.assert_array_equal(I1, I2)
    np.testing.assert_allclose(D1, D2, rtol=1e-5, atol=1e-5)
    f = faiss.index_factory(12, "Pad16,Flat")
    f.add(x)
    back = voisin.deserialize_index(faiss.serialize_index(f))
    assert bytes(voisin.serialize_index(back, checksum=False)) == bytes(faiss.serialize_index(f))
    np.testing.assert_array_equal(back.search(x[:10], 5)[1], I1)
    # d >= n pads nothing, as FAISS
    assert voisin.index_factory(12, "Pad8,Flat").index.d == 12


def test_remap_dimensions_bad_map():
    t = voisin.RemapDimensionsTransform(4, 6)
    with pytest.raises(ValueError, match="map"):
        t.set_map(np.array([0, 1, 2, 3, 4, 9]))
    with pytest.raises(ValueError, match="map"):
        t.set_map(np.zeros(5, dtype=np.int64))
