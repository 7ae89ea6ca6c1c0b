"""FAISS's Python helpers, voisin vs faiss-cpu side by side in one run.

Each case runs both libraries on the same data, alternating, ``--reps``
times; the table reports medians and the voisin/faiss speed ratio (> 1:
voisin faster). A first voisin call compiles its kernels and is not timed.

* knn_hamming: batch (all queries in one call, all cores) and single
  (one query per call, one thread), 32-byte codes;
* kmin: top-k of each row of a dense table;
* randn / rand: 10 million values (the same values on both sides);
* Clustering with an IndexFlatL2 for the assignment (objective reported:
  the initialisations differ);
* Clustering1D.train_exact;
* big_batch_search over IVF-Flat vs the same index's search.

    flock /tmp/voisin-bench.lock python benchmarks/faiss_python_bench.py --reps 5 \\
        --out benchmarks/results/faiss-python-helpers.json
    python benchmarks/faiss_python_bench.py --quick   # a few seconds: checks the script works
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any, Callable

import numpy as np


def _time(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def _case(name: str, params: dict, reps: int, threads: int, run_v: Callable, run_f: Callable,
          quality: Callable[[Any], float] | None = None) -> dict:
    from voisin.bench.threads import thread_limit
    with thread_limit(threads):
        run_v()  # compile / warm up, not timed
        run_f()
        times: dict[str, list[float]] = {"voisin": [], "faiss": []}
        scores: dict[str, list[float]] = {"voisin": [], "faiss": []}
        for _ in range(reps):
            for lib, fn in (("voisin", run_v), ("faiss", run_f)):
                t, out = _time(fn)
                times[lib].append(t)
                if quality is not None:
                    scores[lib].append(float(quality(out)))
    med = {lib: float(np.median(ts)) for lib, ts in times.items()}
    res = {"case": name, "params": params, "threads": threads, "seconds": times,
           "median_seconds": med, "speed_ratio_voisin_over_faiss": med["faiss"] / med["voisin"]}
    if quality is not None:
        res["quality"] = {lib: float(np.median(s)) for lib, s in scores.items()}
    print(f"{name:34s} voisin {med['voisin'] * 1e3:9.2f} ms  faiss {med['faiss'] * 1e3:9.2f} ms  "
          f"ratio {res['speed_ratio_voisin_over_faiss']:.2f}"
          + (f"  quality {res['quality']}" if quality is not None else ""), flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--quick", action="store_true", help="small sizes: check the script runs")
    ap.add_argument("--out", default=None, help="JSON file to write")
    args = ap.parse_args()

    import faiss

    import voisin
    from voisin.bench.machine import describe
    from voisin.contrib.big_batch_search import big_batch_search as v_bbs
    from faiss.contrib.big_batch_search import big_batch_search as f_bbs

    q = args.quick
    rs = np.random.RandomState(0)
    cases = []

    nb, nq, cs = (20000, 100, 32) if q else (1_000_000, 1000, 32)
    xb = rs.randint(0, 256, size=(nb, cs)).astype(np.uint8)
    xq = rs.randint(0, 256, size=(nq, cs)).astype(np.uint8)
    cases.append(_case("knn_hamming batch", {"nb": nb, "nq": nq, "code_size": cs, "k": 10},
                       args.reps, args.threads, lambda: voisin.knn_hamming(xq, xb, 10),
                       lambda: faiss.knn_hamming(xq, xb, 10)))
    single = xq[:20 if q else 100]
    cases.append(_case("knn_hamming single", {"nb": nb, "nq": len(single), "code_size": cs, "k": 10},
                       args.reps, 1, lambda: [voisin.knn_hamming(single[i:i + 1], xb, 10)
                                              for i in range(len(single))],
                       lambda: [faiss.knn_hamming(single[i:i + 1], xb, 10)
                                for i in range(len(single))]))

    table = rs.rand(*((200, 5000) if q else (2000, 100000))).astype(np.float32)
    cases.append(_case("kmin", {"shape": table.shape, "k": 10}, args.reps, args.threads,
                       lambda: voisin.kmin(table, 10), lambda: faiss.kmin(table, 10)))

    n = 100_000 if q else 10_000_000
    cases.append(_case("randn", {"n": n}, args.reps, args.threads, lambda: voisin.randn(n, 5),
                       lambda: faiss.randn(n, 5)))
    cases.append(_case("rand", {"n": n}, args.reps, args.threads, lambda: voisin.rand(n, 5),
                       lambda: faiss.rand(n, 5)))

    d, k, nt = (16, 32, 5000) if q else (32, 256, 100_000)
    x = voisin.rand_smooth_vectors(nt, d, 3)

    def clustering(lib: Any) -> Callable[[], float]:
        def run() -> float:
            clus = lib.Clustering(d, k)
            clus.niter = 10
            index = lib.IndexFlatL2(d)
            clus.train(x, index)
            st = clus.iteration_stats
            return st.at(st.size() - 1).obj
        return run
    cases.append(_case("Clustering + IndexFlatL2", {"n": nt, "d": d, "k": k, "niter": 10},
                       args.reps, args.threads, clustering(voisin), clustering(faiss),
                       quality=lambda obj: obj))

    n1, k1 = (5000, 16) if q else (65536, 256)
    x1 = rs.standard_normal((n1, 1)).astype(np.float32)

    def exact1d(lib: Any) -> Callable[[], None]:
        def run() -> None:
            lib.Clustering1D(k1).train_exact(x1)
        return run
    cases.append(_case("Clustering1D.train_exact", {"n": n1, "k": k1}, max(1, args.reps // 2),
                       1, exact1d(voisin), exact1d(faiss)))

    nb2, nq2, nlist = (20000, 2000, 64) if q else (500_000, 50_000, 1024)
    xb2 = voisin.rand_smooth_vectors(nb2, 32, 7)
    xq2 = voisin.rand_smooth_vectors(nq2, 32, 8)
    f_index = faiss.index_factory(32, f"IVF{nlist},Flat")
    f_index.train(xb2[:nlist * 40])
    f_index.add(xb2)
    f_index.nprobe = 16
    v_index = voisin.deserialize_index(faiss.serialize_index(f_index))
    v_index.nprobe = 16
    cases.append(_case("big_batch_search IVF-Flat", {"nb": nb2, "nq": nq2, "nlist": nlist,
                                                     "nprobe": 16, "k": 10},
                       max(1, args.reps // 2), args.threads, lambda: v_bbs(v_index, xq2, 10),
                       lambda: f_bbs(f_index, xq2, 10)))

    res = {"what": "FAISS's Python helpers, voisin vs faiss-cpu, alternating in one run",
           "machine": describe(), "reps": args.reps, "quick": q, "cases": cases,
           "command": "python benchmarks/faiss_python_bench.py " + " ".join(
               f"--{k} {v}" for k, v in (("reps", args.reps), ("threads", args.threads))
           ) + (" --quick" if q else "")}
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
