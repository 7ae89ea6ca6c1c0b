"""Index2Layer against faiss-cpu: codes (list number + residual PQ code),
decoding, search over the decoded vectors, range search, Ix2L files both
ways, the factory's Residual forms, transfer_to_IVFPQ, bad input."""

import functools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

faiss = pytest.importorskip("faiss")

import voisin

D_ = 16
DESCS = ["Residual16,PQ4", "Residual16,PQ4x6", "Residual2x4,PQ8", "Residual300,PQ2"]


def _data(n=3000, nq=20, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, D_), dtype="float32"), rng.random((nq, D_), dtype="float32")


@functools.lru_cache(maxsize=None)
def _faiss_trained(desc):
    xb, _ = _data()
    fi = faiss.index_factory(D_, desc)
    fi.pq.cp.niter = 6
    fi.q1.cp.niter = 6
    fi.train(xb)
    return faiss.serialize_index(fi)


def _twins(desc):
    blob = _faiss_trained(desc)
    return faiss.deserialize_index(blob), voisin.deserialize_index(blob)


def _faiss_codes(fi):
    return faiss.vector_to_array(fi.codes).reshape(-1, fi.code_size)


@pytest.mark.parametrize("desc", DESCS)
def test_codes_and_search_match_faiss(desc):
    xb, xq = _data()
    fi, vi = _twins(desc)
    assert type(vi) is voisin.Index2Layer
    assert (vi.code_size_1, vi.code_size_2, vi.code_size) == (fi.code_size_1, fi.code_size_2, fi.code_size)
    fi.add(xb)
    vi.add(xb)
    np.testing.assert_array_equal(vi.codes, _faiss_codes(fi))
    np.testing.assert_array_equal(vi.sa_encode(xq), fi.sa_encode(xq))
    recf = fi.reconstruct_n(0, fi.ntotal)
    np.testing.assert_allclose(vi.reconstruct_n(0, vi.ntotal), recf, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(vi.sa_decode(vi.codes[:50]), fi.sa_decode(_faiss_codes(fi)[:50]), atol=1e-6)
    # faiss's Index2Layer::search raises "not implemented"; the reference is an
    # exact search over faiss's own reconstructions
    ref = faiss.IndexFlatL2(D_)
    ref.add(recf)
    Dr, Ir = ref.search(xq, 10)
    for nq in (1, 20):
        Dv, Iv = vi.search(xq[:nq], 10)
        np.testing.assert_array_equal(Iv, Ir[:nq])
        np.testing.assert_allclose(Dv, Dr[:nq], rtol=1e-5, atol=1e-5)
    # range search is implemented by faiss
    radius = float(np.median(Dr[:, 4]))
    lf, Df, If = fi.range_search(xq, radius)
    lv, Dv, Iv = vi.range_search(xq, radius)
    np.testing.assert_array_equal(lv, lf)
    for i in range(xq.shape[0]):
        a, b = slice(lf[i], lf[i + 1]), slice(lv[i], lv[i + 1])
        np.testing.assert_array_equal(np.sort(Iv[b]), np.sort(If[a]))
    assert lf[-1] > 0


def test_filters_remove_reconstruct():
    xb, xq = _data()
    fi, vi = _twins("Residual16,PQ4")
    fi.add(xb)
    vi.add(xb)
    sel = voisin.SearchParameters(sel=voisin.IDSelectorRange(500, 1500))
    D, I = vi.search(xq, 10, params=sel)
    Dall, Iall = vi.search(xq, vi.ntotal)
    for q in range(xq.shape[0]):
        keep = (Iall[q] >= 500) & (Iall[q] < 1500)
        np.testing.assert_allclose(D[q], Dall[q][keep][:10], rtol=1e-6)
    # remove_ids compacts, as faiss's IndexFlatCodes
    gone = np.arange(0, 3000, 4, dtype=np.int64)
    assert vi.remove_ids(gone) == fi.remove_ids(faiss.IDSelectorBatch(gone)) == gone.size
    np.testing.assert_array_equal(vi.codes, _faiss_codes(fi))
    np.testing.assert_allclose(vi.reconstruct(7), fi.reconstruct(7), atol=1e-6)
    vi.reset()
    assert vi.ntotal == 0 and vi.is_trained


@pytest.mark.filterwarnings("ignore:clustering")
@pytest.mark.parametrize("desc", ["Residual16,PQ4x6", "Residual2x4,PQ8"])
def test_files_both_ways(desc, tmp_path):
    xb, xq = _data()
    fi, vi = _twins(desc)
    fi.add(xb)
    # faiss writes, voisin reads
    path = str(tmp_path / "f.index")
    faiss.write_index(fi, path)
    v2 = voisin.read_index(path)
    np.testing.assert_array_equal(v2.codes, _faiss_codes(fi))
    np.testing.assert_allclose(v2.reconstruct_n(0, 100), fi.reconstruct_n(0, 100), atol=1e-6)
    # voisin trains and adds by itself, writes; faiss reads the same index
    vt = voisin.index_factory(D_, desc)
    vt.pq.niter = 6
    vt.train(xb)
    vt.add(xb)
    path2 = str(tmp_path / "v.index")
    voisin.write_index(vt, path2)
    f2 = faiss.read_index(path2)
    assert f2.ntotal == vt.ntotal
    np.testing.assert_array_equal(_faiss_codes(f2), vt.codes)
    np.testing.assert_allclose(f2.reconstruct_n(0, vt.ntotal), vt.reconstruct_n(0, vt.ntotal), atol=1e-6)
    np.testing.assert_array_equal(f2.sa_encode(xq), vt.sa_encode(xq))
    lf = f2.range_search(xq, 0.5)
    lv = vt.range_search(xq, 0.5)
    np.testing.assert_array_equal(lv[0], lf[0])
    # faiss's bytes: what voisin writes for a faiss index equals faiss's file
    assert voisin.serialize_index(v2, checksum=False).tobytes() == open(path, "rb").read()


def test_training_quality_as_faiss():
    xb, xq = _data(n=6000)
    for desc in ("Residual16,PQ4", "Residual2x4,PQ8"):
        fi = faiss.index_factory(D_, desc)
        vi = voisin.index_factory(D_, desc)
        with pytest.warns(UserWarning):
            vi.train(xb)
        fi.train(xb)
        errs = [((ix.sa_decode(ix.sa_encode(xb)) - xb) ** 2).sum(1).mean() for ix in (fi, vi)]
        assert errs[1] < 1.05 * errs[0]


def test_transfer_to_ivfpq():
    xb, xq = _data()
    fi, vi = _twins("Residual16,PQ4")
    vi.add(xb)
    ivf = voisin.IndexIVFPQ(vi.q1.quantizer, D_, 16, 4, 8)
    ivf.pq = vi.pq
    ivf.is_trained = True
    vi.transfer_to_IVFPQ(ivf)
    assert ivf.ntotal == vi.ntotal
    ivf.nprobe = 16
    # the IVF-PQ decodes the same vectors
    np.testing.assert_allclose(ivf.reconstruct_n(0, 100), vi.reconstruct_n(0, 100), atol=1e-5)
    D, I = ivf.search(xq, 5)
    assert (I >= 0).all()
    with pytest.raises(ValueError, match="empty"):
        vi.transfer_to_IVFPQ(ivf)


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 60), st.integers(0, 2 ** 31))
def test_random_queries_match_faiss_reconstructions(k, seed):
    fi, vi = _cached_filled()
    xq = np.random.default_rng(seed).random((3, D_), dtype="float32")
    ref = faiss.IndexFlatL2(D_)
    ref.add(fi.reconstruct_n(0, fi.ntotal))
    Dr, Ir = ref.search(xq, k)
    Dv, Iv = vi.search(xq, k)
    np.testing.assert_allclose(Dv, Dr, rtol=1e-5, atol=1e-5)


