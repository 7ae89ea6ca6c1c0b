"""Fuzzed requests (hypothesis over the JSON bodies, bounded): never a 5xx,
always Qdrant's error shape, and a rejected request leaves the stored data
as it was. In-process (the ASGI app under Starlette's test client) so that
hundreds of requests take seconds; the real-process tests are beside it."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

pytest.importorskip("fastapi")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

import voisin  # noqa: E402
from voisin.server import ServerConfig, create_app  # noqa: E402
from voisin.server.qdrant import Limits  # noqa: E402

WORDS = ["points", "id", "ids", "vector", "vectors", "payload", "payloads", "batch", "filter", "must",
         "should", "must_not", "min_should", "key", "match", "value", "any", "except", "text", "range",
         "gt", "gte", "lt", "lte", "is_empty", "is_null", "has_id", "nested", "values_count", "limit",
         "offset", "query", "nearest", "with_payload", "with_vector", "include", "exclude", "params",
         "hnsw_ef", "exact", "searches", "keys", "score_threshold", "field_name", "field_schema",
         "location", "vectors", "size", "distance", "count", "order_by", "using", "document"]

ENDPOINTS = [
    ("PUT", "/collections/c/points"), ("POST", "/collections/c/points"),
    ("POST", "/collections/c/points/delete"), ("POST", "/collections/c/points/payload"),
    ("PUT", "/collections/c/points/payload"), ("POST", "/collections/c/points/payload/delete"),
    ("POST", "/collections/c/points/payload/clear"), ("POST", "/collections/c/points/count"),
    ("POST", "/collections/c/points/scroll"), ("POST", "/collections/c/points/query"),
    ("POST", "/collections/c/points/query/batch"), ("POST", "/collections/c/points/search"),
    ("PUT", "/collections/c/index"), ("PUT", "/collections/x"),
    ("PUT", "/collections/c/snapshots/recover"), ("GET", "/collections/c/points/1"),
]

scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
           | st.text(max_size=8) | st.sampled_from(WORDS + ["red", "Cosine", "Dot", "keyword"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
                      | st.dictionaries(st.sampled_from(WORDS) | st.text(max_size=4), inner, max_size=5),
                      max_leaves=25)
vectors = st.lists(st.floats(-10, 10, allow_nan=False) | st.integers(-3, 3), min_size=0, max_size=5)
plausible = st.fixed_dictionaries({}, optional={
    "points": st.lists(st.fixed_dictionaries({"id": st.integers(-2, 40) | st.text(max_size=5)},
                                             optional={"vector": vectors, "payload": values}), max_size=4)
    | st.lists(st.integers(-1, 40), max_size=4),
    "filter": values, "query": vectors | st.integers(0, 40), "vector": vectors, "limit": values,
    "offset": values, "ids": st.lists(st.integers(-1, 40) | st.text(max_size=3), max_size=4),
    "payload": values, "keys": values, "with_payload": values, "with_vector": values,
    "params": values, "searches": st.lists(values, max_size=3), "batch": values,
})
bodies = plausible | values


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    db = voisin.connect(tmp_path_factory.mktemp("fuzz") / "db")
    col = db.create_collection("c", dim=4, metric="cosine")
    rng = np.random.default_rng(0)
    col.upsert(list(range(20)), rng.normal(size=(20, 4)) + 0.1,
               [{"color": ["red", "blue"][i % 2], "n": i, "tags": ["a", f"t{i % 3}"]} for i in range(20)])
    config = ServerConfig(path=db.path, limits=Limits(max_points=50, max_limit=100, max_filter_depth=6),
                          max_body_bytes=1 << 20)
    with TestClient(create_app(config, db=db), raise_server_exceptions=False) as client:
        yield client, col
    db.close()


def digest(col) -> str:
    records, _ = col.scroll(limit=10_000, with_vectors=True)
    doc = [(r.id, r.payload, r.vector.round(6).tolist()) for r in records]
    return hashlib.sha256(json.dumps([doc, col.payload_schema], sort_keys=True).encode()).hexdigest()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(endpoint=st.sampled_from(ENDPOINTS), body=bodies)
def test_fuzzed_bodies_never_5xx_and_rejections_change_nothing(served, endpoint, body):
    client, col = served
    before = digest(col)
    method, path = endpoint
    r = client.request(method, path, content=json.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code < 500, (endpoint, body, r.text)
    doc = r.json()
    if r.status_code == 200:
        assert doc["status"] == "ok" and "result" in doc
    else:
        assert isinstance(doc["status"]["error"], str) and "Traceback" not in r.text
        assert digest(col) == before, (endpoint, body, r.text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_fuzzed_bytes_never_5xx(served, raw):
    client, col = served
    before = digest(col)
    r = client.request("PUT", "/collections/c/points", content=raw, headers={"content-type": "application/json"})
    assert r.status_code < 500 and "status" in r.json()
    if r.status_code != 200:
        assert digest(col) == before
