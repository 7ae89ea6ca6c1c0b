"""Fixed-size max-heaps of (cost, id) pairs, the top-k structure of every scan.

Costs are "smaller is better" (L2 distance, or minus the inner product), so the
root holds the worst of the k kept results and a candidate enters when it beats
the root. Ties break on the smaller id, which makes results deterministic.
"""

import numpy as np
from numba import njit

from . import FASTMATH


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def heap_init(hd, hi):
    for t in range(hd.shape[0]):
        hd[t] = np.inf
        hi[t] = -1


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _sift_down(hd, hi, size, cost, idx, pos=0):
    """Place (cost, idx) at ``pos`` and sift it down within hd[:size]."""
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        right = child + 1
        if right < size and (hd[right] > hd[child] or (hd[right] == hd[child] and hi[right] > hi[child])):
            child = right
        if hd[child] < cost or (hd[child] == cost and hi[child] < idx):
            break
        hd[pos] = hd[child]
        hi[pos] = hi[child]
        pos = child
    hd[pos] = cost
    hi[pos] = idx


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def heap_replace_top(hd, hi, cost, idx):
    """Replace the root by (cost, idx) and restore the max-heap order."""
    _sift_down(hd, hi, hd.shape[0], cost, idx)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def heap_push(hd, hi, cost, idx):
    """Offer (cost, idx): kept only when it beats the current worst."""
    if cost < hd[0] or (cost == hd[0] and idx < hi[0]):
        _sift_down(hd, hi, hd.shape[0], cost, idx)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def heap_sort_inplace(hd, hi):
    """Heap-sort in place into ascending (cost, id) order; empty slots (inf, -1) end last."""
    for size in range(hd.shape[0] - 1, 0, -1):
        c = hd[size]
        i = hi[size]
        hd[size] = hd[0]
        hi[size] = hi[0]
        _sift_down(hd, hi, size, c, i)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def heap_sort_any(hd, hi):
    """Sort arbitrary (cost, id) pairs ascending: heapify, then heap-sort."""
    k = hd.shape[0]
    for pos in range(k // 2 - 1, -1, -1):
        _sift_down(hd, hi, k, hd[pos], hi[pos], pos)
    heap_sort_inplace(hd, hi)


# voisin.metric.METRIC_L2; any other metric stores costs as negated scores
_METRIC_L2 = 1


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def finalize_heap(rd, ri, metric, worst):
    """Sort a heap in place and turn costs back into FAISS distances
    (missing slots get ``worst``; similarity costs are negated back)."""
    heap_sort_inplace(rd, ri)
    for t in range(rd.shape[0]):
        if ri[t] < 0:
            rd[t] = worst
        elif metric != _METRIC_L2:
            rd[t] = -rd[t]


# --- heaps with an explicit size ---------------------------------------------------------
# The graph walks grow and shrink their heaps (a candidate min-heap, a result max-heap of
# at most ef entries) instead of keeping k slots filled with sentinels. Ties are not
# broken on ids here: a walk's order of discovery decides, as in hnswlib and FAISS.

@njit(cache=True, nogil=True, fastmath=FASTMATH)
def min_push(hd, hi, size, c, v):
    """Push (c, v) on the min-heap hd/hi of ``size`` entries; returns the new size."""
    pos = size
    while pos > 0:
        parent = (pos - 1) >> 1
        if hd[parent] <= c:
            break
        hd[pos] = hd[parent]
        hi[pos] = hi[parent]
        pos = parent
    hd[pos] = c
    hi[pos] = v
    return size + 1


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def min_pop(hd, hi, size):
    """Drop the root of the min-heap (the caller read it first); returns the new size."""
    size -= 1
    c = hd[size]
    v = hi[size]
    pos = 0
    while True:
        ch = 2 * pos + 1
        if ch >= size:
            break
        if ch + 1 < size and hd[ch + 1] < hd[ch]:
            ch += 1
        if hd[ch] >= c:
            break
        hd[pos] = hd[ch]
        hi[pos] = hi[ch]
        pos = ch
    hd[pos] = c
    hi[pos] = v
    return size


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def max_push(hd, hi, size, c, v):
    """Push (c, v) on the max-heap hd/hi of ``size`` entries; returns the new size."""
    pos = size
    while pos > 0:
        parent = (pos - 1) >> 1
        if hd[parent] >= c:
            break
        hd[pos] = hd[parent]
        hi[pos] = hi[parent]
        pos = parent
    hd[pos] = c
    hi[pos] = v
    return size + 1


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def max_replace_top(hd, hi, size, c, v):
    """Replace the root of a max-heap by (c, v): one sift-down, not a pop and a push."""
    pos = 0
    while True:
        ch = 2 * pos + 1
        if ch >= size:
            break
        if ch + 1 < size and hd[ch + 1] > hd[ch]:
            ch += 1
        if hd[ch] <= c:
            break
        hd[pos] = hd[ch]
        hi[pos] = hi[ch]
        pos = ch
    hd[pos] = c
    hi[pos] = v


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def max_pop(hd, hi, size):
    """Drop the root of the max-heap; returns the new size."""
    size -= 1
    max_replace_top(hd, hi, size, hd[size], hi[size])
    return size


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def max_drain_sorted(rd, ri, nres, outd, outi):
    """Empty the max-heap ``rd/ri`` (size nres) into ascending ``outd/outi``; returns nres."""
    n = nres
    for t in range(n - 1, -1, -1):
        outd[t] = rd[0]
        outi[t] = ri[0]
        nres = max_pop(rd, ri, nres)
    return n
