"""Build the three graphs the lever experiments search, once, into /tmp/hnsw_levers/.

    python benchmarks/experiments/hnsw_levers/build.py glove-50-angular voisin
    python benchmarks/experiments/hnsw_levers/build.py glove-50-angular hnswlib
    python benchmarks/experiments/hnsw_levers/build.py glove-50-angular faiss

voisin IndexHNSWFlat(d, 16) and hnswlib M=16 with efConstruction 200, faiss
IndexHNSWFlat(d, 32) with efConstruction 200, all on the full train set
(angular data L2-normalised and searched by inner product, as `voisin bench`
does), 2 threads. Indexes are cached outside the repository; build times are
written next to them (build_times.json) and copied into the results.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

CACHE = Path(os.environ.get("HNSW_LEVERS_CACHE", "/tmp/hnsw_levers"))
THREADS = 2


def index_path(dataset: str, lib: str) -> Path:
    ext = {"voisin": "voisin", "hnswlib": "hnswlib", "faiss": "faiss"}[lib]
    return CACHE / f"{dataset}.{ext}"


def main(dataset: str, lib: str) -> None:
    import numpy as np
    import voisin
    ds = voisin.datasets.load(dataset)
    xb, _, metric = ds.search_arrays()
    d = xb.shape[1]
    CACHE.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if lib == "voisin":
        voisin.omp_set_num_threads(THREADS)
        index = voisin.IndexHNSWFlat(d, 16, metric)
        index.hnsw.efConstruction = 200
        index.add(xb)
        build_s = time.perf_counter() - t0
        voisin.write_index(index, str(index_path(dataset, lib)))
    elif lib == "hnswlib":
        import hnswlib
        index = hnswlib.Index(space="ip" if metric == voisin.METRIC_INNER_PRODUCT else "l2", dim=d)
        index.init_index(max_elements=xb.shape[0], M=16, ef_construction=200, random_seed=100)
        index.add_items(xb, np.arange(xb.shape[0]), num_threads=THREADS)
        build_s = time.perf_counter() - t0
        index.save_index(str(index_path(dataset, lib)))
    elif lib == "faiss":
        import faiss
        faiss.omp_set_num_threads(THREADS)
        index = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT
                                    if metric == voisin.METRIC_INNER_PRODUCT else faiss.METRIC_L2)
        index.hnsw.efConstruction = 200
        index.add(xb)
        build_s = time.perf_counter() - t0
        faiss.write_index(index, str(index_path(dataset, lib)))
    else:
        raise SystemExit(f"lib: expected voisin, hnswlib or faiss, got {lib!r}")
    times_path = CACHE / "build_times.json"
    times = json.loads(times_path.read_text()) if times_path.exists() else {}
    times[f"{dataset}/{lib}"] = {"build_s": build_s, "threads": THREADS, "n": int(xb.shape[0]),
                                 "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    times_path.write_text(json.dumps(times, indent=1))
    print(f"{dataset} {lib}: built in {build_s:.1f} s -> {index_path(dataset, lib)}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
