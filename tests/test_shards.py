"""IndexShards, IndexShardsIVF and IndexReplicas: results equal one index over the
union (voisin's own and numpy brute force), and faiss's IndexShards /
IndexShardsIVF / IndexReplicas on the same data, every metric, filters included."""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import voisin
from conftest import assert_knn_valid, assert_same_results, load_hdf5, tolerance
from voisin.indexes.threaded import merge_knn_results

faiss = pytest.importorskip("faiss")

METRICS = [voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT]
METRIC_IDS = ["L2", "IP"]
D = 24


def _flat_shards(nshard, metric, successive_ids=True, threaded=True, d=D):
    sh = voisin.IndexShards(d, threaded=threaded, successive_ids=successive_ids)
    for _ in range(nshard):
        inner = voisin.IndexFlat(d, metric)
        sh.add_shard(inner if successive_ids else voisin.IndexIDMap(inner))
    return sh


def _faiss_shards(nshard, metric, xb, ids=None, d=D):
    sh = faiss.IndexShards(d, False, ids is None)
    keep = []
    for _ in range(nshard):
        inner = faiss.IndexFlat(d, metric)
        sub = inner if ids is None else faiss.IndexIDMap(inner)
        keep.append((inner, sub))
        sh.add_shard(sub)
    if ids is None:
        sh.add(xb)
    else:
        sh.add_with_ids(xb, ids)
    return sh, keep  # the Python objects must outlive the C++ shards


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    return rng.standard_normal((2000, D), dtype=np.float32), rng.standard_normal((40, D), dtype=np.float32)


