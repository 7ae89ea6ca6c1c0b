"""IndexBinaryIVF: recall against faiss-cpu at the same knobs, exact behaviour at
nprobe = nlist, filters, deletes, reconstruct, range search, bad input."""

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
    rng = np.random.default_rng(11)
    xb = clustered_codes(rng, 8000, 32, ncenters=100, flip=0.15)
    xq = xb[rng.integers(0, xb.shape[0], 100)] ^ (rng.random((100, 32)) < 0.03).astype(np.uint8)
    gt, _ = brute_knn(xq, xb, 10)
    return xb, xq, gt


@pytest.fixture(scope="module")
def pair(data):
    xb, _, _ = data
    ours = voisin.IndexBinaryIVF(voisin.IndexBinaryFlat(256), 256, 32)
    ours.train(xb)
    ours.add(xb)
    ref = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(256), 256, 32)
    ref.train(xb)
    ref.add(xb)
    return ours, ref


@pytest.mark.parametrize("nprobe", [1, 4])
def test_recall_not_worse_than_faiss(pair, data, nprobe):
    ours, ref = pair
    _, xq, gt = data
    ours.nprobe = ref.nprobe = nprobe
    r_ours = recall(ours.search(xq, 10)[0], gt)
    r_ref = recall(ref.search(xq, 10)[0], gt)
    assert r_ours >= r_ref - 0.02, (r_ours, r_ref)


def test_all_lists_is_exact(pair, data):
    ours, _ = pair
    xb, xq, _ = data
    D, I = ours.search(xq, 10, params=voisin.SearchParametersIVF(nprobe=32))
    check_knn(D, I, xq, xb, 10)
    lims, Dr, Ir = ours.range_search(xq[:10], 40, params=voisin.SearchParametersIVF(nprobe=32))
    full = hamming_matrix(xq[:10], xb)
    assert lims[-1] == (full < 40).sum()
    for i in range(10):
        np.testing.assert_array_equal(np.sort(Ir[lims[i]:lims[i + 1]]),
                                      np.flatnonzero(full[i] < 40))


def test_max_codes_and_range_against_faiss(pair, data):
    _, ref = pair
    _, xq, _ = data
    # FAISS's trained lists, loaded: both probe the same lists, so results are equal
    ours = voisin.deserialize_index_binary(faiss.serialize_index_binary(ref))
    ours.nprobe = ref.nprobe = 3
    D, I = ours.search(xq, 10)
    Df, If = ref.search(xq, 10)
    np.testing.assert_array_equal(D, Df)
    lims, D, I = ours.range_search(xq, 50)
    lf, Df, If = ref.range_search(xq, 50)
    np.testing.assert_array_equal(lims, lf)
    for i in range(xq.shape[0]):
        a = slice(int(lims[i]), int(lims[i + 1]))
        np.testing.assert_array_equal(np.sort(I[a]), np.sort(If[a]))
    p = voisin.SearchParametersIVF(nprobe=32, max_codes=300)
    D, I = ours.search(xq, 5, params=p)
    assert (I >= 0).all()  # at least a list's worth of codes was scanned


def test_filter_remove_reconstruct(data):
    xb, xq, _ = data
    index = voisin.IndexBinaryIVF(voisin.IndexBinaryFlat(256), 256, 16)
    index.train(xb)
    ids = np.arange(xb.shape[0], dtype=np.int64) * 3 + 7
    index.add_with_ids(xb, ids)
    index.nprobe = 16
    allowed = np.zeros(xb.shape[0], bool)
    allowed[::5] = True
    sel = voisin.IDSelectorBatch(ids[allowed])
    D, I = index.search(xq, 6, params=voisin.SearchParametersIVF(sel=sel))
    check_knn(D, (I - 7) // 3, xq, xb, 6, allowed)
    np.testing.assert_array_equal(index.reconstruct(int(ids[42])), xb[42])
    assert index.remove_ids(ids[:1000]) == 1000
    assert index.ntotal == xb.shape[0] - 1000
    D, I = index.search(xq, 6)
    check_knn(D, (I - 7) // 3 - 1000, xq, xb[1000:], 6)
    with pytest.raises(ValueError, match="key"):
        index.reconstruct(int(ids[0]))
    index.reset()
    assert index.ntotal == 0 and index.is_trained


@settings(max_examples=15, deadline=None)
@given(n=st.integers(8, 200), nlist=st.integers(1, 8), k=st.integers(1, 20),
       seed=st.integers(0, 1000))
def test_ivf_property_exact_at_full_probe(n, nlist, k, seed):
    rng = np.random.default_rng(seed)
    xb = rng.integers(0, 256, (n, 4), dtype=np.uint8)
    index = voisin.IndexBinaryIVF(voisin.IndexBinaryFlat(32), 32, nlist)
    index.cp.min_points_per_centroid = 0  # tiny sets: no warning
    index.train(xb)
    index.add(xb)
    index.nprobe = nlist
    D, I = index.search(xb[:5], k)
    check_knn(D, I, xb[:5], xb, k)


def test_bad_input(data):
    xb, _, _ = data
    index = voisin.IndexBinaryIVF(voisin.IndexBinaryFlat(256), 256, 8)
    assert not index.is_trained
    with pytest.raises(RuntimeError, match="train"):
        index.add(xb[:10])
    with pytest.raises(ValueError, match="nlist"):
        index.train(xb[:4])
    with pytest.raises(TypeError, match="quantizer"):
        voisin.IndexBinaryIVF(voisin.IndexFlatL2(256), 256, 8)
    with pytest.raises(ValueError, match="quantizer"):
        voisin.IndexBinaryIVF(voisin.IndexBinaryFlat(128), 256, 8)
    index.train(xb)
    index.add(xb[:100])
    with pytest.raises(TypeError, match="params"):
        index.search(xb[:1], 1, params=voisin.SearchParametersHNSW(efSearch=3))
    with pytest.raises(ValueError, match="nprobe"):
        index.search(xb[:1], 1, params=voisin.SearchParametersIVF(nprobe=0))
    with pytest.raises(TypeError, match="IndexBinaryIVF"):
        voisin.IndexBinaryIDMap(voisin.IndexBinaryIVF(voisin.IndexBinaryFlat(256), 256, 8))
