"""Filtered k-NN search at 0.1%, 1%, 10% and 50% selectivity, side by side in one run.

Indexes (built once per dataset, cached under --cache, never in the repo):

* voisin IndexHNSWFlat (M=16, efConstruction=200) at the efSearch that gives
  recall@10 ~0.95 unfiltered (smallest of a sweep reaching it);
* voisin IndexIVFFlat (nlist ~ 4 sqrt(n)) at the nprobe that gives ~0.95 unfiltered;
* faiss IndexHNSWFlat (M=16, efConstruction=200, efSearch=64) with an IDSelectorBatch;
* faiss IndexIVFFlat (same nlist, the nprobe giving ~0.95 unfiltered) with an IDSelectorBatch;
* hnswlib (M=16, efConstruction=200, ef=64) with its ``filter=`` callable (a
  Python function called per candidate: measured as such).

Filters: seeded random ``IDSelectorBatch`` subsets of the base. Ground truth:
exact search over the allowed subset; recall@10 counts ties
(``voisin.evaluate.recall_at_k``). Both modes of docs/benchmarking.md:
``single`` (one query per call, every library on one thread; one
SearchParameters object reused across calls, as a service would) and
``batch`` (all queries in one call, all cores). For voisin IVF-Flat, single mode
is also measured with a new selector built for every call
(``voisin-ivf-flat/fresh-sel``): voisin caches a resolved filter per
(selector, index snapshot), so this row shows the cost without that cache.

hnswlib's runs stop after BUDGET_S seconds per (selectivity, mode): its
Python filter makes low-selectivity searches take seconds per query (and its
threads contend for the GIL in batch mode); its QPS and recall then cover the
queries that ran (``queries_run`` in the JSON, "(n q)" in the table).

The first filtered call of each voisin index is timed separately
(``warmup_s``: numba compilation on a cold cache + the plan), never inside QPS.

Usage (2-core shared machine: always under the lock, one dataset per run)::

    flock /tmp/voisin-bench.lock python benchmarks/filtered_search.py --dataset glove-50-angular \\
        --n 100000 --out benchmarks/results/filtered-glove-50-angular.json
    flock /tmp/voisin-bench.lock python benchmarks/filtered_search.py \\
        --dataset fashion-mnist-784-euclidean --out benchmarks/results/filtered-fashion-mnist-784.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np

import voisin
from voisin import datasets
from voisin.bench import machine
from voisin.bench.threads import available_cores, thread_limit
from voisin.evaluate import recall_at_k, true_distances

K = 10
SELECTIVITIES = (0.001, 0.01, 0.1, 0.5)
HNSW_M, HNSW_EFC, PEER_EF = 16, 200, 64
EF_SWEEP = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
NPROBE_SWEEP = (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)
TARGET = 0.95
# hnswlib's filter is a Python call per visited candidate: at low selectivity
# it visits most of the graph, so its runs stop after this many seconds
# (QPS and recall then cover the queries that ran; the JSON says how many)
BUDGET_S = 15.0
BUDGET_BLOCK = 20


def load(name: str, n: int | None, nq: int, seed: int):
    ds = datasets.load(name)
    xb, xq, metric = ds.search_arrays()
    if n is not None and n < xb.shape[0]:
        rows = np.sort(np.random.default_rng(seed).choice(xb.shape[0], n, replace=False))
        xb = np.ascontiguousarray(xb[rows])
    qrows = datasets.query_subset(xq.shape[0], nq, seed)
    if qrows is not None:
        xq = np.ascontiguousarray(xq[qrows])
    return xb, xq, metric, ds.metric


def ground_truth(xb, xq, metric, ds_metric, allowed):
    _, Is = voisin.knn(xq, xb[allowed], K, metric)
    gi = np.where(Is >= 0, allowed[np.maximum(Is, 0)], -1)
    return gi, true_distances(xq, xb, gi, ds_metric)


def recall(I, gt, xb, xq, ds_metric):
    gi, gd = gt
    return recall_at_k(I, gd, K, xq=xq, xb=xb, metric=ds_metric, gt_ids=gi)


# --- building (cached) -----------------------------------------------------------

def build_all(xb, metric, cache: Path, log) -> dict:
    import faiss
    import hnswlib
    cache.mkdir(parents=True, exist_ok=True)
    n, d = xb.shape
    nlist = int(round(4 * math.sqrt(n)))
    out, build = {}, {}
    fmetric = faiss.METRIC_INNER_PRODUCT if metric == voisin.METRIC_INNER_PRODUCT else faiss.METRIC_L2

    def cached(name, make, read, write):
        path = cache / name
        if path.exists():
            return read(str(path)), None
        t0 = time.perf_counter()
        idx = make()
        dt = time.perf_counter() - t0
        write(idx, str(path))
        log(f"built {name} in {dt:.1f} s")
        return idx, dt

    def v_hnsw():
        idx = voisin.IndexHNSWFlat(d, HNSW_M, metric)
        idx.hnsw.efConstruction = HNSW_EFC
        idx.add(xb)
        return idx

    def v_ivf():
        idx = voisin.IndexIVFFlat(voisin.IndexFlat(d, metric), d, nlist, metric)
        idx.train(xb)
        idx.add(xb)
        return idx

    def f_hnsw():
        idx = faiss.IndexHNSWFlat(d, HNSW_M, fmetric)
        idx.hnsw.efConstruction = HNSW_EFC
        idx.add(xb)
        return idx

    def f_ivf():
        idx = faiss.IndexIVFFlat(faiss.IndexFlat(d, fmetric), d, nlist, fmetric)
        idx.train(xb)
        idx.add(xb)
        return idx

    def h_build():
        idx = hnswlib.Index(space="ip" if metric == voisin.METRIC_INNER_PRODUCT else "l2", dim=d)
        idx.init_index(max_elements=n, M=HNSW_M, ef_construction=HNSW_EFC, random_seed=100)
        idx.add_items(xb, np.arange(n), num_threads=available_cores())
        return idx

    def h_read(path):
        idx = hnswlib.Index(space="ip" if metric == voisin.METRIC_INNER_PRODUCT else "l2", dim=d)
        idx.load_index(path, max_elements=n)
        return idx

    with thread_limit(available_cores()):
        out["voisin-hnsw"], build["voisin-hnsw"] = cached("voisin-hnsw.index", v_hnsw, voisin.read_index,
                                                          voisin.write_index)
        out["voisin-ivf-flat"], build["voisin-ivf-flat"] = cached("voisin-ivf.index", v_ivf, voisin.read_index,
                                                                  voisin.write_index)
        out["faiss-hnsw"], build["faiss-hnsw"] = cached("faiss-hnsw.index", f_hnsw, faiss.read_index,
                                                        faiss.write_index)
        out["faiss-ivf-flat"], build["faiss-ivf-flat"] = cached("faiss-ivf.index", f_ivf, faiss.read_index,
                                                                faiss.write_index)
        out["hnswlib"], build["hnswlib"] = cached("hnswlib.bin", h_build, h_read,
                                                  lambda idx, p: idx.save_index(p))
    return {"indexes": out, "build_s": build, "nlist": nlist}


# --- searching ---------------------------------------------------------------------

class Runner:
    """One library's filtered search: ``params(allowed)`` makes the per-run
    state, ``search(xq, state, threads)`` returns ids."""

    def __init__(self, name, params, search):
        self.name, self.params, self.search = name, params, search


def runners(built, knobs, n):
    import faiss
    idx = built["indexes"]

    def v_hnsw_params(allowed):
        return voisin.SearchParametersHNSW(efSearch=knobs["voisin-hnsw"], sel=voisin.IDSelectorBatch(allowed))

    def v_ivf_params(allowed):
        return voisin.SearchParametersIVF(nprobe=knobs["voisin-ivf-flat"], sel=voisin.IDSelectorBatch(allowed))

    def v_search(index):
        return lambda xq, p, threads: index.search(xq, K, params=p)[1]

    def fresh_sel(xq, allowed, threads):
        # a new selector per call: the filter plan is rebuilt every time
        p = voisin.SearchParametersIVF(nprobe=knobs["voisin-ivf-flat"], sel=voisin.IDSelectorBatch(allowed))
        return idx["voisin-ivf-flat"].search(xq, K, params=p)[1]

    def f_hnsw_params(allowed):
        sel = faiss.IDSelectorBatch(allowed)
        p = faiss.SearchParametersHNSW(sel=sel, efSearch=PEER_EF)
        return (p, sel)  # the selector must outlive the parameters

    def f_ivf_params(allowed):
        sel = faiss.IDSelectorBatch(allowed)
        p = faiss.SearchParametersIVF(sel=sel, nprobe=knobs["faiss-ivf-flat"])
        return (p, sel)

    def f_search(index):
        return lambda xq, p, threads: index.search(xq, K, params=p[0])[1]

    def h_params(allowed):
        mask = np.zeros(n, dtype=bool)
        mask[allowed] = True
        return lambda label: bool(mask[label])

    def h_search(xq, fn, threads):
        idx["hnswlib"].set_ef(PEER_EF)
        return idx["hnswlib"].knn_query(xq, k=K, num_threads=threads, filter=fn)[0].astype(np.int64)

    return [
        Runner("voisin-hnsw", v_hnsw_params, v_search(idx["voisin-hnsw"])),
        Runner("voisin-ivf-flat", v_ivf_params, v_search(idx["voisin-ivf-flat"])),
        Runner("voisin-ivf-flat/fresh-sel", lambda allowed: allowed, fresh_sel),
        Runner("faiss-hnsw", f_hnsw_params, f_search(idx["faiss-hnsw"])),
        Runner("faiss-ivf-flat", f_ivf_params, f_search(idx["faiss-ivf-flat"])),
        Runner("hnswlib", h_params, h_search),
    ]


def run_mode(r: Runner, xq, state, mode: str, budget_s: float = float("inf")):
    """(ids (done, K) with -1 padding, seconds, done): the queries run in order
    until all are done or ``budget_s`` is spent (hnswlib's Python filter at
    low selectivity would otherwise take hours); batch mode then goes by
    blocks of BUDGET_BLOCK queries."""
    nq = xq.shape[0]
    if mode == "batch":
        threads = available_cores()
        with thread_limit(threads):
            if not math.isfinite(budget_s):
                t0 = time.perf_counter()
                I = _pad(r.search(xq, state, threads))
                return I, time.perf_counter() - t0, nq
            parts, t0 = [], time.perf_counter()
            for q0 in range(0, nq, BUDGET_BLOCK):
                parts.append(_pad(r.search(xq[q0:q0 + BUDGET_BLOCK], state, threads)))
                if time.perf_counter() - t0 > budget_s:
                    break
            I = np.vstack(parts)
            return I, time.perf_counter() - t0, I.shape[0]
    I = np.full((nq, K), -1, dtype=np.int64)
    with thread_limit(1):
        t0 = time.perf_counter()
        done = nq
        for i in range(nq):
            row = _pad(r.search(xq[i:i + 1], state, 1))
            I[i] = row[0]
            if time.perf_counter() - t0 > budget_s:
                done = i + 1
                break
        return I[:done], time.perf_counter() - t0, done


def _pad(I):
    I = np.asarray(I, dtype=np.int64)
    if I.shape[1] < K:
        I = np.pad(I, ((0, 0), (0, K - I.shape[1])), constant_values=-1)
    return I


# --- tuning the voisin / faiss IVF knobs to ~0.95 unfiltered ---------------------------

def tune(built, xb, xq, ds_metric, gt_all, log) -> tuple[dict, dict]:
    import faiss
    idx = built["indexes"]
    sweeps = {}
    knobs = {}
    threads = available_cores()

    def sweep(name, values, search):
        pts = []
        for v in values:
            with thread_limit(threads):
                I = search(v)
            rec = recall(I, gt_all, xb, xq, ds_metric)
            pts.append({"value": v, "recall": rec})
            if rec >= TARGET:
                break
        sweeps[name] = pts
        knobs[name] = pts[-1]["value"]
        log(f"{name}: knob {knobs[name]} -> unfiltered recall {pts[-1]['recall']:.3f}")

    sweep("voisin-hnsw", EF_SWEEP,
          lambda v: idx["voisin-hnsw"].search(xq, K, params=voisin.SearchParametersHNSW(efSearch=v))[1])
    sweep("voisin-ivf-flat", NPROBE_SWEEP,
          lambda v: idx["voisin-ivf-flat"].search(xq, K, params=voisin.SearchParametersIVF(nprobe=v))[1])
    sweep("faiss-ivf-flat", NPROBE_SWEEP,
          lambda v: idx["faiss-ivf-flat"].search(xq, K, params=faiss.SearchParametersIVF(nprobe=v))[1])
    # the peers' HNSW ef is fixed by the comparison (efSearch=64): record its unfiltered recall
    idx["faiss-hnsw"].hnsw.efSearch = PEER_EF
    with thread_limit(threads):
        If = idx["faiss-hnsw"].search(xq, K)[1]
        idx["hnswlib"].set_ef(PEER_EF)
        Ih = idx["hnswlib"].knn_query(xq, k=K, num_threads=threads)[0].astype(np.int64)
    sweeps["faiss-hnsw"] = [{"value": PEER_EF, "recall": recall(If, gt_all, xb, xq, ds_metric)}]
    sweeps["hnswlib"] = [{"value": PEER_EF, "recall": recall(Ih, gt_all, xb, xq, ds_metric)}]
    knobs["faiss-hnsw"] = knobs["hnswlib"] = PEER_EF
    knobs["voisin-ivf-flat/fresh-sel"] = knobs["voisin-ivf-flat"]
    return knobs, sweeps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--n", type=int, default=None, help="seeded random subset of the base vectors")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--selectivities", default=",".join(map(str, SELECTIVITIES)))
    ap.add_argument("--modes", default="single,batch")
    ap.add_argument("--only", default=None, help="comma-separated runner names (default: all)")
    ap.add_argument("--cache", default="/tmp/voisin-filtered-cache")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    t_start = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - t_start:7.1f}s] {msg}", flush=True)

    xb, xq, metric, ds_metric = load(args.dataset, args.n, args.queries, args.seed)
    n = xb.shape[0]
    log(f"{args.dataset}: base {xb.shape}, {xq.shape[0]} queries")
    built = build_all(xb, metric, Path(args.cache) / f"{args.dataset}-{n}-{args.seed}", log)
    gt_all = ground_truth(xb, xq, metric, ds_metric, np.arange(n))
    knobs, sweeps = tune(built, xb, xq, ds_metric, gt_all, log)
    modes = args.modes.split(",")
    sels = [float(s) for s in args.selectivities.split(",")]
    rs = runners(built, knobs, n)
    if args.only:
        keep = set(args.only.split(","))
        rs = [r for r in rs if r.name in keep]
    # the first filtered call of each voisin index (numba compilation on a cold cache)
    warm_allowed = np.arange(0, n, 7, dtype=np.int64)
    warmup = {}
    for r in rs:
        if r.name.startswith("voisin"):
            for mode in modes:
                t0 = time.perf_counter()
                run_mode(r, xq[:2], r.params(warm_allowed), mode)[0]
                warmup[f"{r.name}/{mode}"] = time.perf_counter() - t0
    results = []
    rng = np.random.default_rng(args.seed + 1)
    for s in sels:
        m = max(1, int(round(s * n)))
        allowed = np.sort(rng.choice(n, m, replace=False)).astype(np.int64)
        gt = ground_truth(xb, xq, metric, ds_metric, allowed)
        need = min(K, m)
        for r in rs:
            state = r.params(allowed)
            for mode in modes:
                if r.name.endswith("fresh-sel") and mode == "batch":
                    continue  # one call per batch: the same as the cached row
                budget = BUDGET_S if r.name == "hnswlib" else float("inf")
                I, dt, done = run_mode(r, xq, state, mode, budget)
                valid = I[I >= 0]
                row = {
                    "index": r.name, "selectivity": s, "allowed": m, "mode": mode, "knob": knobs[r.name],
                    "recall": recall(I, (gt[0][:done], gt[1][:done]), xb, xq[:done], ds_metric),
                    "qps": done / dt, "seconds": dt, "queries_run": done,
                    "full_fraction": float(np.mean((I >= 0).sum(axis=1) >= need)),
                    "outside_filter": int(np.count_nonzero(~np.isin(valid, allowed))),
                }
                results.append(row)
                log(f"s={s:<6} {r.name:26s} {mode:6s} recall {row['recall']:.3f} QPS {row['qps']:9.0f} "
                    f"full {row['full_fraction']:.3f}" + (f" ({done} queries)" if done < xq.shape[0] else ""))
    report = {
        "benchmark": "filtered_search",
        "dataset": args.dataset, "n": n, "d": int(xb.shape[1]), "queries": int(xq.shape[0]),
        "seed": args.seed, "k": K, "metric": ds_metric,
        "machine": machine.describe(),
        "build": {"nlist": built["nlist"], "hnsw_M": HNSW_M, "efConstruction": HNSW_EFC,
                  "build_s": built["build_s"]},
        "knobs": knobs, "unfiltered_sweeps": sweeps, "warmup_s": warmup,
        "results": results, "total_s": time.perf_counter() - t_start,
    }
    print(table(report))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
        log(f"wrote {args.out}")


def table(report: dict) -> str:
    """Markdown: one row per (index, mode), recall / QPS per selectivity."""
    sels = sorted({r["selectivity"] for r in report["results"]})
    head = "| index | mode | " + " | ".join(f"{s:g}: recall / QPS / full" for s in sels) + " |"
    lines = [head, "|" + "---|" * (2 + len(sels))]
    keys = []
    for r in report["results"]:
        if (r["index"], r["mode"]) not in keys:
            keys.append((r["index"], r["mode"]))
    for name, mode in keys:
        cells = []
        for s in sels:
            row = next((r for r in report["results"] if r["index"] == name and r["mode"] == mode
                        and r["selectivity"] == s), None)
            cells.append("-" if row is None else
                         f"{row['recall']:.3f} / {row['qps']:,.0f} / {row['full_fraction']:.2f}"
                         + ("" if row["queries_run"] == report["queries"] else f" ({row['queries_run']} q)"))
        lines.append(f"| {name} ({report['knobs'][name]}) | {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    main()