# --------------------------------------------------------------------------- #
# exact sharded search == one exact index over the union == faiss IndexShards
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("metric", METRICS, ids=METRIC_IDS)
@pytest.mark.parametrize("nshard", [1, 3, 5])
@pytest.mark.parametrize("nq", [3, 40], ids=["scan", "blas"])
def test_exact_shards_equal_union_and_faiss(data, metric, nshard, nq):
    xb, xq = data
    xq = xq[:nq]
    sh = _flat_shards(nshard, metric)
    sh.add(xb)
    assert sh.ntotal == xb.shape[0] and [sh.at(i).ntotal for i in range(nshard)] == \
        [(i + 1) * 2000 // nshard - i * 2000 // nshard for i in range(nshard)]  # FAISS's split
    one = voisin.IndexFlat(D, metric)
    one.add(xb)
    Ds, Is = sh.search(xq, 10)
    D1, I1 = one.search(xq, 10)
    np.testing.assert_array_equal(Is, I1)
    np.testing.assert_array_equal(Ds, D1)
    assert_knn_valid(Ds, Is, xq, xb, 10, metric)
    fsh, _keep = _faiss_shards(nshard, metric, xb)
    Df, If = fsh.search(xq, 10)
    assert_same_results(Ds, Is, Df, If, tolerance(xq, xb, metric))


@pytest.mark.parametrize("metric", METRICS, ids=METRIC_IDS)
def test_own_ids_equal_faiss(data, metric):
    xb, xq = data
    ids = np.random.default_rng(3).choice(10 ** 9, xb.shape[0], replace=False).astype(np.int64)
    sh = _flat_shards(4, metric, successive_ids=False)
    sh.add_with_ids(xb, ids)
    Ds, Is = sh.search(xq, 8)
    assert_knn_valid(Ds, Is, xq, xb, 8, metric, ids=ids)
    fsh, _keep = _faiss_shards(4, metric, xb, ids)
    Df, If = fsh.search(xq, 8)
    assert_same_results(Ds, Is, Df, If, tolerance(xq, xb, metric))
    # add() without ids numbers on from ntotal, as faiss does
    more = np.random.default_rng(4).standard_normal((10, D), dtype=np.float32)
    sh.add(more)
    assert sh.ntotal == 2010
    D2, I2 = sh.search(more, 1)
    np.testing.assert_array_equal(I2[:, 0], np.arange(2000, 2010))


@pytest.mark.parametrize("metric", METRICS, ids=METRIC_IDS)
def test_ties_and_padding_like_one_index(metric):
    # few distinct values: many exact ties, which must break on the smaller id
    rng = np.random.default_rng(11)
    xb = rng.integers(0, 3, (300, 8)).astype(np.float32)
    xq = rng.integers(0, 3, (20, 8)).astype(np.float32)
    sh = _flat_shards(4, metric, d=8)
    sh.add(xb)
    one = voisin.IndexFlat(8, metric)
    one.add(xb)
    for k in (7, 400):  # 400 > ntotal: padded with -1 like the union
        Ds, Is = sh.search(xq, k)
        D1, I1 = one.search(xq, k)
        np.testing.assert_array_equal(Is, I1)
        np.testing.assert_array_equal(Ds, D1)


def test_empty_and_uneven_shards(data):
    xb, xq = data
    sh = _flat_shards(3, voisin.METRIC_L2)
    D0, I0 = sh.search(xq, 4)
    assert (I0 == -1).all() and sh.ntotal == 0
    sh.add(xb[:2])  # one shard stays empty
    Ds, Is = sh.search(xq[:5], 4)
    assert_knn_valid(Ds, Is, xq[:5], xb[:2], 4, voisin.METRIC_L2)


def test_threaded_and_serial_agree_under_concurrent_searches(data):
    xb, xq = data
    serial = _flat_shards(4, voisin.METRIC_L2, threaded=False)
    threaded = _flat_shards(4, voisin.METRIC_L2, threaded=True)
    serial.add(xb)
    threaded.add(xb)
    ref = serial.search(xq, 10)
    errors, results = [], []

    def worker():
        try:
            for _ in range(5):
                results.append(threaded.search(xq, 10))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
    ts = [threading.Thread(target=worker) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=60)
    assert not errors and len(results) == 20
    for Dr, Ir in results:
        np.testing.assert_array_equal(Ir, ref[1])
        np.testing.assert_array_equal(Dr, ref[0])


# --------------------------------------------------------------------------- #
# filters speak in global ids (faiss hands them to each shard unchanged)
# --------------------------------------------------------------------------- #
SELECTORS = {
    "range": lambda: voisin.IDSelectorRange(300, 1700),
    "batch": lambda: voisin.IDSelectorBatch(np.arange(0, 2000, 7)),
    "not": lambda: voisin.IDSelectorNot(voisin.IDSelectorRange(0, 1500)),
    "function": lambda: voisin.IDSelectorFunction(lambda ids: ids % 3 == 1),
    "few": lambda: voisin.IDSelectorArray(np.array([5, 900, 1999])),
}


@pytest.mark.parametrize("metric", METRICS, ids=METRIC_IDS)
@pytest.mark.parametrize("which", list(SELECTORS))
def test_filtered_search_in_global_ids(data, metric, which):
    xb, xq = data
    sel = SELECTORS[which]()
    allowed = sel.contains(np.arange(2000))
    params = voisin.SearchParameters(sel=sel)
    sh = _flat_shards(3, metric)
    sh.add(xb)
    one = voisin.IndexFlat(D, metric)
    one.add(xb)
    Ds, Is = sh.search(xq, 10, params=params)
    D1, I1 = one.search(xq, 10, params=params)
    np.testing.assert_array_equal(Is, I1)
    assert_knn_valid(Ds, Is, xq, xb, 10, metric, allowed=allowed)
    # faiss over the union with the same filter (its IndexShards would filter local ids)
    ref = faiss.IndexFlat(D, metric)
    ref.add(xb)
    fp = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.flatnonzero(allowed).astype(np.int64)))
    Df, If = ref.search(xq, 10, params=fp)
    assert_same_results(Ds, Is, Df, If, tolerance(xq, xb, metric))
    lims, Dr, Ir = sh.range_search(xq, 30.0 if metric == voisin.METRIC_L2 else 2.0, params=params)
    assert allowed[Ir].all()


