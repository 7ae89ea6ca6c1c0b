"""FAISS's further metrics (L1, Linf, Lp, Canberra, BrayCurtis, JensenShannon,
Jaccard) on IndexHNSWFlat: recall against exact search no worse than faiss's
IndexHNSWFlat at the same settings, exact distances for what it returns, NaN
pairs never returned, range search, filters, deletes, FAISS files both ways,
and a clear refusal where the storage is a code (SQ, PQ)."""

from __future__ import annotations

import numpy as np
import pytest

import voisin

faiss = pytest.importorskip("faiss")

METRICS = [voisin.METRIC_L1, voisin.METRIC_Linf, voisin.METRIC_Lp, voisin.METRIC_Canberra,
           voisin.METRIC_BrayCurtis, voisin.METRIC_JensenShannon, voisin.METRIC_Jaccard]
D, NB, NQ, K, P = 12, 2000, 200, 10, 3.0


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    # clustered and positive (JensenShannon is finite on positive rows)
    centres = rng.random((20, D), dtype=np.float32)
    x = centres[rng.integers(0, 20, n)] + 0.1 * rng.random((n, D), dtype=np.float32)
    return np.ascontiguousarray(x + np.float32(0.01), dtype=np.float32)


def _recall(I, gt):
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(I, gt)]))


@pytest.fixture(scope="module")
def data():
    return _data(NB, 1), _data(NQ, 2)


def _built(metric, xb, M=16, efs=48):
    v = voisin.IndexHNSWFlat(D, M, metric)
    f = faiss.IndexHNSWFlat(D, M, metric)
    v.metric_arg = f.metric_arg = P
    faiss.downcast_index(f.storage).metric_arg = P  # faiss computes with the storage's
    v.add(xb)
    f.add(xb)
    v.hnsw.efSearch = f.hnsw.efSearch = efs
    return v, f


@pytest.mark.parametrize("metric", METRICS)
def test_recall_as_faiss_and_exact_distances(data, metric):
    xb, xq = data
    v, f = _built(metric, xb)
    flat = voisin.IndexFlat(D, metric)
    flat.metric_arg = P
    flat.add(xb)
    gt = flat.search(xq, K)[1]
    # over a few efSearch values: one graph's recall at one setting is noisy
    rv = rf = 0.0
    for ef in (16, 32, 64):
        v.hnsw.efSearch = f.hnsw.efSearch = ef
        rv += _recall(v.search(xq, K)[1], gt) / 3
        rf += _recall(f.search(xq, K)[1], gt) / 3
    assert rv >= rf - 0.02 and rv >= 0.7, (rv, rf)
    v.hnsw.efSearch = 48
    Dv, Iv = v.search(xq, K)
    # what it returns is scored exactly, best first
    exact = voisin.pairwise_distances(xq, xb, metric, P)
    np.testing.assert_allclose(Dv, np.take_along_axis(exact, Iv, 1), rtol=1e-5, atol=1e-6)
    order = -Dv if metric == voisin.METRIC_Jaccard else Dv
    assert (np.diff(order, axis=1) >= 0).all()
    # one query at a time (the single-query fast path) answers the same
    for i in range(3):
        np.testing.assert_array_equal(v.search(xq[i:i + 1], K)[1][0], Iv[i])


