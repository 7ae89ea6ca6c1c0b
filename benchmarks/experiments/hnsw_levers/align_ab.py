"""A/B: 64-byte-aligned vs 16-byte-offset HNSW arrays, same graph, same process.

    python benchmarks/experiments/hnsw_levers/align_ab.py glove-50-angular sq 16,32,64,128
    python benchmarks/experiments/hnsw_levers/align_ab.py glove-50-angular float 16,32,64,128

Searches the graph built by ``build.py`` (``/tmp/hnsw_levers/<dataset>.voisin``)
one Python call per query, 1,000 queries, with the storage, the level-0 lists
and (``sq``) the SQ8 traversal codes either on a cache line or 16 bytes past one
(where glibc puts numpy's large allocations); 5 interleaved rounds, medians.
Results: docs/hnsw-levers.md, "Alignment".
"""

import sys
import time

import numpy as np

import voisin
from voisin.indexes.hnsw import _SQ8Codes

from build import index_path


def copy_at(a: np.ndarray, offset: int, align: int = 64) -> np.ndarray:
    """A copy of ``a`` whose first byte is ``offset`` bytes past an ``align`` boundary."""
    raw = np.empty(a.nbytes + 2 * align, dtype=np.uint8)
    start = (-raw.ctypes.data) % align + offset
    out = raw[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


def main() -> None:
    dataset, mode = sys.argv[1], sys.argv[2]
    efs = [int(e) for e in (sys.argv[3] if len(sys.argv) > 3 else "16,32,64,128").split(",")]
    sub = voisin.datasets.load(dataset).subset(1000, seed=0)
    q = np.ascontiguousarray(sub.search_arrays()[1])
    index = voisin.read_index(str(index_path(dataset, "voisin")))
    index.sq8_traversal = mode == "sq"
    X, g, labels, slots, live, extra = index._snap
    snaps = {}
    for name, off in (("offset 16", 16), ("aligned", 0)):
        codes = None if extra is None else _SQ8Codes(copy_at(extra.codes, off), extra.sqp)
        snaps[name] = (copy_at(X, off), (copy_at(g[0], off),) + tuple(g[1:]), labels, slots,
                       live, codes)
    res: dict = {}
    for rnd in range(5):
        for name in (list(snaps) if rnd % 2 == 0 else list(snaps)[::-1]):
            index._snap = snaps[name]
            for ef in efs:
                index.hnsw.efSearch = ef
                t = time.perf_counter()
                for i in range(q.shape[0]):
                    index.search(q[i:i + 1], 10)
                res.setdefault((name, ef), []).append(q.shape[0] / (time.perf_counter() - t))
    for ef in efs:
        a, b = np.median(res[("offset 16", ef)]), np.median(res[("aligned", ef)])
        print(f"{mode} ef={ef}: offset 16 {a:.0f} QPS, aligned {b:.0f} QPS, ratio {b / a:.2f}")


if __name__ == "__main__":
    main()
