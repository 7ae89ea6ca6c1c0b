"""HNSW graph kernels: insertion (serial and batched-parallel) and search.

Graph layout (FAISS's, split in two arrays so level 0 is one contiguous block):

* ``nb0`` (n, 2M) int32: level-0 neighbours of each node, -1 marks an empty slot
  (lists are packed: the first -1 ends the list).
* ``upper`` (rows, M) int32 and ``upper_off`` (n,) int64: node i's level-l list
  (l >= 1) is row ``upper_off[i] + l - 1``; ``levels[i]`` is the number of
  levels of node i (FAISS's convention: level + 1).

Storage is either float32 vectors or SQ8 codes (``sq=True``): codes are uint8,
``sqp`` rows are (vmin, scale, scale^2) per dimension and a code c decodes to
``vmin + scale * (c + 0.5)``. A query is turned once into the form the inner
loop wants (:func:`prep_query`) so the SQ8 distance is one fused pass over the
codes, with no per-element decode.

Costs are "smaller is better": squared L2, or minus the inner product.
"""

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from . import FASTMATH
from .simd import dot_qrow, dot_rows, sqdist_qrow, sqdist_rows

METRIC_IP = 0
METRIC_L2 = 1
# cache lines of each neighbour's vector prefetched during construction
PREFETCH_LINES = 4
# float L2 distances of at least this many dimensions may be abandoned early.
# Off by default: measured 2x slower on fashion-mnist (784-d; 4,430 vs 8,180 QPS at
# ef=20, interleaved runs) - the blocked loop vectorises worse than one plain pass.
EARLY_ABORT_MIN_DIM = 1 << 30


# --- prefetch -------------------------------------------------------------------

