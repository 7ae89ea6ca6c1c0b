"""FAISS files of residual-quantizer indexes (IxRq, IwRQ), both ways with faiss-cpu,
and IndexIVFResidualQuantizer's search against faiss."""

from __future__ import annotations

import numpy as np
import pytest

import voisin

from conftest import brute_force

faiss = pytest.importorskip("faiss")

D_ = 16
SEARCH_TYPES = [0, 1, 3, 4, 5, 6, 7, 8, 9]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(21)
    centers = rng.normal(size=(30, D_)).astype(np.float32) * 3
    xb = (centers[rng.integers(0, 30, 5000)] + rng.normal(size=(5000, D_))).astype(np.float32)
    xq = (centers[rng.integers(0, 30, 25)] + rng.normal(size=(25, D_))).astype(np.float32)
    return xb, xq


def faiss_bytes(index) -> bytes:
    return bytes(faiss.serialize_index(index))


def to_faiss(v):
    return faiss.deserialize_index(np.frombuffer(voisin.serialize_index(v, checksum=False),
                                                 dtype=np.uint8))


def same_results(Dv, Iv, Df, If):
    np.testing.assert_allclose(Dv, Df, rtol=1e-4, atol=1e-3)
    tol = 1e-3 + 1e-4 * np.abs(Df).max()
    for iv, df, i_f in zip(Iv, Df, If):
        sure = {int(i) for i, dd in zip(i_f, df) if abs(dd - df[-1]) > tol}
        assert sure <= set(iv.tolist())


# --------------------------------------------------------------------------- #
# IxRq
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("metric", [1, 0])
@pytest.mark.parametrize("st_", SEARCH_TYPES)
def test_flat_faiss_to_voisin_to_faiss(data, st_, metric):
    xb, xq = data
    f = faiss.IndexResidualQuantizer(D_, 3, 5, metric, st_)
    f.rq.train_type = 0
    f.train(xb)
    f.add(xb[:1500])
    blob = faiss_bytes(f)
    v = voisin.deserialize_index(np.frombuffer(blob, dtype=np.uint8))
    assert type(v) is voisin.IndexResidualQuantizer
    assert (v.ntotal, v.code_size, v.rq.search_type, v.metric_type) == \
        (f.ntotal, f.code_size, st_, metric)
    np.testing.assert_array_equal(v.codes, faiss.vector_to_array(f.codes).reshape(-1, f.code_size))
    np.testing.assert_array_equal(v.rq.codebooks.reshape(-1), faiss.vector_to_array(f.rq.codebooks))
    same_results(*v.search(xq, 8), *f.search(xq, 8))
    # written back, the bytes are faiss's
    assert voisin.serialize_index(v, checksum=False).tobytes() == blob


@pytest.mark.parametrize("desc", ["RQ3x6", "RQ2x5_Nqint8", "RQ1x8_2x4_Nfloat", "RQ2x6_Ncqint4"])
def test_flat_voisin_to_faiss(data, desc):
    xb, xq = data
    v = voisin.index_factory(D_, desc)
    v.rq.train_type = 0
    v.train(xb)
    v.add(xb[:2000])
    f = to_faiss(v)
    assert type(faiss.downcast_index(f)).__name__ == "IndexResidualQuantizer"
    assert f.ntotal == v.ntotal
    # faiss decodes voisin's codes to voisin's reconstructions and finds the same neighbours
    np.testing.assert_allclose(f.reconstruct_n(0, 50), v.reconstruct_n(0, 50), rtol=1e-5, atol=1e-5)
    same_results(*v.search(xq, 8), *f.search(xq, 8))


def test_untrained_round_trip():
    v = voisin.IndexResidualQuantizer(D_, 2, 4, voisin.METRIC_L2, 4)
    back = voisin.deserialize_index(voisin.serialize_index(v))
    assert not back.is_trained and back.code_size == v.code_size
    f = to_faiss(v)
    assert not f.is_trained


def test_pickle_and_write_index(tmp_path, data):
    import pickle
    xb, xq = data
    v = voisin.index_factory(D_, "RQ2x6_Nqint8")
    v.rq.train_type = 0
    v.train(xb)
    v.add(xb[:300])
    p = tmp_path / "rq.index"
    voisin.write_index(v, str(p))
    f = faiss.read_index(str(p))
    same_results(*v.search(xq, 5), *f.search(xq, 5))
    w = pickle.loads(pickle.dumps(v))
    np.testing.assert_array_equal(w.search(xq, 5)[1], v.search(xq, 5)[1])


