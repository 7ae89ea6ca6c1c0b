"""Hashing indexes side by side: voisin vs faiss IndexLSH, ITQ + LSH and IndexIVFSpectralHash.

Each factory string is built by both libraries (train + add timed together),
then searched: batch QPS (all queries in one call), single-query QPS (one query
per call) and recall@k against the exact float neighbours (share of the true
k nearest found among the k returned). The two libraries alternate,
``--reps`` times each, at the same thread count; numba's compile time is
measured apart on a tiny index and not counted in any QPS.

Data: an ann-benchmarks dataset name (L2 or angular; angular data are
normalised) or ``synthetic`` (Gaussian clusters).

    flock /tmp/voisin-bench.lock python benchmarks/lsh_bench.py --data sift-128-euclidean \\
        --nb 1000000 --out benchmarks/results/lsh-sift-128.json

Check that it runs (tiny sizes, result not kept):

    python benchmarks/lsh_bench.py --nb 3000 --nq 30 --reps 1 --out /tmp/lsh.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

DEFAULT_STRINGS = ["LSH{2d}r", "ITQ{d},LSH", "IVF{nlist},ITQ{d},SH1.0m"]


def synthetic(nb: int, nq: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(16, nb // 500), d)) * 3
    pick = rng.integers(0, centres.shape[0], nb + nq)
    x = (centres[pick] + rng.normal(size=(nb + nq, d))).astype(np.float32)
    return x[:nb], x[nb:], x[:min(nb, 20000)]


def from_dataset(name: str, nb: int, nq: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from voisin.datasets import load
    ds = load(name)
    xb = np.ascontiguousarray(ds.train[:nb], dtype=np.float32)
    xq = np.ascontiguousarray(ds.test[:nq], dtype=np.float32)
    if "angular" in name:
        xb /= np.linalg.norm(xb, axis=1, keepdims=True)
        xq /= np.linalg.norm(xq, axis=1, keepdims=True)
    return xb, xq, xb[:min(nb, 50000)]


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def single_qps(index, xq: np.ndarray, k: int) -> float:
    t = time.perf_counter()
    for i in range(xq.shape[0]):
        index.search(xq[i:i + 1], k)
    return xq.shape[0] / (time.perf_counter() - t)


def recall(I: np.ndarray, gt: np.ndarray) -> float:
    k = gt.shape[1]
    return float(np.mean([len(set(a[:k]) & set(b)) / k for a, b in zip(I, gt)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="synthetic", help="'synthetic' or a dataset name")
    ap.add_argument("--nb", type=int, default=200_000)
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--nq-single", type=int, default=300, help="queries for single-query QPS")
    ap.add_argument("--d", type=int, default=64, help="dimension of synthetic data")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--nlist", type=int, default=256)
    ap.add_argument("--nprobe", type=int, default=16)
    ap.add_argument("--strings", nargs="+", default=DEFAULT_STRINGS,
                    help="factory strings; {d}, {2d} and {nlist} are filled in")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None,
                    help="JSON file (default benchmarks/results/lsh-<data>.json)")
    args = ap.parse_args()

    import faiss
    import numba

    import voisin

    numba.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)

    if args.data == "synthetic":
        xb, xq, xt = synthetic(args.nb, args.nq, args.d, args.seed)
    else:
        xb, xq, xt = from_dataset(args.data, args.nb, args.nq)
    d = xb.shape[1]
    nlist = min(args.nlist, max(1, xb.shape[0] // 39))
    strings = [s.format(d=d, **{"2d": 2 * d}, nlist=nlist) for s in args.strings]
    k = args.k
    xs = xq[:args.nq_single]

    # numba compile / cache load, apart from everything else
    t = time.perf_counter()
    for s in strings:
        warm = voisin.index_factory(d, s.replace(f"IVF{nlist},", "IVF1,"))
        warm.train(xt[:200])
        warm.add(xt[:200])
        warm.search(xt[:1], 1)
        warm.search(xt[:100], 1)
    compile_s = time.perf_counter() - t

    gt = voisin.knn(xq, xb, k)[1]
    libs = {"voisin": voisin, "faiss": faiss}
    rows = []
    for s in strings:
        built = {}
        for name, lib in libs.items():
            index = lib.index_factory(d, s)
            t0 = time.perf_counter()
            index.train(xt)
            index.add(xb)
            built[name] = (index, time.perf_counter() - t0)
            if "IVF" in s:
                (faiss.extract_index_ivf(index) if lib is faiss else voisin.extract_index_ivf(index)
                 ).nprobe = args.nprobe
        batch = {n: [] for n in libs}
        single = {n: [] for n in libs}
        for _ in range(args.reps):
            for name in libs:
                index = built[name][0]
                dt, _ = timed(index.search, xq, k)
                batch[name].append(xq.shape[0] / dt)
                single[name].append(single_qps(index, xs, k))
        for name in libs:
            index, build = built[name]
            rows.append({"lib": name, "index": s, "build_s": build, "batch_qps": max(batch[name]),
                         "single_qps": max(single[name]),
                         "recall": recall(index.search(xq, k)[1], gt),
                         "nprobe": args.nprobe if "IVF" in s else None})

    print(f"{'index':<28}{'lib':<8}{'recall':>8}{'batch qps':>12}{'single qps':>12}{'build s':>9}")
    for r in rows:
        print(f"{r['index']:<28}{r['lib']:<8}{r['recall']:>8.3f}{r['batch_qps']:>12.0f}"
              f"{r['single_qps']:>12.0f}{r['build_s']:>9.2f}")
    print(f"numba compile (or cache load): {compile_s:.2f} s")

    result = {
        "benchmark": "lsh", "data": args.data, "nb": int(xb.shape[0]), "nq": int(xq.shape[0]),
        "nq_single": int(xs.shape[0]), "d": d, "k": k, "nlist": nlist, "reps": args.reps,
        "threads": args.threads, "faiss_version": faiss.__version__,
        "voisin_version": voisin.__version__, "machine": platform.processor() or platform.machine(),
        "compile_s": compile_s,
        "recall_definition": "share of the exact k nearest (float L2) among the k returned",
        "rows": rows,
    }
    out = args.out or os.path.join(os.path.dirname(__file__), "results", f"lsh-{args.data}.json")
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
