"""IndexHNSWFlat.sq8_traversal: the graph is walked on SQ8 codes and the efSearch
results are re-ranked exactly from the float vectors.

Checked against numpy brute force and against the same index searched with
float distances: recall at equal efSearch, exact returned distances, filters,
deletes/compaction, incremental adds (range clipping and re-training),
toggling, file/pickle round trips, reset, concurrent searches and bad input.
"""

from __future__ import annotations

import pickle
import threading

import numba
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import voisin
from voisin.indexes import hnsw as H
from voisin.indexes.hnsw import IndexHNSWFlat, SearchParametersHNSW

from test_hnsw import _brute, _load, _recall, sift  # noqa: F401 (sift: module fixture)


@pytest.fixture
def sift_sq8(sift):
    """The module's index with the knob on for one test (off again afterwards)."""
    xb, xq, index = sift
    index.sq8_traversal = True
    yield xb, xq, index
    index.sq8_traversal = False


def _exact_costs(xb, xq, I, metric):
    v = xb[np.maximum(I, 0)].astype(np.float64)
    if metric == voisin.METRIC_L2:
        return ((xq[:, None, :].astype(np.float64) - v) ** 2).sum(-1)
    return np.einsum("qd,qkd->qk", xq.astype(np.float64), v)


def _assert_exact_distances(xb, xq, D, I, metric):
    """Returned distances are the float distances of the returned ids, ascending."""
    ok = I >= 0
    want = _exact_costs(xb, xq, I, metric)
    np.testing.assert_allclose(D[ok], want[ok], rtol=2e-5, atol=2e-4)
    cost = D if metric == voisin.METRIC_L2 else -D
    assert (np.diff(np.where(ok, cost, np.inf), axis=1) >= -1e-6).all()


def _codes_consistent(index):
    """The published codes encode the published float rows (or their projection,
    with traversal_dims) under the published range."""
    X, _, _, _, _, extra = index._snap
    assert extra.codes.shape == (X.shape[0], index._sq8_width)
    assert extra.codes.flags.c_contiguous
    coded = index.traversal_dims or index.d
    assert (extra.proj is None) == (index.traversal_dims == 0)
    if X.shape[0]:
        rows = X if extra.proj is None else X @ extra.proj
        want = H.sq8_encode(rows, extra.sqp, index._sq8_width)
        if extra.proj is None:
            np.testing.assert_array_equal(extra.codes, want)
        else:  # a matrix product may round the last bit differently in another blocking
            assert np.abs(extra.codes.astype(int) - want).max() <= 1
            assert (extra.codes != want).mean() < 1e-3
        assert not extra.codes[:, coded:].any()


# --- recall and exactness on real data -------------------------------------------------

@pytest.mark.parametrize("ef", [16, 32, 64])
def test_recall_close_to_float_search_at_same_ef(sift, ef):
    xb, xq, index = sift
    params = SearchParametersHNSW(efSearch=ef)
    index.sq8_traversal = False
    D0, I0 = index.search(xq, 10, params)
    index.sq8_traversal = True
    try:
        D1, I1 = index.search(xq, 10, params)
    finally:
        index.sq8_traversal = False
    r0 = _recall(xb, xq, I0, 10, voisin.METRIC_L2)
    r1 = _recall(xb, xq, I1, 10, voisin.METRIC_L2)
    assert r1 >= r0 - 0.01, (ef, r0, r1)
    _assert_exact_distances(xb, xq, D1, I1, voisin.METRIC_L2)
    if ef == 64:
        assert r1 >= 0.97


