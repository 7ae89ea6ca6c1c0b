"""Cold start: `import voisin`, each index family's first build+search, and the first demo.

Every measurement runs in a fresh Python process. "cold" processes get an empty
numba cache (NUMBA_CACHE_DIR pointed at a new temporary directory), so every
kernel they touch is compiled; the "warm" process that follows reuses that
cache, as a user's second run does. In each process the same small cycle
(train, add, a batch search, single-query searches) runs twice: the first
pays compilation or cache loading, the second is the work itself, so

    compile_s    = cold first cycle - cold second cycle
    cache_load_s = warm first cycle - warm second cycle

Cold processes also record numba's "numba:compile" events: which kernel (and
signature) took how long to compile, inclusive of the kernels it calls and
exclusive of them. Warm processes time each cache load.

    python benchmarks/cold_start.py                       # everything -> benchmarks/results/cold-start.json
    python benchmarks/cold_start.py --families Flat,HNSW --no-demo --out /tmp/cold.json   # a quick check

The bars (issue 11): first demo <= 10 s of compilation, any family <= 5 s cold
and <= 0.5 s warm, import voisin < 0.4 s. Numbers from a busy machine are not
comparable: run it on a quiet one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: family -> factory description (k-means is voisin.Kmeans)
FAMILIES = {
    "Flat": "Flat",
    "IVF-Flat": "IVF64,Flat",
    "IVF-PQ": "IVF64,PQ8",
    "PQ fast-scan": "IVF64,PQ8x4fs",
    "SQ": "SQ8",
    "HNSW": "HNSW16",
    "HNSW_SQ8+RFlat": "HNSW16_SQ8,RFlat",
    "k-means": "kmeans",
}
BARS = {"import_s": 0.4, "family_cold_s": 5.0, "family_warm_s": 0.5, "demo_compile_s": 10.0}


# --------------------------------------------------------------------------------------
# children (run in fresh processes)
# --------------------------------------------------------------------------------------

class _CompileLog:
    """numba:compile events -> per-kernel inclusive and exclusive seconds (nested compiles are
    the kernels a kernel calls)."""

    def __init__(self):
        from numba.core import event
        self.event = event
        self.stack: list[list] = []
        self.done: list[dict] = []
        parent = self

        class Listener(event.Listener):
            def on_start(self, ev):
                parent.stack.append([ev.data, time.perf_counter(), 0.0])

            def on_end(self, ev):
                data, t0, nested = parent.stack.pop()
                dt = time.perf_counter() - t0
                if parent.stack:
                    parent.stack[-1][2] += dt
                fn = data["dispatcher"].py_func
                parent.done.append({"kernel": f"{fn.__module__}.{fn.__qualname__}",
                                    "signature": ", ".join(str(a) for a in data["args"]),
                                    "inclusive_s": dt, "exclusive_s": dt - nested, "start": t0})

        self.listener = Listener()

    def __enter__(self):
        self.event.register("numba:compile", self.listener)
        return self

    def __exit__(self, *exc):
        self.event.unregister("numba:compile", self.listener)


class _LoadLog:
    """Seconds each kernel's cache load takes (numba emits no event for loads)."""

    def __init__(self):
        from numba.core import caching
        self.caching = caching
        self.loads: list[dict] = []

    def __enter__(self):
        real = self.real = self.caching.Cache.load_overload
        loads = self.loads

        def timed(cache, sig, ctx):
            t0 = time.perf_counter()
            out = real(cache, sig, ctx)
            loads.append({"kernel": cache._name, "signature": str(sig), "seconds": time.perf_counter() - t0,
                          "hit": out is not None})
            return out
        self.caching.Cache.load_overload = timed
        return self

    def __exit__(self, *exc):
        self.caching.Cache.load_overload = self.real


def _timed_cycle(family: str, n: int, d: int) -> tuple[float, float]:
    """(wall, CPU) seconds of :func:`_cycle`. Compilation runs on one thread, so its CPU time
    barely moves on a busy machine while its wall time can double."""
    c0 = time.process_time()
    wall = _cycle(family, n, d)
    return wall, time.process_time() - c0


def _cycle(family: str, n: int, d: int) -> float:
    """The small build+search a user's first session runs; returns seconds."""
    import numpy as np

    import voisin
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((n, d)).astype(np.float32)
    xq = rng.standard_normal((100, d)).astype(np.float32)
    t0 = time.perf_counter()
    desc = FAMILIES[family]
    if desc == "kmeans":
        km = voisin.Kmeans(d, 64, niter=10, seed=1)
        km.train(xb)
        km.index.search(xq, 1)
        return time.perf_counter() - t0
    index = voisin.index_factory(d, desc)
    if not index.is_trained:
        index.train(xb)
    index.add(xb)
    index.search(xq, 10)                 # batch path
    for i in range(3):                   # single-query path
        index.search(xq[i:i + 1], 10)
    return time.perf_counter() - t0


