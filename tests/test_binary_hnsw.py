"""IndexBinaryHNSW: tie-aware recall against faiss-cpu at the same M / efConstruction /
efSearch, filters, exact range search, knobs, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import voisin
from binary_cases import brute_knn, check_knn, clustered_codes, hamming_matrix, recall

faiss = pytest.importorskip("faiss")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    xb = clustered_codes(rng, 6000, 32, ncenters=60, flip=0.2)
    xq = xb[rng.integers(0, xb.shape[0], 150)] ^ (rng.random((150, 32)) < 0.03).astype(np.uint8)
    gt, _ = brute_knn(xq, xb, 10)
    return xb, xq, gt


@pytest.fixture(scope="module")
def pair(data):
    xb, _, _ = data
    ours = voisin.IndexBinaryHNSW(256, 16)
    ours.add(xb[:2500])
    ours.add(xb[2500:])  # two adds: the second links into the first's graph
    ref = faiss.IndexBinaryHNSW(256, 16)
    ref.add(xb)
    return ours, ref


@pytest.mark.parametrize("ef", [16, 64])
def test_recall_not_worse_than_faiss(pair, data, ef):
    ours, ref = pair
    _, xq, gt = data
    ours.hnsw.efSearch = ref.hnsw.efSearch = ef
    r_ours = recall(ours.search(xq, 10)[0], gt)
    r_ref = recall(ref.search(xq, 10)[0], gt)
    assert r_ours >= r_ref - 0.02, (r_ours, r_ref)


def test_walking_faiss_graph(pair, data):
    _, ref = pair
    _, xq, gt = data
    ours = voisin.deserialize_index_binary(faiss.serialize_index_binary(ref))
    for ef in (16, 64):
        ours.hnsw.efSearch = ref.hnsw.efSearch = ef
        assert recall(ours.search(xq, 10)[0], gt) >= recall(ref.search(xq, 10)[0], gt) - 0.02


def test_graph_shape_and_knobs(pair, data):
    ours, _ = pair
    xb, xq, _ = data
    h = ours.hnsw
    assert h.levels.shape == (xb.shape[0],)
    assert h.neighbors.shape == (int(h.offsets[-1]),)
    nb = h.neighbors
    assert nb.min() >= -1 and nb.max() < xb.shape[0]
    assert 0 <= h.entry_point < xb.shape[0] and h.levels[h.entry_point] == h.max_level + 1
    D1, _ = ours.search(xq, 10, params=voisin.SearchParametersHNSW(efSearch=200))
    # a wide walk is (almost) exact
    gt, _ = brute_knn(xq, xb, 10)
    assert recall(D1, gt) >= 0.99


def test_filters_range_reconstruct(pair, data):
    ours, _ = pair
    xb, xq, _ = data
    allowed = np.zeros(xb.shape[0], bool)
    allowed[::2] = True
    p = voisin.SearchParametersHNSW(efSearch=64, sel=voisin.IDSelectorBatch(np.flatnonzero(allowed)))
    D, I = ours.search(xq, 10, params=p)
    assert allowed[I[I >= 0]].all()
    gt, _ = brute_knn(xq, xb, 10, allowed)
    assert recall(D, gt) >= 0.9
    # a very selective filter is answered exactly
    few = np.zeros(xb.shape[0], bool)
    few[:100] = True
    D, I = ours.search(xq, 5, params=voisin.SearchParameters(sel=voisin.IDSelectorRange(0, 100)))
    check_knn(D, I, xq, xb, 5, few)
    lims, Dr, Ir = ours.range_search(xq[:5], 60)
    full = hamming_matrix(xq[:5], xb)
    assert lims[-1] == (full < 60).sum()
    np.testing.assert_array_equal(ours.reconstruct(123), xb[123])
    with pytest.raises(NotImplementedError, match="remove"):
        ours.remove_ids(np.array([1]))


def _strongly_connected(nb0: np.ndarray) -> bool:
    """Whether every node reaches every other through level-0 links."""
    n = nb0.shape[0]
    for start in range(n):
        seen = np.zeros(n, bool)
        seen[start] = True
        todo = [start]
        while todo:
            v = todo.pop()
            for u in nb0[v]:
                if u < 0:
                    break
                if not seen[u]:
                    seen[u] = True
                    todo.append(int(u))
        if not seen.all():
            return False
    return True


@settings(max_examples=12, deadline=None)
@given(n=st.integers(1, 120), M=st.integers(2, 8), k=st.integers(1, 10), seed=st.integers(0, 999))
def test_small_graphs_are_exact_with_wide_walks(n, M, k, seed):
    rng = np.random.default_rng(seed)
    xb = rng.integers(0, 256, (n, 2), dtype=np.uint8)
    index = voisin.IndexBinaryHNSW(16, M)
    index.hnsw.efConstruction = 200
    index.add(xb)
    D, I = index.search(xb[:4], k, params=voisin.SearchParametersHNSW(efSearch=max(200, n)))
    found = I >= 0
    np.testing.assert_array_equal(hamming_matrix(xb[:4], xb)[np.nonzero(found)[0], I[found]],
                                  D[found])
    assert (np.diff(D, axis=1) >= 0).all()
    for row in I:
        assert np.unique(row[row >= 0]).size == (row >= 0).sum()
    nb0 = index.graph_arrays()[0][:n]
    if _strongly_connected(nb0):
        # a walk with ef >= n then visits every node: it is exact
        Dr, _ = brute_knn(xb[:4], xb, k)
        np.testing.assert_array_equal(D, Dr)


def test_idmap_and_reset():
    rng = np.random.default_rng(2)
    xb = rng.integers(0, 256, (300, 4), dtype=np.uint8)
    index = voisin.IndexBinaryIDMap(voisin.IndexBinaryHNSW(32, 8))
    index.add_with_ids(xb, np.arange(300) + 1000)
    D, I = index.search(xb[:3], 1)
    assert I[:, 0].tolist() == [1000, 1001, 1002] and (D == 0).all()
    inner = index.index
    inner.reset()
    assert inner.ntotal == 0 and inner.hnsw.entry_point == -1
    inner.add(xb[:10])
    assert inner.search(xb[:1], 1)[1][0, 0] == 0


def test_bad_input():
    index = voisin.IndexBinaryHNSW(64, 8)
    with pytest.raises(ValueError, match="multiple of 8"):
        voisin.IndexBinaryHNSW(60)
    with pytest.raises(ValueError, match="M"):
        voisin.IndexBinaryHNSW(64, 1)
    index.add(np.zeros((5, 8), np.uint8))
    with pytest.raises(ValueError, match="efSearch"):
        index.search(np.zeros((1, 8), np.uint8), 1, params=voisin.SearchParametersHNSW(efSearch=0))
    with pytest.raises(ValueError, match="bounded_queue"):
        index.search(np.zeros((1, 8), np.uint8), 1,
                     params=voisin.SearchParametersHNSW(bounded_queue=False))
    with pytest.raises(TypeError, match="uint8"):
        index.search(np.zeros((1, 64), np.float32), 1)
    with pytest.raises(NotImplementedError, match="IndexBinaryIDMap"):
        index.add_with_ids(np.zeros((1, 8), np.uint8), np.array([3]))
