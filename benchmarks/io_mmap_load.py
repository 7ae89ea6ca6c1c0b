"""How long does voisin take to open a glove-50 index file: full read vs memory map?

The index file is built once with faiss-cpu (the bar is about voisin's
*reader*, not its builder), opened by voisin and re-written with voisin's
writer (so it carries the checksum trailer), then timed:

* ``full``: ``read_index(path)`` (reads the bytes, verifies the CRC, copies arrays)
* ``full_nocrc``: the same with ``verify_checksum=False``
* ``mmap``: ``read_index(path, IO_FLAG_MMAP)``

for two files holding the same index: FAISS's layout (what faiss reads) and
voisin's layout (``write_index(..., layout="voisin")``: IVF lists stored as
voisin's slab, which a mapping can use in place).

All opens run against a warm page cache (the file was just written/read), so
the comparison is CPU work, not disk speed. Each open is followed by a
one-query search and a 1000-query batch, timed, to show that the work is not
merely deferred to the first search. Finally two processes map the same file
and search; their ``/proc/<pid>/smaps`` entries for the mapping show the pages
are shared (Pss about half of Rss), not copied.

Usage (wrap in ``flock /tmp/voisin-bench.lock`` on a shared machine):

    python benchmarks/io_mmap_load.py --kind ivf  --out benchmarks/results/io-mmap-glove50-ivf.json
    python benchmarks/io_mmap_load.py --kind hnsw --out benchmarks/results/io-mmap-glove50-hnsw.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

import voisin

REPO = Path(__file__).resolve().parents[1]


def dataset_path() -> Path:
    env = os.environ.get("VOISIN_SHARED_DATASETS")
    root = Path(env) if env else REPO.parent / "shared" / "datasets"
    return root / "glove-50-angular.hdf5"


def load_glove() -> tuple[np.ndarray, np.ndarray]:
    import h5py
    with h5py.File(dataset_path(), "r") as f:
        xb = np.ascontiguousarray(f["train"][:], dtype=np.float32)
        xq = np.ascontiguousarray(f["test"][:1000], dtype=np.float32)
    # angular distance = inner product on normalised vectors
    voisin.normalize_L2(xb)
    voisin.normalize_L2(xq)
    return xb, xq


def build_faiss(kind: str, xb: np.ndarray, path: Path, nlist: int, M: int) -> dict:
    import faiss
    t0 = time.perf_counter()
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(xb.shape[1], M, faiss.METRIC_INNER_PRODUCT)
        index.add(xb)
        params = {"factory": f"HNSW{M},Flat", "M": M, "efConstruction": 40}
    elif kind == "ivf":
        quantizer = faiss.IndexFlatIP(xb.shape[1])
        index = faiss.IndexIVFFlat(quantizer, xb.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(xb)
        index.add(xb)
        params = {"factory": f"IVF{nlist},Flat", "nlist": nlist}
    elif kind == "flat":
        index = faiss.IndexFlatIP(xb.shape[1])
        index.add(xb)
        params = {"factory": "Flat"}
    else:
        raise SystemExit(f"--kind: expected hnsw, ivf or flat, got {kind}")
    faiss.write_index(index, str(path))
    params["faiss_build_s"] = time.perf_counter() - t0
    return params


def tune(index, kind: str) -> None:
    if kind == "hnsw":
        index.hnsw.efSearch = 64
    elif kind == "ivf":
        index.nprobe = 16


def time_open(path: Path, kind: str, xq: np.ndarray, repeat: int, **kw) -> dict:
    opens, first, batch = [], [], []
    ref = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        index = voisin.read_index(path, **kw)
        t1 = time.perf_counter()
        tune(index, kind)
        index.search(xq[:1], 10)
        t2 = time.perf_counter()
        D, I = index.search(xq, 10)
        t3 = time.perf_counter()
        opens.append(t1 - t0)
        first.append(t2 - t1)
        batch.append(t3 - t2)
        ref = I
        del index
    return {"open_s": opens, "open_median_s": statistics.median(opens),
            "first_query_median_s": statistics.median(first),
            "batch_1000_median_s": statistics.median(batch), "_I": ref}


SHARER = textwrap.dedent("""
    import sys, time, numpy as np, voisin
    path, kind = sys.argv[1], sys.argv[2]
    index = voisin.read_index(path, voisin.IO_FLAG_MMAP)
    if kind == "hnsw":
        index.hnsw.efSearch = 64
    elif kind == "ivf":
        index.nprobe = 16
    xq = np.random.default_rng(0).normal(size=(2000, index.d)).astype("float32")
    index.search(xq, 10)
    if kind == "flat":
        index.search(xq[:1], 10)
    print("searched", flush=True)
    sys.stdin.readline()   # stay alive until the parent has read our smaps
