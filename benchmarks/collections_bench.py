"""Collections side by side: voisin.db against the embedded databases people use.

One run, one machine, every system on the same data (docs/benchmarking.md):
glove-50-angular, the first ``--n`` (100,000) train vectors, cosine; each
point has a payload ``{"bucket": int in [0, 10000), "lang": "fr"|"en"|"de"}``
and the filters ``bucket < 10000 * s`` select s = 0.1%, 1%, 10% and 50%.

Measured per system (where it installs; the JSON says why one is missing):

* ``ingest``: points per second to make all points searchable (upserts in
  batches of ``--batch`` with their payloads, plus any index build a system
  needs before searching);
* ``reopen_s``: closing, opening the folder again and answering one query;
* ``disk_bytes``: the folder's size after closing;
* per selectivity: filtered top-10 QPS, one query per call on one thread
  (``single`` mode), and recall@10 with ties against exact search over the
  allowed set (``voisin.evaluate.recall_at_k``). A cell stops after
  ``--queries`` queries or ``--budget`` seconds (``queries_run`` in the JSON);
  the queries are a seeded random subset of glove's test set.

Systems: voisin (``index="auto"``, its defaults unless ``--hnsw``), chromadb
PersistentClient (hnsw, cosine, M 32, ef_construction 200, ef_search 128, one thread),
lancedb (no ANN index: exact scan with prefilter, its default at this size),
qdrant-client local mode (see :class:`QdrantLocal`), milvus-lite (HNSW M 32,
efConstruction 200, ef 128). Install them with ``pip install -e ".[bench-db]"``.

Usage (2-core shared machine: under the lock)::

    flock /tmp/voisin-bench.lock python benchmarks/collections_bench.py \\
        --out benchmarks/results/collections-glove-50.json
    python benchmarks/collections_bench.py --n 5000 --queries 50 --budget 5 \\
        --out /tmp/collections-small.json          # a quick check that every adapter works
"""

from __future__ import annotations

import os

# one thread per library in single mode: set before any of them is imported
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
             "RAYON_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import voisin  # noqa: E402
from voisin import datasets  # noqa: E402
from voisin.bench import machine  # noqa: E402
from voisin.evaluate import recall_at_k, true_distances  # noqa: E402

K = 10
SELECTIVITIES = (0.001, 0.01, 0.1, 0.5)
BUCKETS = 10_000
LANGS = ("fr", "en", "de")
M, EFC, EF = 32, 200, 128


def disk_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


# --- the systems -------------------------------------------------------------------------
class VoisinDB:
    name = "voisin"
    hnsw: dict | None = None

    def open(self, folder: Path, dim: int, create: bool) -> None:
        self.db = voisin.connect(folder)
        self.col = (self.db.create_collection("bench", dim=dim, metric="cosine", hnsw=self.hnsw)
                    if create else self.db.get_collection("bench"))

    def ingest(self, ids, X, payloads) -> None:
        self.col.upsert(ids, X, payloads=payloads)

    def query(self, q, t) -> list[int]:
        f = {"must": [{"key": "bucket", "range": {"lt": t}}]}
        return self.col.search(q, k=K, filter=f, with_payload=False).ids[0]

    def close(self) -> None:
        self.db.close()

    def describe(self) -> dict:
        return {"index": self.col.index_description, "version": voisin.__version__}


