"""Hash-table scans for IndexBinaryHash / IndexBinaryMultiHash.

Tables are sorted key arrays: table t holds the keys ``keys[key_off[t]:key_off[t+1]]``
(ascending), and the bucket of global key g lists the rows ``rows[starts[g] :
starts[g+1]]`` of the code array ``X`` (machine words), whose ids are ``ids[row]``.
A query probes, in every table, its own key XOR each of the ``flips`` masks
(every pattern of at most nflip bits), then ranks the rows it found by their
full Hamming distance. A row reached through several tables is scored once
(an epoch-marked visited array), as FAISS's MultiHash dedupes its shortlist.
"""

import numpy as np
from numba import njit

from .hamming import MISSING, hamming
from .heap import heap_push, heap_sort_inplace


@njit(cache=True, nogil=True)
def _bucket(keys, lo, hi, key):
    """Global index of ``key`` in the sorted ``keys[lo:hi]``, or -1."""
    a = lo
    b = hi
    while a < b:
        m = (a + b) >> 1
        if keys[m] < key:
            a = m + 1
        else:
            b = m
    if a < hi and keys[a] == key:
        return a
    return -1


@njit(cache=True, nogil=True)
def hash_scan(Q, qkeys, flips, keys, key_off, starts, rows, X, ids, q0, q1, visited, epoch,
              radius, counts, lims, hd, hi, mode):
    """mode 0: k-NN into the heaps hd/hi (sorted on exit); mode 1: count the rows at
    distance < radius into ``counts``; mode 2: write them at ``lims[i] ..`` of hd/hi."""
    ntables = key_off.shape[0] - 1
    for i in range(q0, q1):
        e = epoch[0] + 1
        if e >= 4294967295:
            visited[:] = 0
            e = 1
        epoch[0] = e
        if mode == 0:
            hd[i, :] = MISSING
            hi[i, :] = -1
        c = 0
        for t in range(ntables):
            qk = qkeys[i, t]
            for f in range(flips.shape[0]):
                g = _bucket(keys, key_off[t], key_off[t + 1], qk ^ flips[f])
                if g < 0:
                    continue
                for s in range(starts[g], starts[g + 1]):
                    r = rows[s]
                    if visited[r] == e:
                        continue
                    visited[r] = e
                    dist = np.int32(hamming(Q, i, X, r))
                    if mode == 0:
                        if dist <= hd[i, 0]:
                            heap_push(hd[i], hi[i], dist, ids[r])
                    elif dist < radius:
                        if mode == 2:
                            hd[0, lims[i] + c] = dist
                            hi[0, lims[i] + c] = ids[r]
                        c += 1
        if mode == 0:
            heap_sort_inplace(hd[i], hi[i])
        else:
            counts[i] = c
