"""Filtered search: ``SearchParameters(sel=...)`` honours the filter exactly and
still returns the k best allowed ids, for every selector type, against numpy
brute force on the allowed subset and against faiss's own selectors."""

from __future__ import annotations

import numpy as np
import pytest

import voisin
from conftest import FLT_MAX, assert_knn_valid, assert_same_results, distances_f64, tolerance

faiss = pytest.importorskip("faiss")

METRICS = [voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT]
METRIC_IDS = ["L2", "IP"]
NB = 3000


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    xb = rng.standard_normal((NB, 16)).astype(np.float32)
    xq = rng.standard_normal((40, 16)).astype(np.float32)
    return xb, xq


def _pairs(rng):
    """(voisin selector, equivalent faiss selector, allowed mask over 0..NB-1)."""
    ids = rng.choice(NB, 400, replace=False).astype(np.int64)
    few = rng.choice(NB, 5, replace=False).astype(np.int64)
    bits = rng.random(NB) < 0.5
    packed = np.packbits(bits, bitorder="little")
    in_ids = np.zeros(NB, bool)
    in_ids[ids] = True
    in_few = np.zeros(NB, bool)
    in_few[few] = True
    rng_mask = np.zeros(NB, bool)
    rng_mask[100:1700] = True
    out = {
        "range": (voisin.IDSelectorRange(100, 1700), faiss.IDSelectorRange(100, 1700), rng_mask),
        "batch": (voisin.IDSelectorBatch(ids), faiss.IDSelectorBatch(ids), in_ids),
        "batch-few": (voisin.IDSelectorBatch(few), faiss.IDSelectorBatch(few), in_few),
        "array": (voisin.IDSelectorArray(ids), faiss.IDSelectorArray(ids), in_ids),
        "bitmap": (voisin.IDSelectorBitmap(packed), faiss.IDSelectorBitmap(packed), bits),
        "bitmap-bool": (voisin.IDSelectorBitmap(bits), faiss.IDSelectorBitmap(packed), bits),
        "not": (voisin.IDSelectorNot(voisin.IDSelectorBatch(few)),
                faiss.IDSelectorNot(faiss.IDSelectorBatch(few)), ~in_few),
        "and": (voisin.IDSelectorAnd(voisin.IDSelectorRange(100, 1700), voisin.IDSelectorBitmap(bits)),
                faiss.IDSelectorAnd(faiss.IDSelectorRange(100, 1700), faiss.IDSelectorBitmap(packed)),
                rng_mask & bits),
        "or": (voisin.IDSelectorOr(voisin.IDSelectorBatch(few), voisin.IDSelectorRange(2990, 3100)),
               faiss.IDSelectorOr(faiss.IDSelectorBatch(few), faiss.IDSelectorRange(2990, 3100)),
               in_few | (np.arange(NB) >= 2990)),
        "xor": (voisin.IDSelectorXOr(voisin.IDSelectorRange(0, 2000), voisin.IDSelectorBatch(ids)),
                faiss.IDSelectorXOr(faiss.IDSelectorRange(0, 2000), faiss.IDSelectorBatch(ids)),
                (np.arange(NB) < 2000) ^ in_ids),
    }
    return out


SELECTOR_NAMES = ["range", "batch", "batch-few", "array", "bitmap", "bitmap-bool", "not", "and", "or", "xor"]


@pytest.mark.parametrize("metric", METRICS, ids=METRIC_IDS)
@pytest.mark.parametrize("name", SELECTOR_NAMES)
@pytest.mark.parametrize("nq", [3, 40], ids=["scan", "blas"])
def test_each_selector_vs_brute_force_and_faiss(data, metric, name, nq):
    xb, xq = data
    xq = xq[:nq]
    sel, fsel, allowed = _pairs(np.random.default_rng(11))[name]
    np.testing.assert_array_equal(sel.contains(np.arange(NB, dtype=np.int64)), allowed)
    np.testing.assert_array_equal(sel.mask_sequential(NB), allowed)
    index = voisin.IndexFlat(16, metric)
    index.add(xb)
    k = 10
    D, I = index.search(xq, k, params=voisin.SearchParameters(sel=sel))
    assert_knn_valid(D, I, xq, xb, k, metric, allowed=allowed)
    ref = faiss.IndexFlat(16, metric)
    ref.add(xb)
    Df, If = ref.search(xq, k, params=faiss.SearchParameters(sel=fsel))
    assert_same_results(D, I, Df, If, tolerance(xq, xb, metric))
    # range search honours the same filter
    dist = distances_f64(xq, xb, metric)
    radius = float(np.quantile(dist, 0.9 if metric == voisin.METRIC_INNER_PRODUCT else 0.1))
    lims, Dr, Ir = index.range_search(xq, radius, params=voisin.SearchParameters(sel=sel))
    lf, Dfr, Ifr = ref.range_search(xq, radius, params=faiss.SearchParameters(sel=fsel))
    assert allowed[Ir].all()
    for i in range(nq):
        mine = set(Ir[lims[i]:lims[i + 1]].tolist())
        theirs = set(Ifr[lf[i]:lf[i + 1]].tolist())
        tol = tolerance(xq[i:i + 1], xb, metric)[0]
        assert all(abs(dist[i, j] - radius) <= tol for j in mine ^ theirs)


