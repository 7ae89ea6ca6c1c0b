"""voisin.distributed.ShardedIndex on a local Ray cluster (127.0.0.1, started
once for this module): sharded exact == one exact index over the union, every
metric; IVF placement; approximate recall like one index; knobs; add_from;
save/load; bad input; and the bounded fault test (a replica, then a whole
replica set, killed in the middle of a stream of searches and adds)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

import voisin
from conftest import assert_same_results, tolerance

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'voisin[ray]')")
import voisin.distributed as vd  # noqa: E402

METRICS = [voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT]
METRIC_IDS = ["L2", "IP"]
D = 16
ACTOR = {"num_cpus_per_actor": 0.1, "threads_per_actor": 1, "timeout": 60.0}


@pytest.fixture(scope="module", autouse=True)
def cluster():
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    if ray.is_initialized():
        ray.shutdown()
    ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, num_cpus=2, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(21)
    xb = rng.standard_normal((3000, D), dtype=np.float32)
    ids = rng.choice(10 ** 9, 3000, replace=False).astype(np.int64)
    return xb, ids, rng.standard_normal((30, D), dtype=np.float32)


def _union(xb, ids, metric, factory="Flat"):
    one = voisin.IndexIDMap2(voisin.index_factory(D, factory, metric))
    one.add_with_ids(xb, ids)
    return one


@pytest.mark.parametrize("metric", METRICS, ids=METRIC_IDS)
def test_sharded_exact_equals_one_exact_index(data, metric):
    xb, ids, xq = data
    with vd.ShardedIndex("Flat", d=D, shards=3, replicas=2, metric=metric, query_batch=7, **ACTOR) as ix:
        ix.add(xb[:1000], ids[:1000])
        ix.add_with_ids(xb[1000:], ids[1000:])
        assert ix.ntotal == 3000
        one = _union(xb, ids, metric)
        Ds, Is = ix.search(xq, 10)
        D1, I1 = one.search(xq, 10)
        np.testing.assert_array_equal(Is, I1)
        np.testing.assert_array_equal(Ds, D1)
        # k > ntotal pads like one index; among exactly tied distances the id map
        # orders by position and the merge by id, both valid
        Ds, Is = ix.search(xq, 4000)
        D1, I1 = one.search(xq, 4000)
        np.testing.assert_array_equal(Ds, D1)
        assert_same_results(Ds, Is, D1, I1, 0.0)
        sel = voisin.IDSelectorBatch(ids[::5])
        np.testing.assert_array_equal(ix.search(xq, 10, sel=sel)[1],
                                      one.search(xq, 10, params=voisin.SearchParameters(sel=sel))[1])
        radius = 12.0 if metric == voisin.METRIC_L2 else 6.0
        lims, Dr, Ir = ix.range_search(xq, radius)
        l1, _, I1r = one.range_search(xq, radius)
        np.testing.assert_array_equal(lims, l1)
        for q in range(len(xq)):
            assert set(Ir[lims[q]:lims[q + 1]]) == set(I1r[l1[q]:l1[q + 1]])
        assert ix.remove_ids(ids[:500]) == 500 and one.remove_ids(ids[:500]) == 500
        assert ix.ntotal == 2500
        np.testing.assert_array_equal(ix.search(xq, 10)[1], one.search(xq, 10)[1])
        assert ix.remove_ids(voisin.IDSelectorBatch(ids[500:600])) == 100


@pytest.mark.parametrize("placement", ["hash", "ivf"])
def test_sharded_ivf_equals_one_ivf_with_the_same_training(data, placement):
    xb, ids, xq = data
    with vd.ShardedIndex("IVF32,Flat", d=D, shards=3, placement=placement, **ACTOR) as ix:
        with pytest.raises(RuntimeError, match="not trained"):
            ix.add(xb, ids)
        ix.train(xb)
        ix.add(xb, ids)
        one = voisin.read_index(os.path.join(ix.path, "trained.faiss"))
        one.add_with_ids(xb, ids)
        for nprobe in (1, 4):
            Ds, Is = ix.search(xq, 10, params={"nprobe": nprobe})
            D1, I1 = one.search(xq, 10, params=voisin.SearchParametersIVF(nprobe=nprobe))
            assert_same_results(Ds, Is, D1, I1, tolerance(xq, xb, voisin.METRIC_L2))
        with pytest.raises(RuntimeError, match="train before adding"):
            ix.train(xb)


def _recall(I, gt):
    return float(np.mean([len(set(a) & set(b)) / gt.shape[1] for a, b in zip(I, gt)]))


def test_approximate_sharded_recall_like_one_index(data):
    xb, ids, xq = data
    gt = voisin.knn(xq, xb, 10)[1]
    with vd.ShardedIndex("HNSW16", d=D, shards=2, **ACTOR) as ix:
        ix.add(xb)  # ids 0..n-1
        one = voisin.index_factory(D, "HNSW16")
        one.add(xb)
        one.hnsw.efSearch = 12
        r_sharded = _recall(ix.search(xq, 10, params={"efSearch": 12})[1], gt)
        r_one = _recall(one.search(xq, 10)[1], gt)
        assert r_sharded >= r_one - 0.03, (r_sharded, r_one)
        with pytest.raises(ValueError, match="'nprobe' does not apply"):
            ix.search(xq, 10, params={"nprobe": 3})


def test_add_from_batches_and_ray_dataset(data, tmp_path):
    xb, ids, xq = data
    with vd.ShardedIndex("Flat", d=D, shards=2, path=str(tmp_path / "ix"), **ACTOR) as ix:
        n = ix.add_from(((xb[i:i + 500], ids[i:i + 500]) for i in range(0, 2000, 500)), progress=True)
        assert n == 2000 and ix.ntotal == 2000
        try:
            import ray.data
        except ImportError:
            pytest.skip("ray.data is not installed (pip install 'ray[data]')")
        ds = ray.data.from_items([{"vec": xb[i], "key": int(ids[i])} for i in range(2000, 3000)])
        assert ix.add_from(ds, vector_column="vec", id_column="key", batch_size=256) == 1000
        assert ix.ntotal == 3000
        one = _union(xb, ids, voisin.METRIC_L2)
        np.testing.assert_array_equal(ix.search(xq, 5)[1], one.search(xq, 5)[1])
        # saved, then opened again (with one more replica): the same answers
        saved = ix.save(str(tmp_path / "saved"))
    with vd.ShardedIndex.load(saved, replicas=2, **ACTOR) as back:
        assert back.ntotal == 3000 and back.nreplica == 2
        np.testing.assert_array_equal(back.search(xq, 5)[1], one.search(xq, 5)[1])
        back.add(xb[:3])  # automatic ids continue after the largest stored id
        assert back.ntotal == 3003
    with vd.ShardedIndex.load(saved, **ACTOR) as again:  # the log after the checkpoint replays
        assert again.ntotal == 3003


def test_bad_input_is_refused_clearly(data, tmp_path):
    xb, ids, xq = data
    with pytest.raises(ValueError, match="placement"):
        vd.ShardedIndex("Flat", d=D, placement="round-robin")
    with pytest.raises(ValueError, match="shards: expected an integer >= 1"):
        vd.ShardedIndex("Flat", d=D, shards=0)
    with pytest.raises(TypeError, match="factory_string"):
        vd.ShardedIndex(None, d=D)
    with pytest.raises(ValueError, match="placement: 'ivf' needs an IVF"):
        vd.ShardedIndex("Flat", d=D, placement="ivf", **ACTOR)
    with pytest.raises(FileNotFoundError, match="no sharded index"):
        vd.ShardedIndex.load(str(tmp_path))
    with vd.ShardedIndex("Flat", d=D, shards=2, path=str(tmp_path / "a"), **ACTOR) as ix:
        with pytest.raises(FileExistsError, match="load"):
            vd.ShardedIndex("Flat", d=D, path=str(tmp_path / "a"))
        with pytest.raises(ValueError, match="x: expected vectors of dimension d=16"):
            ix.add(xb[:, :4])
        bad = xb[:3].copy()
        bad[1, 2] = np.nan
        with pytest.raises(ValueError, match="x: contains NaN"):
            ix.add(bad)
        with pytest.raises(ValueError, match="ids: duplicate id"):
            ix.add(xb[:2], [5, 5])
        with pytest.raises(ValueError, match="k: expected a positive integer"):
            ix.search(xq, 0)
        with pytest.raises(TypeError, match="sel"):
            ix.search(xq, 3, sel=[1, 2])
        with pytest.raises(TypeError, match="x: a selector removed"):
            ix.remove_ids(voisin.IDSelectorFunction(lambda i: i > 3))
        assert ix.ntotal == 0  # nothing bad reached a shard


# --------------------------------------------------------------------------- #
# faults: bounded in iterations and in time
# --------------------------------------------------------------------------- #
def _wait_until_whole(ix, xq, deadline_s=90):
    t_end = time.monotonic() + deadline_s
    while time.monotonic() < t_end:
        try:
            return ix.search(xq, 1)
        except vd.ShardUnavailableError:
            time.sleep(0.5)
    raise AssertionError("the sharded index did not recover by itself")


def test_killed_replicas_lose_no_acknowledged_vector(tmp_path):
    rng = np.random.default_rng(99)
    with vd.ShardedIndex("Flat", d=D, shards=2, replicas=2, path=str(tmp_path / "f"),
                         checkpoint_every=4, **{**ACTOR, "timeout": 30.0}) as ix:
        acked_x, acked_ids = [], []
        outcomes = {"full": 0, "error": 0, "partial": 0}
        t0 = time.monotonic()
        for step in range(24):
            x = rng.standard_normal((20, D), dtype=np.float32)
            ids = np.arange(step * 20, step * 20 + 20, dtype=np.int64)
            ix.add(x, ids)  # returned: acknowledged
            acked_x.append(x)
            acked_ids.append(ids)
            if step == 4:
                ray.kill(ix.replica_handle(0, 0), no_restart=False)  # one replica of shard 0
            if step == 12:
                ray.kill(ix.replica_handle(1, 0), no_restart=False)  # the whole replica set of shard 1
                ray.kill(ix.replica_handle(1, 1), no_restart=False)
            xs = np.concatenate(acked_x)
            ref = voisin.IndexIDMap(voisin.IndexFlatL2(D))
            ref.add_with_ids(xs, np.concatenate(acked_ids))
            xq = rng.standard_normal((5, D), dtype=np.float32)
            try:
                res = ix.search(xq, 5, allow_partial=(step % 2 == 1))
            except vd.ShardUnavailableError as exc:
                assert exc.shards == [1], exc.shards  # only the killed set may be missing
                outcomes["error"] += 1
                continue
            if res.missing_shards:
                assert res.missing_shards == [1]
                outcomes["partial"] += 1
                continue
            # a full answer sees every vector acknowledged before the search
            np.testing.assert_array_equal(res[1], ref.search(xq, 5)[1])
            outcomes["full"] += 1
        assert time.monotonic() - t0 < 300  # 24 steps, each bounded by the 30 s timeout
        _wait_until_whole(ix, xb_probe := np.concatenate(acked_x)[:2])
        allx, allids = np.concatenate(acked_x), np.concatenate(acked_ids)
        assert ix.ntotal == allids.size
        Dq, Iq = ix.search(allx, 1)
        np.testing.assert_array_equal(Iq[:, 0], allids)  # every acknowledged vector is there
        assert (Dq[:, 0] == 0).all()
        stats = ix.replica_stats()
        assert len(stats) == 4 and len({(s["shard"], s["replica"]) for s in stats}) == 4
        assert outcomes["full"] > 0, outcomes
        del xb_probe


def test_a_lost_shard_is_reported_and_its_acknowledged_writes_survive(tmp_path):
    rng = np.random.default_rng(5)
    xb = rng.standard_normal((400, D), dtype=np.float32)
    ids = np.arange(400, dtype=np.int64)
    path = str(tmp_path / "lost")
    ix = vd.ShardedIndex("Flat", d=D, shards=2, path=path, max_restarts=0, **{**ACTOR, "timeout": 5.0})
    try:
        ix.add(xb[:200], ids[:200])
        ray.kill(ix.replica_handle(1, 0), no_restart=True)  # shard 1 is gone for good
        ix.add(xb[200:], ids[200:])  # still acknowledged: logged for both shards
        with pytest.raises(vd.ShardUnavailableError, match=r"shard\(s\) \[1\]") as err:
            ix.search(xb[:3], 5)
        assert err.value.shards == [1]
        res = ix.search(xb[:20], 5, allow_partial=True)
        assert res.missing_shards == [1]
        on0 = vd.hash_shards(ids, 2) == 0
        ref = voisin.IndexIDMap(voisin.IndexFlatL2(D))
        ref.add_with_ids(xb[on0], ids[on0])
        np.testing.assert_array_equal(res[1], ref.search(xb[:20], 5)[1])
    finally:
        ix.close()
    with vd.ShardedIndex.load(path, **ACTOR) as back:  # new actors rebuild shard 1 from its log
        assert back.ntotal == 400
        np.testing.assert_array_equal(back.search(xb, 1)[1][:, 0], ids)


# --- the sharded collection (voisin.distributed.connect_sharded) ----------------------------

def _payloads(n, rng):
    return [{"lang": ["fr", "en", "de"][i % 3], "year": int(2000 + rng.integers(0, 25)),
             "tags": [f"t{j}" for j in range(i % 4)]} for i in range(n)]


@pytest.fixture(scope="module")
def collections(tmp_path_factory):
    """The same points in a 3-shard collection and in one embedded collection."""
    rng = np.random.default_rng(5)
    n = 600
    xb = rng.standard_normal((n, D)).astype(np.float32)
    ids = (rng.choice(10 ** 12, n, replace=False)).tolist()
    pay = _payloads(n, rng)
    sharded = vd.connect_sharded(tmp_path_factory.mktemp("sharded"), shards=3)
    embedded = voisin.connect(tmp_path_factory.mktemp("embedded"))
    cols = []
    for db in (sharded, embedded):
        col = db.create_collection("docs", dim=D, metric="cosine", index="Flat")
        col.upsert(ids[:400], xb[:400], payloads=pay[:400])
        col.upsert(ids[400:], xb[400:], payloads=pay[400:])
        cols.append(col)
    yield cols[0], cols[1], xb, ids
    sharded.close()
    embedded.close()


FILTERS = [None, {"must": [{"key": "lang", "match": {"value": "fr"}}]},
           {"must": [{"key": "year", "range": {"gte": 2010, "lt": 2020}}],
            "must_not": [{"key": "tags", "match": {"any": ["t1"]}}]}]


@pytest.mark.parametrize("flt", FILTERS, ids=["none", "match", "range-not"])
def test_sharded_collection_answers_as_one_collection(collections, flt):
    sharded, embedded, xb, ids = collections
    assert sharded.count(flt) == embedded.count(flt)
    q = np.random.default_rng(1).standard_normal((4, D)).astype(np.float32)
    for offset in (0, 3):
        a = sharded.search(q, k=7, filter=flt, offset=offset)
        b = embedded.search(q, k=7, filter=flt, offset=offset)
        assert a.ids == b.ids
        for sa, sb in zip(a.scores, b.scores):
            np.testing.assert_allclose(sa, sb, rtol=1e-5, atol=1e-6)
        assert a.payloads == b.payloads
    # scroll pages in the same id order, to the end
    pages_a, pages_b, off_a, off_b = [], [], None, None
    while True:
        ra, off_a = sharded.scroll(flt, limit=64, offset=off_a)
        rb, off_b = embedded.scroll(flt, limit=64, offset=off_b)
        pages_a.append([r.id for r in ra])
        pages_b.append([r.id for r in rb])
        assert off_a == off_b
        if off_a is None:
            break
    assert pages_a == pages_b
    picked = [ids[5], 12345, ids[0], ids[5]]  # unknown ids left out, duplicates once
    assert [r.id for r in sharded.get(picked)] == [r.id for r in embedded.get(picked)]


def test_sharded_writes_by_filter_and_ids(tmp_path):
    rng = np.random.default_rng(8)
    xb = rng.standard_normal((200, D)).astype(np.float32)
    ids = list(range(200))
    pay = _payloads(200, rng)
    sharded = vd.connect_sharded(tmp_path / "s", shards=2)
    embedded = voisin.connect(tmp_path / "e")
    try:
        cols = [db.create_collection("c", dim=D, metric="euclid", index="Flat")
                for db in (sharded, embedded)]
        for col in cols:
            col.upsert(ids, xb, payloads=pay)
            col.delete(filter={"must": [{"key": "lang", "match": {"value": "de"}}]})
            with pytest.raises(voisin.db.errors.PointNotFoundError, match="id 2"):
                col.set_payload([1, 2, 3], {"flag": True})   # 2 was deleted: nothing changes
            col.set_payload([1, 3, 4], {"flag": True})
            col.delete_payload(ids=None, keys=["tags"], filter={"must": [{"key": "year",
                                                                         "range": {"lt": 2005}}]})
            col.delete([1, 10, 11])
        a, b = cols
        assert a.count() == b.count()
        ra, _ = a.scroll(limit=500, with_vectors=True)
        rb, _ = b.scroll(limit=500, with_vectors=True)
        assert [(r.id, r.payload) for r in ra] == [(r.id, r.payload) for r in rb]
        np.testing.assert_array_equal(np.stack([r.vector for r in ra]), np.stack([r.vector for r in rb]))
        q = xb[:3]
        assert a.search(q, k=5).ids == b.search(q, k=5).ids  # euclid: smaller first
        # reopen: the shard count is kept, a different one is refused
        sharded.close()
        with pytest.raises(ValueError, match="shards"):
            vd.connect_sharded(tmp_path / "s", shards=3)
        sharded = vd.connect_sharded(tmp_path / "s")
        assert sharded.get_collection("c").count() == b.count()
        # snapshot to one file and restore elsewhere
        snap = sharded.snapshot(tmp_path / "snap.zip")
        back = vd.restore_sharded(snap, tmp_path / "restored")
        assert back.get_collection("c").search(q, k=5).ids == b.search(q, k=5).ids
        back.close()
    finally:
        sharded.close()
        embedded.close()


def test_sharded_collection_survives_a_killed_shard(tmp_path):
    """SIGKILL-equivalent of one shard actor in the middle of a stream of upserts:
    Ray restarts it, it reopens its folder, and every acknowledged point is there."""
    rng = np.random.default_rng(9)
    db = vd.connect_sharded(tmp_path / "f", shards=2)
    try:
        col = db.create_collection("c", dim=D, metric="dot", index="Flat")
        acked = []
        t0 = time.time()
        for b in range(12):
            if b == 5:
                ray.kill(db._actors[1], no_restart=False)  # the shard dies mid-stream
            batch = list(range(b * 20, b * 20 + 20))
            try:
                col.upsert(batch, rng.standard_normal((20, D)).astype(np.float32),
                           payloads=[{"b": b}] * 20)
                acked.extend(batch)
            except vd.ShardedCollectionError:
                pass  # not acknowledged: may or may not be there
            assert time.time() - t0 < 240
        assert len(acked) >= 11 * 20
        got = {r.id for r in col.get(acked)}
        assert got == set(acked)
        assert col.count() >= len(acked)
        assert len(col.search(np.ones(D, np.float32), k=10)[0]) == 10
    finally:
        db.close()


def test_sharded_collection_bad_input(tmp_path):
    with pytest.raises(ValueError, match="shards"):
        vd.connect_sharded(tmp_path / "x", shards=0)
    db = vd.connect_sharded(tmp_path / "y", shards=2)
    try:
        col = db.create_collection("c", dim=4, index="Flat")
        with pytest.raises(ValueError, match="dim|dimension"):
            col.upsert([1], np.ones((1, 5), np.float32))
        with pytest.raises(TypeError):
            col.upsert([True], np.ones((1, 4), np.float32))
        with pytest.raises(NotImplementedError, match="documents"):
            col.upsert([1], documents=["text"])
        with pytest.raises(Exception, match="docs|collection"):
            db.get_collection("docs")
        assert col.count() == 0
    finally:
        db.close()


def test_the_test_cluster_listens_on_loopback_only():
    nodes = ray.nodes()
    assert nodes and all(n["NodeManagerAddress"] == "127.0.0.1" for n in nodes)
