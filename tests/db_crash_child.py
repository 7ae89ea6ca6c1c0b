"""Child process of tests/test_db_crash.py: writes to a collection until killed.

Usage: python db_crash_child.py FOLDER SEED

Prints ``READY`` once open, then for every call ``BEGIN <json op>`` before it
and ``ACK <op number>`` after it returned; the parent kills it with SIGKILL
at a random moment and checks the folder against the acknowledged ops.
"""

from __future__ import annotations

import json
import sys

import numpy as np

import voisin

DIM = 8
ID_SPACE = 300


def main(folder: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    db = voisin.connect(folder)
    col = (db.get_collection("c") if db.has_collection("c")
           else db.create_collection("c", dim=DIM, metric="euclid"))
    alive: set[int] = set()
    offset = None
    while True:
        recs, offset = col.scroll(limit=500, offset=offset, with_payload=False)
        alive.update(r.id for r in recs)
        if offset is None:
            break
    print("READY", flush=True)
    opnum = seed * 1_000_000
    while True:
        opnum += 1
        kind = rng.choice(["upsert", "upsert", "delete", "set_payload", "delete_filter", "checkpoint"],
                          p=[0.35, 0.2, 0.15, 0.15, 0.1, 0.05])
        op: dict = {"n": opnum, "kind": str(kind)}
        if kind == "upsert":
            ids = rng.choice(ID_SPACE, size=int(rng.integers(1, 40)), replace=False).tolist()
            op["ids"] = ids
            op["vectors"] = np.round(rng.standard_normal((len(ids), DIM)), 3).tolist()
            op["payloads"] = [{"op": opnum, "g": int(rng.integers(0, 5)), "i": i} for i in ids]
        elif kind in ("delete", "set_payload"):
            if not alive:
                continue
            pool = sorted(alive)
            op["ids"] = rng.choice(pool, size=min(len(pool), int(rng.integers(1, 20))), replace=False).tolist()
        elif kind == "delete_filter":
            op["g"] = int(rng.integers(0, 5))
            op["below"] = int(rng.integers(0, ID_SPACE))
        print("BEGIN " + json.dumps(op), flush=True)
        if kind == "upsert":
            col.upsert(op["ids"], np.array(op["vectors"], dtype=np.float32), payloads=op["payloads"])
            alive.update(op["ids"])
        elif kind == "delete":
            col.delete(op["ids"])
            alive.difference_update(op["ids"])
        elif kind == "set_payload":
            col.set_payload(op["ids"], {"touched": opnum})
        elif kind == "delete_filter":
            f = {"must": [{"key": "g", "match": {"value": op["g"]}}, {"key": "i", "range": {"lt": op["below"]}}]}
            gone = [r.id for r in col.scroll(filter=f, limit=ID_SPACE, with_payload=False)[0]]
            col.delete(filter=f)
            alive.difference_update(gone)
        else:
            col.checkpoint()
        print(f"ACK {opnum}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
