"""IndexFlat / IndexFlatL2 / IndexFlatIP against numpy brute force and faiss-cpu.

The engine switches from a fused scan to BLAS at 20 queries, works in blocks of
1024 queries x 2048 database rows, and splits the scan across threads when the
database has >= 4096 rows: the shapes below sit on each side of those edges.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import voisin
from conftest import FLT_MAX, assert_knn_valid, assert_same_results, brute_force, distances_f64, tolerance

faiss = pytest.importorskip("faiss")

METRICS = [voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT]
METRIC_IDS = ["L2", "IP"]


def _data(rng, nb, nq, d):
    xb = rng.standard_normal((nb, d)).astype(np.float32)
    xq = rng.standard_normal((nq, d)).astype(np.float32)
    return xb, xq


def _faiss_flat(xb, metric):
    index = faiss.IndexFlat(xb.shape[1], metric)
    index.add(xb)
    return index


def _check_against_both(xb, xq, k, metric):
    index = voisin.IndexFlat(xb.shape[1], metric)
    index.add(xb)
    D, I = index.search(xq, k)
    assert_knn_valid(D, I, xq, xb, k, metric)
    Df, If = _faiss_flat(xb, metric).search(xq, k)
    assert_same_results(D, I, Df, If, tolerance(xq, xb, metric))
    return D, I


# 4097 database rows: two full 2048-row GEMM blocks plus a 1-row tail, and
# above the 4096-row threshold of the multi-threaded scan.
@pytest.mark.parametrize("metric", METRICS, ids=METRIC_IDS)
@pytest.mark.parametrize("nq", [1, 5, 19, 20, 21, 1500])
def test_query_counts_across_scan_and_blas_paths(rng, metric, nq):
    xb, xq = _data(rng, 4097, nq, 24)
    _check_against_both(xb, xq, 10, metric)


@pytest.mark.parametrize("metric", METRICS, ids=METRIC_IDS)
@pytest.mark.parametrize("d", [1, 3, 50, 784])
@pytest.mark.parametrize("k", [1, 10, 100, 301])
@pytest.mark.parametrize("nq", [5, 21], ids=["scan", "blas"])
def test_dimensions_and_k(rng, metric, d, k, nq):
    xb, xq = _data(rng, 300, nq, d)
    D, I = _check_against_both(xb, xq, k, metric)
    if k > 300:  # k > ntotal pads exactly as FAISS does
        assert (I[:, 300:] == -1).all()
        assert (D[:, 300:] == (FLT_MAX if metric == voisin.METRIC_L2 else -FLT_MAX)).all()


@pytest.mark.parametrize("metric", METRICS, ids=METRIC_IDS)
@pytest.mark.parametrize("nb", [2047, 2048, 2049, 4096])
def test_database_block_edges(rng, metric, nb):
    xb, xq = _data(rng, nb, 1025, 8)  # 1025 queries: one full query block and a 1-query tail
    _check_against_both(xb, xq, 7, metric)


@pytest.mark.parametrize("metric", METRICS, ids=METRIC_IDS)
@pytest.mark.parametrize("nq", [3, 40], ids=["scan", "blas"])
def test_duplicate_vectors_are_ties(rng, metric, nq):
    base = rng.standard_normal((200, 6)).astype(np.float32)
    xb = np.repeat(base, 3, axis=0)  # every vector three times
    xq = np.vstack([base[:nq // 2], rng.standard_normal((nq - nq // 2, 6)).astype(np.float32)])
    D, I = _check_against_both(xb, xq, 8, metric)
    # identical vectors have bit-identical distances
    assert np.array_equal(D[:, 0], D[:, 1]) and np.array_equal(D[:, 1], D[:, 2])


@pytest.mark.parametrize("metric", METRICS, ids=METRIC_IDS)
@pytest.mark.parametrize("nq", [4, 30], ids=["scan", "blas"])
def test_many_exact_ties_on_a_grid(rng, metric, nq):
    # small integers: most distances are tied integers, k cuts through tie groups
    xb = rng.integers(-2, 3, size=(1000, 4)).astype(np.float32)
    xq = rng.integers(-2, 3, size=(nq, 4)).astype(np.float32)
    D, I = _check_against_both(xb, xq, 25, metric)
    assert np.array_equal(D, np.round(D))  # exact integer distances survive the float32 path


def test_query_equal_to_stored_vector_finds_itself_at_distance_zero(rng):
    xb = (rng.standard_normal((3000, 32)) * 100).astype(np.float32)
    index = voisin.IndexFlatL2(32)
    index.add(xb)
    for nq in (7, 64):  # scan and BLAS path
        D, I = index.search(xb[:nq], 1)
        np.testing.assert_array_equal(I[:, 0], np.arange(nq))
        # large norms: the ||q||^2 - 2q.x + ||x||^2 expansion alone would not give 0
        assert (D[:, 0] == 0).all()


def _offset_data(rng):
    # vectors far from the origin, close to each other: ||q||^2 ~ 1.6e7 while
    # distances are ~10, so ||q||^2 - 2q.x + ||x||^2 in float32 cancels catastrophically
    xb = (1000.0 + rng.standard_normal((2500, 16))).astype(np.float32)
    xq = (1000.0 + rng.standard_normal((50, 16))).astype(np.float32)
    return xb, xq


def test_blas_path_results_are_sorted_with_large_norms(rng):
    # regression: finish_gemm recomputed the L2 distances in place and then
    # heap-sorted arrays that were no longer heaps, so D was not ascending
    xb, xq = _offset_data(rng)
    D, I = voisin.knn(xq, xb, 5)
    assert (np.diff(D, axis=1) >= 0).all()


def test_blas_path_keeps_precision_far_from_origin(rng):
    # regression: candidates chosen with the float32 norm expansion alone lost
    # all precision for data far from the origin (faiss gets it right)
    xb, xq = _offset_data(rng)
    index = voisin.IndexFlatL2(16)
    index.add(xb)
    D, I = index.search(xq, 5)  # 50 queries: BLAS path
    ref = distances_f64(xq, xb, voisin.METRIC_L2)
    np.testing.assert_allclose(np.sort(D, 1), np.sort(ref, 1)[:, :5], rtol=1e-4)


def test_scan_path_keeps_precision_far_from_origin(rng):
    xb, xq = _offset_data(rng)
    index = voisin.IndexFlatL2(16)
    index.add(xb)
    D, I = index.search(xq[:10], 5)  # 10 queries: fused scan path
    ref = np.sort(distances_f64(xq, xb, voisin.METRIC_L2), 1)[:, :5]
    np.testing.assert_allclose(D, ref[:10], rtol=1e-4)
    Df, If = _faiss_flat(xb, voisin.METRIC_L2).search(xq, 5)  # faiss handles all 50
    np.testing.assert_allclose(Df, ref, rtol=1e-4)


@pytest.mark.parametrize("metric", METRICS, ids=METRIC_IDS)
@pytest.mark.parametrize("nq", [1, 5, 60, 1100])
def test_thread_count_does_not_change_results(rng, metric, nq):
    xb, xq = _data(rng, 4500, nq, 20)
    index = voisin.IndexFlat(20, metric)
    index.add(xb)
    voisin.omp_set_num_threads(1)
    D1, I1 = index.search(xq, 10)
    voisin.omp_set_num_threads(2)
    D2, I2 = index.search(xq, 10)
    np.testing.assert_array_equal(I1, I2)
    np.testing.assert_array_equal(D1, D2)
    assert_knn_valid(D2, I2, xq, xb, 10, metric)


def test_output_arrays_are_filled_in_place(rng):
    xb, xq = _data(rng, 500, 25, 8)
    index = voisin.IndexFlatL2(8)
    index.add(xb)
    D = np.empty((25, 4), np.float32)
    I = np.empty((25, 4), np.int64)
    D2, I2 = index.search(xq, 4, D=D, I=I)
    assert D2 is D and I2 is I
    Dr, Ir = index.search(xq, 4)
    np.testing.assert_array_equal(D, Dr)
    np.testing.assert_array_equal(I, Ir)


@pytest.mark.parametrize("metric", METRICS, ids=METRIC_IDS)
def test_empty_index_returns_missing_results(metric):
    index = voisin.IndexFlat(5, metric)
    D, I = index.search(np.ones((3, 5), np.float32), 4)
    assert (I == -1).all()
    assert (D == (FLT_MAX if metric == voisin.METRIC_L2 else -FLT_MAX)).all()
    Df, If = faiss.IndexFlat(5, metric).search(np.ones((3, 5), np.float32), 4)
    np.testing.assert_array_equal(I, If)
    np.testing.assert_array_equal(D, Df)
    lims, Dr, Ir = index.range_search(np.ones((3, 5), np.float32), 1.0)
    assert lims.dtype == np.uint64 and lims.tolist() == [0, 0, 0, 0] and Dr.size == Ir.size == 0


def test_zero_queries_give_empty_results(rng):
    index = voisin.IndexFlatL2(4)
    index.add(rng.random((10, 4)))
    D, I = index.search(np.zeros((0, 4), np.float32), 3)
    assert D.shape == (0, 3) and I.shape == (0, 3) and D.dtype == np.float32 and I.dtype == np.int64
    lims, Dr, Ir = index.range_search(np.zeros((0, 4), np.float32), 1.0)
    assert lims.tolist() == [0] and Dr.size == 0


def test_accepted_input_forms_give_the_same_answer(rng):
    xb, xq = _data(rng, 200, 6, 5)
    index = voisin.IndexFlatL2(5)
    index.add(xb)
    ref = index.search(xq, 3)
    wide = np.zeros((6, 10), np.float32)
    wide[:, ::2] = xq
    forms = [xq.astype(np.float64), xq.tolist(), np.asfortranarray(xq), wide[:, ::2]]
    for x in forms:
        D, I = index.search(x, 3)
        np.testing.assert_array_equal(I, ref[1])
        np.testing.assert_array_equal(D, ref[0])
    D, I = index.search(xq[0], 3)  # a single 1-D vector is one query
    np.testing.assert_array_equal(I, ref[1][:1])
    # float64 / non-contiguous database input is stored as float32 once
    other = voisin.IndexFlatL2(5)
    other.add(np.asfortranarray(xb.astype(np.float64)))
    np.testing.assert_array_equal(other.search(xq, 3)[1], ref[1])


def test_index_does_not_alias_caller_arrays(rng):
    xb, xq = _data(rng, 100, 4, 6)
    index = voisin.IndexFlatL2(6)
    index.add(xb)
    before = index.search(xq, 5)
    xb[:] = 0  # the caller reuses its buffer
    after = index.search(xq, 5)
    np.testing.assert_array_equal(before[1], after[1])
    rec = index.reconstruct(0)
    rec[:] = 99
    assert not (index.reconstruct(0) == 99).any()
    with pytest.raises(ValueError):
        index.xb[0, 0] = 1.0  # the exposed storage view is read-only


# --------------------------------------------------------------------------- #
# range search
# --------------------------------------------------------------------------- #
def _check_range(lims, D, I, xq, xb, radius, metric, allowed=None, ids=None):
    nq = xq.shape[0]
    assert lims.dtype == np.uint64 and lims.shape == (nq + 1,)
    assert D.dtype == np.float32 and I.dtype == np.int64 and D.shape == I.shape == (int(lims[-1]),)
    dist = distances_f64(xq, xb, metric)
    tol = tolerance(xq, xb, metric)
    ids = np.arange(xb.shape[0]) if ids is None else np.asarray(ids)
    allowed = np.ones(xb.shape[0], bool) if allowed is None else allowed
    pos_of = {int(v): p for p, v in enumerate(ids)}
    ip = metric == voisin.METRIC_INNER_PRODUCT
    for i in range(nq):
        got = I[lims[i]:lims[i + 1]]
        assert len(set(got.tolist())) == got.size
        pos = np.array([pos_of[int(v)] for v in got], dtype=np.int64)
        assert allowed[pos].all()
        np.testing.assert_allclose(D[lims[i]:lims[i + 1]], dist[i, pos], atol=tol[i], rtol=0)
        inside = dist[i, pos] > radius - tol[i] if ip else dist[i, pos] < radius + tol[i]
        assert inside.all(), f"query {i}: results outside the radius"
        clearly = (dist[i] > radius + tol[i]) if ip else (dist[i] < radius - tol[i])
        assert set(ids[clearly & allowed].tolist()) <= set(got.tolist()), f"query {i}: missed results"


@pytest.mark.parametrize("metric", METRICS, ids=METRIC_IDS)
@pytest.mark.parametrize("nq", [1, 30])
def test_range_search_vs_brute_force_and_faiss(rng, metric, nq):
    xb, xq = _data(rng, 3000, nq, 12)
    index = voisin.IndexFlat(12, metric)
    index.add(xb)
    # a radius that keeps roughly the closest 1%: squared distance for L2, score for IP
    dist = distances_f64(xq, xb, metric)
    radius = float(np.quantile(dist, 0.99 if metric == voisin.METRIC_INNER_PRODUCT else 0.01))
    lims, D, I = index.range_search(xq, radius)
    assert lims[-1] > 0
    _check_range(lims, D, I, xq, xb, radius, metric)
    lf, Df, If = _faiss_flat(xb, metric).range_search(xq, radius)
    assert lf.dtype == lims.dtype
    for i in range(nq):
        a = dict(zip(I[lims[i]:lims[i + 1]].tolist(), D[lims[i]:lims[i + 1]].tolist()))
        b = dict(zip(If[lf[i]:lf[i + 1]].tolist(), Df[lf[i]:lf[i + 1]].tolist()))
        tol = tolerance(xq[i:i + 1], xb, metric)[0]
        for key in set(a) ^ set(b):  # only results at the radius boundary may differ
            assert abs(dist[i, key] - radius) <= tol
        for key in set(a) & set(b):
            assert abs(a[key] - b[key]) <= tol


def test_range_search_l2_radius_is_squared_and_strict():
    xb = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]], np.float32)
    index = voisin.IndexFlatL2(2)
    index.add(xb)
    lims, D, I = index.range_search(np.zeros((1, 2), np.float32), 25.0)
    assert I.tolist() == [0] and D.tolist() == [0.0]  # distance 25 is not < 25
    lims, D, I = index.range_search(np.zeros((1, 2), np.float32), 25.5)
    assert sorted(I.tolist()) == [0, 1]
    ip = voisin.IndexFlatIP(2)
    ip.add(xb)
    lims, D, I = ip.range_search(np.array([[1.0, 0.0]], np.float32), 3.0)
    assert I.tolist() == [2] and D.tolist() == [6.0]  # score 3 is not > 3


# --------------------------------------------------------------------------- #
# remove / reconstruct / reset / pickling
# --------------------------------------------------------------------------- #
def test_remove_ids_shifts_like_faiss(rng):
    xb, xq = _data(rng, 1000, 25, 10)
    ours = voisin.IndexFlatL2(10)
    ours.add(xb)
    ref = _faiss_flat(xb, voisin.METRIC_L2)
    steps = [np.array([0, 5, 999], np.int64), voisin.IDSelectorRange(100, 300),
             np.array([0, 1, 2, 5000], np.int64), voisin.IDSelectorBatch(np.arange(0, 700, 7))]
    for step in steps:
        if isinstance(step, voisin.IDSelectorRange):
            fs = faiss.IDSelectorRange(step.imin, step.imax)
        elif isinstance(step, voisin.IDSelectorBatch):
            fs = faiss.IDSelectorBatch(step.ids)
        else:
            fs = step
        assert ours.remove_ids(step) == ref.remove_ids(fs)
        assert ours.ntotal == ref.ntotal
        np.testing.assert_array_equal(ours.reconstruct_n(0, ours.ntotal), ref.reconstruct_n(0, ref.ntotal))
        D, I = ours.search(xq, 6)
        Df, If = ref.search(xq, 6)
        assert_same_results(D, I, Df, If, tolerance(xq, xb, voisin.METRIC_L2))
    # removing ids that are not there removes nothing
    assert ours.remove_ids(np.array([10 ** 6], np.int64)) == 0
    assert ours.remove_ids(voisin.IDSelectorRange(5000, 6000)) == 0


def test_add_after_remove_and_reset(rng):
    xb, xq = _data(rng, 300, 10, 4)
    index = voisin.IndexFlatIP(4)
    index.add(xb[:200])
    assert index.remove_ids(voisin.IDSelectorRange(0, 50)) == 50
    index.add(xb[200:])
    expect = np.vstack([xb[50:200], xb[200:]])
    assert index.ntotal == 250
    np.testing.assert_array_equal(index.reconstruct_n(0, 250), expect)
    D, I = index.search(xq, 5)
    assert_knn_valid(D, I, xq, expect, 5, voisin.METRIC_INNER_PRODUCT)
    index.reset()
    assert index.ntotal == 0 and len(index) == 0
    assert (index.search(xq, 2)[1] == -1).all()
    index.add(xb[:3])
    np.testing.assert_array_equal(index.reconstruct_n(), xb[:3])
    assert index.search(xb[:1], 1)[1][0, 0] in (0, 1, 2)


def test_reconstruct_variants(rng):
    xb = rng.standard_normal((50, 7)).astype(np.float32)
    index = voisin.IndexFlatL2(7)
    index.add(xb)
    np.testing.assert_array_equal(index.reconstruct(13), xb[13])
    np.testing.assert_array_equal(index.reconstruct(np.int64(49)), xb[49])
    np.testing.assert_array_equal(index.reconstruct_n(10, 5), xb[10:15])
    np.testing.assert_array_equal(index.reconstruct_n(), xb)
    np.testing.assert_array_equal(index.reconstruct_n(50, 0), np.zeros((0, 7), np.float32))
    np.testing.assert_array_equal(index.reconstruct_batch([3, 1, 3]), xb[[3, 1, 3]])
    ref = _faiss_flat(xb, voisin.METRIC_L2)
    np.testing.assert_array_equal(index.reconstruct_n(10, 5), ref.reconstruct_n(10, 5))
    with pytest.raises(ValueError, match="key"):
        index.reconstruct(50)
    with pytest.raises(ValueError, match="key"):
        index.reconstruct(-1)
    with pytest.raises(ValueError, match="ni"):
        index.reconstruct_n(45, 10)


@pytest.mark.parametrize("metric", METRICS, ids=METRIC_IDS)
def test_pickle_round_trip(rng, metric):
    xb, xq = _data(rng, 400, 30, 9)
    index = voisin.IndexFlat(9, metric)
    index.add(xb)
    index.remove_ids(np.array([3, 4], np.int64))
    copy = pickle.loads(pickle.dumps(index))
    assert isinstance(copy, voisin.IndexFlat) and copy.ntotal == index.ntotal == 398
    assert copy.metric_type == metric and copy.d == 9
    for a, b in zip(index.search(xq, 7), copy.search(xq, 7)):
        np.testing.assert_array_equal(a, b)
    copy.add(xb[:5])  # the copy is a live, independent index
    assert copy.ntotal == 403 and index.ntotal == 398


def test_flat_subclasses_and_repr():
    assert voisin.IndexFlatL2(3).metric_type == voisin.METRIC_L2
    assert voisin.IndexFlatIP(3).metric_type == voisin.METRIC_INNER_PRODUCT
    assert voisin.IndexFlat(3, "ip").metric_type == voisin.METRIC_INNER_PRODUCT
    index = voisin.IndexFlatL2(3)
    index.add(np.eye(3))
    assert "ntotal=3" in repr(index) and index.is_trained
    index.train(np.eye(3))  # a no-op for flat indexes, accepted as FAISS does
    assert index.ntotal == 3
    assert index.assign(np.eye(3), 1).ravel().tolist() == [0, 1, 2]


def test_brute_force_reference_matches_faiss(rng):
    # guard for the reference itself: if brute_force were wrong every test above would be too
    xb, xq = _data(rng, 300, 8, 5)
    for metric in METRICS:
        D, I = brute_force(xq, xb, 4, metric)
        Df, If = _faiss_flat(xb, metric).search(xq, 4)
        np.testing.assert_array_equal(I, If)
        np.testing.assert_allclose(D, Df, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- #
# pruned L2 scans (d >= 64 and >= 4096 rows: a high-variance window of
# dimensions is compared first and a norm bound skips most rows)
# --------------------------------------------------------------------------- #
def _pruning_data(rng, kind, nb, nq, d):
    if kind == "gaussian":
        xb = rng.standard_normal((nb, d))
        xq = rng.standard_normal((nq, d))
    elif kind == "anisotropic":  # most variance in one band of dimensions
        scale = np.ones(d)
        scale[d // 4: d // 2] = 20.0
        xb = rng.standard_normal((nb, d)) * scale
        xq = rng.standard_normal((nq, d)) * scale
    elif kind == "outside":  # variance outside any half-width window: the bound prunes nothing
        scale = np.full(d, 0.01)
        scale[::2] = 10.0
        xb = rng.standard_normal((nb, d)) * scale
        xq = rng.standard_normal((nq, d)) * scale
    elif kind == "sift-like":  # non-negative small integers, many tied distances
        xb = rng.integers(0, 4, size=(nb, d)) * rng.integers(0, 2, size=(nb, d))
        xq = rng.integers(0, 4, size=(nq, d)) * rng.integers(0, 2, size=(nq, d))
    elif kind == "duplicates":  # queries equal to stored rows, each stored twice
        base = rng.standard_normal((nb // 2, d))
        xb = np.repeat(base, 2, axis=0)
        xq = np.vstack([base[:nq // 2], rng.standard_normal((nq - nq // 2, d))])
    else:  # "offset": far from the origin
        xb = 50.0 + rng.standard_normal((nb, d))
        xq = 50.0 + rng.standard_normal((nq, d))
    return xb.astype(np.float32), xq.astype(np.float32)


@pytest.mark.parametrize("kind", ["gaussian", "anisotropic", "outside", "sift-like", "duplicates", "offset"])
@pytest.mark.parametrize("nq", [5, 50], ids=["scan", "blas"])
@pytest.mark.parametrize("d", [64, 200])
def test_pruned_l2_path_is_exact(rng, kind, nq, d):
    xb, xq = _pruning_data(rng, kind, 6500, nq, d)
    for k in (1, 100):
        _check_against_both(xb, xq, k, voisin.METRIC_L2)


def test_pruned_l2_path_after_add_remove_reset(rng):
    xb, xq = _pruning_data(rng, "anisotropic", 9000, 30, 96)
    index = voisin.IndexFlatL2(96)
    index.add(xb[:5000])
    for nq in (4, 30):  # statistics are computed on first search...
        D, I = index.search(xq[:nq], 10)
        assert_knn_valid(D, I, xq[:nq], xb[:5000], 10, voisin.METRIC_L2)
    index.add(xb[5000:])  # ...extended by later adds...
    for nq in (4, 30):
        D, I = index.search(xq[:nq], 10)
        assert_knn_valid(D, I, xq[:nq], xb, 10, voisin.METRIC_L2)
    index.remove_ids(voisin.IDSelectorRange(0, 3000))  # ...and rebuilt after rows move
    for nq in (4, 30):
        D, I = index.search(xq[:nq], 10)
        assert_knn_valid(D, I, xq[:nq], xb[3000:], 10, voisin.METRIC_L2)
    # new rows with a very different distribution than the ones the window was chosen on
    other = np.zeros((5000, 96), np.float32)
    other[:, :10] = rng.standard_normal((5000, 10)) * 30
    index.add(other)
    allb = np.vstack([xb[3000:], other])
    for nq in (4, 30):
        D, I = index.search(other[:nq] + 0.01, 10)
        assert_knn_valid(D, I, other[:nq] + 0.01, allb, 10, voisin.METRIC_L2)
    index.reset()
    index.add(xb[:4500])
    D, I = index.search(xq, 5)
    assert_knn_valid(D, I, xq, xb[:4500], 5, voisin.METRIC_L2)


@pytest.mark.parametrize("nq", [5, 50], ids=["scan", "blas"])
def test_pruned_l2_path_with_filters(rng, nq):
    xb, xq = _pruning_data(rng, "anisotropic", 7000, nq, 128)
    index = voisin.IndexFlatL2(128)
    index.add(xb)
    for sel, allowed in ((voisin.IDSelectorRange(1000, 6000), (np.arange(7000) >= 1000) & (np.arange(7000) < 6000)),
                         (voisin.IDSelectorNot(voisin.IDSelectorRange(0, 100)), np.arange(7000) >= 100)):
        D, I = index.search(xq, 20, params=voisin.SearchParameters(sel=sel))
        assert_knn_valid(D, I, xq, xb, 20, voisin.METRIC_L2, allowed=allowed)


def test_pruned_l2_path_threads_identical(rng):
    xb, xq = _pruning_data(rng, "gaussian", 8200, 40, 64)
    index = voisin.IndexFlatL2(64)
    index.add(xb)
    for nq in (1, 40):
        voisin.omp_set_num_threads(1)
        D1, I1 = index.search(xq[:nq], 10)
        R1 = index.range_search(xq[:nq], 100.0)
        voisin.omp_set_num_threads(2)
        D2, I2 = index.search(xq[:nq], 10)
        R2 = index.range_search(xq[:nq], 100.0)
        np.testing.assert_array_equal(I1, I2)
        np.testing.assert_array_equal(D1, D2)
        assert R1[0][-1] > 0
        for a, b in zip(R1, R2):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("metric", METRICS, ids=METRIC_IDS)
@pytest.mark.parametrize("nq", [1, 25], ids=["scan", "blas"])
def test_missing_results_always_carry_flt_max(metric, nq):
    # finite inputs whose squared distances / products overflow float32: faiss
    # reports those rows as missing (-1, +-FLT_MAX), and so must voisin
    xb = np.array([[1e20, 0.0], [2e20, 0.0], [0.0, 1e19]], np.float32)
    xq = np.repeat(np.array([[-1e20, 0.0]], np.float32), nq, axis=0)
    with np.errstate(over="ignore"):
        D, I = voisin.knn(xq, xb, 3, metric)
        Df, If = faiss.knn(xq, xb, 3, metric=metric)
    np.testing.assert_array_equal(I, If)
    worst = FLT_MAX if metric == voisin.METRIC_L2 else -FLT_MAX
    assert (D[I == -1] == worst).all()


@pytest.mark.parametrize("kind", ["anisotropic", "sift-like", "offset"])
@pytest.mark.parametrize("nq", [1, 30])
def test_range_search_on_wide_large_data(rng, kind, nq):
    # the shapes where L2 scans may prune with the window bound
    xb, xq = _pruning_data(rng, kind, 6000, nq, 128)
    index = voisin.IndexFlatL2(128)
    index.add(xb)
    dist = distances_f64(xq, xb, voisin.METRIC_L2)
    for q in (0.0005, 0.02):
        radius = float(np.quantile(dist, q)) + (0.5 if kind == "sift-like" else 0.0)
        lims, D, I = index.range_search(xq, radius)
        _check_range(lims, D, I, xq, xb, radius, voisin.METRIC_L2)
        allowed = np.arange(6000) % 2 == 0
        sel = voisin.SearchParameters(sel=voisin.IDSelectorBitmap(allowed))
        lims, D, I = index.range_search(xq, radius, params=sel)
        _check_range(lims, D, I, xq, xb, radius, voisin.METRIC_L2, allowed=allowed)


@pytest.mark.parametrize("metric", [voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT])
def test_selective_mask_few_queries_scores_rows_in_place(metric):
    # fewer than GATHER_MIN_QUERIES queries score the allowed rows where they lie;
    # more gather them first: both must equal brute force over the allowed rows
    from voisin import exact
    from voisin.filtering import GATHER_MIN_QUERIES
    rng = np.random.default_rng(3)
    xb = rng.normal(size=(5000, 24)).astype(np.float32)
    xq = rng.normal(size=(GATHER_MIN_QUERIES + 1, 24)).astype(np.float32)
    mask = rng.random(5000) < 0.05
    rows = np.flatnonzero(mask)
    if metric == voisin.METRIC_L2:
        full = ((xq[:, None, :].astype(np.float64) - xb[rows][None]) ** 2).sum(-1)
    else:
        full = -(xq.astype(np.float64) @ xb[rows].T)
    want = rows[np.argsort(full, axis=1, kind="stable")[:, :7]]
    D1, I1 = exact.search(xq[:2], xb, 5000, metric, 7, mask=mask)
    Db, Ib = exact.search(xq, xb, 5000, metric, 7, mask=mask)
    np.testing.assert_array_equal(I1, want[:2])
    np.testing.assert_array_equal(Ib, want)
    np.testing.assert_allclose(D1, Db[:2], rtol=1e-5, atol=1e-5)
    few = exact.search(xq[:1], xb, 5000, metric, 400, mask=mask)[1]   # k > allowed rows
    assert (few[0, rows.size:] == -1).all() and set(few[0, :rows.size]) == set(rows)
