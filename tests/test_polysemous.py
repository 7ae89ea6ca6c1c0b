"""Polysemous PQ against faiss-cpu: the Hamming pre-filtered search (both
search types, index settings and SearchParametersPQ), the simulated-annealing
training (same permutations as FAISS), files both ways, ParameterSpace's
``ht``, bad input."""

import functools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

faiss = pytest.importorskip("faiss")

import voisin
from voisin.params import ParameterSpace

N_ITER = 20000  # annealing steps in these tests (FAISS's default is 500000)


@functools.lru_cache(maxsize=None)
def _faiss_index(M=8, d=16):
    """A faiss IndexPQ with polysemous training (short annealing), 6000 codes."""
    rng = np.random.default_rng(M)
    xt = rng.random((256 * 20, d), dtype="float32")
    index = faiss.index_factory(d, f"PQ{M}")
    assert index.do_polysemous_training
    index.polysemous_training.n_iter = N_ITER
    index.pq.cp.niter = 8
    index.train(xt)
    index.add(rng.random((6000, d), dtype="float32"))
    return faiss.serialize_index(index)


def _twins(M=8):
    blob = _faiss_index(M)
    return faiss.deserialize_index(blob), voisin.deserialize_index(blob)


def _queries(n=25, d=16, seed=5):
    return np.random.default_rng(seed).random((n, d), dtype="float32")


def _hamming_pass():
    return faiss.cvar.indexPQ_stats.n_hamming_pass


# generalized Hamming needs a code size multiple of 8 bytes
@pytest.mark.parametrize("M,generalize", [(4, False), (8, False), (8, True)])
def test_search_matches_faiss(M, generalize):
    fi, vi = _twins(M)
    xq = _queries()
    st_type = faiss.IndexPQ.ST_polysemous_generalize if generalize else faiss.IndexPQ.ST_polysemous
    fi.search_type = st_type
    vi.search_type = st_type
    for ht in ([1, 3, 5, M + 1] if generalize else [M * 2, M * 3, M * 4, 0]):
        fi.polysemous_ht = vi.polysemous_ht = ht
        faiss.cvar.indexPQ_stats.reset()
        Df, If = fi.search(xq, 10)
        Dv, Iv = vi.search(xq, 10)
        np.testing.assert_array_equal(Iv, If)
        np.testing.assert_allclose(Dv, Df, rtol=1e-5)
        assert vi.n_hamming_pass == _hamming_pass()
    # ht = 0 and ht above the code's bits filter nothing: plain ADC results
    vi.polysemous_ht = 0
    Dv, Iv = vi.search(xq, 10)
    vi.search_type = voisin.IndexPQ.ST_PQ
    Dp, Ip = vi.search(xq, 10)
    np.testing.assert_array_equal(Iv, Ip)


def test_search_parameters_match_faiss():
    fi, vi = _twins(8)
    xq = _queries()
    for ht in (12, 20):
        fp = faiss.SearchParametersPQ(search_type=faiss.IndexPQ.ST_polysemous, polysemous_ht=ht)
        vp = voisin.SearchParametersPQ(search_type=voisin.IndexPQ.ST_polysemous, polysemous_ht=ht)
        Df, If = fi.search(xq, 8, params=fp)
        Dv, Iv = vi.search(xq, 8, params=vp)
        np.testing.assert_array_equal(Iv, If)
        # as in FAISS, the parameters' search type wins over the index's
        vi.search_type = voisin.IndexPQ.ST_polysemous
        vi.polysemous_ht = 1
        np.testing.assert_array_equal(vi.search(xq, 8, params=voisin.SearchParametersPQ())[1],
                                      fi.search(xq, 8, params=faiss.SearchParametersPQ())[1])
    # few codes pass a tight threshold: the rows are filled with -1 as in FAISS
    fp = faiss.SearchParametersPQ(search_type=faiss.IndexPQ.ST_polysemous, polysemous_ht=6)
    vp = voisin.SearchParametersPQ(search_type=voisin.IndexPQ.ST_polysemous, polysemous_ht=6)
    Df, If = fi.search(xq, 50, params=fp)
    Dv, Iv = vi.search(xq, 50, params=vp)
    assert (If == -1).any()
    np.testing.assert_array_equal(Iv, If)
    np.testing.assert_array_equal(Dv[Iv < 0], Df[If < 0])


