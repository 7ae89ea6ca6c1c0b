"""The fast HNSW compositions: IndexRefineFlat(IndexHNSWSQ) and
IndexRefineFlat(IndexPreTransform(PCA, IndexHNSWSQ)), factory "HNSW16_SQ8,RFlat"
and "PCA64,HNSW16_SQ8,RFlat".

The walk runs on 8-bit codes and the refine wrapper's float rows are pushed down
into it: the kernel re-scores the kb = k * k_factor best walk results exactly.
Checked against numpy brute force, against the same composition searched
without the pushdown (the base's candidates re-ranked in numpy: FAISS's
semantics), against faiss-cpu reading the same file, and through filters,
deletes, pickles, concurrent writers and bad input.
"""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest

import voisin
from voisin.indexes.hnsw import IndexHNSWFlat, IndexHNSWSQ, SearchParametersHNSW

from test_hnsw import _load, _recall

faiss = pytest.importorskip("faiss")


def _refined(d, M=16, efc=80, metric=voisin.METRIC_L2, k_factor=4.0, pca=0):
    inner = IndexHNSWSQ(pca or d, voisin.ScalarQuantizer.QT_8bit, M, metric)
    inner.hnsw.efConstruction = efc
    base = voisin.IndexPreTransform(voisin.PCAMatrix(d, pca), inner) if pca else inner
    return voisin.IndexRefineFlat(base, k_factor), inner


def _exact_costs(xb, xq, I, metric):
    v = xb[np.maximum(I, 0)].astype(np.float64)
    if metric == voisin.METRIC_L2:
        return ((xq[:, None, :].astype(np.float64) - v) ** 2).sum(-1)
    return np.einsum("qd,qkd->qk", xq.astype(np.float64), v)


def _assert_exact_distances(xb, xq, D, I, metric):
    """Returned distances are the float distances of the returned ids, in order."""
    ok = I >= 0
    np.testing.assert_allclose(D[ok], _exact_costs(xb, xq, I, metric)[ok], rtol=2e-5, atol=2e-4)
    cost = D if metric == voisin.METRIC_L2 else -D
    assert (np.diff(np.where(ok, cost, np.inf), axis=1) >= -1e-6).all()


