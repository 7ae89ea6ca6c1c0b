"""Scans of binary inverted lists: each query walks the slab rows of its probed lists.

The slab is :class:`voisin.InvertedLists`' (list l at rows ``offsets[l] ..
offsets[l] + sizes[l]``), its codes viewed as machine words (see
:mod:`voisin.kernels.hamming`). Ids in a list are not in increasing order, so
the heap breaks ties on the id explicitly (``heap_push``): results come out in
(distance, id) order whatever the order of the lists.
"""

import numpy as np
from numba import njit

from .hamming import MISSING, hamming
from .heap import heap_push, heap_sort_inplace


@njit(cache=True, nogil=True)
def ivf_knn(xq, codes, ids, offsets, sizes, probes, q0, q1, max_codes, mask, use_mask, hd, hi):
    """k-NN of queries q0..q1-1 over their probed lists (``probes[i]``, -1 = none),
    stopping after ``max_codes`` scanned codes when it is > 0."""
    for i in range(q0, q1):
        rd = hd[i]
        ri = hi[i]
        rd[:] = MISSING
        ri[:] = -1
        scanned = 0
        for p in range(probes.shape[1]):
            l = probes[i, p]
            if l < 0:
                continue
            o = offsets[l]
            for j in range(o, o + sizes[l]):
                if use_mask and not mask[j]:
                    continue
                dist = np.int32(hamming(xq, i, codes, j))
                if dist <= rd[0]:
                    heap_push(rd, ri, dist, ids[j])
            scanned += sizes[l]
            if max_codes > 0 and scanned >= max_codes:
                break
        heap_sort_inplace(rd, ri)


@njit(cache=True, nogil=True)
def ivf_range(xq, codes, ids, offsets, sizes, probes, q0, q1, radius, mask, use_mask,
              counts, lims, D, I, fill):
    """Range search over the probed lists: with ``fill`` False count each query's
    results into ``counts``, with ``fill`` True write them at ``lims[i] ..``."""
    for i in range(q0, q1):
        c = 0
        o_out = lims[i]
        for p in range(probes.shape[1]):
            l = probes[i, p]
            if l < 0:
                continue
            o = offsets[l]
            for j in range(o, o + sizes[l]):
                if use_mask and not mask[j]:
                    continue
                dist = hamming(xq, i, codes, j)
                if dist < radius:
                    if fill:
                        D[o_out + c] = dist
                        I[o_out + c] = ids[j]
                    c += 1
        counts[i] = c
