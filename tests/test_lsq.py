"""LocalSearchQuantizer and its indexes against faiss-cpu (quality, files both ways)."""

from __future__ import annotations

import numpy as np
import pytest

import voisin

faiss = pytest.importorskip("faiss")

D_ = 16


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(9)
    centers = rng.normal(size=(30, D_)).astype(np.float32) * 3
    xb = (centers[rng.integers(0, 30, 2500)] + rng.normal(size=(2500, D_))).astype(np.float32)
    xq = (centers[rng.integers(0, 30, 20)] + rng.normal(size=(20, D_))).astype(np.float32)
    return xb, xq


def mse(q, x):
    return float(((q.decode(q.compute_codes(x)) - x) ** 2).sum(1).mean())


def same_results(Dv, Iv, Df, If):
    np.testing.assert_allclose(Dv, Df, rtol=1e-4, atol=1e-3)
    tol = 1e-3 + 1e-4 * np.abs(Df).max()
    for iv, df, i_f in zip(Iv, Df, If):
        sure = {int(i) for i, dd in zip(i_f, df) if abs(dd - df[-1]) > tol}
        assert sure <= set(iv.tolist())


def test_defaults_and_sizes_match_faiss():
    v, f = voisin.LocalSearchQuantizer(16, 4, 6), faiss.LocalSearchQuantizer(16, 4, 6)
    for name in ("K", "train_iters", "encode_ils_iters", "train_ils_iters", "icm_iters",
                 "chunk_size", "random_seed", "nperts", "code_size", "total_codebook_size"):
        assert getattr(v, name) == getattr(f, name), name
    assert abs(v.lambd - f.lambd) < 1e-7 and v.p == f.p


def test_trained_error_within_noise_of_faiss(data):
    xb, _ = data
    ev, ef = [], []
    for seed in (1, 2):
        v = voisin.LocalSearchQuantizer(D_, 3, 5)
        f = faiss.LocalSearchQuantizer(D_, 3, 5)
        for q in (v, f):
            q.train_iters = 10
            q.random_seed = seed
            q.train(xb)
        ev.append(mse(v, xb))
        ef.append(mse(f, xb))
    assert np.mean(ev) <= np.mean(ef) * 1.08, (ev, ef)


def test_encoding_with_faiss_codebooks_is_as_good(data):
    xb, _ = data
    f = faiss.LocalSearchQuantizer(D_, 3, 5)
    f.train_iters = 6
    f.train(xb)
    v = voisin.LocalSearchQuantizer(D_, 3, 5)
    v.set_codebooks(faiss.vector_to_array(f.codebooks))
    assert mse(v, xb) <= mse(f, xb) * 1.02
    # deterministic for a given random_seed
    np.testing.assert_array_equal(v.compute_codes(xb[:50]), v.compute_codes(xb[:50]))


def test_local_search_improves_on_icm_alone(data):
    xb, _ = data
    v = voisin.LocalSearchQuantizer(D_, 4, 4)
    v.train_iters = 5
    v.train(xb)
    rich = mse(v, xb)
    v.encode_ils_iters = 1
    v.icm_iters = 1
    assert rich < mse(v, xb)


@pytest.mark.parametrize("metric", [1, 0])
@pytest.mark.parametrize("desc", ["LSQ3x5", "LSQ2x6_Nqint8", "IVF8,LSQ2x5", "RQ2x5_Nlsq2x4"])
def test_lsq_files_both_ways(data, desc, metric):
    xb, xq = data
    owner = faiss.index_factory(D_, desc, metric)
    f = faiss.downcast_index(owner)
    inner = f.lsq if hasattr(f, "lsq") else f.rq
    if hasattr(f, "lsq"):
        inner.train_iters = 4
    else:
        inner.train_type = 0
    f.train(xb)
    f.add(xb)
    if hasattr(f, "nprobe"):
        f.nprobe = 3
    blob = bytes(faiss.serialize_index(f))
    v = voisin.deserialize_index(np.frombuffer(blob, dtype=np.uint8))
    assert type(v).__name__ == type(f).__name__
    same_results(*v.search(xq, 8), *f.search(xq, 8))
    assert voisin.serialize_index(v, checksum=False).tobytes() == blob
    w = voisin.index_factory(D_, desc, metric)
    assert type(w) is type(v) and w.code_size == f.code_size
    if hasattr(w, "lsq"):
        w.lsq.train_iters = 4
    else:
        w.rq.train_type = 0
    w.train(xb)
    w.add(xb)
    if hasattr(w, "nprobe"):
        w.nprobe = 3
    back = faiss.deserialize_index(np.frombuffer(voisin.serialize_index(w, checksum=False),
                                                 dtype=np.uint8))
    same_results(*w.search(xq, 8), *back.search(xq, 8))


def test_lsq_bad_input(data):
    xb, _ = data
    with pytest.raises(ValueError, match="nbits"):
        voisin.LocalSearchQuantizer(8, 2, 0)
    q = voisin.LocalSearchQuantizer(D_, 2, 6)
    with pytest.raises(ValueError, match="at least 64"):
        q.train(xb[:10])
    with pytest.raises(RuntimeError, match="not trained"):
        q.compute_codes(xb[:2])
    with pytest.raises(ValueError, match="malformed LSQ"):
        voisin.index_factory(D_, "LSQ4")


@pytest.mark.parametrize("desc", ["PLSQ2x2x4", "PLSQ2x1x5_Nqint8", "IVF8,PLSQ2x2x4"])
def test_plsq_files_both_ways(data, desc):
    xb, xq = data
    owner = faiss.index_factory(D_, desc)
    f = faiss.downcast_index(owner)
    for s in range(f.plsq.nsplits):
        faiss.downcast_AdditiveQuantizer(f.plsq.subquantizer(s)).train_iters = 3
    f.train(xb)
    f.add(xb)
    if hasattr(f, "nprobe"):
        f.nprobe = 3
    blob = bytes(faiss.serialize_index(f))
    v = voisin.deserialize_index(np.frombuffer(blob, dtype=np.uint8))
    assert type(v).__name__ == type(f).__name__
    assert v.plsq.quantizers[0].train_iters == 3
    same_results(*v.search(xq, 8), *f.search(xq, 8))
    assert voisin.serialize_index(v, checksum=False).tobytes() == blob
    w = voisin.index_factory(D_, desc)
    assert type(w) is type(v) and w.code_size == f.code_size
    for s in range(w.plsq.nsplits):
        voisin.downcast_AdditiveQuantizer(w.plsq.subquantizer(s)).train_iters = 3
    w.train(xb)
    w.add(xb)
    if hasattr(w, "nprobe"):
        w.nprobe = 3
    back = faiss.deserialize_index(np.frombuffer(voisin.serialize_index(w, checksum=False),
                                                 dtype=np.uint8))
    same_results(*w.search(xq, 8), *back.search(xq, 8))
    ev = float(((w.reconstruct_n(0, 500) - xb[:500]) ** 2).sum(1).mean())
    ef = float(((f.reconstruct_n(0, 500) - xb[:500]) ** 2).sum(1).mean())
    assert ev <= ef * 1.15, (ev, ef)
