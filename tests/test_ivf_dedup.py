"""IndexIVFFlatDedup against faiss-cpu: duplicates stored once and listed with
their stored copy, remove_ids, IwFd files both ways, the factory, bad input."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

faiss = pytest.importorskip("faiss")

import voisin

L2, IP = voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT


def _data(n=3000, d=8, nq=40, seed=0):
    """Vectors with groups of exact duplicates (sizes 2 to 4) and queries near them."""
    rng = np.random.default_rng(seed)
    xb = rng.random((n, d), dtype="float32")
    xb[n // 3:n // 3 + n // 6] = xb[:n // 6]
    xb[2 * n // 3:2 * n // 3 + n // 15] = xb[:n // 15]
    xb[n - n // 30:] = xb[:n // 30]
    xq = xb[rng.integers(0, n, nq)] + 1e-3 * rng.random((nq, d), dtype="float32")
    return xb, xq


def _pair(xb, nlist=16, metric=L2, tmp_path=None):
    """A faiss index and a voisin one sharing faiss's trained quantizer."""
    d = xb.shape[1]
    fi = faiss.index_factory(d, f"IVF{nlist},FlatDedup", metric)
    fi.train(xb)
    vi = voisin.deserialize_index(faiss.serialize_index(fi))
    assert isinstance(vi, voisin.IndexIVFFlatDedup)
    return fi, vi


def _faiss_ids(fi, l):
    n = fi.invlists.list_size(l)
    return faiss.rev_swig_ptr(fi.invlists.get_ids(l), n).copy() if n else np.empty(0, np.int64)


def _same_lists(fi, vi):
    for l in range(vi.nlist):
        np.testing.assert_array_equal(_faiss_ids(fi, l), vi.invlists.get_ids(l))


@pytest.mark.parametrize("metric", [L2, IP])
def test_add_and_search_match_faiss(metric):
    xb, xq = _data()
    fi, vi = _pair(xb, metric=metric)
    # two batches: duplicates of stored vectors and duplicates within a batch
    for part in (xb[:1700], xb[1700:]):
        fi.add(part)
        vi.add(part)
    assert vi.ntotal == fi.ntotal == xb.shape[0]
    assert vi.invlists.ntotal == fi.invlists.compute_ntotal() == np.unique(xb, axis=0).shape[0]
    _same_lists(fi, vi)
    for nprobe in (1, 4, 16):
        fi.nprobe = vi.nprobe = nprobe
        for nq in (1, 40):  # single-query and batch paths
            Df, If = fi.search(xq[:nq], 12)
            Dv, Iv = vi.search(xq[:nq], 12)
            np.testing.assert_array_equal(Iv, If)
            np.testing.assert_allclose(Dv, Df, rtol=1e-5, atol=1e-6)
    if metric == L2:  # every id of a group comes back at the same distance
        vi.nprobe = 16
        D, I = vi.search(xb[:1], 4)
        assert set(I[0].tolist()) == {0, 1000, 2000, 2900}
        assert np.ptp(D[0]) == 0


def test_search_preassigned_and_filter_match_faiss():
    xb, xq = _data()
    fi, vi = _pair(xb)
    fi.add(xb)
    vi.add(xb)
    _, assign = vi.quantizer.search(xq, 3)
    fi.nprobe = 3
    Df, If = fi.search_preassigned(xq, 10, assign, np.zeros(assign.shape, "float32"))
    Dv, Iv = vi.search_preassigned(xq, 10, assign)
    np.testing.assert_array_equal(Iv, If)
    np.testing.assert_allclose(Dv, Df, rtol=1e-5, atol=1e-6)
    # the filter applies to the stored ids; duplicates follow their copy (all
    # lists probed: voisin widens the probes of a filtered search, FAISS does not)
    fi.nprobe = vi.nprobe = 4
    Df, If = fi.search(xq, 10, params=faiss.SearchParametersIVF(sel=faiss.IDSelectorRange(0, 1500), nprobe=16))
    Dv, Iv = vi.search(xq, 10, params=voisin.SearchParametersIVF(sel=voisin.IDSelectorRange(0, 1500), nprobe=16))
    np.testing.assert_array_equal(Iv, If)


