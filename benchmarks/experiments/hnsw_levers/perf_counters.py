"""Hardware counters of voisin's search kernel vs hnswlib on the same queries (perf stat).

    flock /tmp/voisin-bench.lock python benchmarks/experiments/hnsw_levers/perf_counters.py \
        glove-50-angular 96 10 /tmp/hnsw_levers/perf-glove.json

Runs ``perf stat`` on a child process four times: {voisin reference kernel,
hnswlib} x {0, R repetitions of the 1,000 queries}; the difference between R and 0
repetitions is the search alone (loading the data and the index cancels out).
Reported per query. Extra arguments name lever variants to count as well, e.g.
"split, vectors padded to 64" "SQ8 traversal + exact re-rank (split)".
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EVENTS = "cycles,instructions,cache-misses,L1-dcache-load-misses,dTLB-load-misses"

CHILD = r"""
import sys, numpy as np
sys.path.insert(0, sys.argv[1])
import voisin, run_levers as R
from build import index_path
ds_name, which, ef, reps = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
voisin.omp_set_num_threads(1)
ds = voisin.datasets.load(ds_name).subset(1000, seed=0)
xb, xq, metric = ds.search_arrays()
xq = np.ascontiguousarray(xq)
index = voisin.read_index(str(index_path(ds_name, "voisin")))
if which.startswith("voisin"):
    name = which.split(":", 1)[1] if ":" in which else "ref (split, uint32 epoch, pf 4 lines)"
    v = R.build_variants(index, "levers" if ":" in which else "ref", lambda m: None)[name]
    v.kernel(xq[:5], ef)
    for _ in range(reps):
        v.kernel(xq, ef)
else:
    h = R.Hnswlib(index_path(ds_name, "hnswlib"), "ip" if metric == voisin.METRIC_INNER_PRODUCT
                  else "l2", index.d, index.ntotal)
    h.index.set_ef(ef)
    import hnswlib
    h.index.knn_query(xq[:5], k=10, num_threads=1)
    for _ in range(reps):
        h.index.knn_query(xq, k=10, num_threads=1)
"""


def perf(ds, which, ef, reps):
    p = subprocess.run(["perf", "stat", "-x", ",", "-e", EVENTS, sys.executable, "-c", CHILD,
                        str(HERE), ds, which, str(ef), str(reps)], capture_output=True, text=True,
                       check=True)
    out = {}
    for line in p.stderr.splitlines():
        parts = line.split(",")
        if len(parts) > 3 and parts[0].strip().isdigit():
            out[parts[2]] = int(parts[0])
    return out


def main(ds, ef, reps, out_path, *variants):
    ef, reps = int(ef), int(reps)
    res = {"dataset": ds, "ef": ef, "reps": reps, "queries": 1000, "events": EVENTS,
           "note": ("hnswlib timed through knn_query on the 1,000 queries in one call with "
                    "num_threads=1 (its batch path, one thread); voisin through the reference "
                    "prototype's serial kernel loop (same algorithm as voisin's search). "
                    "Per query = (counters with reps - counters with 0 reps) / (reps * 1000)."),
           "per_query": {}}
    for which in ("voisin", "hnswlib") + tuple(f"voisin:{v}" for v in variants):
        t0 = time.perf_counter()
        base = perf(ds, which, ef, 0)
        full = perf(ds, which, ef, reps)
        res["per_query"][which] = {k: (full[k] - base.get(k, 0)) / (reps * 1000) for k in full}
        res["per_query"][which]["wall_s_child_pair"] = time.perf_counter() - t0
        print(which, res["per_query"][which], flush=True)
    Path(out_path).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    # extra arguments: names of lever variants (run_levers.build_variants) to count too
    main(*sys.argv[1:5], *sys.argv[5:])
