"""Kernels of IndexIVFFlatDedup: duplicate expansion of results and the
list order FAISS leaves after ``remove_ids``.

The duplicates are a table sorted by stored id: ``keys`` (sorted int64),
``starts`` and ``counts`` (where each key's duplicate ids lie in ``values``).
"""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _find(keys, key):
    """Position of ``key`` in the sorted ``keys``, -1 when absent."""
    p = np.searchsorted(keys, key)
    if p < keys.size and keys[p] == key:
        return p
    return -1


@njit(cache=True, nogil=True)
def expand_duplicates(D, I, keys, starts, counts, values):
    """Rewrite each row of (D, I) in place as FAISS does: from the first
    result that has duplicates on, every result is followed by its duplicate
    ids (same distance), and the row is cut at k."""
    nq, k = I.shape
    lab2 = np.empty(k, dtype=np.int64)
    dis2 = np.empty(k, dtype=np.float32)
    for q in range(nq):
        j = 0
        while j < k and _find(keys, I[q, j]) < 0:
            j += 1
        if j == k:
            continue
        j0 = j
        rp = j
        while j < k:
            lab = I[q, rp]
            dis = D[q, rp]
            lab2[j] = lab
            dis2[j] = dis
            j += 1
            p = _find(keys, lab)
            if p >= 0:
                s = starts[p]
                t = 0
                while j < k and t < counts[p]:
                    lab2[j] = values[s + t]
                    dis2[j] = dis
                    j += 1
                    t += 1
            rp += 1
        for t in range(j0, k):
            I[q, t] = lab2[t]
            D[q, t] = dis2[t]


@njit(cache=True, nogil=True)
def removal_order(member, replaced):
    """FAISS's in-place removal of one list: a removed entry with no duplicate
    left takes the list's last entry (and is looked at again), one whose
    duplicate survives stays (with the duplicate's id). Returns the source
    position of every entry kept, in the list's new order."""
    n = member.size
    pos = np.arange(n)
    l = n
    j = 0
    while j < l:
        if member[pos[j]] and not replaced[pos[j]]:
            l -= 1
            pos[j] = pos[l]
        else:
            j += 1
    return pos[:l].copy()
