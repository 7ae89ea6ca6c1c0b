"""ResidualQuantizer and IndexResidualQuantizer against faiss-cpu and brute force."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import voisin
from voisin.codecs.additive import AdditiveQuantizer
from voisin.codecs.rq import ResidualQuantizer

from conftest import brute_force

faiss = pytest.importorskip("faiss")

D_ = 24
AQ = AdditiveQuantizer
NORM_TYPES = [AQ.ST_decompress, AQ.ST_LUT_nonorm, AQ.ST_norm_from_LUT, AQ.ST_norm_float,
              AQ.ST_norm_qint8, AQ.ST_norm_qint4, AQ.ST_norm_cqint8, AQ.ST_norm_cqint4,
              AQ.ST_norm_rq2x4, AQ.ST_norm_lsq2x4]


def clustered(rng, n, d=D_, nclusters=40):
    centers = rng.normal(size=(nclusters, d)).astype(np.float32) * 3
    return (centers[rng.integers(0, nclusters, n)] + rng.normal(size=(n, d))).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    return clustered(rng, 4000), clustered(rng, 30)


def faiss_rq(xb, M, nbits, search_type=0, metric=1, train_type=0):
    f = faiss.IndexResidualQuantizer(xb.shape[1], M, nbits, metric, search_type)
    f.rq.train_type = train_type
    f.train(xb)
    return f


def copy_rq_from_faiss(f_rq, search_type=None) -> ResidualQuantizer:
    """A voisin RQ with faiss's trained codebooks and norm encoding."""
    st_ = f_rq.search_type if search_type is None else search_type
    rq = ResidualQuantizer(f_rq.d, f_rq.M, int(faiss.vector_to_array(f_rq.nbits)[0]), st_)
    rq.set_codebooks(faiss.vector_to_array(f_rq.codebooks))
    rq.norm_min, rq.norm_max = np.float32(f_rq.norm_min), np.float32(f_rq.norm_max)
    qn = faiss.vector_to_array(f_rq.qnorm.codes)
    if qn.size:
        rq.qnorm = qn.view(np.float32).copy()
    rq.norm_tabs = faiss.vector_to_array(f_rq.norm_tabs).astype(np.float32)
    return rq


@pytest.fixture(scope="module")
def faiss_trained(data):
    """One faiss-trained index per search type (4 stages of 5 bits), reused."""
    xb, _ = data
    return {st_: faiss_rq(xb, 4, 5, st_) for st_ in NORM_TYPES}


# --------------------------------------------------------------------------- #
# codec
# --------------------------------------------------------------------------- #
def test_constants_match_faiss():
    for name in ("ST_decompress", "ST_LUT_nonorm", "ST_norm_from_LUT", "ST_norm_float",
                 "ST_norm_qint8", "ST_norm_qint4", "ST_norm_cqint8", "ST_norm_cqint4",
                 "ST_norm_lsq2x4", "ST_norm_rq2x4", "ST_count"):
        assert getattr(voisin.AdditiveQuantizer, name) == getattr(faiss.AdditiveQuantizer, name)
    for name in ("Train_default", "Train_progressive_dim", "Train_refine_codebook",
                 "Train_top_beam", "Skip_codebook_tables"):
        assert getattr(voisin.ResidualQuantizer, name) == getattr(faiss.ResidualQuantizer, name)
    v, f = voisin.ResidualQuantizer(16, 3, 7), faiss.ResidualQuantizer(16, 3, 7)
    assert (v.max_beam_size, v.train_type, v.cp.niter, v.cp.seed) == \
        (f.max_beam_size, f.train_type, f.cp.niter, f.cp.seed)


@pytest.mark.parametrize("st_", NORM_TYPES)
def test_code_sizes_match_faiss(st_):
    for M, nbits in ((4, 8), (3, 5), (1, 12)):
        v, f = voisin.ResidualQuantizer(16, M, nbits, st_), faiss.ResidualQuantizer(16, M, nbits, st_)
        assert (v.code_size, v.tot_bits, v.norm_bits, v.total_codebook_size) == \
            (f.code_size, f.tot_bits, f.norm_bits, f.total_codebook_size)


