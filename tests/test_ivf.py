"""IVF-Flat: exactness at nprobe=nlist, recall floors, filters, removals,
reconstruct, range search, parameters and bad input."""

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import voisin
from voisin.indexes.invlists import InvertedLists

L2, IP = voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT


def _data(n=4000, d=16, nq=50, seed=0, clusters=40):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 4, (clusters, d))
    xb = (centers[rng.integers(0, clusters, n)] + rng.normal(size=(n, d))).astype("float32")
    xq = (centers[rng.integers(0, clusters, nq)] + rng.normal(size=(nq, d))).astype("float32")
    return xb, xq


def _ivf(xb, nlist=32, metric=L2):
    d = xb.shape[1]
    index = voisin.IndexIVFFlat(voisin.IndexFlat(d, metric), d, nlist, metric)
    index.train(xb)
    index.add(xb)
    return index


def _recall(I, gt):
    return np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(I, gt)])


@pytest.mark.parametrize("metric", [L2, IP])
@pytest.mark.parametrize("nq", [1, 3, 50])  # single (fused) path and batch path
def test_nprobe_nlist_equals_flat(metric, nq):
    xb, xq = _data()
    index = _ivf(xb, metric=metric)
    index.nprobe = index.nlist
    flat = voisin.IndexFlat(16, metric)
    flat.add(xb)
    D, I = index.search(xq[:nq], 10)
    D2, I2 = flat.search(xq[:nq], 10)
    np.testing.assert_array_equal(I, I2)
    np.testing.assert_allclose(D, D2, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("metric", [L2, IP])
def test_recall_grows_with_nprobe(metric):
    xb, xq = _data(n=6000, nq=100)
    index = _ivf(xb, nlist=64, metric=metric)
    flat = voisin.IndexFlat(16, metric)
    flat.add(xb)
    gt = flat.search(xq, 10)[1]
    recalls = []
    for nprobe in (1, 4, 16):
        index.nprobe = nprobe
        recalls.append(_recall(index.search(xq, 10)[1], gt))
    assert recalls[0] <= recalls[1] <= recalls[2]
    assert recalls[2] >= 0.9


def test_matches_faiss_lists_and_results():
    faiss = pytest.importorskip("faiss")
    xb, xq = _data(n=3000, nq=40)
    index = _ivf(xb, nlist=16)
    # same centroids in faiss: identical lists, identical search results
    fq = faiss.IndexFlatL2(16)
    fq.add(index.quantizer.reconstruct_n(0, 16))
    fi = faiss.IndexIVFFlat(fq, 16, 16)
    fi.add(xb)
    for l in range(16):
        assert sorted(voisin_ids(index, l)) == sorted(faiss.rev_swig_ptr(
            fi.invlists.get_ids(l), fi.invlists.list_size(l)).tolist())
    index.nprobe = fi.nprobe = 3
    D, I = index.search(xq, 5)
    D2, I2 = fi.search(xq, 5)
    np.testing.assert_array_equal(I, I2)
    np.testing.assert_allclose(D, D2, rtol=1e-4, atol=1e-3)


def voisin_ids(index, l):
    return index.invlists.get_ids(l).tolist()


def test_search_params_nprobe_and_max_codes():
    xb, xq = _data()
    index = _ivf(xb)
    full = index.search(xq, 10, params=voisin.SearchParametersIVF(nprobe=32))
    index.nprobe = 32
    np.testing.assert_array_equal(index.search(xq, 10)[1], full[1])
    index.nprobe = 1
    # max_codes stops the scan after the first list that reaches the cap
    D, I = index.search(xq, 10, params=voisin.SearchParametersIVF(nprobe=32, max_codes=1))
    D1, I1 = index.search(xq, 10, params=voisin.SearchParametersIVF(nprobe=1))
    np.testing.assert_array_equal(I, I1)
    with pytest.raises(TypeError, match="unknown parameter"):
        voisin.SearchParametersIVF(efSearch=3)
    with pytest.raises(ValueError, match="nprobe"):
        index.search(xq, 10, params=voisin.SearchParametersIVF(nprobe=0))


@pytest.mark.parametrize("nq", [1, 30])
def test_filter_matches_filtered_flat(nq):
    xb, xq = _data()
    index = _ivf(xb)
    index.nprobe = 32
    sel = voisin.IDSelectorRange(1000, 1500)
    D, I = index.search(xq[:nq], 10, params=voisin.SearchParametersIVF(sel=sel))
    flat = voisin.IndexFlatL2(16)
    flat.add(xb)
    D2, I2 = flat.search(xq[:nq], 10, params=voisin.SearchParameters(sel=sel))
    np.testing.assert_array_equal(I, I2)
    assert ((I >= 1000) & (I < 1500)).all()
    # plain SearchParameters are accepted too
    D3, I3 = index.search(xq[:nq], 10, params=voisin.SearchParameters(sel=sel))
    np.testing.assert_array_equal(I3, I2)


def test_filter_fewer_than_k_pads_with_minus_one():
    xb, xq = _data()
    index = _ivf(xb)
    index.nprobe = 32
    D, I = index.search(xq[:2], 5, params=voisin.SearchParametersIVF(sel=voisin.IDSelectorBatch([3, 9])))
    assert sorted(I[0, :2].tolist()) == [3, 9]
    assert (I[:, 2:] == -1).all()
    assert (D[:, 2:] == np.finfo(np.float32).max).all()


def test_add_with_ids_remove_and_reconstruct():
    xb, xq = _data()
    index = voisin.IndexIVFFlat(voisin.IndexFlatL2(16), 16, 32)
    index.train(xb)
    ids = np.arange(len(xb), dtype=np.int64) * 7 + 100
    index.add_with_ids(xb, ids)
    np.testing.assert_array_equal(index.reconstruct(int(ids[5])), xb[5])
    np.testing.assert_array_equal(index.reconstruct_batch(ids[[1, 2]]), xb[[1, 2]])
    removed = index.remove_ids(ids[:2000])
    assert removed == 2000 and index.ntotal == len(xb) - 2000
    assert index.remove_ids(ids[:10]) == 0
    index.nprobe = 32
    D, I = index.search(xq, 10)
    assert not np.isin(I, ids[:2000]).any()
    flat = voisin.IndexIDMap(voisin.IndexFlatL2(16))
    flat.add_with_ids(xb[2000:], ids[2000:])
    np.testing.assert_array_equal(I, flat.search(xq, 10)[1])
    with pytest.raises(ValueError, match="not in the index"):
        index.reconstruct(int(ids[0]))
    np.testing.assert_array_equal(index.reconstruct(int(ids[3000])), xb[3000])
    # selector removal
    assert index.remove_ids(voisin.IDSelectorRange(0, 10**9)) == len(xb) - 2000
    assert index.ntotal == 0
    D, I = index.search(xq[:1], 3)
    assert (I == -1).all()


def test_incremental_adds_keep_lists_consistent():
    xb, xq = _data()
    index = voisin.IndexIVFFlat(voisin.IndexFlatL2(16), 16, 32)
    index.train(xb)
    for chunk in np.array_split(np.arange(len(xb)), 37):
        index.add(xb[chunk])
    assert index.ntotal == len(xb)
    assert sum(index.get_list_size(l) for l in range(32)) == len(xb)
    index.nprobe = 32
    flat = voisin.IndexFlatL2(16)
    flat.add(xb)
    np.testing.assert_array_equal(index.search(xq, 10)[1], flat.search(xq, 10)[1])
    np.testing.assert_array_equal(index.reconstruct_n(0, 10), xb[:10])
    index.reset()
    assert index.ntotal == 0 and index.is_trained


@pytest.mark.parametrize("metric", [L2, IP])
def test_range_search_matches_flat(metric):
    xb, xq = _data()
    index = _ivf(xb, metric=metric)
    index.nprobe = 32
    flat = voisin.IndexFlat(16, metric)
    flat.add(xb)
    radius = 20.0 if metric == L2 else 60.0
    lims, D, I = index.range_search(xq[:10], radius)
    lims2, D2, I2 = flat.range_search(xq[:10], radius)
    np.testing.assert_array_equal(lims, lims2)
    for i in range(10):
        a = np.sort(I[lims[i]:lims[i + 1]])
        b = np.sort(I2[lims2[i]:lims2[i + 1]])
        np.testing.assert_array_equal(a, b)
    sel = voisin.IDSelectorRange(0, 100)
    lims, D, I = index.range_search(xq[:10], radius, params=voisin.SearchParametersIVF(sel=sel))
    assert (I < 100).all()


def test_untrained_and_bad_input():
    index = voisin.IndexIVFFlat(voisin.IndexFlatL2(8), 8, 16)
    assert not index.is_trained
    with pytest.raises(RuntimeError, match="not trained"):
        index.add(np.zeros((3, 8), "float32"))
    with pytest.raises(RuntimeError, match="not trained"):
        index.search(np.zeros((3, 8), "float32"), 1)
    with pytest.raises(ValueError, match="at least 16"):
        index.train(np.random.rand(10, 8))
    with pytest.raises(ValueError, match="quantizer"):
        voisin.IndexIVFFlat(voisin.IndexFlatL2(4), 8, 16)
    with pytest.raises(TypeError, match="quantizer"):
        voisin.IndexIVFFlat("flat", 8, 16)
    with pytest.raises(ValueError, match="nlist"):
        voisin.IndexIVFFlat(voisin.IndexFlatL2(8), 8, 0)
    index.train(np.random.rand(500, 8))
    with pytest.raises(ValueError, match="dimension"):
        index.add(np.zeros((2, 5), "float32"))
    with pytest.raises(ValueError, match="NaN"):
        index.add(np.full((2, 8), np.nan, "float32"))
    with pytest.raises(ValueError, match="duplicate"):
        index.add_with_ids(np.zeros((2, 8), "float32"), np.array([1, 1]))
    with pytest.raises(ValueError, match="k"):
        index.search(np.zeros((1, 8), "float32"), 0)
    with pytest.raises(TypeError, match="params"):
        index.search(np.zeros((1, 8), "float32"), 1, params="fast")


def test_pretrained_quantizer_skips_training():
    xb, _ = _data()
    q = voisin.IndexFlatL2(16)
    q.add(xb[:32])
    index = voisin.IndexIVFFlat(q, 16, 32)
    assert index.is_trained
    index.add(xb)
    assert index.ntotal == len(xb)
    np.testing.assert_array_equal(index.quantizer.reconstruct_n(0, 32), xb[:32])


def test_search_preassigned_and_encode_roundtrip():
    xb, xq = _data()
    index = _ivf(xb)
    _, Iq = index.quantizer.search(xq, 4)
    index.nprobe = 4
    D, I = index.search(xq, 10)
    D2, I2 = index.search_preassigned(xq, 10, Iq)
    np.testing.assert_array_equal(I, I2)
    codes = index.encode_vectors(xb[:3], np.zeros(3, np.int64))
    np.testing.assert_array_equal(index.decode_vectors(codes, np.zeros(3, np.int64)), xb[:3])


def test_pickle_roundtrip():
    import pickle
    xb, xq = _data()
    index = _ivf(xb)
    clone = pickle.loads(pickle.dumps(index))
    np.testing.assert_array_equal(clone.search(xq, 5)[1], index.search(xq, 5)[1])


def test_concurrent_searches_during_adds():
    import threading
    xb, xq = _data()
    index = voisin.IndexIVFFlat(voisin.IndexFlatL2(16), 16, 32)
    index.train(xb)
    index.add(xb[:1000])
    errors = []

    def reader():
        try:
            for _ in range(30):
                D, I = index.search(xq, 5)
                assert ((I >= -1) & (I < len(xb))).all()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    for chunk in np.array_split(np.arange(1000, len(xb)), 10):
        index.add(xb[chunk])
    t.join()
    assert not errors


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(0, 6), min_size=1, max_size=6), seed=st.integers(0, 1000))
def test_invlists_add_remove_property(sizes, seed):
    rng = np.random.default_rng(seed)
    il = InvertedLists(5, 3)
    truth = {l: [] for l in range(5)}
    next_id = 0
    for n in sizes:
        lists = rng.integers(0, 5, n)
        ids = np.arange(next_id, next_id + n)
        codes = (ids[:, None] % 251).astype(np.uint8).repeat(3, axis=1)
        il.add_entries(lists, codes, ids)
        for l, i in zip(lists, ids):
            truth[int(l)].append(int(i))
        next_id += n
        if next_id and rng.random() < 0.5:
            rows, _ = il.used_rows()
            victim = rows[rng.integers(0, rows.size)] if rows.size else None
            if victim is not None:
                vid = int(il.ids[victim])
                il.remove_rows(np.array([victim]))
                for l in truth:
                    if vid in truth[l]:
                        truth[l].remove(vid)
    for l in range(5):
        assert il.get_ids(l).tolist() == truth[l]
        assert (il.get_codes(l)[:, 0] == (il.get_ids(l) % 251)).all()


