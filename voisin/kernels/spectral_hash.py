"""Scans of IndexIVFSpectralHash's lists: the query's code depends on the list.

With per-list thresholds (centroid or median) a query is binarised against
each probed list's thresholds, so query i carries one code per probe: row
``i * nprobe + p`` of ``qcodes``. The Hamming distance is the popcount kernel
of :mod:`voisin.kernels.hamming`; the heap breaks ties on the id as the binary
IVF scans do (:mod:`voisin.kernels.binary_ivf`).
"""

import numpy as np
from numba import njit

from .hamming import MISSING, hamming
from .heap import heap_replace_top, heap_sort_inplace


@njit(cache=True, nogil=True)
def sh_knn(qcodes, codes, ids, offsets, sizes, probes, max_codes, mask, use_mask, hd, hi):
    """k-NN of every query over its probed lists (``probes[i]``, -1 = none)."""
    nprobe = probes.shape[1]
    for i in range(probes.shape[0]):
        rd = hd[i]
        ri = hi[i]
        rd[:] = MISSING
        ri[:] = -1
        scanned = 0
        for p in range(nprobe):
            l = probes[i, p]
            if l < 0:
                continue
            q = i * nprobe + p
            o = offsets[l]
            for j in range(o, o + sizes[l]):
                if use_mask and not mask[j]:
                    continue
                dist = np.int32(hamming(qcodes, q, codes, j))
                if dist < rd[0]:
                    heap_replace_top(rd, ri, dist, ids[j])
            scanned += sizes[l]
            if max_codes > 0 and scanned >= max_codes:
                break
        heap_sort_inplace(rd, ri)


@njit(cache=True, nogil=True)
def sh_range(qcodes, codes, ids, offsets, sizes, probes, radius, mask, use_mask,
             counts, lims, D, I, fill):
    """Entries at distance < ``radius``: counted into ``counts`` (``fill`` False),
    then written at ``lims[i] ..`` (``fill`` True)."""
    nprobe = probes.shape[1]
    for i in range(probes.shape[0]):
        c = 0
        o_out = lims[i]
        for p in range(nprobe):
            l = probes[i, p]
            if l < 0:
                continue
            q = i * nprobe + p
            o = offsets[l]
            for j in range(o, o + sizes[l]):
                if use_mask and not mask[j]:
                    continue
                dist = hamming(qcodes, q, codes, j)
                if dist < radius:
                    if fill:
                        D[o_out + c] = dist
                        I[o_out + c] = ids[j]
                    c += 1
        counts[i] = c