def test_corrupt_files_are_rejected(data):
    xb, _ = data
    f = faiss.IndexResidualQuantizer(D_, 2, 4)
    f.rq.train_type = 0
    f.train(xb)
    f.add(xb[:100])
    blob = bytearray(faiss_bytes(f))
    with pytest.raises(voisin.IndexFileError):
        voisin.deserialize_index(np.frombuffer(bytes(blob[:-7]), dtype=np.uint8))
    # nbits vector of the quantizer: header (4+4+8+8+8+1+4) + d + M + count
    at = 4 + 37 + 8 + 8 + 8
    bad = bytearray(blob)
    bad[at:at + 8] = (40).to_bytes(8, "little")
    with pytest.raises(voisin.IndexFileError, match="bits"):
        voisin.deserialize_index(np.frombuffer(bytes(bad), dtype=np.uint8))


# --------------------------------------------------------------------------- #
# IndexIVFResidualQuantizer and IwRQ
# --------------------------------------------------------------------------- #
def faiss_ivf(xb, metric, st_, desc_bits=(3, 5), nlist=16):
    q = faiss.IndexFlatL2(D_) if metric == 1 else faiss.IndexFlatIP(D_)
    f = faiss.IndexIVFResidualQuantizer(q, D_, nlist, desc_bits[0], desc_bits[1], metric, st_)
    f.rq.train_type = 0
    f.train(xb)
    f.add(xb)
    f.nprobe = 4
    return f, q


@pytest.mark.parametrize("metric", [1, 0])
@pytest.mark.parametrize("st_", [0, 1, 3, 4, 6])
def test_ivf_faiss_to_voisin_to_faiss(data, st_, metric):
    xb, xq = data
    f, _q = faiss_ivf(xb, metric, st_)
    blob = faiss_bytes(f)
    v = voisin.deserialize_index(np.frombuffer(blob, dtype=np.uint8))
    assert type(v) is voisin.IndexIVFResidualQuantizer
    assert (v.ntotal, v.code_size, v.nprobe, v.by_residual) == (f.ntotal, f.code_size, 4, True)
    same_results(*v.search(xq, 10), *f.search(xq, 10))
    for l in (0, 5):
        np.testing.assert_array_equal(v.invlists.get_ids(l), faiss.rev_swig_ptr(
            f.invlists.get_ids(l), f.invlists.list_size(l)))
    assert voisin.serialize_index(v, checksum=False).tobytes() == blob


@pytest.mark.parametrize("metric", [1, 0])
@pytest.mark.parametrize("desc", ["IVF16,RQ3x5", "IVF16,RQ2x6_Nqint8", "IVF8,RQ4x4_Nfloat"])
def test_ivf_voisin_to_faiss(data, desc, metric):
    xb, xq = data
    v = voisin.index_factory(D_, desc, metric)
    v.rq.train_type = 0
    v.train(xb)
    v.add(xb)
    v.nprobe = 3
    f = to_faiss(v)
    assert type(faiss.downcast_index(f)).__name__ == "IndexIVFResidualQuantizer"
    assert f.nprobe == 3
    same_results(*v.search(xq, 10), *f.search(xq, 10))


def test_ivf_recall_within_noise_of_faiss(data):
    xb, xq = data
    gt = brute_force(xq, xb, 10, voisin.METRIC_L2)[1]
    f, q = faiss_ivf(xb, 1, 0, (4, 5))
    f.nprobe = 8
    # the same coarse centroids: k-means seeds alone move recall by several points here
    cq = voisin.IndexFlatL2(D_)
    cq.add(q.reconstruct_n(0, q.ntotal))
    v = voisin.IndexIVFResidualQuantizer(cq, D_, 16, 4, 5)
    v.rq.train_type = 0
    v.train(xb)
    v.add(xb)
    v.nprobe = 8

    def recall(I):
        return np.mean([len(set(a) & set(b)) / 10 for a, b in zip(I, gt)])
    rv, rf = recall(v.search(xq, 10)[1]), recall(f.search(xq, 10)[1])
    assert rv >= rf - 0.06, (rv, rf)