@pytest.mark.parametrize("M", [4, 8])
@pytest.mark.parametrize("search_type", [1, 2, 3])
def test_code_to_code_search_types_match_faiss(M, search_type):
    if search_type == 2 and M % 8:
        return  # FAISS compares whole 8-byte words: refused (test_bad_input)
    fi, vi = _twins(M)
    xq = _queries()
    fi.search_type = vi.search_type = search_type
    fi.pq.compute_sdc_table()  # faiss does not rebuild it on load (voisin computes it on demand)
    for k in (10, 7000):  # k above ntotal: missing slots as FAISS fills them
        Df, If = fi.search(xq, k)
        Dv, Iv = vi.search(xq, k)
        np.testing.assert_allclose(Dv, Df, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(Iv < 0, If < 0)
        if search_type != 3 or k == 10:
            # SDC's table is summed in another order than FAISS's: among
            # thousands of results some near-ties swap, so there only the
            # distances are compared
            np.testing.assert_array_equal(Iv, If)
    # and through the parameters
    p = voisin.SearchParametersPQ(search_type=search_type)
    np.testing.assert_array_equal(vi.search(xq, 10, params=p)[1],
                                  fi.search(xq, 10, params=faiss.SearchParametersPQ(search_type=search_type))[1])


def test_encode_signs_matches_faiss():
    rng = np.random.default_rng(2)
    xb = rng.normal(size=(3000, 16)).astype("float32")
    fi = faiss.IndexPQ(16, 2, 8)
    fi.pq.cp.niter = 5
    fi.train(xb)
    fi.add(xb)
    fi.encode_signs = True
    fi.search_type = faiss.IndexPQ.ST_HE
    vi = voisin.deserialize_index(faiss.serialize_index(fi))
    assert vi.encode_signs and vi.search_type == voisin.IndexPQ.ST_HE
    Df, If = fi.search(xb[:20], 15)
    Dv, Iv = vi.search(xb[:20], 15)
    np.testing.assert_array_equal(Iv, If)
    np.testing.assert_array_equal(Dv, Df)


def test_voisin_filter_with_polysemous():
    _, vi = _twins(8)
    xq = _queries()
    vp = voisin.SearchParametersPQ(search_type=voisin.IndexPQ.ST_polysemous, polysemous_ht=20,
                                   sel=voisin.IDSelectorRange(1000, 3000))
    D, I = vi.search(xq, 10, params=vp)
    full = voisin.SearchParametersPQ(search_type=voisin.IndexPQ.ST_polysemous, polysemous_ht=20)
    Dall, Iall = vi.search(xq, vi.ntotal, params=full)
    for q in range(xq.shape[0]):
        keep = (Iall[q] >= 1000) & (Iall[q] < 3000)
        np.testing.assert_array_equal(I[q][I[q] >= 0], Iall[q][keep][:10])


@pytest.mark.parametrize("M,nbits", [(4, 8), (2, 6)])
def test_training_matches_faiss(M, nbits):
    d = 4 * M
    rng = np.random.default_rng(1)
    c0 = rng.random((M, 1 << nbits, 4), dtype="float32")
    fpq = faiss.ProductQuantizer(d, M, nbits)
    faiss.copy_array_to_vector(c0.ravel(), fpq.centroids)
    fpt = faiss.PolysemousTraining()
    fpt.n_iter = N_ITER
    fpt.optimize_pq_for_hamming(fpq, 0, faiss.swig_ptr(np.zeros(d, "float32")))
    vpq = voisin.ProductQuantizer(d, M, nbits)
    vpq.set_centroids(c0)
    vpt = voisin.PolysemousTraining()
    vpt.n_iter = N_ITER
    vpt.optimize_pq_for_hamming(vpq)
    np.testing.assert_array_equal(vpq.centroids, faiss.vector_to_array(fpq.centroids).reshape(c0.shape))
    # a relabelling: the same centroids, reordered
    for m in range(M):
        np.testing.assert_array_equal(np.unique(vpq.centroids[m], axis=0), np.unique(c0[m], axis=0))


@pytest.mark.filterwarnings("ignore:clustering")
def test_index_training_and_its_use():
    rng = np.random.default_rng(3)
    d, M = 16, 8
    xt = rng.random((256 * 20, d), dtype="float32")
    xb = rng.random((4000, d), dtype="float32")
    xq = _queries()
    plain = voisin.index_factory(d, f"PQ{M}np")
    assert not plain.do_polysemous_training
    poly = voisin.IndexPQ(d, M, 8)
    poly.do_polysemous_training = True
    poly.polysemous_training.n_iter = N_ITER
    for ix in (plain, poly):
        ix.pq.niter = 8
        ix.train(xt)
        ix.add(xb)
    # the same quantizer up to the labels: ADC results agree
    np.testing.assert_array_equal(np.sort(poly.pq.centroids.reshape(-1, 2), axis=0),
                                  np.sort(plain.pq.centroids.reshape(-1, 2), axis=0))
    _, Iref = plain.search(xq, 10)
    np.testing.assert_array_equal(poly.search(xq, 10)[1], Iref)
    # what training buys: at the same threshold the filtered search keeps
    # more of the true neighbours with trained labels than with k-means's
    p = voisin.SearchParametersPQ(search_type=voisin.IndexPQ.ST_polysemous, polysemous_ht=24)
    recall = [np.mean([len(set(a) & set(b)) for a, b in zip(ix.search(xq, 10, params=p)[1], Iref)])
              for ix in (plain, poly)]
    assert recall[1] > recall[0]


def test_files_both_ways(tmp_path):
    fi, vi = _twins(8)
    xq = _queries()
    # faiss's settings come with its file
    fi.search_type = faiss.IndexPQ.ST_polysemous
    fi.polysemous_ht = 18
    v2 = voisin.deserialize_index(faiss.serialize_index(fi))
    assert (v2.search_type, v2.polysemous_ht) == (voisin.IndexPQ.ST_polysemous, 18)
    np.testing.assert_array_equal(v2.search(xq, 10)[1], fi.search(xq, 10)[1])
    # voisin's settings reach faiss
    vi.search_type = voisin.IndexPQ.ST_polysemous_generalize
    vi.polysemous_ht = 4
    path = str(tmp_path / "v.index")
    voisin.write_index(vi, path)
    f2 = faiss.read_index(path)
    assert (f2.search_type, f2.polysemous_ht) == (faiss.IndexPQ.ST_polysemous_generalize, 4)
    Df, If = f2.search(xq, 10)
    Dv, Iv = vi.search(xq, 10)
    np.testing.assert_array_equal(Iv, If)
    np.testing.assert_allclose(Dv, Df, rtol=1e-5)
    # an untouched index writes FAISS's defaults, and the file's bytes equal faiss's
    assert voisin.serialize_index(voisin.deserialize_index(_faiss_index(8)), checksum=False).tobytes() == \
        faiss.serialize_index(faiss.deserialize_index(_faiss_index(8))).tobytes()


def test_parameter_space_ht():
    fi, vi = _twins(8)
    fps, vps = faiss.ParameterSpace(), ParameterSpace()
    for ht in (20, 64, 100):
        fps.set_index_parameter(fi, "ht", ht)
        vps.set_index_parameter(vi, "ht", ht)
        assert (vi.search_type, vi.polysemous_ht) == (fi.search_type, fi.polysemous_ht)
    xq = _queries()
    fps.set_index_parameter(fi, "ht", 22)
    vps.set_index_parameter(vi, "ht", 22)
    np.testing.assert_array_equal(vi.search(xq, 10)[1], fi.search(xq, 10)[1])


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 70), st.integers(1, 40), st.booleans())
def test_random_thresholds_match_faiss(ht, k, generalize):
    fi, vi = _twins(8)
    xq = _queries(n=6, seed=ht)
    st_type = 5 if generalize else 4
    fp = faiss.SearchParametersPQ(search_type=st_type, polysemous_ht=ht)
    vp = voisin.SearchParametersPQ(search_type=st_type, polysemous_ht=ht)
    faiss.cvar.indexPQ_stats.reset()
    Df, If = fi.search(xq, k, params=fp)
    Dv, Iv = vi.search(xq, k, params=vp)
    np.testing.assert_array_equal(Iv, If)
    assert vi.n_hamming_pass == _hamming_pass()


