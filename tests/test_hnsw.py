"""IndexHNSWFlat / IndexHNSWSQ: recall on real data, determinism, filters,
incremental add, FAISS graph layout, edge cases and bad input."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numba
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import voisin
from voisin.indexes.hnsw import IndexHNSWFlat, IndexHNSWSQ, SearchParametersHNSW
from voisin.indexes.hnsw_graph import level_tables

DATASETS = Path(os.environ.get("VOISIN_SHARED_DATASETS",
                               Path(__file__).resolve().parents[2] / "shared" / "datasets"))


def _load(name: str, nq: int = 200):
    path = DATASETS / f"{name}.hdf5"
    if not path.exists():
        pytest.skip(f"dataset {path} not found (set VOISIN_SHARED_DATASETS)")
    h5py = pytest.importorskip("h5py")
    with h5py.File(path) as f:
        xb = np.ascontiguousarray(f["train"][:], dtype=np.float32)
        xq = np.ascontiguousarray(f["test"][:nq], dtype=np.float32)
    return xb, xq


def _brute(xb, xq, k, metric, mask=None):
    if metric == voisin.METRIC_L2:
        cost = ((xq[:, None, :].astype(np.float64) - xb[None].astype(np.float64)) ** 2).sum(-1)
    else:
        cost = -(xq.astype(np.float64) @ xb.T.astype(np.float64))
    if mask is not None:
        cost[:, ~mask] = np.inf
    order = np.argsort(cost, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(cost, order, 1), order


def _recall(xb, xq, I, k, metric, mask=None):
    """recall@k with ties: a result counts when its true cost <= the k-th true cost."""
    cost, _ = _brute(xb, xq, k, metric, mask)
    kth = cost[:, k - 1:k]
    if metric == voisin.METRIC_L2:
        got = ((xq[:, None, :].astype(np.float64) - xb[np.maximum(I, 0)].astype(np.float64)) ** 2).sum(-1)
    else:
        got = -np.einsum("qd,qkd->qk", xq.astype(np.float64), xb[np.maximum(I, 0)].astype(np.float64))
    ok = (I >= 0) & (got <= kth + 1e-6 * np.abs(kth) + 1e-9)
    return ok.mean()


@pytest.fixture(scope="module")
def sift():
    xb, xq = _load("siftsmall-128-euclidean", 100)
    index = IndexHNSWFlat(128, 16)
    index.hnsw.efConstruction = 80
    index.add(xb)
    return xb, xq, index


# --- recall on real data ------------------------------------------------------------

def test_recall_siftsmall_l2(sift):
    xb, xq, index = sift
    index.hnsw.efSearch = 64
    D, I = index.search(xq, 10)
    assert _recall(xb, xq, I, 10, voisin.METRIC_L2) >= 0.97
    # distances are the exact squared L2 of the returned ids, ascending
    true = ((xq[:, None] - xb[I]) ** 2).sum(-1)
    np.testing.assert_allclose(D, true, rtol=1e-4, atol=1e-2)
    assert (np.diff(D, axis=1) >= 0).all()


def test_single_query_path_matches_batch(sift):
    xb, xq, index = sift
    index.hnsw.efSearch = 32
    D, I = index.search(xq[:20], 10)
    for i in range(20):
        d1, i1 = index.search(xq[i:i + 1], 10)
        np.testing.assert_array_equal(i1[0], I[i])
        np.testing.assert_array_equal(d1[0], D[i])


def test_efsearch_param_overrides_and_raises_recall(sift):
    xb, xq, index = sift
    index.hnsw.efSearch = 1
    _, I1 = index.search(xq, 10)
    _, I2 = index.search(xq, 10, params=SearchParametersHNSW(efSearch=128))
    assert index.hnsw.efSearch == 1  # per-call parameters do not stick
    r1 = _recall(xb, xq, I1, 10, voisin.METRIC_L2)
    r2 = _recall(xb, xq, I2, 10, voisin.METRIC_L2)
    assert r2 >= 0.99 and r2 >= r1


def test_recall_glove_subset_inner_product():
    xb, xq = _load("glove-50-angular", 100)
    xb = xb[:20000].copy()
    voisin.normalize_L2(xb)
    voisin.normalize_L2(xq)
    index = IndexHNSWFlat(50, 16, voisin.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 100
    index.add(xb)
    index.hnsw.efSearch = 128
    D, I = index.search(xq, 10)
    assert _recall(xb, xq, I, 10, voisin.METRIC_INNER_PRODUCT) >= 0.95
    assert (np.diff(D, axis=1) <= 1e-6).all()  # similarities descend
    np.testing.assert_allclose(D, np.einsum("qd,qkd->qk", xq, xb[I]), rtol=1e-4, atol=1e-5)


# --- construction ---------------------------------------------------------------------

def _build(x, threads, seed=7, M=8):
    prev = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        index = IndexHNSWFlat(x.shape[1], M, seed=seed)
        index.hnsw.efConstruction = 32
        index.add(x)
    finally:
        numba.set_num_threads(prev)
    return index


def test_single_thread_build_is_deterministic():
    x = np.random.default_rng(0).standard_normal((3000, 16)).astype(np.float32)
    a, b = _build(x, 1), _build(x, 1)
    np.testing.assert_array_equal(a.hnsw.neighbors, b.hnsw.neighbors)
    np.testing.assert_array_equal(a.hnsw.levels, b.hnsw.levels)
    assert a.hnsw.entry_point == b.hnsw.entry_point
    c = _build(x, 1, seed=8)
    assert not np.array_equal(a.hnsw.levels, c.hnsw.levels)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 numba threads")
def test_parallel_build_is_deterministic_and_good():
    # beyond the serial prefix, so the batched (parallel) insertion runs
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6000, 12)).astype(np.float32)
    a, b = _build(x, 2), _build(x, 2)
    np.testing.assert_array_equal(a.hnsw.neighbors, b.hnsw.neighbors)
    q = rng.standard_normal((100, 12)).astype(np.float32)
    a.hnsw.efSearch = 64
    _, I = a.search(q, 10)
    assert _recall(x, q, I, 10, voisin.METRIC_L2) >= 0.95
    # batch sizes follow the graph size only: one thread builds the same graph
    c = _build(x, 1)
    np.testing.assert_array_equal(a.hnsw.neighbors, c.hnsw.neighbors)
    assert a.hnsw.entry_point == c.hnsw.entry_point


def test_faiss_graph_layout(sift):
    xb, xq, index = sift
    h = index.hnsw
    M = h.M
    n = index.ntotal
    assert h.levels.shape == (n,) and h.levels.min() >= 1
    assert h.max_level == int(h.levels.max()) - 1
    assert h.levels[h.entry_point] - 1 == h.max_level
    probas, cum = level_tables(M)
    np.testing.assert_array_equal(h.cum_nneighbor_per_level, cum)
    assert cum[1] == 2 * M and cum[2] == 3 * M
    assert abs(probas.sum() - 1.0) < 1e-6
    offs, nbrs = h.offsets, h.neighbors
    assert offs.dtype == np.uint64 and offs.shape == (n + 1,) and int(offs[-1]) == nbrs.size
    for node in (0, 1, int(h.entry_point), n - 1):
        for level in range(int(h.levels[node])):
            lo = int(offs[node]) + int(cum[level])
            hi = int(offs[node]) + int(cum[level + 1])
            slots = nbrs[lo:hi]
            real = slots[slots >= 0]
            np.testing.assert_array_equal(real, h.neighbors_of(node, level))
            assert (slots[real.size:] == -1).all()  # packed, -1 padded
            assert (real < n).all() and node not in real
    # level distribution follows assign_probas (M=16: ~94% of nodes on level 0 only)
    share0 = (h.levels == 1).mean()
    assert abs(share0 - probas[0]) < 0.02


def test_incremental_add_after_search(sift):
    xb, xq, _ = sift
    index = IndexHNSWFlat(128, 16)
    index.hnsw.efConstruction = 64
    index.add(xb[:4000])
    index.hnsw.efSearch = 64
    _, I = index.search(xq[:10], 5)
    assert (I < 4000).all()
    index.add(xb[4000:])
    assert index.ntotal == len(xb)
    _, I = index.search(xq, 10)
    assert _recall(xb, xq, I, 10, voisin.METRIC_L2) >= 0.95
    # vectors added later are found exactly
    _, I = index.search(xb[9000:9010], 1)
    np.testing.assert_array_equal(I[:, 0], np.arange(9000, 9010))


def test_reconstruct_and_xb(sift):
    xb, _, index = sift
    np.testing.assert_array_equal(index.reconstruct(123), xb[123])
    np.testing.assert_array_equal(index.reconstruct_n(10, 5), xb[10:15])
    with pytest.raises(ValueError, match="out of range"):
        index.reconstruct(len(xb))
    assert index.xb.shape == xb.shape


# --- filters ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["random", "range"])
@pytest.mark.parametrize("selectivity", [0.001, 0.01, 0.1, 0.5])
def test_filtered_recall(sift, selectivity, kind):
    xb, xq, index = sift
    rng = np.random.default_rng(3)
    n = len(xb)
    m = int(n * selectivity)
    if kind == "random":
        allowed = np.sort(rng.choice(n, m, replace=False))
        sel = voisin.IDSelectorBatch(allowed)
    else:
        lo = int(rng.integers(0, n - m))
        allowed = np.arange(lo, lo + m)
        sel = voisin.IDSelectorRange(lo, lo + m)
    mask = np.zeros(n, dtype=bool)
    mask[allowed] = True
    params = SearchParametersHNSW(efSearch=64, sel=sel)
    D, I = index.search(xq, 10, params=params)
    assert mask[I[I >= 0]].all()
    assert (I >= 0).all()  # k results whenever k ids are allowed
    assert _recall(xb, xq, I, 10, voisin.METRIC_L2, mask) >= 0.95


def test_filter_plan(sift):
    xb, xq, index = sift
    n = len(xb)
    # few allowed vectors: scanning them is cheaper than a traversal, and exact
    assert index.filter_plan(10, 64) == ("exact", 64)
    assert index.filter_plan(n // 100, 64)[0] == "exact"
    plan, ef = index.filter_plan(n // 2, 64)
    assert plan == "traverse" and ef >= 64
    assert index.filter_plan(n, 64) == ("traverse", 64)
    with pytest.raises(ValueError, match="ef"):
        index.filter_plan(10, 0)


def test_filter_traversal_path_keeps_recall(sift, monkeypatch):
    # force the in-graph filtered traversal (no exact fallback) at 50%
    from voisin import filtering
    monkeypatch.setattr(filtering, "HNSW_EXACT_FACTOR", 0.0)
    xb, xq, index = sift
    sel = voisin.IDSelectorRange(0, len(xb) // 2)
    D, I = index.search(xq, 10, params=SearchParametersHNSW(efSearch=64, sel=sel))
    mask = np.zeros(len(xb), bool)
    mask[: len(xb) // 2] = True
    assert (I < len(xb) // 2).all()
    assert _recall(xb, xq, I, 10, voisin.METRIC_L2, mask) >= 0.95


def test_filter_fewer_allowed_than_k(sift):
    xb, xq, index = sift
    params = voisin.SearchParameters(sel=voisin.IDSelectorBatch([5, 77]))
    D, I = index.search(xq[:3], 5, params=params)
    assert set(I[:, :2].ravel()) <= {5, 77}
    assert (I[:, 2:] == -1).all()
    assert (D[:, 2:] == np.finfo(np.float32).max).all()
    D, I = index.search(xq[:3], 5, params=voisin.SearchParameters(sel=voisin.IDSelectorBatch([])))
    assert (I == -1).all()


# --- edge cases ----------------------------------------------------------------------

def test_empty_and_one_element():
    index = IndexHNSWFlat(4, 8)
    D, I = index.search(np.zeros((2, 4), np.float32), 3)
    assert (I == -1).all() and (D == np.finfo(np.float32).max).all()
    assert index.hnsw.entry_point == -1 and index.hnsw.neighbors.size == 0
    index.add(np.ones((1, 4), np.float32))
    D, I = index.search(np.zeros((1, 4), np.float32), 3)
    assert I.tolist() == [[0, -1, -1]] and D[0, 0] == 4.0
    index.add(np.zeros((1, 4), np.float32))
    D, I = index.search(np.zeros((1, 4), np.float32), 2)
    assert I.tolist() == [[1, 0]]


def test_small_index_is_exact_with_large_ef():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((300, 8)).astype(np.float32)
    index = IndexHNSWFlat(8, 8)
    index.add(x)
    index.hnsw.efSearch = 300
    _, I = index.search(x[:50] + 0.01, 10)
    _, ref = _brute(x, x[:50] + 0.01, 10, voisin.METRIC_L2)
    assert (I == ref).mean() >= 0.99


def test_reset_pickle_and_idmap(sift):
    xb, xq, index = sift
    index.hnsw.efSearch = 32
    clone = pickle.loads(pickle.dumps(index))
    np.testing.assert_array_equal(clone.search(xq, 5)[1], index.search(xq, 5)[1])
    clone.reset()
    assert clone.ntotal == 0 and clone.hnsw.levels.size == 0
    assert (clone.search(xq[:1], 2)[1] == -1).all()
    wrapped = voisin.IndexIDMap(IndexHNSWFlat(128, 8))
    wrapped.add_with_ids(xb[:500], np.arange(500) + 10_000)
    _, I = wrapped.search(xb[:3], 1)
    assert I[:, 0].tolist() == [10_000, 10_001, 10_002]


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 60), d=st.integers(1, 6), k=st.integers(1, 8),
       ip=st.booleans(), seed=st.integers(0, 2**16))
def test_results_are_consistent(n, d, k, ip, seed):
    """Whatever the data: ids unique and valid, distances true and sorted."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, size=(n, d)).astype(np.float32)  # many ties and duplicates
    metric = voisin.METRIC_INNER_PRODUCT if ip else voisin.METRIC_L2
    index = IndexHNSWFlat(d, 4, metric)
    index.add(x)
    q = rng.standard_normal((3, d)).astype(np.float32)
    D, I = index.search(q, k)
    for r in range(3):
        ids = I[r][I[r] >= 0]
        assert len(set(ids.tolist())) == ids.size
        assert 1 <= ids.size <= min(k, n)
        true = ((x[ids] - q[r]) ** 2).sum(1) if not ip else x[ids] @ q[r]
        np.testing.assert_allclose(D[r][: ids.size], true, rtol=1e-5, atol=1e-5)
        order = D[r][: ids.size]
        assert (np.diff(order) >= 0).all() if not ip else (np.diff(order) <= 0).all()