def test_add_with_ids_and_reconstruct():
    xb, xq = _data(n=600)
    fi, vi = _pair(xb, nlist=4)
    ids = np.arange(xb.shape[0], dtype=np.int64) * 7 + 3
    fi.add_with_ids(xb, ids)
    vi.add_with_ids(xb, ids)
    fi.nprobe = vi.nprobe = 2
    Df, If = fi.search(xq, 8)
    Dv, Iv = vi.search(xq, 8)
    np.testing.assert_array_equal(Iv, If)
    # voisin reconstructs stored ids and duplicates' ids (FAISS raises)
    np.testing.assert_array_equal(vi.reconstruct_batch(ids[[0, 200, 599]]), xb[[0, 200, 599]])


@pytest.mark.parametrize("step", [2, 3, 7])
def test_remove_ids_matches_faiss(step):
    xb, xq = _data()
    fi, vi = _pair(xb)
    fi.add(xb)
    vi.add(xb)
    # removes stored copies with surviving duplicates, whole groups, lone vectors
    sel = np.arange(0, xb.shape[0], step, dtype=np.int64)
    assert vi.remove_ids(sel) == fi.remove_ids(faiss.IDSelectorBatch(sel))
    assert vi.ntotal == fi.ntotal
    _same_lists(fi, vi)
    fi.nprobe = vi.nprobe = 8
    Df, If = fi.search(xq, 12)
    Dv, Iv = vi.search(xq, 12)
    np.testing.assert_array_equal(Iv, If)
    np.testing.assert_allclose(Dv, Df, rtol=1e-5, atol=1e-6)
    # a second removal, by range
    assert vi.remove_ids(voisin.IDSelectorRange(400, 900)) == fi.remove_ids(faiss.IDSelectorRange(400, 900))
    np.testing.assert_array_equal(vi.search(xq, 12)[1], fi.search(xq, 12)[1])


def test_files_both_ways(tmp_path):
    xb, xq = _data()
    fi, vi = _pair(xb)
    fi.add(xb)
    vi.add(xb)
    fi.remove_ids(faiss.IDSelectorRange(0, 300))
    vi.remove_ids(voisin.IDSelectorRange(0, 300))
    fi.nprobe = vi.nprobe = 4
    # faiss writes, voisin reads (and faiss reads its own file the same way)
    path = str(tmp_path / "f.index")
    faiss.write_index(fi, path)
    v2 = voisin.read_index(path)
    f2 = faiss.read_index(path)
    assert type(v2) is voisin.IndexIVFFlatDedup and v2.ntotal == f2.ntotal and v2.nprobe == 4
    np.testing.assert_array_equal(v2.search(xq, 12)[1], f2.search(xq, 12)[1])
    # voisin writes, faiss reads
    path2 = str(tmp_path / "v.index")
    voisin.write_index(vi, path2)
    f3 = faiss.read_index(path2)
    v3 = voisin.read_index(path2)
    assert f3.ntotal == vi.ntotal
    Df, If = f3.search(xq, 12)
    Dv, Iv = v3.search(xq, 12)
    np.testing.assert_array_equal(Iv, If)
    np.testing.assert_allclose(Dv, Df, rtol=1e-5, atol=1e-6)
    # voisin's own layout reads back as FAISS reads its files (a round trip
    # lists each group's duplicates in reverse, in faiss as in voisin)
    v4 = voisin.deserialize_index(voisin.serialize_index(vi, layout="voisin"))
    np.testing.assert_array_equal(v4.search(xq, 12)[1], If)


