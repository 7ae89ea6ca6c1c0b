"""Do searches from several Python threads run in parallel? (GIL release)

For Flat, IVF-Flat and HNSW on a glove-50 subset, voisin and faiss-cpu side by
side: queries per second of 1 Python thread vs 2 Python threads, each thread
calling ``index.search`` in a loop with single queries (and with batches of
16), every library limited to one thread per call (numba threads set to 1 in
each worker thread, OPENBLAS_NUM_THREADS=1, faiss.omp_set_num_threads(1)). On a
2-core machine a search that releases the GIL for its work approaches 2x with
2 threads; whatever runs under the GIL (validation, result assembly, locks)
caps the ratio.

Timing: each (library, index, mode, threads) cell runs ``--seconds`` of
searching, cells interleaved over ``--reps`` rounds (1, 2, 1, 2...) so that
load from other processes hits both thread counts alike; the median QPS per
cell and the median of the per-round speed-ups are reported. numba compilation is timed separately (first call) and is
not part of any QPS figure.

    flock /tmp/voisin-bench.lock python benchmarks/concurrency_scaling.py \\
        --out benchmarks/results/concurrency-glove-50-angular.json
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # before numpy loads BLAS
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import voisin  # noqa: E402


def one_thread_per_call(lib: str) -> None:
    if lib == "voisin":
        voisin.omp_set_num_threads(1)   # numba's setting is per calling thread


def run_threads(lib: str, index, queries: np.ndarray, k: int, nq: int, n_threads: int, seconds: float,
                search) -> float:
    """Total queries per second of ``n_threads`` threads searching for ``seconds``."""
    counts = [0] * n_threads
    errors: list[BaseException] = []
    start = threading.Barrier(n_threads + 1)
    stop = threading.Event()

    def worker(t: int) -> None:
        try:
            one_thread_per_call(lib)
            rng = np.random.default_rng(t)
            nbatches = queries.shape[0] // nq
            batches = [np.ascontiguousarray(queries[i * nq:(i + 1) * nq]) for i in range(nbatches)]
            order = rng.permutation(nbatches)
            start.wait()
            i = 0
            while not stop.is_set():
                search(index, batches[order[i % nbatches]], k)
                i += 1
            counts[t] = i * nq
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return sum(counts) / wall


def build(lib: str, kind: str, xb: np.ndarray, args) -> tuple[object, float, dict]:
    d = xb.shape[1]
    t0 = time.perf_counter()
    if lib == "voisin":
        voisin.omp_set_num_threads(2)
        if kind == "Flat":
            index = voisin.IndexFlatIP(d)
        elif kind == "IVF-Flat":
            index = voisin.IndexIVFFlat(voisin.IndexFlatIP(d), d, args.nlist, voisin.METRIC_INNER_PRODUCT)
            index.train(xb)
            index.nprobe = args.nprobe
        else:
            index = voisin.IndexHNSWFlat(d, args.M, voisin.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 40
            index.hnsw.efSearch = args.ef
        index.add(xb)
    else:
        import faiss
        faiss.omp_set_num_threads(2)
        if kind == "Flat":
            index = faiss.IndexFlatIP(d)
        elif kind == "IVF-Flat":
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, args.nlist, faiss.METRIC_INNER_PRODUCT)
            index.train(xb)
            index.nprobe = args.nprobe
        else:
            index = faiss.IndexHNSWFlat(d, args.M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 40
            index.hnsw.efSearch = args.ef
        index.add(xb)
        faiss.omp_set_num_threads(1)
    params = {"Flat": {}, "IVF-Flat": {"nlist": args.nlist, "nprobe": args.nprobe},
              "HNSW": {"M": args.M, "efConstruction": 40, "efSearch": args.ef}}[kind]
    return index, time.perf_counter() - t0, params


def ivf_layers(xb: np.ndarray, xq: np.ndarray, args) -> dict:
    """Where the GIL-held time of a single-query IVF search sits: 1 vs 2
    threads calling the public ``search`` (validation + snapshot + kernel),
    the ``_search`` hook (snapshot + kernel) and the numba kernel alone."""
    from voisin.kernels import ivf as K
    from voisin.metric import worst_distance
    index, _, params = build("voisin", "IVF-Flat", xb, args)
    voisin.omp_set_num_threads(1)
    ctx, nprobe = index._context(None)
    cent, cnorm = index._flat_centroids()
    vecs = index._vecs(ctx.codes)
    worst = np.float32(worst_distance(index.metric_type))

    def kernel(ix, q, k):
        D = np.empty((1, k), np.float32)
        I = np.empty((1, k), np.int64)
        K.flat_search_single(q, cent, cnorm, nprobe, vecs, ctx.ids, ctx.offsets, ctx.sizes, ix.metric_type,
                             ctx.max_codes, ctx.mask, ctx.use_mask, worst, D, I)

    layers = {"search": lambda ix, q, k: ix.search(q, k),
              "_search": lambda ix, q, k: ix._search(q, k, None, None, None),
              "kernel": kernel}
    out = {"params": params, "nb": int(xb.shape[0])}
    for name, fn in layers.items():
        fn(index, xq[:1], args.k)
        r1, r2 = [], []
        for _ in range(args.reps):
            r1.append(run_threads("voisin", index, xq, args.k, 1, 1, args.seconds, fn))
            r2.append(run_threads("voisin", index, xq, args.k, 1, 2, args.seconds, fn))
        rounds = [b / a for a, b in zip(r1, r2)]
        out[name] = {"us_per_query_1_thread": round(1e6 / statistics.median(r1), 2),
                     "qps_1_thread": round(statistics.median(r1), 1),
                     "qps_2_threads": round(statistics.median(r2), 1),
                     "speedup_2_vs_1": round(statistics.median(rounds), 3),
                     "speedup_per_round": [round(r, 3) for r in rounds]}
        print(f"IVF single query, layer {name:8s}: {out[name]['us_per_query_1_thread']:6.2f} us/query "
              f"on 1 thread, 2 threads x{out[name]['speedup_2_vs_1']:.2f}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="glove-50-angular")
    ap.add_argument("--nb", type=int, default=100_000, help="database: the first nb train vectors")
    ap.add_argument("--nq", type=int, default=1000, help="test queries used")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--nlist", type=int, default=256)
    ap.add_argument("--nprobe", type=int, default=8)
    ap.add_argument("--M", type=int, default=16)
    ap.add_argument("--ef", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--libs", default="voisin,faiss")
    ap.add_argument("--indexes", default="Flat,IVF-Flat,HNSW")
    ap.add_argument("--layers", action="store_true",
                    help="instead: 1 vs 2 threads at each layer of the IVF single-query path")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    ds = voisin.datasets.load(args.dataset)
    xb = np.ascontiguousarray(ds.train[:args.nb], dtype=np.float32)
    xq = np.ascontiguousarray(ds.test[:args.nq], dtype=np.float32)
    voisin.normalize_L2(xb)
    voisin.normalize_L2(xq)
    gt_index = voisin.IndexFlatIP(xb.shape[1])
    gt_index.add(xb)
    gt = gt_index.search(xq, args.k)[1]   # exact neighbours within the subset

    results = []
    layers = ivf_layers(xb, xq, args) if args.layers else None
    for kind in ([] if args.layers else args.indexes.split(",")):
        for lib in args.libs.split(","):
            index, build_s, params = build(lib, kind, xb, args)
            one_thread_per_call(lib)
            t0 = time.perf_counter()
            index.search(xq[:1], args.k)      # numba compiles (or loads its cache) here
            first_call_s = time.perf_counter() - t0
            I = index.search(xq, args.k)[1]
            recall = float(voisin.evaluate.id_recall_at_k(I, gt, args.k))
            search = (lambda ix, q, k: ix.search(q, k))
            for mode, nq in (("single", 1), ("batch", args.batch)):
                qps = {1: [], 2: []}
                for _ in range(args.reps):
                    for nt in (1, 2):
                        qps[nt].append(run_threads(lib, index, xq, args.k, nq, nt, args.seconds, search))
                q1, q2 = statistics.median(qps[1]), statistics.median(qps[2])
                # each round's 1- and 2-thread cells ran back to back: their
                # ratio is less exposed to load drifting over the run
                rounds = [b / a for a, b in zip(qps[1], qps[2])]
                row = {"library": lib, "index": kind, "params": params, "mode": mode, "queries_per_call": nq,
                       "qps_1_thread": round(q1, 1), "qps_2_threads": round(q2, 1),
                       "speedup_2_vs_1": round(statistics.median(rounds), 3),
                       "speedup_per_round": [round(r, 3) for r in rounds],
                       "qps_runs": {"1": qps[1], "2": qps[2]},
                       "recall_at_10": round(recall, 4), "build_s": round(build_s, 2),
                       "first_call_s": round(first_call_s, 3)}
                results.append(row)
                print(f"{lib:7s} {kind:9s} {mode:6s} 1 thread {q1:9.1f} QPS  2 threads {q2:9.1f} QPS  "
                      f"x{row['speedup_2_vs_1']:.2f} (rounds {row['speedup_per_round']})  "
                      f"recall@10 {recall:.3f}", flush=True)
            del index

    import numba
    out = {
        "benchmark": "concurrency_scaling",
        "dataset": args.dataset, "nb": int(xb.shape[0]), "nq": int(xq.shape[0]), "k": args.k,
        "metric": "inner product on L2-normalised vectors (angular)",
        "ground_truth": "exact top-k within the nb-vector subset (voisin IndexFlatIP)",
        "seconds_per_cell": args.seconds, "reps": args.reps,
        "threads_per_call": "1 (numba threads=1 per worker thread, OPENBLAS_NUM_THREADS=1, faiss omp 1)",
        "command": "flock /tmp/voisin-bench.lock python " + " ".join(sys.argv),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "numpy": np.__version__,
                    "numba": numba.__version__, "voisin": voisin.__version__},
        "results": results,
    }
    if layers is not None:
        out["benchmark"] = "concurrency_scaling --layers (IVF single-query path)"
        out["ivf_single_query_layers"] = layers
        del out["ground_truth"], out["results"]
    try:
        import faiss
        out["machine"]["faiss"] = faiss.__version__
    except ImportError:
        pass
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
