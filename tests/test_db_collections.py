"""Collections: the API end to end, bad input (clear error, data unchanged),
locking, checkpoints that are damaged or stale, snapshots under writes,
concurrency, index choice, documents."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import uuid

import numpy as np
import pytest

import voisin
from voisin.db import (CollectionExistsError, CollectionNotFoundError, DatabaseLockedError,
                       FilterError, NotADatabaseError, PointNotFoundError, ReadOnlyError)
from voisin.db import ann as ann_module


def _points(n, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, dim)).astype(np.float32)
    P = [{"g": int(i % 5), "year": 2000 + int(i % 25), "tags": ["a", "b", "c"][: 1 + i % 3]} for i in range(n)]
    return X, P


@pytest.fixture
def col(tmp_path):
    db = voisin.connect(tmp_path / "db")
    c = db.create_collection("c", dim=8, metric="euclid")
    X, P = _points(50)
    c.upsert(list(range(50)), X, payloads=P)
    yield c
    db.close()


def _state(c):
    return c.count(), [(r.id, r.payload, r.vector.tolist()) for r in c.get(list(range(60)), with_vectors=True)]


@pytest.mark.parametrize("call, error, message", [
    (lambda c: c.upsert([1], np.zeros((1, 7))), ValueError, "vectors: expected vectors of dimension d=8"),
    (lambda c: c.upsert([1, 2], np.full((2, 8), np.nan)), ValueError, "vectors: contains NaN or inf"),
    (lambda c: c.upsert([1, 1], np.ones((2, 8))), ValueError, "ids: duplicate id 1 in one call"),
    (lambda c: c.upsert([1, str(uuid.uuid4())], np.ones((2, 8))), TypeError, "ids: expected ids of one kind"),
    (lambda c: c.upsert([-1], np.ones((1, 8))), ValueError, "ids[0]: expected a point id in [0, 2**64)"),
    (lambda c: c.upsert(["nope"], np.ones((1, 8))), ValueError, "ids[0]: expected an unsigned integer or a UUID"),
    (lambda c: c.upsert([1.5], np.ones((1, 8))), TypeError, "ids[0]: expected an unsigned 64-bit integer"),
    (lambda c: c.upsert([1, 2], np.ones((3, 8))), ValueError, "vectors: expected 2 vectors"),
    (lambda c: c.upsert([1], np.ones((1, 8)), payloads=[{"x": float("nan")}]), ValueError,
     "payloads[0]['x']: expected a finite number"),
    (lambda c: c.upsert([1], np.ones((1, 8)), payloads=[{1: "x"}]), TypeError, "payloads[0]: expected string keys"),
    (lambda c: c.upsert([1], np.ones((1, 8)), payloads=[{"x": {1, 2}}]), TypeError,
     "payloads[0]['x']: expected a JSON value"),
    (lambda c: c.upsert([1], np.ones((1, 8)), payloads=["x"]), TypeError, "payloads[0]: expected a JSON object"),
    (lambda c: c.upsert([1], np.ones((1, 8)), payloads=[{"x": 2 ** 70}]), ValueError, "fits in int64"),
    (lambda c: c.upsert([1], np.ones((1, 8)), payloads=[{}, {}]), ValueError, "payloads: expected 1 payloads"),
    (lambda c: c.upsert([1], documents=["text"]), ValueError, "documents: collection 'c' has no embedder"),
    (lambda c: c.set_payload([999], {"x": 1}), PointNotFoundError, "ids[0]: no point with id 999"),
    (lambda c: c.set_payload([1], {"x": object()}), TypeError, "payload['x']: expected a JSON value"),
    (lambda c: c.set_payload(None, {"x": 1}), TypeError, "set_payload: expected either ids or filter"),
    (lambda c: c.delete(filter={"must": [{"key": "g", "range": {"gt": "x"}}]}), FilterError,
     "filter.must[0].range.gt"),
    (lambda c: c.search(np.ones(7)), ValueError, "query: expected a 2-D array of shape (n, 8)"),
    (lambda c: c.search(np.ones(8), k=0), ValueError, "k: expected a positive integer"),
    (lambda c: c.search(np.ones(8), offset=-1), ValueError, "offset: expected an integer >= 0"),
    (lambda c: c.search(np.ones(8), score_threshold="x"), TypeError, "score_threshold: expected a finite number"),
    (lambda c: c.scroll(limit=0), ValueError, "limit: expected an integer >= 1"),
    (lambda c: c.create_payload_index("g", "geo"), ValueError, "schema: expected one of keyword"),
    (lambda c: c.delete_payload([1], ["a[0]"]), ValueError, "keys[0]: expected a key path of object keys"),
])
def test_bad_input_is_refused_and_changes_nothing(col, call, error, message):
    before = _state(col)
    seq = col.seq
    with pytest.raises(error) as err:
        call(col)
    assert message in str(err.value), str(err.value)
    assert _state(col) == before and col.seq == seq


def test_unknown_collection_and_names(tmp_path):
    with voisin.connect(tmp_path / "db") as db:
        with pytest.raises(CollectionNotFoundError, match="name: no collection 'nope'"):
            db.get_collection("nope")
        with pytest.raises(CollectionNotFoundError):
            db.delete_collection("nope")
        with pytest.raises(ValueError, match="name: expected a collection name"):
            db.create_collection("a/b", dim=4)
        with pytest.raises(ValueError, match="metric: expected one of"):
            db.create_collection("a", dim=4, metric="manhattan")
        with pytest.raises(voisin.FactoryError):
            db.create_collection("a", dim=4, index="HNSW,Nonsense")
        with pytest.raises(TypeError, match="dim: expected a positive integer"):
            db.create_collection("a", dim=4.0)
        assert db.list_collections() == []
        db.create_collection("a", dim=4)
        with pytest.raises(CollectionExistsError, match="already exists"):
            db.create_collection("a", dim=4)
        assert db.get_or_create_collection("a", dim=4) is db.get_collection("a")
        db.create_collection("b", dim=3, metric="dot")
        assert db.list_collections() == ["a", "b"] and db.has_collection("b")
        db.delete_collection("a")
        assert db.list_collections() == ["b"]


def test_folders_that_are_not_databases(tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("hello")
    with pytest.raises(NotADatabaseError, match="is not empty and holds no voisin database"):
        voisin.connect(tmp_path / "other")
    assert os.listdir(tmp_path / "other") == ["notes.txt"]
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "voisin.sqlite3").write_bytes(b"garbage" * 100)
    with pytest.raises(NotADatabaseError, match="not a voisin database"):
        voisin.connect(tmp_path / "fake")
    assert (tmp_path / "fake" / "voisin.sqlite3").read_bytes() == b"garbage" * 100
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADatabaseError, match="is a file"):
        voisin.connect(tmp_path / "file")
    with pytest.raises(NotADatabaseError, match="holds no voisin database"):
        voisin.connect(tmp_path / "missing", read_only=True)
    with pytest.raises(NotADatabaseError, match="not a readable voisin snapshot"):
        voisin.restore(tmp_path / "file", tmp_path / "restored")
    with pytest.raises(ValueError, match="durability: expected one of full, normal"):
        voisin.connect(tmp_path / "new", durability="yolo")


def test_one_writer_per_folder(tmp_path):
    path = tmp_path / "db"
    db = voisin.connect(path)
    db.create_collection("c", dim=2).upsert([1], [[1.0, 0.0]])
    with pytest.raises(DatabaseLockedError, match="open for writing elsewhere"):
        voisin.connect(path)
    code = ("import voisin, sys\ntry:\n    voisin.connect(sys.argv[1])\nexcept voisin.db.DatabaseLockedError as e:\n"
            "    print('locked', e)\n")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert out.stdout.startswith("locked") and str(os.getpid()) in out.stdout, out.stderr
    ro = voisin.connect(path, read_only=True)
    rcol = ro.get_collection("c")
    assert rcol.count() == 1
    with pytest.raises(ReadOnlyError, match="read_only=True"):
        rcol.upsert([2], [[0.0, 1.0]])
    with pytest.raises(ReadOnlyError):
        ro.create_collection("d", dim=2)
    ro.close()
    db.close()
    voisin.connect(path).close()  # released


def _damage(path):
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(path, "wb").write(bytes(data))


def test_damaged_missing_or_stale_checkpoints_are_rebuilt(tmp_path, caplog):
    path = tmp_path / "db"
    X, P = _points(300)
    with voisin.connect(path) as db:
        c = db.create_collection("c", dim=8, metric="euclid")
        c.upsert(range(300), X, payloads=P)
    index_dir = path / "index"
    faiss_file = next(f for f in os.listdir(index_dir) if f.endswith(".faiss"))
    stale = (index_dir / faiss_file).read_bytes()
    stale_meta = next(f for f in os.listdir(index_dir) if f.endswith(".json"))
    stale_meta_bytes = (index_dir / stale_meta).read_bytes()
    q = X[:5] + 0.01

    def check(expect_count, deleted=()):
        with voisin.connect(path) as db:
            c = db.get_collection("c")
            assert c.count() == expect_count
            keep = np.array([i for i in range(300) if i not in deleted])
            d = np.sqrt(((X[keep][None].astype(np.float64) - q[:, None]) ** 2).sum(-1))
            for qi, h in enumerate(c.search(q, k=5)):
                np.testing.assert_allclose(h.scores, np.sort(d[qi])[:5], rtol=1e-4)

    _damage(index_dir / faiss_file)
    with caplog.at_level(logging.WARNING, logger="voisin.db"):
        check(300)
    assert "SHA-256 does not match" in caplog.text
    for f in os.listdir(index_dir):
        os.unlink(index_dir / f)
    check(300)
    # a checkpoint older than the records: deletes happened after it
    with voisin.connect(path) as db:
        db.get_collection("c").delete(list(range(10)))
    for f in os.listdir(index_dir):
        os.unlink(index_dir / f)
    (index_dir / faiss_file).write_bytes(stale)
    (index_dir / stale_meta).write_bytes(stale_meta_bytes)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="voisin.db"):
        check(290, deleted=range(10))
    assert "outside" in caplog.text  # older than the purge horizon: not replayable


def test_snapshot_is_consistent_while_writes_go_on(tmp_path):
    db = voisin.connect(tmp_path / "db")
    c = db.create_collection("c", dim=4, metric="euclid")
    stop = threading.Event()
    batches = []

    def writer():
        rng = np.random.default_rng(1)
        b = 0
        while not stop.is_set() and b < 400:
            ids = list(range(b * 10, b * 10 + 10))
            c.upsert(ids, rng.standard_normal((10, 4)), payloads=[{"batch": b}] * 10)
            batches.append(b)
            b += 1
    t = threading.Thread(target=writer)
    t.start()
    while len(batches) < 5:
        pass
    snap = db.snapshot(tmp_path / "snap.voisin")
    stop.set()
    t.join()
    restored = voisin.restore(snap, tmp_path / "restored")
    rc = restored.get_collection("c")
    n = rc.count()
    assert n % 10 == 0 and 50 <= n <= 10 * len(batches)
    got = sorted(r.id for r in rc.scroll(limit=10_000)[0])
    assert got == list(range(n))  # a prefix of the batches, each whole
    hits = rc.search(np.zeros(4), k=n)
    assert sorted(hits.ids[0]) == got
    restored.close()
    db.close()
    with pytest.raises(ValueError, match="folder: expected a new or empty folder"):
        voisin.restore(snap, tmp_path / "restored")


@pytest.mark.parametrize("index", ["auto", "HNSW16,Flat"])
def test_readers_run_beside_a_writer(tmp_path, index):
    # with HNSW the graph insertion runs beside the searches (staged add): a search
    # must still see each point with its vector and its payload together
    db = voisin.connect(tmp_path / "db", durability="normal")
    c = db.create_collection("c", dim=8, metric="euclid", index=index)
    X, P = _points(2000, seed=3)
    c.upsert(range(500), X[:500], payloads=P[:500])
    errors = []

    def reader(seed):
        rng = np.random.default_rng(seed)
        try:
            for _ in range(60):
                h = c.search(rng.standard_normal(8), k=5, filter={"must": [{"key": "g", "match": {"value": 1}}]})
                assert all(p["g"] == 1 for p in h.payloads[0])
                assert len(h[0]) == 5
                h = c.search(rng.standard_normal(8), k=20)
                assert len(h[0]) == 20 and all(p is not None and "g" in p for p in h.payloads[0])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
    threads = [threading.Thread(target=reader, args=(s,)) for s in range(3)]
    for t in threads:
        t.start()
    for s in range(500, 2000, 100):
        c.upsert(range(s, s + 100), X[s:s + 100], payloads=P[s:s + 100])
        c.delete(list(range(s - 500, s - 480)))
    for t in threads:
        t.join()
    assert not errors, errors
    db.close()


def test_auto_moves_to_hnsw_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(ann_module, "AUTO_HNSW_AT", 300)
    X, P = _points(1500, dim=16, seed=5)
    with voisin.connect(tmp_path / "db") as db:
        c = db.create_collection("c", dim=16, metric="cosine")
        c.upsert(range(200), X[:200], payloads=P[:200])
        assert c.index_description.startswith("auto: Flat (exact)")
        c.upsert(range(200, 1500), X[200:], payloads=P[200:])
        assert c.index_description.startswith("auto: HNSW16,Flat")
        assert c.info()["index_in_use"] == c.index_description
    with voisin.connect(tmp_path / "db") as db:
        c = db.get_collection("c")
        assert c.index_description.startswith("auto: HNSW16,Flat")
        Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
        q = Xn[:20] + 0.05
        f = {"must": [{"key": "g", "match": {"value": 2}}]}
        allowed = np.array([i for i in range(1500) if P[i]["g"] == 2])
        hits = c.search(q, k=10, filter=f)
        recall = []
        for qi, h in enumerate(hits):
            sims = Xn[allowed] @ q[qi]
            true = set(allowed[np.argsort(-sims)[:10]].tolist())
            recall.append(len(true & set(h.ids)) / 10)
            assert np.all(np.diff(h.scores) <= 1e-6)  # cosine: best first
        assert np.mean(recall) >= 0.95


@pytest.mark.parametrize("spec", ["Flat", "HNSW16,Flat", "IVF8,Flat"])
def test_factory_strings(tmp_path, spec):
    X, P = _points(1200, dim=8, seed=9)
    with voisin.connect(tmp_path / "db") as db:
        c = db.create_collection("c", dim=8, metric="euclid", index=spec)
        c.upsert(range(600), X[:600], payloads=P[:600])
        if spec.startswith("IVF"):
            assert "until 1000 points to train it" in c.index_description
        c.upsert(range(600, 1200), X[600:], payloads=P[600:])
        assert c.index_description == spec
        h = c.search(X[:3], k=1)
        assert h.ids == [[0], [1], [2]]
        c.delete([0])
        assert 0 not in c.search(X[:1], k=3).ids[0]
    with voisin.connect(tmp_path / "db") as db:
        assert db.get_collection("c").search(X[1:2], k=1).ids == [[1]]


def test_search_options_and_reads(col):
    X, P = _points(50)
    hits = col.search(X[:3], k=4, with_vectors=True)
    assert len(hits) == 3 and [h.ids[0] for h in hits] == [0, 1, 2]
    np.testing.assert_array_equal(hits[0].vectors[0], X[0])
    page2 = col.search(X[0], k=2, offset=2)[0]
    assert page2.ids == hits[0].ids[2:4]
    thr = float(hits[0].scores[2])
    assert all(s < thr for s in col.search(X[0], k=10, score_threshold=thr)[0].scores)
    assert col.get([3, 999, 3])[0].id == 3 and len(col.get([3, 999, 3])) == 1
    assert col.count({"must": [{"key": "g", "match": {"value": 1}}]}) == 10
    seen, offset = [], None
    while True:
        recs, offset = col.scroll(filter={"must": [{"key": "g", "match": {"any": [1, 2]}}]}, limit=7, offset=offset)
        seen += [r.id for r in recs]
        if offset is None:
            break
    assert seen == [i for i in range(50) if i % 5 in (1, 2)]
    col.set_payload(None, {"flag": True}, filter={"must": [{"key": "g", "match": {"value": 4}}]})
    assert col.count({"must": [{"key": "flag", "match": {"value": True}}]}) == 10
    col.overwrite_payload([4], {"only": 1})
    assert col.get([4])[0].payload == {"only": 1}
    col.delete_payload([9], ["tags", "g"])
    assert col.get([9])[0].payload == {"year": 2009, "flag": True}
    col.clear_payload([9])
    assert col.get([9])[0].payload == {}
    col.delete(filter={"must": [{"key": "year", "range": {"lt": 2010}}]})
    assert col.count() == 50 - 18 and col.get([0]) == []  # 4 and 9 lost their year
    # payloads handed out are copies
    col.get([10])[0].payload["g"] = "changed"
    assert col.get([10])[0].payload["g"] == 0


def test_metrics_and_scores(tmp_path):
    with voisin.connect(tmp_path / "db") as db:
        c = db.create_collection("cos", dim=2, metric="cosine")
        c.upsert([1, 2], [[3.0, 0.0], [1.0, 1.0]])
        h = c.search([10.0, 0.0], k=2)[0]
        assert h.ids == [1, 2]
        np.testing.assert_allclose(h.scores, [1.0, np.sqrt(0.5)], rtol=1e-6)
        with pytest.raises(ValueError, match=r"vectors\[0\]: expected a non-zero vector"):
            c.upsert([3], [[0.0, 0.0]])
        d = db.create_collection("dot", dim=2, metric="dot")
        d.upsert([1, 2], [[3.0, 0.0], [1.0, 1.0]])
        np.testing.assert_allclose(d.search([1.0, 0.0], k=2)[0].scores, [3.0, 1.0])
        e = db.create_collection("l2", dim=2, metric="l2")
        e.upsert([1], [[3.0, 4.0]])
        np.testing.assert_allclose(e.search([0.0, 0.0], k=1)[0].scores, [5.0])


def test_uuid_ids_and_upsert_replaces(tmp_path):
    u = uuid.uuid4()
    with voisin.connect() as db:
        c = db.create_collection("c", dim=2, metric="euclid")
        c.upsert([u.hex.upper()], [[1.0, 1.0]], payloads=[{"v": 1}])
        c.upsert([str(u)], [[2.0, 2.0]], payloads=[{"v": 2}])
        assert c.count() == 1
        r = c.get([u], with_vectors=True)[0]
        assert r.id == str(u) and r.payload == {"v": 2} and r.vector.tolist() == [2.0, 2.0]
        c.upsert([2 ** 64 - 1], [[0.0, 0.0]])
        assert c.scroll()[0][0].id == 2 ** 64 - 1  # integers first, then UUIDs
        assert c.count({"must": [{"has_id": [str(u)]}]}) == 1


def test_documents_through_an_embedder(tmp_path):
    def embed(texts):
        return np.array([[len(t), t.count("a") + 1.0] for t in texts], dtype=np.float32)
    embed.name = "toy-encoder"
    with voisin.connect(tmp_path / "db") as db:
        c = db.create_collection("docs", dim=2, metric="euclid", embedder=embed)
        c.upsert([1, 2], documents=["banana", "kiwi"], payloads=[{"f": "y"}, {"f": "g"}])
        h = c.search(texts=["panama"], k=1)[0]
        assert h.ids == [1] and h.documents == ["banana"]
        assert c.get([2])[0].document == "kiwi"
        with pytest.raises(TypeError, match=r"documents\[1\]: expected a string"):
            c.upsert([3, 4], documents=["ok", None])
        assert c.count() == 2
    with voisin.connect(tmp_path / "db") as db:
        other = lambda texts: np.zeros((len(texts), 2))  # noqa: E731
        with pytest.raises(ValueError, match="was embedded with 'toy-encoder'"):
            db.get_collection("docs", embedder=other)
        c = db.get_collection("docs", embedder=embed)
        assert c.search(texts=["kiwi"], k=1)[0].documents == ["kiwi"]


def test_in_memory_database_leaves_nothing_behind():
    db = voisin.connect()
    folder = db.path
    db.create_collection("c", dim=2).upsert([1], [[1.0, 2.0]])
    assert os.path.isdir(folder)
    db.close()
    assert not os.path.exists(folder)
    with pytest.raises(RuntimeError, match="is closed"):
        db.list_collections()


def test_collection_snapshot_and_recovery(tmp_path):
    from voisin.db import CollectionNotFoundError, NotADatabaseError
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 6)).astype(np.float32)
    db = voisin.connect(tmp_path / "db")
    a = db.create_collection("a", dim=6, metric="euclid")
    a.upsert(list(range(300)), X, [{"i": i} for i in range(300)])
    a.upsert(["6f1c2b3a-4d5e-4f60-a1b2-c3d4e5f60718"], X[:1], [{"u": 1}])
    a.create_payload_index("i", "integer")
    db.create_collection("b", dim=2).upsert([1], [[1, 0]])
    snap = db.snapshot(tmp_path / "a.snap", collections=["a"])
    with pytest.raises(CollectionNotFoundError, match="collections\\[0\\]"):
        db.snapshot(tmp_path / "x.snap", collections=["nope"])
    only = voisin.restore(snap, tmp_path / "only")
    assert only.list_collections() == ["a"] and only.get_collection("a").count() == 301
    only.close()
    before = a.scroll(limit=1000, with_vectors=True)[0]
    hits = a.search(X[7], k=5, filter={"must": [{"key": "i", "range": {"gte": 100}}]}).ids
    a.delete(list(range(0, 300, 2)))
    a.set_payload([1], {"changed": True})
    with pytest.raises(NotADatabaseError):
        db.recover_collection(tmp_path / "missing.snap", "a")
    with pytest.raises(CollectionNotFoundError, match="source"):
        db.recover_collection(snap, "a", source="b")
    assert a.count() == 151  # failed recoveries left it as it was
    back = db.recover_collection(snap, "a")
    assert back is db.get_collection("a") and back is not a
    with pytest.raises(RuntimeError, match="replaced"):
        a.count()
    after = back.scroll(limit=1000, with_vectors=True)[0]
    assert [(r.id, r.payload) for r in after] == [(r.id, r.payload) for r in before]
    np.testing.assert_array_equal(np.stack([r.vector for r in after]), np.stack([r.vector for r in before]))
    assert back.search(X[7], k=5, filter={"must": [{"key": "i", "range": {"gte": 100}}]}).ids == hits
    assert back.payload_schema == {"i": "integer"}
    db.recover_collection(snap, "copy")
    assert sorted(db.list_collections()) == ["a", "b", "copy"]
    db.close()
    db = voisin.connect(tmp_path / "db")  # the swap is on disk, no hidden collection left
    assert sorted(db.list_collections()) == ["a", "b", "copy"] and db.get_collection("a").count() == 301
    assert not [f for f in os.listdir(tmp_path / "db") if f.startswith(".recover-")]
    db.close()