def _unfused(index, xq, k, ef):
    """FAISS's IndexRefineFlat semantics without the pushdown: the base's kb
    candidates (its own ranking), re-ranked by exact distance in float64."""
    kb = max(k, int(k * index.k_factor))
    _, cand = index.base_index.search(xq, kb, params=SearchParametersHNSW(efSearch=max(ef, kb)))
    cost = _exact_costs(index.refine_index.xb, xq, cand, index.metric_type)
    if index.metric_type != voisin.METRIC_L2:
        cost = -cost
    cost[cand < 0] = np.inf
    order = np.argsort(cost, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(cand, order, 1)


@pytest.fixture(scope="module")
def sift():
    xb, xq = _load("siftsmall-128-euclidean", 100)
    flat = IndexHNSWFlat(128, 16)
    flat.hnsw.efConstruction = 80
    flat.add(xb)
    index, inner = _refined(128)
    index.train(xb)
    index.add(xb)
    return xb, xq, flat, index, inner


# --- recall and exactness on real data -------------------------------------------------

@pytest.mark.parametrize("ef", [16, 32, 64])
def test_recall_at_least_the_float_walks_at_same_ef(sift, ef):
    xb, xq, flat, index, inner = sift
    _, I0 = flat.search(xq, 10, SearchParametersHNSW(efSearch=ef))
    params = voisin.SearchParametersRefine(k_factor=ef / 10,
                                           base_index_params=SearchParametersHNSW(efSearch=ef))
    D1, I1 = index.search(xq, 10, params)
    r0 = _recall(xb, xq, I0, 10, voisin.METRIC_L2)
    r1 = _recall(xb, xq, I1, 10, voisin.METRIC_L2)
    assert r1 >= r0 - 0.01, (ef, r0, r1)
    _assert_exact_distances(xb, xq, D1, I1, voisin.METRIC_L2)
    if ef == 64:
        assert r1 >= 0.97


@pytest.mark.parametrize("k_factor", [1.0, 2.5, 8.0])
def test_fused_rerank_equals_faiss_semantics(sift, k_factor):
    """The kernel's re-rank = the base's kb best re-scored exactly, whatever kb is."""
    xb, xq, _, index, inner = sift
    inner.hnsw.efSearch = 24
    index.k_factor = k_factor
    try:
        D, I = index.search(xq, 10)
        want = _unfused(index, xq, 10, 24)
    finally:
        index.k_factor = 4.0
        inner.hnsw.efSearch = 16
    # ids equal up to exact ties at the boundary
    assert (I == want).mean() >= 0.999
    _assert_exact_distances(xb, xq, D, I, voisin.METRIC_L2)


def test_inner_product():
    rng = np.random.default_rng(5)
    xb = rng.standard_normal((3000, 24)).astype(np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    xq = rng.standard_normal((100, 24)).astype(np.float32)
    flat = IndexHNSWFlat(24, 12, voisin.METRIC_INNER_PRODUCT)
    flat.hnsw.efConstruction = 64
    flat.add(xb)
    flat.hnsw.efSearch = 48
    _, I0 = flat.search(xq, 10)
    index, inner = _refined(24, 12, 64, voisin.METRIC_INNER_PRODUCT, k_factor=4.8)
    index.train(xb)
    index.add(xb)
    inner.hnsw.efSearch = 48
    D1, I1 = index.search(xq, 10)
    r0 = _recall(xb, xq, I0, 10, voisin.METRIC_INNER_PRODUCT)
    r1 = _recall(xb, xq, I1, 10, voisin.METRIC_INNER_PRODUCT)
    assert r1 >= r0 - 0.01 and r1 >= 0.9
    _assert_exact_distances(xb, xq, D1, I1, voisin.METRIC_INNER_PRODUCT)
    np.testing.assert_array_equal(I1, _unfused(index, xq, 10, 48))


def test_single_query_fast_path_and_thread_pool_agree(sift):
    xb, xq, _, index, _ = sift
    q = np.repeat(xq, 2, axis=0)[:128]  # >= 64 queries: blocks on the thread pool
    D, I = index.search(q, 10)
    for i in range(0, 128, 9):
        Di, Ii = index.search(q[i:i + 1], 10)
        np.testing.assert_array_equal(Ii[0], I[i])
        np.testing.assert_allclose(Di[0], D[i], rtol=1e-6)


def test_k_larger_than_ef_and_than_ntotal():
    rng = np.random.default_rng(1)
    xb = rng.standard_normal((300, 8)).astype(np.float32)
    index, inner = _refined(8, 8, 40, k_factor=1.0)
    index.train(xb)
    index.add(xb)
    D, I = index.search(xb[:3], 100)  # kb = 100 > efSearch: the walk widens
    assert (I[:, 0] == np.arange(3)).all() and (I >= 0).all()
    _assert_exact_distances(xb, xb[:3], D, I, voisin.METRIC_L2)
    D, I = index.search(xb[:3], 400)   # more than stored: exact scan, padded
    assert (I[:, 300:] == -1).all() and (I[:, :300] >= 0).all()
    assert np.isclose(D[:, 300:], np.finfo(np.float32).max).all()


@pytest.mark.parametrize("selectivity", [0.01, 0.5])
def test_filters(sift, selectivity):
    xb, xq, _, index, _ = sift
    n = xb.shape[0]
    allowed = np.arange(0, n, int(round(1 / selectivity)))
    mask = np.zeros(n, bool)
    mask[allowed] = True
    params = voisin.SearchParametersRefine(
        sel=voisin.IDSelectorBatch(allowed), base_index_params=SearchParametersHNSW(efSearch=64))
    D, I = index.search(xq, 10, params)
    assert np.isin(I, allowed).all()
    assert _recall(xb, xq, I, 10, voisin.METRIC_L2, mask) >= 0.95
    _assert_exact_distances(xb, xq, D, I, voisin.METRIC_L2)


# --- the PCA composition --------------------------------------------------------------------

def test_pca_composition_on_sift():
    """A walk on 64-d PCA codes of 128-d SIFT, pruned and re-ranked on the floats."""
    xb, xq = _load("siftsmall-128-euclidean", 100)
    index = voisin.index_factory(128, "PCA64,HNSW16_SQ8,RFlat")
    assert isinstance(index, voisin.IndexRefineFlat)
    assert isinstance(index.base_index, voisin.IndexPreTransform)
    assert isinstance(index.base_index.index, IndexHNSWSQ) and index.base_index.index.d == 64
    index.base_index.index.hnsw.efConstruction = 80
    index.train(xb)
    index.add(xb)
    ps = voisin.ParameterSpace() if hasattr(voisin, "ParameterSpace") else None
    if ps is not None:
        ps.set_index_parameters(index, "efSearch=96,k_factor=9.6")
    else:
        index.base_index.index.hnsw.efSearch = 96
        index.k_factor = 9.6
    D, I = index.search(xq, 10)
    assert _recall(xb, xq, I, 10, voisin.METRIC_L2) >= 0.95
    _assert_exact_distances(xb, xq, D, I, voisin.METRIC_L2)
    Is = np.concatenate([index.search(xq[i:i + 1], 10)[1] for i in range(20)])
    np.testing.assert_array_equal(Is, I[:20])
    np.testing.assert_array_equal(I, _unfused(index, xq, 10, 96))


def test_refined_build_prunes_with_the_exact_rows(monkeypatch):
    """Under IndexRefineFlat, insertion walks the codes (in PCA space) and links in
    the wrapper's exact rows (full dimension)."""
    from voisin.kernels import hnsw as K
    seen = []
    real = K.link_new_nodes

    def spy(xw, xe, i0, lo, hi, walk, nodes, rescore, *rest):
        seen.append((type(walk).__name__, type(nodes).__name__, nodes[0].shape[1], rescore,
                     xw.shape[1], xe.shape[1]))
        return real(xw, xe, i0, lo, hi, walk, nodes, rescore, *rest)

    monkeypatch.setattr(K, "link_new_nodes", spy)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1200, 32)).astype(np.float32)
    index, _ = _refined(32, 8, 40, pca=8)
    index.train(x)
    index.add(x)
    assert seen and set(seen) == {("SQ8Space", "FlatSpace", 32, True, 8, 32)}
    # the same graph as the same build run twice (deterministic)
    again, _ = _refined(32, 8, 40, pca=8)
    again.train(x)
    again.add(x)
    np.testing.assert_array_equal(again.base_index.index.hnsw.neighbors,
                                  index.base_index.index.hnsw.neighbors)


