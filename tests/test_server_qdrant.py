"""voisin serve driven by the real qdrant-client, against the embedded collection.

Each test starts its own ``voisin serve`` process on a free loopback port and
stops it. The same points go into an embedded collection and, through
qdrant-client, into the server; every read (query with filters, retrieve,
count, scroll) must give the same answer, after writes of every kind.
Collections stay below the size where ``index="auto"`` moves to HNSW, so
both sides search exactly and answers compare one to one.
"""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
qc = pytest.importorskip("qdrant_client")
from qdrant_client import QdrantClient, models as m  # noqa: E402
from qdrant_client.http.exceptions import UnexpectedResponse  # noqa: E402

import voisin  # noqa: E402
from server_proc import Server  # noqa: E402

DIM = 16
N = 600


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, DIM)).astype(np.float32)
    payloads = [{"color": ["red", "green", "blue"][i % 3], "n": int(i), "w": float(i % 7) / 2,
                 "tags": [f"t{i % 4}", f"t{i % 5}"]} for i in range(N)]
    return X, payloads


FILTERS = [
    None,
    m.Filter(must=[m.FieldCondition(key="color", match=m.MatchValue(value="red"))]),
    m.Filter(must=[m.FieldCondition(key="n", range=m.Range(gte=100, lt=300))],
             must_not=[m.FieldCondition(key="tags", match=m.MatchAny(any=["t1"]))]),
    m.Filter(should=[m.FieldCondition(key="w", range=m.Range(lte=0.5)),
                     m.FieldCondition(key="color", match=m.MatchValue(value="blue"))]),
    m.Filter(must=[m.HasIdCondition(has_id=list(range(0, N, 9)))]),
]


def _as_json(f):
    return None if f is None else json.loads(f.model_dump_json(exclude_none=True))


@pytest.fixture
def pair(tmp_path):
    """(qdrant-client on a fresh server, an embedded collection), same data in both."""
    X, payloads = _data()
    server = Server(tmp_path / "served").start()
    client = QdrantClient(url=server.url, timeout=60, check_compatibility=False)
    client.create_collection("c", vectors_config=m.VectorParams(size=DIM, distance=m.Distance.COSINE))
    for s in range(0, N, 200):
        client.upsert("c", points=[m.PointStruct(id=i, vector=X[i].tolist(), payload=payloads[i])
                                   for i in range(s, s + 200)], wait=True)
    db = voisin.connect(tmp_path / "embedded")
    col = db.create_collection("c", dim=DIM, metric="cosine")
    col.upsert(np.arange(N), X, payloads)
    yield client, col, X
    client.close()
    db.close()
    server.stop()


def _same_search(client, col, X, rng, flt=None, limit=7, offset=0, threshold=None):
    for q in rng.normal(size=(4, DIM)).astype(np.float32):
        got = client.query_points("c", query=q.tolist(), limit=limit, offset=offset, query_filter=flt,
                                  score_threshold=threshold, with_payload=True).points
        want = col.search(q, k=limit, filter=_as_json(flt), offset=offset, score_threshold=threshold)[0]
        assert [p.id for p in got] == want.ids
        np.testing.assert_allclose([p.score for p in got], want.scores, rtol=1e-5, atol=1e-6)
        assert [p.payload for p in got] == want.payloads


def test_queries_equal_the_embedded_collection(pair):
    client, col, X = pair
    rng = np.random.default_rng(1)
    assert client.count("c").count == col.count() == N
    for flt in FILTERS:
        _same_search(client, col, X, rng, flt)
        assert client.count("c", count_filter=flt).count == col.count(_as_json(flt))
    _same_search(client, col, X, rng, FILTERS[1], limit=5, offset=3)
    _same_search(client, col, X, rng, None, limit=10, threshold=0.2)
    # the older search endpoint (older clients' search()) gives the same answers
    q = X[5] + 0.1
    url = client._client.rest_uri + "/collections/c/points/search"
    req = urllib.request.Request(url, data=json.dumps({"vector": q.tolist(), "limit": 4}).encode(),
                                 method="POST", headers={"content-type": "application/json"})
    old = json.loads(urllib.request.urlopen(req).read())["result"]
    assert [p["id"] for p in old] == col.search(q, k=4)[0].ids
    # batch queries, and a query by a stored point's id (the point itself is left out)
    batch = client.query_batch_points("c", requests=[m.QueryRequest(query=X[1].tolist(), limit=3),
                                                     m.QueryRequest(query=2, limit=3)])
    assert [p.id for p in batch[0].points] == col.search(X[1], k=3)[0].ids
    assert [p.id for p in batch[1].points] == [i for i in col.search(X[2], k=4)[0].ids if i != 2][:3]


