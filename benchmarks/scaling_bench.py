"""Scale-out: build time and batch QPS with 1, 2, 4 shards, in-process
IndexShards vs Ray ShardedIndex, and the per-call overhead of Ray.

For each dataset and index description (default "Flat" and "IVF1024,Flat" at
nprobe 16) and each shard count, side by side in one run:

* in-process: ``voisin.IndexShards`` of flat shards / ``voisin.IndexShardsIVF``
  (one shared quantizer), threaded;
* Ray: ``voisin.distributed.ShardedIndex`` on a local cluster (127.0.0.1,
  ``--ray-cpus`` CPUs), one actor per shard, replicas=1.

Build time = train (IVF: on the whole base, as one index would be) + add of the
base in batches of ``--add-batch``; batch QPS = all queries in one call, the
median of ``--reps`` repetitions (spread reported); recall@10 against exact
search. Per-call overhead: median latency of single-query searches (Ray vs the
same shards in-process) and of an empty actor round trip (``stats``). numba
compilation is warmed before any timing. The queries are a seeded random
subset (``--queries``) of the test set, never its first N.

The machine is shared: results of a contended run are not to be published.
Quiet-machine run for the lead (about 20-30 minutes):

    flock /tmp/voisin-bench.lock python benchmarks/scaling_bench.py \\
        --datasets glove-50-angular fashion-mnist-784-euclidean \\
        --out benchmarks/results/scaling.json

Smoke check (a minute): ``python benchmarks/scaling_bench.py --n 20000 --queries 200 --shards 1 2 --reps 2 --out /tmp/scaling-smoke.json``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

import voisin
from voisin.bench import machine
from voisin.evaluate import id_recall_at_k


def timed(fn, reps: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def in_process(factory: str, xb: np.ndarray, metric: int, nshard: int, nprobe: int | None, add_batch: int):
    d = xb.shape[1]
    t0 = time.perf_counter()
    if factory.startswith("IVF"):
        nlist = int(factory.split(",")[0][3:])
        index = voisin.IndexShardsIVF(voisin.IndexFlat(d, metric), nlist, successive_ids=False)
        for _ in range(nshard):
            index.add_shard(voisin.index_factory(d, factory, metric))
        index.train(xb)
        index.nprobe = nprobe
    else:
        index = voisin.IndexShards(d, successive_ids=False)
        for _ in range(nshard):
            index.add_shard(voisin.IndexIDMap2(voisin.index_factory(d, factory, metric)))
    for i in range(0, xb.shape[0], add_batch):
        index.add_with_ids(xb[i:i + add_batch], np.arange(i, min(i + add_batch, xb.shape[0])))
    return index, time.perf_counter() - t0


def on_ray(factory: str, xb: np.ndarray, metric: int, nshard: int, add_batch: int, threads: int | None):
    import voisin.distributed as vd
    t0 = time.perf_counter()
    index = vd.ShardedIndex(factory, d=xb.shape[1], shards=nshard, metric=metric, num_cpus_per_actor=0.01,
                            threads_per_actor=threads, checkpoint_every=10 ** 6)
    started = time.perf_counter() - t0
    t0 = time.perf_counter()
    if not index.is_trained:
        index.train(xb)
    for i in range(0, xb.shape[0], add_batch):
        index.add(xb[i:i + add_batch], np.arange(i, min(i + add_batch, xb.shape[0])))
    return index, time.perf_counter() - t0, started


def run_cell(kind, factory, xb, xq, gt, metric, nshard, nprobe, args) -> dict:
    params = {"nprobe": nprobe} if nprobe else None
    if kind == "in-process":
        index, build = in_process(factory, xb, metric, nshard, nprobe, args.add_batch)
        started = 0.0
        search = lambda q: index.search(q, 10)  # noqa: E731
    else:
        index, build, started = on_ray(factory, xb, metric, nshard, args.add_batch, args.threads_per_actor)
        search = lambda q: index.search(q, 10, params=params)  # noqa: E731
    search(xq[:50])  # warm: numba kernels and (Ray) the actors' first call
    qps_time, times = timed(lambda: search(xq), args.reps)
    recall = id_recall_at_k(search(xq)[1], gt, 10)
    single = [xq[i:i + 1] for i in range(min(args.single, xq.shape[0]))]
    lat, _ = timed(lambda: [search(q) for q in single], 1)
    cell = {"kind": kind, "factory": factory, "nprobe": nprobe, "shards": nshard, "build_s": build,
            "actor_start_s": started, "batch_qps": xq.shape[0] / qps_time,
            "batch_s_all": times, "recall_at_10": recall, "single_query_ms": 1000 * lat / len(single)}
    if kind == "ray":
        import ray
        actor = index.replica_handle(0, 0)
        rt, _ = timed(lambda: [ray.get(actor.stats.remote()) for _ in range(args.single)], 1)
        cell["actor_roundtrip_ms"] = 1000 * rt / args.single
        index.close()
    return cell


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["glove-50-angular", "fashion-mnist-784-euclidean"])
    ap.add_argument("--factories", nargs="+", default=["Flat", "IVF1024,Flat"])
    ap.add_argument("--nprobe", type=int, default=16)
    ap.add_argument("--shards", nargs="+", type=int, default=[1, 2, 4])
    ap.add_argument("--n", type=int, default=None, help="first n base vectors only (smoke runs)")
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--single", type=int, default=200, help="single-query calls for the latency figures")
    ap.add_argument("--add-batch", type=int, default=50_000)
    ap.add_argument("--ray-cpus", type=int, default=os.cpu_count())
    ap.add_argument("--threads-per-actor", type=int, default=None)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    import voisin.distributed as vd
    vd.init(num_cpus=args.ray_cpus)
    result = {"benchmark": "scaling", "machine": machine.describe(), "args": vars(args), "runs": []}
    for name in args.datasets:
        ds = voisin.datasets.load(name)
        ds = ds.subset(args.queries, seed=0)
        xb, xq, metric = ds.search_arrays()
        if args.n:
            xb = np.ascontiguousarray(xb[:args.n])
        gt = voisin.knn(xq, xb, 10, metric=metric)[1]  # exact on the (possibly cut) base
        for factory in args.factories:
            nprobe = args.nprobe if factory.startswith("IVF") else None
            for nshard in args.shards:
                for kind in ("in-process", "ray"):
                    cell = run_cell(kind, factory, xb, xq, gt, metric, nshard, nprobe, args)
                    cell.update(dataset=name, n=int(xb.shape[0]), nq=int(xq.shape[0]), d=int(xb.shape[1]))
                    result["runs"].append(cell)
                    print(f"{name} {factory} shards={nshard} {kind:10s} build {cell['build_s']:.1f}s "
                          f"qps {cell['batch_qps']:.0f} recall {cell['recall_at_10']:.3f} "
                          f"single {cell['single_query_ms']:.2f}ms", file=sys.stderr)
    vd.shutdown()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