def test_flat_bulk_build_walks_temporary_codes_and_keeps_quality(sift, monkeypatch):
    """IndexHNSWFlat's bulk adds walk SQ8 codes made for the add (freed after) and
    prune on floats: same quality as a build whose adds walk the floats."""
    from voisin.kernels import hnsw as K
    xb, xq, bulk, _, _ = sift
    seen = []
    real = K.link_new_nodes

    def spy(xw, xe, i0, lo, hi, walk, *rest):
        seen.append(type(walk).__name__)
        return real(xw, xe, i0, lo, hi, walk, *rest)

    monkeypatch.setattr(K, "link_new_nodes", spy)
    chunked = IndexHNSWFlat(128, 16)
    chunked.hnsw.efConstruction = 80
    chunked.add(xb[:4000])                 # bulk: codes
    assert set(seen) == {"SQ8Space"}
    seen.clear()
    for a in range(4000, 10000, 1000):     # each add smaller than the graph: floats
        chunked.add(xb[a:a + 1000])
    assert set(seen) == {"FlatSpace"}
    # nothing but the floats and the graph stays (the codes were the add's own)
    X, g = chunked._snap[0], chunked._snap[1]
    assert X.dtype == np.float32 and chunked.nbytes == X.nbytes + sum(a.nbytes for a in g[:4])
    params = SearchParametersHNSW(efSearch=32)
    r_bulk = _recall(xb, xq, bulk.search(xq, 10, params)[1], 10, voisin.METRIC_L2)
    r_chunk = _recall(xb, xq, chunked.search(xq, 10, params)[1], 10, voisin.METRIC_L2)
    assert abs(r_bulk - r_chunk) <= 0.02 and r_bulk >= 0.95, (r_bulk, r_chunk)


@pytest.mark.slow
def test_pca128_walk_reaches_recall_on_fashion_mnist():
    """The use the PCA composition is for: 784-d data walked on 128-d codes."""
    xb, xq = _load("fashion-mnist-784-euclidean", 100)
    xb = xb[:20000]
    index = voisin.index_factory(784, "PCA128,HNSW16_SQ8,RFlat")
    index.base_index.index.hnsw.efConstruction = 64
    index.train(xb)
    index.add(xb)
    index.base_index.index.hnsw.efSearch = 48
    index.k_factor = 4.8
    D, I = index.search(xq, 10)
    assert _recall(xb, xq, I, 10, voisin.METRIC_L2) >= 0.95
    _assert_exact_distances(xb, xq, D, I, voisin.METRIC_L2)


# --- files, pickles, faiss --------------------------------------------------------------------