# --- bad input -----------------------------------------------------------------------

def test_bad_input():
    with pytest.raises(ValueError, match="M"):
        IndexHNSWFlat(8, 1)
    with pytest.raises(TypeError, match="M"):
        IndexHNSWFlat(8, 2.5)
    with pytest.raises(ValueError, match="metric"):
        IndexHNSWFlat(8, 16, 7)
    index = IndexHNSWFlat(8, 8)
    index.add(np.random.rand(50, 8))
    with pytest.raises(ValueError, match="dimension"):
        index.search(np.zeros((1, 5), np.float32), 1)
    with pytest.raises(ValueError, match="NaN"):
        index.search(np.full((1, 8), np.nan, np.float32), 1)
    with pytest.raises(ValueError, match="NaN"):
        index.add(np.full((1, 8), np.inf, np.float32))
    with pytest.raises(ValueError, match="k"):
        index.search(np.zeros((1, 8), np.float32), 0)
    with pytest.raises(TypeError, match="params"):
        index.search(np.zeros((1, 8), np.float32), 1, params=object())
    with pytest.raises(TypeError, match="unknown parameter"):
        SearchParametersHNSW(nprobe=3)
    with pytest.raises(ValueError, match="efSearch"):
        index.search(np.zeros((1, 8), np.float32), 1, params=SearchParametersHNSW(efSearch=0))
    with pytest.raises(NotImplementedError, match="IndexIDMap"):
        index.add_with_ids(np.zeros((1, 8)), [3])
    assert index.remove_ids(np.array([10_000])) == 0  # absent ids: nothing removed
    with pytest.raises(TypeError, match="x"):
        index.remove_ids("all")
    index.hnsw.efConstruction = 0
    with pytest.raises(ValueError, match="efConstruction"):
        index.add(np.zeros((1, 8)))
    assert index.ntotal == 50  # a refused add leaves the index as it was


