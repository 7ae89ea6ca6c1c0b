"""kill -9 under write load: the Jepsen "set" check through the HTTP server.

Writer threads upsert batches with ``wait=true`` and record each batch the
server acknowledged; a reader thread queries meanwhile and checks every
answer (ids that were written, their payloads, their true distances). The
server process is SIGKILLed at a random moment and started again, several
times. Afterwards every acknowledged point is there with its vector and
payload, every batch in flight at a kill is there entirely or not at all,
and no request got a wrong answer. Bounded: ``ROUNDS`` kills, ``BUDGET_S`` seconds.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import voisin  # noqa: E402
from voisin.server.client import ServerError  # noqa: E402
from server_proc import Server  # noqa: E402

DIM = 8
BATCH = 25
WRITERS = 3
ROUNDS = 6
BUDGET_S = 60.0


def vector(i: int) -> np.ndarray:
    return np.random.default_rng(i).normal(size=DIM).astype(np.float32)


def payload(i: int) -> dict:
    return {"i": i, "even": i % 2 == 0, "tag": f"p{i % 13}"}


def test_acknowledged_writes_survive_kill_9(tmp_path):
    server = Server(tmp_path / "db").start()
    voisin.connect(server.url).create_collection("c", dim=DIM, metric="euclid")
    acked: set[int] = set()
    in_doubt: list[list[int]] = []
    wrong: list[str] = []
    next_batch = [0]
    lock = threading.Lock()
    rng = np.random.default_rng(7)
    t_end = time.monotonic() + BUDGET_S

    def writer(stop: threading.Event) -> None:
        try:
            col = voisin.connect(server.url, timeout=10).get_collection("c")
        except (ServerError, OSError):
            return  # killed before this thread got going
        while not stop.is_set():
            with lock:
                b = next_batch[0]
                next_batch[0] += 1
            ids = list(range(b * BATCH, (b + 1) * BATCH))
            try:
                col.upsert(ids, np.stack([vector(i) for i in ids]), [payload(i) for i in ids])
            except (ServerError, OSError):
                with lock:
                    in_doubt.append(ids)
                return
            with lock:
                acked.update(ids)
            writing.set()

    def reader(stop: threading.Event) -> None:
        try:
            col = voisin.connect(server.url, timeout=10).get_collection("c")
        except (ServerError, OSError):
            return
        q = np.random.default_rng(99)
        while not stop.is_set():
            x = q.normal(size=DIM).astype(np.float32)
            try:
                hits = col.search(x, k=5, filter={"must": [{"key": "even", "match": {"value": True}}]})[0]
            except (ServerError, OSError):
                return
            for p in hits:
                if not isinstance(p.id, int) or p.payload != payload(p.id):
                    wrong.append(f"point {p.id}: payload {p.payload}")
                elif abs(p.score - float(np.linalg.norm(vector(p.id) - x))) > 1e-4:
                    wrong.append(f"point {p.id}: score {p.score}")
            if list(hits.scores) != sorted(hits.scores):
                wrong.append(f"scores out of order: {hits.scores}")

    kills = 0
    writing = threading.Event()
    while kills < ROUNDS and time.monotonic() < t_end:
        stop = threading.Event()
        writing.clear()
        threads = [threading.Thread(target=writer, args=(stop,)) for _ in range(WRITERS)]
        threads.append(threading.Thread(target=reader, args=(stop,)))
        for t in threads:
            t.start()
        # the kill comes at a random moment once the writes flow: a restarted server
        # loads its kernels on the first write, which takes seconds on a loaded machine
        writing.wait(15)
        time.sleep(float(rng.uniform(0.05, 1.0)))
        server.kill()
        kills += 1
        stop.set()
        for t in threads:
            t.join(30)
        server.start()
    try:
        col = voisin.connect(server.url).get_collection("c")
        stored, offset = {}, None
        while True:
            records, offset = col.scroll(limit=5000, offset=offset, with_vectors=True)
            stored.update((r.id, r) for r in records)
            if offset is None:
                break
        missing = sorted(acked - set(stored))
        assert not missing, f"{len(missing)} acknowledged points lost, e.g. {missing[:5]}"
        for i in acked:
            assert stored[i].payload == payload(i)
            np.testing.assert_array_equal(stored[i].vector, vector(i))
        for ids in in_doubt:
            present = [i in stored for i in ids]
            assert all(present) or not any(present), f"batch {ids[0]}..{ids[-1]} half applied"
        unexplained = set(stored) - acked - {i for ids in in_doubt for i in ids}
        assert not unexplained
        assert not wrong, wrong[:5]
        print(f"{kills} kills, {len(acked)} acknowledged points, {len(in_doubt)} batches in doubt")
        assert kills >= 3 and len(acked) >= 10 * BATCH, (kills, len(acked))
        # the index agrees with the records after the replays
        x = vector(10**9)
        want = sorted(stored, key=lambda i: (float(np.linalg.norm(vector(i) - x)), i))[:10]
        got = col.search(x, k=10)[0].ids
        assert got == want or len(stored) > 4096
    finally:
        server.stop()