def test_ivf_api(data):
    xb, xq = data
    v = voisin.IndexIVFResidualQuantizer(voisin.IndexFlatL2(D_), D_, 8, 2, 6, voisin.METRIC_L2,
                                         voisin.AdditiveQuantizer.ST_norm_qint8)
    v.rq.train_type = 0
    v.train(xb)
    v.add_with_ids(xb[:1000], np.arange(1000) * 3)
    v.nprobe = 8
    D, I = v.search(xq, 5)
    assert np.all(I % 3 == 0)
    rec = v.reconstruct(int(I[0, 0]))
    codes = v.encode_vectors(xb[:4], np.zeros(4, dtype=np.int64))
    assert codes.shape == (4, v.code_size)
    np.testing.assert_allclose(v.decode_vectors(codes, np.zeros(4, dtype=np.int64)).shape, (4, D_))
    assert rec.shape == (D_,)
    # with all lists probed the distance is the one to the reconstruction (up to the
    # 8-bit norm quantization)
    assert abs(float(((xq[0] - rec) ** 2).sum()) - D[0, 0]) < 0.05 * max(1.0, D[0, 0]) + 0.5
    sel = voisin.IDSelectorRange(0, 300)
    Ds, Is = v.search(xq, 5, params=voisin.SearchParametersIVF(sel=sel, nprobe=8))
    assert np.all((Is >= 0) & (Is < 300))
    lims, Dr, Ir = v.range_search(xq[:3], float(D[:3, -1].max()))
    assert lims[-1] >= 15
    assert v.remove_ids(np.arange(0, 300)) == 100
    assert v.ntotal == 900
    v.reset()
    assert v.ntotal == 0


def test_ivf_bad_input(data):
    xb, _ = data
    with pytest.raises(TypeError, match="quantizer or the dimension"):
        voisin.IndexIVFResidualQuantizer()
    with pytest.raises(ValueError, match="nbits"):
        voisin.IndexIVFResidualQuantizer(voisin.IndexFlatL2(D_), D_, 8, 2, 0)
    v = voisin.IndexIVFResidualQuantizer(voisin.IndexFlatL2(D_), D_, 8, 2, 4)
    with pytest.raises(RuntimeError, match="not trained"):
        v.add(xb[:5])
    with pytest.raises(ValueError, match="x"):
        v.train(xb[:, :4])


# --------------------------------------------------------------------------- #
# product residual quantizers: IxPR, IwPR
# --------------------------------------------------------------------------- #
def _default_train_type(prq, downcast=None):
    for s in range(prq.nsplits):
        q = prq.subquantizer(s)
        (downcast(q) if downcast else q).train_type = 0


@pytest.mark.parametrize("metric", [1, 0])
@pytest.mark.parametrize("desc", ["PRQ2x2x5", "PRQ2x2x5_Nqint8", "IVF8,PRQ2x2x5",
                                  "IVF8,PRQ4x1x6_Nfloat"])
def test_prq_both_ways(data, desc, metric):
    xb, xq = data
    owner = faiss.index_factory(D_, desc, metric)
    f = faiss.downcast_index(owner)
    _default_train_type(f.prq, faiss.downcast_AdditiveQuantizer)
    f.train(xb)
    f.add(xb)
    v = voisin.index_factory(D_, desc, metric)
    assert type(v).__name__ == type(f).__name__ and v.code_size == f.code_size
    assert v.prq.search_type == f.prq.search_type
    if "IVF" in desc:
        f.nprobe = 3
    blob = faiss_bytes(f)
    w = voisin.deserialize_index(np.frombuffer(blob, dtype=np.uint8))
    assert type(w) is type(v)
    same_results(*w.search(xq, 8), *f.search(xq, 8))
    assert voisin.serialize_index(w, checksum=False).tobytes() == blob
    _default_train_type(v.prq)
    v.train(xb)
    v.add(xb)
    if "IVF" in desc:
        v.nprobe = 3
    same_results(*v.search(xq, 8), *to_faiss(v).search(xq, 8))


def test_prq_error_within_noise_of_faiss(data):
    xb, _ = data
    f = faiss.IndexProductResidualQuantizer(D_, 2, 2, 5)
    _default_train_type(f.prq, faiss.downcast_AdditiveQuantizer)
    f.train(xb)
    f.add(xb)
    v = voisin.IndexProductResidualQuantizer(D_, 2, 2, 5)
    _default_train_type(v.prq)
    v.train(xb)
    v.add(xb)
    ev = float(((v.reconstruct_n(0, v.ntotal) - xb) ** 2).sum(1).mean())
    ef = float(((f.reconstruct_n(0, f.ntotal) - xb) ** 2).sum(1).mean())
    assert ev <= ef * 1.05, (ev, ef)


def test_prq_bad_input():
    with pytest.raises(ValueError, match="nsplits"):
        voisin.ProductResidualQuantizer(10, 3, 2, 4)
    with pytest.raises(ValueError, match="multiple"):
        voisin.index_factory(10, "PRQ3x2x4")
    with pytest.raises(ValueError, match="codebooks"):
        voisin.ProductResidualQuantizer(8, 2, 1, 4).set_codebooks(np.zeros((32, 8)))