""")


def smaps_of(pid: int, path: Path) -> dict:
    """Memory counters (kB) of the mappings of ``path`` in process ``pid``."""
    out: dict[str, int] = {}
    inside = False
    target = str(path.resolve())
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and "-" in parts[0] and ":" in parts[3]:
            inside = line.rstrip().endswith(target)
            continue
        if inside and len(parts) >= 2 and parts[0].endswith(":") and parts[-1] == "kB":
            key = parts[0][:-1]
            out[key] = out.get(key, 0) + int(parts[1])
    return {k: out.get(k, 0) for k in ("Rss", "Pss", "Shared_Clean", "Private_Clean",
                                       "Private_Dirty")}


def sharing(path: Path, kind: str) -> list[dict]:
    procs = [subprocess.Popen([sys.executable, "-c", SHARER, str(path), kind], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "searched"
        return [smaps_of(p.pid, path) for p in procs]
    finally:
        for p in procs:
            p.stdin.write("\n")
            p.stdin.flush()
            p.wait(timeout=60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", default="ivf", choices=["ivf", "hnsw", "flat"])
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--M", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--workdir", default="/tmp/voisin-io-bench")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    xb, xq = load_glove()
    faiss_path = work / f"glove50-{args.kind}.faiss"
    params_path = work / f"glove50-{args.kind}.json"
    if not faiss_path.exists():
        params = build_faiss(args.kind, xb, faiss_path, args.nlist, args.M)
        params_path.write_text(json.dumps(params))
    params = json.loads(params_path.read_text())
    paths = {"faiss": work / f"glove50-{args.kind}.voisin",
             "voisin": work / f"glove50-{args.kind}.voisin-layout"}
    t0 = time.perf_counter()
    loaded = voisin.read_index(faiss_path)
    convert_s = time.perf_counter() - t0
    for layout, path in paths.items():
        voisin.write_index(loaded, path, layout=layout)
    del loaded

    # warm the page cache and numba's caches once before timing anything
    for path in paths.values():
        for kw in ({}, {"io_flags": voisin.IO_FLAG_MMAP}):
            warm = voisin.read_index(path, **kw)
            tune(warm, args.kind)
            warm.search(xq[:50], 10)
            del warm

    layouts = {}
    reference = None
    for layout, path in paths.items():
        full = time_open(path, args.kind, xq, args.repeat)
        nocrc = time_open(path, args.kind, xq, args.repeat, verify_checksum=False)
        mapped = time_open(path, args.kind, xq, args.repeat, io_flags=voisin.IO_FLAG_MMAP)
        reference = full["_I"] if reference is None else reference
        same = all(np.array_equal(reference, r.pop("_I")) for r in (full, nocrc, mapped))
        layouts[layout] = {
            "file_bytes": path.stat().st_size,
            "full_read": full,
            "full_read_no_checksum": nocrc,
            "mmap": mapped,
            "speedup_open_full_over_mmap": full["open_median_s"] / mapped["open_median_s"],
            "speedup_open_full_nocrc_over_mmap": nocrc["open_median_s"] / mapped["open_median_s"],
            "results_identical": same,
        }
    shared = sharing(paths["voisin"], args.kind)

    result = {
        "benchmark": "io-mmap-load",
        "dataset": {"name": "glove-50-angular", "n": int(xb.shape[0]), "d": int(xb.shape[1]),
                    "queries": int(xq.shape[0]), "metric": "inner product on normalised vectors"},
        "index": {"kind": args.kind, **params, "faiss_file_bytes": faiss_path.stat().st_size,
                  "faiss_file_read_s": convert_s},
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "machine": _machine(),
        "layouts": layouts,
        "two_process_smaps_kB_voisin_layout": shared,
        "notes": "page cache warm for every open; median of --repeat opens. 'faiss' layout = "
                 "FAISS's bytes + checksum trailer (opens in faiss); 'voisin' layout = "
                 "write_index(..., layout='voisin'), inverted lists stored as voisin's slab so "
                 "they can be mapped (faiss cannot read it). first_query = one query right after "
                 "opening (the mapped index faults its pages in here); batch = 1000 queries.",
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


def _machine() -> dict:
    try:
        from voisin.bench.machine import describe
        return describe()
    except Exception as exc:  # the bench extra may be missing
        return {"error": str(exc)}


if __name__ == "__main__":
    main()