def test_retrieve_scroll_and_every_write_match(pair):
    client, col, X = pair
    got = client.retrieve("c", ids=[3, 1, 10_000, 3], with_vectors=True)
    want = col.get([3, 1, 10_000, 3], with_vectors=True)
    assert [r.id for r in got] == [r.id for r in want] == [3, 1]
    np.testing.assert_allclose(got[0].vector, want[0].vector, rtol=1e-6)
    # scroll pages in id order, with a filter, to the end
    offset, seen = None, []
    while True:
        recs, offset = client.scroll("c", scroll_filter=FILTERS[1], limit=37, offset=offset)
        seen += [r.id for r in recs]
        if offset is None:
            break
    records, _ = col.scroll(_as_json(FILTERS[1]), limit=N)
    assert seen == [r.id for r in records]
    # writes of every kind, applied to both
    client.set_payload("c", payload={"flag": True}, points=[1, 2, 3], wait=True)
    col.set_payload([1, 2, 3], {"flag": True})
    client.overwrite_payload("c", payload={"only": 1}, points=m.Filter(must=[
        m.FieldCondition(key="n", range=m.Range(gte=590))]), wait=True)
    col.overwrite_payload(None, {"only": 1}, filter={"must": [{"key": "n", "range": {"gte": 590}}]})
    client.delete_payload("c", keys=["tags"], points=[4, 5], wait=True)
    col.delete_payload([4, 5], ["tags"])
    client.clear_payload("c", points_selector=m.PointIdsList(points=[6]), wait=True)
    col.clear_payload([6])
    client.delete("c", points_selector=m.PointIdsList(points=[7, 8, 9]), wait=True)
    col.delete([7, 8, 9])
    client.delete("c", points_selector=m.FilterSelector(filter=FILTERS[1]), wait=True)
    col.delete(filter=_as_json(FILTERS[1]))
    client.upsert("c", points=m.Batch(ids=[7, 2000], vectors=[X[0].tolist(), X[1].tolist()],
                                      payloads=[{"color": "new"}, {"color": "new"}]), wait=True)
    col.upsert([7, 2000], X[:2], [{"color": "new"}, {"color": "new"}])
    assert client.count("c").count == col.count()
    all_srv, _ = client.scroll("c", limit=N + 10)
    all_emb, _ = col.scroll(limit=N + 10)
    assert [(r.id, r.payload) for r in all_srv] == [(r.id, r.payload) for r in all_emb]
    rng = np.random.default_rng(2)
    for flt in FILTERS:
        _same_search(client, col, X, rng, flt)


def test_collections_payload_indexes_and_uuid_ids(tmp_path):
    with Server(tmp_path / "db") as server:
        client = QdrantClient(url=server.url, check_compatibility=False)
        assert client.get_collections().collections == []
        client.create_collection("e", vectors_config=m.VectorParams(size=3, distance=m.Distance.EUCLID),
                                 hnsw_config=m.HnswConfigDiff(m=8, ef_construct=64))
        assert client.collection_exists("e") and not client.collection_exists("nope")
        with pytest.raises(UnexpectedResponse) as err:
            client.create_collection("e", vectors_config=m.VectorParams(size=3, distance=m.Distance.DOT))
        assert err.value.status_code == 409
        ids = ["6f1c2b3a-4d5e-4f60-a1b2-c3d4e5f60718", "00000000-0000-0000-0000-000000000001"]
        client.upsert("e", points=[m.PointStruct(id=ids[0], vector=[0, 0, 1], payload={"k": "a"}),
                                   m.PointStruct(id=ids[1], vector=[0, 0, 3], payload={"k": "b"})])
        hits = client.query_points("e", query=[0, 0, 0], limit=2).points
        assert [h.id for h in hits] == ids and [h.score for h in hits] == pytest.approx([1.0, 3.0])
        client.create_payload_index("e", field_name="k", field_schema=m.PayloadSchemaType.KEYWORD)
        info = client.get_collection("e")
        assert info.points_count == 2 and info.config.params.vectors.distance == m.Distance.EUCLID
        assert info.config.hnsw_config.m == 8 and info.payload_schema["k"].data_type == "keyword"
        client.delete_payload_index("e", field_name="k")
        assert client.get_collection("e").payload_schema == {}
        assert client.delete_collection("e") is True
        assert client.delete_collection("e") is False
        with pytest.raises(UnexpectedResponse) as err:
            client.get_collection("e")
        assert err.value.status_code == 404
        client.close()


