"""FAISS's further metrics on IndexFlat (HNSW: tests/test_hnsw_extra_metrics.py; and IDMap / PreTransform around it),
knn and pairwise_distances: the same distances and ids as faiss-cpu, NaN pairs
never returned, FAISS files both ways, and a clear refusal everywhere else."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import voisin

faiss = pytest.importorskip("faiss")

METRICS = [voisin.METRIC_L1, voisin.METRIC_Linf, voisin.METRIC_Lp, voisin.METRIC_Canberra,
           voisin.METRIC_BrayCurtis, voisin.METRIC_JensenShannon, voisin.METRIC_Jaccard]
D = 12


def _data(n, seed=0, zeros=False):
    rng = np.random.default_rng(seed)
    x = rng.random((n, D), dtype=np.float32) + np.float32(0.01)  # positive: JensenShannon is finite
    if zeros:
        x[rng.random(x.shape) < 0.2] = 0
    return x


def _pair(metric, arg=3.0):
    a, b = voisin.IndexFlat(D, metric), faiss.IndexFlat(D, metric)
    a.metric_arg = b.metric_arg = arg
    return a, b


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("nq", [1, 37])
def test_search_equals_faiss(metric, nq):
    xb, xq = _data(500, 1), _data(nq, 2)
    a, b = _pair(metric)
    a.add(xb)
    b.add(xb)
    Da, Ia = a.search(xq, 10)
    Db, Ib = b.search(xq, 10)
    np.testing.assert_array_equal(Ia, Ib)
    np.testing.assert_allclose(Da, Db, rtol=1e-5, atol=1e-6)
    order = np.diff(Da, axis=1)
    assert (order <= 1e-6).all() if metric == voisin.METRIC_Jaccard else (order >= -1e-6).all()


@pytest.mark.parametrize("metric", [voisin.METRIC_Canberra, voisin.METRIC_JensenShannon, voisin.METRIC_L1])
def test_nan_pairs_are_never_results_as_in_faiss(metric):
    xb, xq = _data(60, 3, zeros=True), _data(5, 4, zeros=True)
    a, b = _pair(metric)
    a.add(xb)
    b.add(xb)
    Da, Ia = a.search(xq, 70)
    Db, Ib = b.search(xq, 70)
    np.testing.assert_array_equal(Ia < 0, Ib < 0)
    np.testing.assert_array_equal(np.sort(Ia, axis=1), np.sort(Ib, axis=1))
    assert not np.isnan(Da).any()
    np.testing.assert_array_equal(Da[Ia < 0], np.float32(np.finfo(np.float32).max))


@pytest.mark.parametrize("metric", METRICS)
def test_filters_range_search_knn_and_pairwise(metric):
    xb, xq = _data(300, 5), _data(8, 6)
    a, b = _pair(metric, 1.5)
    a.add(xb)
    b.add(xb)
    sel_a, sel_b = voisin.IDSelectorRange(50, 120), faiss.IDSelectorRange(50, 120)
    Da, Ia = a.search(xq, 5, params=voisin.SearchParameters(sel=sel_a))
    Db, Ib = b.search(xq, 5, params=faiss.SearchParameters(sel=sel_b))
    np.testing.assert_array_equal(Ia, Ib)
    assert ((Ia >= 50) & (Ia < 120)).all()
    # a radius that keeps about a tenth of the pairs
    full = voisin.pairwise_distances(xq, xb, metric, 1.5)
    np.testing.assert_allclose(full, faiss.pairwise_distances(xq, xb, metric, 1.5), rtol=1e-5, atol=1e-6)
    radius = float(np.quantile(full, 0.9 if metric == voisin.METRIC_Jaccard else 0.1))
    la, da, ia = a.range_search(xq, radius)
    lb, db, ib = b.range_search(xq, radius)
    np.testing.assert_array_equal(la, lb)
    for q in range(len(xq)):
        got = dict(zip(ia[la[q]:la[q + 1]].tolist(), da[la[q]:la[q + 1]].tolist()))
        want = dict(zip(ib[lb[q]:lb[q + 1]].tolist(), db[lb[q]:lb[q + 1]].tolist()))
        assert got.keys() == want.keys()
        np.testing.assert_allclose([got[i] for i in want], list(want.values()), rtol=1e-5)
    Dk, Ik = voisin.knn(xq, xb, 4, metric, 1.5)
    Df, If = faiss.knn(xq, xb, 4, metric, 1.5)
    np.testing.assert_array_equal(Ik, If)
    np.testing.assert_allclose(Dk, Df, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("metric", [voisin.METRIC_Lp, voisin.METRIC_Jaccard, voisin.METRIC_L1])
def test_faiss_files_both_ways(tmp_path, metric):
    xb, xq = _data(200, 7), _data(6, 8)
    a, b = _pair(metric, 2.5)
    a.add(xb)
    b.add(xb)
    want = b.search(xq, 5)
    faiss.write_index(b, str(tmp_path / "f.index"))
    got = voisin.read_index(str(tmp_path / "f.index"))
    assert type(got) is voisin.IndexFlat and got.metric_type == metric and got.metric_arg == 2.5
    np.testing.assert_array_equal(got.search(xq, 5)[1], want[1])
    voisin.write_index(a, str(tmp_path / "v.index"))
    back = faiss.read_index(str(tmp_path / "v.index"))
    assert back.metric_type == metric and back.metric_arg == 2.5
    np.testing.assert_array_equal(back.search(xq, 5)[1], want[1])
    # wrapped in an id map, through the factory
    m = voisin.index_factory(D, "IDMap2,Flat", metric)
    m.index.metric_arg = 2.5
    m.add_with_ids(xb, np.arange(200) * 3)
    voisin.write_index(m, str(tmp_path / "m.index"))
    fm = faiss.read_index(str(tmp_path / "m.index"))
    np.testing.assert_array_equal(fm.search(xq, 5)[1], want[1] * 3)
    np.testing.assert_array_equal(voisin.read_index(str(tmp_path / "m.index")).search(xq, 5)[1], want[1] * 3)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 40), k=st.integers(1, 50), metric=st.sampled_from(METRICS), seed=st.integers(0, 99))
def test_shapes_and_missing_results(n, k, metric, seed):
    xb = _data(n, seed)
    index = voisin.IndexFlat(D, metric)
    index.metric_arg = 2.0
    index.add(xb)
    Dr, Ir = index.search(_data(3, seed + 1), k)
    assert Dr.shape == Ir.shape == (3, k) and Dr.dtype == np.float32 and Ir.dtype == np.int64
    found = min(n, k)
    assert (Ir[:, :found] >= 0).all() and (Ir[:, found:] == -1).all()
    worst = -np.finfo(np.float32).max if metric == voisin.METRIC_Jaccard else np.finfo(np.float32).max
    assert (Dr[:, found:] == np.float32(worst)).all()
    for row in Ir:
        assert len(set(row[:found].tolist())) == found


def test_other_indexes_and_unknown_metrics_refuse():
    with pytest.raises(ValueError, match="METRIC_L1 .* served by IndexFlat, IndexHNSWFlat"):
        voisin.IndexHNSWSQ(D, voisin.ScalarQuantizer.QT_8bit, 16, voisin.METRIC_L1)
    with pytest.raises(ValueError, match="served by IndexFlat"):
        voisin.index_factory(D, "IVF16,Flat", voisin.METRIC_Linf)
    with pytest.raises(ValueError, match="METRIC_NaNEuclidean .* not implemented"):
        voisin.IndexFlat(D, 24)
    with pytest.raises(ValueError, match="metric"):
        voisin.IndexFlat(D, 99)
    assert voisin.IndexFlat(D, "l1").metric_type == voisin.METRIC_L1
    with pytest.raises(ValueError, match="metric"):
        voisin.knn(_data(2), _data(3), 1, "cosine")
    with pytest.raises(TypeError, match="metric_arg"):
        voisin.knn(_data(2), _data(3), 1, voisin.METRIC_Lp, "three")
