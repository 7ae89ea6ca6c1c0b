"""Cold numba compile time of the prototype kernels (separately from search time).

    flock /tmp/voisin-bench.lock python benchmarks/experiments/hnsw_levers/compile_time.py OUT.json

Each measurement runs in a fresh interpreter whose NUMBA_CACHE_DIR is an
empty temporary directory, so nothing comes from the on-disk cache: the
first call of each kernel family is timed on a tiny graph (the search work
itself is microseconds). Reported per specialisation, as the integrator would
pay it once per installation (voisin caches compiled kernels on disk).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import sys, time, json
sys.path.insert(0, sys.argv[1])
t0 = time.perf_counter()
import numpy as np, voisin
import kernels as P, run_levers as R
t_import = time.perf_counter() - t0
voisin.omp_set_num_threads(1)
rng = np.random.default_rng(0)
xb = rng.standard_normal((600, 24)).astype(np.float32)
xq = rng.standard_normal((4, 24)).astype(np.float32)
index = voisin.IndexHNSWFlat(24, 16)
index.add(xb)
which = sys.argv[2]
if which != "copy":
    v = R.build_variants(index, "levers", lambda m: None)  # compiles the reorder helpers
t0 = time.perf_counter()
if which == "copy":
    R.CopyKernel(index).python(xq, 20)
else:
    name = {"lever_float": "ref (split, uint32 epoch, pf 4 lines)",
            "lever_colocated": "co-located, rows 64B-aligned",
            "lever_uint16": "split, uint16 epoch",
            "lever_sq8": "SQ8 traversal + exact re-rank (split)"}[which]
    v[name].python(xq, 20)
    v[name].kernel(xq, 20)
print(json.dumps({"which": which, "first_call_s": time.perf_counter() - t0, "import_s": t_import}))
"""


def main(out: str) -> None:
    res = {}
    for which in ("copy", "lever_float", "lever_colocated", "lever_uint16", "lever_sq8"):
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            t0 = time.perf_counter()
            p = subprocess.run([sys.executable, "-c", CHILD, str(HERE), which], env=env,
                               capture_output=True, text=True, check=True)
            wall = time.perf_counter() - t0
            r = json.loads(p.stdout.strip().splitlines()[-1])
            r["process_wall_s"] = wall
            res[which] = r
            print(r, flush=True)
    res["note"] = ("cold cache (empty NUMBA_CACHE_DIR) per process; voisin's own kernels that the "
                   "tiny build needs are also compiled in that process but outside first_call_s. "
                   "lever_colocated has the same argument types as lever_float (one compiled kernel serves "
                   "both layouts); the uint16 visited set and the uint8 SQ8 codes are separate "
                   "specialisations. Each line compiles both the per-query and the serial-loop entry.")
    Path(out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