@pytest.mark.parametrize("metric", METRICS, ids=METRIC_IDS)
@pytest.mark.parametrize("nq", [2, 25], ids=["scan", "blas"])
def test_filter_allowing_fewer_than_k_pads_like_faiss(data, metric, nq):
    xb, xq = data
    index = voisin.IndexFlat(16, metric)
    index.add(xb)
    worst = FLT_MAX if metric == voisin.METRIC_L2 else -FLT_MAX
    ref = faiss.IndexFlat(16, metric)
    ref.add(xb)
    for ids in ([], [1234], [5, 2999, 17]):
        sel = voisin.IDSelectorBatch(np.array(ids, np.int64))
        D, I = index.search(xq[:nq], 8, params=voisin.SearchParameters(sel=sel))
        allowed = np.zeros(NB, bool)
        allowed[ids] = True
        assert_knn_valid(D, I, xq[:nq], xb, 8, metric, allowed=allowed)
        assert (I[:, len(ids):] == -1).all() and (D[:, len(ids):] == worst).all()
        assert set(I[0, :len(ids)].tolist()) == set(ids)
        Df, If = ref.search(xq[:nq], 8, params=faiss.SearchParameters(
            sel=faiss.IDSelectorBatch(np.array(ids, np.int64))))
        np.testing.assert_array_equal(I == -1, If == -1)
        np.testing.assert_array_equal(D[I == -1], Df[If == -1])


@pytest.mark.parametrize("nq", [2, 25], ids=["scan", "blas"])
def test_filter_excluding_only_the_best(data, nq):
    xb, xq = data
    index = voisin.IndexFlatL2(16)
    index.add(xb)
    D0, I0 = index.search(xq[:nq], 3)
    best = np.unique(I0[:, 0])
    sel = voisin.IDSelectorNot(voisin.IDSelectorBatch(best))  # almost everything allowed
    D, I = index.search(xq[:nq], 3, params=voisin.SearchParameters(sel=sel))
    assert not np.isin(I, best).any()
    allowed = np.ones(NB, bool)
    allowed[best] = False
    assert_knn_valid(D, I, xq[:nq], xb, 3, voisin.METRIC_L2, allowed=allowed)


def test_select_all_and_select_none(data):
    xb, xq = data
    index = voisin.IndexFlatIP(16)
    index.add(xb)
    plain = index.search(xq, 5)
    D, I = index.search(xq, 5, params=voisin.SearchParameters(sel=voisin.IDSelectorAll()))
    np.testing.assert_array_equal(I, plain[1])
    np.testing.assert_array_equal(D, plain[0])
    np.testing.assert_array_equal(index.search(xq, 5, params=voisin.SearchParameters())[1], plain[1])
    for none in (voisin.IDSelectorRange(5, 5), voisin.IDSelectorRange(NB, NB + 10),
                 voisin.IDSelectorNot(voisin.IDSelectorAll()), voisin.IDSelectorBitmap(np.zeros(10, np.uint8))):
        D, I = index.search(xq, 5, params=voisin.SearchParameters(sel=none))
        assert (I == -1).all() and (D == -FLT_MAX).all()
        lims, Dr, Ir = index.range_search(xq, -1e30, params=voisin.SearchParameters(sel=none))
        assert lims[-1] == 0


