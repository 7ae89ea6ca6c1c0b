"""IndexNSGPQ / IndexNSGSQ against faiss-cpu: faiss-written files searched with faiss's
results, voisin-written files searched by faiss with voisin's, recall of voisin's own
build against faiss's, the factory strings, filters, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import brute_force
from hypothesis import given, settings
from hypothesis import strategies as st

import voisin

faiss = pytest.importorskip("faiss")

L2, IP = voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT
D_ = 16
N = 2000
CASES = [("NSG16,PQ8np", L2), ("NSG16,PQ4x4np", L2), ("NSG16,SQ8", L2), ("NSG16,SQ8", IP),
         ("NSG16,SQfp16", L2), ("NSG16_SQ4", IP)]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    centers = 3.0 * rng.standard_normal((20, D_))
    xb = centers[rng.integers(20, size=N)] + rng.standard_normal((N, D_))
    xq = centers[rng.integers(20, size=60)] + rng.standard_normal((60, D_))
    return xb.astype(np.float32), xq.astype(np.float32)


@pytest.fixture(scope="module")
def faiss_built(data, faiss_single_thread):
    xb, _ = data
    out = {}
    for key, metric in CASES:
        f = faiss.index_factory(D_, key, metric)
        f.train(xb)
        f.add(xb)
        out[key, metric] = f
    return out


def recall(I, gt):
    return float(np.mean([len(set(a) & set(b)) / gt.shape[1] for a, b in zip(I, gt)]))


def tie_recall(I, xq, rows, metric, k=10):
    """Share of the results as near as the exact k-th neighbour among ``rows`` (the
    decoded vectors): identical codes make exact ties, which an id recall miscounts."""
    Dt, _ = brute_force(xq, rows, k, metric)
    got = rows[I]
    if metric == L2:
        d = ((got - xq[:, None]) ** 2).sum(-1)
        ok = d <= Dt[:, -1:] + 1e-4 * np.maximum(1, np.abs(Dt[:, -1:]))
    else:
        d = np.einsum("qd,qkd->qk", xq, got)
        ok = d >= Dt[:, -1:] - 1e-4 * np.maximum(1, np.abs(Dt[:, -1:]))
    return float(ok.mean())


def _bytes(index):
    return bytes(faiss.serialize_index(index))


@pytest.mark.parametrize("key,metric", CASES)
def test_faiss_file_searched_like_faiss(data, faiss_built, key, metric):
    _, xq = data
    f = faiss_built[key, metric]
    f.nsg.search_L = 24
    v = voisin.deserialize_index(faiss.serialize_index(f))
    assert type(v).__name__ == type(f).__name__
    assert v.ntotal == f.ntotal and v.nsg.enterpoint == f.nsg.enterpoint
    assert v.nsg.search_L == 24 and v.GK == f.GK and v.nsg.R == f.nsg.R
    np.testing.assert_array_equal(v.codes, faiss.vector_to_array(faiss.downcast_index(f.storage).codes).reshape(N, -1))
    D1, I1 = v.search(xq, 10)
    D2, I2 = f.search(xq, 10)
    # the very same ids, ties included: identical codes (frequent with 4-bit PQ) tie
    # exactly, and the initial pool is sorted in std::sort's order, as faiss sorts it
    np.testing.assert_array_equal(I1, I2)
    np.testing.assert_allclose(D1, D2, rtol=1e-5, atol=1e-4)
    # the decoded vectors are faiss's
    np.testing.assert_allclose(v.reconstruct_n(0, 50), f.reconstruct_n(0, 50), rtol=1e-6, atol=1e-5)
    # and the file comes back byte for byte
    assert bytes(voisin.serialize_index(v, checksum=False)) == _bytes(f)


@settings(max_examples=15, deadline=None)
@given(k=st.integers(1, 40), search_L=st.integers(0, 64))
def test_any_pool_size_matches_faiss(data, faiss_built, k, search_L):
    _, xq = data
    f = faiss_built["NSG16,PQ4x4np", L2]  # many exact ties
    f.nsg.search_L = search_L
    v = voisin.deserialize_index(faiss.serialize_index(f))
    np.testing.assert_array_equal(v.search(xq[:20], k)[1], f.search(xq[:20], k)[1])


@pytest.mark.parametrize("key,metric", CASES)
def test_voisin_build_recall_and_file_read_by_faiss(data, faiss_built, key, metric):
    xb, xq = data
    v = voisin.index_factory(D_, key, metric)
    assert type(v).__name__ == type(faiss_built[key, metric]).__name__
    v.train(xb)
    v.add(xb)
    v.nsg.search_L = 32
    f = faiss_built[key, metric]
    f.nsg.search_L = 32
    # against the exact neighbours among each library's own decoded vectors (the graph
    # can do no better than the codes)
    D, I = v.search(xq, 10)
    ours = tie_recall(I, xq, v.reconstruct_n(0, N), v.metric_type)
    theirs = tie_recall(f.search(xq, 10)[1], xq, f.reconstruct_n(0, N), f.metric_type)
    assert ours >= theirs - 0.03 and ours >= 0.8
    # distances are those of the decoded vectors
    rec = v.reconstruct_n(0, N)[I]
    want = (((rec - xq[:, None]) ** 2).sum(-1) if v.metric_type == L2
            else np.einsum("qd,qkd->qk", xq, rec))
    np.testing.assert_allclose(D, want, rtol=1e-4, atol=1e-3)
    ref = faiss.deserialize_index(voisin.serialize_index(v))
    assert type(ref).__name__ == type(f).__name__
    ref.nsg.search_L = 32
    D2, I2 = ref.search(xq, 10)
    np.testing.assert_array_equal(I, I2)
    np.testing.assert_allclose(D, D2, rtol=1e-5, atol=1e-4)


def test_graph_reaches_every_node(data):
    xb, _ = data
    v = voisin.IndexNSGSQ(D_, voisin.ScalarQuantizer.QT_8bit, 16)
    v.train(xb)
    v.add(xb)
    g = v.graph()
    seen = np.zeros(N, bool)
    seen[v.nsg.enterpoint] = True
    todo = [v.nsg.enterpoint]
    while todo:
        for nb in g[todo.pop()]:
            if nb >= 0 and not seen[nb]:
                seen[nb] = True
                todo.append(nb)
    assert seen.all() and g.shape == (N, 16)


def test_filtered_search_keeps_allowed_ids(data, faiss_built):
    xb, xq = data
    v = voisin.deserialize_index(faiss.serialize_index(faiss_built["NSG16,PQ8np", L2]))
    allowed = np.arange(0, N, 3)
    params = voisin.SearchParameters(sel=voisin.IDSelectorBatch(allowed))
    D, I = v.search(xq, 10, params)
    assert np.isin(I, allowed).all()
    # against the ADC scan of the storage over the same allowed ids
    Ds, Is = v.storage.search(xq, 10, params)
    assert recall(I, Is) >= 0.9


def test_second_add_rebuilds_over_all_vectors(data):
    xb, xq = data
    v = voisin.IndexNSGPQ(D_, 8, 16)
    v.train(xb)
    v.add(xb[:1000])
    v.add(xb[1000:])
    assert v.ntotal == N and v.graph().shape == (N, 16)
    assert v.search(xq, 1)[1].max() < N
    v.reset()
    assert v.ntotal == 0 and v.storage.ntotal == 0 and v.is_trained
    assert (v.search(xq[:2], 3)[1] == -1).all()


def test_bad_input(data):
    xb, _ = data
    v = voisin.IndexNSGPQ(D_, 8, 16)
    with pytest.raises(RuntimeError, match="not trained"):
        v.add(xb)
    with pytest.raises(ValueError, match="x"):
        v.train(xb[:, :8])
    with pytest.raises(ValueError, match="pq_m|M"):
        voisin.IndexNSGPQ(D_, 5, 16)
    with pytest.raises(ValueError, match="R"):
        voisin.IndexNSGPQ(D_, 8, 0)
    with pytest.raises(TypeError, match="pq_m"):
        voisin.IndexNSGPQ(D_, "8", 16)
    with pytest.raises(ValueError, match="metric"):
        voisin.IndexNSGSQ(D_, 0, 16, 99)
    with pytest.raises(ValueError, match="qtype"):
        voisin.IndexNSGSQ(D_, 77, 16)
    v.train(xb)
    with pytest.raises(NotImplementedError, match="ids"):
        v.add_with_ids(xb[:10], np.arange(10))
    v.add(xb[:300])
    with pytest.raises(NotImplementedError):
        v.remove_ids(voisin.IDSelectorRange(0, 5))
    with pytest.raises(ValueError, match="k"):
        v.search(xb[:2], 0)
    with pytest.raises(ValueError, match="nsg.search_L"):
        v.nsg.search_L = -1
    for bad in ("NSG16,PQ5", "NSG16,SQ7", "NSG16,PQ8x4fs"):
        with pytest.raises(ValueError, match="NSG|PQ"):
            voisin.index_factory(D_, bad)


def test_damaged_files(faiss_built):
    buf = bytearray(faiss.serialize_index(faiss_built["NSG16,SQ8", L2]))
    # the storage of an NSG-PQ file in an NSG-SQ one: refused, naming the storage
    pq = bytes(faiss.serialize_index(faiss_built["NSG16,PQ8np", L2]))
    bad = bytes(buf[:bytes(buf).index(b"IxSQ")]) + pq[pq.index(b"IxPq"):]
    with pytest.raises(ValueError, match="IndexNSGSQ: the storage"):
        voisin.deserialize_index(bad)
    # a neighbour id out of range
    at = bytes(buf).index(b"INSs") + 4 + 33 + 4 + 1 + 4 * 10 + 1
    bad = bytearray(buf)
    bad[at:at + 4] = (N + 5).to_bytes(4, "little")
    with pytest.raises(ValueError, match="nsg graph"):
        voisin.deserialize_index(bytes(bad))


@settings(max_examples=60, deadline=None)
@given(d=st.lists(st.integers(0, 6), min_size=0, max_size=200))
def test_pool_sort_is_a_sort_and_stable_on_short_runs(d):
    from voisin.kernels.graphs import std_sort_pool
    n = len(d)
    pd = np.array(d + [0], dtype=np.float32)
    pid = np.arange(n + 1, dtype=np.int32)
    pf = np.ones(n + 1, dtype=np.bool_)
    std_sort_pool(pid, pd, pf, n)
    assert sorted(pid[:n].tolist()) == list(range(n))
    np.testing.assert_array_equal(pd[:n], np.sort(np.array(d, dtype=np.float32)))
    np.testing.assert_array_equal(pd[:n], np.array(d, dtype=np.float32)[pid[:n]])
    if n <= 16:  # GCC's std::sort is an insertion sort there: stable
        np.testing.assert_array_equal(pid[:n], np.argsort(np.array(d), kind="stable"))


@pytest.mark.parametrize("key", ["NSG16,PQ8np", "NSG16,SQ8"])
def test_empty_and_untrained_files_both_ways(data, key):
    xb, xq = data
    for trained in (False, True):
        f = faiss.index_factory(D_, key)
        if trained:
            f.train(xb[:1000])
        buf = _bytes(f)
        v = voisin.deserialize_index(buf)
        assert v.is_trained == trained and v.ntotal == 0
        assert bytes(voisin.serialize_index(v, checksum=False)) == buf
        if not trained:
            v.train(xb[:1000])
        v.add(xb[:600])
        ref = faiss.deserialize_index(voisin.serialize_index(v))
        np.testing.assert_array_equal(ref.search(xq, 5)[1], v.search(xq, 5)[1])
    assert not faiss.deserialize_index(voisin.serialize_index(voisin.index_factory(D_, key))).is_trained