@functools.lru_cache(maxsize=None)
def _cached_filled():
    xb, _ = _data()
    fi, vi = _twins("Residual2x4,PQ8")
    fi.add(xb)
    vi.add(xb)
    return fi, vi


def test_bad_input():
    with pytest.raises(TypeError, match="quantizer"):
        voisin.Index2Layer("flat", 16, 4)
    with pytest.raises(ValueError, match="nlist"):
        voisin.Index2Layer(voisin.IndexFlatL2(D_), 0, 4)
    with pytest.raises(ValueError, match="M"):
        voisin.Index2Layer(voisin.IndexFlatL2(D_), 16, 5)
    with pytest.raises(voisin.FactoryError, match="L2 only"):
        voisin.index_factory(D_, "Residual16,PQ4", voisin.METRIC_INNER_PRODUCT)
    with pytest.raises(voisin.FactoryError, match="PQ"):
        voisin.index_factory(D_, "Residual16,Flat")
    with pytest.raises(voisin.FactoryError, match="needs a PQ"):
        voisin.index_factory(D_, "Residual16")
    _, vi = _twins("Residual16,PQ4")
    xb, xq = _data(n=100)
    with pytest.raises(ValueError, match="x"):
        vi.add(xb[:, :8])
    with pytest.raises(NotImplementedError, match="ids"):
        vi.add_with_ids(xb, np.arange(100))
    vi.add(xb)
    with pytest.raises(ValueError, match="key"):
        vi.reconstruct(100)
    with pytest.raises(ValueError, match="codes"):
        vi.sa_decode(np.zeros((2, 3), np.uint8))
    bad = vi.codes[:2].copy()
    bad[:, 0] = 200  # list 200 of 16
    with pytest.raises(ValueError, match="list number"):
        vi.sa_decode(bad)
    with pytest.raises(ValueError, match="list number"):
        vi.add_sa_codes(bad)
    with pytest.raises(TypeError, match="other"):
        vi.transfer_to_IVFPQ(voisin.IndexFlatL2(D_))
    untrained = voisin.index_factory(D_, "Residual16,PQ4")
    with pytest.raises(Exception, match="train"):
        untrained.add(xb)
    # a forged file: a list number past nlist
    blob = bytearray(voisin.serialize_index(vi, checksum=False))
    blob[-vi.code_size * vi.ntotal] = 99
    with pytest.raises(voisin.IndexFileError, match="list number"):
        voisin.deserialize_index(bytes(blob))
