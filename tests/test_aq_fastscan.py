"""Additive-quantizer fast-scan (IndexResidualQuantizerFastScan,
IndexLocalSearchQuantizerFastScan): search on faiss-written files equals
faiss's, files both ways (byte-identical when written back), norm_scale
estimation, recall against the exact additive-quantizer distances, factory
grammar and bad input."""

from __future__ import annotations

import numpy as np
import pytest

import voisin
from voisin.indexes.aq_fastscan import (IndexLocalSearchQuantizerFastScan,
                                        IndexProductLocalSearchQuantizerFastScan,
                                        IndexProductResidualQuantizerFastScan,
                                        IndexResidualQuantizerFastScan, estimate_norm_scale)

from conftest import assert_same_results

faiss = pytest.importorskip("faiss")
faiss.omp_set_num_threads(1)

D_ = 16
K_ = 10
# (factory string, metric): odd and even M, both codecs, both metrics
CASES = [("RQ4x4fs_Nrq2x4", "L2"), ("RQ5x4fs_Nrq2x4", "L2"), ("LSQ3x4fs_Nlsq2x4", "L2"),
         ("RQ4x4fs", "IP"), ("LSQ5x4fs", "IP"),
         ("PRQ2x2x4fs_Nrq2x4", "L2"), ("PLSQ2x3x4fs_Nlsq2x4", "L2"), ("PRQ4x1x4fs", "IP")]


def _metric(name: str, lib) -> int:
    return lib.METRIC_L2 if name == "L2" else lib.METRIC_INNER_PRODUCT


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    # uniform data in the positive orthant: the norms span more than the inner
    # products, so training picks norm_scale > 1 (FAISS's NormTableScaler path)
    return rng.random((3000, D_), dtype=np.float32), rng.random((40, D_), dtype=np.float32)


@pytest.fixture(scope="module")
def faiss_files(data, tmp_path_factory):
    xb, _ = data
    out = {}
    for key, metric in CASES:
        idx = faiss.index_factory(D_, key, _metric(metric, faiss))
        if hasattr(idx, "lsq"):
            idx.lsq.train_iters = 4
        idx.train(xb)
        idx.add(xb)
        path = str(tmp_path_factory.mktemp("aqfs") / f"{key}_{metric}.index")
        faiss.write_index(idx, path)
        out[key, metric] = (idx, path)
    return out


def _tol(D):
    return 1e-5 * (1 + np.abs(D).max())


@pytest.mark.parametrize("key,metric", CASES)
def test_faiss_file_search_equals_faiss(faiss_files, data, key, metric):
    _, xq = data
    fidx, path = faiss_files[key, metric]
    v = voisin.read_index(path)
    assert type(v).__name__ == type(fidx).__name__
    assert (v.M, v.M2, v.code_size, v.norm_scale) == (fidx.M, fidx.M2, fidx.code_size,
                                                      fidx.norm_scale)
    Df, If = fidx.search(xq, K_)
    Dv, Iv = v.search(xq, K_)
    assert_same_results(Df, If, Dv, Iv, _tol(Df))
    # one query at a time takes the serial kernel
    Ds, Is = v.search(xq[:3], K_)
    assert_same_results(Df[:3], If[:3], Ds, Is, _tol(Df))


@pytest.mark.parametrize("key,metric", CASES)
def test_files_written_back_are_faiss_bytes(faiss_files, key, metric, tmp_path):
    _, path = faiss_files[key, metric]
    v = voisin.read_index(path)
    out = str(tmp_path / "back.index")
    voisin.write_index(v, out, checksum=False)
    assert open(out, "rb").read() == open(path, "rb").read()
    # the stored codes decode to faiss's reconstructions
    fidx = faiss_files[key, metric][0]
    np.testing.assert_allclose(v.reconstruct_n(0, 50), fidx.reconstruct_n(0, 50), atol=1e-5)


@pytest.mark.parametrize("cls,kw,metric", [
    (IndexResidualQuantizerFastScan, {}, "L2"),
    (IndexLocalSearchQuantizerFastScan, {}, "L2"),
    (IndexResidualQuantizerFastScan, {"search_type": 1}, "IP"),
    (IndexProductResidualQuantizerFastScan, {}, "L2")])
