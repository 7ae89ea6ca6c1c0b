"""IndexIVFSpectralHash against faiss-cpu and a brute-force reference: codes, search,
files both ways, factory strings, filters, range search, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import voisin

faiss = pytest.importorskip("faiss")
pytestmark = pytest.mark.usefixtures("faiss_single_thread")

D_, NLIST, NBIT = 16, 8, 32


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, D_)).astype("float32")
    return x, rng.normal(size=(25, D_)).astype("float32")


def _pair(data, threshold_type, period, nprobe=3):
    """A faiss index and a voisin one on the same centroids."""
    x, _ = data
    ref = faiss.IndexIVFSpectralHash(faiss.IndexFlatL2(D_), D_, NLIST, NBIT, period)
    ref.threshold_type = threshold_type
    ref.train(x)
    ref.add(x)
    ref.nprobe = nprobe
    q = voisin.IndexFlatL2(D_)
    q.add(ref.quantizer.reconstruct_n(0, NLIST))
    ours = voisin.IndexIVFSpectralHash(q, D_, NLIST, NBIT, period)
    ours.threshold_type = threshold_type
    ours.train(x)
    ours.add(x)
    ours.nprobe = nprobe
    return ours, ref


def _faiss_lists(ref) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for l in range(ref.nlist):
        n = ref.invlists.list_size(l)
        codes = faiss.rev_swig_ptr(ref.invlists.get_codes(l), n * ref.code_size)
        ids = faiss.rev_swig_ptr(ref.invlists.get_ids(l), n)
        out.append((np.array(codes).reshape(n, ref.code_size), np.array(ids)))
    return out


def _same_results(D, I, Df, If):
    """Equal distances; ids equal except where a tie at the k-th distance allows either."""
    np.testing.assert_array_equal(D, Df)
    for d, i, fi in zip(D, I, If):
        strict = d < d[-1]
        assert set(i[strict]) == set(fi[strict])


def _hamming(a, b):
    return np.unpackbits(a[:, None, :] ^ b[None, :, :], axis=2).sum(axis=2)


def _brute(index, xq, allowed=None):
    """(nq, ntotal) distances of every query to every stored entry, hashed against
    the entry's list, with ids; every list probed."""
    ids_all, dist_all = [], []
    for l in range(index.nlist):
        codes = index.invlists.get_codes(l)
        ids = index.invlists.get_ids(l)
        if ids.size == 0:
            continue
        qc = index.encode_vectors(xq, np.full(len(xq), l))
        ids_all.append(ids)
        dist_all.append(_hamming(qc, codes))
    ids = np.concatenate(ids_all)
    dist = np.concatenate(dist_all, axis=1)
    if allowed is not None:
        keep = np.isin(ids, allowed)
        ids, dist = ids[keep], dist[:, keep]
    return ids, dist


@pytest.mark.parametrize("tt", [0, 1, 2, 3])
@pytest.mark.parametrize("period", [1.0, 10.0, -1e10])
def test_codes_and_distances_match_faiss(data, tt, period):
    ours, ref = _pair(data, tt, period)
    if tt:
        ft = faiss.vector_to_array(ref.trained)[:NLIST * NBIT]
        np.testing.assert_allclose(ours.trained, ft, atol=1e-5)
    for l, (codes, ids) in enumerate(_faiss_lists(ref)):
        np.testing.assert_array_equal(ours.invlists.get_codes(l), codes)
        np.testing.assert_array_equal(ours.invlists.get_ids(l), ids)
    xq = data[1]
    D, I = ours.search(xq, 10)
    Df, If = ref.search(xq, 10)
    assert D.dtype == np.float32
    _same_results(D, I, Df, If)


def test_search_equals_brute_force_when_every_list_is_probed(data):
    ours, _ = _pair(data, 3, 1.0, nprobe=NLIST)
    xq = data[1]
    ids, dist = _brute(ours, xq)
    D, I = ours.search(xq, 7)
    np.testing.assert_array_equal(D, np.sort(dist, axis=1)[:, :7])
    pos = {int(v): j for j, v in enumerate(ids)}
    for qi in range(len(xq)):
        assert [dist[qi, pos[int(v)]] for v in I[qi]] == D[qi].tolist()