@intrinsic
def prefetch_row(typingctx, arr, row, byte_offset):
    """Ask the CPU to start loading ``arr[row]`` (2-D C array) at ``byte_offset``.

    numba has no prefetch; this emits LLVM's ``llvm.prefetch`` (read, high
    locality) so the rows of a whole neighbour list are in flight at once
    instead of being fetched one distance at a time.
    """
    def codegen(context, builder, sig, args):
        aryty = sig.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        zero = context.get_constant(types.intp, 0)
        idx = context.cast(builder, args[1], sig.args[1], types.intp)
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [idx, zero])
        i8p = builder.bitcast(ptr, ir.IntType(8).as_pointer())
        off = context.cast(builder, args[2], sig.args[2], types.intp)
        i8p = builder.gep(i8p, [off])
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [i8p, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()
    return types.void(arr, row, byte_offset), codegen


# --- distances -----------------------------------------------------------------

@njit(cache=True, nogil=True, fastmath=FASTMATH)
def prep_query(q, metric, sq, sqp, qv):
    """Write the query's inner-loop form into ``qv``; returns the IP constant.

    ``qv`` may be longer than the query (rows of the storage padded for the
    traversal): the tail is zeroed, and the padded ``sqp`` columns are 0 too,
    so the padding adds nothing while the distance loop runs whole vectors.
    """
    d = q.shape[0]
    for t in range(d, qv.shape[0]):
        qv[t] = np.float32(0.0)
    if not sq:
        for t in range(d):
            qv[t] = q[t]
        return np.float32(0.0)
    if metric == METRIC_L2:
        # ||q - (vmin + s (c + .5))||^2 = sum s^2 ((q - vmin)/s - .5 - c)^2; a
        # dimension with s = 0 adds the constant (q - vmin)^2, returned here
        c = np.float32(0.0)
        for t in range(d):
            s = sqp[1, t]
            if s > 0:
                qv[t] = (q[t] - sqp[0, t]) / s - np.float32(0.5)
            else:
                qv[t] = np.float32(0.0)
                e = q[t] - sqp[0, t]
                c += e * e
        return c
    c = np.float32(0.0)
    for t in range(d):
        qv[t] = q[t] * sqp[1, t]
        c += q[t] * (sqp[0, t] + np.float32(0.5) * sqp[1, t])
    return c


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def dist_q(qv, X, j, metric, sq, sqp, qc):
    """Cost between a prepared query and stored node ``j``."""
    d = qv.shape[0]
    s = np.float32(0.0)
    if metric == METRIC_L2:
        if sq:
            for t in range(d):
                e = qv[t] - np.float32(X[j, t])
                s += sqp[2, t] * e * e
            return s + qc
        return sqdist_qrow(qv, X, j)
    if sq:
        for t in range(d):
            s += qv[t] * np.float32(X[j, t])
        return -(s + qc)
    return -dot_qrow(qv, X, j)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def l2_bounded(qv, X, j, bound):
    """Squared L2, abandoned once a partial sum exceeds ``bound``.

    Partial L2 sums only grow, so a candidate already worse than the current
    ef-th result is rejected after a fraction of the dimensions; the value
    returned is then some number > bound (never used beyond that test).
    Blocks of 64 keep the inner loop vectorised.
    """
    d = qv.shape[0]
    s = np.float32(0.0)
    t0 = 0
    while t0 < d:
        t1 = min(d, t0 + 64)
        for t in range(t0, t1):
            e = qv[t] - X[j, t]
            s += e * e
        if s > bound:
            return s
        t0 = t1
    return s


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def closer_than(X, i, j, bound, metric, sq, sqp, abort_min_dim):
    """cost(i, j) < bound, abandoning long float L2 sums once they pass ``bound``."""
    d = X.shape[1]
    if metric != METRIC_L2 or sq or d < abort_min_dim:
        return dist_nodes(X, i, j, metric, sq, sqp) < bound
    s = np.float32(0.0)
    t0 = 0
    while t0 < d:
        t1 = min(d, t0 + 64)
        for t in range(t0, t1):
            e = X[i, t] - X[j, t]
            s += e * e
        if s >= bound:
            return False
        t0 = t1
    return s < bound


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def dist_nodes(X, i, j, metric, sq, sqp):
    """Cost between two stored nodes (decoded values for SQ8)."""
    d = X.shape[1]
    s = np.float32(0.0)
    if metric == METRIC_L2:
        if sq:
            for t in range(d):
                e = np.float32(X[i, t]) - np.float32(X[j, t])
                s += sqp[2, t] * e * e
            return s
        return sqdist_rows(X, i, j)
    if sq:
        for t in range(d):
            a = sqp[0, t] + sqp[1, t] * (np.float32(X[i, t]) + np.float32(0.5))
            b = sqp[0, t] + sqp[1, t] * (np.float32(X[j, t]) + np.float32(0.5))
            s += a * b
        return -s
    return -dot_rows(X, i, j)


# --- heaps over (cost, node) with an explicit size -------------------------------

@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _min_push(hd, hi, size, c, v):
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
def _min_pop(hd, hi, size):
    """Drop the root (the caller read it first); returns the new size."""
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
def _max_push(hd, hi, size, c, v):
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
def _max_pop(hd, hi, size):
    size -= 1
    c = hd[size]
    v = hi[size]
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
    return size


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def heap_to_sorted(rd, ri, nres, outd, outi):
    """Empty the result max-heap ``rd/ri`` (size nres) into ascending ``outd/outi``."""
    n = nres
    for t in range(n - 1, -1, -1):
        outd[t] = rd[0]
        outi[t] = ri[0]
        nres = _max_pop(rd, ri, nres)
    return n


# --- graph traversal ---------------------------------------------------------------

@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _row(level, node, nb0, upper, upper_off):
    if level == 0:
        return nb0[node]
    return upper[upper_off[node] + level - 1]


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def greedy_descend(qv, qc, X, cur, curd, top, stop, upper, upper_off, metric, sq, sqp):
    """Greedy walk (beam 1) from ``cur`` through levels top..stop+1; returns (node, cost)."""
    for level in range(top, stop, -1):
        changed = True
        while changed:
            changed = False
            r = upper_off[cur] + level - 1
            for t in range(upper.shape[1]):
                v = upper[r, t]
                if v < 0:
                    break
                c = dist_q(qv, X, v, metric, sq, sqp, qc)
                if c < curd:
                    curd = c
                    cur = v
                    changed = True
    return cur, curd


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _max_replace_top(hd, hi, size, c, v):
    """Replace the root of a full max-heap by (c, v) (one sift-down, not pop + push)."""
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
def search_layer(qv, qc, X, level, nb0, upper, upper_off, ep, epd, ef, metric, sq, sqp,
                 visited, epoch, cd, ci, rd, ri, mask, use_mask, prefetch_lines, abort_min_dim):
    """Best-first search of one level from entry ``ep`` (cost ``epd``).

    Keeps the ``ef`` best nodes in the max-heap rd/ri and returns how many it
    holds. With ``use_mask``, only allowed nodes enter the results but every
    node may be traversed (FAISS's filtered-HNSW semantics). ``visited[v] ==
    epoch`` marks nodes already seen; the caller advances ``epoch``.
    Neighbour lists are read with 2-D indexing, never as row views: a view
    costs reference-count calls in numba, which showed up in the hot loop.
    """
    visited[ep] = epoch
    ncand = _min_push(cd, ci, 0, epd, ep)
    nres = 0
    if not use_mask or mask[ep]:
        nres = _max_push(rd, ri, 0, epd, ep)
    width = nb0.shape[1] if level == 0 else upper.shape[1]
    buf = np.empty(width, dtype=np.int32)
    # early abort pays when a distance is long to compute (high d, float L2)
    early_abort = metric == METRIC_L2 and not sq and X.shape[1] >= abort_min_dim
    row_bytes = X.shape[1] * X.itemsize
    pf_bytes = min(row_bytes, prefetch_lines * 64)
    while ncand > 0:
        c0 = cd[0]
        v0 = ci[0]
        if nres >= ef and c0 > rd[0]:
            break
        ncand = _min_pop(cd, ci, ncand)
        if level == 0:
            r = np.int64(v0)
        else:
            r = upper_off[v0] + level - 1
        # pass 1: collect the unvisited neighbours and prefetch their vectors
        nnew = 0
        for t in range(width):
            if level == 0:
                v = nb0[r, t]
            else:
                v = upper[r, t]
            if v < 0:
                break
            if visited[v] == epoch:
                continue
            visited[v] = epoch
            buf[nnew] = v
            nnew += 1
            for off in range(0, pf_bytes, 64):
                prefetch_row(X, v, off)
        # pass 2: score them
        for u in range(nnew):
            v = buf[u]
            if early_abort and nres >= ef:
                c = l2_bounded(qv, X, v, rd[0])
            else:
                c = dist_q(qv, X, v, metric, sq, sqp, qc)
            if nres < ef or c < rd[0]:
                ncand = _min_push(cd, ci, ncand, c, v)
                if not use_mask or mask[v]:
                    if nres < ef:
                        nres = _max_push(rd, ri, nres, c, v)
                    else:
                        _max_replace_top(rd, ri, nres, c, v)
    return nres


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _next_epoch(visited, ep_arr, slot):
    e = ep_arr[slot] + 1
    if e >= 4294967295:
        visited[:] = 0
        e = 1
    ep_arr[slot] = e
    return e


# --- neighbour selection -------------------------------------------------------------

@njit(cache=True, nogil=True, fastmath=FASTMATH)
def select_heuristic(X, cand_d, cand_i, ncand, mmax, metric, sq, sqp, out, abort_min_dim):
    """HNSW's neighbour heuristic over candidates sorted by ascending cost.

    A candidate is kept when it is closer to the base point than to every
    neighbour already kept (Malkov & Yashunin, alg. 4, no fill-up): the kept
    set spreads around the base point instead of clustering on one side.
    Writes up to ``mmax`` ids into ``out``; returns how many.
    """
    nsel = 0
    for a in range(ncand):
        if nsel >= mmax:
            break
        v = cand_i[a]
        cv = cand_d[a]
        good = True
        for b in range(nsel):
            if closer_than(X, v, out[b], cv, metric, sq, sqp, abort_min_dim):
                good = False
                break
        if good:
            out[nsel] = v
            nsel += 1
    return nsel


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def add_reverse_link(X, src, dst, level, nb0, upper, upper_off, metric, sq, sqp, tmpd, tmpi, sel,
                     abort_min_dim):
    """Make ``src`` a neighbour of ``dst`` at ``level``, pruning ``dst``'s list
    with the heuristic when it is full (as hnswlib does)."""
    row = _row(level, dst, nb0, upper, upper_off)
    cap = row.shape[0]
    for t in range(cap):
        v = row[t]
        if v == src:
            return
        if v < 0:
            row[t] = src
            return
    # full: rank the old list plus src by cost to dst and keep the heuristic's choice
    n = 0
    for t in range(cap):
        c = dist_nodes(X, dst, row[t], metric, sq, sqp)
        n = _max_push(tmpd, tmpi, n, c, row[t])
    c = dist_nodes(X, dst, src, metric, sq, sqp)
    n = _max_push(tmpd, tmpi, n, c, src)
    m = heap_to_sorted(tmpd, tmpi, n, tmpd[cap + 1:], tmpi[cap + 1:])
    nsel = select_heuristic(X, tmpd[cap + 1:cap + 1 + m], tmpi[cap + 1:cap + 1 + m], m, cap,
                            metric, sq, sqp, sel, abort_min_dim)
    for t in range(cap):
        row[t] = sel[t] if t < nsel else -1


@njit(cache=True, nogil=True)
def link_groups(keys):
    """(order, gstart): a stable sort of ``keys`` and the start of each run of
    equal keys in it (``gstart[-1]`` = len(keys))."""
    total = keys.size
    order = np.argsort(keys, kind="mergesort")
    ngroups = 0
    for p in range(total):
        if p == 0 or keys[order[p]] != keys[order[p - 1]]:
            ngroups += 1
    gstart = np.empty(ngroups + 1, dtype=np.int64)
    g = 0
    for p in range(total):
        if p == 0 or keys[order[p]] != keys[order[p - 1]]:
            gstart[g] = p
            g += 1
    gstart[ngroups] = total
    return order, gstart


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def apply_link_groups(keys, srcs, order, gstart, g0, g1, nlev, X, nb0, upper, upper_off, metric,
                      sq, sqp, abort_min_dim):
    """Apply groups g0..g1-1 of :func:`link_groups`: every link ``srcs[p] ->
    keys[p] // nlev`` at level ``keys[p] % nlev``, in the given order.

    A group is every link one list receives, so threads given disjoint group
    ranges never write the same list, and the result does not depend on the
    thread count (batched insertion and repair both rely on this).
    """
    cap0 = nb0.shape[1]
    tmpd = np.empty(2 * (cap0 + 1), dtype=np.float32)
    tmpi = np.empty(2 * (cap0 + 1), dtype=np.int32)
    sel = np.empty(cap0 + 1, dtype=np.int32)
    for g in range(g0, g1):
        key = keys[order[gstart[g]]]
        dst = key // nlev
        level = key % nlev
        for p in range(gstart[g], gstart[g + 1]):
            add_reverse_link(X, srcs[order[p]], dst, level, nb0, upper, upper_off, metric, sq,
                             sqp, tmpd, tmpi, sel, abort_min_dim)


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def apply_reverse_links(keys, srcs, nlev, nchunk, X, nb0, upper, upper_off, metric, sq, sqp,
                        abort_min_dim):
    """All links of ``keys``/``srcs`` (see :func:`apply_link_groups`), the groups
    split over ``nchunk`` threads (used by repair, inside its parallel kernel)."""
    order, gstart = link_groups(keys)
    ngroups = gstart.size - 1
    gstep = (ngroups + nchunk - 1) // nchunk
    for ch in prange(nchunk):
        apply_link_groups(keys, srcs, order, gstart, ch * gstep, min(ngroups, (ch + 1) * gstep),
                          nlev, X, nb0, upper, upper_off, metric, sq, sqp, abort_min_dim)


# --- insertion ---------------------------------------------------------------------

@njit(cache=True, nogil=True, fastmath=FASTMATH)
def exact_cost(q, Xf, j, metric):
    """Exact float cost between query ``q`` and row ``j`` of ``Xf``."""
    if metric == METRIC_L2:
        return sqdist_qrow(q, Xf, j)
    return -dot_qrow(q, Xf, j)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def rescore_exact(q, Xf, metric, prefetch_lines, rd, ri, nres, keep, cd, ci):
    """Re-score the ``nres`` results of a walk on approximate (SQ8) costs, held
    in the max-heap ``rd``/``ri``, exactly from the float rows ``Xf``; keep the
    ``keep`` best in that heap and return its size. ``cd``/``ci`` are scratch.
    The rows are scattered, so they are all requested before the first is read.
    """
    pf = min(Xf.shape[1] * Xf.itemsize, prefetch_lines * 64)
    for u in range(nres):
        for off in range(0, pf, 64):
            prefetch_row(Xf, ri[u], off)
    for u in range(nres):
        cd[u] = exact_cost(q, Xf, ri[u], metric)
        ci[u] = ri[u]
    m = 0
    for u in range(nres):
        if m < keep:
            m = _max_push(rd, ri, m, cd[u], ci[u])
        elif cd[u] < rd[0]:
            _max_replace_top(rd, ri, m, cd[u], ci[u])
    return m


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _link_new_node(i, q, qv, qc, X, S, levels, nb0, upper, upper_off, entry, max_level, efc, M,
                   metric, sq, sqp, ssq, ssqp, rerank, visited, epoch, cd, ci, rd, ri, sd, si,
                   mask, abort_min_dim):
    """Search the graph for node ``i``'s neighbours and write *its own* lists
    (never another node's), so several new nodes can do this in parallel.

    The walk runs on ``S`` (``ssq``/``ssqp``; ``qv``/``qc`` prepared for it);
    with ``rerank``, ``S`` holds SQ8 codes of the float rows ``X`` and each
    level's efConstruction results are re-scored exactly from ``X`` (query
    ``q``) before the neighbour heuristic, which always compares rows of ``X``.
    """
    top = levels[i] - 1
    cur = entry
    curd = dist_q(qv, S, cur, metric, ssq, ssqp, qc)
    if max_level > top:
        cur, curd = greedy_descend(qv, qc, S, cur, curd, max_level, top, upper, upper_off,
                                   metric, ssq, ssqp)
    for level in range(min(top, max_level), -1, -1):
        e = _next_epoch(visited, epoch, 0)
        nres = search_layer(qv, qc, S, level, nb0, upper, upper_off, cur, curd, efc, metric, ssq,
                            ssqp, visited, e, cd, ci, rd, ri, mask, False, PREFETCH_LINES,
                            abort_min_dim)
        if rerank:
            nres = rescore_exact(q, X, metric, PREFETCH_LINES, rd, ri, nres, nres, cd, ci)
        m = heap_to_sorted(rd, ri, nres, sd, si)
        row = _row(level, i, nb0, upper, upper_off)
        nsel = select_heuristic(X, sd, si, m, M, metric, sq, sqp, row, abort_min_dim)
        for t in range(nsel, row.shape[0]):
            row[t] = -1
        # the closest node found is the entry of the next level down
        cur = si[0]
        curd = dist_q(qv, S, cur, metric, ssq, ssqp, qc) if rerank else sd[0]


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def link_new_nodes(xin, i0, lo, hi, X, S, levels, nb0, upper, upper_off, entry, max_level, efc,
                   M, metric, sq, sqp, ssq, ssqp, rerank, abort_min_dim, visited, epoch):
    """Phase 1 of a batched insertion, for new nodes lo..hi-1 (rows lo-i0.. of xin).

    Each new node searches the graph as it was before the batch and writes
    only its own neighbour lists: old lists are not touched and new nodes are
    not reachable yet, so threads given disjoint ranges share nothing they
    write. ``visited``/``epoch`` are this thread's visited epochs. The walk
    runs on ``S`` (see :func:`_link_new_node`): ``X`` itself, or SQ8 codes of
    it with ``rerank``.
    """
    n = X.shape[0]
    ef = max(efc, 1)
    cd = np.empty(n + 1, dtype=np.float32)
    ci = np.empty(n + 1, dtype=np.int32)
    rd = np.empty(ef + 1, dtype=np.float32)
    ri = np.empty(ef + 1, dtype=np.int32)
    sd = np.empty(ef + 1, dtype=np.float32)
    si = np.empty(ef + 1, dtype=np.int32)
    qv = np.empty(S.shape[1], dtype=np.float32)
    nomask = np.zeros(1, dtype=np.bool_)
    for i in range(lo, hi):
        q = xin[i - i0]
        qc = prep_query(q, metric, ssq, ssqp, qv)
        _link_new_node(i, q, qv, qc, X, S, levels, nb0, upper, upper_off, entry, max_level, ef,
                       M, metric, sq, sqp, ssq, ssqp, rerank, visited, epoch, cd, ci, rd, ri, sd,
                       si, nomask, abort_min_dim)


@njit(cache=True, nogil=True)
def reverse_link_keys(b0, b1, levels, nb0, upper, upper_off, max_level):
    """Phase 2's work list: for every link new node i (b0 <= i < b1) made to
    node v at a level, key v * (max_level + 1) + level and source i."""
    nlev = max_level + 1
    total = 0
    for i in range(b0, b1):
        for level in range(min(levels[i] - 1, max_level), -1, -1):
            row = _row(level, i, nb0, upper, upper_off)
            for t in range(row.shape[0]):
                if row[t] < 0:
                    break
                total += 1
    keys = np.empty(total, dtype=np.int64)
    srcs = np.empty(total, dtype=np.int32)
    p = 0
    for i in range(b0, b1):
        for level in range(min(levels[i] - 1, max_level), -1, -1):
            row = _row(level, i, nb0, upper, upper_off)
            for t in range(row.shape[0]):
                v = row[t]
                if v < 0:
                    break
                keys[p] = np.int64(v) * nlev + level
                srcs[p] = i
                p += 1
    return keys, srcs


# --- search -------------------------------------------------------------------------

@njit(cache=True, nogil=True, fastmath=FASTMATH)
def project_query(q, proj, qp):
    """``qp = q @ proj`` (proj (d, k) row-major: the inner loop runs along a row)."""
    for j in range(qp.shape[0]):
        qp[j] = np.float32(0.0)
    for t in range(q.shape[0]):
        a = q[t]
        for j in range(qp.shape[0]):
            qp[j] += a * proj[t, j]


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _search_one(q, k, ef, X, nb0, upper, upper_off, entry, max_level, metric, sq, sqp,
                visited, epoch, cd, ci, rd, ri, qv, mask, use_mask, labels, use_labels,
                tuning, Xf, rerank, proj, qp, Drow, Irow):
    if qp.shape[0] > 0:
        # traversal codes of a projection (PCA): walk with the projected query
        project_query(q, proj, qp)
        qc = prep_query(qp, metric, sq, sqp, qv)
    else:
        qc = prep_query(q, metric, sq, sqp, qv)
    cur = entry
    curd = dist_q(qv, X, cur, metric, sq, sqp, qc)
    cur, curd = greedy_descend(qv, qc, X, cur, curd, max_level, 0, upper, upper_off,
                               metric, sq, sqp)
    e = _next_epoch(visited, epoch, 0)
    nres = search_layer(qv, qc, X, 0, nb0, upper, upper_off, cur, curd, ef, metric, sq, sqp,
                        visited, e, cd, ci, rd, ri, mask, use_mask, tuning[0], tuning[1])
    if rerank:
        # the traversal ran on SQ8 costs: the k best of its ef results, scored exactly
        nres = rescore_exact(q, Xf, metric, tuning[0], rd, ri, nres, k, cd, ci)
    # drop the worst until k remain, then drain in ascending order
    while nres > k:
        nres = _max_pop(rd, ri, nres)
    worst = np.float32(3.4028234663852886e38)
    for t in range(k - 1, -1, -1):
        if t >= nres:
            Irow[t] = -1
            Drow[t] = worst if metric == METRIC_L2 else -worst
            continue
        c = rd[0]
        v = ri[0]
        nres = _max_pop(rd, ri, nres)
        Irow[t] = labels[v] if use_labels else v
        Drow[t] = c if metric == METRIC_L2 else -c


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def search_serial(xq, k, ef, X, nb0, upper, upper_off, entry, max_level, metric, sq, sqp,
                  visited, epoch, cd, ci, rd, ri, mask, use_mask, labels, use_labels,
                  tuning, Xf, rerank, proj, D, I):
    """Search each query in turn with caller-owned scratch (reused across calls).

    ``tuning`` = [prefetch cache lines, early-abort minimum dimension].
    With ``rerank``, ``X`` holds SQ8 codes used for the traversal and the ef
    results are re-scored exactly from the float rows ``Xf`` (same node order)
    before the k best are kept; otherwise ``Xf`` is unused. A ``proj`` of
    shape (d, k') (k' > 0 columns) maps queries to the space the codes were
    made in (the float rows stay d-dimensional); shape (1, 0) means none.

    Returns False, without searching, when a query holds NaN or inf: the
    Python fast path skips validation and falls back to it on False.
    """
    nq, d = xq.shape
    for r in range(nq):
        for t in range(d):
            if not np.isfinite(xq[r, t]):
                return False
    qv = np.empty(X.shape[1], dtype=np.float32)
    qp = np.empty(proj.shape[1], dtype=np.float32)
    for r in range(nq):
        _search_one(xq[r], k, ef, X, nb0, upper, upper_off, entry, max_level, metric, sq, sqp,
                    visited, epoch, cd, ci, rd, ri, qv, mask, use_mask, labels, use_labels,
                    tuning, Xf, rerank, proj, qp, D[r], I[r])
    return True


# --- locality ------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def bfs_order(nb0, n, start):
    """Nodes in breadth-first order of the level-0 graph from ``start`` (then
    any unreached ones): neighbours end up stored near each other."""
    order = np.empty(n, dtype=np.int64)
    seen = np.zeros(n, dtype=np.bool_)
    head = 0
    tail = 0
    for root in range(-1, n):
        s = start if root < 0 else root
        if s < 0 or seen[s]:
            continue
        seen[s] = True
        order[tail] = s
        tail += 1
        while head < tail:
            v = order[head]
            head += 1
            for t in range(nb0.shape[1]):
                u = nb0[v, t]
                if u < 0:
                    break
                if not seen[u]:
                    seen[u] = True
                    order[tail] = u
                    tail += 1
    return order