def test_inner_product_synthetic():
    rng = np.random.default_rng(5)
    xb = rng.standard_normal((3000, 24)).astype(np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    xq = rng.standard_normal((100, 24)).astype(np.float32)
    index = IndexHNSWFlat(24, 12, voisin.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 64
    index.add(xb)
    index.hnsw.efSearch = 48
    _, I0 = index.search(xq, 10)
    index.sq8_traversal = True
    D1, I1 = index.search(xq, 10)
    r0 = _recall(xb, xq, I0, 10, voisin.METRIC_INNER_PRODUCT)
    r1 = _recall(xb, xq, I1, 10, voisin.METRIC_INNER_PRODUCT)
    assert r1 >= r0 - 0.01 and r1 >= 0.9
    _assert_exact_distances(xb, xq, D1, I1, voisin.METRIC_INNER_PRODUCT)


def test_single_query_path_serial_and_parallel_agree(sift_sq8):
    xb, xq, index = sift_sq8
    q = np.repeat(xq, 2, axis=0)[:128]  # >= PARALLEL_MIN_QUERIES: the parallel kernel
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        Ds, Is = index.search(q, 10)
        numba.set_num_threads(max(2, min(old, numba.config.NUMBA_NUM_THREADS)))
        Dp, Ip = index.search(q, 10)
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(Is, Ip)
    np.testing.assert_array_equal(Ds, Dp)
    for r in (0, 7, 33):
        D1, I1 = index.search(np.ascontiguousarray(q[r:r + 1]), 10)  # the fast path
        np.testing.assert_array_equal(I1[0], Is[r])
        np.testing.assert_array_equal(D1[0], Ds[r])


def test_k_larger_than_ef_and_than_ntotal():
    rng = np.random.default_rng(1)
    xb = rng.random((40, 8)).astype(np.float32)
    index = IndexHNSWFlat(8, 4)
    index.sq8_traversal = True
    index.add(xb)
    index.hnsw.efSearch = 4
    D, I = index.search(xb[:3], 50)
    assert (I[:, 40:] == -1).all()
    assert sorted(I[0, :40].tolist()) == list(range(40))
    _assert_exact_distances(xb, xb[:3], D[:, :40], I[:, :40], voisin.METRIC_L2)


# --- memory --------------------------------------------------------------------------

def test_memory_cost_and_toggle_frees_codes(sift):
    xb, xq, index = sift
    index.sq8_traversal = False
    base = index.nbytes
    assert index._snap[5] is None
    index.sq8_traversal = True
    try:
        width = -(-128 // 32) * 32
        assert index.nbytes == base + len(xb) * width + 3 * width * 4
        _codes_consistent(index)
    finally:
        index.sq8_traversal = False
    assert index.nbytes == base and index._snap[5] is None
    assert IndexHNSWFlat(50, 16)._sq8_width == 64


# --- toggling ------------------------------------------------------------------------

def test_toggle_off_gives_the_float_search_back(sift):
    xb, xq, index = sift
    params = SearchParametersHNSW(efSearch=32)
    D0, I0 = index.search(xq, 10, params)
    index.sq8_traversal = True
    D1, I1 = index.search(xq, 10, params)
    index.sq8_traversal = True  # no-op: same codes, same results
    np.testing.assert_array_equal(index.search(xq, 10, params)[1], I1)
    index.sq8_traversal = False
    Da, Ia = index.search(xq, 10, params)
    np.testing.assert_array_equal(Ia, I0)
    np.testing.assert_array_equal(Da, D0)
    index.sq8_traversal = True  # encoded again from the same vectors: same codes
    try:
        np.testing.assert_array_equal(index.search(xq, 10, params)[1], I1)
    finally:
        index.sq8_traversal = False


def test_bad_input():
    index = IndexHNSWFlat(8, 4)
    for bad in ("yes", 2, -1, 0.5, None):
        with pytest.raises(TypeError, match="sq8_traversal"):
            index.sq8_traversal = bad
    assert index.sq8_traversal is False
    index.sq8_traversal = 1
    assert index.sq8_traversal is True
    index.sq8_traversal = np.bool_(False)
    assert index.sq8_traversal is False


# --- adds: training, clipping, re-training -----------------------------------------------

def test_enable_on_empty_index_trains_on_first_add_and_clips_later_adds():
    rng = np.random.default_rng(2)
    index = IndexHNSWFlat(16, 8)
    index.sq8_traversal = True
    assert index._snap[5].sqp is None and index._snap[5].codes.shape == (0, 32)
    x1 = rng.random((600, 16)).astype(np.float32)
    index.add(x1)
    sqp1 = index._snap[5].sqp
    assert sqp1.shape == (3, 32) and not sqp1[:, 16:].any()
    np.testing.assert_allclose(sqp1[0, :16], x1.min(0), rtol=1e-6)
    np.testing.assert_allclose(sqp1[0, :16] + 256 * sqp1[1, :16], x1.max(0), rtol=1e-5)
    _codes_consistent(index)
    # slightly outside the range (< 1/32 of its width): clipped, range kept
    x2 = rng.random((300, 16)).astype(np.float32) * 1.01 - 0.005
    index.add(x2)
    assert index._snap[5].sqp is sqp1
    _codes_consistent(index)
    # far outside: the range is re-trained and every row re-encoded
    x3 = (rng.random((100, 16)) * 3).astype(np.float32)
    index.add(x3)
    sqp3 = index._snap[5].sqp
    lo, hi = sqp3[0, :16], sqp3[0, :16] + 256 * sqp3[1, :16]
    assert (lo <= np.minimum(x1.min(0), x3.min(0))).all()
    assert (hi >= x3.max(0)).all()
    _codes_consistent(index)
    xb = np.concatenate([x1, x2, x3])
    index.hnsw.efSearch = 64
    D, I = index.search(xb[::10], 5)
    assert (I[:, 0] == np.arange(0, len(xb), 10)).mean() >= 0.98
    _assert_exact_distances(xb, xb[::10], D, I, voisin.METRIC_L2)
    assert _recall(xb, xb[::10], I, 5, voisin.METRIC_L2) >= 0.95


def test_single_vector_first_add_does_not_break_later_search():
    """A first add of one row trains a zero-width range; the next adds re-train it."""
    rng = np.random.default_rng(4)
    xb = rng.standard_normal((1500, 12)).astype(np.float32)
    index = IndexHNSWFlat(12, 8)
    index.sq8_traversal = True
    index.add(xb[:1])
    assert (index._snap[5].sqp[1] == 0).all()
    D, I = index.search(xb[:1], 1)
    assert I[0, 0] == 0 and D[0, 0] == 0
    for a in range(1, len(xb), 300):
        index.add(xb[a:a + 300])
        _codes_consistent(index)
    index.hnsw.efSearch = 64
    D, I = index.search(xb[:200], 10)
    assert _recall(xb, xb[:200], I, 10, voisin.METRIC_L2) >= 0.95
    _assert_exact_distances(xb, xb[:200], D, I, voisin.METRIC_L2)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10 ** 6), st.lists(st.integers(1, 120), min_size=1, max_size=5),
       st.floats(0.1, 100.0), st.booleans(), st.sampled_from([0, 1, 3, 7]))
def test_codes_follow_adds_and_removals_property(seed, batches, spread, enable_first, dims):
    rng = np.random.default_rng(seed)
    d = 7
    index = IndexHNSWFlat(d, 4)
    index.traversal_dims = dims
    if enable_first:
        index.sq8_traversal = True
    index.compact_threshold = 0.5
    model = np.zeros((0, d), np.float32)
    for t, b in enumerate(batches):
        x = (rng.standard_normal((b, d)) * spread * (1 + t)).astype(np.float32)
        index.add(x)
        model = np.concatenate([model, x])
        if t == 0 and not enable_first:
            index.sq8_traversal = True
        if model.shape[0] > 4 and t % 2 == 1:
            drop = rng.choice(model.shape[0], model.shape[0] // 4, replace=False)
            index.remove_ids(drop)
            model = np.delete(model, drop, axis=0)
        _codes_consistent(index)
    k = min(5, model.shape[0])
    index.hnsw.efSearch = 32
    D, I = index.search(model, k)
    assert ((I >= 0) & (I < model.shape[0])).all()
    _assert_exact_distances(model, model, D, I, voisin.METRIC_L2)


# --- deletes + compaction ---------------------------------------------------------------

def test_remove_repair_compact_with_knob_on():
    xb, xq = _load("siftsmall-128-euclidean", 50)
    xb = xb[:4000]
    index = IndexHNSWFlat(128, 16)
    index.hnsw.efConstruction = 64
    index.add(xb)
    index.sq8_traversal = True
    index.compact_threshold = 1.0  # keep tombstones until compact()
    sqp = index._snap[5].sqp
    drop = np.arange(0, 4000, 5)
    assert index.remove_ids(drop) == drop.size
    keep = np.setdiff1d(np.arange(4000), drop)
    assert index.ntombstones == drop.size
    _codes_consistent(index)
    assert index._snap[5].codes.shape[0] == 4000  # tombstones keep their rows
    params = SearchParametersHNSW(efSearch=64)
    D, I = index.search(xq, 10, params)
    live = xb[keep]
    assert ((I >= 0) & (I < keep.size)).all()
    _assert_exact_distances(live, xq, D, I, voisin.METRIC_L2)
    assert _recall(live, xq, I, 10, voisin.METRIC_L2) >= 0.95
    assert index.compact() == drop.size
    assert index._snap[5].codes.shape[0] == keep.size and index._snap[5].sqp is sqp
    _codes_consistent(index)
    D2, I2 = index.search(xq, 10, params)
    np.testing.assert_array_equal(I2, I)  # compaction does not change results
    np.testing.assert_array_equal(D2, D)
    # and the knob on an index with tombstones encodes only from live rows' range
    index.remove_ids(np.arange(10))
    index.sq8_traversal = False
    index.sq8_traversal = True
    _codes_consistent(index)


# --- filters ------------------------------------------------------------------------

@pytest.mark.parametrize("selectivity", [0.01, 0.5])
def test_filters(sift_sq8, selectivity, monkeypatch):
    xb, xq, index = sift_sq8
    rng = np.random.default_rng(9)
    n = len(xb)
    allowed = np.sort(rng.choice(n, int(n * selectivity), replace=False))
    mask = np.zeros(n, bool)
    mask[allowed] = True
    params = SearchParametersHNSW(efSearch=64, sel=voisin.IDSelectorBatch(allowed))
    if selectivity == 0.5:
        # force the in-graph filtered traversal (no exact fallback)
        monkeypatch.setattr(H, "FILTER_EXACT_FACTOR", 0.0)
    D, I = index.search(xq, 10, params)
    assert (I >= 0).all() and mask[I].all()
    _assert_exact_distances(xb, xq, D, I, voisin.METRIC_L2)
    assert _recall(xb, xq, I, 10, voisin.METRIC_L2, mask) >= 0.95


# --- reset, io, pickle ----------------------------------------------------------------

def test_reset_keeps_the_knob_and_retrains():
    rng = np.random.default_rng(6)
    index = IndexHNSWFlat(10, 6)
    index.sq8_traversal = True
    index.add(rng.random((300, 10)).astype(np.float32))
    index.reset()
    assert index.sq8_traversal and index._snap[5].sqp is None
    assert index._snap[5].codes.shape == (0, 32)
    x = (rng.random((300, 10)) * 50).astype(np.float32)
    index.add(x)
    np.testing.assert_allclose(index._snap[5].sqp[0, :10], x.min(0), rtol=1e-6)
    _codes_consistent(index)
    D, I = index.search(x[:20], 1)
    assert (I[:, 0] == np.arange(20)).all()


@pytest.mark.parametrize("layout", ["faiss", "voisin"])
def test_file_round_trip_turns_the_knob_off(sift, tmp_path, layout):
    xb, xq, index = sift
    index.sq8_traversal = True
    try:
        D1, I1 = index.search(xq, 10)
        path = tmp_path / "h.index"
        voisin.write_index(index, str(path), layout=layout)
    finally:
        index.sq8_traversal = False
    back = voisin.read_index(str(path))
    assert isinstance(back, IndexHNSWFlat)
    assert back.sq8_traversal is False and back._snap[5] is None
    D0, I0 = index.search(xq, 10)
    np.testing.assert_array_equal(back.search(xq, 10)[1], I0)
    back.sq8_traversal = True  # codes derived from the floats read back: same as before
    np.testing.assert_array_equal(back.search(xq, 10)[1], I1)
    np.testing.assert_array_equal(back.search(xq, 10)[0], D1)
    ro = voisin.read_index(str(path), voisin.IO_FLAG_READ_ONLY)
    ro.sq8_traversal = True  # derived data: allowed on a read-only index
    np.testing.assert_array_equal(ro.search(xq, 10)[1], I1)


def test_pickle_keeps_knob_and_codes(sift_sq8):
    xb, xq, index = sift_sq8
    D1, I1 = index.search(xq, 10)
    back = pickle.loads(pickle.dumps(index))
    assert back.sq8_traversal is True
    # derived again from the floats (the same range here: it was trained on all of them)
    np.testing.assert_array_equal(back._snap[5].codes, index._snap[5].codes)
    D2, I2 = back.search(xq, 10)
    np.testing.assert_array_equal(I2, I1)
    np.testing.assert_array_equal(D2, D1)
    back.add(xq[:5])
    _codes_consistent(back)
    index.sq8_traversal = False
    assert pickle.loads(pickle.dumps(index)).sq8_traversal is False


def test_factory_and_bench_parameter():
    from voisin.bench.adapters import set_index_param
    index = voisin.index_factory(16, "IDMap,HNSW8")
    set_index_param(index, "sq8_traversal", 1)
    assert index.index.sq8_traversal is True
    x = np.random.default_rng(0).random((500, 16)).astype(np.float32)
    index.add_with_ids(x, np.arange(500) * 3)
    D, I = index.search(x[:10], 3)
    assert (I[:, 0] == np.arange(10) * 3).all()


# --- concurrency ------------------------------------------------------------------------

def test_searches_race_toggles_adds_and_removes():
    """Searches running while another thread toggles the knob, adds and removes
    see one published state: ids in range and their exact distances."""
    rng = np.random.default_rng(8)
    d = 16
    xb = rng.standard_normal((3000, d)).astype(np.float32)
    index = IndexHNSWFlat(d, 8)
    index.add(xb[:2000])
    index.hnsw.efSearch = 64
    stop = threading.Event()
    errors: list[BaseException] = []
    xq = xb[:64]

    def writer():
        try:
            for t in range(12):
                index.sq8_traversal = not index.sq8_traversal
                if t % 3 == 0:
                    index.add(xb[2000 + 50 * t: 2050 + 50 * t])
                if t % 4 == 1:
                    index.remove_ids(np.array([index.ntotal - 1]))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)
        finally:
            stop.set()

    def searcher():
        try:
            while not stop.is_set():
                for r in range(0, 64, 8):
                    D, I = index.search(xq[r:r + 1], 5)
                    # the query is stored at id r (ids < 2000 never move): found exactly
                    assert I[0, 0] == r and D[0, 0] == 0.0
                    assert (I >= 0).all() and (np.diff(D[0]) >= 0).all()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=searcher)
                                                   for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