# --------------------------------------------------------------------------- #
# range search, removal, reconstruction, reset, pickling
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("metric", METRICS, ids=METRIC_IDS)
@pytest.mark.parametrize("successive_ids", [True, False], ids=["successive", "own-ids"])
def test_range_remove_reconstruct_like_one_index(data, metric, successive_ids):
    xb, xq = data
    sh = _flat_shards(3, metric, successive_ids=successive_ids)
    one = voisin.IndexFlat(D, metric) if successive_ids else voisin.IndexIDMap2(voisin.IndexFlat(D, metric))
    if successive_ids:
        sh.add(xb)
        one.add(xb)
    else:
        ids = np.arange(2000, dtype=np.int64) * 3 + 11
        sh.add_with_ids(xb, ids)
        one.add_with_ids(xb, ids)
    radius = 20.0 if metric == voisin.METRIC_L2 else 6.0

    def same_range():
        l1, D1, I1 = one.range_search(xq, radius)
        l2, D2, I2 = sh.range_search(xq, radius)
        np.testing.assert_array_equal(l1, l2)
        for q in range(xq.shape[0]):
            a = dict(zip(I1[l1[q]:l1[q + 1]].tolist(), D1[l1[q]:l1[q + 1]].tolist()))
            b = dict(zip(I2[l2[q]:l2[q + 1]].tolist(), D2[l2[q]:l2[q + 1]].tolist()))
            assert a.keys() == b.keys()
            np.testing.assert_allclose(list(b.values()), [a[i] for i in b], rtol=1e-5, atol=1e-5)
    same_range()
    gone = (np.arange(400, 1500) if successive_ids else np.arange(400, 1500) * 3 + 11)
    assert sh.remove_ids(gone) == one.remove_ids(gone) == 1100
    assert sh.ntotal == one.ntotal == 900
    np.testing.assert_array_equal(sh.search(xq, 10)[1], one.search(xq, 10)[1])
    same_range()
    keys = np.array([0, 399, 400, 899]) if successive_ids else np.array([11, 1508 * 3 + 11, 1999 * 3 + 11])
    np.testing.assert_array_equal(sh.reconstruct_batch(keys), one.reconstruct_batch(keys))
    with pytest.raises(ValueError, match="key"):
        sh.reconstruct(10 ** 6)
    sh.reset()
    assert sh.ntotal == 0 and all(sh.at(i).ntotal == 0 for i in range(3))


def test_pickle_round_trip(data):
    xb, xq = data
    sh = _flat_shards(3, voisin.METRIC_INNER_PRODUCT)
    sh.add(xb)
    back = pickle.loads(pickle.dumps(sh))
    assert back.count() == 3 and back.metric_type == voisin.METRIC_INNER_PRODUCT
    np.testing.assert_array_equal(back.search(xq, 5)[1], sh.search(xq, 5)[1])


def test_merge_kernel_tie_and_missing_rules():
    Dall = np.array([[[1.0, 2.0, 2.0]], [[2.0, 3.0, 0.0]], [[0.5, 0.0, 0.0]]], dtype=np.float32)
    Iall = np.array([[[9, 8, 20]], [[3, 4, -1]], [[50, -1, -1]]], dtype=np.int64)
    D, I = merge_knn_results(Dall, Iall, voisin.METRIC_L2, k=6)
    assert I.tolist() == [[50, 9, 3, 8, 20, 4]]
    D, I = merge_knn_results(Dall, Iall, voisin.METRIC_L2, k=8)
    assert I[0, 6:].tolist() == [-1, -1] and (D[0, 6:] == np.finfo(np.float32).max).all()
    Dip = np.array([[[3.0, 2.0, 2.0]], [[2.0, 1.0, 0.0]]], dtype=np.float32)
    Iip = np.array([[[9, 8, 20]], [[3, 4, -1]]], dtype=np.int64)
    D, I = merge_knn_results(Dip, Iip, voisin.METRIC_INNER_PRODUCT, k=4)
    assert I.tolist() == [[9, 3, 8, 20]]  # largest score first, tied scores by smaller id
    with pytest.raises(ValueError, match="Dall, Iall"):
        merge_knn_results(Dall[0], Iall[0], voisin.METRIC_L2)


@settings(max_examples=25, deadline=None)
@given(nshard=st.integers(1, 6), n=st.integers(0, 120), k=st.integers(1, 30),
       metric=st.sampled_from(METRICS), seed=st.integers(0, 2 ** 31 - 1), levels=st.sampled_from([3, 0]))
def test_property_sharded_exact_is_union_exact(nshard, n, k, metric, seed, levels):
    rng = np.random.default_rng(seed)
    xb = (rng.integers(0, levels, (n, 6)) if levels else rng.standard_normal((n, 6))).astype(np.float32)
    xq = rng.standard_normal((5, 6)).astype(np.float32)
    sh = _flat_shards(nshard, metric, d=6)
    one = voisin.IndexFlat(6, metric)
    if n:
        sh.add(xb)
        one.add(xb)
    Ds, Is = sh.search(xq, k)
    D1, I1 = one.search(xq, k)
    np.testing.assert_array_equal(Is, I1)
    np.testing.assert_array_equal(Ds, D1)


