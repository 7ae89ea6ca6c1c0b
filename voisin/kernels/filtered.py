"""Kernels of filtered search (policy in ``voisin.filtering``).

A filtered IVF search that probes lists keeps probing, in each query's own
centroid order, until it has seen a target number of *allowed* entries; the
lists after that point are dropped (set to -1, which every IVF scan skips).
"""

from numba import njit, prange

from . import FASTMATH


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def cut_probes(probes, list_allowed, target, kept):
    """Truncate each row of ``probes`` (lists in probe order, -1 = none) right
    after the list at which the running count of allowed entries reaches
    ``target``; later entries become -1. ``kept[i]`` receives the number of
    lists left in row i (the caller trims the columns to ``kept.max()``)."""
    for i in prange(probes.shape[0]):
        seen = 0
        n = 0
        for p in range(probes.shape[1]):
            l = probes[i, p]
            if seen >= target or l < 0:
                probes[i, p] = -1
                continue
            seen += list_allowed[l]
            n = p + 1
        kept[i] = n