@pytest.mark.filterwarnings("ignore:clustering")
def test_bad_input():
    _, vi = _twins(4)
    xq = _queries()
    with pytest.raises(ValueError, match="search_type"):
        vi.search_type = 9
    with pytest.raises(TypeError, match="search_type"):
        vi.search_type = "polysemous"
    with pytest.raises(ValueError, match="polysemous_ht"):
        vi.polysemous_ht = -1
    with pytest.raises(ValueError, match="search_type"):
        voisin.SearchParametersPQ(search_type=6)
    # FAISS's generalized Hamming needs a code size multiple of 8 bytes
    vi.search_type = voisin.IndexPQ.ST_polysemous_generalize
    with pytest.raises(ValueError, match="code size"):
        vi.search(xq, 5)
    vi.search_type = voisin.IndexPQ.ST_generalized_hamming
    with pytest.raises(ValueError, match="code size"):
        vi.search(xq, 5)
    vi.search_type = voisin.IndexPQ.ST_HE
    vi.encode_signs = True  # needs d == M * nbits
    with pytest.raises(ValueError, match="encode_signs"):
        vi.search(xq, 5)
    rng = np.random.default_rng(0)
    xt = rng.random((300, 12), dtype="float32")
    for ix, why in ((voisin.IndexPQ(12, 4, 4), "8-bit"),
                    (voisin.IndexPQ(12, 4, 4, voisin.METRIC_INNER_PRODUCT), "METRIC_L2"),
                    (voisin.IndexPQ(12, 3, 4), "8-bit")):
        ix.train(xt)
        ix.add(xt)
        ix.search_type = voisin.IndexPQ.ST_polysemous
        with pytest.raises(ValueError, match=why):
            ix.search(xt[:2], 3)
    with pytest.raises(TypeError, match="polysemous_training"):
        vi.polysemous_training = "fast"
    pt = voisin.PolysemousTraining()
    pt.optimization_type = pt.OT_Ranking_weighted_diff
    with pytest.raises(NotImplementedError, match="optimization_type"):
        pt.optimize_pq_for_hamming(vi.pq)
    pt = voisin.PolysemousTraining()
    pt.n_iter = -5
    with pytest.raises(ValueError, match="n_iter"):
        pt.optimize_pq_for_hamming(vi.pq)
    # a forged file: a search type FAISS does not have
    blob = bytearray(voisin.serialize_index(voisin.deserialize_index(_faiss_index(4)), checksum=False))
    blob[-9:-5] = np.int32(7).tobytes()
    with pytest.raises(voisin.IndexFileError, match="search_type"):
        voisin.deserialize_index(bytes(blob))