@pytest.mark.parametrize("st_", NORM_TYPES)
def test_codes_equal_faiss_given_same_codebooks(faiss_trained, data, st_):
    xb, _ = data
    f = faiss_trained[st_]
    rq = copy_rq_from_faiss(f.rq)
    fc = f.rq.compute_codes(xb)
    vc = rq.compute_codes(xb)
    assert vc.shape == fc.shape and vc.dtype == np.uint8
    # the M codebook indices are the same beam search's
    assert np.array_equal(rq.unpack_codes(vc), rq.unpack_codes(fc))
    np.testing.assert_allclose(rq.decode(vc), f.rq.decode(fc), rtol=1e-5, atol=1e-5)
    if st_ != AQ.ST_norm_float:
        # quantized norms: the same bytes except at a level boundary (float rounding)
        assert (vc == fc).all(axis=1).mean() > 0.995
    else:
        nf = rq.search_norms(fc)
        np.testing.assert_allclose(rq.search_norms(vc), nf, rtol=1e-5)


def test_decode_of_faiss_codes_is_faiss_decode(faiss_trained, data):
    xb, _ = data
    f = faiss_trained[AQ.ST_norm_qint8]
    rq = copy_rq_from_faiss(f.rq)
    fc = f.rq.compute_codes(xb[:500])
    np.testing.assert_allclose(rq.decode(fc), f.rq.decode(fc), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("train_type", [0, 1])
def test_trained_error_within_noise_of_faiss(train_type):
    rng = np.random.default_rng(3)
    x = clustered(rng, 3000, 16)
    v = voisin.ResidualQuantizer(16, 3, 5)
    v.train_type = train_type
    v.train(x)
    f = faiss.ResidualQuantizer(16, 3, 5)
    f.train_type = train_type
    f.train(x)
    ev = float(((v.decode(v.compute_codes(x)) - x) ** 2).sum(1).mean())
    ef = float(((f.decode(f.compute_codes(x)) - x) ** 2).sum(1).mean())
    # k-means draws differ: voisin must be as good as faiss (within noise), not identical
    assert ev <= ef * 1.05, (ev, ef)
    # the norm range is that of the training set's reconstructions, as faiss's
    n2 = (v.decode(v.compute_codes(x)) ** 2).sum(1)
    np.testing.assert_allclose([v.norm_min, v.norm_max], [n2.min(), n2.max()], rtol=1e-4)


def test_refine_codebook_does_not_hurt():
    rng = np.random.default_rng(5)
    x = clustered(rng, 2000, 12)
    plain = voisin.ResidualQuantizer(12, 2, 5)
    plain.train_type = 0
    plain.train(x)
    ref = voisin.ResidualQuantizer(12, 2, 5)
    ref.train_type = voisin.ResidualQuantizer.Train_refine_codebook
    ref.niter_codebook_refine = 2
    ref.train(x)

    def err(q):
        return float(((q.decode(q.compute_codes(x)) - x) ** 2).sum(1).mean())
    assert err(ref) <= err(plain) * 1.02


def test_beam_beats_greedy(data):
    xb, _ = data
    rq = voisin.ResidualQuantizer(D_, 4, 5)
    rq.train_type = 0
    rq.train(xb[:2000])

    def err():
        return float(((rq.decode(rq.compute_codes(xb)) - xb) ** 2).sum(1).mean())
    wide = err()
    rq.max_beam_size = 1
    greedy = err()
    assert wide < greedy


def test_variable_bits_and_lut(data):
    xb, xq = data
    rq = voisin.ResidualQuantizer(D_, [6, 4, 3])
    assert rq.M == 3 and rq.code_size == 2 and rq.codebooks.shape == (64 + 16 + 8, D_)
    rq.train_type = 0
    rq.train(xb[:2000])
    codes = rq.compute_codes(xq)
    y = rq.decode(codes)
    lut = rq.compute_LUT(xq)
    idx = rq.unpack_codes(codes)
    ips = sum(lut[np.arange(len(xq)), rq.codebook_offsets[m] + idx[:, m]] for m in range(rq.M))
    np.testing.assert_allclose(ips, (xq * y).sum(1), rtol=1e-4, atol=1e-3)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 12), min_size=1, max_size=5), st.integers(0, 2 ** 31), st.sampled_from(
    [AQ.ST_decompress, AQ.ST_norm_float, AQ.ST_norm_qint4]))
def test_pack_unpack_roundtrip(bits, seed, st_):
    rq = voisin.ResidualQuantizer(4, bits, st_)
    rng = np.random.default_rng(seed)
    idx = np.stack([rng.integers(0, 1 << b, 7) for b in bits], axis=1).astype(np.int32)
    rq.norm_min, rq.norm_max = np.float32(0), np.float32(1)
    codes = rq.pack_codes(idx, norms=rng.random(7).astype(np.float32))
    assert codes.shape == (7, rq.code_size)
    assert np.array_equal(rq.unpack_codes(codes), idx)