# --------------------------------------------------------------------------- #
# IndexReplicas
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("metric", METRICS, ids=METRIC_IDS)
@pytest.mark.parametrize("nq", [1, 2, 40])
def test_replicas_equal_one_index_and_faiss(data, metric, nq):
    xb, xq = data
    xq = xq[:nq]
    rep = voisin.IndexReplicas(D)
    for _ in range(3):
        rep.add_replica(voisin.IndexFlat(D, metric))
    rep.add(xb)
    assert rep.ntotal == 2000 and all(rep.at(i).ntotal == 2000 for i in range(3))
    one = voisin.IndexFlat(D, metric)
    one.add(xb)
    Dr, Ir = rep.search(xq, 7)
    D1, I1 = one.search(xq, 7)
    np.testing.assert_array_equal(Ir, I1)
    np.testing.assert_array_equal(Dr, D1)
    ref = faiss.IndexReplicas(D, False)
    subs = [faiss.IndexFlat(D, metric) for _ in range(3)]
    for s in subs:
        ref.add_replica(s)
    ref.add(xb)
    Df, If = ref.search(xq, 7)
    assert_same_results(Dr, Ir, Df, If, tolerance(xq, xb, metric))
    lims, Dd, Id = rep.range_search(xq, 15.0 if metric == voisin.METRIC_L2 else 5.0)
    l1, _, I1r = one.range_search(xq, 15.0 if metric == voisin.METRIC_L2 else 5.0)
    np.testing.assert_array_equal(lims, l1)
    np.testing.assert_array_equal(np.sort(Id), np.sort(I1r))
    sel = voisin.IDSelectorRange(0, 1000)
    np.testing.assert_array_equal(rep.search(xq, 5, params=voisin.SearchParameters(sel=sel))[1],
                                  one.search(xq, 5, params=voisin.SearchParameters(sel=sel))[1])
    assert rep.remove_ids(np.arange(10)) == 10 and all(rep.at(i).ntotal == 1990 for i in range(3))
    np.testing.assert_array_equal(rep.reconstruct(5), xb[15])


def test_replicas_split_queries_across_replicas(data):
    xb, xq = data
    calls = []

    class Counting(voisin.IndexFlatL2):
        def _search(self, x, k, params, D, I):
            calls.append((id(self), x.shape[0]))
            return super()._search(x, k, params, D, I)
    rep = voisin.IndexReplicas(D)
    for _ in range(3):
        rep.add_replica(Counting(D))
    rep.add(xb)
    rep.search(xq[:10], 3)
    assert sorted(n for _, n in calls) == [2, 4, 4] and len({i for i, _ in calls}) == 3


# --------------------------------------------------------------------------- #
# IndexShardsIVF: one shared quantizer
# --------------------------------------------------------------------------- #
def _ivf_pair(metric, xb, nlist=32, nshard=3):
    quantizer = voisin.IndexFlat(D, metric)
    sh = voisin.IndexShardsIVF(quantizer, nlist)
    for _ in range(nshard):
        sh.add_shard(voisin.IndexIVFFlat(voisin.IndexFlat(D, metric), D, nlist, metric))
    sh.train(xb)
    sh.add(xb)
    # one IVF over the union with the same centroids
    one = voisin.IndexIVFFlat(voisin.IndexFlat(D, metric), D, nlist, metric)
    centroids = quantizer.reconstruct_n(0, nlist)
    one.quantizer.add(centroids)
    one.is_trained = True
    one.add(xb)
    return sh, one, centroids


@pytest.mark.parametrize("metric", METRICS, ids=METRIC_IDS)
def test_shards_ivf_equal_union_ivf_and_faiss(data, metric):
    xb, xq = data
    sh, one, centroids = _ivf_pair(metric, xb)
    assert [sh.at(i).ntotal for i in range(3)] == [666, 667, 667]
    for i in range(3):
        np.testing.assert_array_equal(sh.at(i).quantizer.reconstruct_n(0, 32), centroids)
    for nprobe in (1, 5):
        params = voisin.SearchParametersIVF(nprobe=nprobe)
        Ds, Is = sh.search(xq, 10, params=params)
        D1, I1 = one.search(xq, 10, params=params)
        assert_same_results(Ds, Is, D1, I1, tolerance(xq, xb, metric))
        # faiss's IndexShardsIVF with the same centroids
        fq = faiss.IndexFlat(D, metric)
        fq.add(centroids)
        fsh = faiss.IndexShardsIVF(fq, 32, False, True)
        subs = []
        for _ in range(3):
            q = faiss.IndexFlat(D, metric)
            sub = faiss.IndexIVFFlat(q, D, 32, metric)
            sub.nprobe = nprobe
            subs.append((q, sub))
            fsh.add_shard(sub)
        fsh.train(xb)
        fsh.add(xb)
        Df, If = fsh.search(xq, 10)
        assert_same_results(Ds, Is, Df, If, tolerance(xq, xb, metric))
    sh.nprobe = 32  # every list: exact
    assert all(sh.at(i).nprobe == 32 for i in range(3))
    Ds, Is = sh.search(xq, 10)
    assert_knn_valid(Ds, Is, xq, xb, 10, metric)


