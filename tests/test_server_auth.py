"""API keys: no key or a wrong key gets 401 on every endpoint, the read-only key
gets 403 on every write and is served on every read; the probes need no key.
Also: without a key, the server refuses to bind a non-loopback address."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
from qdrant_client import QdrantClient, models as m  # noqa: E402

import voisin  # noqa: E402
from server_proc import ROOT, Server  # noqa: E402

ADMIN, READER = "admin-key-0123456789", "reader-key-9876543210"

#: (method, path, body) of every endpoint, reads first; "c" exists with point 1
READS = [
    ("GET", "/", None), ("GET", "/collections", None), ("GET", "/collections/c", None),
    ("GET", "/collections/c/exists", None), ("GET", "/metrics", None),
    ("GET", "/collections/c/points/1", None),
    ("POST", "/collections/c/points", {"ids": [1]}),
    ("POST", "/collections/c/points/count", {}),
    ("POST", "/collections/c/points/scroll", {"limit": 2}),
    ("POST", "/collections/c/points/query", {"query": [1, 0], "limit": 1}),
    ("POST", "/collections/c/points/query/batch", {"searches": [{"query": [1, 0]}]}),
    ("POST", "/collections/c/points/search", {"vector": [1, 0], "limit": 1}),
    ("POST", "/collections/c/points/search/batch", {"searches": [{"vector": [1, 0], "limit": 1}]}),
    ("GET", "/collections/c/snapshots", None), ("GET", "/snapshots", None),
    ("GET", "/openapi.json", None), ("GET", "/docs", None),
]
WRITES = [
    ("PUT", "/collections/d", {"vectors": {"size": 2, "distance": "Dot"}}),
    ("DELETE", "/collections/c", None),
    ("PATCH", "/collections/c", {}),
    ("PUT", "/collections/c/index", {"field_name": "k", "field_schema": "keyword"}),
    ("DELETE", "/collections/c/index/k", None),
    ("PUT", "/collections/c/points", {"points": [{"id": 2, "vector": [0, 1]}]}),
    ("POST", "/collections/c/points/delete", {"points": [1]}),
    ("POST", "/collections/c/points/payload", {"payload": {"a": 1}, "points": [1]}),
    ("PUT", "/collections/c/points/payload", {"payload": {"a": 1}, "points": [1]}),
    ("POST", "/collections/c/points/payload/delete", {"keys": ["a"], "points": [1]}),
    ("POST", "/collections/c/points/payload/clear", {"points": [1]}),
    ("POST", "/collections/c/snapshots", None),
    ("DELETE", "/collections/c/snapshots/x.snapshot", None),
    ("PUT", "/collections/c/snapshots/recover", {"location": "file:///x.snapshot"}),
    ("POST", "/snapshots", None), ("DELETE", "/snapshots/x.snapshot", None),
]


def _call(url, method, path, body, headers):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method,
                                 headers={"content-type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
def test_every_endpoint_checks_the_key(tmp_path):
    with Server(tmp_path / "db", "--api-key", ADMIN, "--read-only-key", READER) as server:
        admin = QdrantClient(url=server.url, api_key=ADMIN, check_compatibility=False, https=False)
        admin.create_collection("c", vectors_config=m.VectorParams(size=2, distance="Dot"))
        admin.upsert("c", points=[m.PointStruct(id=1, vector=[1, 0], payload={"k": "v"})])
        for method, path, body in READS + WRITES:
            for headers in ({}, {"api-key": "wrong"}, {"authorization": "Bearer wrong"},
                            {"api-key": ADMIN[:-1]}):
                assert _call(server.url, method, path, body, headers) == 401, (method, path, headers)
        for method, path, body in WRITES:
            for headers in ({"api-key": READER}, {"authorization": f"Bearer {READER}"}):
                assert _call(server.url, method, path, body, headers) == 403, (method, path)
        for method, path, body in READS:
            status = _call(server.url, method, path, body, {"api-key": READER})
            assert status == 200, (method, path, status)
            assert _call(server.url, method, path, body, {"authorization": f"Bearer {ADMIN}"}) == 200
        for probe in ("/healthz", "/livez", "/readyz"):
            assert _call(server.url, "GET", probe, None, {}) == 200
        # nothing the refused requests asked for happened
        assert admin.count("c").count == 1 and admin.retrieve("c", [1])[0].payload == {"k": "v"}
        reader = QdrantClient(url=server.url, api_key=READER, check_compatibility=False, https=False)
        assert [p.id for p in reader.query_points("c", query=[1, 0]).points] == [1]
        # the voisin client with the same keys
        db = voisin.connect(server.url, api_key=READER)
        assert db.get_collection("c").count() == 1
        with pytest.raises(PermissionError, match="read-only"):
            db.get_collection("c").upsert([5], [[1, 1]])
        with pytest.raises(PermissionError):
            voisin.connect(server.url).list_collections()
        admin.close()
        reader.close()


def test_no_key_means_loopback_only(tmp_path):
    out = subprocess.run([sys.executable, "-m", "voisin", "serve", "--path", str(tmp_path / "db"),
                          "--host", "0.0.0.0", "--port", "0"], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert out.returncode != 0
    assert "no --api-key" in out.stderr and "loopback" in out.stderr
    assert not (tmp_path / "db").exists()


def test_keys_are_checked_for_sense():
    from voisin.server.auth import Keys
    with pytest.raises(ValueError, match="read_only_key"):
        Keys("same", "same")
    with pytest.raises(ValueError, match="api_key"):
        Keys("  ", None)
