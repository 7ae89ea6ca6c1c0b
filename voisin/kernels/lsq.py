"""Local-search quantizer kernel: iterated conditional modes with perturbations.

LSQ (FAISS's ``LocalSearchQuantizer``) encodes x with M codebooks of K
codewords by minimising ``||x - sum_m c_m||^2`` one sub-code at a time: with
the others fixed, sub-code m takes the k that minimises the *unary* term
``||c_mk||^2 - 2 <x, c_mk>`` plus the *binary* terms ``2 <c_mk, c_m'k'>``
of the other sub-codes (``icm_iters`` sweeps over m). Iterated local search
wraps it: perturb ``nperts`` random sub-codes, run ICM, keep the result when
the reconstruction error drops (``ils_iters`` rounds). Vectors are
independent, so they are spread across threads; the random perturbations are
drawn by the caller.
"""

import numpy as np
from numba import njit, prange

from . import FASTMATH


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _error(x, i, codebooks, code):
    M, K, d = codebooks.shape
    s = np.float32(0.0)
    for j in range(d):
        v = x[i, j]
        for m in range(M):
            v -= codebooks[m, code[m], j]
        s += v * v
    return s


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def icm_ils(x, codebooks, unaries, binaries, codes, pert_m, pert_k, icm_iters):
    """Refine ``codes`` (n, M) int32 in place.

    ``codebooks`` (M, K, d); ``unaries`` (n, M*K); ``binaries`` (M, M, K, K)
    = 2 <c_mk, c_m'k'>; ``pert_m`` / ``pert_k`` (ils_iters, n, nperts): the
    sub-codes to perturb and their new values at each local-search round.
    """
    n, M = codes.shape
    K = codebooks.shape[1]
    ils = pert_m.shape[0]
    nperts = pert_m.shape[2]
    for i in prange(n):
        best = codes[i].copy()
        best_err = _error(x, i, codebooks, best)
        cur = np.empty(M, dtype=np.int32)
        obj = np.empty(K, dtype=np.float32)
        for it in range(ils):
            for m in range(M):
                cur[m] = best[m]
            for t in range(nperts):
                cur[pert_m[it, i, t]] = pert_k[it, i, t]
            for _ in range(icm_iters):
                for m in range(M):
                    for k in range(K):
                        obj[k] = unaries[i, m * K + k]
                    for om in range(M):
                        if om == m:
                            continue
                        row = binaries[m, om]
                        c2 = cur[om]
                        for k in range(K):
                            obj[k] += row[k, c2]
                    bk = 0
                    bo = obj[0]
                    for k in range(1, K):
                        if obj[k] < bo:
                            bo = obj[k]
                            bk = k
                    cur[m] = bk
            err = _error(x, i, codebooks, cur)
            if err < best_err:
                best_err = err
                for m in range(M):
                    best[m] = cur[m]
        for m in range(M):
            codes[i, m] = best[m]