@pytest.mark.parametrize("desc", ["HNSW16_SQ8,RFlat", "PCA16,HNSW16_SQ8,RFlat"])
def test_faiss_reads_and_writes_the_compositions(desc):
    """voisin's file is a plain FAISS file: faiss-cpu returns the same neighbours
    (its walk at efSearch = max(ef, k * k_factor), which voisin's walk takes), and
    an index faiss built comes back searchable by voisin with the same answers."""
    rng = np.random.default_rng(2)
    xb = rng.standard_normal((4000, 32)).astype(np.float32)
    xb[:, :8] *= 4  # a PCA16 keeps most of the variance
    xq = rng.standard_normal((60, 32)).astype(np.float32)
    index = voisin.index_factory(32, desc)
    index.train(xb)
    index.add(xb)
    index.k_factor = 3.0
    D, I = index.search(xq, 10)
    f = faiss.deserialize_index(voisin.serialize_index(index))
    assert type(f).__name__ == "IndexRefineFlat" and f.k_factor == 3.0
    fbase = faiss.downcast_index(f.base_index)
    inner = faiss.downcast_index(fbase.index) if isinstance(fbase, faiss.IndexPreTransform) else fbase
    assert type(inner).__name__ == "IndexHNSWSQ"
    inner.hnsw.efSearch = max(16, 30)
    Df, If = f.search(xq, 10)
    assert (If == I).mean() >= 0.99
    np.testing.assert_allclose(Df, D, rtol=1e-4, atol=1e-3)
    # and back: faiss's own build, read by voisin
    fb = faiss.index_factory(32, desc)
    fb.train(xb)
    fb.add(xb)
    fb.k_factor = 3.0
    finner = faiss.downcast_index(fb.base_index)
    if isinstance(finner, faiss.IndexPreTransform):
        finner = faiss.downcast_index(finner.index)
    finner.hnsw.efSearch = 30
    Dfb, Ifb = fb.search(xq, 10)
    back = voisin.deserialize_index(faiss.serialize_index(fb))
    assert isinstance(back, voisin.IndexRefineFlat)
    Dv, Iv = back.search(xq, 10)
    assert (Iv == Ifb).mean() >= 0.99
    np.testing.assert_allclose(Dv, Dfb, rtol=1e-4, atol=1e-3)


def test_pickle_and_file_keep_the_answers(sift, tmp_path):
    xb, xq, _, index, _ = sift
    D, I = index.search(xq, 10)
    for back in (pickle.loads(pickle.dumps(index)),
                 voisin.deserialize_index(voisin.serialize_index(index))):
        assert isinstance(back.base_index, IndexHNSWSQ)
        D2, I2 = back.search(xq, 10)
        np.testing.assert_array_equal(I, I2)
        np.testing.assert_allclose(D, D2, rtol=1e-6)


def test_factory_strings_build_the_compositions():
    assert isinstance(voisin.index_factory(16, "HNSW8_SQ8"), IndexHNSWSQ)
    ix = voisin.index_factory(16, "HNSW8_SQ8,RFlat", voisin.METRIC_INNER_PRODUCT)
    assert isinstance(ix, voisin.IndexRefineFlat) and isinstance(ix.base_index, IndexHNSWSQ)
    assert ix.metric_type == voisin.METRIC_INNER_PRODUCT
    assert isinstance(voisin.index_factory(16, "HNSW8,PQ4"), voisin.IndexHNSWPQ)  # as FAISS reads it
    with pytest.raises(voisin.FactoryError, match="8-bit PQ"):
        voisin.index_factory(16, "HNSW8,PQ4x6")
    with pytest.raises(voisin.FactoryError, match="8-bit"):
        voisin.index_factory(16, "HNSW8_SQ4")


# --- concurrency and bad input ------------------------------------------------------------------

def test_single_query_searches_race_adds_and_removes():
    """The optimistic (seqlock) single-query path: a search racing a write of the
    graph or the rows answers as before it or after it, never a mix."""
    rng = np.random.default_rng(4)
    xb = rng.standard_normal((4000, 16)).astype(np.float32)
    index, _ = _refined(16, 8, 40)
    index.train(xb)
    index.add(xb[:2000])
    xq = xb[:64].copy()
    errors, stop = [], threading.Event()

    def writer():
        try:
            for t in range(30):
                index.add(xb[2000 + 50 * t: 2050 + 50 * t])
                if t % 2:
                    index.remove_ids(np.array([index.ntotal - 1, index.ntotal - 7]))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)
        finally:
            stop.set()

    def searcher():
        try:
            while not stop.is_set():
                for r in range(0, 64, 8):
                    D, I = index.search(xq[r:r + 1], 5)
                    # the query is stored at id r (ids < 2000 never move): found exactly
                    assert I[0, 0] == r and D[0, 0] == 0.0
                    assert (I >= 0).all() and (np.diff(D[0]) >= 0).all()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=searcher)
                                                   for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_bad_input(sift):
    _, xq, _, index, _ = sift
    bad = xq[:1].copy()
    bad[0, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        index.search(bad, 5)            # the fast path hands NaN to the validated path
    with pytest.raises(ValueError, match="dimension"):
        index.search(xq[:, :64], 5)
    with pytest.raises(ValueError, match="k_factor"):
        index.search(xq[:1], 5, voisin.SearchParametersRefine(k_factor=0.5))
    with pytest.raises(TypeError, match="SearchParametersHNSW"):
        index.search(xq[:1], 5, voisin.SearchParametersRefine(
            base_index_params=voisin.SearchParametersIVF(nprobe=2)))
    with pytest.raises(RuntimeError, match="train"):
        _refined(8)[0].add(np.zeros((3, 8), np.float32))
