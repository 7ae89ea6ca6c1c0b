"""HNSW deletions: remove_ids (FAISS's sequential id shift), tombstones, graph
repair, compaction, files written after deletes, the SQ8 variant, id maps over
HNSW, and searches running while another thread adds and removes."""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import voisin
from conftest import brute_force, load_hdf5
from voisin.indexes.hnsw import IndexHNSWFlat, IndexHNSWSQ, SearchParametersHNSW


def _data(n=2000, d=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(np.float32)


def _build(x, M=8, efc=60, cls=IndexHNSWFlat, **kw):
    index = cls(x.shape[1], M=M, **kw) if cls is IndexHNSWFlat else cls(x.shape[1], 0, M, **kw)
    index.hnsw.efConstruction = efc
    if not index.is_trained:
        index.train(x)
    index.add(x)
    return index


def _recall(I, xb, xq, k):
    """recall@k against float64 brute force over ``xb`` (ties counted by distance)."""
    D_true, _ = brute_force(xq, xb, k, voisin.METRIC_L2)
    kth = D_true[:, k - 1:k]
    got = ((xq[:, None, :].astype(np.float64) - xb[np.maximum(I, 0)].astype(np.float64)) ** 2).sum(-1)
    return float(((I >= 0) & (got <= kth * (1 + 1e-6) + 1e-9)).mean())


def _links_to_dead(index) -> int:
    """Links from live nodes to deleted ones (must be 0 after every remove_ids)."""
    live = index._snap[4]
    if live is None:
        return 0
    h = index.hnsw
    bad = 0
    for u in np.flatnonzero(live):
        for level in range(int(h.levels[u])):
            bad += int((~live[h.neighbors_of(u, level)]).sum())
    return bad


# --- semantics -------------------------------------------------------------------------

def test_remove_shifts_ids_like_faiss_flat_and_never_returns_removed():
    x = _data()
    index = _build(x)
    index.compact_threshold = 1.0  # keep the tombstones: search must skip them itself
    index.hnsw.efSearch = 64
    rng = np.random.default_rng(1)
    gone = rng.choice(len(x), 300, replace=False)
    assert index.remove_ids(gone) == 300
    assert index.remove_ids(np.array([len(x) + 5, -1])) == 0  # absent ids: nothing removed
    keep = np.setdiff1d(np.arange(len(x)), gone)
    assert index.ntotal == keep.size and index.ntombstones == 300
    assert _links_to_dead(index) == 0
    # FAISS's IndexFlat semantics: the survivors keep their order, ids 0..ntotal-1
    np.testing.assert_array_equal(index.reconstruct_n(), x[keep])
    np.testing.assert_array_equal(index.reconstruct(10), x[keep[10]])
    np.testing.assert_array_equal(index.xb, x[keep])
    q = x[keep[:40]] + 0.01
    D, I = index.search(q, 10)
    assert (I >= 0).all() and (I < keep.size).all()
    # the first hit is the perturbed vector itself, under its shifted id
    assert I[:, 0].tolist() == list(range(40))
    true = ((q[:, None] - x[keep][I]) ** 2).sum(-1)
    np.testing.assert_allclose(D, true, rtol=1e-4, atol=1e-4)
    # the one-query fast path agrees with the batch path
    for r in range(3):
        D1, I1 = index.search(q[r:r + 1], 10)
        np.testing.assert_array_equal(I1[0], I[r])
    # a removed vector queried exactly is not found
    _, I = index.search(x[gone[:20]], 1)
    assert not np.isin(keep[I[:, 0]], gone).any()


def test_k_results_whenever_k_live_vectors_exist():
    x = _data(500, 8)
    index = _build(x)
    index.compact_threshold = 1.0
    assert index.remove_ids(np.arange(5, 500)) == 495
    assert index.ntotal == 5 and index.ntombstones == 495
    D, I = index.search(x[:3], 5)
    assert sorted(I[0].tolist()) == [0, 1, 2, 3, 4]
    D, I = index.search(x[:3], 8)
    assert (I[:, :5] >= 0).all() and (I[:, 5:] == -1).all()
    assert (D[:, 5:] == np.finfo(np.float32).max).all()
    # filtered, with tombstones: the selector speaks in (shifted) ids
    sel = voisin.IDSelectorBatch([1, 3])
    D, I = index.search(x[:2], 4, params=SearchParametersHNSW(sel=sel))
    assert sorted(I[0, :2].tolist()) == [1, 3] and (I[:, 2:] == -1).all()


def test_recall_after_delete_and_readd_close_to_fresh_build():
    data = load_hdf5("siftsmall-128-euclidean", 100)
    xb, xq = data["train"], data["test"]
    index = _build(xb, M=16, efc=80)
    rng = np.random.default_rng(7)
    gone = np.sort(rng.choice(len(xb), int(0.3 * len(xb)), replace=False))
    assert index.remove_ids(gone) == gone.size
    index.add(xb[gone])  # re-added under new ids
    final = np.concatenate([np.delete(xb, gone, axis=0), xb[gone]])
    np.testing.assert_array_equal(index.reconstruct_n(), final)
    fresh = _build(final, M=16, efc=80)
    for ef in (16, 32, 64):
        params = SearchParametersHNSW(efSearch=ef)
        r_mut = _recall(index.search(xq, 10, params=params)[1], final, xq, 10)
        r_new = _recall(fresh.search(xq, 10, params=params)[1], final, xq, 10)
        assert r_mut >= r_new - 0.02, (ef, r_mut, r_new)
    assert _recall(index.search(xq, 10, params=SearchParametersHNSW(efSearch=64))[1],
                   final, xq, 10) >= 0.97


def test_repair_keeps_recall_without_compaction():
    data = load_hdf5("siftsmall-128-euclidean", 100)
    xb, xq = data["train"], data["test"]
    index = _build(xb, M=16, efc=80)
    index.compact_threshold = 1.0
    gone = np.random.default_rng(3).choice(len(xb), 3000, replace=False)
    index.remove_ids(gone)
    assert index.ntombstones == 3000 and _links_to_dead(index) == 0
    assert index._last_remove_timing["lists_repaired"] > 0
    assert index._last_remove_timing["back_links"] > 0
    keep = np.delete(xb, gone, axis=0)
    I = index.search(xq, 10, params=SearchParametersHNSW(efSearch=64))[1]
    assert _recall(I, keep, xq, 10) >= 0.97


def test_entry_point_deletion():
    x = _data(1500, 8, seed=4)
    index = _build(x)
    index.compact_threshold = 1.0
    for _ in range(4):
        ep = index.hnsw.entry_point
        top = index.hnsw.max_level
        # the entry point's id is its rank among live nodes
        ep_id = int(index._snap[2][ep]) if index._snap[2] is not None else ep
        assert index.remove_ids(np.array([ep_id])) == 1
        new_ep = index.hnsw.entry_point
        assert new_ep != ep and index._snap[4][new_ep]
        assert index.hnsw.max_level <= top
        assert index.hnsw.max_level == int(index.hnsw.levels[index._snap[4]].max()) - 1
        assert _links_to_dead(index) == 0
    keep = index.reconstruct_n()
    q = keep[:50] + 0.001
    _, I = index.search(q, 1, params=SearchParametersHNSW(efSearch=64))
    assert (I[:, 0] == np.arange(50)).mean() >= 0.98


def test_delete_everything_then_add():
    x = _data(800, 8)
    for threshold in (0.25, 1.0):
        index = _build(x)
        index.compact_threshold = threshold
        assert index.remove_ids(voisin.IDSelectorRange(0, 10_000)) == 800
        # nothing live: compacted whatever the threshold
        assert index.ntotal == 0 and index.ntombstones == 0 and index.hnsw.levels.size == 0
        assert index.hnsw.entry_point == -1
        D, I = index.search(x[:2], 3)
        assert (I == -1).all()
        assert index.remove_ids(np.arange(3)) == 0
        index.add(x[:300])
        _, I = index.search(x[:20], 1, params=SearchParametersHNSW(efSearch=32))
        assert I[:, 0].tolist() == list(range(20))


@settings(max_examples=15, deadline=None)
@given(ops=st.lists(st.tuples(st.booleans(), st.integers(1, 60), st.integers(0, 2**16)),
                    min_size=1, max_size=8),
       threshold=st.sampled_from([0.0, 0.25, 1.0]))
def test_interleaved_remove_and_add_match_a_list_model(ops, threshold):
    """The index behaves as a Python list of vectors under add / remove_ids."""
    d = 6
    index = IndexHNSWFlat(d, 4)
    index.compact_threshold = threshold
    model = np.empty((0, d), np.float32)
    for is_add, count, seed in ops:
        rng = np.random.default_rng(seed)
        if is_add or model.shape[0] == 0:
            xs = rng.standard_normal((count, d)).astype(np.float32)
            index.add(xs)
            model = np.concatenate([model, xs])
        else:
            gone = rng.choice(model.shape[0], min(count, model.shape[0]), replace=False)
            assert index.remove_ids(gone) == gone.size
            model = np.delete(model, gone, axis=0)
        assert index.ntotal == model.shape[0]
        np.testing.assert_array_equal(index.reconstruct_n(), model)
        assert _links_to_dead(index) == 0
    if model.shape[0]:
        index.hnsw.efSearch = max(16, model.shape[0])  # ef >= n: exhaustive on small graphs
        q = model[: min(5, model.shape[0])]
        D, I = index.search(q, 1)
        np.testing.assert_allclose(D[:, 0], 0.0, atol=1e-6)  # every vector finds itself


# --- id maps over HNSW -------------------------------------------------------------------

def test_idmap2_over_hnsw_remove_and_replace():
    x = _data(1200, 12, seed=5)
    index = voisin.IndexIDMap2(IndexHNSWFlat(12, 8))
    ids = np.arange(1200, dtype=np.int64) * 7 + 1000
    index.add_with_ids(x, ids)
    gone = ids[::3]
    assert index.remove_ids(gone) == gone.size
    assert index.remove_ids(gone) == 0
    left = ids[np.isin(ids, gone, invert=True)]
    _, I = index.search(x[1::3][:30], 1, params=SearchParametersHNSW(efSearch=64))
    assert I[:, 0].tolist() == ids[1::3][:30].tolist()  # user ids stay valid
    _, I = index.search(x[::3][:30], 5)
    assert not np.isin(I, gone).any() and np.isin(I, left).all()
    np.testing.assert_array_equal(index.reconstruct(int(ids[1])), x[1])
    # replace: add_with_ids of present ids = remove + add
    new = _data(10, 12, seed=6)
    index.add_with_ids(new, ids[1:30:3])
    assert index.ntotal == left.size
    np.testing.assert_array_equal(index.reconstruct(int(ids[1])), new[0])
    _, I = index.search(new, 1, params=SearchParametersHNSW(efSearch=64))
    assert I[:, 0].tolist() == ids[1:30:3].tolist()
    _, I = index.search(x[1:2], 3)
    assert ids[1] not in I[0].tolist()  # the old vector of a replaced id is gone
    # filters speak in user ids, with tombstones inside the wrapped index
    sel = voisin.IDSelectorBatch(ids[1:60:3])
    _, I = index.search(x[:5], 4, params=SearchParametersHNSW(sel=sel))
    assert np.isin(I[I >= 0], ids[1:60:3]).all() and (I >= 0).all()


# --- compaction --------------------------------------------------------------------------

def test_compact_preserves_results_exactly_and_returns_memory():
    x = _data(3000, 16, seed=8)
    index = _build(x)
    index.compact_threshold = 1.0
    index.remove_ids(np.random.default_rng(2).choice(3000, 900, replace=False))
    q = _data(64, 16, seed=9)  # 64 queries: the parallel batch path
    before = [index.search(q, 10, params=SearchParametersHNSW(efSearch=ef)) for ef in (10, 40)]
    sel = SearchParametersHNSW(efSearch=40, sel=voisin.IDSelectorRange(100, 1900))
    before_sel = index.search(q[:8], 10, params=sel)
    x_bytes, nb0_bytes, total = index._X.nbytes, index.hnsw._g[0].nbytes, index.nbytes
    assert index.compact() == 900
    assert index.ntombstones == 0 and index.hnsw.levels.size == 2100
    after = [index.search(q, 10, params=SearchParametersHNSW(efSearch=ef)) for ef in (10, 40)]
    for (D0, I0), (D1, I1) in zip(before, after):
        np.testing.assert_array_equal(I0, I1)
        np.testing.assert_array_equal(D0, D1)
    D1, I1 = index.search(q[:8], 10, params=sel)
    np.testing.assert_array_equal(before_sel[1], I1)
    # memory really returned: the arrays were reallocated at the live size
    assert index._X.nbytes == x_bytes * 2100 // 3000
    assert index.hnsw._g[0].nbytes == nb0_bytes * 2100 // 3000
    assert index.nbytes < 0.72 * total
    assert index.compact() == 0


def test_auto_compact_threshold():
    x = _data(2000, 8, seed=10)
    index = _build(x)
    assert index.compact_threshold == 0.25
    index.remove_ids(np.arange(0, 400))  # 20% of the nodes: kept as tombstones
    assert index.ntombstones == 400 and index.hnsw.levels.size == 2000
    index.remove_ids(np.arange(0, 200))  # 600 / 2000 = 30% > 25%: compacted
    assert index.ntombstones == 0 and index.hnsw.levels.size == 1400
    np.testing.assert_array_equal(index.reconstruct_n(), x[600:])
    index.compact_threshold = 0.0  # compact after every removal
    index.remove_ids(np.array([0]))
    assert index.ntombstones == 0 and index.ntotal == 1399
    t = index._last_remove_timing
    assert set(t) >= {"tombstone_s", "repair_s", "compact_s"} and t["compact_s"] > 0
    with pytest.raises(ValueError, match="compact_threshold"):
        index.compact_threshold = -0.1
    with pytest.raises(TypeError, match="compact_threshold"):
        index.compact_threshold = "often"
    assert index.compact_threshold == 0.0


# --- files, pickles, SQ8, read-only --------------------------------------------------------

@pytest.mark.parametrize("layout", ["faiss", "voisin"])
def test_write_read_after_deletes(tmp_path, layout):
    x = _data(1500, 16, seed=11)
    index = _build(x)
    index.compact_threshold = 1.0
    index.remove_ids(np.arange(0, 1500, 4))
    index.hnsw.efSearch = 48
    q = _data(20, 16, seed=12)
    D, I = index.search(q, 5)
    path = tmp_path / "hnsw.bin"
    voisin.write_index(index, path, layout=layout)
    # the in-memory index is untouched by writing a compacted copy
    assert index.ntombstones == 375 and index.hnsw.levels.size == 1500
    back = voisin.read_index(path)
    assert back.ntotal == index.ntotal and back.hnsw.levels.size == index.ntotal
    D2, I2 = back.search(q, 5)
    np.testing.assert_array_equal(I, I2)
    np.testing.assert_array_equal(D, D2)
    clone = pickle.loads(pickle.dumps(index))
    np.testing.assert_array_equal(clone.search(q, 5)[1], I)
    # a mapped, read-only copy refuses removal before touching anything
    ro = voisin.read_index(path, voisin.IO_FLAG_MMAP | voisin.IO_FLAG_READ_ONLY)
    with pytest.raises(RuntimeError, match="IO_FLAG_READ_ONLY"):
        ro.remove_ids(np.arange(3))
    with pytest.raises(RuntimeError, match="IO_FLAG_READ_ONLY"):
        ro.compact()
    # a mapped, writable copy removes without writing into the mapping
    mapped = voisin.read_index(path, voisin.IO_FLAG_MMAP)
    assert mapped.remove_ids(np.arange(10)) == 10
    np.testing.assert_array_equal(mapped.reconstruct_n(), index.reconstruct_n()[10:])
    np.testing.assert_array_equal(voisin.read_index(path).reconstruct_n(), index.reconstruct_n())


def test_faiss_reads_a_file_written_after_deletes(tmp_path):
    faiss = pytest.importorskip("faiss")
    x = _data(1000, 16, seed=13)
    index = _build(x)
    index.compact_threshold = 1.0
    index.remove_ids(np.arange(0, 1000, 3))
    path = tmp_path / "hnsw.faiss"
    voisin.write_index(index, path, checksum=False)
    f = faiss.read_index(str(path))
    assert f.ntotal == index.ntotal
    f.hnsw.efSearch = index.hnsw.efSearch = 64
    q = _data(30, 16, seed=14)
    _, I = index.search(q, 5)
    _, If = f.search(q, 5)
    assert (I == If).mean() >= 0.97


@pytest.mark.parametrize("refine", [False, True])
def test_sq8_variant(refine):
    data = load_hdf5("siftsmall-128-euclidean", 100)
    xb, xq = data["train"][:4000], data["test"]
    sq = IndexHNSWSQ(xb.shape[1], 0, 16)
    sq.hnsw.efConstruction = 80
    index = voisin.IndexRefineFlat(sq, 4) if refine else sq
    index.train(xb)
    index.add(xb)
    sq.compact_threshold = 1.0
    gone = np.random.default_rng(5).choice(4000, 1200, replace=False)
    index.remove_ids(gone)
    keep = np.delete(xb, gone, axis=0)
    assert _links_to_dead(sq) == 0
    assert sq.ntombstones == 1200
    params = SearchParametersHNSW(efSearch=64)
    if refine:
        params = voisin.SearchParametersRefine(base_index_params=params)
    D, I = index.search(xq, 10, params=params)
    assert (I < keep.shape[0]).all()
    r = _recall(I, keep, xq, 10)
    assert r >= (0.95 if refine else 0.85)
    np.testing.assert_allclose(sq.reconstruct_n(), sq.sq.decode(sq.sq.encode(keep)))
    if refine:
        # the re-rank reads the wrapper's rows through the graph's node -> id map
        np.testing.assert_array_equal(index.refine_index.xb, keep)
        true = ((keep[I] - xq[:, None]) ** 2).sum(-1)
        np.testing.assert_allclose(D, true, rtol=1e-4)
    sq.compact()
    D2, I2 = index.search(xq, 10, params=params)
    np.testing.assert_array_equal(I, I2)
    index.add(xb[gone])
    assert index.ntotal == 4000
    back = pickle.loads(pickle.dumps(index))
    np.testing.assert_array_equal(back.search(xq[:5], 5)[1], index.search(xq[:5], 5)[1])


def test_reset_after_deletes():
    x = _data(500, 8)
    index = _build(x)
    index.compact_threshold = 1.0
    index.remove_ids(np.arange(100))
    index.reset()
    assert index.ntotal == 0 and index.ntombstones == 0 and index.nbytes < 1000
    index.add(x[:50])
    assert index.search(x[:1], 1)[1][0, 0] == 0


# --- concurrency ---------------------------------------------------------------------------

def test_searches_see_a_consistent_state_while_another_thread_writes():
    """Queries are vectors 0..99, which no writer removes and whose ids never
    shift (only later ids are removed): every search must return each one first,
    at distance 0, with k valid ids, whatever the writer is doing."""
    x = _data(3000, 16, seed=15)
    index = _build(x[:2000])
    index.hnsw.efSearch = 128
    q = x[:100]
    errors: list[str] = []
    stop = threading.Event()

    def reader(batch: int) -> None:
        while not stop.is_set():
            for r in range(0, 100, batch):
                D, I = index.search(q[r:r + batch], 5)
                if (I[:, 0] != np.arange(r, r + batch)).any() or (D[:, 0] != 0).any() \
                        or (I < 0).any():
                    errors.append(f"bad result {I[:, 0].tolist()}")
                    return
                # ids below 200 never shift: their distances must be theirs
                low = I < 200
                true = ((q[r:r + batch, None] - x[np.where(low, I, 0)]) ** 2).sum(-1)
                if not np.allclose(D[low], true[low], rtol=1e-4, atol=1e-4):
                    errors.append("distance of another vector")
                    return

    threads = [threading.Thread(target=reader, args=(b,)) for b in (1, 100)]
    for t in threads:
        t.start()
    try:
        rng = np.random.default_rng(16)
        pool = x[2000:]
        for step in range(12):
            n = index.ntotal
            gone = rng.choice(np.arange(200, n), 150, replace=False)
            index.remove_ids(gone)
            index.add(pool[step * 80:(step + 1) * 80])
            if step == 6:
                index.compact()
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[:3]


def test_heavy_deletion_keeps_every_survivor_reachable():
    """90% deleted in three rounds without compaction: most neighbourhoods are gone,
    so repair needs its two-hop candidates and fallback search; every survivor must
    still be found by a search for itself."""
    data = load_hdf5("siftsmall-128-euclidean", 100)
    xb, xq = data["train"][:5000], data["test"]
    index = _build(xb, M=16, efc=80)
    index.compact_threshold = 1.0
    rng = np.random.default_rng(21)
    alive = np.arange(5000)
    for frac in (0.5, 0.6, 0.5):
        gone = np.sort(rng.choice(alive.size, int(frac * alive.size), replace=False))
        assert index.remove_ids(gone) == gone.size
        alive = np.delete(alive, gone)
        assert _links_to_dead(index) == 0
    assert index.ntotal == alive.size and index.ntombstones == 5000 - alive.size
    keep = xb[alive]
    params = SearchParametersHNSW(efSearch=64)
    _, I = index.search(keep, 1, params=params)
    assert (I[:, 0] == np.arange(alive.size)).mean() >= 0.99
    assert _recall(index.search(xq, 10, params=params)[1], keep, xq, 10) >= 0.97
