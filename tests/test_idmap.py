"""IndexIDMap / IndexIDMap2: arbitrary int64 ids, reconstruct by id, remove_ids,
replacement of an existing id, and filters in the external id space —
against numpy brute force and faiss.IndexIDMap."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import voisin
from conftest import FLT_MAX, assert_knn_valid, assert_same_results, assert_unchanged, index_state, tolerance

faiss = pytest.importorskip("faiss")

METRICS = [voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT]
METRIC_IDS = ["L2", "IP"]
WRAPPERS = [voisin.IndexIDMap, voisin.IndexIDMap2]


def _random_ids(rng, n):
    # big, negative (other than -1) and unordered ids: nothing may assume 0..n-1
    ids = rng.choice(np.arange(-10 ** 6, 10 ** 6), n, replace=False).astype(np.int64) * 1_000_003
    ids[ids == -1] = 42
    return ids


def _pair(xb, ids, metric, wrapper=voisin.IndexIDMap):
    d = xb.shape[1]
    ours = wrapper(voisin.IndexFlat(d, metric))
    ours.add_with_ids(xb, ids)
    ref = faiss.IndexIDMap(faiss.IndexFlat(d, metric))
    ref.add_with_ids(xb, ids)
    return ours, ref


@pytest.mark.parametrize("wrapper", WRAPPERS, ids=["IDMap", "IDMap2"])
@pytest.mark.parametrize("metric", METRICS, ids=METRIC_IDS)
@pytest.mark.parametrize("nq", [4, 30], ids=["scan", "blas"])
def test_search_returns_external_ids(rng, wrapper, metric, nq):
    xb = rng.standard_normal((2500, 12)).astype(np.float32)
    xq = rng.standard_normal((nq, 12)).astype(np.float32)
    ids = _random_ids(rng, 2500)
    ours, ref = _pair(xb, ids, metric, wrapper)
    assert ours.ntotal == 2500
    D, I = ours.search(xq, 10)
    assert_knn_valid(D, I, xq, xb, 10, metric, ids=ids)
    Df, If = ref.search(xq, 10)
    assert_same_results(D, I, Df, If, tolerance(xq, xb, metric))
    # k > ntotal still pads with -1, never with a translated id
    small, _ = _pair(xb[:3], ids[:3], metric, wrapper)
    D, I = small.search(xq, 5)
    assert (I[:, 3:] == -1).all() and set(I[0, :3].tolist()) == set(ids[:3].tolist())
    assert (D[:, 3:] == (FLT_MAX if metric == voisin.METRIC_L2 else -FLT_MAX)).all()


@pytest.mark.parametrize("metric", METRICS, ids=METRIC_IDS)
@pytest.mark.parametrize("nq", [4, 30], ids=["scan", "blas"])
def test_filters_speak_external_ids(rng, metric, nq):
    n = 2000
    xb = rng.standard_normal((n, 8)).astype(np.float32)
    xq = rng.standard_normal((nq, 8)).astype(np.float32)
    ids = (np.arange(n, dtype=np.int64) * 10 + 5)[rng.permutation(n)]  # 5, 15, 25, ... shuffled
    ours, ref = _pair(xb, ids, metric)
    chosen = ids[rng.choice(n, 30, replace=False)]
    cases = [
        (voisin.IDSelectorRange(1000, 3000), faiss.IDSelectorRange(1000, 3000), (ids >= 1000) & (ids < 3000)),
        (voisin.IDSelectorBatch(chosen), faiss.IDSelectorBatch(chosen), np.isin(ids, chosen)),
        (voisin.IDSelectorNot(voisin.IDSelectorBatch(chosen)),
         faiss.IDSelectorNot(faiss.IDSelectorBatch(chosen)), ~np.isin(ids, chosen)),
        # positions 0..n-1 are NOT the ids: a range over positions must select almost nothing
        (voisin.IDSelectorRange(0, 100), faiss.IDSelectorRange(0, 100), (ids < 100)),
    ]
    for sel, fsel, allowed in cases:
        D, I = ours.search(xq, 12, params=voisin.SearchParameters(sel=sel))
        assert_knn_valid(D, I, xq, xb, 12, metric, allowed=allowed, ids=ids)
        Df, If = ref.search(xq, 12, params=faiss.SearchParameters(sel=fsel))
        assert_same_results(D, I, Df, If, tolerance(xq, xb, metric))
        lims, Dr, Ir = ours.range_search(xq, 1e30 if metric == voisin.METRIC_L2 else -1e30,
                                         params=voisin.SearchParameters(sel=sel))
        for i in range(nq):
            assert sorted(Ir[lims[i]:lims[i + 1]].tolist()) == sorted(ids[allowed].tolist())


def test_range_search_returns_external_ids(rng):
    xb = rng.standard_normal((500, 6)).astype(np.float32)
    xq = rng.standard_normal((7, 6)).astype(np.float32)
    ids = _random_ids(rng, 500)
    ours, ref = _pair(xb, ids, voisin.METRIC_L2)
    lims, D, I = ours.range_search(xq, 4.0)
    lf, Df, If = ref.range_search(xq, 4.0)
    assert lims.dtype == np.uint64 and lims[-1] > 0
    for i in range(7):
        a = dict(zip(I[lims[i]:lims[i + 1]].tolist(), D[lims[i]:lims[i + 1]].tolist()))
        b = dict(zip(If[lf[i]:lf[i + 1]].tolist(), Df[lf[i]:lf[i + 1]].tolist()))
        assert a.keys() == b.keys()
        np.testing.assert_allclose([a[key] for key in a], [b[key] for key in a], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("wrapper", WRAPPERS, ids=["IDMap", "IDMap2"])
def test_reconstruct_by_id(rng, wrapper):
    xb = rng.standard_normal((100, 5)).astype(np.float32)
    ids = _random_ids(rng, 100)
    index = wrapper(voisin.IndexFlatL2(5))
    index.add_with_ids(xb, ids)
    for j in (0, 57, 99):
        np.testing.assert_array_equal(index.reconstruct(int(ids[j])), xb[j])
    np.testing.assert_array_equal(index.reconstruct_batch(ids[[5, 3, 5]]), xb[[5, 3, 5]])
    # reconstruct_n is by position in the wrapped index, like faiss
    np.testing.assert_array_equal(index.reconstruct_n(10, 3), xb[10:13])
    missing = int(ids.max()) + 1
    with pytest.raises(ValueError, match="key"):
        index.reconstruct(missing)
    with pytest.raises(ValueError, match="key"):
        index.reconstruct_batch([int(ids[0]), missing])
    ref = faiss.IndexIDMap2(faiss.IndexFlatL2(5))
    ref.add_with_ids(xb, ids)
    np.testing.assert_array_equal(index.reconstruct(int(ids[42])), ref.reconstruct(int(ids[42])))


@pytest.mark.parametrize("wrapper", WRAPPERS, ids=["IDMap", "IDMap2"])
def test_remove_ids_keeps_other_ids_valid(rng, wrapper):
    xb = rng.standard_normal((1200, 10)).astype(np.float32)
    xq = rng.standard_normal((25, 10)).astype(np.float32)
    ids = _random_ids(rng, 1200)
    ours, ref = _pair(xb, ids, voisin.METRIC_L2, wrapper)
    alive = np.ones(1200, bool)
    steps = [ids[:100], voisin.IDSelectorRange(int(np.median(ids)), int(ids.max()) + 1),
             np.array([ids[500], 77777777777], np.int64)]
    for step in steps:
        if isinstance(step, voisin.IDSelectorRange):
            gone = (ids >= step.imin) & (ids < step.imax) & alive
            fs = faiss.IDSelectorRange(step.imin, step.imax)
        else:
            gone = np.isin(ids, step) & alive
            fs = faiss.IDSelectorBatch(step)
        n = ours.remove_ids(step)
        assert n == int(gone.sum()) == ref.remove_ids(fs)
        alive &= ~gone
        assert ours.ntotal == int(alive.sum()) == ref.ntotal
        D, I = ours.search(xq, 8)
        assert_knn_valid(D, I, xq, xb[alive], 8, voisin.METRIC_L2, ids=ids[alive])
        Df, If = ref.search(xq, 8)
        assert_same_results(D, I, Df, If, tolerance(xq, xb, voisin.METRIC_L2))
        # every surviving id still reconstructs to its own vector
        np.testing.assert_array_equal(ours.reconstruct_batch(ids[alive]), xb[alive])
        assert sorted(ours.id_map.tolist()) == sorted(ids[alive].tolist())
    with pytest.raises(ValueError, match="key"):
        ours.reconstruct(int(ids[0]))  # removed
    assert ours.remove_ids(ids[:100]) == 0  # already gone


def test_adding_an_existing_id_replaces_its_vector(rng):
    xb = rng.standard_normal((50, 4)).astype(np.float32)
    ids = np.arange(100, 150, dtype=np.int64)
    index = voisin.IndexIDMap2(voisin.IndexFlatL2(4))
    index.add_with_ids(xb, ids)
    new = np.full((2, 4), 50.0, np.float32)
    new[1] = -50.0
    index.add_with_ids(new, np.array([110, 9999], np.int64))
    assert index.ntotal == 51  # 110 replaced, 9999 added
    np.testing.assert_array_equal(index.reconstruct(110), new[0])
    np.testing.assert_array_equal(index.reconstruct(9999), new[1])
    D, I = index.search(new, 1)
    assert I[:, 0].tolist() == [110, 9999] and (D[:, 0] == 0).all()
    # the old vector of id 110 is gone: searching for it does not return 110
    D, I = index.search(xb[10:11], 51)
    assert I[0, 0] != 110 and (I[0] == 110).sum() == 1
    assert sorted(index.id_map.tolist()) == sorted(list(range(100, 150)) + [9999])


def test_ids_dtypes_and_shapes_accepted(rng):
    xb = rng.standard_normal((6, 3)).astype(np.float32)
    index = voisin.IndexIDMap(voisin.IndexFlatL2(3))
    index.add_with_ids(xb[:2], np.array([1, 2], np.int32))
    index.add_with_ids(xb[2:4], np.array([3, 4], np.uint64))
    index.add_with_ids(xb[4:5], [5])
    index.add_with_ids(xb[5], 6)  # one vector, scalar id
    assert index.id_map.tolist() == [1, 2, 3, 4, 5, 6]
    np.testing.assert_array_equal(index.reconstruct_batch([1, 2, 3, 4, 5, 6]), xb)
    assert index.id_map.dtype == np.int64
    with pytest.raises(ValueError):
        index.id_map[0] = 7  # read-only view of the internals


def test_reset_then_reuse_and_pickle(rng):
    xb = rng.standard_normal((300, 5)).astype(np.float32)
    xq = rng.standard_normal((22, 5)).astype(np.float32)
    ids = _random_ids(rng, 300)
    index = voisin.IndexIDMap2(voisin.IndexFlatIP(5))
    index.add_with_ids(xb, ids)
    index.remove_ids(ids[:10])
    copy = pickle.loads(pickle.dumps(index))
    assert copy.ntotal == 290 and isinstance(copy, voisin.IndexIDMap2)
    for a, b in zip(index.search(xq, 6), copy.search(xq, 6)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(copy.reconstruct(int(ids[20])), xb[20])
    index.reset()
    assert index.ntotal == 0 and index.index.ntotal == 0 and index.id_map.size == 0
    assert (index.search(xq, 3)[1] == -1).all()
    index.add_with_ids(xb[:5], ids[:5])  # ids removed by reset can be used again
    D, I = index.search(xb[:5], 1)
    assert_knn_valid(D, I, xb[:5], xb[:5], 1, voisin.METRIC_INNER_PRODUCT, ids=ids[:5])
    assert copy.ntotal == 290  # the pickled copy is independent


def test_add_without_ids_and_bad_wrapping(rng):
    index = voisin.IndexIDMap(voisin.IndexFlatL2(3))
    with pytest.raises(RuntimeError, match="add_with_ids"):
        index.add(np.zeros((2, 3), np.float32))
    assert index.ntotal == 0
    full = voisin.IndexFlatL2(3)
    full.add(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="index"):
        voisin.IndexIDMap(full)
    with pytest.raises(TypeError, match="index"):
        voisin.IndexIDMap(faiss.IndexFlatL2(3))
    with pytest.raises(TypeError, match="index"):
        voisin.IndexIDMap2("flat")
    # the flat index itself refuses ids and says how to get them
    with pytest.raises(RuntimeError, match="IndexIDMap"):
        full.add_with_ids(np.zeros((1, 3), np.float32), np.array([5]))
    assert full.ntotal == 2


def test_wrapper_follows_inner_index(rng):
    index = voisin.IndexIDMap(voisin.IndexFlatIP(7))
    assert index.d == 7 and index.metric_type == voisin.METRIC_INNER_PRODUCT and index.is_trained
    index.add_with_ids(rng.standard_normal((4, 7)), np.array([10, 20, 30, 40]))
    assert index.index.ntotal == index.ntotal == len(index) == 4


def test_concurrent_search_during_remove_and_add_returns_true_ids(rng):
    # searches run without the write lock: one that overlaps a remove_ids (which
    # shifts the wrapped index's positions) must still translate with matching ids
    import threading

    n = 3000
    xb = rng.standard_normal((n, 8)).astype(np.float32)
    ids = np.arange(n, dtype=np.int64) * 7 + 3
    index = voisin.IndexIDMap(voisin.IndexFlatL2(8))
    index.add_with_ids(xb, ids)
    vec_of = dict(zip(ids.tolist(), xb))
    xq = rng.standard_normal((30, 8)).astype(np.float32)
    stop = threading.Event()
    problems: list[str] = []
    searches = [0]

    def searcher():
        while not stop.is_set():
            D, I = index.search(xq, 5)
            searches[0] += 1
            if (I == -1).any():
                problems.append("missing result")
                continue
            true = ((xq[:, None, :] - np.array([[vec_of[int(j)] for j in row] for row in I])) ** 2).sum(-1)
            if (np.abs(true - D) > 1e-3).any():
                problems.append("an id returned with another vector's distance")

    thread = threading.Thread(target=searcher)
    thread.start()
    import time

    cycles, t0 = 0, time.monotonic()
    try:
        # enough writes to overlap many searches, whatever the machine's load
        while (cycles < 150 or searches[0] < 20) and time.monotonic() - t0 < 30:
            pick = rng.choice(n, 50, replace=False)
            index.remove_ids(ids[pick])
            index.add_with_ids(xb[pick], ids[pick])
            cycles += 1
    finally:
        stop.set()
        thread.join()
    assert searches[0] > 0
    assert not problems, f"{len(problems)} of {searches[0]} searches: {problems[0]}"
    assert index.ntotal == n


def test_add_with_ids_taking_views_of_the_index_itself(rng):
    # ids = a view of the index's own id map, x = a view of its own storage:
    # the replacement shifts both arrays in place, the add must not read them afterwards
    xb = rng.standard_normal((10, 2)).astype(np.float32)
    index = voisin.IndexIDMap2(voisin.IndexFlatL2(2))
    index.add_with_ids(xb, np.arange(100, 110, dtype=np.int64))
    index.add_with_ids(np.full((3, 2), -5.0, np.float32), index.id_map[:3])
    assert sorted(index.id_map.tolist()) == list(range(100, 110)) and index.ntotal == 10
    np.testing.assert_array_equal(index.reconstruct_batch([100, 101, 102]), np.full((3, 2), -5.0))
    np.testing.assert_array_equal(index.reconstruct_batch(np.arange(103, 110)), xb[3:])
    before = index.reconstruct_batch(np.arange(100, 110))
    src = index.index.xb[5:8].copy()  # stored rows, as the wrapped index orders them
    index.add_with_ids(index.index.xb[5:8], np.array([100, 101, 102], np.int64))
    after = index.reconstruct_batch(np.arange(100, 110))
    np.testing.assert_array_equal(after[:3], src)
    np.testing.assert_array_equal(after[3:], before[3:])
    flat = voisin.IndexFlatL2(2)
    flat.add(xb)
    flat.add(flat.xb)  # a flat index fed its own storage doubles it
    np.testing.assert_array_equal(flat.reconstruct_n(), np.vstack([xb, xb]))


def test_wrapping_an_index_that_keeps_its_own_ids_refuses_removal(rng):
    # IVF keeps the id each vector was added with: after a removal the id map's
    # positions would point at other vectors (FAISS returns wrong ids there)
    if not hasattr(voisin, "IndexIVFFlat"):
        pytest.skip("IndexIVFFlat not in this build")
    xb = rng.standard_normal((1000, 8)).astype(np.float32)
    ids = np.arange(1000, dtype=np.int64) * 11 + 7
    ivf = voisin.IndexIVFFlat(voisin.IndexFlatL2(8), 8, 4)
    ivf.train(xb)
    ivf.nprobe = 4
    index = voisin.IndexIDMap(ivf)
    index.add_with_ids(xb[:900], ids[:900])
    D, I = index.search(xb[100:103], 1)
    assert I[:, 0].tolist() == ids[100:103].tolist()
    before = index_state(index, xb[:20])
    with pytest.raises(NotImplementedError, match="IndexIVFFlat directly"):
        index.remove_ids(ids[:10])
    with pytest.raises(NotImplementedError, match="IndexIVFFlat directly"):
        index.add_with_ids(xb[:2], ids[:2])  # replacing existing ids needs a removal
    assert_unchanged(index, before, xb[:20])
    index.add_with_ids(xb[900:], ids[900:])  # new ids still work
    D, I = index.search(xb[950:953], 1)
    assert I[:, 0].tolist() == ids[950:953].tolist()


def test_output_arrays_receive_external_ids(rng):
    xb = rng.standard_normal((300, 4)).astype(np.float32)
    xq = rng.standard_normal((25, 4)).astype(np.float32)
    ids = _random_ids(rng, 300)
    index = voisin.IndexIDMap(voisin.IndexFlatL2(4))
    index.add_with_ids(xb, ids)
    D = np.empty((25, 6), np.float32)
    I = np.empty((25, 6), np.int64)
    D2, I2 = index.search(xq, 6, D=D, I=I)
    assert D2 is D and I2 is I
    assert_knn_valid(D, I, xq, xb, 6, voisin.METRIC_L2, ids=ids)


def test_staged_add_inserts_while_searches_see_the_old_graph(rng):
    """IndexIDMap(HNSW).staged_add: entering inserts (searches still see the old
    vectors only), the call publishes vectors and ids together; the result equals
    a plain add_with_ids. Replacing an id, or an inner index that cannot prepare,
    falls back to the whole add inside the call; a block left without the call
    adds nothing."""
    d = 12
    xb = rng.standard_normal((600, d)).astype(np.float32)
    ids = np.arange(600, dtype=np.int64) * 5 + 1
    xq = rng.standard_normal((20, d)).astype(np.float32)

    def make():
        ix = voisin.IndexIDMap2(voisin.IndexHNSWFlat(d, 8))
        ix.index.hnsw.efSearch = 64
        ix.add_with_ids(xb[:400], ids[:400])
        return ix

    plain, staged = make(), make()
    plain.add_with_ids(xb[400:], ids[400:])
    before = staged.search(xq, 5)
    with staged.staged_add(xb[400:], ids[400:]) as publish:
        during = staged.search(xq, 5)
        assert staged.ntotal == 400
        np.testing.assert_array_equal(during[1], before[1])
        publish()
    assert staged.ntotal == 600
    np.testing.assert_array_equal(staged.id_map, plain.id_map)
    (Ds, Is), (Dp, Ip) = staged.search(xq, 5), plain.search(xq, 5)
    np.testing.assert_array_equal(Is, Ip)  # the same levels drawn, the same graph
    np.testing.assert_allclose(Ds, Dp, rtol=1e-6)
    np.testing.assert_array_equal(staged.reconstruct(int(ids[450])), xb[450])

    # not published: nothing added, and the index takes further writes
    with staged.staged_add(xb[:1] + 1, np.array([10_000])) as publish:
        pass
    assert staged.ntotal == 600 and 10_000 not in set(staged.id_map.tolist())
    # replacing ids: done whole by the call
    with staged.staged_add(xb[:3] * 0, ids[:3]) as publish:
        publish()
    np.testing.assert_array_equal(staged.reconstruct(int(ids[1])), np.zeros(d, np.float32))
    assert staged.ntotal == 600
    # an inner index that cannot prepare an add
    flat = voisin.IndexIDMap(voisin.IndexFlatL2(d))
    with flat.staged_add(xb[:10], ids[:10]) as publish:
        assert flat.ntotal == 0
        publish()
    assert flat.ntotal == 10
    with pytest.raises(ValueError, match="ids"):
        with flat.staged_add(xb[:2], np.array([1, 1])):
            pass