def test_train_on_distinct_vectors():
    xb, _ = _data()
    doubled = np.concatenate([xb, xb])
    fi = faiss.index_factory(8, "IVF16,FlatDedup")
    vi = voisin.index_factory(8, "IVF16,FlatDedup")
    assert type(vi) is voisin.IndexIVFFlatDedup
    fi.train(doubled)
    vi.train(doubled)
    # the same distinct training set in the same order as FAISS: compare with
    # training on the distinct vectors directly
    ref = voisin.IndexIVFFlat(voisin.IndexFlatL2(8), 8, 16)
    ref.train(np.unique(doubled, axis=0)[np.argsort(np.unique(doubled, axis=0, return_index=True)[1])])
    np.testing.assert_array_equal(vi.quantizer.reconstruct_n(0, 16), ref.quantizer.reconstruct_n(0, 16))
    vi.add(xb)
    vi.nprobe = 16
    D, I = vi.search(xb[:50], 1)
    np.testing.assert_array_equal(D[:, 0], 0)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=60), st.integers(0, 2 ** 31))
def test_random_duplicates_match_faiss(choice, seed):
    rng = np.random.default_rng(seed)
    base = rng.random((6, 4), dtype="float32")
    xb = base[np.array(choice)]
    fi = faiss.IndexIVFFlatDedup(faiss.IndexFlatL2(4), 4, 2)
    fi.train(rng.random((50, 4), dtype="float32"))
    vi = voisin.deserialize_index(faiss.serialize_index(fi))
    fi.add(xb)
    vi.add(xb)
    fi.nprobe = vi.nprobe = 2
    k = min(len(choice), 10)
    np.testing.assert_array_equal(vi.search(base, k)[1], fi.search(base, k)[1])
    gone = np.flatnonzero(rng.random(len(choice)) < 0.4).astype(np.int64)
    assert vi.remove_ids(gone) == fi.remove_ids(faiss.IDSelectorBatch(gone))
    np.testing.assert_array_equal(vi.search(base, k)[1], fi.search(base, k)[1])


def test_bad_input():
    xb, xq = _data(n=300)
    vi = voisin.IndexIVFFlatDedup(voisin.IndexFlatL2(8), 8, 4)
    with pytest.raises(ValueError, match="x"):
        vi.train(xb[:, :4])
    vi.train(xb)
    with pytest.raises(ValueError, match="x"):
        vi.add(xb[:, :5])
    vi.add(xb)
    with pytest.raises(ValueError, match="new_maintain"):
        vi.make_direct_map()
    with pytest.raises(ValueError, match="type"):
        vi.set_direct_map_type(1)
    with pytest.raises(ValueError, match="k"):
        vi.search(xq, 0)
    with pytest.raises(NotImplementedError):
        vi.range_search(xq, 1.0)
    with pytest.raises(TypeError, match="quantizer"):
        voisin.IndexIVFFlatDedup("flat", 8, 4)
    with pytest.raises(ValueError, match="nlist"):
        voisin.IndexIVFFlatDedup(voisin.IndexFlatL2(8), 8, 0)
    other = voisin.IndexIVFFlatDedup(vi.quantizer, 8, 4)
    with pytest.raises(TypeError, match="IndexIVFFlatDedup cannot be merged"):
        voisin.merge_into(other, vi, True)
    # a truncated file, and a forged one: an odd number of int64s in the instances
    good = bytes(voisin.serialize_index(vi, checksum=False))
    with pytest.raises(voisin.IndexFileError):
        voisin.deserialize_index(good[:len(good) // 2])
    empty = voisin.IndexIVFFlatDedup(voisin.IndexFlatL2(8), 8, 4)
    blob = bytes(voisin.serialize_index(empty, checksum=False))
    at = blob.rindex(b"ilar") - 8  # the (empty) instances vector's length
    assert blob[at:at + 8] == bytes(8)
    forged = blob[:at] + (1).to_bytes(8, "little") + bytes(8) + blob[at + 8:]
    with pytest.raises(voisin.IndexFileError, match="pairs"):
        voisin.deserialize_index(forged)