# --- SQ8 storage -------------------------------------------------------------------------

@pytest.mark.parametrize("metric", [voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT])
def test_hnsw_sq8(sift, metric):
    xb, xq, _ = sift
    xb, xq = xb[:5000], xq[:50]
    if metric == voisin.METRIC_INNER_PRODUCT:
        xb, xq = xb.copy(), xq.copy()
        voisin.normalize_L2(xb)
        voisin.normalize_L2(xq)
    index = IndexHNSWSQ(128, 0, 16, metric)
    assert not index.is_trained
    with pytest.raises(RuntimeError, match="train"):
        index.add(xb)
    index.train(xb)
    index.hnsw.efConstruction = 64
    index.add(xb)
    index.hnsw.efSearch = 64
    D, I = index.search(xq, 10)
    assert _recall(xb, xq, I, 10, metric) >= 0.85
    # reported distances are those to the decoded vectors
    dec = index.sq.decode(index.sq.encode(xb))
    true = ((dec[I] - xq[:, None]) ** 2).sum(-1) if metric == voisin.METRIC_L2 else \
        np.einsum("qd,qkd->qk", xq, dec[I])
    np.testing.assert_allclose(D, true, rtol=2e-3, atol=2e-3)
    err = np.abs(index.reconstruct_n(0, 100) - xb[:100]).max()
    assert err <= (xb.max(0) - xb.min(0)).max() / 255 + 1e-5
    assert index.bytes_per_vector < 128 * 4  # codes are 1 byte per component
    # exact re-ranking of the SQ8 candidates: FAISS's IndexRefineFlat, fused into the walk
    rr = voisin.IndexRefineFlat(IndexHNSWSQ(128, 0, 16, metric), 4)
    rr.train(xb)
    rr.base_index.hnsw.efConstruction = 64
    rr.add(xb)
    rr.base_index.hnsw.efSearch = 64
    D2, I2 = rr.search(xq, 10)
    assert _recall(xb, xq, I2, 10, metric) >= max(0.97, _recall(xb, xq, I, 10, metric))
    true = ((xb[I2] - xq[:, None]) ** 2).sum(-1) if metric == voisin.METRIC_L2 else \
        np.einsum("qd,qkd->qk", xq, xb[I2])
    np.testing.assert_allclose(D2, true, rtol=1e-4, atol=1e-4)
    with pytest.raises(NotImplementedError, match="QT_8bit"):
        IndexHNSWSQ(8, 1, 16)
    with pytest.raises(TypeError, match="IndexRefineFlat"):
        IndexHNSWSQ(8, 0, 16, rerank=True)


