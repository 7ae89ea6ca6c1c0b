"""Kmeans training time and objective: voisin.Kmeans vs faiss.Kmeans, same run.

glove-50-angular's train set (L2-normalised, as IVF trains on it), k=1024,
niter=25, seed=1234 on both sides; both libraries sample k*256 = 262,144 of
the 390,000 points (their own samplers, so the samples differ). The two
libraries alternate, ``--reps`` times each, on the same thread count; the
numba compile/warm-up is timed apart and not counted.

    flock /tmp/voisin-bench.lock python benchmarks/kmeans_bench.py --reps 3 \\
        --out benchmarks/results/kmeans-glove-50-k1024.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="glove-50-angular")
    ap.add_argument("--k", type=int, default=1024)
    ap.add_argument("--niter", type=int, default=25)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default=None, help="JSON file to write")
    args = ap.parse_args()

    import faiss
    import numba

    import voisin
    from voisin.datasets import load

    numba.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    ds = load(args.dataset)
    x = np.ascontiguousarray(ds.train, dtype=np.float32)
    if ds.metric == "angular":
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    d = x.shape[1]

    t = time.perf_counter()
    voisin.Kmeans(d, 16, niter=2, seed=args.seed).train(x[:20000])
    warmup = time.perf_counter() - t

    runs = []
    for rep in range(args.reps):
        for lib in ("voisin", "faiss"):
            mod = voisin if lib == "voisin" else faiss
            t = time.perf_counter()
            km = mod.Kmeans(d, args.k, niter=args.niter, seed=args.seed)
            obj = km.train(x)
            el = time.perf_counter() - t
            runs.append({"lib": lib, "rep": rep, "seconds": el, "obj": float(obj)})
            print(f"{lib} rep {rep}: {el:.2f} s, objective {obj:.6g}", flush=True)

    def med(lib: str, key: str) -> float:
        return float(np.median([r[key] for r in runs if r["lib"] == lib]))

    res = {
        "what": (f"Kmeans training, k={args.k}, niter={args.niter}, seed={args.seed}, {args.dataset} train set"
                 f"{' (L2-normalised)' if ds.metric == 'angular' else ''}, sampled to k*256 points by both "
                 "libraries; libraries alternate, same thread count"),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "threads": args.threads, "faiss": faiss.__version__, "numpy": np.__version__,
                    "numba": numba.__version__, "load_avg_at_end": os.getloadavg()},
        "n_train": int(x.shape[0]),
        "voisin_warmup_seconds_not_counted": warmup,
        "runs": runs,
        "median_seconds": {"voisin": med("voisin", "seconds"), "faiss": med("faiss", "seconds")},
        "median_obj": {"voisin": med("voisin", "obj"), "faiss": med("faiss", "obj")},
        "command": ("flock /tmp/voisin-bench.lock python benchmarks/kmeans_bench.py "
                    f"--dataset {args.dataset} --k {args.k} --niter {args.niter} --seed {args.seed} "
                    f"--reps {args.reps} --threads {args.threads}"
                    + (f" --out {args.out}" if args.out else "")),
    }
    res["time_ratio_voisin_over_faiss"] = res["median_seconds"]["voisin"] / res["median_seconds"]["faiss"]
    res["obj_ratio_voisin_over_faiss"] = res["median_obj"]["voisin"] / res["median_obj"]["faiss"]
    summary = {k: res[k] for k in ("median_seconds", "median_obj", "time_ratio_voisin_over_faiss",
                                   "obj_ratio_voisin_over_faiss")}
    print(json.dumps(summary, indent=1))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