@pytest.mark.parametrize("metric", METRICS, ids=METRIC_IDS)
def test_shards_ivf_filtered_keeps_the_union_answer(data, metric):
    xb, xq = data
    sh, one, _ = _ivf_pair(metric, xb)
    for sel in (voisin.IDSelectorBatch(np.arange(0, 2000, 97)), voisin.IDSelectorRange(100, 1900)):
        params = voisin.SearchParametersIVF(nprobe=4, sel=sel)
        Ds, Is = sh.search(xq, 10, params=params)
        D1, I1 = one.search(xq, 10, params=params)
        allowed = sel.contains(np.arange(2000))
        assert allowed[Is[Is >= 0]].all()
        # same filter policy per shard as for the union: recall within a few results
        truth = voisin.IndexFlat(D, metric)
        truth.add(xb)
        _, It = truth.search(xq, 10, params=voisin.SearchParameters(sel=sel))
        rec_s = np.mean([len(set(a) & set(b)) for a, b in zip(Is, It)])
        rec_1 = np.mean([len(set(a) & set(b)) for a, b in zip(I1, It)])
        assert rec_s >= rec_1 - 0.5, (rec_s, rec_1)


def test_shards_ivf_own_ids_and_remove(data):
    xb, xq = data
    quantizer = voisin.IndexFlatL2(D)
    sh = voisin.IndexShardsIVF(quantizer, 16, successive_ids=False)
    for _ in range(2):
        sh.add_shard(voisin.IndexIVFFlat(voisin.IndexFlatL2(D), D, 16))
    sh.train(xb)
    ids = np.arange(2000, dtype=np.int64) * 5
    sh.add_with_ids(xb, ids)
    sh.nprobe = 16
    Ds, Is = sh.search(xq, 5)
    assert_knn_valid(Ds, Is, xq, xb, 5, voisin.METRIC_L2, ids=ids)
    assert sh.remove_ids(ids[:1000]) == 1000 and sh.ntotal == 1000
    Ds, Is = sh.search(xq, 5)
    assert_knn_valid(Ds, Is, xq, xb[1000:], 5, voisin.METRIC_L2, ids=ids[1000:])
    np.testing.assert_array_equal(sh.reconstruct(int(ids[1500])), xb[1500])


def test_successive_ids_refuse_removal_from_ivf_shards(data):
    xb, _ = data
    sh, _, _ = _ivf_pair(voisin.METRIC_L2, xb)
    with pytest.raises(NotImplementedError, match="successive_ids=False"):
        sh.remove_ids(np.arange(5))


# --------------------------------------------------------------------------- #
# approximate shards: recall of one index with the same per-shard parameters
# --------------------------------------------------------------------------- #
def _recall(I, gt, k=10):
    return float(np.mean([len(set(a[:k]) & set(b[:k])) / k for a, b in zip(I, gt)]))


@pytest.mark.slow
def test_approximate_shards_recall_like_one_index():
    ds = load_hdf5("siftsmall-128-euclidean")
    xb, xq, gt = ds["train"], ds["test"][:100], ds["neighbors"][:100]
    d = xb.shape[1]
    # IVF-PQ through a shared quantizer: the same lists probed, the same codec
    q = voisin.IndexFlatL2(d)
    sh = voisin.IndexShardsIVF(q, 64)
    for _ in range(4):
        sh.add_shard(voisin.IndexIVFPQ(voisin.IndexFlatL2(d), d, 64, 16, 8))
    sh.train(xb)
    sh.add(xb)
    one = voisin.IndexIVFPQ(voisin.IndexFlatL2(d), d, 64, 16, 8)
    one.train(xb)
    one.add(xb)
    params = voisin.SearchParametersIVF(nprobe=8)
    r_sh, r_one = _recall(sh.search(xq, 10, params=params)[1], gt), _recall(one.search(xq, 10, params=params)[1], gt)
    assert abs(r_sh - r_one) <= 0.05, (r_sh, r_one)
    # HNSW: each shard a smaller graph searched with the same efSearch
    hs = voisin.IndexShards(d)
    for _ in range(4):
        h = voisin.IndexHNSWFlat(d, 16)
        h.hnsw.efSearch = 32
        hs.add_shard(h)
    hs.add(xb)
    h1 = voisin.IndexHNSWFlat(d, 16)
    h1.hnsw.efSearch = 32
    h1.add(xb)
    r_hs, r_h1 = _recall(hs.search(xq, 10)[1], gt), _recall(h1.search(xq, 10)[1], gt)
    assert r_hs >= r_h1 - 0.02, (r_hs, r_h1)


