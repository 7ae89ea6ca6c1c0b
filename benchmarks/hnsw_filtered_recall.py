"""Filtered search on voisin's HNSW: recall@10 and result counts per selectivity.

For one dataset: build IndexHNSWFlat (M=16, efConstruction=200; cached under
--cache as a voisin file, never in the repo), pick the smallest efSearch of a
sweep whose unfiltered recall@10 reaches 0.95, then search with filters of
selectivity 0.1%, 1%, 10%, 50% (and any given with --sel), two kinds each:

* ``random``: a seeded random subset of ids (``IDSelectorBatch``);
* ``range``: a contiguous id range at a seeded random offset (``IDSelectorRange``).

For each: recall@10 (ties counted, ``voisin.evaluate.recall_at_k``, against
exact search over the allowed ids), the share of queries that got fewer than k
results although >= k ids were allowed (must be 0), the plan voisin chose
(``index.filter_plan``: exact scan of the allowed vectors, or a filtered
traversal and its efSearch), and batch QPS. With ``--traversal-only`` the same
grid is also run with the exact path disabled, to show what the traversal
alone reaches.

Usage (under the lock)::

    flock /tmp/voisin-bench.lock python benchmarks/hnsw_filtered_recall.py \\
        --dataset fashion-mnist-784-euclidean --out benchmarks/results/hnsw-filtered-fashion-mnist-784.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import voisin
from voisin import datasets
from voisin.bench import machine
from voisin.evaluate import recall_at_k, true_distances

K = 10
M, EFC = 16, 200
EF_SWEEP = (10, 12, 16, 20, 24, 32, 48, 64, 96, 128, 192, 256)
SELECTIVITIES = (0.001, 0.01, 0.1, 0.5)
TARGET = 0.95


def gt_for(xq, xb, metric, ds_metric, allowed):
    _, Is = voisin.knn(xq, xb[allowed], K, metric)
    gi = np.where(Is >= 0, allowed[np.maximum(Is, 0)], -1)
    return gi, true_distances(xq, xb, gi, ds_metric)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="fashion-mnist-784-euclidean")
    ap.add_argument("--n", type=int, default=None, help="base size (seeded subset); default all")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--sel", type=float, nargs="*", default=list(SELECTIVITIES))
    ap.add_argument("--traversal-only", action="store_true")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/voisin-hnsw-filter-cache"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    t_start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:7.1f} s] {msg}", flush=True)

    ds = datasets.load(args.dataset)
    xb, xq, metric = ds.search_arrays()
    if args.n is not None and args.n < xb.shape[0]:
        rows = np.sort(np.random.default_rng(args.seed).choice(xb.shape[0], args.n, replace=False))
        xb = np.ascontiguousarray(xb[rows])
    qrows = datasets.query_subset(xq.shape[0], args.queries, args.seed)
    if qrows is not None:
        xq = np.ascontiguousarray(xq[qrows])
    n = xb.shape[0]
    args.cache.mkdir(parents=True, exist_ok=True)
    path = args.cache / f"hnsw16-efc200-{args.dataset}-{n}-{args.seed}.voisin"
    build_s = None
    if path.exists():
        index = voisin.read_index(path)
        log(f"loaded {path}")
    else:
        index = voisin.IndexHNSWFlat(xb.shape[1], M, metric)
        index.hnsw.efConstruction = EFC
        t0 = time.perf_counter()
        index.add(xb)
        build_s = time.perf_counter() - t0
        voisin.write_index(index, path, layout="voisin")
        log(f"built in {build_s:.1f} s")

    all_ids = np.arange(n)
    gt_all = gt_for(xq, xb, metric, ds.metric, all_ids)
    sweep = {}
    ef0 = EF_SWEEP[-1]
    for ef in EF_SWEEP:
        I = index.search(xq, K, params=voisin.SearchParametersHNSW(efSearch=ef))[1]
        r = float(recall_at_k(I, gt_all[1], K, xq=xq, xb=xb, metric=ds.metric, gt_ids=gt_all[0]))
        sweep[ef] = round(r, 4)
        if r >= TARGET:
            ef0 = ef
            break
    log(f"unfiltered sweep {sweep}: efSearch {ef0}")

    rng = np.random.default_rng(args.seed + 1)
    rows = []
    modes = [False, True] if args.traversal_only else [False]
    import voisin.indexes.hnsw as H
    for sel_frac in args.sel:
        m = max(1, int(round(sel_frac * n)))
        for kind in ("random", "range"):
            if kind == "random":
                allowed = np.sort(rng.choice(n, m, replace=False))
                sel = voisin.IDSelectorBatch(allowed)
            else:
                lo = int(rng.integers(0, n - m + 1))
                allowed = np.arange(lo, lo + m)
                sel = voisin.IDSelectorRange(lo, lo + m)
            gi, gd = gt_for(xq, xb, metric, ds.metric, allowed)
            for forced in modes:
                saved = H.FILTER_EXACT_FACTOR
                if forced:
                    H.FILTER_EXACT_FACTOR = 0.0
                try:
                    plan = index.filter_plan(m, ef0)
                    params = voisin.SearchParametersHNSW(efSearch=ef0, sel=sel)
                    index.search(xq[:5], K, params=params)  # warm-up (compile, scratch)
                    t0 = time.perf_counter()
                    D, I = index.search(xq, K, params=params)
                    dt = time.perf_counter() - t0
                finally:
                    H.FILTER_EXACT_FACTOR = saved
                rec = float(recall_at_k(I, gd, K, xq=xq, xb=xb, metric=ds.metric, gt_ids=gi))
                short = float(((I >= 0).sum(1) < min(K, m)).mean())
                leak = int((~np.isin(I[I >= 0], allowed)).sum())
                row = {"selectivity": sel_frac, "allowed": m, "filter": kind,
                       "exact_path_disabled": forced, "plan": plan[0], "plan_efSearch": plan[1],
                       "recall@10": round(rec, 4), "short_result_share": short,
                       "ids_outside_filter": leak, "qps_batch": round(xq.shape[0] / dt, 1)}
                rows.append(row)
                log(json.dumps(row))

    out = {"benchmark": "hnsw-filtered-recall", "dataset": args.dataset, "metric": ds.metric,
           "n": n, "queries": int(xq.shape[0]), "k": K, "M": M, "efConstruction": EFC,
           "build_s": None if build_s is None else round(build_s, 1),
           "unfiltered_sweep": sweep, "efSearch": ef0, "search_mode": "batch (all cores)",
           "filter_exact_factor": H.FILTER_EXACT_FACTOR, "rows": rows,
           "all_recall_at_least_0.95": all(r["recall@10"] >= 0.95 for r in rows
                                           if not r["exact_path_disabled"]),
           "machine": machine.describe(), "total_s": round(time.perf_counter() - t_start, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
