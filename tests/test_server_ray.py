"""``voisin serve --ray N``: the same HTTP API over a collection hash-sharded
across N Ray actors (a local Ray cluster on loopback, started by the server
process and stopped with it). With an exact index the merged answers equal
one embedded collection's."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("ray", reason="the `ray` extra is not installed")
from qdrant_client import QdrantClient, models as m  # noqa: E402
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse  # noqa: E402

import voisin  # noqa: E402
from server_proc import Server  # noqa: E402


def test_sharded_server_answers_like_one_collection(tmp_path):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(400, 8)).astype(np.float32)
    payloads = [{"g": i % 4} for i in range(400)]
    emb = voisin.connect(tmp_path / "embedded")
    col = emb.create_collection("c", dim=8, metric="dot")
    col.upsert(list(range(400)), X, payloads)
    with Server(tmp_path / "sharded", "--ray", "2", timeout=180) as server:
        client = QdrantClient(url=server.url, timeout=120, check_compatibility=False)
        client.create_collection("c", vectors_config=m.VectorParams(size=8, distance=m.Distance.DOT))
        client.upsert("c", points=m.Batch(ids=list(range(400)), vectors=X.tolist(), payloads=payloads))
        flt = m.Filter(must=[m.FieldCondition(key="g", match=m.MatchValue(value=2))])
        for q in rng.normal(size=(5, 8)):
            got = client.query_points("c", query=q.tolist(), limit=6, offset=2, query_filter=flt).points
            want = col.search(q, k=6, offset=2, filter={"must": [{"key": "g", "match": {"value": 2}}]})[0]
            assert [p.id for p in got] == want.ids
            np.testing.assert_allclose([p.score for p in got], want.scores, rtol=1e-5)
        assert client.count("c", count_filter=flt).count == 100
        client.delete("c", points_selector=m.FilterSelector(filter=flt))
        client.set_payload("c", payload={"x": 1}, points=[1])
        assert client.count("c").count == 300
        recs = client.retrieve("c", [1, 3, 2])  # 2 was deleted by the filter
        assert [(r.id, r.payload) for r in recs] == [(1, {"g": 1, "x": 1}), (3, {"g": 3})]
        page, nxt = client.scroll("c", limit=5)
        assert [r.id for r in page] == [0, 1, 3, 4, 5] and nxt == 7
        info = client.get_collection("c")
        assert info.points_count == 300
        snap = client.create_full_snapshot()
        assert snap.size > 0
        client.close()
    emb.close()


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc: no psutil needed)."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        todo += kids
    return out


def _shard_actor_pids(server_pid: int) -> list[int]:
    pids = []
    for p in _descendants(server_pid):
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                if b"ShardDatabase" in f.read():
                    pids.append(p)
        except OSError:
            pass
    return pids


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the shard actors' processes in /proc")
def test_a_killed_shard_actor_loses_no_acknowledged_write_over_http(tmp_path):
    """kill -9 of one shard actor's process while a client upserts through HTTP:
    Ray restarts the actor, which reopens its folder; every batch the server
    acknowledged is there with its payload, and searches answer again."""
    rng = np.random.default_rng(5)
    with Server(tmp_path / "sharded", "--ray", "2", timeout=180) as server:
        client = QdrantClient(url=server.url, timeout=120, check_compatibility=False)
        client.create_collection("c", vectors_config=m.VectorParams(size=8, distance=m.Distance.DOT))
        acked, killed, t0 = [], [], time.monotonic()
        for b in range(14):
            if b == 5:
                pids = _shard_actor_pids(server.proc.pid)
                assert len(pids) >= 2, "the shard actors' processes were not found"
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            ids = list(range(b * 25, b * 25 + 25))
            try:
                client.upsert("c", wait=True, points=m.Batch(
                    ids=ids, vectors=rng.normal(size=(25, 8)).tolist(), payloads=[{"b": b}] * 25))
                acked += ids
            except (UnexpectedResponse, ResponseHandlingException):
                time.sleep(0.5)  # not acknowledged: may or may not be there
            assert time.monotonic() - t0 < 240
        assert killed and len(acked) >= 10 * 25
        now = _shard_actor_pids(server.proc.pid)
        assert killed[0] not in now and len(now) >= 2  # Ray started a new process for the shard
        got = {r.id: r.payload for r in client.retrieve("c", acked)}
        assert set(got) == set(acked)
        assert all(got[i] == {"b": i // 25} for i in acked)
        assert len(client.query_points("c", query=[1.0] * 8, limit=10).points) == 10
        assert client.count("c").count >= len(acked)
        client.close()
