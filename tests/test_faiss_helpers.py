"""FAISS's Python helpers on voisin, each compared with faiss-cpu on the same data.

Random generators and the top-k helpers must return faiss's values exactly
(ties included); index helpers are checked on indexes loaded from one
faiss-written file, so both libraries search identical structures.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import voisin
from conftest import assert_same_results, faiss_twins, tolerance

faiss = pytest.importorskip("faiss")
pytestmark = pytest.mark.usefixtures("faiss_single_thread")


# --------------------------------------------------------------------------
# random generators: bit for bit
# --------------------------------------------------------------------------

@pytest.mark.parametrize("n", [0, 1, 7, 1023, 1024, 4099])
@pytest.mark.parametrize("seed", [0, 12345, -7, 2 ** 40 + 3])
def test_random_generators_equal_faiss(n, seed):
    np.testing.assert_array_equal(voisin.rand(n, seed), faiss.rand(n, seed))
    np.testing.assert_array_equal(voisin.randn(n, seed), faiss.randn(n, seed))
    np.testing.assert_array_equal(voisin.randint(n, seed), faiss.randint(n, seed))
    np.testing.assert_array_equal(voisin.randint(n, seed, vmax=37), faiss.randint(n, seed, vmax=37))
    np.testing.assert_array_equal(voisin.lrand(n, seed), faiss.lrand(n, seed))


@pytest.mark.parametrize("n", [1, 10, 2000])
def test_pointer_style_generators_equal_faiss(n):
    for name, dtype, extra in [("float_rand", "float32", ()), ("float_randn", "float32", ()),
                               ("int64_rand", "int64", ()), ("byte_rand", "uint8", ()),
                               ("int64_rand_max", "int64", (1000,)), ("rand_perm", "int32", ())]:
        a = np.zeros(n + 3, dtype=dtype)
        b = np.zeros(n + 3, dtype=dtype)
        getattr(faiss, name)(faiss.swig_ptr(a), n, *extra, 99)
        getattr(voisin, name)(voisin.swig_ptr(b), n, *extra, 99)
        np.testing.assert_array_equal(a, b, err_msg=name)
        assert (b[n:] == 0).all(), f"{name} wrote past n"


def test_rand_shapes_and_smooth_vectors():
    assert voisin.rand((3, 4)).shape == (3, 4)
    np.testing.assert_array_equal(voisin.randn((5, 2), 3), faiss.randn((5, 2), 3))
    a = voisin.rand_smooth_vectors(500, 24, 5)
    b = faiss.rand_smooth_vectors(500, 24, 5)
    assert a.dtype == np.float32 and a.shape == (500, 24)
    np.testing.assert_allclose(a, b, atol=1e-4)  # a matrix product: rounding only


def test_random_bad_input():
    with pytest.raises(TypeError, match="x: expected a writeable C-contiguous float32"):
        voisin.float_rand(np.zeros(4, dtype=np.float64), 4, 1)
    with pytest.raises(ValueError, match="x: expected at least n=9 elements"):
        voisin.float_rand(np.zeros(4, dtype=np.float32), 9, 1)
    with pytest.raises(ValueError, match="n: expected an integer >= 0"):
        voisin.rand(-1)
    with pytest.raises(ValueError, match="max: expected an integer >= 1"):
        voisin.randint(4, 1, vmax=0)
    with pytest.raises(TypeError, match="seed: expected an integer"):
        voisin.randn(4, 1.5)


# --------------------------------------------------------------------------
# knn_hamming, kmin / kmax, ResultHeap: exactly faiss's answers
# --------------------------------------------------------------------------

@pytest.mark.parametrize("code_size", [1, 3, 4, 8, 20, 32])
@pytest.mark.parametrize("k", [1, 7, 300])
def test_knn_hamming_equals_faiss(code_size, k):
    rs = np.random.RandomState(code_size)
    xb = rs.randint(0, 256, size=(250, code_size)).astype(np.uint8)
    xq = rs.randint(0, 256, size=(70, code_size)).astype(np.uint8)
    for variant in ("hc", "mc"):
        D, I = voisin.knn_hamming(xq, xb, k, variant=variant)
        Df, If = faiss.knn_hamming(xq, xb, k, variant=variant)
        assert D.dtype == np.int32 and I.dtype == np.int64
        np.testing.assert_array_equal(D, Df)
        np.testing.assert_array_equal(I, If)


def test_knn_hamming_against_bit_counts_and_bad_input():
    rs = np.random.RandomState(0)
    xb = rs.randint(0, 256, size=(3000, 16)).astype(np.uint8)
    xq = xb[:200] ^ rs.randint(0, 2, size=(200, 16)).astype(np.uint8)  # near copies
    D, I = voisin.knn_hamming(xq, xb, 5)
    bits = np.unpackbits(xq[:, None, :] ^ xb[None, :, :], axis=2).sum(axis=2)
    order = np.lexsort((np.broadcast_to(np.arange(3000), bits.shape), bits), axis=1)[:, :5]
    np.testing.assert_array_equal(I, order)
    np.testing.assert_array_equal(D, np.take_along_axis(bits, order, 1))
    with pytest.raises(TypeError, match="xq: expected uint8 codes"):
        voisin.knn_hamming(xq.astype(np.float32), xb, 3)
    with pytest.raises(ValueError, match="xb: expected codes of 16 bytes"):
        voisin.knn_hamming(xq, xb[:, :8], 3)
    with pytest.raises(ValueError, match="variant: expected 'hc' or 'mc'"):
        voisin.knn_hamming(xq, xb, 3, variant="xx")
    with pytest.raises(ValueError, match="k: expected a positive integer"):
        voisin.knn_hamming(xq, xb, 0)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5), st.integers(1, 30), st.integers(1, 40), st.integers(0, 2 ** 31))
def test_kmin_kmax_equal_faiss_with_ties(m, n, k, seed):
    # few distinct values: ties everywhere, where FAISS's heap rules show
    A = np.random.RandomState(seed).randint(0, 4, size=(m, n)).astype(np.float32)
    for ours, theirs in ((voisin.kmin, faiss.kmin), (voisin.kmax, faiss.kmax)):
        D, I = ours(A, k)
        Df, If = theirs(A, k)
        np.testing.assert_array_equal(D, Df)
        np.testing.assert_array_equal(I, If)


@settings(max_examples=40, deadline=None)
@given(st.booleans(), st.integers(1, 5), st.integers(1, 12), st.integers(0, 2 ** 31))
def test_result_heap_equals_faiss(keep_max, nq, k, seed):
    rs = np.random.RandomState(seed)
    ours, theirs = voisin.ResultHeap(nq, k, keep_max=keep_max), faiss.ResultHeap(nq, k, keep_max=keep_max)
    for _ in range(3):
        D = rs.randint(0, 5, size=(nq, 6)).astype(np.float32)
        I = rs.randint(-1, 50, size=(nq, 6))
        ours.add_result(D, I)
        theirs.add_result(D, I)
        sub = rs.choice(nq, size=rs.randint(1, nq + 1), replace=False)
        D = rs.randint(0, 5, size=(sub.size, 4)).astype(np.float32)
        ids = rs.randint(0, 50, size=4)
        ours.add_result_subset(sub, D, ids)
        theirs.add_result_subset(sub, D, ids)
    ours.finalize()
    theirs.finalize()
    np.testing.assert_array_equal(ours.D, theirs.D)
    np.testing.assert_array_equal(ours.I, theirs.I)


def test_topk_bad_input():
    with pytest.raises(ValueError, match="array: contains NaN"):
        voisin.kmin(np.array([[1.0, np.nan]]), 1)
    with pytest.raises(ValueError, match="array: expected a 2-D array"):
        voisin.kmax(np.arange(4.0), 2)
    rh = voisin.ResultHeap(2, 3)
    with pytest.raises(ValueError, match="D: expected 2 rows"):
        rh.add_result(np.zeros((3, 2)), np.zeros((3, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="I: expected shape"):
        rh.add_result(np.zeros((2, 2)), np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="subset: query numbers must lie in"):
        rh.add_result_subset([5], np.zeros((1, 2)), np.zeros(2, dtype=np.int64))


# --------------------------------------------------------------------------
# index helpers on indexes loaded from one faiss file
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def data():
    rs = np.random.RandomState(5)
    return rs.rand(4000, 16).astype(np.float32), rs.rand(30, 16).astype(np.float32)


@pytest.mark.parametrize("key", ["Flat", "IVF16,Flat", "PCA16,IVF16,SQ8", "IVF16,PQ4x4", "HNSW8",
                                 "PQ4x4", "IVF8,Flat,RFlat"])
def test_search_and_reconstruct_matches_faiss(key, data):
    xb, xq = data
    f, v = faiss_twins(key, xb)
    if voisin.try_extract_index_ivf(v) is not None:
        faiss.extract_index_ivf(f).nprobe = 4
        voisin.extract_index_ivf(v).nprobe = 4
    D, I, R = v.search_and_reconstruct(xq, 6)
    Df, If, Rf = f.search_and_reconstruct(xq, 6)
    assert R.shape == (30, 6, 16) and R.dtype == np.float32
    assert_same_results(D, I, Df, If, 1e-4)
    same = I == If
    np.testing.assert_allclose(R[same], Rf[same], atol=1e-5)
    np.testing.assert_allclose(R.reshape(-1, 16), v.reconstruct_batch(I.ravel()), atol=1e-6)
    D2, I2, R2 = voisin.search_and_reconstruct(v, xq, 6)
    np.testing.assert_array_equal(I2, I)


def test_search_and_reconstruct_missing_results_are_nan(data):
    xb, xq = data
    index = voisin.IndexFlatL2(16)
    index.add(xb[:3])
    D, I, R = index.search_and_reconstruct(xq[:2], 5)
    assert (I[:, 3:] == -1).all() and np.isnan(R[:, 3:]).all()
    np.testing.assert_array_equal(R[:, :3], xb[I[:, :3]])
    with pytest.raises(ValueError, match="R: expected a writeable C-contiguous float32"):
        index.search_and_reconstruct(xq[:2], 5, R=np.zeros((2, 5, 3), np.float32))
    with pytest.raises(NotImplementedError, match="no reconstruct"):
        _NoReconstruct(16).search_and_reconstruct(xq[:1], 1)


class _NoReconstruct(voisin.IndexFlatL2):
    """An index that can search but not reconstruct (FAISS's IndexLSH, say)."""

    def __init__(self, d):
        super().__init__(d)
        self.add(np.eye(d, dtype=np.float32))

    def _reconstruct_keys(self, keys):
        raise NotImplementedError("no reconstruct")


def test_clone_index_is_deep_and_keeps_knobs(data, tmp_path):
    xb, xq = data
    index = voisin.index_factory(16, "IVF16,Flat")
    index.train(xb)
    index.add(xb)
    index.nprobe = 5
    path = tmp_path / "ivf.index"
    voisin.write_index(index, str(path))
    mapped = voisin.read_index(str(path), voisin.IO_FLAG_MMAP | voisin.IO_FLAG_READ_ONLY)
    for src in (index, mapped):
        c = voisin.clone_index(src)
        assert c is not src and type(c) is type(src) and c.nprobe == 5
        np.testing.assert_array_equal(c.search(xq, 5)[1], src.search(xq, 5)[1])
        c.add(xb[:10])  # a clone is writeable, even of a read-only mapping
        assert c.ntotal == src.ntotal + 10
    assert index.ntotal == 4000
    with pytest.raises(TypeError, match="index: expected a voisin Index"):
        voisin.clone_index("not an index")


def test_downcast_and_extract(data):
    xb, _ = data
    pre = voisin.index_factory(16, "PCA8,IVF4,Flat")
    pre.train(xb)
    ivf = voisin.extract_index_ivf(pre)
    assert isinstance(ivf, voisin.IndexIVFFlat) and ivf is pre.index
    voisin.extract_index_ivf(pre).nprobe = 3
    assert pre.index.nprobe == 3
    idmap = voisin.IndexIDMap(voisin.IndexIVFFlat(voisin.IndexFlatL2(16), 16, 4))
    assert voisin.extract_index_ivf(idmap) is idmap.index
    refine = voisin.index_factory(16, "IVF4,SQ8,RFlat")
    assert voisin.extract_index_ivf(refine) is refine.base_index
    flat = voisin.IndexFlatL2(16)
    assert voisin.try_extract_index_ivf(flat) is None
    with pytest.raises(TypeError, match="index: IndexFlatL2 is not an IVF index"):
        voisin.extract_index_ivf(flat)
    assert voisin.downcast_index(flat) is flat
    assert voisin.downcast_InvertedLists(ivf.invlists) is ivf.invlists
    assert voisin.downcast_VectorTransform(pre.chain[0]) is pre.chain[0]
    with pytest.raises(TypeError, match="index: expected a voisin Index"):
        voisin.downcast_index(3)


def test_merge_into_matches_faiss(data):
    xb, xq = data
    f0, v0 = faiss_twins("IVF16,Flat", xb, add=False)
    f1, v1 = faiss.clone_index(f0), voisin.clone_index(v0)
    ids = np.arange(4000)
    f0.add_with_ids(xb[:2500], ids[:2500])
    v0.add_with_ids(xb[:2500], ids[:2500])
    f1.add_with_ids(xb[2500:], ids[2500:] - 2500)
    v1.add_with_ids(xb[2500:], ids[2500:] - 2500)
    faiss.merge_into(f0, f1, True)
    voisin.merge_into(v0, v1, True)
    assert v0.ntotal == f0.ntotal == 4000 and v1.ntotal == f1.ntotal == 0
    f0.nprobe = v0.nprobe = 4
    D, I = v0.search(xq, 8)
    Df, If = f0.search(xq, 8)
    assert_same_results(D, I, Df, If, tolerance(xq, xb, voisin.METRIC_L2))
    merged = np.concatenate([v0.invlists.get_ids(l) for l in range(v0.nlist)])
    assert sorted(merged.tolist()) == list(range(4000))


def test_merge_into_refuses_mismatches(data):
    xb, _ = data
    a = voisin.index_factory(16, "IVF16,Flat")
    a.train(xb)
    other = voisin.index_factory(16, "IVF16,Flat")
    other.train(xb[::-1].copy() + 1)
    with pytest.raises(ValueError, match="coarse quantizer differs"):
        voisin.merge_into(a, other, False)
    pq = voisin.index_factory(16, "IVF16,PQ4x4")
    pq.train(xb)
    with pytest.raises(TypeError, match="same type"):
        voisin.merge_into(a, pq, False)
    with pytest.raises(TypeError, match="index1: expected an IVF index"):
        voisin.merge_into(a, voisin.IndexFlatL2(16), False)
    with pytest.raises(ValueError, match="into itself"):
        voisin.merge_into(a, a, False)


# --------------------------------------------------------------------------
# search parameters and selectors
# --------------------------------------------------------------------------

def test_index_refine_search_parameters_is_voisins(data):
    xb, xq = data
    f, v = faiss_twins("PQ4x4,RFlat", xb)
    p = voisin.IndexRefineSearchParameters(k_factor=4)
    assert isinstance(p, voisin.SearchParametersRefine)
    D, I = v.search(xq, 5, params=p)
    Df, If = f.search(xq, 5, params=faiss.IndexRefineSearchParameters(k_factor=4))
    assert_same_results(D, I, Df, If, tolerance(xq, xb, voisin.METRIC_L2))


def test_search_parameters_pq(data):
    xb, xq = data
    f, v = faiss_twins("PQ4x4", xb)
    D, I = v.search(xq, 5, params=voisin.SearchParametersPQ(search_type=0, polysemous_ht=10))
    Df, If = f.search(xq, 5, params=faiss.SearchParametersPQ(search_type=0, polysemous_ht=10))
    assert_same_results(D, I, Df, If, 1e-3)
    # FAISS's IndexPQ refuses a selector here; voisin's filters, as every voisin index
    D, I = v.search(xq, 5, params=voisin.SearchParametersPQ(sel=voisin.IDSelectorRange(100, 900)))
    Dall, Iall = v.search(xq, v.ntotal)
    for i in range(xq.shape[0]):
        allowed = (Iall[i] >= 100) & (Iall[i] < 900)
        np.testing.assert_allclose(D[i], Dall[i][allowed][:5], rtol=1e-6)
    with pytest.raises(ValueError, match="search_type: unknown IndexPQ search type 6"):
        voisin.SearchParametersPQ(search_type=6)
    p = voisin.SearchParametersPQ()
    with pytest.raises(ValueError, match="search_type"):
        p.search_type = 9
    with pytest.raises(TypeError, match="params: IndexFlatL2 takes SearchParameters, got SearchParametersPQ"):
        voisin.IndexFlatL2(16).search(xq, 1, params=voisin.SearchParametersPQ())


def test_id_selector_translated_and_callback_match_faiss(data):
    xb, xq = data
    ids = np.arange(4000) * 3 + 11
    v = voisin.IndexIDMap(voisin.IndexFlatL2(16))
    f = faiss.IndexIDMap(faiss.IndexFlatL2(16))
    v.add_with_ids(xb, ids)
    f.add_with_ids(xb, ids)
    keep = ids[::7]
    for sel_v, sel_f in [
            (voisin.IDSelectorTranslated(v, voisin.IDSelectorBatch(keep)),
             faiss.IDSelectorTranslated(f, faiss.IDSelectorBatch(keep))),
            (voisin.IDSelectorTranslated(v.id_map, voisin.IDSelectorRange(0, 3000)),
             faiss.IDSelectorTranslated(f.id_map, faiss.IDSelectorRange(0, 3000)))]:
        D, I = v.index.search(xq, 5, params=voisin.SearchParameters(sel=sel_v))
        Df, If = f.index.search(xq, 5, params=faiss.SearchParameters(sel=sel_f))
        np.testing.assert_array_equal(I, If)
    calls = []

    def even(i):
        calls.append(i)
        return i % 2 == 0
    D, I = v.index.search(xq, 4, params=voisin.SearchParameters(sel=voisin.PyCallbackIDSelector(even)))
    Df, If = f.index.search(xq, 4, params=faiss.SearchParameters(sel=faiss.PyCallbackIDSelector(even)))
    np.testing.assert_array_equal(I, If)
    assert calls and all(isinstance(c, int) for c in calls)
    with pytest.raises(TypeError, match="callback: expected a function"):
        voisin.PyCallbackIDSelector(3)
    with pytest.raises(TypeError, match="sel: expected an IDSelector"):
        voisin.IDSelectorTranslated(v, "all")


def test_vector_idioms():
    v = voisin.Float32Vector()
    voisin.copy_array_to_vector(np.arange(5, dtype=np.float32), v)
    v.push_back(7.5)
    assert v.size() == 6 and v.at(5) == 7.5
    np.testing.assert_array_equal(voisin.vector_to_array(v), [0, 1, 2, 3, 4, 7.5])
    assert np.asarray(v).dtype == np.float32
    v.resize(2)
    assert voisin.vector_to_array(v).tolist() == [0.0, 1.0]
    with pytest.raises(IndexError):
        v.at(2)
    x = np.arange(4, dtype=np.float32)
    assert voisin.swig_ptr(x) is x
    np.testing.assert_array_equal(voisin.rev_swig_ptr(x, 2), x[:2])
    with pytest.raises(TypeError, match="a: expected a C-contiguous numpy array"):
        voisin.swig_ptr(x[::2])
    with pytest.raises(TypeError, match="v: expected a voisin vector"):
        voisin.copy_array_to_vector(x, [1, 2])
    assert voisin.is_similarity_metric(voisin.METRIC_INNER_PRODUCT)
    assert not voisin.is_similarity_metric(voisin.METRIC_L2)
