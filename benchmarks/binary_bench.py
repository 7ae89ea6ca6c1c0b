"""Binary indexes side by side: voisin vs faiss IndexBinaryFlat and IndexBinaryHNSW.

For each index: build time, batch QPS (all queries in one call), single-query
QPS (one query per call, the latency a service sees), and tie-aware recall@k
(share of results at least as close as the true k-th neighbour; Hamming
distances tie a lot). The two libraries alternate, ``--reps`` times each, at
the same thread count; numba's compile time is measured apart, on a tiny index
before anything is timed, and is not counted in any QPS.

Data: ``synthetic`` (codes around random centres, each bit flipped with
probability 0.15; queries are perturbed database codes) or an ann-benchmarks
dataset name binarised by the signs of ``d`` random projections.

    flock /tmp/voisin-bench.lock python benchmarks/binary_bench.py --nb 1000000 \\
        --d 256 --out benchmarks/results/binary-synthetic-256.json

Check that it runs (tiny sizes, result not kept):

    python benchmarks/binary_bench.py --nb 5000 --nq 50 --reps 1 --out /tmp/binary.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np


def synthetic(nb: int, nq: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ncent = max(16, nb // 1000)
    centres = rng.integers(0, 2, (ncent, d), dtype=np.uint8)
    bits = centres[rng.integers(0, ncent, nb)] ^ (rng.random((nb, d)) < 0.15).astype(np.uint8)
    xb = np.packbits(bits, axis=1, bitorder="little")
    pick = rng.integers(0, nb, nq)
    xq = xb[pick] ^ np.packbits(rng.random((nq, d)) < 0.03, axis=1, bitorder="little")
    return xb, xq


def from_dataset(name: str, nb: int, nq: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from voisin.datasets import load
    ds = load(name)
    rng = np.random.default_rng(seed)
    proj = rng.standard_normal((ds.train.shape[1], d)).astype(np.float32)
    mean = ds.train[:10000].mean(axis=0)

    def binarise(x: np.ndarray) -> np.ndarray:
        return np.packbits((np.asarray(x, np.float32) - mean) @ proj > 0, axis=1,
                           bitorder="little")

    return binarise(ds.train[:nb]), binarise(ds.test[:nq])


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def single_qps(index, xq: np.ndarray, k: int) -> float:
    t = time.perf_counter()
    for i in range(xq.shape[0]):
        index.search(xq[i:i + 1], k)
    return xq.shape[0] / (time.perf_counter() - t)


def recall(D: np.ndarray, Dgt: np.ndarray) -> float:
    return float((D <= Dgt[:, -1:]).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="synthetic", help="'synthetic' or a dataset name")
    ap.add_argument("--nb", type=int, default=200_000)
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--nq-single", type=int, default=300, help="queries for single-query QPS")
    ap.add_argument("--d", type=int, default=256, help="bits per code (multiple of 8)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--M", type=int, default=16)
    ap.add_argument("--efc", type=int, default=40)
    ap.add_argument("--ef", type=int, nargs="+", default=[16, 32, 64, 128])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None,
                    help="JSON file (default benchmarks/results/binary-<data>-<d>.json)")
    args = ap.parse_args()

    import faiss
    import numba

    import voisin

    numba.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)

    # numba compile / cache load, apart from everything else
    tiny = np.zeros((64, args.d // 8), np.uint8)
    t = time.perf_counter()
    warm = voisin.IndexBinaryFlat(args.d)
    warm.add(tiny)
    warm.search(tiny[:1], 1)
    warm.search(tiny, 1)
    compile_flat = time.perf_counter() - t
    t = time.perf_counter()
    warm = voisin.IndexBinaryHNSW(args.d, args.M)
    warm.add(tiny)
    warm.search(tiny[:1], 1)
    warm.search(tiny, 1)
    compile_hnsw = time.perf_counter() - t

    if args.data == "synthetic":
        xb, xq = synthetic(args.nb, args.nq, args.d, args.seed)
    else:
        xb, xq = from_dataset(args.data, args.nb, args.nq, args.d, args.seed)
    k = args.k
    xs = xq[:args.nq_single]
    libs = {"voisin": voisin, "faiss": faiss}
    rows = []

    # --- flat: exact, the ground truth (checked equal between the two) -------------------
    flats = {}
    for name, lib in libs.items():
        index = lib.IndexBinaryFlat(args.d)
        build, _ = timed(index.add, xb)
        flats[name] = (index, build)
    Dgt, _ = flats["faiss"][0].search(xq, k)
    batch = {n: [] for n in libs}
    single = {n: [] for n in libs}
    for _ in range(args.reps):
        for name in libs:
            index = flats[name][0]
            dt, (D, _) = timed(index.search, xq, k)
            batch[name].append(xq.shape[0] / dt)
            single[name].append(single_qps(index, xs, k))
    for name in libs:
        D, _ = flats[name][0].search(xq, k)
        rows.append({"lib": name, "index": "IndexBinaryFlat", "build_s": flats[name][1],
                     "batch_qps": max(batch[name]), "single_qps": max(single[name]),
                     "recall": recall(D, Dgt), "exact_match": bool(np.array_equal(D, Dgt))})

    # --- HNSW ---------------------------------------------------------------------------
    graphs = {}
    for name, lib in libs.items():
        index = lib.IndexBinaryHNSW(args.d, args.M)
        index.hnsw.efConstruction = args.efc
        build, _ = timed(index.add, xb)
        graphs[name] = (index, build)
    for ef in args.ef:
        batch = {n: [] for n in libs}
        single = {n: [] for n in libs}
        for _ in range(args.reps):
            for name in libs:
                index = graphs[name][0]
                index.hnsw.efSearch = ef
                dt, _ = timed(index.search, xq, k)
                batch[name].append(xq.shape[0] / dt)
                single[name].append(single_qps(index, xs, k))
        for name in libs:
            index = graphs[name][0]
            index.hnsw.efSearch = ef
            D, _ = index.search(xq, k)
            rows.append({"lib": name, "index": "IndexBinaryHNSW", "M": args.M,
                         "efConstruction": args.efc, "efSearch": ef,
                         "build_s": graphs[name][1], "batch_qps": max(batch[name]),
                         "single_qps": max(single[name]), "recall": recall(D, Dgt)})

    print(f"{'index':<18}{'lib':<8}{'ef':>5}{'recall':>8}{'batch qps':>12}{'single qps':>12}"
          f"{'build s':>9}")
    for r in rows:
        print(f"{r['index']:<18}{r['lib']:<8}{r.get('efSearch', ''):>5}{r['recall']:>8.3f}"
              f"{r['batch_qps']:>12.0f}{r['single_qps']:>12.0f}{r['build_s']:>9.2f}")
    print(f"numba compile (or cache load): flat {compile_flat:.2f} s, hnsw {compile_hnsw:.2f} s")

    result = {
        "benchmark": "binary", "data": args.data, "nb": int(xb.shape[0]), "nq": int(xq.shape[0]),
        "nq_single": int(xs.shape[0]), "d_bits": args.d, "k": k, "reps": args.reps,
        "threads": args.threads, "faiss_version": faiss.__version__,
        "voisin_version": voisin.__version__, "machine": platform.processor() or platform.machine(),
        "compile_s": {"flat": compile_flat, "hnsw": compile_hnsw},
        "recall_definition": "share of results at least as close as the true k-th neighbour",
        "rows": rows,
    }
    out = args.out or os.path.join(os.path.dirname(__file__), "results",
                                   f"binary-{args.data}-{args.d}.json")
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
