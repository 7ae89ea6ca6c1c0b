"""Crash test: a child process writes batches and is SIGKILLed at random moments.

After every kill the folder is opened again and compared with a model built
from the acknowledged calls only (the Jepsen "set" check, with payloads and
vectors): every acknowledged write is there, the one call in flight when the
process died is applied entirely or not at all, and search results equal
brute force over the model. Rounds alternate between a read-only view and a
writable open (which replays, checkpoints and purges). Bounded: at most
``ROUNDS`` kills and ``BUDGET_S`` seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import voisin

CHILD = os.path.join(os.path.dirname(__file__), "db_crash_child.py")
ROUNDS = 24
BUDGET_S = 35.0
DIM = 8


def _run_child(folder: str, seed: int, rng: np.random.Generator) -> list[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(CHILD))]
                                                       + sys.path))
    proc = subprocess.Popen([sys.executable, CHILD, folder, str(seed)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for raw in proc.stdout:
            if not raw.endswith(b"\n"):
                break  # torn by the kill
            line = raw.decode().rstrip("\n")
            lines.append(line)
            if line == "READY":
                ready.set()
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if not ready.wait(60):
        proc.kill()
        raise AssertionError(f"child did not start: {proc.stderr.read().decode()[-2000:]}")
    time.sleep(float(rng.uniform(0.0, 0.5)))
    if proc.poll() is not None:
        raise AssertionError(f"child died by itself: {proc.stderr.read().decode()[-2000:]}")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    reader.join(10)
    return lines


def _apply(model: dict, op: dict) -> None:
    kind = op["kind"]
    if kind == "upsert":
        for i, v, p in zip(op["ids"], op["vectors"], op["payloads"]):
            model[i] = (np.array(v, dtype=np.float32), dict(p))
    elif kind == "delete":
        for i in op["ids"]:
            model.pop(i, None)
    elif kind == "set_payload":
        for i in op["ids"]:
            if i in model:
                model[i][1]["touched"] = op["n"]
    elif kind == "delete_filter":
        for i in [i for i, (_, p) in model.items() if p["g"] == op["g"] and p["i"] < op["below"]]:
            del model[i]


def _in_flight_applied(col, model: dict, op: dict) -> bool:
    """Whether the unacknowledged call took effect; asserts it is all or nothing."""
    kind = op["kind"]
    if kind == "upsert":
        got = {r.id: r.payload for r in col.get(op["ids"])}
        done = [got.get(i, {}).get("op") == op["n"] for i in op["ids"]]
    elif kind == "delete":
        present = {r.id for r in col.get(op["ids"])}
        done = [i not in present for i in op["ids"] if i in model]
    elif kind == "set_payload":
        got = {r.id: r.payload for r in col.get(op["ids"])}
        done = [got[i].get("touched") == op["n"] for i in op["ids"] if i in got]
    elif kind == "delete_filter":
        doomed = [i for i, (_, p) in model.items() if p["g"] == op["g"] and p["i"] < op["below"]]
        present = {r.id for r in col.get(doomed)}
        done = [i not in present for i in doomed]
    else:
        return False
    assert all(done) or not any(done), f"half-applied batch {op['kind']} #{op['n']}: {done}"
    return bool(done) and all(done)


def _check(col, model: dict, rng: np.random.Generator) -> None:
    assert col.count() == len(model)
    recs = col.get(sorted(model), with_vectors=True)
    assert {r.id for r in recs} == set(model)
    for r in recs:
        v, p = model[r.id]
        assert r.payload == p, (r.id, r.payload, p)
        np.testing.assert_array_equal(r.vector, v)
    if not model:
        return
    ids = np.array(sorted(model))
    X = np.stack([model[i][0] for i in ids]).astype(np.float64)
    q = rng.standard_normal((3, DIM)).astype(np.float32)
    hits = col.search(q, k=10)
    for qi, h in enumerate(hits):
        true = np.sqrt(((X - q[qi]) ** 2).sum(1))
        want = np.sort(true)[:10]
        np.testing.assert_allclose(h.scores, want, rtol=1e-4, atol=1e-4)
        dist_of = dict(zip(ids.tolist(), true))
        np.testing.assert_allclose([dist_of[i] for i in h.ids], h.scores, rtol=1e-4, atol=1e-4)


def _warm_up() -> None:
    """Compile (and cache on disk) the kernels the children use, so that a cold
    numba cache does not eat the time budget in every child."""
    with voisin.connect() as db:
        c = db.create_collection("w", dim=DIM, metric="euclid")
        c.upsert(range(20), np.ones((20, DIM)), payloads=[{"g": 1, "i": i} for i in range(20)])
        c.search(np.ones(DIM), k=5, filter={"must": [{"key": "g", "match": {"value": 1}}]})
        c.delete([1, 2])
        c.checkpoint()


@pytest.mark.slow
def test_sigkill_loses_no_acknowledged_write(tmp_path):
    _warm_up()
    folder = str(tmp_path / "db")
    rng = np.random.default_rng(2024)
    model: dict = {}
    t0 = time.monotonic()
    rounds = acked = 0
    while rounds < ROUNDS and time.monotonic() - t0 < BUDGET_S:
        rounds += 1
        lines = _run_child(folder, rounds, rng)
        pending = None
        for line in lines:
            if line.startswith("BEGIN "):
                pending = json.loads(line[6:])
            elif line.startswith("ACK "):
                assert pending is not None and int(line[4:]) == pending["n"]
                _apply(model, pending)
                acked += 1
                pending = None
        read_only = rounds % 2 == 0
        db = voisin.connect(folder, read_only=read_only)
        try:
            col = db.get_collection("c")
            if pending is not None and _in_flight_applied(col, model, pending):
                _apply(model, pending)
            _check(col, model, rng)
        finally:
            db.close()
    print(f"crash test: {rounds} kills, {acked} acknowledged calls")
    assert rounds >= 5 and acked >= 20, (rounds, acked)


@pytest.mark.slow
def test_read_only_views_beside_a_writing_process(tmp_path):
    """Views opened while another process writes see one consistent moment."""
    _warm_up()
    folder = str(tmp_path / "db")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(CHILD))] + sys.path))
    proc = subprocess.Popen([sys.executable, CHILD, folder, "7"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    try:
        assert proc.stdout.readline().strip() == b"READY"
        # keep the pipe drained, or the child blocks on its acknowledgements
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        deadline = time.monotonic() + 6
        views = 0
        while time.monotonic() < deadline and views < 15:
            with voisin.connect(folder, read_only=True) as db:
                col = db.get_collection("c")
                n = col.count()
                if n:
                    hits = col.search(np.zeros(DIM, dtype=np.float32), k=n + 5)[0]
                    assert len(hits) == n and all(p is not None for p in hits.payloads)
                    assert {r.id for r in col.scroll(limit=10_000)[0]} == set(hits.ids)
            views += 1
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert views >= 3
    finally:
        proc.kill()
        proc.wait(10)