# --- traversal_dims: codes of a PCA projection ----------------------------------------------

@pytest.mark.parametrize("dims", [32, 64])
def test_projected_codes_keep_recall_with_a_larger_ef(sift, dims):
    """On SIFT (128-d), a walk on 32/64-d projected codes re-ranked exactly gets
    within reach of the float search: the candidates it misses are found by
    raising efSearch, which is what the knob trades."""
    xb, xq, index = sift
    index.hnsw.efSearch = 64
    _, I0 = index.search(xq, 10)
    index.traversal_dims = dims
    index.sq8_traversal = True
    try:
        assert index._snap[5].codes.shape == (xb.shape[0], dims)
        assert index._snap[5].proj.shape == (128, dims)
        D1, I1 = index.search(xq, 10, params=SearchParametersHNSW(efSearch=128))
        # the single-query fast path agrees with the batch path
        index.hnsw.efSearch = 128
        Is = np.concatenate([index.search(xq[i:i + 1], 10)[1] for i in range(20)])
    finally:
        index.sq8_traversal = False
        index.traversal_dims = 0
    r0 = _recall(xb, xq, I0, 10, voisin.METRIC_L2)
    r1 = _recall(xb, xq, I1, 10, voisin.METRIC_L2)
    assert r1 >= r0 - 0.02 and r1 >= 0.95, (r0, r1)
    _assert_exact_distances(xb, xq, D1, I1, voisin.METRIC_L2)
    np.testing.assert_array_equal(Is, I1[:20])


