"""FAISS's result heaps (``float_maxheap_array_t`` / ``float_minheap_array_t``), exactly.

``kmin``, ``kmax`` and ``ResultHeap`` promise FAISS's answers, ties
included, and FAISS's heaps have two tie rules that kernels/heap.py does not
share: a candidate enters only when its value is *strictly* better than the
root's, and the root is the worst (value, id) pair, where for keep-max heaps
"worst" is the smallest value and then the smallest id. Which of several
equal values survive therefore depends on the order they arrive in; these
kernels replay that order.

A heap row holds FAISS's own values and ids (nothing negated), so a caller
can read, save and restore it between calls.
"""

from numba import njit


@njit(cache=True, nogil=True, inline="always")
def _above(keep_max, va, ia, vb, ib):
    """Whether (va, ia) belongs nearer the root than (vb, ib)."""
    if keep_max:
        return va < vb or (va == vb and ia < ib)
    return va > vb or (va == vb and ia > ib)


@njit(cache=True, nogil=True)
def _sift_down(hv, hi, size, v, idx, keep_max):
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        right = child + 1
        if right < size and _above(keep_max, hv[right], hi[right], hv[child], hi[child]):
            child = right
        if not _above(keep_max, hv[child], hi[child], v, idx):
            break
        hv[pos] = hv[child]
        hi[pos] = hi[child]
        pos = child
    hv[pos] = v
    hi[pos] = idx


@njit(cache=True, nogil=True)
def addn(hv, hi, vals, ids, use_ids, keep_max):
    """Offer row i of ``vals`` (with ``ids[i]``, or the column numbers when
    ``use_ids`` is false; ``ids`` of shape (1, n) is shared by every row)."""
    k = hv.shape[1]
    shared = ids.shape[0] == 1
    for i in range(vals.shape[0]):
        rv = hv[i]
        ri = hi[i]
        for j in range(vals.shape[1]):
            v = vals[i, j]
            if (v > rv[0]) if keep_max else (v < rv[0]):
                if use_ids:
                    idx = ids[0, j] if shared else ids[i, j]
                else:
                    idx = j
                _sift_down(rv, ri, k, v, idx, keep_max)


@njit(cache=True, nogil=True)
def addn_rows(hv, hi, rows, vals, ids, keep_max):
    """``addn`` into heap rows ``rows[i]`` (a subset of the queries)."""
    k = hv.shape[1]
    shared = ids.shape[0] == 1
    for i in range(vals.shape[0]):
        rv = hv[rows[i]]
        ri = hi[rows[i]]
        for j in range(vals.shape[1]):
            v = vals[i, j]
            if (v > rv[0]) if keep_max else (v < rv[0]):
                _sift_down(rv, ri, k, v, ids[0, j] if shared else ids[i, j], keep_max)


@njit(cache=True, nogil=True)
def reorder(hv, hi, keep_max, neutral):
    """Sort each heap row best first; entries with id -1 move to the end as
    (neutral, -1), as FAISS's ``heap_reorder``."""
    k = hv.shape[1]
    for i in range(hv.shape[0]):
        rv = hv[i]
        ri = hi[i]
        for size in range(k, 1, -1):
            v = rv[size - 1]
            idx = ri[size - 1]
            rv[size - 1] = rv[0]
            ri[size - 1] = ri[0]
            _sift_down(rv, ri, size - 1, v, idx, keep_max)
        # sorted best first; drop the -1 entries as FAISS does
        out = 0
        for t in range(k):
            if ri[t] != -1:
                rv[out] = rv[t]
                ri[out] = ri[t]
                out += 1
        for t in range(out, k):
            rv[t] = neutral
            ri[t] = -1