def test_codec_bad_input(data):
    xb, _ = data
    with pytest.raises(ValueError, match="nbits"):
        voisin.ResidualQuantizer(8, 2, 0)
    with pytest.raises(ValueError, match="M"):
        voisin.ResidualQuantizer(8, 0, 8)
    with pytest.raises(ValueError, match="search_type"):
        voisin.ResidualQuantizer(8, 2, 4, 42)
    rq = voisin.ResidualQuantizer(D_, 2, 6)
    with pytest.raises(RuntimeError, match="not trained"):
        rq.compute_codes(xb[:3])
    with pytest.raises(ValueError, match="at least 64"):
        rq.train(xb[:10])
    rq.train_type = 0
    rq.train(xb[:1000])
    with pytest.raises(ValueError, match="x"):
        rq.compute_codes(xb[:3, :5])
    with pytest.raises(TypeError, match="uint8"):
        rq.decode(np.zeros((2, rq.code_size), dtype=np.int32))
    with pytest.raises(ValueError, match="codes"):
        rq.decode(np.zeros((2, rq.code_size + 1), dtype=np.uint8))
    with pytest.raises(ValueError, match="out of range"):
        rq.pack_codes(np.array([[64, 0]]))
    with pytest.raises(ValueError, match="codebooks"):
        rq.set_codebooks(np.zeros(5))


# --------------------------------------------------------------------------- #
# IndexResidualQuantizer
# --------------------------------------------------------------------------- #
def voisin_index_like(f, metric):
    v = voisin.IndexResidualQuantizer(f.d, f.rq.M, int(faiss.vector_to_array(f.rq.nbits)[0]), metric, f.rq.search_type)
    v.rq = copy_rq_from_faiss(f.rq)
    v.is_trained = True
    return v


def assert_same_results(Dv, Iv, Df, If, rtol=1e-4):
    """Same distances rank by rank; ids equal except among tied distances."""
    np.testing.assert_allclose(Dv, Df, rtol=rtol, atol=1e-3)
    tol = 1e-3 + rtol * np.abs(Df).max()
    for dv, iv, df, i_f in zip(Dv, Iv, Df, If):
        # an id strictly inside faiss's top-k (not tied with the k-th) must be in ours
        sure = {int(i) for i, dd in zip(i_f, df) if abs(dd - df[-1]) > tol}
        assert sure <= set(iv.tolist())


@pytest.mark.parametrize("metric", [voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT])
@pytest.mark.parametrize("st_", NORM_TYPES)
def test_search_equals_faiss_with_same_codebooks(faiss_trained, data, st_, metric):
    xb, xq = data
    f0 = faiss_trained[st_]
    f = faiss.IndexResidualQuantizer(D_, 4, 5, metric, st_)
    f.rq = f0.rq
    f.is_trained = True
    f.add(xb)
    v = voisin_index_like(f, metric)
    v.add(xb)
    assert v.ntotal == f.ntotal and v.code_size == f.code_size
    Df, If = f.search(xq, 10)
    Dv, Iv = v.search(xq, 10)
    assert_same_results(Dv, Iv, Df, If)


def test_recall_within_noise_of_faiss(data):
    xb, xq = data
    gt = brute_force(xq, xb, 10, voisin.METRIC_L2)[1]
    f = faiss.index_factory(D_, "RQ4x6")
    f.rq.train_type = 0
    f.train(xb)
    f.add(xb)
    v = voisin.index_factory(D_, "RQ4x6")
    v.rq.train_type = 0
    v.train(xb)
    v.add(xb)

    def recall(I):
        return np.mean([len(set(a) & set(b)) / 10 for a, b in zip(I, gt)])
    rv, rf = recall(v.search(xq, 10)[1]), recall(f.search(xq, 10)[1])
    assert rv >= rf - 0.06, (rv, rf)