# --------------------------------------------------------------------------- #
# ResidualCoarseQuantizer: ImRQ, IVF{n}(RCQ...)
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("desc", ["IVF256(RCQ2x4),Flat", "IVF64(RCQ1x6),RQ2x6", "IVF256(RCQ2x4),SQ8"])
def test_rcq_ivf_both_ways(data, desc):
    xb, xq = data
    f = faiss.index_factory(D_, desc)
    f.train(xb)
    f.add(xb)
    faiss.extract_index_ivf(f).nprobe = 4
    blob = faiss_bytes(f)
    v = voisin.deserialize_index(np.frombuffer(blob, dtype=np.uint8))
    assert type(v.quantizer) is voisin.ResidualCoarseQuantizer
    same_results(*v.search(xq, 5), *f.search(xq, 5))
    assert voisin.serialize_index(v, checksum=False).tobytes() == blob
    w = voisin.index_factory(D_, desc)
    assert type(w.quantizer) is voisin.ResidualCoarseQuantizer and w.nlist == v.nlist
    w.quantizer.rq.train_type = 0
    w.train(xb)
    w.add(xb)
    w.nprobe = 4
    assert w.quantizer.ntotal == w.nlist
    same_results(*w.search(xq, 5), *to_faiss(w).search(xq, 5))


@pytest.mark.parametrize("beam_factor", [4.0, 1.0, -1.0])
def test_rcq_search_matches_faiss(data, beam_factor):
    xb, xq = data
    f = faiss.ResidualCoarseQuantizer(D_, 2, 5)
    f.rq.train_type = 0
    f.train(xb)
    v = voisin.deserialize_index(np.frombuffer(faiss_bytes(f), dtype=np.uint8))
    assert v.ntotal == f.ntotal == 1024
    f.set_beam_factor(beam_factor)
    v.set_beam_factor(beam_factor)
    Df, If = f.search(xq, 6)
    Dv, Iv = v.search(xq, 6)
    same_results(Dv, Iv, Df, If)
    # a label is its codes: reconstructing it gives the reported distance
    rec = v.reconstruct_batch(Iv[:, 0])
    np.testing.assert_allclose(((xq - rec) ** 2).sum(1), Dv[:, 0], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(rec, f.reconstruct_batch(Iv[:, 0]), rtol=1e-5, atol=1e-5)
    # per-call beam factor
    p = voisin.SearchParametersResidualCoarseQuantizer(beam_factor=-1.0)
    Dx, Ix = v.search(xq, 6, params=p)
    exact = voisin.knn(xq, v.reconstruct_n(0, v.ntotal), 6)
    np.testing.assert_allclose(Dx, exact[0], rtol=1e-4, atol=1e-3)


def test_rcq_bad_input(data):
    xb, _ = data
    rcq = voisin.ResidualCoarseQuantizer(D_, 2, 4)
    with pytest.raises(ValueError, match="beam_factor"):
        rcq.set_beam_factor(0.5)
    with pytest.raises(ValueError, match="bits"):
        voisin.ResidualCoarseQuantizer(D_, 4, 16)
    with pytest.raises(ValueError, match="nlist"):
        voisin.index_factory(D_, "IVF100(RCQ2x4),Flat")
    rcq.rq.train_type = 0
    rcq.train(xb)
    with pytest.raises(NotImplementedError, match="not applicable"):
        rcq.add(xb[:3])
    with pytest.raises(ValueError, match="out of range"):
        rcq.reconstruct(256)


@pytest.mark.parametrize("metric", [voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT])
@pytest.mark.parametrize("by_residual", [True, False])
def test_ivf_all_lists_is_exact_over_reconstructions(data, metric, by_residual):
    """With every list probed and exact norms, IVF-RQ is a k-NN over its reconstructions."""
    xb, xq = data
    v = voisin.IndexIVFResidualQuantizer(voisin.IndexFlat(D_, metric), D_, 8, 2, 5, metric)
    v.by_residual = by_residual
    v.rq.train_type = 0
    v.train(xb)
    v.add(xb[:1500])
    v.nprobe = 8
    rec = v.reconstruct_n(0, 1500)
    Dref, _ = brute_force(xq, rec, 10, metric)
    D, I = v.search(xq, 10)
    np.testing.assert_allclose(D, Dref, rtol=1e-4, atol=2e-3)
    direct = ((xq[:, None, :] - rec[I]) ** 2).sum(-1) if metric == voisin.METRIC_L2 else \
        (xq[:, None, :] * rec[I]).sum(-1)
    np.testing.assert_allclose(D, direct, rtol=1e-4, atol=2e-3)
