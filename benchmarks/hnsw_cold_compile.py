"""Cold numba compile of HNSW: every kernel a user meets, timed step by step.

    rm -rf /tmp/numba-cold && NUMBA_CACHE_DIR=/tmp/numba-cold python benchmarks/hnsw_cold_compile.py
    NUMBA_CACHE_DIR=/tmp/numba-cold python benchmarks/hnsw_cold_compile.py   # warm: a second process

Each step's time is almost all compilation on an empty cache (3,000 vectors of 32
dimensions: the work itself takes milliseconds). Results: docs/hnsw.md, "Measurements".
"""

import time

t0 = time.perf_counter()
import numpy as np  # noqa: E402

import voisin  # noqa: E402

t1 = time.perf_counter()
x = np.random.default_rng(0).random((3000, 32)).astype(np.float32)


def step(name, fn):
    t = time.perf_counter()
    fn()
    print(f"  {name}: {time.perf_counter() - t:.2f} s", flush=True)


def main() -> None:
    index = voisin.IndexHNSWFlat(32, 16)
    step("build (batched insertion, SQ8 walk)", lambda: index.add(x))
    step("search, one query", lambda: index.search(x[:1], 10))
    step("search, batch", lambda: index.search(x[:500], 10))

    def sq8():
        ix = voisin.index_factory(32, "HNSW16_SQ8,RFlat")
        ix.train(x)
        ix.add(x)
        ix.search(x[:1], 10)
        ix.search(x[:500], 10)
    step("HNSW16_SQ8,RFlat build + search (one + batch)", sq8)

    def pca():
        ix = voisin.index_factory(32, "PCA8,HNSW16_SQ8,RFlat")
        ix.train(x)
        ix.add(x)
        ix.search(x[:1], 10)
        ix.search(x[:500], 10)
    step("PCA8,HNSW16_SQ8,RFlat build + search (one + batch)", pca)
    ip = voisin.IndexHNSWFlat(32, 16, voisin.METRIC_INNER_PRODUCT)
    step("inner-product build + search", lambda: (ip.add(x), ip.search(x[:1], 10),
                                                  ip.search(x[:500], 10)))
    print(f"import {t1 - t0:.2f} s, total {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
