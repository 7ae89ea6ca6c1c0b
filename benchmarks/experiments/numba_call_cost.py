"""numba's per-call cost for the HNSW search signature: 28 separate arguments, the same
arrays grouped in plain tuples, or grouped in namedtuples.

    python benchmarks/experiments/numba_call_cost.py

The kernel body reads one element of three arrays, so the time is the dispatcher's:
typing the arguments (numba fingerprints arrays and plain tuples in C, but types a
namedtuple in Python) and unboxing them. Result and the rule it gave: docs/hnsw.md,
"Graph layout" (plain tuples at the boundary, namedtuples inside the kernels).
"""

import time
from collections import namedtuple

import numpy as np
from numba import njit

G = namedtuple("G", "nb0 upper upper_off levels")
S = namedtuple("S", "X sqp")
W = namedtuple("W", "visited epoch cd ci rd ri")
F = namedtuple("F", "mask labels")


@njit(cache=True, nogil=True)
def separate(q, k, ef, X, nb0, upper, upper_off, entry, max_level, metric, sq, sqp, visited,
             epoch, cd, ci, rd, ri, mask, use_mask, labels, use_labels, tuning, Xf, rerank, proj,
             D, I):
    return X[0, 0] + nb0[0, 0] + D[0, 0]


@njit(cache=True, nogil=True)
def grouped(q, k, ef, g, s, w, f, opts, D, I):
    return s[0][0, 0] + g[0][0, 0] + D[0, 0]


def main(n: int = 100_000, rounds: int = 5) -> None:
    X = np.zeros((10, 8), np.float32)
    nb0 = np.zeros((10, 4), np.int32)
    up = np.zeros((10, 2), np.int32)
    uo = np.zeros(10, np.int64)
    lv = np.zeros(10, np.int32)
    sqp = np.zeros((3, 8), np.float32)
    vis = np.zeros(10, np.uint32)
    ep = np.zeros(1, np.int64)
    cd = np.zeros(11, np.float32)
    ci = np.zeros(11, np.int32)
    m = np.zeros(1, np.bool_)
    lab = np.zeros(1, np.int64)
    tune = np.zeros(2, np.int64)
    proj = np.zeros((1, 0), np.float32)
    D = np.zeros((1, 10), np.float32)
    I = np.zeros((1, 10), np.int64)
    q = np.zeros((1, 8), np.float32)
    named = (G(nb0, up, uo, lv), S(X, sqp), W(vis, ep, cd, ci, cd, ci), F(m, lab))
    plain = tuple(tuple(t) for t in named)
    opts = (1, True, False, False)

    def call_separate():
        separate(q, 10, 16, X, nb0, up, uo, 0, 0, 1, False, sqp, vis, ep, cd, ci, cd, ci, m, False,
                 lab, False, tune, X, False, proj, D, I)

    cases = {"28 separate arguments": call_separate,
             "plain tuples": lambda: grouped(q, 10, 16, *plain, opts, D, I),
             "namedtuples": lambda: grouped(q, 10, 16, *named, opts, D, I)}
    for fn in cases.values():
        fn()  # compile
    best = {name: float("inf") for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            t = time.perf_counter()
            for _ in range(n):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t) / n)
    for name, t in best.items():
        print(f"{name:24s} {1e6 * t:.2f} us per call (best of {rounds} x {n})")


if __name__ == "__main__":
    main()
