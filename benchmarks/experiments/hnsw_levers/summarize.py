"""Merge a lever run, a combination run and the compile times into one results file + tables.

    python benchmarks/experiments/hnsw_levers/summarize.py glove-50-angular \
        /tmp/hnsw_levers/levers-glove.json /tmp/hnsw_levers/combo-glove.json \
        /tmp/hnsw_levers/compile.json benchmarks/results/hnsw-levers-glove-50-angular.json \
        [interleave=/tmp/hnsw_levers/inter-glove.json] [final=/tmp/hnsw_levers/final-glove.json]

``interleave=`` adds a lever-style run (kernel loop vs the reference), ``final=``
a peer-style run (one Python call per query), each as its own section.

Prints markdown tables (used in docs/hnsw-levers.md). Ratios are only ever
taken between entries of the same run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REF = "ref (split, uint32 epoch, pf 4 lines)"
PEERS = ("voisin index.search", "hnswlib M=16 efC=200", "faiss HNSW32 efC=200")
OTHER_PEERS = PEERS[1:] + ("pynndescent n_neighbors=30",)


def qps(run, name, mode, t):
    m = run["entries"].get(name, {}).get("modes", {}).get(mode)
    return m.get(f"qps_at_{t}") if m else None


def spread(run, name, mode, t):
    """Relative min-max spread (over rounds) of the frontier points that bracket the target."""
    m = run["entries"].get(name, {}).get("modes", {}).get(mode)
    if not m:
        return None
    pts = [p for p in m["points"] if p["recall"] >= t]
    if not pts:
        return None
    p = max(pts, key=lambda p: p["qps_median"])
    return (p["qps_max"] - p["qps_min"]) / p["qps_median"]


def fmt(x, pct=False, r=False):
    if x is None:
        return "-"
    if pct:
        return f"{x * 100:+.0f}%"
    if r:
        return f"{x:.2f}x"
    return f"{x:,.0f}"


def lever_table(run) -> tuple[list[dict], str]:
    rows = []
    lines = ["| variant | exact | kernel QPS @0.90 | vs ref | kernel QPS @0.95 | vs ref | spread @0.95 |",
             "|---|---|---|---|---|---|---|"]
    r90, r95 = qps(run, REF, "kernel", "0.90"), qps(run, REF, "kernel", "0.95")
    for name, e in run["entries"].items():
        if "kernel" not in e["modes"]:
            continue
        a, b = qps(run, name, "kernel", "0.90"), qps(run, name, "kernel", "0.95")
        row = {"variant": name, "exact": e.get("exact"), "kernel_qps_at_0.90": a,
               "kernel_qps_at_0.95": b, "vs_ref_at_0.90": a / r90 if a and r90 else None,
               "vs_ref_at_0.95": b / r95 if b and r95 else None,
               "spread_at_0.95": spread(run, name, "kernel", 0.95)}
        # implied ratio to hnswlib: (variant / ref, kernel loop) x (ref / hnswlib, per-query
        # Python), both measured in this run; the variant itself was not timed per query
        for t in ("0.90", "0.95"):
            rk, rp = qps(run, REF, "kernel", t), qps(run, REF, "python", t)
            hp, vk = qps(run, "hnswlib M=16 efC=200", "python", t), qps(run, name, "kernel", t)
            row[f"implied_vs_hnswlib_at_{t}"] = (vk / rk) * (rp / hp) if rk and rp and hp and vk else None
        rows.append(row)
        ex = {True: "yes", False: "no", None: "-"}[e.get("exact")]
        lines.append(f"| {name} | {ex} | {fmt(a)} | {fmt(row['vs_ref_at_0.90'], r=True)} | {fmt(b)} | "
                     f"{fmt(row['vs_ref_at_0.95'], r=True)} | {fmt(row['spread_at_0.95'], pct=True).lstrip('+')} |")
    return rows, "\n".join(lines)


def combo_table(run) -> tuple[list[dict], str]:
    rows = []
    lines = ["| entry | single @0.90 | single @0.95 | vs hnswlib @0.95 | vs faiss @0.95 | vs voisin @0.95 "
             "| vs best peer @0.95 | batch @0.90 | batch @0.95 | batch vs best peer @0.95 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    peers95 = {p: qps(run, p, "python", "0.95") for p in PEERS}
    best_single = max([x for x in (qps(run, p, "python", "0.95") for p in OTHER_PEERS) if x], default=None)
    best_batch = max([x for x in (qps(run, p, "batch", "0.95") for p in OTHER_PEERS) if x], default=None)
    for name, e in run["entries"].items():
        if "python" not in e["modes"]:
            continue
        a, b = qps(run, name, "python", "0.90"), qps(run, name, "python", "0.95")
        ba, bb = qps(run, name, "batch", "0.90"), qps(run, name, "batch", "0.95")
        row = {"entry": name, "single_qps_at_0.90": a, "single_qps_at_0.95": b,
               "batch_qps_at_0.90": ba, "batch_qps_at_0.95": bb}
        for p, short in zip(PEERS, ("voisin", "hnswlib", "faiss")):
            row[f"single_vs_{short}_at_0.95"] = b / peers95[p] if b and peers95[p] else None
        row["batch_vs_best_peer_at_0.95"] = bb / best_batch if bb and best_batch else None
        row["single_vs_best_peer_at_0.95"] = b / best_single if b and best_single else None
        rows.append(row)
        lines.append(f"| {name} | {fmt(a)} | {fmt(b)} | {fmt(row['single_vs_hnswlib_at_0.95'], r=True)} | "
                     f"{fmt(row['single_vs_faiss_at_0.95'], r=True)} | {fmt(row['single_vs_voisin_at_0.95'], r=True)} | "
                     f"{fmt(row['single_vs_best_peer_at_0.95'], r=True)} | "
                     f"{fmt(ba)} | {fmt(bb)} | {fmt(row['batch_vs_best_peer_at_0.95'], r=True)} |")
    return rows, "\n".join(lines)


def main(dataset, levers_path, combo_path, compile_path, out, extras=()) -> None:
    levers = json.loads(Path(levers_path).read_text())
    combo = json.loads(Path(combo_path).read_text()) if Path(combo_path).exists() else None
    comp = json.loads(Path(compile_path).read_text()) if Path(compile_path).exists() else None
    lrows, ltab = lever_table(levers)
    res = {"dataset": dataset,
           "what": ("HNSW search levers measured on voisin's own graph (IndexHNSWFlat M=16, efC=200): "
                    "each variant changes one thing in a prototype kernel "
                    "(benchmarks/experiments/hnsw_levers); see docs/hnsw-levers.md"),
           "summary_levers": lrows, "levers_run": levers}
    print(f"## {dataset}: levers (kernel loop, one thread)\n\n{ltab}\n")
    if combo:
        crows, ctab = combo_table(combo)
        res["summary_combinations"] = crows
        res["combinations_run"] = combo
        print(f"## {dataset}: combinations vs peers (single = one Python call per query)\n\n{ctab}\n")
    if comp:
        res["numba_cold_compile"] = comp
    for extra in extras:
        kind, path = extra.split("=", 1)
        run = json.loads(Path(path).read_text())
        rows, tab = (lever_table(run) if kind.startswith("interleave") else combo_table(run))
        res[f"summary_{kind}"] = rows
        res[f"{kind}_run"] = run
        print(f"## {dataset}: {kind} run\n\n{tab}\n")
    Path(out).write_text(json.dumps(res, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    if len(sys.argv) < 6:
        raise SystemExit(__doc__)
    main(*sys.argv[1:6], extras=sys.argv[6:])