@pytest.mark.parametrize("metric", [voisin.METRIC_L1, voisin.METRIC_Jaccard])
def test_range_filters_and_deletes(data, metric):
    xb, xq = data
    v, _ = _built(metric, xb)
    flat = voisin.IndexFlat(D, metric)
    flat.add(xb)
    Dk, _ = flat.search(xq, 5)
    radius = float(np.median(Dk[:, -1]))
    lims, Dr, Ir = v.range_search(xq, radius)
    flims, _, fI = flat.range_search(xq, radius)
    got = sum(len(set(Ir[lims[i]:lims[i + 1]]) & set(fI[flims[i]:flims[i + 1]])) for i in range(NQ))
    assert got >= 0.95 * flims[-1]
    inside = Dr > radius if metric == voisin.METRIC_Jaccard else Dr < radius
    assert inside.all()
    # a filter: only allowed ids come back, and they are the best allowed ones
    sel = voisin.IDSelectorRange(0, NB // 2)
    params = voisin.SearchParametersHNSW(sel=sel, efSearch=64)
    _, If = v.search(xq, K, params=params)
    assert ((If >= 0) & (If < NB // 2)).all()
    fl2 = voisin.IndexFlat(D, metric)
    fl2.add(xb[:NB // 2])
    assert _recall(If, fl2.search(xq, K)[1]) >= 0.9
    # deletes: the removed ids never come back, the others shift down as in IndexFlat
    assert v.remove_ids(np.arange(0, NB, 2)) == NB // 2
    fl3 = voisin.IndexFlat(D, metric)
    fl3.add(xb[1::2])
    assert _recall(v.search(xq, K)[1], fl3.search(xq, K)[1]) >= 0.9


def test_nan_pairs_are_never_results():
    rng = np.random.default_rng(5)
    xb = rng.random((600, D), dtype=np.float32)
    xb[:300] = 0  # Canberra of two zero rows is 0/0
    v = voisin.IndexHNSWFlat(D, 8, voisin.METRIC_Canberra)
    v.add(xb)
    Dv, Iv = v.search(np.zeros((2, D), np.float32), 5)
    assert np.isfinite(Dv).all()
    # every zero row is NaN away: the answers are non-zero rows or none at all
    assert ((Iv >= 300) | (Iv == -1)).all()


@pytest.mark.parametrize("metric", [voisin.METRIC_Lp, voisin.METRIC_L1, voisin.METRIC_Jaccard])
def test_faiss_files_both_ways(tmp_path, data, metric):
    xb, xq = data
    v, f = _built(metric, xb)
    faiss.write_index(f, str(tmp_path / "f.index"))
    got = voisin.read_index(str(tmp_path / "f.index"))
    assert type(got) is voisin.IndexHNSWFlat and got.metric_type == metric and got.metric_arg == P
    got.hnsw.efSearch = 48
    # the same graph walked the same way: the same neighbours as faiss
    Df, If = f.search(xq, K)
    Dg, Ig = got.search(xq, K)
    assert _recall(Ig, If) >= 0.98
    np.testing.assert_allclose(Dg[Ig == If], Df[Ig == If], rtol=1e-5)
    voisin.write_index(v, str(tmp_path / "v.index"))
    back = faiss.read_index(str(tmp_path / "v.index"))
    assert back.metric_type == metric
    assert faiss.downcast_index(faiss.downcast_index(back).storage).metric_arg == P
    back.hnsw.efSearch = 48
    assert _recall(back.search(xq, K)[1], v.search(xq, K)[1]) >= 0.98
    # voisin's own layout and pickles keep the metric and its argument
    voisin.write_index(v, str(tmp_path / "vv.index"), layout="voisin")
    again = voisin.read_index(str(tmp_path / "vv.index"))
    assert again.metric_arg == P
    np.testing.assert_array_equal(again.search(xq, K)[1], v.search(xq, K)[1])
    import pickle
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(v)).search(xq, K)[1], v.search(xq, K)[1])


def test_factory_idmap_and_refusals(data):
    xb, xq = data
    ix = voisin.index_factory(D, "IDMap,HNSW16", voisin.METRIC_L1)
    ix.add_with_ids(xb[:500], np.arange(500) * 7)
    _, I = ix.search(xq[:3], 3)
    assert (I % 7 == 0).all()
    with pytest.raises(ValueError, match="IndexHNSWFlat"):
        voisin.index_factory(D, "HNSW16_SQ8", voisin.METRIC_L1)
    with pytest.raises(ValueError, match="IndexHNSWFlat"):
        voisin.index_factory(D, "HNSW16_PQ4", voisin.METRIC_L1)
