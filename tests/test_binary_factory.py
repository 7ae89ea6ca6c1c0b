"""index_binary_factory against faiss-cpu's, and IndexBinaryFromFloat."""

from __future__ import annotations

import numpy as np
import pytest

import voisin
from binary_cases import brute_knn, check_knn, hamming_matrix, random_codes

faiss = pytest.importorskip("faiss")

DESCRIPTIONS = ["BFlat", "BIVF16", "BIVF16_HNSW8", "BHNSW16", "BHash12", "BHash4x12",
                "IDMap,BFlat", "IDMap2,BFlat", "IDMap,BHNSW16", "BFlat,IDMap"]


@pytest.mark.parametrize("desc", DESCRIPTIONS)
def test_same_classes_as_faiss(desc):
    ours = voisin.index_binary_factory(64, desc)
    raw = faiss.index_binary_factory(64, desc)  # owns the C++ object: keep it alive
    ref = faiss.downcast_IndexBinary(raw)
    assert type(ours).__name__ == type(ref).__name__
    assert ours.d == 64 and ours.code_size == 8
    inner = getattr(ours, "index", None)
    if inner is not None:
        assert type(inner).__name__ == type(faiss.downcast_IndexBinary(ref.index)).__name__
    if desc.startswith("BIVF"):
        assert ours.nlist == 16 and not ours.is_trained
        assert type(ours.quantizer).__name__ == type(
            faiss.downcast_IndexBinary(ref.quantizer)).__name__
    if "HNSW" in desc and not desc.startswith("BIVF"):
        hn = ours.index.hnsw if hasattr(ours, "index") else ours.hnsw
        assert hn.M == 16
    if desc == "BHash4x12":
        assert (ours.nhash, ours.b) == (4, 12)


def test_factory_indexes_work():
    rng = np.random.default_rng(4)
    xb = random_codes(rng, 2000, 8)
    for desc in ("BIVF16", "BIVF16_HNSW8"):
        index = voisin.index_binary_factory(64, desc)
        index.train(xb)
        index.add(xb)
        index.nprobe = 16
        D, I = index.search(xb[:20], 5)
        check_knn(D, I, xb[:20], xb, 5)


@pytest.mark.parametrize("bad", ["", "Flat", "bflat", "BIVF", "BIVF16,Flat", "BHashx3",
                                 "IDMap,IDMap,BFlat", "BHNSW0", "BHash99"])
def test_errors_name_the_string(bad):
    with pytest.raises(voisin.FactoryError, match="index_binary_factory"):
        voisin.index_binary_factory(64, bad)


def test_bad_dimension_and_type():
    with pytest.raises(ValueError, match="multiple of 8"):
        voisin.index_binary_factory(60, "BFlat")
    with pytest.raises(TypeError, match="description"):
        voisin.index_binary_factory(64, 3)


def test_from_float_matches_hamming():
    rng = np.random.default_rng(8)
    xb, xq = random_codes(rng, 500, 4), random_codes(rng, 10, 4)
    index = voisin.IndexBinaryFromFloat(voisin.IndexFlatL2(32))
    index.add(xb)
    D, I = index.search(xq, 6)
    check_knn(D, I, xq, xb, 6)
    ref = faiss.IndexBinaryFromFloat(faiss.IndexFlatL2(32))
    ref.add(xb)
    Df, _ = ref.search(xq, 6)
    np.testing.assert_array_equal(D, Df)
    lims, Dr, Ir = index.range_search(xq, 12)
    full = hamming_matrix(xq, xb)
    assert lims[-1] == (full < 12).sum()
    np.testing.assert_array_equal(full[np.repeat(np.arange(10), np.diff(lims).astype(int)), Ir], Dr)
    np.testing.assert_array_equal(index.reconstruct(3), xb[3])
    hnsw = voisin.IndexBinaryFromFloat(voisin.IndexHNSWFlat(32, 16))
    hnsw.add(xb)
    D, _ = hnsw.search(xq, 1)
    Dg, _ = brute_knn(xq, xb, 1)
    assert (D <= Dg + 2).all()
    with pytest.raises(TypeError, match="float"):
        voisin.IndexBinaryFromFloat(voisin.IndexBinaryFlat(32))


def test_downcast_and_clone():
    rng = np.random.default_rng(1)
    xb = random_codes(rng, 300, 8)
    index = voisin.index_binary_factory(64, "BHNSW8")
    index.add(xb)
    assert voisin.downcast_IndexBinary(index) is index
    copy = voisin.clone_binary_index(index)
    np.testing.assert_array_equal(copy.search(xb[:5], 3)[0], index.search(xb[:5], 3)[0])
    copy.add(xb[:10])
    assert index.ntotal == 300 and copy.ntotal == 310
    with pytest.raises(TypeError, match="binary index"):
        voisin.clone_binary_index(voisin.IndexFlatL2(4))