def child_family(family: str, n: int, d: int, log: str) -> dict:
    t0 = time.perf_counter()
    import voisin
    import_s = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    voisin.index_factory, voisin.IndexFlat, voisin.Kmeans   # noqa: B018  (numba and the kernels' modules)
    out = {"import_s": import_s, "modules_s": time.perf_counter() - t0, "modules_cpu_s": time.process_time() - c0}
    recorder = _CompileLog() if log == "compile" else _LoadLog()
    with recorder:
        out["first_s"], out["first_cpu_s"] = _timed_cycle(family, n, d)
    out["compiles" if log == "compile" else "loads"] = recorder.done if log == "compile" else recorder.loads
    out["second_s"], out["second_cpu_s"] = _timed_cycle(family, n, d)
    return out


def child_demo(limit: int) -> dict:
    import io

    from rich.console import Console

    from voisin import demo
    windows = []   # the full build: whatever compiles there, the demo's warm-up missed
    real_build = demo.build

    def build(description, x, out, label="building", chunk=None):
        t = time.perf_counter()
        try:
            return real_build(description, x, out, label, chunk)
        finally:
            if label == "building":
                windows.append((t, time.perf_counter()))
    demo.build = build
    t0, c0 = time.perf_counter(), time.process_time()
    with _CompileLog() as rec:
        report = demo.run(limit=limit, nqueries=200, out=Console(file=io.StringIO(), width=120))
    leaked = [c for c in rec.done if any(a <= c["start"] <= b for a, b in windows)]
    return {"run_s": time.perf_counter() - t0, "run_cpu_s": time.process_time() - c0,
            "timings": report.timings, "description": report.description, "recall": report.recall,
            "compiled_during_build_s": sum(c["exclusive_s"] for c in leaked),
            "compiled_during_build": sorted({c["kernel"] for c in leaked}), "compiles": rec.done}


def child_import() -> dict:
    t0 = time.perf_counter()
    import voisin  # noqa: F401
    return {"import_s": time.perf_counter() - t0,
            "numba_imported": "numba" in sys.modules}


# --------------------------------------------------------------------------------------
# parent
# --------------------------------------------------------------------------------------

def spawn(args: list[str], cache: str, timeout: float) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=ROOT)
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise RuntimeError(f"{' '.join(args)}: exit {proc.returncode}: {tail}")
    out = json.loads(lines[-1])
    out["process_wall_s"] = wall
    return out


def top_kernels(compiles: list[dict], n: int = 12) -> list[dict]:
    """Kernels by exclusive compile time, signatures merged."""
    by: dict[str, dict] = {}
    for c in compiles:
        e = by.setdefault(c["kernel"], {"kernel": c["kernel"], "exclusive_s": 0.0, "signatures": []})
        e["exclusive_s"] += c["exclusive_s"]
        e["signatures"].append(c["signature"])
    return sorted(by.values(), key=lambda e: -e["exclusive_s"])[:n]


