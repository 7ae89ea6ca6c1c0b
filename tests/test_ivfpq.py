"""IndexIVFPQ: same codes and results as faiss given the same trained parts,
exact ADC semantics vs numpy, recall floors, filters, removal, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import voisin
from voisin.indexes.ivfpq import IndexIVFPQ

from conftest import brute_force

faiss = pytest.importorskip("faiss")
# faiss's OpenMP threads spin when the machine is oversubscribed (shared CI/dev
# boxes): one thread keeps the reference side fast and deterministic
faiss.omp_set_num_threads(1)

D_ = 32
NLIST = 32


def clustered(rng, n, d=D_, nclusters=60):
    centers = rng.normal(size=(nclusters, d)).astype(np.float32) * 3
    return (centers[rng.integers(0, nclusters, n)] + rng.normal(size=(n, d))).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    return clustered(rng, 8000), clustered(rng, 30)


@pytest.fixture(scope="module")
def faiss_pair(data):
    """faiss IVF-PQ indexes (L2/IP x 8/5 bits) and voisin copies of their trained parts."""
    xb, _ = data
    out = {}
    for metric in (voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT):
        for nbits in (8, 5):
            fq = faiss.IndexFlat(D_, metric)
            f = faiss.IndexIVFPQ(fq, D_, NLIST, 8, nbits, metric)
            f.train(xb[:4000])
            f.add(xb)
            v = IndexIVFPQ(voisin.IndexFlat(D_, metric), D_, NLIST, 8, nbits, metric)
            v.set_trained_parts(fq.reconstruct_n(0, NLIST), faiss.vector_to_array(f.pq.centroids))
            v.add(xb)
            out[metric, nbits] = (f, v)
    return out


@pytest.mark.parametrize("metric", [voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT])
@pytest.mark.parametrize("nbits", [8, 5])
def test_same_codes_and_results_as_faiss(faiss_pair, data, metric, nbits):
    _, xq = data
    f, v = faiss_pair[metric, nbits]
    assert v.code_size == f.code_size
    inv = f.invlists
    for l in range(NLIST):
        n = inv.list_size(l)
        fcodes = faiss.rev_swig_ptr(inv.get_codes(l), n * f.code_size).copy().reshape(n, -1)
        fids = faiss.rev_swig_ptr(inv.get_ids(l), n).copy()
        np.testing.assert_array_equal(v.invlists.get_ids(l), fids)
        np.testing.assert_array_equal(v.invlists.get_codes(l), fcodes)
    for nprobe in (1, 6):
        f.nprobe = v.nprobe = nprobe
        Df, If = f.search(xq, 10)
        for batch in (xq, xq[:2]):  # parallel batch path and fused single-query path
            D, I = v.search(batch, 10)
            n = batch.shape[0]
            np.testing.assert_allclose(D, Df[:n], rtol=1e-4, atol=1e-3)
            # ids may differ only where distances tie
            diff = I != If[:n]
            assert np.all(np.abs(D[diff] - Df[:n][diff]) < 1e-3)


@pytest.mark.parametrize("metric", [voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT])
def test_all_lists_probed_is_exact_adc(faiss_pair, data, metric):
    """nprobe = nlist: results = exact search against the decoded vectors."""
    xb, xq = data
    _, v = faiss_pair[metric, 8]
    v.nprobe = NLIST
    rec = v.reconstruct_batch(np.arange(len(xb)))
    D, I = v.search(xq, 10)
    Dref, Iref = brute_force(xq, rec, 10, metric)
    np.testing.assert_allclose(D, Dref, rtol=1e-4, atol=2e-3)
    assert (I == Iref).mean() > 0.97


@pytest.mark.parametrize("use_precomputed", [1, -1])
def test_tables_with_and_without_precomputation_agree(faiss_pair, data, use_precomputed):
    _, xq = data
    _, v = faiss_pair[voisin.METRIC_L2, 8]
    v.nprobe = 6
    D0, I0 = v.search(xq, 10)
    saved = v.use_precomputed_table
    try:
        v.use_precomputed_table = use_precomputed
        D1, I1 = v.search(xq, 10)
    finally:
        v.use_precomputed_table = saved
    np.testing.assert_allclose(D1, D0, rtol=1e-4, atol=1e-3)
    assert (I1 == I0).mean() > 0.98


@pytest.mark.parametrize("metric", [voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT])
def test_train_recall_floor_vs_faiss(data, metric):
    xb, xq = data
    v = IndexIVFPQ(voisin.IndexFlat(D_, metric), D_, NLIST, 8, 6, metric)
    v.train(xb[:4000])
    assert v.is_trained
    v.add(xb)
    f = faiss.IndexIVFPQ(faiss.IndexFlat(D_, metric), D_, NLIST, 8, 6, metric)
    f.train(xb[:4000])
    f.add(xb)
    v.nprobe = f.nprobe = 8
    _, gt = brute_force(xq, xb, 10, metric)

    def recall(I):
        return np.mean([len(set(a) & set(b)) / 10 for a, b in zip(I, gt)])

    rv, rf = recall(v.search(xq, 10)[1]), recall(f.search(xq, 10)[1])
    assert rv > (0.3 if metric == voisin.METRIC_L2 else 0.15) and rv >= rf - 0.07, (rv, rf)


def test_by_residual_false(data):
    xb, xq = data
    v = IndexIVFPQ(voisin.IndexFlatL2(D_), D_, NLIST, 8, 6, by_residual=False)
    v.train(xb[:4000])
    v.add(xb)
    v.nprobe = NLIST
    rec = v.reconstruct_batch(np.arange(len(xb)))
    np.testing.assert_allclose(rec, v.pq.decode(v.pq.compute_codes(xb)), atol=1e-6)
    D, I = v.search(xq, 5)
    Dref, _ = brute_force(xq, rec, 5, voisin.METRIC_L2)
    np.testing.assert_allclose(D, Dref, rtol=1e-4, atol=2e-3)


def test_filters_removal_range(faiss_pair, data):
    xb, xq = data
    f, v0 = faiss_pair[voisin.METRIC_L2, 8]
    v = IndexIVFPQ(voisin.IndexFlatL2(D_), D_, NLIST, 8, 8)
    v.set_trained_parts(v0.quantizer.reconstruct_n(0, NLIST), v0.pq.centroids)
    ids = np.arange(len(xb), dtype=np.int64) * 2 + 5
    v.add_with_ids(xb, ids)
    v.nprobe = NLIST
    rec = v.reconstruct_batch(ids)
    allowed = (ids % 3) == 0
    params = voisin.SearchParametersIVF(nprobe=NLIST, sel=voisin.IDSelectorBatch(ids[allowed]))
    D, I = v.search(xq, 10, params=params)
    Dref, Iref = brute_force(xq, rec, 10, voisin.METRIC_L2, allowed=allowed, ids=ids)
    np.testing.assert_allclose(D, Dref, rtol=1e-4, atol=2e-3)
    assert np.isin(I, ids[allowed]).all()
    # range search: same set as brute force on the reconstructions, away from the boundary
    radius = float(np.median(Dref[:, 5]))
    lims, Dr, Ir = v.range_search(xq[:5], radius)
    full = ((xq[:5, None, :].astype(np.float64) - rec[None].astype(np.float64)) ** 2).sum(-1)
    for i in range(5):
        got = set(Ir[lims[i]:lims[i + 1]].tolist())
        want = set(ids[full[i] < radius].tolist())
        edge = set(ids[np.abs(full[i] - radius) < 1e-3].tolist())
        assert got ^ want <= edge
    # removal
    gone = ids[:3000]
    assert v.remove_ids(gone) == 3000
    assert v.ntotal == len(xb) - 3000
    D2, I2 = v.search(xq, 10)
    assert not np.isin(I2, gone).any()
    Dref2, _ = brute_force(xq, rec[3000:], 10, voisin.METRIC_L2, ids=ids[3000:])
    np.testing.assert_allclose(D2, Dref2, rtol=1e-4, atol=2e-3)
    with pytest.raises(ValueError, match="not in the index"):
        v.reconstruct(int(gone[0]))


def test_max_codes_caps_the_scan(faiss_pair, data):
    _, xq = data
    _, v = faiss_pair[voisin.METRIC_L2, 8]
    D, I = v.search(xq[:4], 10, params=voisin.SearchParametersIVF(nprobe=NLIST, max_codes=1))
    # one list at most is scanned: every id comes from the query's nearest list
    lists = v.quantizer.search(xq[:4], 1)[1][:, 0]
    for i in range(4):
        members = set(v.invlists.get_ids(int(lists[i])).tolist())
        assert set(I[i][I[i] >= 0].tolist()) <= members


def test_bad_input(data):
    xb, xq = data
    with pytest.raises(ValueError, match="multiple of M"):
        IndexIVFPQ(voisin.IndexFlatL2(30), 30, 8, 7)
    with pytest.raises(ValueError, match="dimension"):
        IndexIVFPQ(voisin.IndexFlatL2(16), 32, 8, 8)
    v = IndexIVFPQ(voisin.IndexFlatL2(D_), D_, NLIST, 8, 8)
    assert not v.is_trained
    with pytest.raises(RuntimeError, match="not trained"):
        v.add(xb[:10])
    with pytest.raises(ValueError, match="centroids"):
        v.set_trained_parts(np.zeros((3, D_)), np.zeros((8, 256, 4)))
    with pytest.raises(TypeError):
        voisin.SearchParametersIVF(nprob=3)
