"""HNSW after deletions: delete 30%, re-add new points, compare with a fresh build.

Steps, on one dataset (seeded):

1. build voisin IndexHNSWFlat (M=16, efConstruction=200) over the base set
   (numba compilation is paid before, on a tiny index, and reported as ``jit_s``);
2. ``remove_ids`` of a random 30% (``compact_threshold = 1`` so the
   tombstone and repair steps are timed on their own); recall on the survivors;
3. ``add`` the new points (held-out vectors of the dataset when the base is a
   subset, else the deleted vectors again under new ids); recall on the final set;
4. ``compact()``: time, ``nbytes`` before/after; recall again (must not move);
5. a fresh index built over the same final set, same parameters; recall at the
   same efSearch values.

Optionally (``--peer hnswlib``, when installed) the same sequence on hnswlib:
``mark_deleted`` then ``add_items(..., replace_deleted=True)`` (hnswlib's way,
reusing the deleted slots; it never returns memory).

Recall@10 counts ties (``voisin.evaluate.recall_at_k``) against exact search
over the set the index holds at that point. Searches run in batch mode (all
cores): this measures graph quality, not speed.

Usage (2-core shared machine: under the lock)::

    flock /tmp/voisin-bench.lock python benchmarks/hnsw_delete_recall.py --n 100000 \\
        --out benchmarks/results/hnsw-delete-glove-50-100k.json
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
EF_SWEEP = (16, 32, 64, 128)


def recall(index_search, xq, xb, metric, ds_metric, efs) -> dict[int, float]:
    """recall@10 at each efSearch; ``index_search(xq, ef)`` returns ids into ``xb``."""
    _, gi = voisin.knn(xq, xb, K, metric)
    gd = true_distances(xq, xb, gi, ds_metric)
    return {ef: round(float(recall_at_k(index_search(xq, ef), gd, K, xq=xq, xb=xb,
                                        metric=ds_metric, gt_ids=gi)), 4) for ef in efs}


def voisin_search(index):
    def run(xq, ef):
        return index.search(xq, K, params=voisin.SearchParametersHNSW(efSearch=ef))[1]
    return run


def build(xb, metric, seed: int = 12345) -> tuple[voisin.IndexHNSWFlat, float]:
    index = voisin.IndexHNSWFlat(xb.shape[1], M, metric, seed=seed)
    index.hnsw.efConstruction = EFC
    t0 = time.perf_counter()
    index.add(xb)
    return index, time.perf_counter() - t0


def run_hnswlib(base, new, gone, xq, metric, ds_metric, efs, log) -> dict:
    import hnswlib
    n, d = base.shape
    space = "ip" if metric == voisin.METRIC_INNER_PRODUCT else "l2"
    idx = hnswlib.Index(space=space, dim=d)
    idx.init_index(max_elements=n, M=M, ef_construction=EFC, random_seed=100,
                   allow_replace_deleted=True)
    t0 = time.perf_counter()
    idx.add_items(base, np.arange(n))
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in gone:
        idx.mark_deleted(int(i))
    delete_s = time.perf_counter() - t0
    labels = np.arange(n, n + new.shape[0])
    t0 = time.perf_counter()
    idx.add_items(new, labels, replace_deleted=True)
    add_s = time.perf_counter() - t0
    keep = np.setdiff1d(np.arange(n), gone)
    final = np.concatenate([base[keep], new])
    # hnswlib labels -> rows of ``final``
    lab2row = np.full(n + new.shape[0], -1, dtype=np.int64)
    lab2row[keep] = np.arange(keep.size)
    lab2row[labels] = keep.size + np.arange(new.shape[0])

    def search(q, ef):
        idx.set_ef(ef)
        lab, _ = idx.knn_query(q, k=K)
        return lab2row[lab.astype(np.int64)]
    rec = recall(search, xq, final, metric, ds_metric, efs)
    log(f"hnswlib: build {build_s:.1f} s, mark_deleted {delete_s:.2f} s, re-add {add_s:.1f} s, "
        f"recall {rec}")
    fresh = hnswlib.Index(space=space, dim=d)
    fresh.init_index(max_elements=final.shape[0], M=M, ef_construction=EFC, random_seed=100)
    fresh.add_items(final, np.arange(final.shape[0]))

    def search_fresh(q, ef):
        fresh.set_ef(ef)
        return fresh.knn_query(q, k=K)[0].astype(np.int64)
    rec_fresh = recall(search_fresh, xq, final, metric, ds_metric, efs)
    log(f"hnswlib fresh: recall {rec_fresh}")
    return {"build_s": round(build_s, 2), "mark_deleted_s": round(delete_s, 3),
            "readd_s": round(add_s, 2), "recall_after_delete_readd": rec,
            "recall_fresh": rec_fresh,
            "recall_delta": {ef: round(rec[ef] - rec_fresh[ef], 4) for ef in efs},
            "memory_returned": False}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="glove-50-angular")
    ap.add_argument("--n", type=int, default=None, help="base size (seeded subset); default all")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--delete", type=float, default=0.3)
    ap.add_argument("--ef", type=int, nargs="+", default=list(EF_SWEEP))
    ap.add_argument("--peer", choices=["hnswlib", "none"], default="hnswlib")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fresh-seeds", type=int, default=1,
                    help="fresh builds with different level seeds (shows build-to-build spread)")
    ap.add_argument("--back-links", choices=["on", "off"], default="on",
                    help="repair adds the reverse of the links it creates (index.repair_back_links)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    t_start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:7.1f} s] {msg}", flush=True)

    ds = datasets.load(args.dataset)
    xall, xq, metric = ds.search_arrays()
    rng = np.random.default_rng(args.seed)
    qrows = datasets.query_subset(xq.shape[0], args.queries, args.seed)
    if qrows is not None:
        xq = np.ascontiguousarray(xq[qrows])
    N = xall.shape[0]
    n = N if args.n is None or args.n >= N else args.n
    ndel = int(round(args.delete * n))
    perm = rng.permutation(N)
    base = np.ascontiguousarray(xall[np.sort(perm[:n])])
    gone = np.sort(rng.choice(n, ndel, replace=False))
    if n + ndel <= N:
        new = np.ascontiguousarray(xall[np.sort(perm[n:n + ndel])])
        readd = "held-out vectors (not in the base)"
    else:
        new = base[gone].copy()
        readd = "the deleted vectors again, under new ids"
    keep = np.setdiff1d(np.arange(n), gone)
    final = np.concatenate([base[keep], new])
    log(f"{args.dataset}: base {n}, delete {ndel}, re-add {new.shape[0]} ({readd}), "
        f"{xq.shape[0]} queries, threads {voisin.omp_get_max_threads()}")

    t0 = time.perf_counter()
    warm, _ = build(base[:3000], metric)
    warm.compact_threshold = 1.0
    warm.remove_ids(np.arange(0, 3000, 3))
    warm.compact()
    warm.search(xq[:100], K)
    jit_s = time.perf_counter() - t0
    log(f"numba warm-up (compile or cache load, tiny build/remove/compact/search): {jit_s:.1f} s")

    index, build_s = build(base, metric)
    index.compact_threshold = 1.0  # compaction timed separately below
    index.repair_back_links = args.back_links == "on"
    log(f"build {build_s:.1f} s, {index.nbytes / 2**20:.1f} MiB")
    efs = args.ef
    rec_before = recall(voisin_search(index), xq, base, metric, ds.metric, efs)
    log(f"recall before delete {rec_before}")
    bytes_built = index.nbytes

    t0 = time.perf_counter()
    assert index.remove_ids(gone) == ndel
    remove_s = time.perf_counter() - t0
    timing = dict(index.last_remove_timing)
    log(f"remove_ids {remove_s:.2f} s: {timing}")
    rec_deleted = recall(voisin_search(index), xq, base[keep], metric, ds.metric, efs)
    log(f"recall after delete + repair (survivors) {rec_deleted}")

    t0 = time.perf_counter()
    index.add(new)
    add_s = time.perf_counter() - t0
    rec_readd = recall(voisin_search(index), xq, final, metric, ds.metric, efs)
    log(f"re-add {add_s:.1f} s (tombstones present); recall {rec_readd}")

    bytes_before = index.nbytes
    arrays_before = {"vectors": index._X.nbytes, "level0_links": index.hnsw._g[0].nbytes,
                     "upper_links": index.hnsw._g[1].nbytes}
    I_before = index.search(xq, K, params=voisin.SearchParametersHNSW(efSearch=efs[-1]))[1]
    t0 = time.perf_counter()
    dropped = index.compact()
    compact_s = time.perf_counter() - t0
    bytes_after = index.nbytes
    arrays_after = {"vectors": index._X.nbytes, "level0_links": index.hnsw._g[0].nbytes,
                    "upper_links": index.hnsw._g[1].nbytes}
    I_after = index.search(xq, K, params=voisin.SearchParametersHNSW(efSearch=efs[-1]))[1]
    same = bool(np.array_equal(I_before, I_after))
    rec_compact = recall(voisin_search(index), xq, final, metric, ds.metric, efs)
    log(f"compact {compact_s:.2f} s, dropped {dropped}, {bytes_before / 2**20:.1f} -> "
        f"{bytes_after / 2**20:.1f} MiB, results identical: {same}, recall {rec_compact}")

    fresh, fresh_s = build(final, metric)
    rec_fresh = recall(voisin_search(fresh), xq, final, metric, ds.metric, efs)
    fresh_nbytes = fresh.nbytes
    log(f"fresh build {fresh_s:.1f} s, recall {rec_fresh}, {fresh_nbytes / 2**20:.1f} MiB")
    delta = {ef: round(rec_compact[ef] - rec_fresh[ef], 4) for ef in efs}
    log(f"recall(delete + re-add) - recall(fresh) per efSearch: {delta}")
    del fresh
    other_fresh = []
    for s in range(1, args.fresh_seeds):
        other, _ = build(final, metric, seed=12345 + s)
        other_fresh.append(recall(voisin_search(other), xq, final, metric, ds.metric, efs))
        log(f"fresh build, level seed {12345 + s}: recall {other_fresh[-1]}")
        del other

    peer = None
    if args.peer == "hnswlib":
        try:
            import hnswlib  # noqa: F401
        except ImportError:
            log("hnswlib not installed: no peer row")
        else:
            peer = run_hnswlib(base, new, gone, xq, metric, ds.metric, efs, log)

    out = {
        "benchmark": "hnsw-delete-recall",
        "dataset": args.dataset, "metric": ds.metric, "base": n, "deleted": ndel,
        "readded": int(new.shape[0]), "readd_kind": readd, "queries": int(xq.shape[0]),
        "seed": args.seed, "k": K, "M": M, "efConstruction": EFC, "efSearch": efs,
        "search_mode": "batch (all cores)",
        "machine": machine.describe(),
        "jit_s": round(jit_s, 2),
        "voisin": {
            "build_s": round(build_s, 2),
            "recall_before_delete": rec_before,
            "remove_ids_s": round(remove_s, 3),
            "tombstone_s": round(timing["tombstone_s"], 4),
            "repair_s": round(timing["repair_s"], 3),
            "lists_repaired": timing["lists_repaired"],
            "repair_back_links": index.repair_back_links, "back_links": timing["back_links"],
            "orphans_relinked": timing["orphans_relinked"],
            "recall_after_delete_survivors": rec_deleted,
            "readd_s": round(add_s, 2),
            "recall_after_readd": rec_readd,
            "compact_s": round(compact_s, 3),
            "nbytes_built": bytes_built,
            "nbytes_before_compact": bytes_before, "nbytes_after_compact": bytes_after,
            "arrays_before_compact": arrays_before, "arrays_after_compact": arrays_after,
            "compact_results_identical": same,
            "recall_after_compact": rec_compact,
            "fresh_build_s": round(fresh_s, 2), "fresh_nbytes": fresh_nbytes,
            "recall_fresh": rec_fresh,
            "recall_fresh_other_seeds": other_fresh,
            "recall_delta_vs_fresh": delta,
            "within_0.01_of_fresh": all(v >= -0.01 for v in delta.values()),
        },
        "hnswlib": peer,
        "total_s": round(time.perf_counter() - t_start, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
