"""IndexNNDescentFlat against faiss-cpu: recall, exact distances, files both ways,
FAISS's search at matching knobs, and the voisin conventions (padding, filters, errors)."""

from __future__ import annotations

import io
import pickle

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


def clustered(rng, n, centers, scale=1.0):
    return (centers[rng.integers(len(centers), size=n)]
            + scale * rng.standard_normal((n, centers.shape[1]))).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    centers = 3.0 * rng.standard_normal((20, D_))
    xb = clustered(rng, N, centers)
    xq = clustered(rng, 100, centers)
    return xb, xq


@pytest.fixture(scope="module")
def pair(data, faiss_single_thread):
    """The same data in a voisin and a faiss IndexNNDescentFlat, each built by its library."""
    xb, _ = data
    v = voisin.IndexNNDescentFlat(D_, 32)
    v.add(xb)
    f = faiss.IndexNNDescentFlat(D_, 32)
    f.add(xb)
    return v, f


def recall(I, gt):
    return float(np.mean([len(set(a) & set(b)) / gt.shape[1] for a, b in zip(I, gt)]))


def test_knob_defaults_are_faiss_defaults():
    v, f = voisin.IndexNNDescentFlat(8, 24), faiss.IndexNNDescentFlat(8, 24)
    for name in ("K", "S", "R", "L", "iter", "search_L", "random_seed", "d"):
        assert getattr(v.nndescent, name) == getattr(f.nndescent, name), name
    assert v.metric_type == f.metric_type
    assert voisin.IndexNNDescentFlat(8).nndescent.K == 32  # the brief's default; faiss needs K


@pytest.mark.parametrize("search_L", [32, 64])
def test_recall_at_matching_knobs(pair, data, search_L):
    v, f = pair
    xb, xq = data
    _, gt = brute_force(xq, xb, K, voisin.METRIC_L2)
    v.nndescent.search_L = search_L
    f.nndescent.search_L = search_L
    rv = recall(v.search(xq, K)[1], gt)
    rf = recall(f.search(xq, K)[1], gt)
    assert rv >= rf - 0.02, (rv, rf)
    assert rv > 0.5  # the walk finds neighbours, not just anything


def test_distances_are_exact_for_the_ids_returned(pair, data):
    v, _ = pair
    xb, xq = data
    v.nndescent.search_L = 48
    D, I = v.search(xq, K)
    assert D.dtype == np.float32 and I.dtype == np.int64
    true = ((xq[:, None, :].astype(np.float64) - xb[I].astype(np.float64)) ** 2).sum(-1)
    np.testing.assert_allclose(D, true, rtol=0, atol=float(tolerance(xq, xb, 1).max()))
    assert (np.diff(D, axis=1) >= 0).all()
    assert all(len(set(row)) == K for row in I)


def test_inner_product_recall_and_sign(data, faiss_single_thread):
    xb, xq = data
    xb = xb / np.linalg.norm(xb, axis=1, keepdims=True)
    xq = xq / np.linalg.norm(xq, axis=1, keepdims=True)
    v = voisin.IndexNNDescentFlat(D_, 32, voisin.METRIC_INNER_PRODUCT)
    f = faiss.IndexNNDescentFlat(D_, 32, faiss.METRIC_INNER_PRODUCT)
    v.add(xb)
    f.add(xb)
    v.nndescent.search_L = f.nndescent.search_L = 64
    _, gt = brute_force(xq, xb, K, voisin.METRIC_INNER_PRODUCT)
    D, I = v.search(xq, K)
    assert recall(I, gt) >= recall(f.search(xq, K)[1], gt) - 0.02
    np.testing.assert_allclose(D, np.einsum("qd,qkd->qk", xq, xb[I]), atol=1e-5)
    assert (np.diff(D, axis=1) <= 0).all()


def test_faiss_file_read_by_voisin_searches_like_faiss(pair, data):
    _, f = pair
    _, xq = data
    f.nndescent.search_L = 40
    v = voisin.deserialize_index(faiss.serialize_index(f))
    assert isinstance(v, voisin.IndexNNDescentFlat)
    assert v.ntotal == f.ntotal and v.nndescent.search_L == 40
    np.testing.assert_array_equal(v.nndescent.final_graph,
                                  faiss.vector_to_array(f.nndescent.final_graph))
    np.testing.assert_array_equal(v.reconstruct_n(0, 5), f.reconstruct_n(0, 5))
    Dv, Iv = v.search(xq, K)
    Df, If = f.search(xq, K)
    # same graph, same start nodes (FAISS's mt19937 stream): the same walk
    assert (Iv == If).mean() >= 0.99
    same = Iv == If
    np.testing.assert_allclose(Dv[same], Df[same], rtol=1e-5, atol=1e-4)