# --------------------------------------------------------------------------------------
# IndexIVFPQ's polysemous filter
# --------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _faiss_ivfpq(metric, by_residual, desc="IVF16,PQ8"):
    rng = np.random.default_rng(7)
    xt = rng.random((5000, 16), dtype="float32")
    index = faiss.index_factory(16, desc, metric)
    assert index.do_polysemous_training
    index.polysemous_training = faiss.PolysemousTraining()
    index.polysemous_training.n_iter = 3000
    index.by_residual = by_residual
    index.pq.cp.niter = 6
    index.train(xt)
    index.add(rng.random((6000, 16), dtype="float32"))
    return faiss.serialize_index(index)


@pytest.mark.parametrize("metric,by_residual,desc", [
    (faiss.METRIC_L2, True, "IVF16,PQ8"), (faiss.METRIC_L2, False, "IVF16,PQ8"),
    (faiss.METRIC_INNER_PRODUCT, True, "IVF16,PQ4"), (faiss.METRIC_L2, True, "IVF16,PQ8x6")])
def test_ivfpq_polysemous_matches_faiss(metric, by_residual, desc):
    blob = _faiss_ivfpq(metric, by_residual, desc)
    fi, vi = faiss.deserialize_index(blob), voisin.deserialize_index(blob)
    xq = _queries()
    tables = [0, 1] if by_residual and metric == faiss.METRIC_L2 else [fi.use_precomputed_table]
    for upt in tables:
        fi.use_precomputed_table = vi.use_precomputed_table = upt
        fi.precompute_table()
        vi.precompute_table()
        for ht in (12, 20, 26):
            fi.nprobe = vi.nprobe = 4
            fi.polysemous_ht = vi.polysemous_ht = ht
            faiss.cvar.indexIVFPQ_stats.reset()
            Df, If = fi.search(xq, 10)
            Dv, Iv = vi.search(xq, 10)
            np.testing.assert_array_equal(Iv, If)
            np.testing.assert_allclose(Dv, Df, rtol=1e-5, atol=1e-5)
            assert vi.n_hamming_pass == faiss.cvar.indexIVFPQ_stats.n_hamming_pass
    # ht = 0: the plain scan again
    vi.polysemous_ht = 0
    fi.polysemous_ht = 0
    np.testing.assert_array_equal(vi.search(xq, 10)[1], fi.search(xq, 10)[1])


