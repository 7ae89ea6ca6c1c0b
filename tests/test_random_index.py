"""IndexRandom against faiss-cpu: the same random results, its semantics, bad input."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import voisin

faiss = pytest.importorskip("faiss")


@pytest.mark.parametrize("seed,metric,ntotal,k", [
    (1234, voisin.METRIC_L2, 1000, 5),
    (-7, voisin.METRIC_INNER_PRODUCT, 10, 10),
    (2 ** 40 + 3, voisin.METRIC_L2, 3, 1),
    (99, voisin.METRIC_L2, 100000, 64),
])
def test_same_results_as_faiss(seed, metric, ntotal, k):
    x = np.random.default_rng(1).normal(size=(60, 12)).astype("float32")
    ours, ref = voisin.IndexRandom(12, ntotal, seed, metric), faiss.IndexRandom(12, ntotal, seed, metric)
    D, I = ours.search(x, k)
    Df, If = ref.search(x, k)
    np.testing.assert_array_equal(I, If)
    np.testing.assert_array_equal(D, Df)
    for key in (0, ntotal - 1):
        np.testing.assert_array_equal(ours.reconstruct(key), ref.reconstruct(key))


def test_semantics():
    index = voisin.IndexRandom(4, 50)
    assert (index.is_trained, index.ntotal, index.seed) == (True, 50, 1234)
    x = np.random.default_rng(2).normal(size=(20, 4)).astype("float32")
    D, I = index.search(x, 50)
    assert all(len(set(row)) == 50 for row in I)  # k distinct ids in [0, ntotal)
    assert ((I >= 0) & (I < 50)).all()
    assert (np.diff(D, axis=1) > 0).all() and (D > 0).all()
    np.testing.assert_array_equal(index.search(x[3:4], 50)[1][0], I[3])  # a query's own answer
    ip = voisin.IndexRandom(4, 50, metric=voisin.METRIC_INNER_PRODUCT)
    assert (np.diff(ip.search(x, 5)[0], axis=1) < 0).all()
    index.add(x)
    assert index.ntotal == 70
    r = index.reconstruct_n(0, 3)
    assert r.shape == (3, 4) and ((r >= 0) & (r <= 1)).all()
    index.reset()
    assert index.ntotal == 0
    back = pickle.loads(pickle.dumps(voisin.IndexRandom(4, 9, 5)))
    assert (back.ntotal, back.seed) == (9, 5)


def test_bad_input():
    index = voisin.IndexRandom(4, 5)
    x = np.zeros((1, 4), np.float32)
    with pytest.raises(ValueError, match="k must be <= ntotal"):
        index.search(x, 6)
    with pytest.raises(ValueError, match="k must be <= ntotal"):
        voisin.IndexRandom(4, 0).search(x, 1)
    with pytest.raises(NotImplementedError, match="search parameters"):
        index.search(x, 1, params=voisin.SearchParameters())
    with pytest.raises(ValueError, match="out of range"):
        index.reconstruct(5)
    with pytest.raises(NotImplementedError):
        index.add_with_ids(x, [3])
    with pytest.raises(ValueError, match="ntotal"):
        voisin.IndexRandom(4, -1)
    with pytest.raises(ValueError, match="dimension"):
        index.search(np.zeros((1, 3), np.float32), 1)
