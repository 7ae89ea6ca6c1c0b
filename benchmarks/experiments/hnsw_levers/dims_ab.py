"""Recall and single-query QPS of HNSW traversal on float, SQ8 and PCA-projected SQ8
codes (``IndexHNSWFlat.traversal_dims``), same graph, same process.

    python benchmarks/experiments/hnsw_levers/dims_ab.py fashion-mnist-784-euclidean \\
        -1,0,96,128,160 12,16,24,32,40

Dimension list: -1 = float traversal, 0 = SQ8 of all dimensions, k > 0 = SQ8 of
the projection on k principal axes. Searches the graph built by ``build.py``,
one Python call per query, 1,000 queries, 3 interleaved rounds (median QPS);
recall@10 with ties (voisin.evaluate) against the dataset's ground truth.
Results: docs/hnsw-levers.md, "Projected traversal codes".
"""

import sys
import time

import numpy as np

import voisin
from voisin.evaluate import recall_at_k

from build import index_path


def main() -> None:
    dataset = sys.argv[1]
    dims = [int(v) for v in sys.argv[2].split(",")]
    efs = [int(v) for v in sys.argv[3].split(",")]
    sub = voisin.datasets.load(dataset).subset(1000, seed=0)
    _, q, _ = sub.search_arrays()
    q = np.ascontiguousarray(q)
    index = voisin.read_index(str(index_path(dataset, "voisin")))
    snaps = {}
    for k in dims:
        index.sq8_traversal = k >= 0
        index.traversal_dims = max(k, 0)
        snaps[k] = index._snap
    res: dict = {}
    for rnd in range(3):
        for k in dims:
            index._snap = snaps[k]
            for ef in efs:
                index.hnsw.efSearch = ef
                D = np.empty((q.shape[0], 10), np.float32)
                I = np.empty((q.shape[0], 10), np.int64)
                t = time.perf_counter()
                for i in range(q.shape[0]):
                    D[i:i + 1], I[i:i + 1] = index.search(q[i:i + 1], 10)
                res.setdefault((k, ef), []).append(q.shape[0] / (time.perf_counter() - t))
                if rnd == 0:
                    res[(k, ef, "recall")] = float(recall_at_k(
                        I, sub.distances[:, :10], 10, xq=sub.test, xb=sub.train, metric=sub.metric))
    for k in dims:
        name = "float" if k < 0 else ("SQ8" if k == 0 else f"SQ8 PCA {k}")
        print(name, "  ".join(f"ef{ef}: {res[(k, ef, 'recall')]:.3f} / {np.median(res[(k, ef)]):.0f}"
                              for ef in efs))


if __name__ == "__main__":
    main()