def test_factory_hnsw():
    xb = np.random.default_rng(2).random((600, 12), dtype=np.float32)
    for desc, cls in [("HNSW16", IndexHNSWFlat), ("HNSW8,Flat", IndexHNSWFlat), ("HNSW16_SQ8", IndexHNSWSQ)]:
        index = voisin.index_factory(12, desc)
        assert type(index) is cls
        index.train(xb)
        index.add(xb)
        _, I = index.search(xb[:5], 1)
        assert I[:, 0].tolist() == list(range(5))
    assert voisin.index_factory(12, "HNSW8").hnsw.M == 8
    ip = voisin.index_factory(12, "HNSW8", voisin.METRIC_INNER_PRODUCT)
    assert ip.metric_type == voisin.METRIC_INNER_PRODUCT


@pytest.mark.parametrize("knob", ["sq8_traversal", "traversal_dims", "sq8_build",
                                  "prefetch_lines", "early_abort_min_dim", "repair_back_links"])
def test_removed_walk_knobs_say_what_replaced_them(knob):
    index = IndexHNSWFlat(8, 8)
    with pytest.raises(AttributeError, match="HNSW32_SQ8,RFlat"):
        setattr(index, knob, 1)


@pytest.mark.parametrize("knob", ["upper_beam", "search_bounded_queue", "check_relative_distance"])
def test_faiss_walk_variants_are_refused_not_ignored(knob):
    index = IndexHNSWFlat(8, 8)
    default = getattr(index.hnsw, knob)
    setattr(index.hnsw, knob, default)  # the default is accepted
    with pytest.raises(ValueError, match=knob):
        setattr(index.hnsw, knob, 2 if knob == "upper_beam" else False)
    index.add(np.random.default_rng(0).random((50, 8), dtype=np.float32))
    name = "bounded_queue" if knob == "search_bounded_queue" else knob
    if knob != "upper_beam":
        params = SearchParametersHNSW(**{name: False})
        with pytest.raises(ValueError, match=name):
            index.search(np.zeros((1, 8), np.float32), 1, params=params)