class Chroma:
    name = "chromadb"

    def open(self, folder: Path, dim: int, create: bool) -> None:
        import chromadb
        self.client = chromadb.PersistentClient(path=str(folder))
        if create:
            try:
                self.col = self.client.create_collection(
                    "bench", embedding_function=None,
                    configuration={"hnsw": {"space": "cosine", "max_neighbors": M,
                                            "ef_construction": EFC, "ef_search": EF, "num_threads": 1}})
            except (TypeError, ValueError):
                self.col = self.client.create_collection(
                    "bench", embedding_function=None,
                    metadata={"hnsw:space": "cosine", "hnsw:M": M, "hnsw:construction_ef": EFC,
                              "hnsw:search_ef": EF, "hnsw:num_threads": 1})
        else:
            self.col = self.client.get_collection("bench", embedding_function=None)

    def ingest(self, ids, X, payloads) -> None:
        self.col.add(ids=[str(i) for i in ids], embeddings=X, metadatas=payloads)

    def query(self, q, t) -> list[int]:
        r = self.col.query(query_embeddings=q[None], n_results=K, where={"bucket": {"$lt": t}},
                           include=[])
        return [int(i) for i in r["ids"][0]]

    def close(self) -> None:
        self.col = None
        try:
            self.client.clear_system_cache()
        except Exception:
            pass
        self.client = None

    def describe(self) -> dict:
        import chromadb
        return {"version": chromadb.__version__, "index": f"hnsw M={M} ef_construction={EFC} ef_search={EF}"}


class Lance:
    name = "lancedb"

    def open(self, folder: Path, dim: int, create: bool) -> None:
        import lancedb
        self.dim = dim
        self.db = lancedb.connect(str(folder))
        self.tbl = None if create else self.db.open_table("bench")

    def ingest(self, ids, X, payloads) -> None:
        import pyarrow as pa
        vec = pa.FixedSizeListArray.from_arrays(pa.array(X.reshape(-1), pa.float32()), self.dim)
        batch = pa.table({"id": pa.array(ids, pa.int64()), "vector": vec,
                          "bucket": pa.array([p["bucket"] for p in payloads], pa.int64()),
                          "lang": pa.array([p["lang"] for p in payloads], pa.string())})
        if self.tbl is None:
            self.tbl = self.db.create_table("bench", data=batch)
        else:
            self.tbl.add(batch)

    def query(self, q, t) -> list[int]:
        s = self.tbl.search(q)
        s = s.distance_type("cosine") if hasattr(s, "distance_type") else s.metric("cosine")
        rows = s.where(f"bucket < {t}", prefilter=True).limit(K).select(["id"]).to_list()
        return [int(r["id"]) for r in rows]

    def close(self) -> None:
        self.tbl = self.db = None

    def describe(self) -> dict:
        import lancedb
        return {"version": lancedb.__version__, "index": "none (exact scan with prefilter)"}


class QdrantLocal:
    """qdrant-client's local mode. Its on-disk mode stores each point in its own
    SQLite transaction (~25 ms a point here), so ingest, reopen and disk are
    measured on the first ``--qdrant-persist-n`` points in a folder, and the
    searches run on all points in ``:memory:`` local mode, the same search code."""

    name = "qdrant-local"

    def open(self, folder: Path, dim: int, create: bool) -> None:
        from qdrant_client import QdrantClient, models
        self.models = models
        self.client = QdrantClient(path=str(folder))
        if create:
            self.client.create_collection("bench", vectors_config=models.VectorParams(
                size=dim, distance=models.Distance.COSINE))

    def ingest(self, ids, X, payloads) -> None:
        self.client.upload_collection("bench", vectors=X, payload=payloads, ids=ids, batch_size=len(ids))

    def query(self, q, t) -> list[int]:
        m = self.models
        f = m.Filter(must=[m.FieldCondition(key="bucket", range=m.Range(lt=t))])
        return [int(p.id) for p in self.client.query_points("bench", query=q, query_filter=f, limit=K).points]

    def load_all_in_memory(self, X, payloads) -> None:
        from qdrant_client import QdrantClient
        self.client.close()
        self.client = QdrantClient(":memory:")
        self.client.create_collection("bench", vectors_config=self.models.VectorParams(
            size=X.shape[1], distance=self.models.Distance.COSINE))
        self.client.upload_collection("bench", vectors=X, payload=payloads, ids=list(range(len(X))))

    def close(self) -> None:
        self.client.close()

    def describe(self) -> dict:
        import qdrant_client
        return {"version": getattr(qdrant_client, "__version__", None),
                "index": "local mode (exact scan in numpy, filters in Python)"}


