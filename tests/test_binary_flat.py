"""IndexBinaryFlat and the binary ID maps: exact search, filters, deletes, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import voisin
from binary_cases import INT_MAX, brute_knn, check_knn, hamming_matrix, random_codes

faiss = pytest.importorskip("faiss")


@pytest.fixture
def data():
    rng = np.random.default_rng(7)
    return random_codes(rng, 2000, 16), random_codes(rng, 37, 16)


def test_flat_matches_brute_force_and_faiss(data):
    xb, xq = data
    index = voisin.IndexBinaryFlat(128)
    index.add(xb[:1200])
    index.add(xb[1200:])
    assert (index.ntotal, index.code_size, index.d) == (2000, 16, 128)
    D, I = index.search(xq, 10)
    check_knn(D, I, xq, xb, 10)
    ref = faiss.IndexBinaryFlat(128)
    ref.add(xb)
    Df, If = ref.search(xq, 10)
    np.testing.assert_array_equal(D, Df)
    # ties: any id at the reported distance is right, and both pick real neighbours
    full = hamming_matrix(xq, xb)
    np.testing.assert_array_equal(np.take_along_axis(full, If, 1), D)


def test_flat_k_beyond_ntotal_pads_like_faiss():
    rng = np.random.default_rng(1)
    xb = random_codes(rng, 5, 8)
    index = voisin.IndexBinaryFlat(64)
    index.add(xb)
    D, I = index.search(xb[:2], 8)
    assert (I[:, 5:] == -1).all() and (D[:, 5:] == INT_MAX).all()
    check_knn(D, I, xb[:2], xb, 8)
    empty = voisin.IndexBinaryFlat(64)
    D, I = empty.search(xb[:2], 3)
    assert (I == -1).all() and (D == INT_MAX).all()


@pytest.mark.parametrize("code_size", [1, 3, 4, 8, 20, 32])
def test_flat_all_word_widths(code_size):
    rng = np.random.default_rng(code_size)
    xb, xq = random_codes(rng, 300, code_size), random_codes(rng, 9, code_size)
    index = voisin.IndexBinaryFlat(8 * code_size)
    index.add(xb)
    D, I = index.search(xq, 7)
    check_knn(D, I, xq, xb, 7)


def test_range_search_matches_faiss(data):
    xb, xq = data
    index = voisin.IndexBinaryFlat(128)
    index.add(xb)
    ref = faiss.IndexBinaryFlat(128)
    ref.add(xb)
    for radius in (0, 50, 58, 200):
        lims, D, I = index.range_search(xq, radius)
        lf, Df, If = ref.range_search(xq, radius)
        np.testing.assert_array_equal(lims, lf)
        np.testing.assert_array_equal(I, If)
        np.testing.assert_array_equal(D, Df)
        assert D.dtype == np.int32 and lims.dtype == np.uint64
        full = hamming_matrix(xq, xb)
        assert lims[-1] == (full < radius).sum()


def test_filtered_search_and_range(data):
    xb, xq = data
    index = voisin.IndexBinaryFlat(128)
    index.add(xb)
    sel = voisin.IDSelectorBatch(np.arange(0, 2000, 7))
    allowed = np.zeros(2000, bool)
    allowed[::7] = True
    D, I = index.search(xq, 5, params=voisin.SearchParameters(sel=sel))
    check_knn(D, I, xq, xb, 5, allowed)
    lims, Dr, Ir = index.range_search(xq, 60, params=voisin.SearchParameters(sel=sel))
    assert allowed[Ir].all()
    full = hamming_matrix(xq, xb)
    assert lims[-1] == ((full < 60) & allowed).sum()
    none = voisin.SearchParameters(sel=voisin.IDSelectorRange(5000, 6000))
    D, I = index.search(xq, 3, params=none)
    assert (I == -1).all()


def test_remove_reconstruct_reset(data):
    xb, xq = data
    index = voisin.IndexBinaryFlat(128)
    index.add(xb)
    assert index.remove_ids(np.array([0, 5, 1999, 12345])) == 3
    keep = np.setdiff1d(np.arange(2000), [0, 5, 1999])
    assert index.ntotal == keep.size
    np.testing.assert_array_equal(index.reconstruct_n(0, index.ntotal), xb[keep])
    np.testing.assert_array_equal(index.reconstruct(3), xb[keep[3]])
    D, I = index.search(xq, 4)
    check_knn(D, I, xq, xb[keep], 4)
    assert index.remove_ids(voisin.IDSelectorRange(0, 10)) == 10
    with pytest.raises(ValueError, match="key"):
        index.reconstruct(index.ntotal)
    index.reset()
    assert index.ntotal == 0 and index.is_trained
    index.add(xb[:3])
    np.testing.assert_array_equal(index.reconstruct_n(), xb[:3])


def test_search_and_reconstruct(data):
    xb, xq = data
    index = voisin.IndexBinaryFlat(128)
    index.add(xb[:10])
    D, I, R = index.search_and_reconstruct(xq[:2], 12)
    np.testing.assert_array_equal(R[I >= 0], xb[I[I >= 0]])
    assert (R[I < 0] == 0xFF).all()


@pytest.mark.parametrize("cls", ["IndexBinaryIDMap", "IndexBinaryIDMap2"])
def test_idmap_against_faiss(cls, data):
    xb, xq = data
    ids = np.arange(2000, dtype=np.int64) * 11 + 3
    index = getattr(voisin, cls)(voisin.IndexBinaryFlat(128))
    index.add_with_ids(xb, ids)
    ref = getattr(faiss, cls)(faiss.IndexBinaryFlat(128))
    ref.add_with_ids(xb, ids)
    D, I = index.search(xq, 6)
    Df, If = ref.search(xq, 6)
    np.testing.assert_array_equal(D, Df)
    pos = np.searchsorted(ids, I)
    check_knn(D, pos, xq, xb, 6)
    np.testing.assert_array_equal(index.id_map, ids)
    np.testing.assert_array_equal(index.reconstruct(int(ids[17])), xb[17])
    # filters and removals speak in user ids
    sel = voisin.IDSelectorRange(int(ids[100]), int(ids[300]))
    D, I = index.search(xq, 5, params=voisin.SearchParameters(sel=sel))
    assert ((I >= ids[100]) & (I < ids[300])).all()
    assert index.remove_ids(ids[:50]) == 50
    assert ref.remove_ids(ids[:50]) == 50
    D, I = index.search(xq, 6)
    Df, If = ref.search(xq, 6)
    np.testing.assert_array_equal(D, Df)
    lims, Dr, Ir = index.range_search(xq, 55)
    lf, Dfr, Ifr = ref.range_search(xq, 55)
    np.testing.assert_array_equal(lims, lf)
    np.testing.assert_array_equal(np.sort(Ir), np.sort(Ifr))
    with pytest.raises(NotImplementedError, match="add_with_ids"):
        index.add(xb[:2])


@settings(max_examples=25, deadline=None)
@given(nb=st.integers(0, 60), nq=st.integers(1, 5), code_size=st.sampled_from([1, 2, 4, 8, 12]),
       k=st.integers(1, 70), seed=st.integers(0, 2 ** 16))
def test_flat_property(nb, nq, code_size, k, seed):
    rng = np.random.default_rng(seed)
    # few distinct codes: many ties, which must still resolve to valid answers
    xb = rng.integers(0, 4, (nb, code_size), dtype=np.uint8)
    xq = rng.integers(0, 4, (nq, code_size), dtype=np.uint8)
    index = voisin.IndexBinaryFlat(8 * code_size)
    index.add(xb)
    D, I = index.search(xq, k)
    if nb:
        check_knn(D, I, xq, xb, k)
        Dr, Ir = brute_knn(xq, xb, k)
        np.testing.assert_array_equal(I, Ir)  # (distance, id) order, as FAISS
    else:
        assert (I == -1).all()


@settings(max_examples=20, deadline=None)
@given(ids=st.lists(st.integers(0, 2 ** 62), min_size=1, max_size=40, unique=True),
       seed=st.integers(0, 1000))
def test_idmap_property(ids, seed):
    rng = np.random.default_rng(seed)
    ids = np.array(ids, dtype=np.int64)
    xb = random_codes(rng, ids.size, 4)
    index = voisin.IndexBinaryIDMap2(voisin.IndexBinaryFlat(32))
    index.add_with_ids(xb, ids)
    D, I = index.search(xb, 1)
    np.testing.assert_array_equal(D[:, 0], 0)
    np.testing.assert_array_equal(index.reconstruct_batch(I[:, 0]), xb)
    drop = ids[::2]
    assert index.remove_ids(drop) == drop.size
    assert index.ntotal == ids.size - drop.size
    if index.ntotal:
        assert not np.isin(index.search(xb, 1)[1], drop).any()


def test_bad_input():
    with pytest.raises(ValueError, match="multiple of 8"):
        voisin.IndexBinaryFlat(12)
    with pytest.raises((TypeError, ValueError), match="d"):
        voisin.IndexBinaryFlat(0)
    index = voisin.IndexBinaryFlat(32)
    with pytest.raises(TypeError, match="uint8"):
        index.add(np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="4 bytes"):
        index.add(np.zeros((3, 5), np.uint8))
    index.add(np.zeros((3, 4), np.uint8))
    with pytest.raises(ValueError, match="k"):
        index.search(np.zeros((1, 4), np.uint8), 0)
    with pytest.raises(TypeError, match="k"):
        index.search(np.zeros((1, 4), np.uint8), 1.5)
    with pytest.raises(TypeError, match="uint8"):
        index.search(np.zeros((1, 4), np.int64), 1)
    with pytest.raises(TypeError, match="radius"):
        index.range_search(np.zeros((1, 4), np.uint8), 2.5)
    with pytest.raises(TypeError, match="params"):
        index.search(np.zeros((1, 4), np.uint8), 1, params=voisin.SearchParametersIVF(nprobe=2))
    with pytest.raises(NotImplementedError, match="IndexBinaryIDMap"):
        index.add_with_ids(np.zeros((1, 4), np.uint8), np.array([5]))
    with pytest.raises(TypeError, match="binary index"):
        voisin.IndexBinaryIDMap(voisin.IndexFlatL2(4))
    with pytest.raises(ValueError, match="empty"):
        voisin.IndexBinaryIDMap(index)
    m = voisin.IndexBinaryIDMap(voisin.IndexBinaryFlat(32))
    with pytest.raises(ValueError, match="duplicate"):
        m.add_with_ids(np.zeros((2, 4), np.uint8), np.array([1, 1]))
    with pytest.raises(ValueError, match="-1"):
        m.add_with_ids(np.zeros((1, 4), np.uint8), np.array([-1]))