def test_projected_codes_inner_product():
    rng = np.random.default_rng(6)
    basis = rng.standard_normal((8, 48))
    xb = (rng.standard_normal((3000, 8)) @ basis + 0.05 * rng.standard_normal((3000, 48)))
    xb = (xb / np.linalg.norm(xb, axis=1, keepdims=True)).astype(np.float32)
    xq = xb[:100] + np.float32(0.01)
    index = IndexHNSWFlat(48, 12, voisin.METRIC_INNER_PRODUCT)
    index.traversal_dims = 8
    index.sq8_traversal = True
    index.add(xb)
    index.hnsw.efSearch = 64
    D, I = index.search(xq, 10)
    assert _recall(xb, xq, I, 10, voisin.METRIC_INNER_PRODUCT) >= 0.95
    _assert_exact_distances(xb, xq, D, I, voisin.METRIC_INNER_PRODUCT)


def test_traversal_dims_changes_recode_and_survive_pickle_but_not_files(tmp_path):
    rng = np.random.default_rng(7)
    xb = rng.standard_normal((1500, 40)).astype(np.float32)
    index = IndexHNSWFlat(40, 8)
    index.traversal_dims = 12       # stored while the knob is off: no codes yet
    assert index._snap[5] is None
    index.add(xb)
    index.sq8_traversal = True
    _codes_consistent(index)
    assert index._snap[5].codes.shape == (1500, 32)
    index.traversal_dims = 40       # all dimensions, rotated: still exact results
    _codes_consistent(index)
    assert index._snap[5].codes.shape == (1500, 64)
    index.traversal_dims = 0        # back to codes of the vectors themselves
    _codes_consistent(index)
    assert index._snap[5].proj is None
    index.traversal_dims = 12
    D1, I1 = index.search(xb[:30], 5)
    back = pickle.loads(pickle.dumps(index))
    assert back.traversal_dims == 12 and back.sq8_traversal is True
    D2, I2 = back.search(xb[:30], 5)
    np.testing.assert_array_equal(I2, I1)
    path = str(tmp_path / "h.index")
    voisin.write_index(index, path)
    read = voisin.read_index(path)   # FAISS's format has no place for either knob
    assert read.traversal_dims == 0 and read.sq8_traversal is False
    np.testing.assert_array_equal(read.search(xb[:30], 5)[1][:, 0], np.arange(30))
    # removals and compaction keep the projection and re-use it for later adds
    index.remove_ids(np.arange(0, 1500, 3))
    _codes_consistent(index)
    index.compact()
    proj = index._snap[5].proj
    index.add(xb[:50])
    assert index._snap[5].proj is proj
    _codes_consistent(index)
    D, I = index.search(xb[1:2], 1)
    assert D[0, 0] == 0.0