def test_ivfpq_polysemous_training_and_parameters():
    rng = np.random.default_rng(8)
    xt = rng.random((5000, 16), dtype="float32")
    xb = rng.random((5000, 16), dtype="float32")
    xq = _queries()
    plain = voisin.IndexIVFPQ(voisin.IndexFlatL2(16), 16, 8, 8, 8)
    poly = voisin.IndexIVFPQ(voisin.IndexFlatL2(16), 16, 8, 8, 8)
    poly.do_polysemous_training = True
    poly.polysemous_training = voisin.PolysemousTraining()
    poly.polysemous_training.n_iter = N_ITER
    with pytest.warns(UserWarning):
        for ix in (plain, poly):
            ix.pq.niter = 6
            ix.train(xt)
            ix.add(xb)
            ix.nprobe = 8
    _, Iref = plain.search(xq, 10)
    np.testing.assert_array_equal(poly.search(xq, 10)[1], Iref)  # relabelled: same ADC results
    recall = []
    for ix in (plain, poly):
        ix.polysemous_ht = 26
        recall.append(np.mean([len(set(a) & set(b)) for a, b in zip(ix.search(xq, 10)[1], Iref)]))
    assert recall[1] > recall[0]
    # a filter keeps only allowed ids among the codes that pass
    p = voisin.SearchParametersIVF(sel=voisin.IDSelectorRange(0, 2500))
    _, I = poly.search(xq, 10, params=p)
    assert ((I < 2500) | (I == -1)).all()
    with pytest.raises(ValueError, match="polysemous_ht"):
        poly.polysemous_ht = -1
        poly.search(xq, 3)
    fresh = voisin.IndexIVFPQ(voisin.IndexFlatL2(16), 16, 8, 8, 8)
    fresh.do_polysemous_training = True
    fresh.polysemous_training = "anneal"
    with pytest.raises(TypeError, match="polysemous_training"), pytest.warns(UserWarning):
        fresh.train(xt)