class MilvusLite:
    name = "milvus-lite"

    def open(self, folder: Path, dim: int, create: bool) -> None:
        from pymilvus import DataType, MilvusClient
        folder.mkdir(parents=True, exist_ok=True)
        self.client = MilvusClient(str(folder / "milvus.db"))
        self.pending_index = create
        if create:
            schema = self.client.create_schema(auto_id=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
            schema.add_field("bucket", DataType.INT64)
            schema.add_field("lang", DataType.VARCHAR, max_length=8)
            # Bounded (the default) makes a search wait for Milvus's 200 ms time tick
            self.client.create_collection("bench", schema=schema, consistency_level="Eventually")
        else:
            self.client.load_collection("bench")

    def ingest(self, ids, X, payloads) -> None:
        self.client.insert("bench", [{"id": int(i), "vector": x.tolist(), **p} for i, x, p in zip(ids, X, payloads)])

    def finish_ingest(self) -> None:
        params = self.client.prepare_index_params()
        params.add_index("vector", index_type="HNSW", metric_type="COSINE", params={"M": M, "efConstruction": EFC})
        self.client.create_index("bench", params)
        self.client.load_collection("bench")

    def query(self, q, t) -> list[int]:
        r = self.client.search("bench", data=[q.tolist()], filter=f"bucket < {t}", limit=K,
                               search_params={"metric_type": "COSINE", "params": {"ef": EF}},
                               consistency_level="Eventually")
        return [int(h["id"]) for h in r[0]]

    def close(self) -> None:
        self.client.close()

    def describe(self) -> dict:
        import pymilvus
        return {"version": pymilvus.__version__, "index": f"HNSW M={M} efConstruction={EFC} ef={EF}"}


SYSTEMS = {s.name: s for s in (VoisinDB, Chroma, Lance, QdrantLocal, MilvusLite)}


# --- the run -----------------------------------------------------------------------------
def load(n: int, nq: int, seed: int):
    ds = datasets.load("glove-50-angular")
    xb = datasets.normalized(np.ascontiguousarray(ds.train[:n]))
    rows = datasets.query_subset(ds.test.shape[0], nq, seed)
    xq = datasets.normalized(np.ascontiguousarray(ds.test if rows is None else ds.test[rows]))
    rng = np.random.default_rng(seed)
    buckets = rng.integers(0, BUCKETS, n)
    langs = rng.integers(0, len(LANGS), n)
    payloads = [{"bucket": int(b), "lang": LANGS[int(g)]} for b, g in zip(buckets, langs)]
    return xb, xq, buckets, payloads


def ground_truth(xb, xq, buckets):
    out = {}
    for s in SELECTIVITIES:
        t = int(round(s * BUCKETS))
        allowed = np.flatnonzero(buckets < t)
        _, Is = voisin.knn(xq, xb[allowed], K, voisin.METRIC_INNER_PRODUCT)
        gi = np.where(Is >= 0, allowed[np.maximum(Is, 0)], -1)
        out[s] = (t, int(allowed.size), gi, true_distances(xq, xb, gi, "angular"))
    return out


def run_system(cls, xb, xq, payloads, gt, args, root: Path, log) -> dict:
    sysobj = cls()
    folder = root / cls.name
    n, dim = xb.shape
    res: dict = {"system": cls.name}
    full = (xb, payloads)
    if cls is QdrantLocal and args.qdrant_persist_n < n:
        n = args.qdrant_persist_n
        xb, payloads = xb[:n], payloads[:n]
        res["ingest_points"] = n
    t0 = time.perf_counter()
    sysobj.open(folder, dim, create=True)
    for s in range(0, n, args.batch):
        sysobj.ingest(list(range(s, min(n, s + args.batch))), xb[s:s + args.batch], payloads[s:s + args.batch])
    if hasattr(sysobj, "finish_ingest"):
        sysobj.finish_ingest()
    sysobj.query(xq[0], BUCKETS)
    ingest_s = time.perf_counter() - t0
    res.update(ingest_s=ingest_s, ingest_per_s=n / ingest_s, describe=sysobj.describe())
    log(f"{cls.name}: ingest {n / ingest_s:,.0f} points/s ({ingest_s:.1f} s)")
    sysobj.close()
    res["disk_bytes"] = disk_bytes(folder)
    t0 = time.perf_counter()
    sysobj.open(folder, dim, create=False)
    sysobj.query(xq[0], BUCKETS)
    res["reopen_s"] = time.perf_counter() - t0
    log(f"{cls.name}: reopen {res['reopen_s']:.2f} s, disk {res['disk_bytes'] / 2**20:.1f} MiB")
    if hasattr(sysobj, "load_all_in_memory") and n < full[0].shape[0]:
        sysobj.load_all_in_memory(*full)
        res["search_on"] = f"all {full[0].shape[0]} points, :memory: local mode"
    xb = full[0]
    cells = {}
    for s, (t, allowed, gi, gd) in gt.items():
        sysobj.query(xq[0], t)  # first call of a filter shape (compilation, plans) is not timed
        I = np.full((xq.shape[0], K), -1, dtype=np.int64)
        start = time.perf_counter()
        ran = 0
        for qi in range(xq.shape[0]):
            got = sysobj.query(xq[qi], t)[:K]
            I[qi, :len(got)] = got
            ran += 1
            if time.perf_counter() - start > args.budget:
                break
        wall = time.perf_counter() - start
        rec = recall_at_k(I[:ran], gd[:ran], K, xq=xq[:ran], xb=xb, metric="angular", gt_ids=gi[:ran])
        cells[str(s)] = {"threshold": t, "allowed": allowed, "queries_run": ran, "qps": ran / wall,
                         "recall_at_10": rec}
        log(f"{cls.name}: selectivity {s:g}: recall@10 {rec:.3f}, {ran / wall:,.0f} QPS ({ran} queries)")
    res["filtered"] = cells
    sysobj.close()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--budget", type=float, default=30.0, help="seconds per (system, selectivity) cell")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--qdrant-persist-n", type=int, default=5000,
                    help="points qdrant-client's on-disk local mode ingests (it is slow)")
    ap.add_argument("--hnsw", default="",
                    help="voisin's auto HNSW knobs, e.g. M=16,efConstruction=80,efSearch=128")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    def log(msg: str) -> None:
        print(msg, flush=True)

    if args.hnsw:
        VoisinDB.hnsw = {k: int(v) for k, v in (kv.split("=") for kv in args.hnsw.split(","))}
    xb, xq, buckets, payloads = load(args.n, args.queries, args.seed)
    gt = ground_truth(xb, xq, buckets)
    root = Path(tempfile.mkdtemp(prefix="voisin-collections-bench-"))
    results, missing = [], {}
    try:
        for name in args.systems.split(","):
            try:
                results.append(run_system(SYSTEMS[name], xb, xq, payloads, gt, args, root, log))
            except ImportError as exc:
                missing[name] = f"not installed: {exc}"
                log(f"{name}: skipped ({exc})")
            except Exception as exc:  # a peer that breaks must not lose the others' numbers
                missing[name] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                log(f"{name}: failed: {missing[name]}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out = {"benchmark": "collections", "dataset": "glove-50-angular", "n": args.n,
           "queries": int(xq.shape[0]), "k": K, "batch": args.batch, "budget_s": args.budget,
           "selectivities": list(SELECTIVITIES), "mode": "single (one query per call, one thread)",
           "machine": machine.describe(), "results": results, "missing": missing}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
