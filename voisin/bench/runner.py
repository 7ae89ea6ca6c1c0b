"""The benchmark runner: build each index, sweep its query knob, time, judge recall.

Protocol (docs/benchmarking.md):

- JIT first: every spec is built and searched twice on a tiny slice of the
  data before the real build; ``jit_s`` is the first tiny run minus the
  second (compilation or on-disk cache loading), so it never leaks into
  ``build_s``. ``cold_compile=True`` also measures compilation from an empty
  numba cache in a subprocess.
- Builds use all cores for every library; ``build_s`` is wall time of train + add.
- Each mode (``single``: one query per call, one thread everywhere;
  ``batch``: all queries in one call, all cores) warms every sweep point up,
  then runs ``repeat`` rounds. A round visits every index and every point in
  turn, so a burst of noise from the shared machine hits all libraries alike.
- QPS = queries / wall time of the whole loop (or the one batch call);
  median and spread over the rounds. recall@k counts ties and is judged
  against the dataset's own ground truth.
"""

from __future__ import annotations

import gc
import os
import re
import time
from datetime import datetime, timezone
from typing import Any, Callable

import numpy as np

from .. import datasets as dsets
from ..evaluate import TIE_TOLERANCE, id_recall_at_k, recall_at_k
from . import machine
from .adapters import Adapter, LibraryMissing, make_adapter, uses_numba
from .frontier import INTERPOLATION, pareto_frontier, qps_at_recall
from .progress import NoProgress, make_progress
from .spec import IndexSpec, parse_spec, resolve_sweeps
from .threads import available_cores, thread_limit

MODES = ("single", "batch")
TARGETS = (0.90, 0.95)
SCHEMA = "voisin-bench/1"

# Vectors in the tiny index used to trigger compilation (IVF gets enough to train its centroids).
TINY_N = 2000
TINY_Q = 16


def _tiny_size(spec: IndexSpec, n: int) -> int:
    m = re.search(r"IVF(\d+)", spec.description.upper())
    want = max(TINY_N, 4 * int(m.group(1))) if m else TINY_N
    return min(n, want)


def tiny_cycle(spec: IndexSpec, xb: np.ndarray, xq: np.ndarray, metric: int, k: int, threads: int) -> float:
    """Build ``spec`` on ``xb`` and search ``xq`` through every code path the
    benchmark uses (batch at ``threads``, single at 1 thread, first and last
    sweep point); returns the wall time."""
    points = spec.sweep_points()
    ends = [points[0]] if len(points) == 1 else [points[0], points[-1]]
    k = min(k, xb.shape[0])
    t0 = time.perf_counter()
    a = make_adapter(spec, xb.shape[1], metric)
    with thread_limit(threads):
        a.set_threads(threads)
        a.build(xb)
    for point in ends:
        for name, value in point.items():
            a.set_query_param(name, value)
        with thread_limit(threads):
            a.set_threads(threads)
            a.search_batch(xq, k)
        with thread_limit(1):
            a.set_threads(1)
            for i in range(min(3, xq.shape[0])):
                a.search_one(xq[i:i + 1], k)
    return time.perf_counter() - t0


def measure_jit(spec: IndexSpec, xb: np.ndarray, xq: np.ndarray, metric: int, k: int, threads: int) -> dict:
    """Compile/cache-load time of ``spec``: first tiny cycle minus an identical second one."""
    n = _tiny_size(spec, xb.shape[0])
    first = tiny_cycle(spec, xb[:n], xq[:TINY_Q], metric, k, threads)
    second = tiny_cycle(spec, xb[:n], xq[:TINY_Q], metric, k, threads)
    return {"jit_s": max(0.0, first - second), "tiny_first_s": first, "tiny_second_s": second, "tiny_n": n}


def _load(dataset: Any) -> dsets.Dataset:
    if isinstance(dataset, dsets.Dataset):
        return dataset
    return dsets.load(dataset)


