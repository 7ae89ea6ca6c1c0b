"""IndexNSGFlat against faiss-cpu: the graph it builds, recall, exact distances, files both
ways (same search results), the factory string, and voisin's conventions."""

from __future__ import annotations

import pickle
from collections import deque

import numpy as np
import pytest
from conftest import FLT_MAX, assert_knn_valid, brute_force, tolerance
from hypothesis import given, settings
from hypothesis import strategies as st

import voisin

faiss = pytest.importorskip("faiss")

D_ = 16
N = 2000
K = 10


def clustered(rng, n, centers):
    return (centers[rng.integers(len(centers), size=n)]
            + rng.standard_normal((n, centers.shape[1]))).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    centers = 3.0 * rng.standard_normal((20, D_))
    return clustered(rng, N, centers), clustered(rng, 100, centers)


@pytest.fixture(scope="module")
def pair(data, faiss_single_thread):
    """voisin and faiss IndexNSGFlat(d, 32), each built by its library (NN-Descent k-NN)."""
    xb, _ = data
    v = voisin.IndexNSGFlat(D_, 32)
    v.add(xb)
    f = faiss.IndexNSGFlat(D_, 32)
    f.add(xb)
    return v, f


def recall(I, gt):
    return float(np.mean([len(set(a) & set(b)) / gt.shape[1] for a, b in zip(I, gt)]))


def reachable(graph, root):
    seen = np.zeros(graph.shape[0], bool)
    seen[root] = True
    todo = deque([root])
    while todo:
        for nb in graph[todo.popleft()]:
            if nb >= 0 and not seen[nb]:
                seen[nb] = True
                todo.append(nb)
    return seen


def test_knob_defaults_are_faiss_defaults():
    v, f = voisin.IndexNSGFlat(8, 24), faiss.IndexNSGFlat(8, 24)
    for name in ("R", "L", "C", "search_L"):
        assert getattr(v.nsg, name) == getattr(f.nsg, name), name
    for name in ("GK", "nndescent_S", "nndescent_R", "nndescent_L", "nndescent_iter"):
        assert getattr(v, name) == getattr(f, name), name
    assert v.build_type == ord(f.build_type) if isinstance(f.build_type, str) else f.build_type


@pytest.mark.parametrize("search_L", [16, 32, 64])
def test_recall_at_matching_knobs(pair, data, search_L):
    v, f = pair
    xb, xq = data
    _, gt = brute_force(xq, xb, K, voisin.METRIC_L2)
    v.nsg.search_L = f.nsg.search_L = search_L
    rv = recall(v.search(xq, K)[1], gt)
    rf = recall(f.search(xq, K)[1], gt)
    assert rv >= rf - 0.02, (rv, rf)


def test_graph_shape_degree_and_connectivity(pair):
    v, _ = pair
    g = v.nsg.final_graph
    assert g.shape == (N, 32) and g.dtype == np.int32
    assert ((g >= -1) & (g < N)).all()
    # valid ids first, then -1 padding
    valid = g >= 0
    assert (valid[:, :-1] | ~valid[:, 1:]).all()
    assert (g[:, 0] != np.arange(N)).all()
    assert reachable(g, v.nsg.enterpoint).all(), "a node the navigation node cannot reach"


def test_exact_knn_build_makes_faiss_graph(data, faiss_single_thread):
    """From the same exact k-NN graph (build_type 0) the pruning and reverse links are
    FAISS's: the two graphs share nearly all their edges."""
    xb, _ = data
    v = voisin.IndexNSGFlat(D_, 16)
    v.build_type = 0
    v.add(xb)
    f = faiss.IndexNSGFlat(D_, 16)
    f.build_type = 0
    f.add(xb)
    fg = voisin.deserialize_index(faiss.serialize_index(f)).nsg.final_graph
    # voisin's navigation node is the node nearest the centroid; FAISS's is the best
    # one a walk finds, never nearer
    c = xb.mean(0)
    assert ((xb[v.nsg.enterpoint] - c) ** 2).sum() <= ((xb[f.nsg.enterpoint] - c) ** 2).sum()
    shared = [len(set(a[a >= 0]) & set(b[b >= 0])) / max(1, int((b >= 0).sum()))
              for a, b in zip(v.nsg.final_graph, fg)]
    # the walks that collect candidates start at different navigation nodes
    assert np.mean(shared) >= 0.9