def test_voisin_file_read_by_faiss(data, cls, kw, metric, tmp_path):
    xb, xq = data
    if cls is IndexProductResidualQuantizerFastScan:
        v = cls(D_, 2, 2, 4, _metric(metric, voisin), **kw)
        for q in v.prq.quantizers:
            q.train_type = voisin.ResidualQuantizer.Train_default
    else:
        v = cls(D_, 5, 4, _metric(metric, voisin), **kw)
    if hasattr(v, "lsq"):
        v.lsq.train_iters = 3
    elif hasattr(v, "rq"):
        v.rq.train_type = voisin.ResidualQuantizer.Train_default
    v.train(xb)
    v.add(xb)
    path = str(tmp_path / "v.index")
    voisin.write_index(v, path)
    f = faiss.read_index(path)
    assert f.ntotal == v.ntotal and f.norm_scale == v.norm_scale
    Dv, Iv = v.search(xq, K_)
    Df, If = f.search(xq, K_)
    assert_same_results(Df, If, Dv, Iv, _tol(Df))
    if cls is not IndexLocalSearchQuantizerFastScan:
        # the beam search is deterministic: faiss encodes to the same codes
        # (LSQ's encoder starts from random codes, its codes may differ)
        np.testing.assert_array_equal(f.sa_encode(xb[:200]), v.sa_encode(xb[:200]))


def test_norm_scale_estimate_matches_faiss(faiss_files, data):
    xb, _ = data
    for key, metric in CASES:
        if metric != "L2":
            continue
        fidx, path = faiss_files[key, metric]
        v = voisin.read_index(path)
        assert fidx.norm_scale > 1  # the case where the scaler matters
        assert estimate_norm_scale(v.aq, xb) == fidx.norm_scale


@pytest.mark.parametrize("key,metric", CASES[:1] + CASES[3:4])
def test_recall_against_exact_aq_distances(faiss_files, data, key, metric):
    """The quantized scan finds most of the exact additive-quantizer neighbours."""
    _, xq = data
    v = voisin.read_index(faiss_files[key, metric][1])
    rec = v.reconstruct_n(0, v.ntotal).astype(np.float64)
    q = xq.astype(np.float64)
    if metric == "L2":
        exact = ((q[:, None, :] - rec[None]) ** 2).sum(-1)
        gt = np.argsort(exact, axis=1)[:, :K_]
    else:
        gt = np.argsort(-(q @ rec.T), axis=1)[:, :K_]
    _, I = v.search(xq, K_)
    recall = np.mean([len(set(I[i]) & set(gt[i])) / K_ for i in range(len(xq))])
    assert recall > 0.6, recall
    # and the distances are close to the exact ones (the LUT quantization error)
    D, I = v.search(xq, 1)
    y = rec[I[:, 0]]
    want = ((y * y).sum(1) - 2 * (q * y).sum(1)) if metric == "L2" else (q * y).sum(1)
    span = np.abs(want).max()
    np.testing.assert_allclose(D[:, 0], want, atol=0.05 * span)


def test_filtered_search_and_remove(faiss_files, data):
    _, xq = data
    v = voisin.read_index(faiss_files["RQ4x4fs_Nrq2x4", "L2"][1])
    allowed = np.arange(0, v.ntotal, 3)
    params = voisin.SearchParameters(sel=voisin.IDSelectorBatch(allowed))
    D, I = v.search(xq, K_, params=params)
    assert np.isin(I, allowed).all()
    # same as scanning only those codes
    sub = IndexResidualQuantizerFastScan(D_, 4)
    sub.aq, sub.norm_scale, sub.is_trained = v.aq, v.norm_scale, True
    sub.add_codes(v.codes[allowed])
    Ds, Is = sub.search(xq, K_)
    assert_same_results(Ds, allowed[Is], D, I, _tol(Ds))
    n0 = v.ntotal
    assert v.remove_ids(voisin.IDSelectorRange(0, 100)) == 100
    assert v.ntotal == n0 - 100


def test_factory_grammar():
    i = voisin.index_factory(D_, "RQ6x4fs_64_Nrq2x4")
    assert isinstance(i, IndexResidualQuantizerFastScan)
    assert (i.M, i.M2, i.bbs, i.code_size) == (8, 8, 64, 4)
    f = faiss.index_factory(D_, "RQ6x4fs_64_Nrq2x4")
    assert (f.M, f.M2, f.bbs, f.code_size, f.max_train_points) == (i.M, i.M2, i.bbs, i.code_size,
                                                                   i.max_train_points)
    j = voisin.index_factory(D_, "LSQ3x4fs", voisin.METRIC_INNER_PRODUCT)
    assert isinstance(j, IndexLocalSearchQuantizerFastScan) and j.M == 3
    for bad in ("RQ4x4fs", "RQ4x8fs_Nrq2x4", "RQ4x4fs_48_Nrq2x4", "RQ0x4fs_Nrq2x4"):
        with pytest.raises(ValueError):
            voisin.index_factory(D_, bad)


