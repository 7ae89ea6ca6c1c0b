"""IndexHNSW2Level (HNSW over Index2Layer codes) against faiss-cpu: faiss-written files
searched with faiss's results, voisin-written files searched by faiss with voisin's,
recall of voisin's own build, the factory strings, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import brute_force
from hypothesis import given, settings
from hypothesis import strategies as st

import voisin

faiss = pytest.importorskip("faiss")

D_ = 16
N = 2000
KEYS = ["HNSW16_32+PQ4", "HNSW16_2x4+PQ8", "HNSW8,64+PQ8"]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    centers = 3.0 * rng.standard_normal((20, D_))
    xb = centers[rng.integers(20, size=N)] + rng.standard_normal((N, D_))
    xq = centers[rng.integers(20, size=60)] + rng.standard_normal((60, D_))
    return xb.astype(np.float32), xq.astype(np.float32)


@pytest.fixture(scope="module")
def faiss_built(data, faiss_single_thread):
    xb, _ = data
    out = {}
    for key in KEYS:
        f = faiss.index_factory(D_, key)
        f.train(xb)
        f.add(xb)
        out[key] = f
    return out


def tie_recall(I, xq, rows, k=10):
    """Share of the results as near as the exact k-th neighbour among ``rows`` (the
    decoded vectors; identical codes tie exactly)."""
    Dt, _ = brute_force(xq, rows, k, voisin.METRIC_L2)
    d = ((rows[I] - xq[:, None]) ** 2).sum(-1)
    return float((d <= Dt[:, -1:] + 1e-4 * np.maximum(1, Dt[:, -1:])).mean())


@pytest.mark.parametrize("key", KEYS)
def test_faiss_file_searched_like_faiss(data, faiss_built, key):
    _, xq = data
    f = faiss_built[key]
    f.hnsw.efSearch = 24
    v = voisin.deserialize_index(faiss.serialize_index(f))
    assert isinstance(v, voisin.IndexHNSW2Level)
    st_f = faiss.downcast_index(f.storage)
    assert v.storage.q1.nlist == st_f.q1.nlist and v.storage.pq.M == st_f.pq.M
    np.testing.assert_array_equal(v.storage.codes,
                                  faiss.vector_to_array(st_f.codes).reshape(N, -1))
    D1, I1 = v.search(xq, 10)
    D2, I2 = f.search(xq, 10)
    np.testing.assert_array_equal(I1, I2)
    np.testing.assert_allclose(D1, D2, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(v.reconstruct_n(0, 50), f.reconstruct_n(0, 50), atol=1e-5)
    assert bytes(voisin.serialize_index(v, checksum=False)) == bytes(faiss.serialize_index(f))


@settings(max_examples=15, deadline=None)
@given(k=st.integers(1, 50), extra=st.integers(0, 60))
def test_any_efsearch_matches_faiss(data, faiss_built, k, extra):
    # efSearch >= k: below k faiss 1.15.1 mixes efSearch and k in its stopping rule, and
    # voisin's HNSW (every storage, IndexHNSWFlat included) walks at max(efSearch, k)
    _, xq = data
    f = faiss_built["HNSW16_2x4+PQ8"]
    f.hnsw.efSearch = k + extra
    v = voisin.deserialize_index(faiss.serialize_index(f))
    D1, I1 = v.search(xq[:20], k)
    D2, I2 = f.search(xq[:20], k)
    np.testing.assert_array_equal(I1, I2)
    np.testing.assert_allclose(D1, D2, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("key", KEYS)
def test_voisin_build_recall_and_file_read_by_faiss(data, faiss_built, key):
    xb, xq = data
    v = voisin.index_factory(D_, key)
    assert isinstance(v, voisin.IndexHNSW2Level)
    v.train(xb)
    v.add(xb)
    v.hnsw.efSearch = 32
    f = faiss_built[key]
    f.hnsw.efSearch = 32
    D, I = v.search(xq, 10)
    ours = tie_recall(I, xq, v.reconstruct_n(0, N))
    theirs = tie_recall(f.search(xq, 10)[1], xq, f.reconstruct_n(0, N))
    assert ours >= theirs - 0.03 and ours >= 0.85
    rec = v.reconstruct_n(0, N)[I]
    np.testing.assert_allclose(D, ((rec - xq[:, None]) ** 2).sum(-1), rtol=1e-4, atol=1e-3)
    buf = voisin.serialize_index(v)
    assert bytes(buf[:4]) == b"IHN2"  # (faiss's downcast_index does not know this class)
    ref = faiss.deserialize_index(buf)
    assert isinstance(faiss.downcast_index(ref.storage), faiss.Index2Layer)
    ref.hnsw.efSearch = 32
    D2, I2 = ref.search(xq, 10)
    np.testing.assert_array_equal(I, I2)
    np.testing.assert_allclose(D, D2, rtol=1e-5, atol=1e-4)


def test_codes_are_the_index2layer_codes(data):
    xb, _ = data
    v = voisin.index_factory(D_, "HNSW16_32+PQ4")
    v.train(xb)
    v.add(xb[:500])
    v.add(xb[500:800])
    np.testing.assert_array_equal(v.storage.codes, v.storage.sa_encode(xb[:800]))
    np.testing.assert_allclose(v.reconstruct_n(0, 800), v.storage.sa_decode(v.storage.codes))
    assert v.ntotal == v.storage.ntotal == 800


def test_remove_filters_and_reset(data):
    xb, xq = data
    v = voisin.index_factory(D_, "HNSW16_32+PQ8")
    v.train(xb)
    v.add(xb)
    allowed = np.arange(0, N, 4)
    D, I = v.search(xq, 10, voisin.SearchParametersHNSW(sel=voisin.IDSelectorBatch(allowed),
                                                        efSearch=64))
    assert np.isin(I[I >= 0], allowed).all()
    assert v.remove_ids(voisin.IDSelectorRange(0, 100)) == 100
    assert v.ntotal == N - 100 and v.storage.ntotal == N - 100
    ref = faiss.deserialize_index(voisin.serialize_index(v))
    v.hnsw.efSearch = ref.hnsw.efSearch = 48
    np.testing.assert_array_equal(v.search(xq, 5)[1], ref.search(xq, 5)[1])
    v.reset()
    assert v.ntotal == 0 and v.storage.ntotal == 0 and v.is_trained
    assert (v.search(xq[:2], 3)[1] == -1).all()


def test_bad_input(data):
    xb, _ = data
    q = voisin.IndexFlatL2(D_)
    v = voisin.IndexHNSW2Level(q, 32, 4, 16)
    with pytest.raises(RuntimeError, match="not trained"):
        v.add(xb)
    with pytest.raises(ValueError, match="x"):
        v.train(xb[:, :8])
    with pytest.raises(TypeError, match="quantizer"):
        voisin.IndexHNSW2Level(None, 32, 4, 16)
    with pytest.raises(ValueError, match="quantizer"):
        voisin.IndexHNSW2Level(voisin.IndexFlatIP(D_), 32, 4, 16)
    with pytest.raises(ValueError, match="nlist"):
        voisin.IndexHNSW2Level(q, 0, 4, 16)
    with pytest.raises(ValueError, match="M"):
        voisin.IndexHNSW2Level(q, 32, 5, 16)
    with pytest.raises(TypeError, match="m_pq"):
        voisin.IndexHNSW2Level(q, 32, "4", 16)
    for bad in ("HNSW16_32+PQ5", "HNSW1_32+PQ4", "HNSW16_2x0+PQ4", "HNSW16_32+PQ4,Flat"):
        with pytest.raises(ValueError, match="HNSW|PQ|2x|unexpected"):
            voisin.index_factory(D_, bad)
    with pytest.raises(ValueError, match="L2 only"):
        voisin.index_factory(D_, "HNSW16_32+PQ4", voisin.METRIC_INNER_PRODUCT)


def test_damaged_files(faiss_built):
    buf = bytes(faiss.serialize_index(faiss_built["HNSW16_32+PQ4"]))
    # the storage swapped for a plain IndexPQ: refused, naming the storage
    pq = faiss.IndexPQ(D_, 4, 8)
    pq.train(np.random.default_rng(0).random((300, D_), dtype=np.float32))
    pq.add(np.zeros((N, D_), np.float32))
    pbuf = bytes(faiss.serialize_index(pq))
    bad = buf[:buf.index(b"Ix2L")] + pbuf
    with pytest.raises(ValueError, match="IndexHNSW2Level: the storage"):
        voisin.deserialize_index(bad)
    # a truncated file
    with pytest.raises(ValueError):
        voisin.deserialize_index(buf[:len(buf) // 2])


@pytest.mark.parametrize("key", ["HNSW16_32+PQ4", "HNSW16_2x4+PQ8"])
def test_empty_and_untrained_files_both_ways(data, key):
    xb, xq = data
    for trained in (False, True):
        f = faiss.index_factory(D_, key)
        if trained:
            f.train(xb)
        buf = bytes(faiss.serialize_index(f))
        v = voisin.deserialize_index(buf)
        assert isinstance(v, voisin.IndexHNSW2Level)
        assert v.is_trained == trained and v.ntotal == 0
        assert bytes(voisin.serialize_index(v, checksum=False)) == buf
        if not trained:
            v.train(xb)
        v.add(xb[:600])
        ref = faiss.deserialize_index(voisin.serialize_index(v))
        np.testing.assert_array_equal(ref.search(xq, 5)[1], v.search(xq, 5)[1])
    assert not faiss.deserialize_index(voisin.serialize_index(voisin.index_factory(D_, key))).is_trained