def test_faiss_constructor_forms(data):
    xb, xq = data
    ids = np.array([9, 3, 7, 100, 55], np.int64)
    # FAISS's C signature: (n, ids) uses the first n ids only
    assert voisin.IDSelectorBatch(3, ids).contains(ids).tolist() == [True, True, True, False, False]
    assert voisin.IDSelectorArray(2, ids).contains(ids).tolist() == [True, True, False, False, False]
    assert voisin.IDSelectorBatch(0, ids).contains(ids).tolist() == [False] * 5
    bitmap = np.array([0b00000101, 0b10000000, 0xFF], np.uint8)  # ids 0, 2, 15, and 16..23
    probe = np.arange(-2, 30, dtype=np.int64)
    model = [(i in (0, 2, 15) or 16 <= i < 24) for i in range(-2, 30)]
    assert voisin.IDSelectorBitmap(bitmap).contains(probe).tolist() == model
    # (n_bytes, bitmap) keeps only the first n bytes
    model2 = [(i in (0, 2, 15)) for i in range(-2, 30)]
    assert voisin.IDSelectorBitmap(2, bitmap).contains(probe).tolist() == model2
    fsel = faiss.IDSelectorBitmap(2, faiss.swig_ptr(bitmap))
    assert [fsel.is_member(int(i)) for i in range(0, 30)] == model2[2:]
    index = voisin.IndexFlatL2(16)
    index.add(xb)
    ref = faiss.IndexFlatL2(16)
    ref.add(xb)
    D, I = index.search(xq, 4, params=voisin.SearchParameters(sel=voisin.IDSelectorBitmap(2, bitmap)))
    Df, If = ref.search(xq, 4, params=faiss.SearchParameters(sel=fsel))
    np.testing.assert_array_equal(I, If)
    for bad in (lambda: voisin.IDSelectorBatch(6, ids), lambda: voisin.IDSelectorBitmap(4, bitmap)):
        with pytest.raises(ValueError, match="n"):
            bad()


def test_selector_membership_edge_cases():
    probe = np.array([-5, -1, 0, 1, 9, 10, 2 ** 40], np.int64)
    assert voisin.IDSelectorRange(0, 10).contains(probe).tolist() == [False, False, True, True, True, False, False]
    assert voisin.IDSelectorRange(-5, 0).contains(probe).tolist() == [True, True, False, False, False, False, False]
    # an empty or reversed range selects nothing, also in the sequential mask
    assert not voisin.IDSelectorRange(10, 0).mask_sequential(20).any()
    assert voisin.IDSelectorRange(-5, 3).mask_sequential(5).tolist() == [True, True, True, False, False]
    batch = voisin.IDSelectorBatch(np.array([2 ** 40, -5, 9], np.int64))
    assert batch.contains(probe).tolist() == [True, False, False, False, True, False, True]
    assert batch.mask_sequential(12).tolist() == [i == 9 for i in range(12)]
    assert voisin.IDSelectorBatch([]).contains(probe).tolist() == [False] * 7
    assert voisin.IDSelectorBatch([3, 3, 3]).contains(np.array([3, 4])).tolist() == [True, False]
    fn = voisin.IDSelectorFunction(lambda ids: ids % 3 == 0)
    assert fn.contains(np.arange(7)).tolist() == [True, False, False, True, False, False, True]
    assert fn.is_member(9) and not fn.is_member(10)
    bad = voisin.IDSelectorFunction(lambda ids: np.ones(3, bool))
    with pytest.raises(ValueError, match="shape"):
        bad.contains(np.arange(5))


def test_function_selector_in_search(data):
    xb, xq = data
    index = voisin.IndexFlatL2(16)
    index.add(xb)
    sel = voisin.IDSelectorFunction(lambda ids: (ids % 7) == 3)
    D, I = index.search(xq, 6, params=voisin.SearchParameters(sel=sel))
    assert_knn_valid(D, I, xq, xb, 6, voisin.METRIC_L2, allowed=(np.arange(NB) % 7) == 3)


def test_filtered_search_after_remove_uses_current_ids(data):
    xb, xq = data
    index = voisin.IndexFlatL2(16)
    index.add(xb[:100])
    index.remove_ids(voisin.IDSelectorRange(0, 10))  # ids shift down by 10
    D, I = index.search(xq, 5, params=voisin.SearchParameters(sel=voisin.IDSelectorRange(0, 20)))
    allowed = np.zeros(90, bool)
    allowed[:20] = True
    assert_knn_valid(D, I, xq, xb[10:100], 5, voisin.METRIC_L2, allowed=allowed)


def test_search_parameters_repr_and_reuse(data):
    xb, xq = data
    sel = voisin.IDSelectorRange(0, 50)
    params = voisin.SearchParameters(sel=sel)
    assert "IDSelectorRange(0, 50)" in repr(params)
    index = voisin.IndexFlatL2(16)
    index.add(xb)
    a = index.search(xq, 3, params=params)
    b = index.search(xq, 3, params=params)  # parameters are not consumed by a search
    np.testing.assert_array_equal(a[1], b[1])
    assert (a[1] < 50).all()
