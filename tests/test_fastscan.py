"""4-bit PQ fast-scan: FAISS's block layout byte for byte, quantized-table
search close to exact ADC (and to faiss), IVF variant, filters, removal, factory."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import voisin
from voisin.indexes.fastscan import IndexIVFPQFastScan, IndexPQFastScan, pack_codes
from voisin.indexes.ivfpq import IndexIVFPQ
from voisin.indexes.pq import IndexPQ
from voisin.kernels import fastscan as K

from conftest import brute_force

faiss = pytest.importorskip("faiss")
faiss.omp_set_num_threads(1)

D_ = 30
M_ = 15  # odd on purpose: exercises the padded sub-quantizer
NLIST = 16


def clustered(rng, n, d=D_, nclusters=60):
    centers = rng.normal(size=(nclusters, d)).astype(np.float32) * 3
    return (centers[rng.integers(0, nclusters, n)] + rng.normal(size=(n, d))).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    return clustered(rng, 6000), clustered(rng, 30)


@pytest.fixture(scope="module")
def faiss_flat(data):
    xb, _ = data
    out = {}
    for metric in (voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT):
        f = faiss.IndexPQFastScan(D_, M_, 4, metric)
        f.train(xb[:3000])
        f.add(xb)
        out[metric] = f
    return out


def voisin_flat(f, xb, metric, cls=IndexPQFastScan):
    v = cls(D_, M_, 4, metric)
    v.pq.set_centroids(faiss.vector_to_array(f.pq.centroids))
    v.is_trained = True
    v.add(xb)
    return v


@pytest.mark.parametrize("metric", [voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT])
def test_block_layout_equals_faiss(faiss_flat, data, metric):
    xb, _ = data
    f = faiss_flat[metric]
    v = voisin_flat(f, xb, metric)
    np.testing.assert_array_equal(v.codes, f.pq.compute_codes(xb))
    np.testing.assert_array_equal(v._blocks().ravel(), faiss.vector_to_array(f.codes))
    assert v.code_size == f.code_size and v.ntotal2 == f.ntotal2


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 100), st.integers(1, 9), st.integers(0, 2**31 - 1))
def test_pack_roundtrip(n, M, seed):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, 16, size=(n, M)).astype(np.int32)
    pq = voisin.ProductQuantizer(M, M, 4)
    packed = pack_codes(pq.pack(idx), M)
    M2 = M + (M & 1)
    out = np.empty(M2, np.int32)
    for j in range(n):
        K.unpack_block_codes(packed, j // 32, M2, j % 32, out)
        np.testing.assert_array_equal(out[:M], idx[j])
        assert M2 == M or out[M] == 0


@pytest.mark.parametrize("metric", [voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT])
def test_flat_search_close_to_exact_adc_and_faiss(faiss_flat, data, metric):
    xb, xq = data
    f = faiss_flat[metric]
    v = voisin_flat(f, xb, metric)
    ref = voisin_flat(f, xb, metric, IndexPQ)  # float tables: exact ADC
    D, I = v.search(xq, 10)
    Dr, Ir = ref.search(xq, 10)
    Df, If = f.search(xq, 10)
    # quantized tables: distances within the rounding error of M 8-bit entries
    span = np.abs(Dr[:, -1:] - Dr[:, :1]) + np.abs(Dr[:, :1]) * 0.05 + 1e-3
    assert (np.abs(D - Dr) <= span).all()
    assert (I == Ir).mean() > 0.5
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(I, If)])
    assert overlap > 0.8, overlap  # same quantization scheme as faiss
    D1, I1 = v.search(xq[4:5], 10)  # serial kernel = batch kernel
    np.testing.assert_array_equal(I1, I[4:5])


def test_flat_filter_remove_reconstruct(faiss_flat, data):
    xb, xq = data
    v = voisin_flat(faiss_flat[voisin.METRIC_L2], xb, voisin.METRIC_L2)
    allowed = np.zeros(len(xb), bool)
    allowed[1::5] = True
    params = voisin.SearchParameters(sel=voisin.IDSelectorBatch(np.flatnonzero(allowed)))
    _, I = v.search(xq, 10, params=params)
    assert allowed[I].all()
    rec = v.reconstruct_n(0, 100)
    np.testing.assert_array_equal(rec, v.pq.decode(v.codes[:100]))
    assert v.remove_ids(voisin.IDSelectorRange(0, 3000)) == 3000
    _, I2 = v.search(xq, 10)  # the block layout is rebuilt after the write
    ref = IndexPQ(D_, M_, 4)
    ref.pq = v.pq
    ref.is_trained = True
    ref.add(xb[3000:])
    _, Ir = ref.search(xq, 10)
    assert (I2 == Ir).mean() > 0.5 and I2.max() < 3000


@pytest.fixture(scope="module")
def ivf_pair(data):
    xb, _ = data
    out = {}
    for metric in (voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT):
        fq = faiss.IndexFlat(D_, metric)
        f = faiss.IndexIVFPQFastScan(fq, D_, NLIST, M_, 4, metric)
        f.train(xb[:3000])
        parts = (fq.reconstruct_n(0, NLIST), faiss.vector_to_array(f.pq.centroids))
        fs = IndexIVFPQFastScan(voisin.IndexFlat(D_, metric), D_, NLIST, M_, 4, metric)
        fs.set_trained_parts(*parts)
        fs.add(xb)
        ref = IndexIVFPQ(voisin.IndexFlat(D_, metric), D_, NLIST, M_, 4, metric)
        ref.set_trained_parts(*parts)
        ref.add(xb)
        out[metric] = (fs, ref)
    return out


@pytest.mark.parametrize("metric", [voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT])
def test_ivf_fastscan_close_to_ivfpq(ivf_pair, data, metric):
    _, xq = data
    fs, ref = ivf_pair[metric]
    assert fs.code_size == ref.code_size == (M_ + 1) // 2
    for nprobe in (1, 5):
        fs.nprobe = ref.nprobe = nprobe
        D, I = fs.search(xq, 10)
        Dr, Ir = ref.search(xq, 10)
        span = np.abs(Dr[:, -1:] - Dr[:, :1]) + np.abs(Dr[:, :1]) * 0.05 + 1e-3
        assert (np.abs(D - Dr) <= span).all()
        assert (I == Ir).mean() > 0.5
        D2, I2 = fs.search(xq[:2], 10)  # fused single-query path
        np.testing.assert_array_equal(I2, I[:2])
        np.testing.assert_allclose(D2, D[:2], rtol=1e-5, atol=1e-4)


def test_ivf_fastscan_recall_and_rerank(ivf_pair, data):
    xb, xq = data
    fs, _ = ivf_pair[voisin.METRIC_L2]
    fs.nprobe = NLIST
    _, gt = brute_force(xq, xb, 10, voisin.METRIC_L2)
    _, cand = fs.search(xq, 100)
    # re-ranking 100 fast-scan candidates on the raw vectors recovers the true top 10
    rer = []
    for i in range(len(xq)):
        c = cand[i][cand[i] >= 0]
        rer.append(c[np.argsort(((xb[c] - xq[i]) ** 2).sum(1))[:10]])
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rer, gt)])
    assert recall > 0.9, recall


def test_ivf_fastscan_filters_and_removal(ivf_pair, data):
    xb, xq = data
    fs0, _ = ivf_pair[voisin.METRIC_L2]
    fs = IndexIVFPQFastScan(voisin.IndexFlatL2(D_), D_, NLIST, M_, 4)
    fs.set_trained_parts(fs0.quantizer.reconstruct_n(0, NLIST), fs0.pq.centroids)
    fs.add(xb)
    fs.nprobe = 4
    sel = voisin.IDSelectorRange(1000, 2000)
    _, I = fs.search(xq, 10, params=voisin.SearchParametersIVF(sel=sel, nprobe=NLIST))
    assert ((I >= 1000) & (I < 2000)).all()
    fs.search(xq, 10)  # builds the block layout
    assert fs.remove_ids(np.arange(0, 6000, 2)) == 3000
    _, I = fs.search(xq, 10, params=voisin.SearchParametersIVF(nprobe=NLIST))
    assert (I[I >= 0] % 2 == 1).all()
    fs.add_with_ids(xb[:10], np.arange(10**6, 10**6 + 10))
    _, I = fs.search(xb[:3], 1, params=voisin.SearchParametersIVF(nprobe=NLIST))
    assert set(I[:, 0].tolist()) <= {1, 10**6, 10**6 + 1, 10**6 + 2}


def test_factory_and_training(data):
    xb, xq = data
    idx = voisin.index_factory(D_, f"IVF{NLIST},PQ{M_}x4fs")
    assert isinstance(idx, IndexIVFPQFastScan) and idx.nlist == NLIST and idx.pq.M == M_
    idx.train(xb[:3000])
    idx.add(xb)
    idx.nprobe = NLIST
    _, I = idx.search(xq, 10)
    _, gt = brute_force(xq, xb, 10, voisin.METRIC_L2)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(I, gt)])
    assert recall > 0.2, recall
    flat = voisin.index_factory(D_, f"PQ{M_}x4fs", voisin.METRIC_INNER_PRODUCT)
    assert isinstance(flat, IndexPQFastScan) and flat.metric_type == voisin.METRIC_INNER_PRODUCT


def test_bad_input():
    with pytest.raises(ValueError, match="4-bit"):
        IndexPQFastScan(32, 8, 8)
    with pytest.raises(ValueError, match="4-bit"):
        IndexIVFPQFastScan(voisin.IndexFlatL2(32), 32, 8, 8, 5)
    with pytest.raises(ValueError, match="bbs"):
        IndexPQFastScan(32, 8, 4, bbs=48)
    with pytest.raises(ValueError, match="multiple of M"):
        IndexPQFastScan(30, 8, 4)
    with pytest.raises(RuntimeError, match="not trained"):
        IndexPQFastScan(32, 8, 4).search(np.zeros((1, 32), np.float32), 1)
