"""IndexBinaryHash / IndexBinaryMultiHash: the same candidates as FAISS (equal
distances, range counts), exact on the buckets they probe, filters, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import voisin
from binary_cases import hamming_matrix, random_codes
from voisin.indexes.binary_hash import code_keys, flip_masks

faiss = pytest.importorskip("faiss")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(9)
    xb = random_codes(rng, 4000, 8)
    xq = xb[:60] ^ (rng.random((60, 8)) < 0.04).astype(np.uint8)
    return xb, xq


def _reference_hash(xq, xb, b, nflip, nhash=1):
    """Brute force over the codes whose key in some table is within nflip bits."""
    kq, kb = code_keys(xq, b, nhash), code_keys(xb, b, nhash)
    full = hamming_matrix(xq, xb)
    near = np.zeros(full.shape, bool)
    for t in range(nhash):
        x = kq[:, t][:, None] ^ kb[:, t][None, :]
        pop = np.unpackbits(x.view(np.uint8).reshape(*x.shape, 8), axis=-1).sum(-1)
        near |= pop <= nflip
    return full, near


@pytest.mark.parametrize("nflip", [0, 1, 2])
@pytest.mark.parametrize("kind", ["hash", "multi"])
def test_against_faiss_and_reference(data, nflip, kind):
    xb, xq = data
    if kind == "hash":
        ours, ref, args = voisin.IndexBinaryHash(64, 10), faiss.IndexBinaryHash(64, 10), (10, 1)
    else:
        ours, ref = voisin.IndexBinaryMultiHash(64, 4, 12), faiss.IndexBinaryMultiHash(64, 4, 12)
        args = (12, 4)
    ours.add(xb)
    ref.add(xb)
    ours.nflip = ref.nflip = nflip
    D, I = ours.search(xq, 5)
    Df, If = ref.search(xq, 5)
    np.testing.assert_array_equal(D, Df)
    full, near = _reference_hash(xq, xb, args[0], nflip, args[1])
    cand = np.where(near, full, np.iinfo(np.int32).max)
    np.testing.assert_array_equal(D, np.sort(cand, axis=1)[:, :5])
    found = I >= 0
    assert near[np.nonzero(found)[0], I[found]].all()
    lims, Dr, Ir = ours.range_search(xq, 20)
    lf, _, Ifr = ref.range_search(xq, 20)
    np.testing.assert_array_equal(lims, lf)
    for i in range(xq.shape[0]):
        a = slice(int(lims[i]), int(lims[i + 1]))
        np.testing.assert_array_equal(np.sort(Ir[a]), np.sort(Ifr[a]))
        np.testing.assert_array_equal(np.sort(Ir[a]), np.flatnonzero(near[i] & (full[i] < 20)))


def test_hash_ids_filter_remove_reconstruct(data):
    xb, xq = data
    index = voisin.IndexBinaryHash(64, 8)
    ids = np.arange(xb.shape[0], dtype=np.int64) * 2 + 1
    index.add_with_ids(xb, ids)
    index.nflip = 1
    D, I = index.search(xb[:5], 1)
    assert I[:, 0].tolist() == ids[:5].tolist() and (D == 0).all()
    sel = voisin.IDSelectorRange(0, 2001)
    D, I = index.search(xq, 5, params=voisin.SearchParameters(sel=sel))
    assert ((I < 2001)).all()
    np.testing.assert_array_equal(index.reconstruct(int(ids[10])), xb[10])
    assert index.remove_ids(ids[:100]) == 100
    assert index.ntotal == xb.shape[0] - 100
    assert not np.isin(index.search(xb[:100], 3)[1], ids[:100]).any()
    with pytest.raises(ValueError, match="key"):
        index.reconstruct(int(ids[0]))
    index.reset()
    assert index.ntotal == 0 and index.hashtable_size() == 0


def test_multihash_filter_and_storage(data):
    xb, xq = data
    index = voisin.IndexBinaryMultiHash(64, 3, 16)
    index.add(xb[:2000])
    index.add(xb[2000:])
    assert index.storage.ntotal == xb.shape[0]
    p = voisin.SearchParameters(sel=voisin.IDSelectorRange(1000, 3000))
    D, I = index.search(xq, 4, params=p)
    assert ((I == -1) | ((I >= 1000) & (I < 3000))).all()
    np.testing.assert_array_equal(index.reconstruct(7), xb[7])
    with pytest.raises(NotImplementedError, match="remove"):
        index.remove_ids(np.array([1]))


def test_flip_masks():
    m = flip_masks(6, 2)
    assert m.size == 1 + 6 + 15 and np.unique(m).size == m.size
    assert m[0] == 0
    assert all(bin(int(v)).count("1") <= 2 for v in m)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 80), b=st.integers(1, 16), nflip=st.integers(0, 2),
       seed=st.integers(0, 999))
def test_hash_property(n, b, nflip, seed):
    rng = np.random.default_rng(seed)
    xb = random_codes(rng, n, 2)
    index = voisin.IndexBinaryHash(16, b)
    index.nflip = nflip
    index.add(xb)
    D, I = index.search(xb, 1)
    np.testing.assert_array_equal(D[:, 0], 0)  # every code finds itself (or a twin)
    np.testing.assert_array_equal(index.reconstruct_batch(I[:, 0]), xb)


def test_bad_input():
    with pytest.raises(ValueError, match="b"):
        voisin.IndexBinaryHash(16, 17)
    with pytest.raises(ValueError, match="b"):
        voisin.IndexBinaryHash(16, 0)
    with pytest.raises(ValueError, match="nhash"):
        voisin.IndexBinaryMultiHash(32, 3, 12)
    with pytest.raises(ValueError, match="multiple of 8"):
        voisin.IndexBinaryHash(20, 4)
    index = voisin.IndexBinaryHash(64, 40)
    index.add(np.zeros((2, 8), np.uint8))
    index.nflip = 30
    with pytest.raises(ValueError, match="nflip"):
        index.search(np.zeros((1, 8), np.uint8), 1)
    with pytest.raises(TypeError, match="uint8"):
        index.search(np.zeros((1, 8), np.float32), 1)