def test_snapshot_download_and_recover(tmp_path):
    X, payloads = _data(3)
    with Server(tmp_path / "db") as server:
        client = QdrantClient(url=server.url, check_compatibility=False)
        client.create_collection("s", vectors_config=m.VectorParams(size=DIM, distance=m.Distance.DOT))
        client.create_collection("other", vectors_config=m.VectorParams(size=2, distance=m.Distance.DOT))
        client.upsert("s", points=m.Batch(ids=list(range(100)), vectors=X[:100].tolist(),
                                          payloads=payloads[:100]))
        client.create_payload_index("s", field_name="color", field_schema="keyword")
        snap = client.create_snapshot("s")
        assert [s.name for s in client.list_snapshots("s")] == [snap.name]
        with urllib.request.urlopen(f"{server.url}/collections/s/snapshots/{snap.name}") as r:
            data = r.read()
        assert len(data) == snap.size
        before = client.scroll("s", limit=200, with_vectors=True)[0]
        q = X[100].tolist()
        hits_before = client.query_points("s", query=q, limit=5).points
        # change everything, then go back to the snapshot
        client.delete("s", points_selector=m.PointIdsList(points=list(range(50))))
        client.upsert("s", points=m.Batch(ids=list(range(100, 150)), vectors=X[100:150].tolist()))
        client.recover_snapshot("s", location=f"{server.url}/collections/s/snapshots/{snap.name}")
        after = client.scroll("s", limit=200, with_vectors=True)[0]
        assert [(r.id, r.payload) for r in after] == [(r.id, r.payload) for r in before]
        np.testing.assert_allclose([r.vector for r in after], [r.vector for r in before])
        assert [h.id for h in client.query_points("s", query=q, limit=5).points] == [h.id for h in hits_before]
        assert client.get_collection("s").payload_schema["color"].data_type == "keyword"
        assert client.collection_exists("other")
        # into a new name, from the file path
        file = tmp_path / "db" / "snapshots" / "s" / snap.name
        client.recover_snapshot("copy", location=file.as_uri())
        assert client.count("copy").count == 100
        # uploaded (multipart, as qdrant-client sends it), checked against its SHA-256
        upload = tmp_path / "upload.snapshot"
        upload.write_bytes(data)
        api = client.http.snapshots_api
        with open(upload, "rb") as f:
            assert api.recover_from_uploaded_snapshot("up", wait=True, checksum=snap.checksum,
                                                      snapshot=f).result is True
        assert client.count("up").count == 100
        assert client.get_collection("up").payload_schema["color"].data_type == "keyword"
        upload.write_bytes(b"not a snapshot")
        for checksum in ("0" * 64, None):
            with open(upload, "rb") as f, pytest.raises(UnexpectedResponse) as err:
                api.recover_from_uploaded_snapshot("up", wait=True, checksum=checksum, snapshot=f)
            assert err.value.status_code == 400, err.value.content
        assert client.count("up").count == 100  # a failed recovery leaves the collection as it was
        assert not [p for p in (tmp_path / "db" / "snapshots" / "_full").iterdir() if p.name.startswith(".")]
        # never from another address, never outside the snapshots folder
        for location in ("http://192.0.2.1/x.snapshot", (tmp_path / "elsewhere.snapshot").as_uri()):
            with pytest.raises(UnexpectedResponse) as err:
                client.recover_snapshot("s", location=location)
            assert err.value.status_code in (400, 403)
        assert client.delete_snapshot("s", snap.name) is True
        assert client.list_snapshots("s") == []
        full = client.create_full_snapshot()
        assert [s.name for s in client.list_full_snapshots()] == [full.name]
        client.close()
    restored = voisin.restore(tmp_path / "db" / "snapshots" / "_full" / full.name, tmp_path / "restored")
    assert sorted(restored.list_collections()) == ["copy", "other", "s", "up"]
    restored.close()


def test_unsupported_features_say_so(tmp_path):
    with Server(tmp_path / "db") as server:
        client = QdrantClient(url=server.url, check_compatibility=False)
        with pytest.raises(UnexpectedResponse, match="named vectors"):
            client.create_collection("n", vectors_config={"a": m.VectorParams(size=2, distance="Dot")})
        with pytest.raises(UnexpectedResponse, match="sparse"):
            client.create_collection("n", vectors_config=m.VectorParams(size=2, distance="Dot"),
                                     sparse_vectors_config={"s": m.SparseVectorParams()})
        client.create_collection("c", vectors_config=m.VectorParams(size=2, distance="Dot"))
        client.upsert("c", points=[m.PointStruct(id=1, vector=[1, 0])])
        with pytest.raises(UnexpectedResponse, match="order_by"):
            client.scroll("c", order_by="x")
        with pytest.raises(UnexpectedResponse, match="prefetch"):
            client.query_points("c", prefetch=[m.Prefetch(query=[1, 0])], query=[1, 0])
        with pytest.raises(UnexpectedResponse, match="exact"):
            client.query_points("c", query=[1, 0], search_params=m.SearchParams(exact=True))
        with pytest.raises(UnexpectedResponse) as err:
            client.query_points("c", query=m.RecommendQuery(recommend=m.RecommendInput(positive=[1])))
        assert err.value.status_code == 400 and b"Unsupported" in err.value.content
        client.close()