def test_filter_and_range_search(data):
    ours, _ = _pair(data, 1, 10.0, nprobe=NLIST)
    xq = data[1]
    allowed = np.arange(500, 1500)
    D, I = ours.search(xq, 5, params=voisin.SearchParametersIVF(
        sel=voisin.IDSelectorRange(500, 1500), nprobe=NLIST))
    assert ((I >= 500) & (I < 1500)).all()
    ids, dist = _brute(ours, xq, allowed)
    np.testing.assert_array_equal(D, np.sort(dist, axis=1)[:, :5])
    ids, dist = _brute(ours, xq)
    lims, Dr, Ir = ours.range_search(xq, 8.5)
    for qi in range(len(xq)):
        got = Ir[lims[qi]:lims[qi + 1]]
        np.testing.assert_array_equal(np.sort(got), np.sort(ids[dist[qi] < 9]))
        assert (Dr[lims[qi]:lims[qi + 1]] < 9).all()


def test_missing_results_remove_and_no_reconstruct(data):
    ours, ref = _pair(data, 0, 1.0, nprobe=1)
    xq = data[1][:3]
    ours.remove_ids(np.arange(100, 3000))
    ref.remove_ids(np.arange(100, 3000))
    D, I = ours.search(xq, 50)
    Df, If = ref.search(xq, 50)
    np.testing.assert_array_equal(D, Df)
    assert ((I == -1) == (If == -1)).all()
    assert (D[I == -1] == np.finfo(np.float32).max).all()
    with pytest.raises(NotImplementedError, match="decoded"):
        ours.reconstruct(3)


@pytest.mark.parametrize("tt,period", [(0, 1.0), (1, -1e10), (2, 10.0), (3, 2.5)])
def test_faiss_file_read_by_voisin(data, tt, period):
    _, ref = _pair(data, tt, period)
    ours = voisin.deserialize_index(faiss.serialize_index(ref))
    assert type(ours) is voisin.IndexIVFSpectralHash
    assert (ours.nbit, ours.threshold_type, ours.nprobe, ours.ntotal) == (NBIT, tt, 3, 3000)
    xq = data[1]
    _same_results(*ours.search(xq, 10), *ref.search(xq, 10))
    ours.add(data[0][:10])  # keeps working: adds encode with the loaded thresholds
    assert ours.ntotal == 3010


@pytest.mark.parametrize("tt,period", [(0, 1.0), (3, 2.5)])
def test_voisin_file_read_by_faiss(data, tt, period, tmp_path):
    ours, _ = _pair(data, tt, period)
    path = str(tmp_path / "sh.index")
    voisin.write_index(ours, path)
    ref = faiss.read_index(path)
    xq = data[1]
    _same_results(*ours.search(xq, 10), *ref.search(xq, 10))
    back = voisin.read_index(path)
    np.testing.assert_array_equal(back.search(xq, 10)[0], ours.search(xq, 10)[0])


FACTORY = [  # description, nbit, period, threshold type, transform, do_pca
    ("IVF8,ITQ16,SH1.0", 16, 1.0, 0, "ITQTransform", False),
    ("IVF8,ITQ,SH", 16, -1e10, 0, "ITQTransform", False),
    ("IVF8,ITQ8,SH-3e2g", 8, -300.0, 0, "ITQTransform", True),
    ("IVF8,PCA8,SH2.5m", 8, 2.5, 3, "PCAMatrix", None),
    ("IVF8,PCAR8,SHc", 8, -1e10, 1, "PCAMatrix", None),
]


@pytest.mark.parametrize("desc,nbit,period,tt,vt,do_pca", FACTORY)
def test_factory_builds_what_faiss_builds(desc, nbit, period, tt, vt, do_pca, data):
    keep = []  # faiss's downcast proxies do not own: the owners must stay alive
    built = []
    for lib in (voisin, faiss):
        index = lib.index_factory(D_, desc)
        keep.append(index)
        if lib is faiss:
            index = faiss.downcast_index(index)
            keep.append(index)
            t = faiss.downcast_VectorTransform(index.vt)
            keep.append(t)
        else:
            t = index.vt
        assert type(index).__name__ == "IndexIVFSpectralHash"
        assert (index.nbit, index.threshold_type, index.nlist) == (nbit, tt, 8)
        assert index.period == pytest.approx(period)
        assert (type(t).__name__, t.d_out) == (vt, nbit)
        if do_pca is not None:
            assert t.do_pca == do_pca
        assert not index.is_trained
        built.append(index)
    x = data[0]
    xq = np.random.default_rng(4).normal(size=(600, D_)).astype("float32")
    gt = voisin.knn(xq, x, 1)[1][:, 0]
    recalls = []
    for index in built:
        index.train(x)
        index.add(x)
        index.nprobe = 4
        I = index.search(xq, 50)[1]
        recalls.append(np.mean([g in row for g, row in zip(gt, I)]))
    # as good as faiss's (up to k-means and ITQ differences), far above chance (50 / 3000)
    assert recalls[0] >= recalls[1] - 0.05 and recalls[0] > 0.04, recalls