def test_bad_input(data, tmp_path):
    xb, xq = data
    with pytest.raises(ValueError, match="nbits"):
        IndexResidualQuantizerFastScan(D_, 4, 8)
    with pytest.raises(ValueError, match="search_type"):
        IndexResidualQuantizerFastScan(D_, 4, 4, voisin.METRIC_L2, 0)
    with pytest.raises(ValueError, match="search_type"):
        IndexResidualQuantizerFastScan(D_, 4, 4, voisin.METRIC_INNER_PRODUCT)
    with pytest.raises(ValueError, match="metric"):
        IndexLocalSearchQuantizerFastScan(D_, 4, 4, voisin.METRIC_L1)
    with pytest.raises(ValueError, match="bbs"):
        IndexResidualQuantizerFastScan(D_, 4, 4, bbs=40)
    v = IndexResidualQuantizerFastScan(D_, 2)
    with pytest.raises(Exception):
        v.add(xb)  # not trained
    v.rq.train_type = voisin.ResidualQuantizer.Train_default
    v.train(xb[:1000])
    v.add(xb[:100])
    with pytest.raises(ValueError, match="x"):
        v.search(xq[:, :8], 3)
    with pytest.raises(ValueError, match="k"):
        v.search(xq, 0)
    w = IndexResidualQuantizerFastScan(D_, 2, bbs=64)
    w.aq, w.is_trained = v.aq, True
    with pytest.raises(ValueError, match="bbs"):
        voisin.write_index(w, str(tmp_path / "w.index"))
    # a truncated file is refused with a clear error
    path = str(tmp_path / "t.index")
    voisin.write_index(v, path, checksum=False)
    raw = open(path, "rb").read()
    open(path, "wb").write(raw[:-40])
    with pytest.raises(Exception, match="IndexResidualQuantizerFastScan"):
        voisin.read_index(path)


# --- IVF ------------------------------------------------------------------------------

from voisin.indexes.aq_fastscan import (IndexIVFLocalSearchQuantizerFastScan,  # noqa: E402
                                        IndexIVFResidualQuantizerFastScan)

IVF_CASES = [("IVF16,RQ4x4fsr_Nrq2x4", "L2"), ("IVF16,RQ5x4fs_Nrq2x4", "L2"),
             ("IVF16,LSQ3x4fsr_Nlsq2x4", "L2"), ("IVF16,RQ4x4fsr", "IP"), ("IVF16,LSQ5x4fs", "IP"),
             ("IVF16,PRQ2x2x4fsr_Nrq2x4", "L2"), ("IVF16,PLSQ2x2x4fs_Nlsq2x4", "L2"),
             ("IVF16,PRQ4x1x4fsr", "IP")]


@pytest.fixture(scope="module")
def faiss_ivf_files(data, tmp_path_factory):
    xb, _ = data
    out = {}
    for key, metric in IVF_CASES:
        idx = faiss.index_factory(D_, key, _metric(metric, faiss))
        if hasattr(idx, "lsq"):
            idx.lsq.train_iters = 4
        idx.train(xb)
        idx.add(xb)
        idx.nprobe = 4
        path = str(tmp_path_factory.mktemp("ivfaqfs") / f"{key.replace(',', '_')}_{metric}.index")
        faiss.write_index(idx, path)
        out[key, metric] = (idx, path)
    return out


@pytest.mark.parametrize("key,metric", IVF_CASES)
def test_ivf_faiss_file_search_equals_faiss(faiss_ivf_files, data, key, metric, tmp_path):
    _, xq = data
    fidx, path = faiss_ivf_files[key, metric]
    v = voisin.read_index(path)
    assert type(v).__name__ == type(fidx).__name__
    assert (v.by_residual, v.norm_scale, v.nprobe) == (fidx.by_residual, fidx.norm_scale, 4)
    for nprobe in (1, 4, 16):
        fidx.nprobe = v.nprobe = nprobe
        Df, If = fidx.search(xq, K_)
        Dv, Iv = v.search(xq, K_)
        assert_same_results(Df, If, Dv, Iv, _tol(Df))
    fidx.nprobe = v.nprobe = 4
    out = str(tmp_path / "back.index")
    voisin.write_index(v, out, checksum=False)
    assert open(out, "rb").read() == open(path, "rb").read()
    np.testing.assert_allclose(v.reconstruct_n(0, 30), fidx.reconstruct_n(0, 30), atol=1e-5)


@pytest.mark.parametrize("cls,metric,by_residual", [
    (IndexIVFResidualQuantizerFastScan, "L2", True),
    (IndexIVFLocalSearchQuantizerFastScan, "L2", False),
    (IndexIVFResidualQuantizerFastScan, "IP", True)])