def _check_modes(modes: Any) -> list[str]:
    if isinstance(modes, str):
        modes = [modes]
    out = []
    for m in modes:
        if m not in MODES:
            raise ValueError(f"modes: expected 'single' and/or 'batch', got {m!r}")
        if m not in out:
            out.append(m)
    if not out:
        raise ValueError("modes: give at least one of 'single', 'batch'")
    return out


def run(dataset: Any, specs: list[str | IndexSpec], modes: Any = MODES, k: int = 10,
        queries: int | None = None, repeat: int = 3, *, sweep: list[str] | dict | None = None,
        seed: int = 0, batch_threads: int | None = None, cold_compile: bool = False,
        warmup_queries: int = 10, min_time: float = 0.2, targets: tuple[float, ...] = TARGETS,
        out: str | os.PathLike | None = None, out_dir: str | os.PathLike | None = None,
        plot: bool = True, progress: bool = False, console: Any = None,
        log: Callable[[str], None] | None = None, command: list[str] | None = None) -> dict:
    """Benchmark ``specs`` on ``dataset`` and return the result as a JSON-ready dict.

    ``dataset``: a name or path for :func:`voisin.datasets.load`, or a
    :class:`~voisin.datasets.Dataset`. ``specs``: strings such as
    ``"voisin:HNSW32 efConstruction=200"`` (see :mod:`voisin.bench.spec`).
    ``queries``: use a seeded random subset of that many test queries.
    ``sweep``: extra ``knob=v1,v2`` sweeps (``--sweep``). A measurement
    repeats whole passes over the queries until ``min_time`` seconds. With ``out`` (a JSON
    path) or ``out_dir`` the result is written there, with a recall/QPS PNG
    beside it when matplotlib is installed and ``plot`` is true. ``command``
    is recorded as given (the CLI passes its argv).

    >>> from voisin.datasets import synthetic
    >>> r = run(synthetic(n=500, nq=20, d=8), ["voisin:Flat"], modes=["batch"], repeat=1)
    >>> r["indexes"][0]["modes"]["batch"]["points"][0]["recall"]
    1.0
    """
    from .._validate import check_float, check_int
    k = check_int(k, "k", lo=1)
    repeat = check_int(repeat, "repeat", lo=1)
    warmup_queries = check_int(warmup_queries, "warmup_queries", lo=0)
    min_time = max(0.0, check_float(min_time, "min_time"))
    modes = _check_modes(modes)
    cores = available_cores()
    batch_threads = cores if batch_threads is None else check_int(batch_threads, "batch_threads", lo=1)
    parsed = [parse_spec(s) if isinstance(s, str) else s for s in specs]
    if not parsed:
        raise ValueError("specs: give at least one index spec, e.g. 'voisin:Flat'")
    labels = [s.label for s in parsed]
    if len(set(labels)) != len(labels):
        raise ValueError(f"specs: the same index spec is given twice: {labels}")
    parsed = resolve_sweeps(parsed, sweep)

    full = _load(dataset)
    if k > full.neighbors.shape[1]:
        raise ValueError(f"k={k} but the dataset's ground truth lists only {full.neighbors.shape[1]} neighbours")
    ds = full.subset(queries, seed)
    xb, xq, metric = ds.search_arrays()
    nq = xq.shape[0]
    rows = [xq[i:i + 1] for i in range(nq)]  # sliced once, outside every timed loop

    started = datetime.now(timezone.utc)
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "created": started.isoformat(timespec="seconds"),
        "command": command,
        "machine": machine.describe(),
        "dataset": {
            "name": ds.name, "path": ds.path, "metric": ds.metric, "n": int(xb.shape[0]), "d": ds.d,
            "test_queries": int(full.test.shape[0]), "queries": nq,
            "query_selection": ("all test queries" if nq == full.test.shape[0] else
                                f"seeded random subset: numpy default_rng({seed}).choice(without replacement), sorted"),
            "query_seed": seed,
            "search_metric": "inner product on L2-normalised vectors" if ds.metric == "angular" else "squared L2",
        },
        "settings": {"k": k, "modes": modes, "repeat": repeat, "warmup_queries": warmup_queries,
                     "min_time_s": min_time,
                     "batch_threads": batch_threads, "single_threads": 1, "build_threads": batch_threads,
                     "cold_compile": cold_compile},
        "recall_definition": (f"recall@{k}: per query, the share of the {k} returned ids whose true distance "
                              f"(recomputed in float64, dataset metric) is <= the {k}-th true distance "
                              f"* (1 + {TIE_TOLERANCE:g}); id -1 is a miss; mean over queries. "
                              f"'recall_ids' is the plain id-overlap recall for comparison"),
        "qps_definition": ("single: queries / wall time of a Python loop making one search call per query, "
                           "every library on 1 thread; batch: queries / wall time of one call with all "
                           "queries on all cores; a measurement repeats whole passes over the queries "
                           "until min_time_s has elapsed and counts every pass; median over repeats, "
                           "spread = (max - min) / median"),
        "interpolation": INTERPOLATION,
        "targets": list(targets),
        "indexes": [],
        "skipped": [],
    }

    say = log or (lambda msg: None)
    prog = make_progress(progress, console) if progress else NoProgress()
    if progress and log is None:
        say = prog.log
    try:
        entries = _build_all(parsed, ds, xb, xq, metric, k, batch_threads, cold_compile, result, prog, say)
        for mode in modes:
            _measure_mode(mode, entries, ds, xq, rows, metric, k, repeat, warmup_queries, min_time,
                          1 if mode == "single" else batch_threads, prog, say)
    finally:
        prog.close()
    result["indexes"] = [e["record"] for e in entries]
    result["machine"]["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    result["machine"]["peak_rss_bytes"] = machine.peak_rss_bytes()
    # known only once a parallel kernel has run
    result["machine"]["numba_threading_layer"] = machine.numba_layer()
    result["elapsed_s"] = (datetime.now(timezone.utc) - started).total_seconds()
    summarize(result)
    if out is not None or out_dir is not None:
        from .report import save
        save(result, out=out, out_dir=out_dir, plot=plot)
    return result


def _build_all(specs, ds, xb, xq, metric, k, threads, cold_compile, result, prog, say) -> list[dict]:
    entries = []
    for spec in specs:
        try:
            adapter = make_adapter(spec, ds.d, metric)
        except LibraryMissing as exc:
            say(f"[yellow]{exc}[/]")
            result["skipped"].append({"spec": spec.label, "reason": str(exc)})
            continue
        record: dict[str, Any] = {
            "spec": spec.label, "library": spec.library, "version": adapter.version,
            "description": spec.description, "build_params": dict(spec.build_params),
            "sweep": {k_: [list(x) if isinstance(x, tuple) else x for x in v] for k_, v in spec.sweep.items()},
            "modes": {},
        }
        task = prog.add(f"{spec.label}: compile, then build", None)
        try:
            record.update(measure_jit(spec, xb, xq, metric, k, threads))
            if cold_compile and uses_numba(spec.library):
                from .coldcompile import measure_cold_compile
                record["cold_compile"] = measure_cold_compile(spec, ds.d, metric, _tiny_size(spec, xb.shape[0]), k,
                                                              threads)
            gc.collect()
            rss0 = machine.rss_bytes()
            with thread_limit(threads):
                adapter.set_threads(threads)
                t0 = time.perf_counter()
                adapter.build(xb)
                record["build_s"] = time.perf_counter() - t0
            rss1 = machine.rss_bytes()
            nbytes, how = adapter.memory_bytes()
            record["memory"] = {
                "index_bytes": nbytes, "bytes_per_vector": nbytes / xb.shape[0] if nbytes is not None else None,
                "index_bytes_method": how,
                "rss_delta_bytes": (rss1 - rss0) if rss0 is not None and rss1 is not None else None,
                "peak_rss_bytes": machine.peak_rss_bytes(),
            }
        except Exception as exc:  # one broken index must not sink the whole comparison
            msg = f"{type(exc).__name__}: {exc}"
            say(f"[red]{spec.label}: build failed: {msg}[/]")
            result["skipped"].append({"spec": spec.label, "reason": f"build failed: {msg}"})
            prog.done(task)
            continue
        prog.done(task)
        say(f"{spec.label}: built in {record['build_s']:.2f} s (jit {record['jit_s']:.2f} s)")
        entries.append({"spec": spec, "adapter": adapter, "record": record})
    return entries


def _set_point(adapter: Adapter, point: dict) -> None:
    for name, value in point.items():
        adapter.set_query_param(name, value)


def _measure_mode(mode, entries, ds, xq, rows, metric, k, repeat, warmup, min_time, threads, prog, say) -> None:
    nq = xq.shape[0]
    active = list(entries)
    total = repeat * sum(len(e["spec"].sweep_points()) for e in active)
    task = prog.add(f"{mode} mode ({threads} thread{'s' if threads > 1 else ''})", total)
    runs: dict[tuple[int, int], dict] = {}
    with thread_limit(threads):
        for e in list(active):
            a = e["adapter"]
            a.set_threads(threads)
            try:
                for point in e["spec"].sweep_points():
                    _set_point(a, point)
                    # warm-up: first calls at this setting (allocations, caches, lazy init)
                    if mode == "single":
                        for i in range(min(warmup, nq)):
                            a.search_one(rows[i], k)
                    else:
                        a.search_batch(xq[:min(nq, max(warmup, 100))], k)
            except Exception as exc:
                _fail(e, mode, exc, active, say)
        for rnd in range(repeat):
            # alternate the visiting order so that slow drift (thermal, load) favours nobody
            order = list(enumerate(entries))
            if rnd % 2:
                order.reverse()
            for ei, e in order:
                if e not in active:
                    continue
                a = e["adapter"]
                for pi, point in enumerate(e["spec"].sweep_points()):
                    try:
                        _set_point(a, point)
                        c0 = time.process_time()
                        I, dt, passes = _timed_passes(a, mode, xq, rows, k, min_time)
                        cpu = time.process_time() - c0
                    except Exception as exc:
                        _fail(e, mode, exc, active, say)
                        break
                    r = runs.setdefault((ei, pi), {"params": point, "seconds": [], "recall": [], "recall_ids": [],
                                                   "passes": [], "cpu": []})
                    r["seconds"].append(dt)
                    r["cpu"].append(cpu)
                    r["passes"].append(passes)
                    r["recall"].append(recall_at_k(I, ds.distances, k, xq=ds.test, xb=ds.train, metric=ds.metric,
                                                   gt_ids=ds.neighbors))
                    r["recall_ids"].append(id_recall_at_k(I, ds.neighbors, k))
                    prog.advance(task)
    prog.done(task)
    for ei, e in enumerate(entries):
        if e not in active:
            continue
        points = []
        for pi in range(len(e["spec"].sweep_points())):
            r = runs[(ei, pi)]
            qps = [nq * n / s for n, s in zip(r["passes"], r["seconds"])]
            med = float(np.median(qps))
            points.append({
                "params": r["params"],
                "recall": float(np.median(r["recall"])),
                "recall_ids": float(np.median(r["recall_ids"])),
                "recall_runs": r["recall"],
                "qps": med, "qps_min": min(qps), "qps_max": max(qps),
                "qps_spread": (max(qps) - min(qps)) / med if med > 0 else None,
                "seconds_runs": r["seconds"], "passes_runs": r["passes"],
                # process CPU time / (wall time * threads): well below 1 means the
                # process was starved by other load (or the library left cores idle)
                "cpu_utilisation": float(np.median([c / (s * threads) for c, s in zip(r["cpu"], r["seconds"])])),
            })
        e["record"]["modes"][mode] = {"threads": threads, "queries": nq, "points": points}


def _timed_passes(a: Adapter, mode: str, xq: np.ndarray, rows: list, k: int, min_time: float
                  ) -> tuple[np.ndarray, float, int]:
    """Time whole passes over the queries until ``min_time`` seconds have elapsed.

    A pass is the single-mode loop (one call per query) or the one batch
    call. Small query sets repeat the pass so that a measurement is not a few
    milliseconds of timer and scheduler noise. Returns the first pass's ids,
    the total seconds and the number of passes.
    """
    nq = xq.shape[0]
    total, passes, first = 0.0, 0, None
    while True:
        if mode == "single":
            I = np.empty((nq, k), dtype=np.int64)
            search_one = a.search_one
            t0 = time.perf_counter()
            for i in range(nq):
                I[i] = search_one(rows[i], k)
            total += time.perf_counter() - t0
        else:
            t0 = time.perf_counter()
            I = a.search_batch(xq, k)
            total += time.perf_counter() - t0
            I = np.asarray(I)
        passes += 1
        if first is None:
            if I.shape != (nq, k):
                raise RuntimeError(f"search returned shape {I.shape}, expected {(nq, k)}")
            first = I
        if total >= min_time:
            return first, total, passes


def _fail(entry, mode, exc, active, say) -> None:
    msg = f"{type(exc).__name__}: {exc}"
    say(f"[red]{entry['spec'].label}: {mode} search failed: {msg}[/]")
    entry["record"]["modes"][mode] = {"error": msg}
    if entry in active:
        active.remove(entry)


def summarize(result: dict) -> dict:
    """Add each mode's Pareto frontier, QPS at the target recalls, and voisin/peer QPS ratios."""
    targets = result.get("targets", list(TARGETS))
    for rec in result["indexes"]:
        for mode, m in rec["modes"].items():
            if "points" not in m:
                continue
            pts = [(p["recall"], p["qps"]) for p in m["points"]]
            m["frontier"] = [{"recall": r, "qps": q} for r, q in pareto_frontier(pts)]
            m["qps_at_recall"] = {f"{t:.2f}": qps_at_recall(pts, t) for t in targets}
    ratios: dict[str, dict] = {}
    recs = result["indexes"]
    for mode in result["settings"]["modes"]:
        per_target: dict[str, list] = {}
        for t in targets:
            key = f"{t:.2f}"
            rows = []
            for v in recs:
                if v["library"] != "voisin":
                    continue
                for p in recs:
                    if p["library"] == "voisin":
                        continue
                    qv = v["modes"].get(mode, {}).get("qps_at_recall", {}).get(key, {}).get("qps")
                    qp = p["modes"].get(mode, {}).get("qps_at_recall", {}).get(key, {}).get("qps")
                    rows.append({"voisin": v["spec"], "peer": p["spec"], "voisin_qps": qv, "peer_qps": qp,
                                 "ratio": (qv / qp) if qv is not None and qp else None})
            per_target[key] = rows
        ratios[mode] = per_target
    result["ratios"] = ratios
    result["best_ratios"] = _best_ratios(recs, result["settings"]["modes"], targets)
    result["ratio_definition"] = ("voisin QPS / peer QPS at the same recall target, both read off their "
                                  "frontiers as 'interpolation' says; null when either misses the target. "
                                  "'best_ratios': the fastest voisin spec against each peer library's fastest "
                                  "spec at that target")
    return result


def _best_ratios(recs: list[dict], modes: list[str], targets) -> dict:
    out: dict[str, dict] = {}
    for mode in modes:
        out[mode] = {}
        for t in targets:
            key = f"{t:.2f}"
            best: dict[str, tuple[float, str]] = {}
            for rec in recs:
                q = rec["modes"].get(mode, {}).get("qps_at_recall", {}).get(key, {}).get("qps")
                if q is not None and (rec["library"] not in best or q > best[rec["library"]][0]):
                    best[rec["library"]] = (q, rec["spec"])
            rows = []
            for lib, (q, spec) in best.items():
                if lib == "voisin":
                    continue
                v = best.get("voisin")
                rows.append({"peer_library": lib, "peer": spec, "peer_qps": q,
                             "voisin": v[1] if v else None, "voisin_qps": v[0] if v else None,
                             "ratio": v[0] / q if v and q else None})
            out[mode][key] = rows
    return out