def test_index_api(data):
    xb, xq = data
    v = voisin.IndexResidualQuantizer(D_, 3, 5, voisin.METRIC_L2,
                                      voisin.AdditiveQuantizer.ST_norm_float)
    v.rq.train_type = 0
    v.train(xb[:2000])
    v.add(xb[:1000])
    D, I = v.search(xq, 5)
    assert np.all(np.diff(D, axis=1) >= -1e-5)
    # the reported distance is the one to the stored reconstruction
    rec = v.reconstruct_batch(I[:, 0])
    np.testing.assert_allclose(D[:, 0], ((xq - rec) ** 2).sum(1), rtol=1e-3, atol=1e-2)
    np.testing.assert_allclose(v.sa_decode(v.sa_encode(xb[:7])), v.reconstruct_n(0, 7), rtol=1e-6)
    np.testing.assert_array_equal(v.sa_encode(xb[:7]), v.codes[:7])
    # range search returns what search finds inside the radius
    r = float(np.median(D[:, -1]))
    lims, Dr, Ir = v.range_search(xq, r)
    for i in range(len(xq)):
        got = set(Ir[lims[i]:lims[i + 1]].tolist())
        assert {int(j) for j, dd in zip(I[i], D[i]) if dd < r} <= got
        assert np.all(Dr[lims[i]:lims[i + 1]] < r)
    # filters, removal, reset
    sel = voisin.IDSelectorRange(100, 200)
    Ds, Is = v.search(xq, 5, params=voisin.SearchParameters(sel=sel))
    assert np.all((Is >= 100) & (Is < 200))
    assert v.remove_ids(np.arange(0, 500)) == 500 and v.ntotal == 500
    codes_before = v.codes.copy()
    v.add_codes(codes_before[:10])
    assert v.ntotal == 510
    np.testing.assert_array_equal(v.codes[500:], codes_before[:10])
    v.reset()
    assert v.ntotal == 0
    D0, I0 = v.search(xq[:2], 3)
    assert np.all(I0 == -1)


def test_index_list_constructor():
    v = voisin.IndexResidualQuantizer(16, [8, 6], voisin.METRIC_INNER_PRODUCT,
                                      voisin.AdditiveQuantizer.ST_norm_qint8)
    assert v.rq.nbits == [8, 6] and v.metric_type == voisin.METRIC_INNER_PRODUCT
    assert v.code_size == 3 and v.search_type == voisin.AdditiveQuantizer.ST_norm_qint8


def test_index_bad_input(data):
    xb, xq = data
    v = voisin.IndexResidualQuantizer(D_, 2, 4)
    with pytest.raises(RuntimeError, match="not trained"):
        v.add(xb[:10])
    with pytest.raises(RuntimeError, match="not trained"):
        v.search(xq, 3)
    v.rq.train_type = 0
    v.train(xb[:500])
    with pytest.raises(ValueError, match="x"):
        v.add(xb[:4, :3])
    with pytest.raises(ValueError, match="NaN|finite|inf"):
        v.add(np.full((2, D_), np.nan, dtype=np.float32))
    with pytest.raises(NotImplementedError, match="IndexIDMap"):
        v.add_with_ids(xb[:3], np.arange(3))
    with pytest.raises(ValueError, match="k"):
        v.search(xq, 0)
    v.add(xb[:50])
    with pytest.raises(ValueError, match="out of range"):
        v.reconstruct(50)
    with pytest.raises(TypeError, match="uint8"):
        v.add_codes(np.zeros((2, v.code_size), dtype=np.float32))


# --------------------------------------------------------------------------- #
# factory
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("desc", ["RQ4x8", "RQ4x8_Nqint8", "RQ4x8_Nfloat", "RQ4x8_Nnone",
                                  "RQ4x8_Ncqint8", "RQ4x8_Nqint4", "RQ4x8_Ncqint4", "RQ4x8_Nrq2x4",
                                  "RQ1x16_6x8", "RQ3x5_Nqint8", "RQ4x8_Nlsq2x4"])
@pytest.mark.parametrize("metric", [voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT])
def test_factory_matches_faiss(desc, metric):
    v = voisin.index_factory(32, desc, metric)
    owner = faiss.index_factory(32, desc, metric)  # keeps the C++ object alive
    f = faiss.downcast_index(owner)
    assert type(v).__name__ == type(f).__name__
    assert v.code_size == f.code_size and v.metric_type == f.metric_type
    assert v.rq.search_type == f.rq.search_type
    assert v.rq.nbits == faiss.vector_to_array(f.rq.nbits).tolist()


@pytest.mark.parametrize("desc", ["RQ4", "RQ4x", "RQ0x8", "RQ4x8_Nbogus", "RQ4x8,Flat",
                                  "LSQ4", "LSQ0x8", "PRQ2x4", "RCQ2"])
def test_factory_rejects(desc):
    with pytest.raises((ValueError, NotImplementedError)):
        voisin.index_factory(32, desc)


# --------------------------------------------------------------------------- #
# properties
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def small_rq():
    rng = np.random.default_rng(17)
    x = clustered(rng, 1500, 8, 10)
    rq = voisin.ResidualQuantizer(8, 2, 4)
    rq.train_type = 0
    rq.train(x)
    return rq


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2 ** 31), st.sampled_from([voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT]),
       st.sampled_from([AQ.ST_decompress, AQ.ST_norm_float, AQ.ST_norm_from_LUT]),
       st.integers(1, 300), st.integers(1, 12))
