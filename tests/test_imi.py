"""MultiIndexQuantizer and the inverted multi-index ("IMI2x8,PQ16"): the
multi-sequence search equals brute force over every product centroid, labels
and distances equal faiss-cpu's for the same centroids, IVF recall within noise
of faiss's, FAISS files both ways, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import voisin

faiss = pytest.importorskip("faiss")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(2)
    return rng.random((12000, 16), dtype=np.float32), rng.random((60, 16), dtype=np.float32)


@settings(max_examples=25, deadline=None)
@given(M=st.sampled_from([1, 2, 4]), nbits=st.integers(1, 4), k=st.integers(1, 80), seed=st.integers(0, 50))
def test_multi_sequence_equals_brute_force(M, nbits, k, seed):
    rng = np.random.default_rng(seed)
    q = voisin.MultiIndexQuantizer(8, M, nbits)
    q.pq.set_centroids(rng.normal(size=(M, 1 << nbits, 8 // M)).astype(np.float32))
    q._trained()
    xq = rng.normal(size=(5, 8)).astype(np.float32)
    D, I = q.search(xq, k)
    everything = q.reconstruct_n(0, q.ntotal)
    found = min(k, q.ntotal)
    true = ((xq[:, None, :] - everything[None]) ** 2).sum(-1)
    want = np.sort(true, axis=1)[:, :found]
    np.testing.assert_allclose(D[:, :found], want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.take_along_axis(true, I[:, :found], 1), D[:, :found], rtol=1e-4, atol=1e-5)
    assert (I[:, found:] == -1).all()


def test_labels_and_distances_as_faiss(data):
    x, xq = data
    f = faiss.MultiIndexQuantizer(16, 2, 6)
    f.train(x)
    v = voisin.MultiIndexQuantizer(16, 2, 6)
    v.pq.set_centroids(faiss.vector_to_array(f.pq.centroids))
    v._trained()
    assert v.ntotal == f.ntotal == 4096
    Df, If = f.search(xq, 16)
    Dv, Iv = v.search(xq, 16)
    np.testing.assert_array_equal(Iv, If)
    np.testing.assert_allclose(Dv, Df, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v.reconstruct(int(If[0, 0])), f.reconstruct(int(If[0, 0])))


def test_inverted_multi_index_recall_and_files(tmp_path, data):
    x, xq = data
    _, gt = faiss.knn(xq, x, 10)

    def recall(I):
        return np.mean([len(set(a) & set(b)) / 10 for a, b in zip(I, gt)])
    v = voisin.index_factory(16, "IMI2x6,PQ8")
    assert isinstance(v.quantizer, voisin.MultiIndexQuantizer) and v.nlist == 4096
    assert v.quantizer_trains_alone == 1
    v.train(x)
    v.add(x)
    v.nprobe = 64
    f = faiss.index_factory(16, "IMI2x6,PQ8")
    f.train(x)
    f.add(x)
    f.nprobe = 64
    rv, rf = recall(v.search(xq, 10)[1]), recall(f.search(xq, 10)[1])
    assert rv >= rf - 0.05, (rv, rf)
    faiss.write_index(f, str(tmp_path / "f.index"))
    g = voisin.read_index(str(tmp_path / "f.index"))
    assert isinstance(g.quantizer, voisin.MultiIndexQuantizer) and g.quantizer.ntotal == 4096
    g.nprobe = 64
    Df, If = f.search(xq, 10)
    Dg, Ig = g.search(xq, 10)
    assert (Ig == If).mean() >= 0.97
    voisin.write_index(v, str(tmp_path / "v.index"))
    back = faiss.read_index(str(tmp_path / "v.index"))
    back.nprobe = 64
    Dv, Iv = v.search(xq, 10)
    assert (back.search(xq, 10)[1] == Iv).mean() >= 0.97
    flat = voisin.index_factory(16, "IMI2x4,Flat")
    flat.train(x)
    flat.add(x)
    flat.nprobe = 256  # every list: exact
    np.testing.assert_array_equal(flat.search(xq, 10)[1], gt)


def test_bad_input(data):
    x, _ = data
    q = voisin.MultiIndexQuantizer(16, 2, 4)
    q.train(x)
    with pytest.raises(RuntimeError, match="add"):
        q.add(x[:2])
    with pytest.raises(ValueError, match="sel"):
        q.search(x[:1], 2, params=voisin.SearchParameters(sel=voisin.IDSelectorRange(0, 5)))
    with pytest.raises(ValueError, match="out of range"):
        q.reconstruct(1 << 8)
    with pytest.raises(ValueError, match="L2"):
        voisin.index_factory(16, "IMI2x4,Flat", voisin.METRIC_INNER_PRODUCT)
    with pytest.raises(ValueError, match="multiple"):
        voisin.index_factory(15, "IMI2x4,Flat")
    with pytest.raises(ValueError, match="IMI"):
        voisin.index_factory(16, "IMI2x20,Flat")
