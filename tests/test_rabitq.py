"""RaBitQ (1-bit and multi-bit): codes byte-identical to faiss-cpu, the same estimated
distances and ids, files both ways, IVF with filters and removal, refinement, bad input."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import voisin
from voisin.codecs.rabitq import RaBitQuantizer

faiss = pytest.importorskip("faiss")
L2, IP = voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT
KNOBS = [(0, False), (1, False), (1, True), (4, False), (4, True), (8, False), (8, True)]


def _data(n=2000, d=32, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, d)) * rng.uniform(0.5, 2, d) + rng.normal(0, 1, d)).astype("float32")


def _faiss_codes(index):
    return faiss.vector_to_array(index.codes).reshape(index.ntotal, index.code_size)


def _same_results(Df, If, Dv, Iv, rtol=1e-5):
    np.testing.assert_array_equal(If, Iv)
    scale = max(1.0, float(np.abs(Df).max()))
    np.testing.assert_allclose(Dv, Df, rtol=rtol, atol=rtol * scale)


def _flat_pair(d, metric, xb, nb_bits=1):
    f = faiss.IndexRaBitQ(d, metric, nb_bits)
    f.train(xb)
    f.add(xb)
    v = voisin.IndexRaBitQ(d, metric, nb_bits)
    v.train(xb)
    v.add(xb)
    return f, v


def _ivf_pair(d, metric, xb, nlist=16, nb_bits=1):
    """A faiss IVF-RaBitQ and voisin's copy of it read from faiss's bytes
    (same centroids: voisin's k-means is not faiss's)."""
    f = faiss.index_factory(d, f"IVF{nlist},RaBitQ{nb_bits}", metric)
    f.train(xb)
    f.add(xb)
    return f, voisin.deserialize_index(faiss.serialize_index(f))


# --- codec --------------------------------------------------------------------

@pytest.mark.parametrize("nb_bits", [1, 2, 4, 9])
@pytest.mark.parametrize("metric", [L2, IP])
@pytest.mark.parametrize("d", [7, 16, 33])
def test_codes_byte_identical_and_decode(metric, d, nb_bits):
    x = _data(300, d, seed=d)
    f = faiss.IndexRaBitQ(d, metric, nb_bits)
    f.train(x)
    v = voisin.IndexRaBitQ(d, metric, nb_bits)
    v.train(x)
    np.testing.assert_array_equal(v.center, faiss.vector_to_array(f.center))
    assert v.code_size == f.code_size
    if nb_bits == 1:
        assert v.code_size == (d + 7) // 8 + 8
    codes = v.sa_encode(x)
    np.testing.assert_array_equal(codes, f.sa_encode(x))
    np.testing.assert_array_equal(v.sa_decode(codes), f.sa_decode(codes))
    # the bare quantizer, coding against the origin (no centroid)
    rq = RaBitQuantizer(d, metric, nb_bits)
    frq = faiss.RaBitQuantizer(d, metric, nb_bits)
    assert rq.code_size == frq.code_size
    np.testing.assert_array_equal(rq.compute_codes(x), frq.compute_codes(x))
    np.testing.assert_array_equal(rq.decode(codes), frq.decode(codes))


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 40), st.integers(1, 30), st.sampled_from([L2, IP]), st.integers(1, 9),
       st.integers(0, 2**31))
def test_codes_match_faiss_on_random_input(d, n, metric, nb_bits, seed):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n, d)) * rng.uniform(0.01, 100)).astype("float32")
    x[rng.random(x.shape) < 0.1] = 0.0  # exact zeros: the sign test is x - c > 0
    f = faiss.IndexRaBitQ(d, metric, nb_bits)
    f.train(x)
    v = voisin.IndexRaBitQ(d, metric, nb_bits)
    v.train(x)
    np.testing.assert_array_equal(v.sa_encode(x), f.sa_encode(x))


# --- IndexRaBitQ ----------------------------------------------------------------

@pytest.mark.parametrize("nb_bits", [1, 3])
@pytest.mark.parametrize("metric", [L2, IP])
def test_flat_search_matches_faiss_for_every_query_setting(metric, nb_bits):
    xb, xq = _data(2000, 32), _data(20, 32, seed=1)
    f, v = _flat_pair(32, metric, xb, nb_bits)
    np.testing.assert_array_equal(v.codes, _faiss_codes(f))
    _same_results(*f.search(xq, 10), *v.search(xq, 10))  # index defaults (qb=4)
    for qb, centered in KNOBS:
        fp = faiss.RaBitQSearchParameters()
        fp.qb, fp.centered = qb, centered
        Df, If = f.search(xq, 10, params=fp)
        Dv, Iv = v.search(xq, 10, params=voisin.RaBitQSearchParameters(qb=qb, centered=centered))
        _same_results(Df, If, Dv, Iv)
        f.qb, f.centered, v.qb, v.centered = qb, centered, qb, centered
        _same_results(*f.search(xq, 10), *v.search(xq, 10))


@pytest.mark.parametrize("metric,nb_bits", [(L2, 1), (IP, 1), (L2, 4), (IP, 2)])
def test_flat_files_both_ways(metric, nb_bits):
    xb, xq = _data(1500, 24), _data(10, 24, seed=2)
    f, v = _flat_pair(24, metric, xb, nb_bits)
    f.qb = v.qb = 6
    fb = faiss.serialize_index(f)
    assert bytes(fb[:4]) == (b"Ixrq" if nb_bits == 1 else b"Ixrr")
    # voisin's file is faiss's, byte for byte
    np.testing.assert_array_equal(voisin.serialize_index(v, checksum=False), fb)
    loaded = voisin.deserialize_index(fb)
    assert isinstance(loaded, voisin.IndexRaBitQ) and loaded.qb == 6 and loaded.ntotal == 1500
    assert loaded.rabitq.nb_bits == nb_bits
    _same_results(*f.search(xq, 8), *loaded.search(xq, 8))
    back = faiss.deserialize_index(voisin.serialize_index(v))
    assert back.qb == 6
    _same_results(*back.search(xq, 8), *v.search(xq, 8))


def test_flat_range_search_filters_and_reconstruct_match_faiss():
    xb, xq = _data(1500, 32), _data(5, 32, seed=3)
    f, v = _flat_pair(32, L2, xb)
    radius = float(np.median(f.search(xq, 20)[0]))
    lf, Df, If = f.range_search(xq, radius)
    lv, Dv, Iv = v.range_search(xq, radius)
    np.testing.assert_array_equal(lf, lv)
    np.testing.assert_array_equal(If, Iv)
    np.testing.assert_allclose(Dv, Df, rtol=1e-5, atol=1e-4)
    fp = faiss.RaBitQSearchParameters()
    fp.sel = faiss.IDSelectorRange(100, 700)
    Df, If = f.search(xq, 10, params=fp)
    Dv, Iv = v.search(xq, 10, params=voisin.RaBitQSearchParameters(sel=voisin.IDSelectorRange(100, 700)))
    _same_results(Df, If, Dv, Iv)
    assert ((Iv >= 100) & (Iv < 700)).all()
    np.testing.assert_array_equal(v.reconstruct_n(0, 10), f.reconstruct_n(0, 10))
    f.remove_ids(faiss.IDSelectorRange(0, 500))
    assert v.remove_ids(voisin.IDSelectorRange(0, 500)) == 500
    _same_results(*f.search(xq, 10), *v.search(xq, 10))


# --- IndexIVFRaBitQ -------------------------------------------------------------

@pytest.mark.parametrize("metric,nb_bits", [(L2, 1), (IP, 1), (L2, 2), (IP, 4)])
def test_ivf_search_matches_faiss_on_faiss_written_file(metric, nb_bits):
    xb, xq = _data(3000, 32), _data(20, 32, seed=4)
    f, v = _ivf_pair(32, metric, xb, nb_bits=nb_bits)
    assert isinstance(v, voisin.IndexIVFRaBitQ) and v.qb == 4 and v.by_residual
    for nprobe in (1, 4, 16):
        f.nprobe = v.nprobe = nprobe
        _same_results(*f.search(xq, 10), *v.search(xq, 10))
    for qb, centered in KNOBS:
        fp = faiss.IVFRaBitQSearchParameters()
        fp.nprobe, fp.qb, fp.centered = 6, qb, centered
        Df, If = f.search(xq, 10, params=fp)
        Dv, Iv = v.search(xq, 10, params=voisin.IVFRaBitQSearchParameters(nprobe=6, qb=qb,
                                                                          centered=centered))
        _same_results(Df, If, Dv, Iv)
    # plain IVF parameters keep the index's qb
    f.qb = v.qb = 2
    fp = faiss.SearchParametersIVF()
    fp.nprobe = 5
    _same_results(*f.search(xq, 10, params=fp), *v.search(xq, 10, params=voisin.SearchParametersIVF(nprobe=5)))


@pytest.mark.parametrize("nb_bits", [1, 3])
def test_ivf_codes_and_files_both_ways(nb_bits):
    xb, xq = _data(3000, 20), _data(10, 20, seed=5)
    f, v = _ivf_pair(20, L2, xb, nlist=8, nb_bits=nb_bits)
    # voisin encodes the same vectors into the same lists with the same bytes
    fresh = voisin.deserialize_index(faiss.serialize_index(f))
    fresh.reset()
    fresh.add(xb)
    for l in range(8):
        fl = faiss.rev_swig_ptr(f.invlists.get_codes(l), f.invlists.list_size(l) * f.code_size)
        np.testing.assert_array_equal(fresh.invlists.get_codes(l).ravel(), np.asarray(fl))
    f.qb = v.qb = 7
    assert bytes(faiss.serialize_index(f)[:4]) == (b"Iwrq" if nb_bits == 1 else b"Iwrr")
    np.testing.assert_array_equal(voisin.serialize_index(v, checksum=False), faiss.serialize_index(f))
    back = faiss.deserialize_index(voisin.serialize_index(fresh))
    back.nprobe = fresh.nprobe = 3
    _same_results(*back.search(xq, 10), *fresh.search(xq, 10))
    back.make_direct_map()
    np.testing.assert_array_equal(fresh.reconstruct(5), back.reconstruct(5))


def test_ivf_filters_remove_and_range_match_faiss():
    xb, xq = _data(3000, 32), _data(8, 32, seed=6)
    f, v = _ivf_pair(32, L2, xb)
    fp = faiss.IVFRaBitQSearchParameters()
    # every list probed: both scan exactly the allowed entries (with fewer lists,
    # voisin widens the probes of a filtered search, docs/filtering.md, and faiss does not)
    fp.nprobe, fp.sel = 16, faiss.IDSelectorBatch(np.arange(0, 3000, 3))
    Df, If = f.search(xq, 10, params=fp)
    Dv, Iv = v.search(xq, 10, params=voisin.IVFRaBitQSearchParameters(
        nprobe=16, sel=voisin.IDSelectorBatch(np.arange(0, 3000, 3))))
    _same_results(Df, If, Dv, Iv)
    assert (Iv % 3 == 0).all()
    # fewer lists: still only allowed ids, no worse than faiss's probes
    Dv, Iv = v.search(xq, 10, params=voisin.IVFRaBitQSearchParameters(
        nprobe=2, sel=voisin.IDSelectorBatch(np.arange(0, 3000, 3))))
    assert (Iv % 3 == 0).all() and (Iv >= 0).all()
    f.nprobe = v.nprobe = 4
    radius = float(np.median(f.search(xq, 30)[0]))
    lf, Df, If = f.range_search(xq, radius)
    lv, Dv, Iv = v.range_search(xq, radius)
    np.testing.assert_array_equal(lf, lv)
    for i in range(xq.shape[0]):  # per query the order of the lists' scan is the same set
        a, b = np.argsort(If[lf[i]:lf[i + 1]]), np.argsort(Iv[lv[i]:lv[i + 1]])
        np.testing.assert_array_equal(If[lf[i]:lf[i + 1]][a], Iv[lv[i]:lv[i + 1]][b])
        np.testing.assert_allclose(Dv[lv[i]:lv[i + 1]][b], Df[lf[i]:lf[i + 1]][a], rtol=1e-5, atol=1e-4)
    gone = np.arange(0, 3000, 2)
    assert f.remove_ids(gone) == v.remove_ids(gone) == 1500
    _same_results(*f.search(xq, 10), *v.search(xq, 10))


def test_voisin_trained_ivf_is_read_by_faiss_identically():
    xb, xq = _data(3000, 32), _data(10, 32, seed=7)
    v = voisin.index_factory(32, "IVF16,RaBitQ", IP)
    v.train(xb)
    v.add(xb)
    v.nprobe = 4
    f = faiss.deserialize_index(voisin.serialize_index(v))
    _same_results(*f.search(xq, 10), *v.search(xq, 10))


# --- refinement and recall ---------------------------------------------------------

@pytest.mark.parametrize("desc", ["RaBitQ,Refine(Flat)", "IVF16,RaBitQ,RFlat"])
def test_refine_matches_faiss_and_recall_is_sensible(desc):
    xb, xq = _data(3000, 32), _data(30, 32, seed=8)
    f = faiss.index_factory(32, desc)
    f.train(xb)
    f.add(xb)
    v = voisin.deserialize_index(faiss.serialize_index(f))
    fp = faiss.IndexRefineSearchParameters()
    fp.k_factor = 16
    if desc.startswith("IVF"):
        bp = faiss.SearchParametersIVF()
        bp.nprobe = 8
        fp.base_index_params = bp
        vp = voisin.SearchParametersRefine(k_factor=16, base_index_params=voisin.SearchParametersIVF(nprobe=8))
    else:
        vp = voisin.SearchParametersRefine(k_factor=16)
    Df, If = f.search(xq, 10, params=fp)
    Dv, Iv = v.search(xq, 10, params=vp)
    _same_results(Df, If, Dv, Iv)
    exact = voisin.IndexFlatL2(32)
    exact.add(xb)
    gt = exact.search(xq, 10)[1]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(gt, Iv)])
    assert recall > 0.8


def test_one_bit_estimate_recall_against_brute_force():
    xb, xq = _data(3000, 64), _data(40, 64, seed=9)
    v = voisin.IndexRaBitQ(64)
    v.train(xb)
    v.add(xb)
    exact = voisin.IndexFlatL2(64)
    exact.add(xb)
    gt = exact.search(xq, 1)[1][:, 0]
    # 1 bit per component without a rotation is coarse at d=64: the true nearest
    # neighbour is among the first 100 of 3000 for most queries
    for qb in (0, 8):
        I = v.search(xq, 100, params=voisin.RaBitQSearchParameters(qb=qb))[1]
        assert np.mean([g in row for g, row in zip(gt, I)]) > 0.8
    # the estimate tracks the true distance
    D = v.search(xq, 50, params=voisin.RaBitQSearchParameters(qb=0))[0]
    true = ((xq[:, None, :] - xb[v.search(xq, 50)[1]]) ** 2).sum(-1)
    assert np.corrcoef(D.ravel(), np.sort(true, axis=1).ravel())[0, 1] > 0.5


def test_factory_strings():
    assert isinstance(voisin.index_factory(16, "RaBitQ"), voisin.IndexRaBitQ)
    assert isinstance(voisin.index_factory(16, "RaBitQ1"), voisin.IndexRaBitQ)
    ivf = voisin.index_factory(16, "IVF8,RaBitQ", IP)
    assert isinstance(ivf, voisin.IndexIVFRaBitQ) and ivf.metric_type == IP and ivf.nlist == 8
    assert isinstance(voisin.index_factory(16, "RaBitQ,RFlat"), voisin.IndexRefineFlat)
    for desc, cls in (("RaBitQ4", voisin.IndexRaBitQ), ("IVF8,RaBitQ2", voisin.IndexIVFRaBitQ)):
        index = voisin.index_factory(16, desc)
        theirs = faiss.index_factory(16, desc)
        assert isinstance(index, cls) and index.code_size == theirs.code_size
        assert index.rabitq.nb_bits == theirs.rabitq.nb_bits
    with pytest.raises(voisin.FactoryError, match="1 <= b <= 9"):
        voisin.index_factory(16, "RaBitQ10")
    with pytest.raises(voisin.FactoryError, match="fast-scan"):
        voisin.index_factory(16, "RaBitQfs")


# --- bad input ------------------------------------------------------------------

def test_bad_input_is_refused_naming_the_argument():
    xb = _data(500, 16)
    with pytest.raises(ValueError, match="metric"):
        voisin.IndexRaBitQ(16, voisin.METRIC_L1)
    with pytest.raises(ValueError, match="nb_bits"):
        voisin.IndexRaBitQ(16, L2, 0)
    with pytest.raises(ValueError, match="nb_bits"):
        voisin.IndexIVFRaBitQ(voisin.IndexFlatL2(16), 16, 4, L2, True, 10)
    v = voisin.IndexRaBitQ(16)
    with pytest.raises(RuntimeError, match="not trained"):
        v.add(xb)
    v.train(xb)
    v.add(xb)
    with pytest.raises(ValueError, match="x"):
        v.search(xb[:, :8], 3)
    with pytest.raises(ValueError, match="params.qb"):
        v.search(xb[:2], 3, params=voisin.RaBitQSearchParameters(qb=9))
    v.qb = -1
    with pytest.raises(ValueError, match="qb"):
        v.search(xb[:2], 3)
    with pytest.raises(TypeError, match="params"):
        v.search(xb[:2], 3, params=voisin.SearchParametersIVF(nprobe=2))
    with pytest.raises(TypeError, match="codes"):
        v.sa_decode(np.zeros((2, v.code_size), np.float32))
    with pytest.raises(ValueError, match="codes"):
        v.sa_decode(np.zeros((2, v.code_size + 1), np.uint8))
    ivf = voisin.IndexIVFRaBitQ(voisin.IndexFlatL2(16), 16, 4)
    ivf.train(xb)
    ivf.add(xb)
    with pytest.raises(TypeError, match="params"):
        ivf.search(xb[:2], 3, params=voisin.RaBitQSearchParameters())
    with pytest.raises(ValueError, match="params.qb"):
        ivf.search(xb[:2], 3, params=voisin.IVFRaBitQSearchParameters(qb=12))
    with pytest.raises(TypeError, match="centered"):
        ivf.search(xb[:2], 3, params=voisin.IVFRaBitQSearchParameters(centered="yes"))


def test_corrupt_files_are_refused():
    f = faiss.IndexRaBitQ(16, L2)
    f.train(_data(100, 16))
    buf = bytearray(faiss.serialize_index(f).tobytes())
    # the quantizer's code_size (after tag + 33-byte header + u64 d)
    buf[4 + 33 + 8] = 99
    with pytest.raises(voisin.IndexFileError, match="code_size"):
        voisin.deserialize_index(bytes(buf))