def test_bad_input_gets_a_4xx_naming_the_field(tmp_path):
    with Server(tmp_path / "db", "--max-batch", "50", "--max-body-mb", "1") as server:
        def call(method, path, body, raw=None):
            data = raw if raw is not None else json.dumps(body).encode()
            req = urllib.request.Request(server.url + path, data=data, method=method,
                                         headers={"content-type": "application/json"})
            try:
                with urllib.request.urlopen(req) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read())
        assert call("PUT", "/collections/c", {"vectors": {"size": 3, "distance": "Cosine"}})[0] == 200
        cases = [
            ("PUT", "/collections/c/points", {"points": [{"id": 1, "vector": [1, 2]}]}, 400, "vector"),
            ("PUT", "/collections/c/points", {"points": [{"id": -1, "vector": [1, 2, 3]}]}, 400, "id"),
            ("PUT", "/collections/c/points", {"points": [{"id": 1, "vector": [0, 0, 0]}]}, 400, "vectors"),
            ("PUT", "/collections/c/points", {"points": [{"id": 1, "vector": [1, "x", 3]}]}, 400, "vector[1]"),
            ("PUT", "/collections/c/points", {"points": [{"id": 1, "vector": [1, 2, 3], "payload": [1]}]},
             400, "payloads[0]"),
            ("PUT", "/collections/c/points", {"batch": {"ids": list(range(51)),
                                                         "vectors": [[1, 2, 3]] * 51}}, 413, "50"),
            ("PUT", "/collections/nope/points", {"points": [{"id": 1, "vector": [1, 2, 3]}]}, 404, "nope"),
            ("POST", "/collections/c/points/query", {"query": [1, 2]}, 400, "query"),
            ("POST", "/collections/c/points/query", {"query": [1, 2, 3], "limit": -1}, 400, "limit"),
            ("POST", "/collections/c/points/query", {"query": [1, 2, 3],
                                                     "filter": {"must": [{"key": "a", "wat": 1}]}}, 400, "must[0]"),
            ("POST", "/collections/c/points/count", {"filter": 3}, 400, "filter"),
            ("POST", "/collections/c/points/scroll", {"limit": 0}, 400, "limit"),
            ("PUT", "/collections/d", {"vectors": {"size": 0, "distance": "Cosine"}}, 400, "size"),
            ("PUT", "/collections/d", {"vectors": {"size": 3, "distance": "L7"}}, 400, "distance"),
            ("PUT", "/collections/.bad", {"vectors": {"size": 3, "distance": "Dot"}}, 400, "name"),
            ("POST", "/collections/c/points/delete", {}, 400, "points"),
            ("GET", "/nowhere", None, 404, "endpoint"),
        ]
        for method, path, body, status, word in cases:
            got, doc = call(method, path, body)
            assert got == status, (method, path, body, doc)
            assert word in doc["status"]["error"], (doc, word)
            assert "Traceback" not in json.dumps(doc)
        for raw in (b"{not json", b'{"points": [{"id": 1, "vector": [NaN, 1, 2]}]}', b"[" * 100_000):
            got, doc = call("PUT", "/collections/c/points", None, raw=raw)
            assert got == 400 and "body" in doc["status"]["error"]
        got, doc = call("PUT", "/collections/c/points", None, raw=b" " * (2 << 20))
        assert got == 413
        # nothing above was stored
        assert call("POST", "/collections/c/points/count", {})[1]["result"]["count"] == 0


def test_service_endpoints_and_metrics(tmp_path):
    with Server(tmp_path / "db") as server:
        client = QdrantClient(url=server.url, check_compatibility=False)
        client.create_collection("c", vectors_config=m.VectorParams(size=2, distance="Dot"))
        client.upsert("c", points=[m.PointStruct(id=i, vector=[1, i]) for i in range(5)])
        client.query_points("c", query=[1, 0], limit=2)
        info = json.loads(urllib.request.urlopen(server.url + "/").read())
        assert info["version"].count(".") == 2 and "voisin" in info["title"]
        for probe in ("/healthz", "/livez", "/readyz"):
            assert urllib.request.urlopen(server.url + probe).status == 200
        text = urllib.request.urlopen(server.url + "/metrics").read().decode()
        assert 'voisin_collection_points{collection="c"} 5' in text
        assert 'route="/collections/{collection_name}/points/query",status="200"} 1' in text
        assert "voisin_request_duration_seconds_bucket" in text
        assert urllib.request.urlopen(server.url + "/openapi.json").status == 200
        client.close()
