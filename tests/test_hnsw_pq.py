"""IndexHNSWPQ (factory "HNSW32_PQ16"): recall within noise of faiss-cpu's at the
same settings, the distances of the decoded codes, FAISS files both ways, refine,
filters, deletes, range search and bad input."""

from __future__ import annotations

import numpy as np
import pytest

import voisin

faiss = pytest.importorskip("faiss")

D, N = 32, 6000


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    centers = rng.normal(size=(40, D)).astype(np.float32)
    xb = (centers[rng.integers(0, 40, N)] + 0.4 * rng.normal(size=(N, D))).astype(np.float32)
    xq = (centers[rng.integers(0, 40, 200)] + 0.4 * rng.normal(size=(200, D))).astype(np.float32)
    return xb, xq


def _recall(I, gt):
    return np.mean([len(set(a) & set(b)) / gt.shape[1] for a, b in zip(I, gt)])


@pytest.mark.parametrize("metric", [voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT])
def test_recall_and_distances_match_faiss(data, metric):
    xb, xq = data
    v = voisin.IndexHNSWPQ(D, 8, 16, 8, metric)
    f = faiss.IndexHNSWPQ(D, 8, 16, 8, metric)
    for ix in (v, f):
        ix.hnsw.efConstruction = 80
        ix.train(xb)
        ix.add(xb)
        ix.hnsw.efSearch = 64
    _, gt = faiss.knn(xq, xb, 10, metric)
    Dv, Iv = v.search(xq, 10)
    _, If = f.search(xq, 10)
    assert _recall(Iv, gt) >= _recall(If, gt) - 0.04, (_recall(Iv, gt), _recall(If, gt))
    # the reported distance is the query's distance to the decoded code (ADC)
    dec = v.pq.decode(v.storage_rows()[Iv[:, 0]])
    want = ((xq - dec) ** 2).sum(1) if metric == voisin.METRIC_L2 else (xq * dec).sum(1)
    np.testing.assert_allclose(Dv[:, 0], want, rtol=1e-4, atol=1e-3)
    step = np.diff(Dv, axis=1)
    assert (step >= -1e-5).all() if metric == voisin.METRIC_L2 else (step <= 1e-5).all()


def test_factory_refine_filters_deletes_range(data):
    xb, xq = data
    for desc in ("HNSW16_PQ8", "HNSW16_PQ8x8", "HNSW16,PQ8"):
        assert type(voisin.index_factory(D, desc)) is voisin.IndexHNSWPQ
    index = voisin.index_factory(D, "HNSW16_PQ8,RFlat")
    index.train(xb)
    index.add(xb)
    index.base_index.hnsw.efSearch = 64
    index.k_factor = 4
    _, gt = faiss.knn(xq, xb, 10)
    Dr, Ir = index.search(xq, 10)
    ref = faiss.index_factory(D, "HNSW16_PQ8,RFlat")
    ref.train(xb)
    ref.add(xb)
    faiss.downcast_index(ref.base_index).hnsw.efSearch = 64
    ref.k_factor = 4
    want = _recall(ref.search(xq, 10)[1], gt)
    assert _recall(Ir, gt) >= want - 0.04, (_recall(Ir, gt), want)
    assert _recall(Ir, gt) > _recall(index.base_index.search(xq, 10)[1], gt)  # the re-rank helps
    base = index.base_index
    sel = voisin.IDSelectorRange(0, N // 2)
    _, Is = base.search(xq, 5, params=voisin.SearchParametersHNSW(sel=sel, efSearch=64))
    assert ((Is >= 0) & (Is < N // 2)).all()
    plain = voisin.IndexHNSWPQ(D, 8, 16)
    plain.train(xb)
    plain.add(xb)
    assert plain.remove_ids(np.arange(100)) == 100 and plain.ntotal == N - 100
    _, Ip = plain.search(xb[100:110], 1)
    assert (Ip[:, 0] == np.arange(10)).mean() >= 0.8  # later ids shift down, as FAISS
    Dp, _ = plain.search(xq[:5], 20)
    lims, Dd, Id = plain.range_search(xq[:5], float(np.median(Dp[:, 10])))
    assert lims[-1] > 0 and (Dd < float(np.median(Dp[:, 10]))).all()


def test_faiss_files_both_ways(tmp_path, data):
    xb, xq = data
    f = faiss.IndexHNSWPQ(D, 8, 16)
    f.train(xb[:3000])
    f.add(xb[:3000])
    f.hnsw.efSearch = 48
    faiss.write_index(f, str(tmp_path / "f.index"))
    v = voisin.read_index(str(tmp_path / "f.index"))
    assert type(v) is voisin.IndexHNSWPQ and v.ntotal == 3000 and v.hnsw.efSearch == 48
    Df, If = f.search(xq, 10)
    Dv, Iv = v.search(xq, 10)
    assert (Iv == If).mean() >= 0.95  # the same graph and codes: the same walk up to float ties
    np.testing.assert_allclose(Dv[Iv == If], Df[Iv == If], rtol=1e-4, atol=1e-4)
    voisin.write_index(v, str(tmp_path / "v.index"))
    back = faiss.read_index(str(tmp_path / "v.index"))
    back.hnsw.efSearch = 48
    Db, Ib = back.search(xq, 10)
    assert (Ib == If).mean() >= 0.99


def test_bad_input():
    with pytest.raises(NotImplementedError, match="pq_nbits"):
        voisin.IndexHNSWPQ(D, 8, 16, 4)
    with pytest.raises(ValueError, match="multiple"):
        voisin.IndexHNSWPQ(30, 8, 16)
    with pytest.raises(ValueError, match="PQ"):
        voisin.index_factory(D, "HNSW16_PQ8x4fs")
    with pytest.raises(ValueError, match="METRIC_L1"):
        voisin.IndexHNSWPQ(D, 8, 16, 8, voisin.METRIC_L1)
    index = voisin.IndexHNSWPQ(D, 8, 16)
    with pytest.raises(RuntimeError, match="train"):
        index.add(np.zeros((3, D), np.float32))