def test_distances_are_exact_for_the_ids_returned(pair, data):
    v, _ = pair
    xb, xq = data
    v.nsg.search_L = 32
    D, I = v.search(xq, K)
    true = ((xq[:, None, :].astype(np.float64) - xb[I].astype(np.float64)) ** 2).sum(-1)
    np.testing.assert_allclose(D, true, rtol=0, atol=float(tolerance(xq, xb, 1).max()))
    assert (np.diff(D, axis=1) >= 0).all()


def test_inner_product_through_the_factory(data, faiss_single_thread):
    xb, xq = data
    xb = xb / np.linalg.norm(xb, axis=1, keepdims=True)
    xq = xq / np.linalg.norm(xq, axis=1, keepdims=True)
    v = voisin.index_factory(D_, "NSG32", voisin.METRIC_INNER_PRODUCT)
    f = faiss.index_factory(D_, "NSG32", faiss.METRIC_INNER_PRODUCT)
    assert isinstance(v, voisin.IndexNSGFlat) and v.metric_type == voisin.METRIC_INNER_PRODUCT
    v.add(xb)
    f.add(xb)
    v.nsg.search_L = f.nsg.search_L = 32
    _, gt = brute_force(xq, xb, K, voisin.METRIC_INNER_PRODUCT)
    D, I = v.search(xq, K)
    assert recall(I, gt) >= recall(f.search(xq, K)[1], gt) - 0.02
    np.testing.assert_allclose(D, np.einsum("qd,qkd->qk", xq, xb[I]), atol=1e-5)
    assert (np.diff(D, axis=1) <= 0).all()


def test_factory_strings():
    for key, R in (("NSG32", 32), ("NSG16,Flat", 16), ("NSG64", 64), ("NSG", 32), ("NSG8_Flat", 8)):
        v, f = voisin.index_factory(8, key), faiss.index_factory(8, key)
        assert isinstance(v, voisin.IndexNSGFlat) and v.nsg.R == f.nsg.R == R
    # NSG over codes (IndexNSGPQ / IndexNSGSQ): tests/test_nsg_codecs.py
    for bad in ("NSG0", "NSG32,LSH", "NSG32,PQ3", "NSG32,SQ8,Flat"):
        with pytest.raises(ValueError, match="NSG"):
            voisin.index_factory(8, bad)