def test_traversal_dims_bad_input():
    index = IndexHNSWFlat(8, 4)
    for bad in (-1, 9):
        with pytest.raises(ValueError, match="traversal_dims"):
            index.traversal_dims = bad
    for bad in (1.5, "4", None, True):
        with pytest.raises(TypeError, match="traversal_dims"):
            index.traversal_dims = bad
    assert index.traversal_dims == 0


@pytest.mark.slow
def test_projected_codes_reach_recall_on_fashion_mnist():
    """The use the knob is for: 784-d data walked on 128-d codes."""
    xb, xq = _load("fashion-mnist-784-euclidean", 100)
    xb = xb[:20000]
    index = IndexHNSWFlat(784, 16)
    index.hnsw.efConstruction = 64
    index.sq8_traversal = True
    index.traversal_dims = 128
    index.add(xb)
    index.hnsw.efSearch = 48
    D, I = index.search(xq, 10)
    assert _recall(xb, xq, I, 10, voisin.METRIC_L2) >= 0.95
    _assert_exact_distances(xb, xq, D, I, voisin.METRIC_L2)


# --- sq8_build: insertion walks SQ8 codes, re-ranks, then prunes on floats -------------------

def _walks(monkeypatch):
    """Record the dtype of the storage each phase-1 call walks."""
    from voisin.kernels import hnsw as K
    seen = []
    real = K.link_new_nodes

    def spy(xin, i0, lo, hi, X, S, *rest):
        seen.append(S.dtype)
        return real(xin, i0, lo, hi, X, S, *rest)
    monkeypatch.setattr(K, "link_new_nodes", spy)
    return seen