def measure_family(family: str, n: int, d: int, timeout: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="voisin-cold-") as cache:
        cold = spawn(["--child-family", family, str(n), str(d), "compile"], cache, timeout)
        warm = spawn(["--child-family", family, str(n), str(d), "load"], cache, timeout)
    compile_total = sum(c["exclusive_s"] for c in cold["compiles"])
    loads = warm.pop("loads")
    return {
        "description": FAMILIES[family], "n": n, "d": d,
        "cold_s": cold["modules_s"] + cold["first_s"] - cold["second_s"],
        "warm_s": warm["modules_s"] + warm["first_s"] - warm["second_s"],
        "compile_s": cold["first_s"] - cold["second_s"],
        "compile_cpu_s": cold["first_cpu_s"] - cold["second_cpu_s"],
        "cache_load_s": warm["first_s"] - warm["second_s"],
        "cache_load_cpu_s": warm["first_cpu_s"] - warm["second_cpu_s"],
        "modules_import_s": {"cold": cold["modules_s"], "warm": warm["modules_s"]},
        "modules_import_cpu_s": {"cold": cold["modules_cpu_s"], "warm": warm["modules_cpu_s"]},
        "warm_cpu_s": warm["modules_cpu_s"] + warm["first_cpu_s"] - warm["second_cpu_s"],
        "cold_cpu_s": cold["modules_cpu_s"] + cold["first_cpu_s"] - cold["second_cpu_s"],
        "work_s": statistics.median([cold["second_s"], warm["second_s"]]),
        "numba_compile_events_s": compile_total,
        "kernels_compiled": len(cold["compiles"]),
        "cache_loads": {"count": len(loads), "seconds": sum(x["seconds"] for x in loads),
                        "misses": sum(not x["hit"] for x in loads)},
        "top_kernels": top_kernels(cold.pop("compiles")),
        "cold_process": cold, "warm_process": warm,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--families", default=",".join(FAMILIES),
                   help=f"comma-separated, from: {', '.join(FAMILIES)}")
    p.add_argument("--n", type=int, default=10_000, help="vectors per family cycle (IVF-PQ trains 256 codes)")
    p.add_argument("--d", type=int, default=32)
    p.add_argument("--imports", type=int, default=5, help="fresh processes timing `import voisin`")
    p.add_argument("--demo-limit", type=int, default=50_000)
    p.add_argument("--no-demo", action="store_true", help="skip the demo (it needs the demo extra)")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per child process")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cold-start.json"))
    a = p.parse_args(argv)
    families = [f.strip() for f in a.families.split(",") if f.strip()]
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        p.error(f"--families: unknown {unknown}; expected some of {', '.join(FAMILIES)}")

    sys.path.insert(0, str(ROOT))
    from voisin import machine
    result = {"schema": "voisin-cold-start/1", "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "command": [sys.executable, *sys.argv], "machine": machine.describe(), "bars": BARS,
              "definitions": {
                  "cold_s": "importing voisin's kernel modules (numba included) + compiling on an empty cache",
                  "warm_s": "the same in a second process that loads the kernels from that cache",
                  "compile_s": "first cycle - second cycle, empty cache", "cache_load_s": "the same, warm",
                  "*_cpu_s": "the same in process CPU seconds (compilation is single-threaded: CPU time "
                             "is the steadier figure on a busy machine)",
                  "top_kernels": "kernels by compile seconds exclusive of the kernels they call, with "
                                 "every signature compiled"}}
    with tempfile.TemporaryDirectory(prefix="voisin-cold-") as cache:
        imports = [spawn(["--child-import"], cache, a.timeout) for _ in range(a.imports)]
    result["import"] = {"median_s": statistics.median(x["import_s"] for x in imports),
                        "runs_s": [x["import_s"] for x in imports],
                        "numba_imported": any(x["numba_imported"] for x in imports)}
    print(f"import voisin: {result['import']['median_s']:.3f} s (median of {a.imports})", flush=True)
    result["families"] = {}
    for fam in families:
        r = result["families"][fam] = measure_family(fam, a.n, a.d, a.timeout)
        top = ", ".join(f"{k['kernel'].rsplit('.', 1)[-1]} {k['exclusive_s']:.1f}s" for k in r["top_kernels"][:3])
        print(f"{fam:15s} cold {r['cold_s']:6.2f} s (CPU {r['cold_cpu_s']:5.1f} s)  "
              f"warm {r['warm_s']:5.2f} s (CPU {r['warm_cpu_s']:4.2f} s)  work {r['work_s']:5.2f} s  "
              f"({r['kernels_compiled']} compiles; {top})", flush=True)
    if not a.no_demo:
        with tempfile.TemporaryDirectory(prefix="voisin-cold-") as cache:
            runs = {"cold": spawn(["--child-demo", str(a.demo_limit)], cache, a.timeout),
                    "warm": spawn(["--child-demo", str(a.demo_limit)], cache, a.timeout)}
        for r in runs.values():
            compiles = r.pop("compiles")
            r["numba_compile_events_s"] = sum(c["exclusive_s"] for c in compiles)
            r["kernels_compiled"] = len(compiles)
            r["top_kernels"] = top_kernels(compiles)
        result["demo"] = {"limit": a.demo_limit, **runs}
        print(f"demo --limit {a.demo_limit}: cold {runs['cold']['process_wall_s']:.1f} s wall "
              f"(compile {runs['cold']['timings']['jit']:.1f} s, {runs['cold']['compiled_during_build_s']:.1f} s more "
              f"during the build), warm {runs['warm']['process_wall_s']:.1f} s "
              f"(cache load {runs['warm']['timings']['jit']:.1f} s)", flush=True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1].startswith("--child-"):
        kind, rest = sys.argv[1], sys.argv[2:]
        if kind == "--child-family":
            res = child_family(rest[0], int(rest[1]), int(rest[2]), rest[3])
        elif kind == "--child-demo":
            res = child_demo(int(rest[0]))
        else:
            res = child_import()
        print(json.dumps(res))
    else:
        main()