@pytest.mark.parametrize("M", [4, 16, 32])
def test_level_tables_match_faiss(M):
    faiss = pytest.importorskip("faiss")
    owner = faiss.IndexHNSWFlat(8, M)  # keep the owner alive: .hnsw is a borrowed view
    ref = owner.hnsw
    probas, cum = level_tables(M)
    np.testing.assert_allclose(probas, faiss.vector_to_array(ref.assign_probas), rtol=1e-5)
    np.testing.assert_array_equal(cum, faiss.vector_to_array(ref.cum_nneighbor_per_level))
    ours = IndexHNSWFlat(8, M).hnsw
    assert (ours.efConstruction, ours.efSearch) == (ref.efConstruction, ref.efSearch) == (40, 16)


def test_small_index_answers_exactly_even_with_a_node_pruned_out_of_every_list():
    """14 vectors, M=4: the neighbour heuristic used to leave node 3 in no list,
    so no search could find it (hypothesis found this seed). Small indexes
    (ntotal <= efSearch) now scan, and bulk adds give such nodes an in-link."""
    xs = np.random.default_rng(180).standard_normal((14, 6)).astype(np.float32)
    index = voisin.IndexHNSWFlat(6, 4)
    index.add(xs)
    nb0 = index.hnsw._g[0]
    assert set(range(14)) - {int(index.hnsw.entry_point)} <= set(nb0[nb0 >= 0].tolist())
    for ef in (4, 16):
        index.hnsw.efSearch = ef
        D, I = index.search(xs, 1)
        np.testing.assert_array_equal(I[:, 0], np.arange(14))
        D1 = np.vstack([index.search(xs[i:i + 1], 1)[0] for i in range(14)])  # one-query path
        np.testing.assert_allclose(D1[:, 0], 0.0, atol=1e-6)


def test_bulk_add_leaves_no_level0_node_without_an_in_link():
    rng = np.random.default_rng(3)
    xs = rng.standard_normal((3000, 8)).astype(np.float32)
    index = voisin.IndexHNSWFlat(8, 4)
    index.add(xs[:2000])
    index.add(xs[2000:])
    nb0 = index.hnsw._g[0]
    indeg = np.bincount(nb0[nb0 >= 0], minlength=3000)
    orphans = set(np.flatnonzero(indeg == 0).tolist()) - {int(index.hnsw.entry_point)}
    assert not orphans