def test_voisin_file_read_by_faiss_searches_like_voisin(pair, data, tmp_path):
    v, _ = pair
    _, xq = data
    v.nndescent.search_L = 40
    path = tmp_path / "nnd.index"
    voisin.write_index(v, str(path))
    f = faiss.read_index(str(path))
    assert isinstance(f, faiss.IndexNNDescentFlat) and f.ntotal == v.ntotal
    assert f.nndescent.K == v.nndescent.K and f.nndescent.search_L == 40
    Dv, Iv = v.search(xq, K)
    Df, If = f.search(xq, K)
    assert (Iv == If).mean() >= 0.99
    # and voisin reads its own file back to the same index
    back = voisin.read_index(str(path))
    Db, Ib = back.search(xq, K)
    np.testing.assert_array_equal(Ib, Iv)
    np.testing.assert_array_equal(Db, Dv)


def test_empty_index_files_both_ways():
    v = voisin.deserialize_index(faiss.serialize_index(faiss.IndexNNDescentFlat(8, 16)))
    assert v.ntotal == 0 and v.nndescent.K == 16
    f = faiss.deserialize_index(np.frombuffer(voisin.serialize_index(
        voisin.IndexNNDescentFlat(8, 16)), dtype=np.uint8))
    assert f.ntotal == 0 and f.nndescent.K == 16
    D, I = v.search(np.zeros((2, 8), np.float32), 3)
    assert (I == -1).all() and (D == FLT_MAX).all()