def test_replace_vt_and_bad_input(data):
    x = data[0]
    index = voisin.IndexIVFSpectralHash(voisin.IndexFlatL2(D_), D_, NLIST, 8, 1.0)
    lsh = voisin.IndexPreTransform(voisin.ITQTransform(D_, 8, True), voisin.IndexLSH(8, 8, False))
    lsh.train(x)
    index.replace_vt(lsh)
    assert index.vt is lsh.chain[0] and index.threshold_type == 0
    index.train(x)
    index.add(x)
    with pytest.raises(ValueError, match="vt"):
        index.replace_vt(voisin.PCAMatrix(D_, 4))
    with pytest.raises(ValueError, match="IndexLSH"):
        index.replace_vt(voisin.IndexPreTransform(voisin.PCAMatrix(D_, 8), voisin.IndexLSH(8, 8)))
    with pytest.raises(ValueError, match="period"):
        voisin.IndexIVFSpectralHash(voisin.IndexFlatL2(D_), D_, NLIST, 8, 0.0)
    with pytest.raises(ValueError, match="nbit"):
        voisin.IndexIVFSpectralHash(voisin.IndexFlatL2(D_), D_, NLIST, 0, 1.0)
    bad = voisin.IndexIVFSpectralHash(voisin.IndexFlatL2(D_), D_, NLIST, 8, 1.0)
    bad.threshold_type = 7
    with pytest.raises(ValueError, match="threshold_type"):
        bad.train(x)
    with pytest.raises(voisin.FactoryError, match="METRIC_L2"):
        voisin.index_factory(D_, "IVF8,ITQ8,SH", voisin.METRIC_INNER_PRODUCT)
    with pytest.raises(voisin.FactoryError, match="spectral hash"):
        voisin.index_factory(D_, "IVF8,ITQ8,SHx")
    with pytest.raises(voisin.FactoryError, match="bits"):
        voisin.index_factory(D_, "IVF8,ITQ32,SH")


def test_spectral_hash_with_lsh_encoder_equals_the_lsh_codes(data):
    """FAISS's own check: replace_vt(ITQ + LSH) with a large negative period
    gives the codes of the LSH index (the sign bits of the projection)."""
    x = data[0]
    enc = voisin.index_factory(D_, "ITQ16,LSH")
    enc.train(x)
    q = voisin.IndexFlatL2(D_)
    q.add(np.zeros((1, D_), np.float32))
    index = voisin.IndexIVFSpectralHash(q, D_, 1, 16, -100000.0)
    index.replace_vt(enc)
    assert index.is_trained
    np.testing.assert_array_equal(index.encode_vectors(x, np.zeros(len(x), np.int64)),
                                  enc.index.sa_encode(enc.apply_chain(x)))


@pytest.mark.parametrize("tt", [0, 1, 3])
def test_faiss_bytes_survive_a_voisin_round_trip(data, tt):
    _, ref = _pair(data, tt, 2.0)
    if tt == 3:  # FAISS's median training leaves n_train x nbit values, voisin keeps nlist x nbit
        ref.trained.resize(NLIST * NBIT)
    buf = faiss.serialize_index(ref)
    np.testing.assert_array_equal(
        voisin.serialize_index(voisin.deserialize_index(buf), checksum=False), buf)


def test_batch_pipelines_equal_one_query_at_a_time(data):
    ours, _ = _pair(data, 3, 1.0, nprobe=4)
    xq = np.random.default_rng(8).normal(size=(200, D_)).astype("float32")
    D, I = ours.search(xq, 10)
    for i in range(0, 200, 37):
        Di, Ii = ours.search(xq[i:i + 1], 10)
        np.testing.assert_array_equal(Di[0], D[i])
        np.testing.assert_array_equal(Ii[0], I[i])
