"""Servers under load, side by side in one run: voisin serve against a Chroma
server (``chroma run``) and milvus-lite, each through its own client.

Data (docs/benchmarking.md): glove-50-angular, the first ``--n`` (100,000)
train vectors, cosine, each with a payload ``{"cat": i % 10, "year": ...}``;
queries: a seeded subset of glove's test set, each filtered on one ``cat``
(10% of the points). Ground truth: exact top-10 over the allowed points;
recall@10 counts ties (``voisin.evaluate.recall_at_k``), a result outside
the filter counts as a miss.

For each system: the time to load all points (batches of ``--batch`` with
payloads, through the client, until searchable); then for each number of
concurrent query clients (``--clients`` 1 4 16), during ``--seconds``: every
client thread sends filtered top-10 queries one after another while one more
client upserts batches of ``--write-batch`` new points (payload ``cat`` 99,
which no query asks for, so the ground truth holds). Reported: QPS, p50 / p99
latency, recall@10, and the writer's batches and p99 latency.

voisin serve runs with its defaults (``index="auto"``: HNSW M16,
efConstruction 100, efSearch 128) and is driven by qdrant-client (REST), the
client its users already have. Chroma: HNSW M16, construction_ef 100,
search_ef 128 (set so both walk the same breadth). milvus-lite: its HNSW,
M16, efConstruction 100, ef 128 (an embedded server process behind
pymilvus' MilvusClient). Install the peers with ``pip install -e ".[bench-db]"``.

Usage (2-core machine: nothing else running)::

    python benchmarks/server_bench.py --out benchmarks/results/server-glove-50.json
    python benchmarks/server_bench.py --n 3000 --queries 50 --seconds 2 --clients 1 4 \\
        --out /tmp/server-small.json          # a quick check that every adapter works
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from voisin import datasets  # noqa: E402
from voisin.bench import machine  # noqa: E402
from voisin.evaluate import recall_at_k  # noqa: E402

K = 10
CATS = 10
M, EFC, EF = 16, 100, 128


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except Exception:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


# --- the systems ----------------------------------------------------------------------------
class VoisinServe:
    name = "voisin serve (qdrant-client)"

    def start(self, folder: Path) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "voisin", "serve", "--path", str(folder),
                                      "--port", str(self.port), "--durability", "normal"],
                                     cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(f"http://127.0.0.1:{self.port}/readyz")

    def client(self):
        from qdrant_client import QdrantClient
        return QdrantClient(url=f"http://127.0.0.1:{self.port}", timeout=120, check_compatibility=False)

    def create(self, c, dim: int) -> None:
        from qdrant_client import models as m
        c.create_collection("bench", vectors_config=m.VectorParams(size=dim, distance=m.Distance.COSINE),
                            hnsw_config=m.HnswConfigDiff(m=M, ef_construct=EFC))

    def upsert(self, c, ids, X, payloads) -> None:
        from qdrant_client import models as m
        c.upsert("bench", points=m.Batch(ids=[int(i) for i in ids], vectors=X.tolist(), payloads=payloads),
                 wait=True)

    def ready(self, c) -> None:
        self.query(c, np.ones(self.dim, np.float32), 0)  # the first search builds nothing more

    def query(self, c, q, cat) -> list[int]:
        from qdrant_client import models as m
        flt = m.Filter(must=[m.FieldCondition(key="cat", match=m.MatchValue(value=int(cat)))])
        r = c.query_points("bench", query=q.tolist(), limit=K, query_filter=flt,
                           search_params=m.SearchParams(hnsw_ef=EF))
        return [p.id for p in r.points]

    def describe(self) -> dict:
        return {"index": "auto (HNSW M16, efConstruction 100)", "efSearch": EF, "client": "qdrant-client REST",
                "durability": "normal (as Chroma and milvus-lite: no fsync per write)"}

    def stop(self) -> None:
        stop(self.proc)


class ChromaServer:
    name = "chroma run (chromadb.HttpClient)"

    def start(self, folder: Path) -> None:
        self.port = free_port()
        exe = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
        self.proc = subprocess.Popen([exe, "run", "--path", str(folder), "--host", "127.0.0.1",
                                      "--port", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(f"http://127.0.0.1:{self.port}/api/v2/heartbeat")

    def client(self):
        import chromadb
        return chromadb.HttpClient(host="127.0.0.1", port=self.port)

    def create(self, c, dim: int) -> None:
        c.create_collection("bench", metadata={"hnsw:space": "cosine", "hnsw:M": M,
                                               "hnsw:construction_ef": EFC, "hnsw:search_ef": EF},
                            embedding_function=None)

    def upsert(self, c, ids, X, payloads) -> None:
        col = c.get_collection("bench", embedding_function=None)
        col.upsert(ids=[str(i) for i in ids], embeddings=X, metadatas=payloads)

    def ready(self, c) -> None:
        self.query(c, np.ones(self.dim, np.float32), 0)

    def query(self, c, q, cat) -> list[int]:
        col = getattr(self._local, "col", None)
        if col is None:
            col = self._local.col = c.get_collection("bench", embedding_function=None)
        r = col.query(query_embeddings=q[None, :], n_results=K, where={"cat": int(cat)}, include=[])
        return [int(i) for i in r["ids"][0]]

    _local = threading.local()

    def describe(self) -> dict:
        return {"index": f"hnsw M{M} construction_ef {EFC}", "search_ef": EF, "client": "chromadb.HttpClient"}

    def stop(self) -> None:
        stop(self.proc)


class MilvusLite:
    name = "milvus-lite (pymilvus MilvusClient)"

    def start(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.uri = str(folder / "milvus.db")

    def client(self):
        from pymilvus import MilvusClient
        return MilvusClient(self.uri)

    def create(self, c, dim: int) -> None:
        from pymilvus import DataType
        schema = c.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("cat", DataType.INT64)
        schema.add_field("year", DataType.INT64)
        index = c.prepare_index_params()
        index.add_index("vector", index_type="HNSW", metric_type="COSINE",
                        params={"M": M, "efConstruction": EFC})
        c.create_collection("bench", schema=schema, index_params=index)

    def upsert(self, c, ids, X, payloads) -> None:
        c.upsert("bench", [{"id": int(i), "vector": x.tolist(), **p} for i, x, p in zip(ids, X, payloads)])

    def ready(self, c) -> None:
        c.load_collection("bench")
        self.query(c, np.ones(self.dim, np.float32), 0)

    def query(self, c, q, cat) -> list[int]:
        r = c.search("bench", [q.tolist()], limit=K, filter=f"cat == {int(cat)}",
                     search_params={"params": {"ef": EF}})
        return [int(h["id"]) for h in r[0]]

    def describe(self) -> dict:
        return {"index": f"HNSW M{M} efConstruction {EFC}", "ef": EF, "client": "pymilvus MilvusClient"}

    def stop(self) -> None:
        pass


SYSTEMS = {"voisin": VoisinServe, "chroma": ChromaServer, "milvus-lite": MilvusLite}


# --- the workload ----------------------------------------------------------------------------
def load(n: int, nq: int, seed: int, extra: int):
    ds = datasets.load("glove-50-angular")
    xb = datasets.normalized(np.ascontiguousarray(ds.train[:n + extra]))
    rows = datasets.query_subset(ds.test.shape[0], nq, seed)
    xq = datasets.normalized(np.ascontiguousarray(ds.test if rows is None else ds.test[rows]))
    cats = np.arange(n) % CATS
    payloads = [{"cat": int(c), "year": 2000 + int(i % 25)} for i, c in enumerate(cats)]
    qcats = np.random.default_rng(seed).integers(0, CATS, len(xq))
    gt_d = np.empty((len(xq), K))
    allowed_of = {c: np.flatnonzero(cats == c) for c in range(CATS)}
    for i, (q, c) in enumerate(zip(xq, qcats)):
        ids = allowed_of[int(c)]
        d = 1.0 - xb[ids].astype(np.float64) @ q.astype(np.float64)
        gt_d[i] = np.sort(d)[:K]
    return xb[:n], xb[n:], payloads, xq, qcats, gt_d, cats


def run_load(system, clients: int, seconds: float, xq, qcats, fresh, write_batch: int, next_id: list,
             cats: np.ndarray, xb: np.ndarray, gt_d):
    stop = threading.Event()
    lat: list[list[float]] = [[] for _ in range(clients)]
    got: dict[int, list[int]] = {}
    wlat: list[float] = []
    errors: list[str] = []

    def querier(t: int) -> None:
        c = system.client()
        j = t
        while not stop.is_set():
            i = j % len(xq)
            t0 = time.perf_counter()
            try:
                ids = system.query(c, xq[i], qcats[i])
            except Exception as exc:  # a failed query is reported, not hidden
                errors.append(f"query: {exc!r}"[:300])
                return
            lat[t].append(time.perf_counter() - t0)
            got.setdefault(i, ids)
            j += clients

    def writer() -> None:
        c = system.client()
        pos = 0
        while not stop.is_set() and pos + write_batch <= len(fresh):
            ids = np.arange(next_id[0], next_id[0] + write_batch)
            t0 = time.perf_counter()
            try:
                system.upsert(c, ids, fresh[pos:pos + write_batch],
                              [{"cat": 99, "year": 1999} for _ in ids])
            except Exception as exc:
                errors.append(f"upsert: {exc!r}"[:300])
                return
            wlat.append(time.perf_counter() - t0)
            next_id[0] += write_batch
            pos += write_batch
            time.sleep(0.05)

    threads = [threading.Thread(target=querier, args=(t,)) for t in range(clients)]
    threads.append(threading.Thread(target=writer))
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(120)
    elapsed = time.perf_counter() - t0
    all_lat = np.array([x for row in lat for x in row])
    qi = sorted(got)
    I = np.full((len(qi), K), -1, dtype=np.int64)
    n = len(cats)
    for r, i in enumerate(qi):
        ids = [x for x in got[i] if x < n and cats[x] == qcats[i]][:K]  # outside the filter: a miss
        I[r, :len(ids)] = ids
    recall = (float(recall_at_k(I, gt_d[qi], K, xq=xq[qi], xb=xb, metric="angular"))
              if qi else None)
    return {"clients": clients, "seconds": round(elapsed, 2), "queries": int(all_lat.size),
            "qps": round(all_lat.size / elapsed, 1),
            "p50_ms": round(float(np.percentile(all_lat, 50)) * 1e3, 2) if all_lat.size else None,
            "p99_ms": round(float(np.percentile(all_lat, 99)) * 1e3, 2) if all_lat.size else None,
            "recall@10": None if recall is None else round(recall, 4), "distinct_queries": len(qi),
            "write_batches": len(wlat),
            "write_p50_ms": round(float(np.percentile(wlat, 50)) * 1e3, 1) if wlat else None,
            "write_p99_ms": round(float(np.percentile(wlat, 99)) * 1e3, 1) if wlat else None,
            "errors": errors[:5]}


def bench_system(key: str, args, data) -> dict:
    xb, fresh, payloads, xq, qcats, gt_d, cats = data
    system = SYSTEMS[key]()
    system.dim = xb.shape[1]
    folder = Path(tempfile.mkdtemp(prefix=f"server-bench-{key}-"))
    out = {"system": system.name}
    try:
        t0 = time.perf_counter()
        system.start(folder / "data")
        out["start_s"] = round(time.perf_counter() - t0, 2)
        c = system.client()
        system.create(c, xb.shape[1])
        t0 = time.perf_counter()
        for s in range(0, len(xb), args.batch):
            system.upsert(c, np.arange(s, min(len(xb), s + args.batch)), xb[s:s + args.batch],
                          payloads[s:s + args.batch])
        system.ready(c)
        load_s = time.perf_counter() - t0
        out.update(load_s=round(load_s, 2), load_points_per_s=round(len(xb) / load_s, 1))
        out.update(system.describe())
        next_id = [len(xb)]
        out["load"] = []
        for clients in args.clients:
            row = run_load(system, clients, args.seconds, xq, qcats, fresh, args.write_batch, next_id,
                           cats, xb, gt_d)
            out["load"].append(row)
            print(f"  {key:12s} clients={clients:3d} qps={row['qps']:8.1f} p50={row['p50_ms']} ms "
                  f"p99={row['p99_ms']} ms recall={row['recall@10']} writes={row['write_batches']} "
                  f"(p99 {row['write_p99_ms']} ms) {row['errors'] or ''}", flush=True)
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"[:2000]
        out["traceback"] = traceback.format_exc()[-3000:]
        print(f"  {key}: {out['error']}", flush=True)
    finally:
        try:
            system.stop()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--write-batch", type=int, default=100)
    p.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    extra = args.write_batch * int(args.seconds * 40 * len(args.clients) + 100)
    data = load(args.n, args.queries, args.seed, extra)
    result = {"benchmark": "server_bench", "dataset": "glove-50-angular", "n": args.n,
              "queries": int(len(data[3])), "k": K, "filter": "cat == c (10% of the points)",
              "seconds_per_cell": args.seconds, "write_batch": args.write_batch,
              "command": " ".join(["python", "benchmarks/server_bench.py"] + (argv or sys.argv[1:])),
              "machine": machine.describe(), "systems": {}}
    for key in args.systems:
        print(f"{key}:", flush=True)
        result["systems"][key] = bench_system(key, args, data)
    v = result["systems"].get("voisin", {})
    ratios = {}
    for key, other in result["systems"].items():
        if key == "voisin" or "load" not in other or "load" not in v:
            continue
        ratios[key] = {str(a["clients"]): {"qps_ratio": round(a["qps"] / b["qps"], 2) if b["qps"] else None,
                                           "voisin_recall": a["recall@10"], "peer_recall": b["recall@10"]}
                       for a, b in zip(v["load"], other["load"])}
    result["voisin_vs"] = ratios
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(ratios, indent=2))


if __name__ == "__main__":
    main()
