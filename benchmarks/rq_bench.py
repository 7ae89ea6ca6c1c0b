"""Additive quantizers side by side: voisin vs faiss on the same factory strings.

For each description (``RQ8x8``, ``RQ8x8_Nqint8``, ``IVF1024,RQ8x8_Nqint8``,
``LSQ8x8``, ``PRQ2x4x8``, ``IVF1024,PLSQ2x4x8``, ...)
both libraries train on the same training rows with the same settings
(``--train-type``, beam size 5, k-means niter of FAISS's default), then each
reports train time, add (encode) time, reconstruction MSE, batch QPS (all
queries in one call), single-query QPS and recall@k against the dataset's
ground truth. The two libraries alternate, ``--reps`` times each, at the same
thread count; numba's compile time is paid on a tiny index first and not
counted.

    flock /tmp/voisin-bench.lock python benchmarks/rq_bench.py --data sift-128-euclidean \\
        --nb 200000 --out benchmarks/results/rq-sift-128.json

Check that it runs (tiny sizes, result not kept):

    python benchmarks/rq_bench.py --data synthetic --nb 3000 --nq 20 --ntrain 2000 \\
        --descs RQ4x6,IVF16,RQ4x6_Nqint8 --reps 1 --out /tmp/rq.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np


def load_data(name: str, nb: int, nq: int, ntrain: int, seed: int):
    if name == "synthetic":
        rng = np.random.default_rng(seed)
        d = 32
        centres = rng.normal(size=(100, d)).astype(np.float32) * 3
        x = (centres[rng.integers(0, 100, nb + nq)] + rng.normal(size=(nb + nq, d))).astype(np.float32)
        xb, xq = x[:nb], x[nb:]
        gt = None
    else:
        from voisin.datasets import load
        ds = load(name)
        xb = np.ascontiguousarray(ds.train[:nb], dtype=np.float32)
        xq = np.ascontiguousarray(ds.test[:nq], dtype=np.float32)
        gt = None
    import voisin
    gt = voisin.knn(xq, xb, 100)[1] if gt is None else gt
    return xb, xq, xb[:ntrain], gt


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def recall_at(I: np.ndarray, gt: np.ndarray, k: int) -> float:
    return float(np.mean([len(set(a[:k]) & set(b[:k])) / k for a, b in zip(I, gt)]))


def build(lib, desc: str, d: int, xt: np.ndarray, xb: np.ndarray, train_type: int, nprobe: int):
    owner = lib.index_factory(d, desc)
    index = lib.downcast_index(owner) if lib.__name__ == "faiss" else owner
    if hasattr(index, "rq"):  # LSQ / PRQ / PLSQ keep their defaults
        index.rq.train_type = train_type
    t_train, _ = timed(index.train, xt)
    t_add, _ = timed(index.add, xb)
    if hasattr(index, "nprobe"):
        index.nprobe = nprobe
    return owner, index, t_train, t_add


def single_qps(index, xq: np.ndarray, k: int) -> float:
    t = time.perf_counter()
    for i in range(xq.shape[0]):
        index.search(xq[i:i + 1], k)
    return xq.shape[0] / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="synthetic", help="'synthetic' or a dataset name")
    ap.add_argument("--nb", type=int, default=100_000)
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--nq-single", type=int, default=200)
    ap.add_argument("--ntrain", type=int, default=50_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--nprobe", type=int, default=16)
    ap.add_argument("--train-type", type=int, default=0,
                    help="ResidualQuantizer.train_type for both (0 = plain k-means, 1 = progressive dim)")
    ap.add_argument("--descs", default="RQ8x8,RQ8x8_Nqint8,IVF1024,RQ8x8_Nqint8",
                    help="comma-separated; an IVF description takes the next item as its codec")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import faiss
    import voisin

    parts = args.descs.split(",")
    descs = []
    while parts:
        p = parts.pop(0)
        descs.append(p + "," + parts.pop(0) if p.startswith("IVF") else p)
    xb, xq, xt, gt = load_data(args.data, args.nb, args.nq, args.ntrain, args.seed)
    d = xb.shape[1]
    # numba compiles on a tiny index before anything is timed
    warm = voisin.index_factory(8, "RQ2x4")
    warm.rq.train_type = 0
    warm.train(np.random.default_rng(0).random((500, 8), dtype=np.float32))
    warm.add(np.random.default_rng(1).random((50, 8), dtype=np.float32))
    warm.search(np.random.default_rng(2).random((3, 8), dtype=np.float32), 2)

    results = []
    for desc in descs:
        row = {"desc": desc}
        for lib in (faiss, voisin):
            # the factory's object owns faiss's C++ index: keep it alive with its downcast
            owner, index, t_train, t_add = build(lib, desc, d, xt, xb, args.train_type, args.nprobe)
            rec = index.reconstruct_n(0, min(5000, xb.shape[0]))
            mse = float(((rec - xb[:rec.shape[0]]) ** 2).sum(1).mean())
            index.search(xq[:2], args.k)
            batch = []
            single = []
            for _ in range(args.reps):
                t, (D, I) = timed(index.search, xq, args.k)
                batch.append(xq.shape[0] / t)
                single.append(single_qps(index, xq[:args.nq_single], args.k))
            del owner
            row[lib.__name__] = {
                "train_s": t_train, "add_s": t_add, "mse": mse,
                "recall_at_k": recall_at(I, gt, args.k),
                "batch_qps": max(batch), "single_qps": max(single),
                "code_size": int(index.code_size),
            }
        row["batch_speedup"] = row["voisin"]["batch_qps"] / row["faiss"]["batch_qps"]
        row["single_speedup"] = row["voisin"]["single_qps"] / row["faiss"]["single_qps"]
        print(json.dumps(row))
        results.append(row)
    meta = {"data": args.data, "nb": int(xb.shape[0]), "nq": int(xq.shape[0]), "d": int(d),
            "k": args.k, "nprobe": args.nprobe, "train_type": args.train_type,
            "ntrain": int(xt.shape[0]), "threads": os.cpu_count(), "machine": platform.machine(),
            "faiss": faiss.__version__, "voisin": voisin.__version__}
    with open(args.out, "w") as fh:
        json.dump({"meta": meta, "results": results}, fh, indent=1)


if __name__ == "__main__":
    main()