# --------------------------------------------------------------------------- #
# bad input: clear errors, nothing changed
# --------------------------------------------------------------------------- #
def test_membership_errors(data):
    xb, _ = data
    sh = voisin.IndexShards(D)
    with pytest.raises(RuntimeError, match="no shards"):
        sh.add(xb)
    assert (sh.search(xb[:1], 1)[1] == -1).all()  # nothing stored: nothing found
    with pytest.raises(TypeError, match="index: expected a voisin Index"):
        sh.add_shard(faiss.IndexFlatL2(D))
    with pytest.raises(ValueError, match="d=24"):
        sh.add_shard(voisin.IndexFlatL2(8))
    a = voisin.IndexFlatL2(D)
    sh.add_shard(a)
    with pytest.raises(ValueError, match="already"):
        sh.add_shard(a)
    with pytest.raises(ValueError, match="metric"):
        sh.add_shard(voisin.IndexFlatIP(D))
    with pytest.raises(ValueError, match="own shard"):
        sh.add_shard(sh)
    with pytest.raises(IndexError, match="i: expected"):
        sh.at(3)
    with pytest.raises(ValueError, match="not a shard"):
        sh.remove_shard(voisin.IndexFlatL2(D))
    sh.add_shard(voisin.IndexFlatL2(D))
    with pytest.raises(ValueError, match="ids: an IndexShards with successive_ids=True"):
        sh.add_with_ids(xb, np.arange(2000))
    sh.add(xb)
    with pytest.raises(RuntimeError, match="single"):
        sh.add(xb)
    assert sh.ntotal == 2000
    with pytest.raises(ValueError, match="x: expected vectors of dimension d=24"):
        sh.search(xb[:, :5], 3)
    with pytest.raises(ValueError, match="k: expected a positive integer"):
        sh.search(xb[:2], 0)
    with pytest.raises(TypeError, match="params"):
        sh.search(xb[:2], 3, params={"nprobe": 3})
    sh.remove_shard(a)
    assert sh.count() == 1 and sh.ntotal == 1000


def test_own_ids_need_shards_that_take_ids(data):
    xb, _ = data
    sh = voisin.IndexShards(D, successive_ids=False)
    sh.add_shard(voisin.IndexFlatL2(D))
    with pytest.raises(NotImplementedError, match="IndexIDMap"):
        sh.add(xb)


def test_shards_ivf_and_replicas_errors(data):
    xb, _ = data
    with pytest.raises(TypeError, match="quantizer"):
        voisin.IndexShardsIVF(None, 8)
    sh = voisin.IndexShardsIVF(voisin.IndexFlatL2(D), 16)
    with pytest.raises(TypeError, match="IVF shards"):
        sh.add_shard(voisin.IndexFlatL2(D))
    with pytest.raises(ValueError, match="nlist=16"):
        sh.add_shard(voisin.IndexIVFFlat(voisin.IndexFlatL2(D), D, 8))
    sh.add_shard(voisin.IndexIVFFlat(voisin.IndexFlatL2(D), D, 16))
    assert not sh.is_trained
    with pytest.raises(RuntimeError, match="not trained"):
        sh.add(xb)
    with pytest.raises(ValueError, match="at least 16"):
        sh.train(xb[:5])
    sh.train(xb)
    sh.add(xb)
    with pytest.raises(ValueError, match="nprobe"):
        sh.search(xb[:2], 3, params=voisin.SearchParametersIVF(nprobe=-1))
    rep = voisin.IndexReplicas(D)
    full = voisin.IndexFlatL2(D)
    full.add(xb)
    rep.add_replica(full)
    with pytest.raises(ValueError, match="2000 vectors"):
        rep.add_replica(voisin.IndexFlatL2(D))
    assert rep.count() == 1