def test_sq8_build_keeps_graph_quality(sift):
    xb, xq, _ = sift
    recalls = {}
    for on in (True, False):
        index = IndexHNSWFlat(128, 16)
        index.hnsw.efConstruction = 80
        index.sq8_build = on
        index.add(xb)
        index.hnsw.efSearch = 32
        _, I = index.search(xq, 10)
        recalls[on] = _recall(xb, xq, I, 10, voisin.METRIC_L2)
        # a second build of the same data gives the same graph
        again = IndexHNSWFlat(128, 16)
        again.hnsw.efConstruction = 80
        again.sq8_build = on
        again.add(xb)
        np.testing.assert_array_equal(again.hnsw.neighbors, index.hnsw.neighbors)
    assert recalls[True] >= recalls[False] - 0.01 and recalls[True] >= 0.95, recalls


def test_sq8_build_uses_codes_for_bulk_adds_only(monkeypatch):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3000, 20)).astype(np.float32)
    seen = _walks(monkeypatch)
    index = IndexHNSWFlat(20, 8)
    index.add(x[:2000])                       # bulk: temporary codes
    assert seen and all(dt == np.uint8 for dt in seen)
    assert index._snap[5] is None             # and nothing kept
    seen.clear()
    index.add(x[2000:2010])                   # small add to a large graph: the floats
    assert seen and all(dt == np.float32 for dt in seen)
    index.sq8_traversal = True                # published codes are used for any add
    seen.clear()
    index.add(x[2010:2020])
    assert seen and all(dt == np.uint8 for dt in seen)
    index.sq8_build = False
    seen.clear()
    index.add(x[2020:])
    assert seen and all(dt == np.float32 for dt in seen)
    index.hnsw.efSearch = 64
    D, I = index.search(x[:50], 1)
    assert (I[:, 0] == np.arange(50)).all() and (D[:, 0] == 0).all()