def test_search_is_exact_knn_over_reconstructions(small_rq, seed, metric, st_, n, k):
    """With exact norms the LUT scan is an exact k-NN over the decoded vectors."""
    rng = np.random.default_rng(seed)
    xb = (rng.normal(size=(n, 8)) * 3).astype(np.float32)
    xq = (rng.normal(size=(5, 8)) * 3).astype(np.float32)
    index = voisin.IndexResidualQuantizer(8, 2, 4, metric, st_)
    rq = voisin.ResidualQuantizer(8, 2, 4, st_)
    rq.set_codebooks(small_rq.codebooks)
    rq.norm_min, rq.norm_max = small_rq.norm_min, small_rq.norm_max
    index.rq = rq
    index.is_trained = True
    index.add(xb)
    rec = index.reconstruct_n(0, n)
    Dref, _ = brute_force(xq, rec, k, metric)
    D, I = index.search(xq, k)
    got = I >= 0
    assert got.sum(1).tolist() == [min(k, n)] * 5
    np.testing.assert_allclose(D[got], Dref[got], rtol=1e-4, atol=1e-3)
    # every id returned scores what its reconstruction scores
    r = rec[np.maximum(I, 0)]
    direct = ((xq[:, None, :] - r) ** 2).sum(-1) if metric == voisin.METRIC_L2 else \
        (xq[:, None, :] * r).sum(-1)
    np.testing.assert_allclose(D[got], direct[got], rtol=1e-4, atol=1e-3)


def test_train_flags(data):
    xb, _ = data
    rq = voisin.ResidualQuantizer(D_, 2, 5)
    rq.train_type = rq.Train_top_beam | rq.Skip_codebook_tables
    rq.train(xb[:2000])
    assert rq.is_trained and rq.codebook_cross_products.size == 0
    err = float(((rq.decode(rq.compute_codes(xb)) - xb) ** 2).sum(1).mean())
    assert err < float(((xb - xb.mean(0)) ** 2).sum(1).mean())
    rq.compute_codebook_tables()
    assert rq.codebook_cross_products.size == 32 * 32
    np.testing.assert_allclose(rq.centroid_norms, (rq.codebooks ** 2).sum(1), rtol=1e-5)


def test_refine_beam_is_sorted(data):
    xb, _ = data
    rq = voisin.ResidualQuantizer(D_, 3, 4)
    rq.train_type = 0
    rq.train(xb[:2000])
    codes, resid, dist = rq.refine_beam(xb[:50], 7)
    assert codes.shape == (50, 7, 3) and resid.shape == (50, 7, D_)
    assert np.all(np.diff(dist, axis=1) >= -1e-4)
    np.testing.assert_allclose(dist, (resid ** 2).sum(-1), rtol=1e-4, atol=1e-4)
    y = rq.decode_unpacked(codes[:, 0])
    np.testing.assert_allclose(xb[:50] - y, resid[:, 0], rtol=1e-4, atol=1e-4)


def test_faiss_style_code_runs_on_voisin():
    """FAISS idioms for these indexes, written against ``import voisin as faiss``."""
    import voisin as vfaiss
    x = np.random.default_rng(4).random((2000, 16), dtype="float32")
    idx = vfaiss.IndexProductResidualQuantizer(16, 2, 2, 4)
    for s in range(idx.prq.nsplits):
        vfaiss.downcast_AdditiveQuantizer(idx.prq.subquantizer(s)).train_type = 0
    idx.train(x)
    idx.add(x)
    cb = vfaiss.vector_to_array(idx.prq.codebooks)
    assert cb.size == idx.prq.total_codebook_size * 8
    ivf = vfaiss.extract_index_ivf(vfaiss.index_factory(16, "IVF8,RQ2x4"))
    assert isinstance(ivf, vfaiss.IndexIVFResidualQuantizer)
    with pytest.raises(TypeError, match="AdditiveQuantizer"):
        vfaiss.downcast_AdditiveQuantizer(idx)


def test_codec_replacement_guard(data):
    xb, _ = data
    v = voisin.IndexResidualQuantizer(D_, 2, 4)
    v.rq = voisin.ResidualQuantizer(D_, 3, 8)  # empty: the storage follows the codec
    assert v.code_size == 3
    v.rq.train_type = 0
    v.train(xb[:1000])
    v.add(xb[:10])
    with pytest.raises(ValueError, match="code size"):
        v.rq = voisin.ResidualQuantizer(D_, 2, 4)
    assert v.ntotal == 10 and v.code_size == 3