@pytest.mark.parametrize("search_L", [16, 48])
def test_faiss_file_read_by_voisin_searches_like_faiss(pair, data, search_L):
    _, f = pair
    _, xq = data
    f.nsg.search_L = search_L
    v = voisin.deserialize_index(faiss.serialize_index(f))
    assert isinstance(v, voisin.IndexNSGFlat)
    assert v.nsg.enterpoint == f.nsg.enterpoint and v.nsg.search_L == search_L
    assert v.GK == f.GK and v.nsg.L == f.nsg.L and v.nsg.C == f.nsg.C
    Dv, Iv = v.search(xq, K)
    Df, If = f.search(xq, K)
    # the same walk: the pool is topped up from faiss's own random stream
    assert (Iv == If).mean() >= 0.99
    same = Iv == If
    np.testing.assert_allclose(Dv[same], Df[same], rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(v.reconstruct(5), f.reconstruct(5))


def test_voisin_file_read_by_faiss_searches_like_voisin(pair, data, tmp_path):
    v, _ = pair
    _, xq = data
    v.nsg.search_L = 24
    path = tmp_path / "nsg.index"
    voisin.write_index(v, str(path))
    f = faiss.read_index(str(path))
    assert isinstance(f, faiss.IndexNSGFlat) and f.ntotal == v.ntotal
    assert f.nsg.enterpoint == v.nsg.enterpoint and f.nsg.search_L == 24
    Dv, Iv = v.search(xq, K)
    Df, If = f.search(xq, K)
    assert (Iv == If).mean() >= 0.99
    back = voisin.read_index(str(path))
    np.testing.assert_array_equal(back.nsg.final_graph, v.nsg.final_graph)
    np.testing.assert_array_equal(back.search(xq, K)[1], Iv)


def test_empty_index_files_both_ways():
    v = voisin.deserialize_index(faiss.serialize_index(faiss.IndexNSGFlat(8, 16)))
    assert v.ntotal == 0 and v.nsg.R == 16 and not v.is_built
    f = faiss.deserialize_index(np.frombuffer(voisin.serialize_index(voisin.IndexNSGFlat(8, 16)),
                                              dtype=np.uint8))
    assert f.ntotal == 0 and f.nsg.R == 16
    D, I = v.search(np.zeros((1, 8), np.float32), 2)
    assert (I == -1).all() and (D == FLT_MAX).all()


def test_damaged_files_are_refused(pair):
    v, _ = pair
    buf = bytearray(voisin.serialize_index(v, checksum=False))
    with pytest.raises(ValueError):
        voisin.deserialize_index(bytes(buf[:len(buf) // 3]))
    # the first graph id: after the tag, header, GK, build_type, 4 + 6 int32, is_built
    at = 4 + 33 + 4 + 1 + 16 + 24 + 1
    buf[at:at + 4] = np.int32(N + 3).tobytes()
    with pytest.raises(ValueError, match="graph"):
        voisin.deserialize_index(bytes(buf))
    # a row with no terminator before the storage: R + 1 ids in a row
    buf = bytearray(voisin.serialize_index(v, checksum=False))
    buf[at:at + 4 * 40] = np.zeros(40, np.int32).tobytes()
    with pytest.raises(ValueError, match="graph"):
        voisin.deserialize_index(bytes(buf))


def test_k_beyond_ntotal_pads_and_small_sets_build(rng):
    xb = rng.standard_normal((30, 8)).astype(np.float32)
    index = voisin.IndexNSGFlat(8, 8)
    index.add(xb)  # faiss's NN-Descent refuses at most 100 vectors; voisin goes exact
    index.nsg.search_L = 30
    D, I = index.search(xb[:4], 35)
    assert_knn_valid(D, I, xb[:4], xb, 35, voisin.METRIC_L2)
    assert (I[:, 30:] == -1).all() and (D[:, 30:] == FLT_MAX).all()


def test_filtered_search_is_exact(pair, data):
    v, _ = pair
    xb, xq = data
    allowed = np.zeros(N, bool)
    allowed[::7] = True
    sel = voisin.IDSelectorBatch(np.flatnonzero(allowed))
    D, I = v.search(xq, K, voisin.SearchParameters(sel=sel))
    assert_knn_valid(D, I, xq, xb, K, voisin.METRIC_L2, allowed=allowed)


def test_no_deletes_no_ids_but_reset_and_rebuild(data):
    xb, xq = data
    index = voisin.IndexNSGFlat(D_, 16)
    index.add(xb[:400])
    with pytest.raises(NotImplementedError, match="IndexHNSWFlat"):
        index.remove_ids(voisin.IDSelectorRange(0, 5))
    with pytest.raises(NotImplementedError, match="IndexIDMap"):
        index.add_with_ids(xb[:2], np.array([1, 2]))
    # FAISS refuses a second add; voisin rebuilds over every vector
    index.add(xb[400:700])
    assert index.ntotal == 700 and index.nsg.final_graph.shape == (700, 16)
    assert reachable(index.nsg.final_graph, index.nsg.enterpoint).all()
    index.nsg.search_L = 32
    assert index.search(xb[[3, 650]], 1)[1].ravel().tolist() == [3, 650]
    index.reset()
    assert index.ntotal == 0 and not index.is_built and not index.nsg.is_built
    assert (index.search(xq[:2], 3)[1] == -1).all()
    index.add(xb[:150])
    assert index.ntotal == 150 and index.is_built


def test_bad_input_names_the_argument(pair):
    v, _ = pair
    with pytest.raises(ValueError, match="x"):
        v.search(np.zeros((1, D_ - 1), np.float32), 2)
    with pytest.raises(ValueError, match="k"):
        v.search(np.zeros((1, D_), np.float32), -3)
    with pytest.raises((ValueError, TypeError), match="nsg.search_L"):
        v.nsg.search_L = "many"
    with pytest.raises((ValueError, TypeError), match="build_type"):
        voisin.IndexNSGFlat(8).build_type = 2
    with pytest.raises((ValueError, TypeError), match="GK"):
        voisin.IndexNSGFlat(8).GK = 0
    with pytest.raises((ValueError, TypeError), match="R"):
        voisin.IndexNSGFlat(8, 0)


def test_pickle_keeps_the_graph(pair, data):
    v, _ = pair
    _, xq = data
    back = pickle.loads(pickle.dumps(v))
    np.testing.assert_array_equal(back.nsg.final_graph, v.nsg.final_graph)
    np.testing.assert_array_equal(back.search(xq[:5], 4)[1], v.search(xq[:5], 4)[1])


@settings(max_examples=10, deadline=None)
@given(n=st.integers(1, 150), k=st.integers(1, 10), R=st.integers(2, 12),
       seed=st.integers(0, 2 ** 16), build_type=st.sampled_from([0, 1]), ip=st.booleans())
def test_every_graph_is_connected_and_results_valid(n, k, R, seed, build_type, ip):
    rng = np.random.default_rng(seed)
    xb = rng.standard_normal((n, 5)).astype(np.float32)
    metric = voisin.METRIC_INNER_PRODUCT if ip else voisin.METRIC_L2
    index = voisin.IndexNSGFlat(5, R, metric)
    index.build_type = build_type
    index.GK = 8
    index.add(xb)
    g = index.nsg.final_graph
    assert g.shape == (n, R) and reachable(g, index.nsg.enterpoint).all()
    xq = rng.standard_normal((3, 5)).astype(np.float32)
    D, I = index.search(xq, k)
    m = min(k, n)
    assert (I[:, m:] == -1).all()
    real = I[:, :m]
    assert ((real >= 0) & (real < n)).all() and all(len(set(r)) == m for r in real)
    dist = xq @ xb.T if ip else ((xq[:, None] - xb[None]) ** 2).sum(-1)
    np.testing.assert_allclose(D[:, :m], np.take_along_axis(dist, real, 1), rtol=1e-4, atol=1e-4)
    step = np.diff(D[:, :m], axis=1)
    assert ((-step if ip else step) >= 0).all()


def test_search_L_through_parameter_space_and_inspect_tools(pair, data):
    v, _ = pair
    _, xq = data
    inner = voisin.IndexNSGFlat(D_, 16)
    voisin.ParameterSpace().set_index_parameter(voisin.IndexIDMap(inner), "search_L", 40)
    assert inner.nsg.search_L == 40
    from voisin.params import parameter_names
    assert "search_L" in parameter_names(voisin.IndexIDMap(voisin.IndexNSGFlat(8)))
    with pytest.raises(ValueError, match="search_L"):
        voisin.ParameterSpace().set_index_parameter(v, "search_L", -2)
    from voisin.contrib.inspect_tools import get_NSG_neighbors
    np.testing.assert_array_equal(get_NSG_neighbors(v.nsg), v.nsg.final_graph)
    nnd = voisin.IndexNNDescentFlat(8, 8)
    voisin.ParameterSpace().set_index_parameter(nnd, "search_L", 12)
    assert nnd.nndescent.search_L == 12


def test_range_search_is_exact(pair, data):
    v, _ = pair
    xb, xq = data
    lims, D, I = v.range_search(xq[:5], 4.0)
    ref = faiss.IndexFlatL2(D_)
    ref.add(xb)
    rl, rD, rI = ref.range_search(xq[:5], 4.0)
    np.testing.assert_array_equal(lims, rl)
    for i in range(5):
        assert set(I[lims[i]:lims[i + 1]]) == set(rI[rl[i]:rl[i + 1]])


def test_a_failed_build_leaves_the_index_unchanged(data):
    xb, xq = data
    index = voisin.IndexNNDescentFlat(D_, 16)
    index.add(xb[:300])
    before = index.search(xq[:5], 3)
    index.nndescent.L = 8  # below K: the build refuses
    with pytest.raises(ValueError, match="nndescent.L"):
        index.add(xb[300:400])
    assert index.ntotal == 300 and index.storage.ntotal == 300
    np.testing.assert_array_equal(index.search(xq[:5], 3)[1], before[1])
    # knobs changed after the build do not corrupt the file: K is the graph's
    index.nndescent.L = 66
    index.nndescent.K = 24
    back = faiss.deserialize_index(np.frombuffer(voisin.serialize_index(index), dtype=np.uint8))
    assert back.nndescent.K == 16 and back.ntotal == 300
    nsg = voisin.IndexNSGFlat(D_, 8)
    nsg.add(xb[:200])
    nsg.nsg.R = 12
    back = voisin.deserialize_index(voisin.serialize_index(nsg))
    assert back.nsg.R == 8
    np.testing.assert_array_equal(back.nsg.final_graph, nsg.graph())


def test_broad_filters_walk_the_graph(pair, data, monkeypatch):
    """A filter that keeps most vectors walks the graph (filtering.hnsw_plan) with a pool
    widened by 1 / selectivity, and a walk that comes back short is answered exactly."""
    from voisin.filtering import hnsw_plan
    from voisin.kernels import graphs as KG
    v, _ = pair
    xb, xq = data
    v.nsg.search_L = 32
    allowed = np.ones(N, bool)
    allowed[:200] = False
    assert hnsw_plan(int(allowed.sum()), N, 32, 16)[0] == "traverse"
    calls = []
    real = KG.nsg_search_filtered

    def spy(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(KG, "nsg_search_filtered", spy)
    params = voisin.SearchParameters(sel=voisin.IDSelectorNot(voisin.IDSelectorRange(0, 200)))
    D, I = v.search(xq, K, params)
    assert calls, "the filtered walk was not used"
    assert ((I >= 200) & (I < N)).all() and all(len(set(r)) == K for r in I)
    true = ((xq[:, None, :].astype(np.float64) - xb[I].astype(np.float64)) ** 2).sum(-1)
    np.testing.assert_allclose(D, true, rtol=0, atol=float(tolerance(xq, xb, 1).max()))
    _, gt = brute_force(xq, xb, K, voisin.METRIC_L2, allowed=allowed)
    _, gt_all = brute_force(xq, xb, K, voisin.METRIC_L2)
    assert recall(I, gt) >= recall(v.search(xq, K)[1], gt_all) - 0.05

    def nothing(graph, X, Q, metric, *rest):
        rest[-1][:] = -1  # I: the walk found no allowed node
        rest[-2][:] = np.inf

    monkeypatch.setattr(KG, "nsg_search_filtered", nothing)
    D2, I2 = v.search(xq[:4], K, params)
    assert_knn_valid(D2, I2, xq[:4], xb, K, voisin.METRIC_L2, allowed=allowed)


GRAPHS = [(voisin.IndexNNDescentFlat, "IndexNNDescentFlat", "nndescent"),
          (voisin.IndexNSGFlat, "IndexNSGFlat", "nsg")]


@pytest.fixture(scope="module")
def positive_data():
    rng = np.random.default_rng(5)
    centers = 3.0 * rng.random((20, D_))
    xb = (centers[rng.integers(20, size=N)] + rng.random((N, D_))).astype(np.float32)
    xq = (centers[rng.integers(20, size=100)] + rng.random((100, D_))).astype(np.float32)
    return xb, xq


@pytest.mark.parametrize("metric,arg", [(voisin.METRIC_L1, 0.0), (voisin.METRIC_Lp, 3.0)])
@pytest.mark.parametrize("cls,name,knob", GRAPHS)
def test_further_metrics_match_faiss(positive_data, faiss_single_thread, metric, arg, cls, name,
                                     knob):
    """FAISS builds these graphs under any metric; so does voisin: recall at matching
    knobs (averaged over pool sizes), and each library's file searched by the other
    gives its results. NSG starts from the exact k-NN graph here (build_type 0): from
    two different NN-Descent graphs one changed edge between two clusters can move
    recall by several points either way (docs/graphs.md), which says nothing about
    the metric."""
    xb, xq = positive_data
    ref = faiss.IndexFlat(D_, metric)
    ref.metric_arg = arg
    ref.add(xb)
    gt = ref.search(xq, K)[1]
    v = cls(D_, 32, metric)
    v.metric_arg = arg
    f = getattr(faiss, name)(D_, 32, metric)
    f.metric_arg = f.storage.metric_arg = arg
    if knob == "nsg":
        v.build_type = f.build_type = 0
    v.add(xb)
    f.add(xb)
    rv, rf = [], []
    for L in (16, 32, 48):
        getattr(v, knob).search_L = getattr(f, knob).search_L = L
        rv.append(recall(v.search(xq, K)[1], gt))
        rf.append(recall(f.search(xq, K)[1], gt))
    assert np.mean(rv) >= np.mean(rf) - 0.02, (rv, rf)
    Dv, Iv = v.search(xq, K)
    true = ref.search(xq, 3 * N)  # every stored vector, to read the returned ids' distances
    dist = np.empty_like(Dv)
    for q in range(len(xq)):
        pos = dict(zip(true[1][q].tolist(), true[0][q].tolist()))
        dist[q] = [pos[int(i)] for i in Iv[q]]
    np.testing.assert_allclose(Dv, dist, rtol=1e-4, atol=1e-4)
    w = voisin.deserialize_index(faiss.serialize_index(f))
    assert w.metric_type == metric and w.metric_arg == arg
    assert (w.search(xq, K)[1] == f.search(xq, K)[1]).mean() >= 0.99
    back = faiss.deserialize_index(np.frombuffer(voisin.serialize_index(v), dtype=np.uint8))
    assert back.metric_type == metric and back.metric_arg == arg
    assert (back.search(xq, K)[1] == Iv).mean() >= 0.99


@pytest.mark.parametrize("cls,name,knob", GRAPHS)
def test_jaccard_is_a_similarity(positive_data, cls, name, knob):
    """Jaccard ranks descending and reports the similarity itself (faiss 1.15's graph
    search negates it back only for the inner product, so it reports -Jaccard)."""
    xb, xq = positive_data
    v = cls(D_, 16, voisin.METRIC_Jaccard)
    v.add(xb[:500])
    getattr(v, knob).search_L = 32
    D, I = v.search(xq[:10], 5)
    a, b = xq[:10, None, :], xb[I]
    jac = np.minimum(a, b).sum(-1) / np.maximum(a, b).sum(-1)
    np.testing.assert_allclose(D, jac, rtol=1e-5)
    assert (np.diff(D, axis=1) <= 0).all()


@pytest.mark.parametrize("cls,name,knob", GRAPHS)
def test_nan_distances_are_never_results(cls, name, knob, rng):
    """Canberra between two zero rows is 0/0: such a row is no result (as in faiss)."""
    xb = rng.random((300, 6)).astype(np.float32)
    xb[:5] = 0.0
    index = cls(6, 8, voisin.METRIC_Canberra)
    index.add(xb)
    getattr(index, knob).search_L = 64
    D, I = index.search(np.zeros((2, 6), np.float32), 10)
    assert not np.isnan(D).any()
    assert not np.isin(I, np.arange(5)).any()
    assert ((I == -1) | (I >= 5)).all()


@pytest.mark.parametrize("library", ["voisin", "faiss"])
def test_bench_sweeps_search_L_on_nsg(library, faiss_single_thread):
    """The benchmark runner sweeps NSG's own pool knob (NSG has no efSearch), on both
    libraries (faiss's ParameterSpace has no NSG knob: the adapter sets nsg.search_L)."""
    from voisin.bench import adapters
    from voisin.bench.spec import default_sweep, knob_applies, parse_spec
    spec = parse_spec(f"{library}:NSG32")
    sweep = default_sweep(spec)
    assert list(sweep) == ["search_L"]
    assert knob_applies(spec, "search_L") and not knob_applies(spec, "efSearch")
    assert not knob_applies(parse_spec(f"{library}:HNSW32"), "search_L")
    rng = np.random.default_rng(3)
    xb = rng.standard_normal((1200, 16)).astype(np.float32)
    xq = rng.standard_normal((20, 16)).astype(np.float32)
    a = adapters.make_adapter(spec, 16, voisin.METRIC_L2)
    a.build(xb)
    a.set_query_param("search_L", sweep["search_L"][-1])
    _, gt = brute_force(xq, xb, K, voisin.METRIC_L2)
    assert recall(a.search_batch(xq, K), gt) >= 0.95