def test_sq8_build_bad_input():
    index = IndexHNSWFlat(8, 4)
    for bad in ("yes", 2, None, 0.5):
        with pytest.raises(TypeError, match="sq8_build"):
            index.sq8_build = bad
    assert index.sq8_build is True


@pytest.mark.parametrize("wrap", ["IDMap2", "Refine", "PreTransform"])
def test_wrapper_pickles_carry_the_inner_knobs(wrap):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1500, 16)).astype(np.float32)
    inner = IndexHNSWFlat(16, 8)
    inner.traversal_dims = 6
    inner.sq8_traversal = True
    inner.sq8_build = False
    if wrap == "IDMap2":
        index = voisin.IndexIDMap2(inner)
        index.add_with_ids(x, np.arange(1500) * 7)
    elif wrap == "Refine":
        index = voisin.IndexRefineFlat(inner)
        index.add(x)
    else:
        index = voisin.IndexPreTransform(voisin.RandomRotationMatrix(16, 16), inner)
        index.train(x)
        index.add(x)
    back = pickle.loads(pickle.dumps(index))
    got = back.base_index if wrap == "Refine" else back.index
    assert (got.traversal_dims, got.sq8_traversal, got.sq8_build) == (6, True, False)
    D1, I1 = index.search(x[:20], 5)
    D2, I2 = back.search(x[:20], 5)
    np.testing.assert_array_equal(I2, I1)
    np.testing.assert_allclose(D2, D1, rtol=1e-6)
