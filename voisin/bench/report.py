"""Turning a benchmark result into files and tables: JSON, a recall/QPS PNG, rich tables."""

from __future__ import annotations

import json
import math
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_OUT_DIR = Path("benchmarks") / "results"
# median CPU utilisation below which the tables warn that the machine was busy
STARVED = 0.7


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None  # JSON has no inf/nan
    return obj


def default_filename(result: dict) -> str:
    """``<dataset>-<modes>-<UTC timestamp>.json``."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", result["dataset"]["name"])
    modes = "+".join(result["settings"]["modes"])
    stamp = datetime.fromisoformat(result["created"]).strftime("%Y%m%dT%H%M%SZ")
    return f"{name}-{modes}-{stamp}.json"


def save(result: dict, out: str | os.PathLike | None = None, out_dir: str | os.PathLike | None = None,
         plot: bool = True) -> dict:
    """Write the result JSON (and a PNG beside it); records the paths under ``result["files"]``."""
    if out is not None:
        path = Path(out)
    else:
        path = Path(out_dir if out_dir is not None else DEFAULT_OUT_DIR) / default_filename(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    files: dict[str, str | None] = {"json": str(path), "png": None}
    if plot:
        png = path.with_suffix(".png")
        if plot_png(result, png):
            files["png"] = str(png)
    result["files"] = files
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_jsonable(result), indent=1) + "\n")
    os.replace(tmp, path)
    return files


def load(path: str | os.PathLike) -> dict:
    """Read a result JSON back (to re-plot or re-tabulate without re-running)."""
    return json.loads(Path(path).read_text())


def plot_png(result: dict, path: str | os.PathLike) -> bool:
    """Recall@k against QPS (log scale), one panel per mode; False when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    modes = result["settings"]["modes"]
    k = result["settings"]["k"]
    fig, axes = plt.subplots(1, len(modes), figsize=(6.5 * len(modes), 5), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        for rec in result["indexes"]:
            m = rec["modes"].get(mode, {})
            if "points" not in m:
                continue
            pts = sorted((p["recall"], p["qps"]) for p in m["points"])
            front = [(f["recall"], f["qps"]) for f in m.get("frontier", [])]
            line, = ax.plot([p[0] for p in front] or [p[0] for p in pts],
                            [p[1] for p in front] or [p[1] for p in pts], "-", label=rec["spec"])
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o", color=line.get_color(), ms=4)
        for t in result.get("targets", []):
            ax.axvline(t, color="grey", lw=0.5, ls=":")
        ax.set_yscale("log")
        ax.set_xlabel(f"recall@{k} (with ties)")
        ax.set_ylabel("queries per second")
        threads = next((r["modes"][mode].get("threads") for r in result["indexes"] if mode in r["modes"]), None)
        ax.set_title(f"{result['dataset']['name']} - {mode} ({threads} thread{'s' if threads != 1 else ''})")
        ax.grid(True, which="both", lw=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _fmt_params(params: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items()) or "-"


def _fmt_bytes(b: float | None) -> str:
    if b is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(b) < 1024 or unit == "GiB":
            return f"{b:.0f} {unit}" if unit == "B" else f"{b:.1f} {unit}"
        b /= 1024
    return str(b)


def print_tables(result: dict, console: Any = None) -> None:
    """Per mode: every sweep point (recall, QPS and spread, build, JIT, memory), then QPS at
    the target recalls and the voisin/peer ratios."""
    from rich.console import Console
    from rich.table import Table
    console = console or Console()
    k = result["settings"]["k"]
    ds = result["dataset"]
    for mode in result["settings"]["modes"]:
        t = Table(title=f"{ds['name']} ({ds['n']} x {ds['d']}, {ds['queries']} queries) - {mode} mode")
        for col, just in (("index", "left"), ("params", "left"), (f"recall@{k}", "right"), ("QPS", "right"),
                          ("spread", "right"), ("cpu", "right"), ("build s", "right"), ("jit s", "right"), ("bytes/vec", "right")):
            t.add_column(col, justify=just)
        for rec in result["indexes"]:
            m = rec["modes"].get(mode, {})
            if "error" in m:
                t.add_row(rec["spec"], "[red]" + m["error"][:60] + "[/]", "-", "-", "-", "-", "-", "-", "-")
                continue
            mem = rec.get("memory", {}).get("bytes_per_vector")
            for i, p in enumerate(m.get("points", [])):
                first = i == 0
                t.add_row(rec["spec"] if first else "", _fmt_params(p["params"]), f"{p['recall']:.4f}",
                          f"{p['qps']:,.0f}", f"{100 * (p['qps_spread'] or 0):.0f}%",
                          f"{100 * p['cpu_utilisation']:.0f}%" if p.get("cpu_utilisation") is not None else "-",
                          f"{rec['build_s']:.2f}" if first else "", f"{rec['jit_s']:.2f}" if first else "",
                          f"{mem:,.0f}" if first and mem is not None else "")
        console.print(t)
        s = Table(title=f"{mode}: QPS at recall@{k} (linear interpolation on the Pareto frontier)")
        s.add_column("index")
        targets = [f"{x:.2f}" for x in result.get("targets", [])]
        for key in targets:
            s.add_column(f"QPS @ {key}", justify="right")
        for rec in result["indexes"]:
            q = rec["modes"].get(mode, {}).get("qps_at_recall")
            if q is None:
                continue
            s.add_row(rec["spec"], *[f"{q[key]['qps']:,.0f}" if q[key]["qps"] is not None else "not reached"
                                     for key in targets])
        console.print(s)
        rows = result.get("ratios", {}).get(mode, {})
        if any(rows.get(key) for key in targets):
            r = Table(title=f"{mode}: voisin QPS / peer QPS at equal recall")
            r.add_column("voisin")
            r.add_column("peer")
            for key in targets:
                r.add_column(f"@ {key}", justify="right")
            pairs = rows[targets[0]]
            for i, pair in enumerate(pairs):
                vals = []
                for key in targets:
                    ratio = rows[key][i]["ratio"]
                    vals.append(f"{ratio:.2f}x" if ratio is not None else "-")
                r.add_row(pair["voisin"], pair["peer"], *vals)
            console.print(r)
        best = result.get("best_ratios", {}).get(mode, {})
        for key in targets:
            for row in best.get(key, []):
                if row["ratio"] is not None:
                    console.print(f"{mode} @ recall {key}: best voisin ({row['voisin']}) / best "
                                  f"{row['peer_library']} ({row['peer']}) = {row['ratio']:.2f}x")
    utils = [p["cpu_utilisation"] for rec in result["indexes"] for m in rec["modes"].values()
             for p in m.get("points", []) if p.get("cpu_utilisation") is not None]
    if utils and float(np.median(utils)) < STARVED:
        la = result["machine"].get("load_average")
        console.print(f"[yellow]warning: median CPU utilisation {100 * float(np.median(utils)):.0f}% "
                      f"(load average at start {la[0]:.1f} on {result['machine']['cores']} cores): "
                      "other work competed for the CPU; trust ratios more than absolute QPS, and "
                      "re-run on a quiet machine[/]" if la else
                      "[yellow]warning: the process was starved of CPU during timing[/]")
    if result.get("skipped"):
        for sk in result["skipped"]:
            console.print(f"[yellow]skipped {sk['spec']}: {sk['reason']}[/]")
    files = result.get("files")
    if files:
        console.print(f"results: {files['json']}" + (f"  plot: {files['png']}" if files.get("png") else ""))


def main(argv: list[str] | None = None) -> int:
    """``python -m voisin.bench.report RESULT.json [PNG]``: tables (and a plot) from a saved result."""
    import sys
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help") or len(args) > 2:
        print("usage: python -m voisin.bench.report RESULT.json [PLOT.png]")
        return 0 if args and args[0] in ("-h", "--help") else 2
    result = load(args[0])
    print_tables(result)
    if len(args) == 2:
        if not plot_png(result, args[1]):
            print("matplotlib is not installed: no plot written")
            return 1
        print(f"plot: {args[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