def _datasets_dir() -> Path:
    env = os.environ.get("VOISIN_SHARED_DATASETS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.mark.slow
def test_real_data_recall_floor_siftsmall():
    path = _datasets_dir() / "siftsmall-128-euclidean.hdf5"
    if not path.exists():
        pytest.skip(f"dataset not found at {path} (set VOISIN_SHARED_DATASETS)")
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "r") as f:
        xb = np.asarray(f["train"], dtype="float32")
        xq = np.asarray(f["test"][:100], dtype="float32")
        gt = np.asarray(f["neighbors"][:100, :10])
    index = voisin.index_factory(128, "IVF40,Flat")
    index.train(xb)
    index.add(xb)
    index.nprobe = 8
    assert _recall(index.search(xq, 10)[1], gt) >= 0.95


@pytest.mark.parametrize("metric", [L2, IP])
def test_list_major_batch_path_equals_per_query_path(metric, monkeypatch):
    import numba
    import voisin.indexes.ivf_flat as ivf_mod
    if numba.get_num_threads() < 2:
        pytest.skip("the batch paths run with several numba threads")
    xb, xq = _data(nq=300)
    index = _ivf(xb, metric=metric)
    sel = voisin.IDSelectorRange(500, 3000)
    cases = [voisin.SearchParametersIVF(nprobe=7), voisin.SearchParametersIVF(nprobe=32),
             voisin.SearchParametersIVF(nprobe=5, max_codes=300), voisin.SearchParametersIVF(nprobe=6, sel=sel)]
    monkeypatch.setattr(ivf_mod, "LIST_MAJOR_MIN_DIM", 1)
    monkeypatch.setattr(ivf_mod, "LIST_MAJOR_MIN_QUERIES", 10**9)
    want = [index.search(xq, 10, params=p) for p in cases]
    monkeypatch.setattr(ivf_mod, "LIST_MAJOR_MIN_QUERIES", 64)
    got = [index.search(xq, 10, params=p) for p in cases]
    for (D1, I1), (D2, I2) in zip(want, got):
        np.testing.assert_array_equal(I1, I2)
        np.testing.assert_allclose(D1, D2, rtol=1e-5, atol=1e-4)
    flat = voisin.IndexFlat(16, metric)
    flat.add(xb)
    np.testing.assert_array_equal(got[1][1], flat.search(xq, 10)[1])


@pytest.mark.parametrize("metric", [voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT])
def test_ivfflat_batch_pipelines_match_preassigned_search(metric, monkeypatch):
    # >= 256 queries on several threads take one BLAS+scan pipeline per thread;
    # the answer must be the one of the coarse assignment + list scan path
    import voisin.indexes.ivf_flat as ivf_mod
    rng = np.random.default_rng(5)
    xb = rng.random((6000, 32), dtype="float32")
    xq = rng.random((600, 32), dtype="float32")
    index = voisin.index_factory(32, "IVF32,Flat", metric)
    index.train(xb)
    index.add(xb)
    index.nprobe = 6
    calls = []
    real = ivf_mod._flat_gemm_pipelines
    monkeypatch.setattr(ivf_mod, "_flat_gemm_pipelines", lambda *a: (calls.append(1), real(*a)))
    D, I = index.search(xq, 10)
    Dq, Iq = index.quantizer.search(xq, 6)
    D2, I2 = index.search_preassigned(xq, 10, Iq, Dq)
    assert calls == ([1] if ivf_mod._pipelines_pay(len(xq)) else [])
    np.testing.assert_array_equal(I, I2)
    np.testing.assert_allclose(D, D2, rtol=1e-5, atol=1e-5)