def test_damaged_files_are_refused(pair):
    v, _ = pair
    buf = bytearray(voisin.serialize_index(v, checksum=False))
    with pytest.raises(ValueError):
        voisin.deserialize_index(bytes(buf[:len(buf) // 2]))
    # a graph id out of range: the first final_graph entry
    at = 4 + 33 + 9 * 4 + 1 + 8  # tag, header, nine int32 fields, has_built, length
    buf[at:at + 4] = np.int32(v.ntotal + 5).tobytes()
    with pytest.raises(ValueError, match="final_graph"):
        voisin.deserialize_index(bytes(buf))


def test_k_beyond_ntotal_pads_and_small_sets_build(rng):
    # FAISS refuses to build at most 100 vectors and to search k > ntotal
    xb = rng.standard_normal((40, 8)).astype(np.float32)
    index = voisin.IndexNNDescentFlat(8, 16)
    index.add(xb)
    index.nndescent.search_L = 40
    D, I = index.search(xb[:3], 50)
    assert_knn_valid(D, I, xb[:3], xb, 50, voisin.METRIC_L2)
    assert (I[:, 40:] == -1).all() and (D[:, 40:] == FLT_MAX).all()


def test_filtered_search_is_exact(pair, data):
    v, _ = pair
    xb, xq = data
    sel = voisin.IDSelectorRange(100, 700)
    D, I = v.search(xq, K, voisin.SearchParameters(sel=sel))
    allowed = np.zeros(N, bool)
    allowed[100:700] = True
    assert_knn_valid(D, I, xq, xb, K, voisin.METRIC_L2, allowed=allowed)
    batch = voisin.IDSelectorBatch(np.arange(0, N, 3))
    D, I = v.search(xq[:5], K, voisin.SearchParameters(sel=batch))
    assert (I % 3 == 0).all()


def test_no_deletes_no_ids_but_reset_and_rebuild(data, rng):
    xb, xq = data
    index = voisin.IndexNNDescentFlat(D_, 16)
    index.add(xb[:500])
    with pytest.raises(NotImplementedError, match="IndexHNSWFlat"):
        index.remove_ids(np.arange(3))
    with pytest.raises(NotImplementedError, match="IndexIDMap"):
        index.add_with_ids(xb[:2], np.array([7, 8]))
    inner = voisin.IndexNNDescentFlat(D_, 16)
    inner.nndescent.search_L = 32
    wrapped = voisin.IndexIDMap(inner)
    wrapped.add_with_ids(xb[:300], np.arange(300) + 1000)
    assert wrapped.search(xb[:2], 1)[1].ravel().tolist() == [1000, 1001]
    # a second add rebuilds the graph over every vector (as FAISS does)
    index.add(xb[500:900])
    assert index.ntotal == 900 and index.nndescent.ntotal == 900
    assert index.nndescent.final_graph.size == 900 * 16
    index.nndescent.search_L = 64
    assert (index.search(xb[[10, 600, 899]], 1)[1].ravel() == [10, 600, 899]).all()
    np.testing.assert_array_equal(index.reconstruct(600), xb[600])
    index.reset()
    assert index.ntotal == 0 and not index.nndescent.has_built
    D, I = index.search(xq[:2], 4)
    assert (I == -1).all()
    index.add(xb[:200])
    assert index.ntotal == 200 and index.search(xb[:1], 1)[1][0, 0] == 0


def test_bad_input_names_the_argument(pair):
    v, _ = pair
    with pytest.raises(ValueError, match="x"):
        v.search(np.zeros((2, D_ + 1), np.float32), 3)
    with pytest.raises(ValueError, match="k"):
        v.search(np.zeros((2, D_), np.float32), 0)
    bad = np.zeros((2, D_), np.float32)
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="x"):
        v.search(bad, 3)
    with pytest.raises((ValueError, TypeError), match="nndescent.search_L"):
        v.nndescent.search_L = -1
    with pytest.raises((ValueError, TypeError), match="K"):
        voisin.IndexNNDescentFlat(8, 0)
    with pytest.raises(TypeError, match="params"):
        v.search(np.zeros((1, D_), np.float32), 3, params=voisin.SearchParametersHNSW(efSearch=8))
    with pytest.raises(ValueError, match="metric"):
        voisin.IndexNNDescentFlat(8, 16, 99)


def test_pickle_keeps_the_graph(pair, data):
    v, _ = pair
    _, xq = data
    back = pickle.loads(pickle.dumps(v))
    np.testing.assert_array_equal(back.nndescent.final_graph, v.nndescent.final_graph)
    np.testing.assert_array_equal(back.search(xq[:5], 4)[1], v.search(xq[:5], 4)[1])
    buf = io.BytesIO()
    voisin.write_index(v, buf)
    assert voisin.deserialize_index(buf.getvalue()).ntotal == v.ntotal


@settings(max_examples=12, deadline=None)
@given(n=st.integers(1, 160), k=st.integers(1, 12), seed=st.integers(0, 2 ** 16),
       ip=st.booleans())
def test_results_are_valid_neighbours(n, k, seed, ip):
    """Whatever the size (exact graphs below 101 vectors, NN-Descent above), every row
    holds distinct stored ids with their exact distances, sorted, padded with -1."""
    rng = np.random.default_rng(seed)
    xb = rng.standard_normal((n, 6)).astype(np.float32)
    metric = voisin.METRIC_INNER_PRODUCT if ip else voisin.METRIC_L2
    index = voisin.IndexNNDescentFlat(6, 8, metric)
    index.add(xb)
    xq = rng.standard_normal((4, 6)).astype(np.float32)
    D, I = index.search(xq, k)
    m = min(k, n)
    assert (I[:, m:] == -1).all()
    real = I[:, :m]
    assert ((real >= 0) & (real < n)).all()
    assert all(len(set(r)) == m for r in real)
    dist = xq @ xb.T if ip else ((xq[:, None] - xb[None]) ** 2).sum(-1)
    np.testing.assert_allclose(D[:, :m], np.take_along_axis(dist, real, 1), rtol=1e-4, atol=1e-4)
    step = np.diff(D[:, :m], axis=1)
    assert ((-step if ip else step) >= 0).all()


def test_threaded_batches_match_one_thread(pair, data):
    v, _ = pair
    xb, xq = data
    v.nndescent.search_L = 32
    many = np.tile(xq, (3, 1))
    voisin.omp_set_num_threads(2)
    D2, I2 = v.search(many, K)
    voisin.omp_set_num_threads(1)
    D1, I1 = v.search(many, K)
    np.testing.assert_array_equal(I1, I2)
    np.testing.assert_array_equal(D1, D2)
    np.testing.assert_array_equal(I1[:100], I1[100:200])


def test_broad_filters_walk_the_graph(pair, data, monkeypatch):
    """A filter that keeps most vectors walks the graph (filtering.hnsw_plan) with a pool
    widened by 1 / selectivity, and a walk that comes back short is answered exactly."""
    from voisin.filtering import hnsw_plan
    from voisin.kernels import graphs as KG
    v, _ = pair
    xb, xq = data
    v.nndescent.search_L = 32
    allowed = np.ones(N, bool)
    allowed[:200] = False
    assert hnsw_plan(int(allowed.sum()), N, 32, 16)[0] == "traverse"
    calls = []
    real = KG.nndescent_search_filtered

    def spy(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(KG, "nndescent_search_filtered", spy)
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

    monkeypatch.setattr(KG, "nndescent_search_filtered", nothing)
    D2, I2 = v.search(xq[:4], K, params)
    assert_knn_valid(D2, I2, xq[:4], xb, K, voisin.METRIC_L2, allowed=allowed)


def test_searches_during_rebuilds_see_whole_states(rng):
    """A search running while another thread adds (which rebuilds the graph) or resets
    reads one published state: valid ids, never an exception."""
    import threading
    xb = rng.standard_normal((900, 8)).astype(np.float32)
    for index in (voisin.IndexNNDescentFlat(8, 8), voisin.IndexNSGFlat(8, 8)):
        index.add(xb[:300])
        errors, stop = [], threading.Event()

        def reader():
            try:
                while not stop.is_set():
                    D, I = index.search(xb[:20], 5)
                    assert ((I >= -1) & (I < 900)).all()
                    assert not np.isnan(D).any()
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=reader) for _ in range(2)]
        for t in threads:
            t.start()
        index.add(xb[300:600])
        index.reset()
        index.add(xb[:900])
        stop.set()
        for t in threads:
            t.join()
        assert not errors, errors
        assert index.ntotal == 900