def test_ivf_voisin_file_read_by_faiss(data, cls, metric, by_residual, tmp_path):
    xb, xq = data
    m = _metric(metric, voisin)
    st = {} if metric == "L2" else {"search_type": 1}
    v = cls(voisin.IndexFlat(D_, m), D_, 16, 4, 4, m, **st)
    v.by_residual = by_residual
    if hasattr(v, "lsq"):
        v.lsq.train_iters = 3
    else:
        v.rq.train_type = voisin.ResidualQuantizer.Train_default
    v.train(xb)
    v.add(xb)
    v.nprobe = 5
    path = str(tmp_path / "v.index")
    voisin.write_index(v, path)
    f = faiss.read_index(path)
    assert (f.ntotal, f.nprobe, f.by_residual, f.norm_scale) == (v.ntotal, 5, by_residual,
                                                                v.norm_scale)
    Dv, Iv = v.search(xq, K_)
    Df, If = f.search(xq, K_)
    assert_same_results(Df, If, Dv, Iv, _tol(Df))
    # recall against the exact distances of the stored reconstructions, all lists probed
    v.nprobe = 16
    rec = v.reconstruct_n(0, v.ntotal).astype(np.float64)
    q = xq.astype(np.float64)
    score = -((q[:, None] - rec[None]) ** 2).sum(-1) if metric == "L2" else q @ rec.T
    gt = np.argsort(-score, axis=1)[:, :K_]
    _, I = v.search(xq, K_)
    assert np.mean([len(set(I[i]) & set(gt[i])) / K_ for i in range(len(xq))]) > 0.6


def test_ivf_factory_and_bad_input():
    i = voisin.index_factory(D_, "IVF8,RQ3x4fsr_64_Nrq2x4")
    assert isinstance(i, IndexIVFResidualQuantizerFastScan)
    f = faiss.index_factory(D_, "IVF8,RQ3x4fsr_64_Nrq2x4")
    assert (i.M, i.M2, i.bbs, i.by_residual, i.code_size, i.max_train_points) == \
        (f.M, f.M2, f.bbs, f.by_residual, f.code_size, f.max_train_points)
    j = voisin.index_factory(D_, "IVF8,LSQ3x4fs_Nlsq2x4")
    assert isinstance(j, IndexIVFLocalSearchQuantizerFastScan) and not j.by_residual
    for bad in ("IVF8,RQ3x4fs", "IVF8,RQ3x8fs_Nrq2x4", "RQ3x4fsr_Nrq2x4"):
        with pytest.raises(ValueError):
            voisin.index_factory(D_, bad)
    with pytest.raises(ValueError, match="search_type"):
        IndexIVFResidualQuantizerFastScan(voisin.IndexFlatL2(D_), D_, 8, 4, 4, voisin.METRIC_L2, 0)
    with pytest.raises(ValueError, match="nbits"):
        IndexIVFLocalSearchQuantizerFastScan(voisin.IndexFlatL2(D_), D_, 8, 4, 6)


def test_constructor_defaults_are_faiss():
    """FAISS's default search types: rq2x4 for the flat RQ / PRQ / PLSQ forms,
    lsq2x4 for flat LSQ and for every IVF form."""
    q = faiss.IndexFlatL2(D_)
    qv = voisin.IndexFlatL2(D_)
    pairs = [
        (faiss.IndexResidualQuantizerFastScan(D_, 2, 4), IndexResidualQuantizerFastScan(D_, 2, 4)),
        (faiss.IndexLocalSearchQuantizerFastScan(D_, 2, 4),
         IndexLocalSearchQuantizerFastScan(D_, 2, 4)),
        (faiss.IndexProductResidualQuantizerFastScan(D_, 2, 2, 4),
         IndexProductResidualQuantizerFastScan(D_, 2, 2, 4)),
        (faiss.IndexProductLocalSearchQuantizerFastScan(D_, 2, 2, 4),
         IndexProductLocalSearchQuantizerFastScan(D_, 2, 2, 4)),
        (faiss.IndexIVFResidualQuantizerFastScan(q, D_, 8, 2, 4),
         IndexIVFResidualQuantizerFastScan(qv, D_, 8, 2, 4)),
        (faiss.IndexIVFLocalSearchQuantizerFastScan(q, D_, 8, 2, 4),
         IndexIVFLocalSearchQuantizerFastScan(qv, D_, 8, 2, 4)),
        (faiss.IndexIVFProductResidualQuantizerFastScan(q, D_, 8, 2, 2, 4),
         voisin.IndexIVFProductResidualQuantizerFastScan(qv, D_, 8, 2, 2, 4)),
    ]
    for f, v in pairs:
        assert (v.aq.search_type, v.M, v.M2, v.code_size, v.max_train_points) == \
            (f.aq.search_type, f.M, f.M2, f.code_size, f.max_train_points), type(v).__name__
        assert getattr(v, "by_residual", None) == getattr(f, "by_residual", None)
