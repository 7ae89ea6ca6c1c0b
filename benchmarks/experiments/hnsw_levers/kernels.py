"""Prototype HNSW search kernels for the lever experiments (not part of voisin).

Two families, both over the graph voisin builds (``index.hnsw._g``):

* :func:`copy_search_serial` is a verbatim copy of voisin's single-query search
  (``voisin/kernels/hnsw.py``: ``search_serial`` -> ``_search_one`` ->
  ``greedy_descend`` + ``search_layer``, float storage, no filter). It shows
  that this harness times what voisin runs: same ids, same QPS.
* :func:`lever_search` is the same algorithm with every lever behind an
  argument, so all variants share one compiled kernel (the flags are
  run-time branches outside the inner loops, perfectly predicted):

  - layout: level-0 links are read from ``L[v, 0:width]`` and vectors from
    ``V[v, voff:voff + dv]``. Split layout (voisin today): ``L = nb0``,
    ``V = X``, ``voff = 0``. Co-located layout (hnswlib's): one buffer per
    node row ``[2M int32 links | vector | padding]``, viewed as int32 for
    ``L`` and as float32 (or uint8 for SQ8) for ``V``, ``voff`` = 2M.
  - ``dv`` may exceed d: vectors zero-padded to a multiple of 32 floats so
    the vectorised distance loop has no scalar remainder.
  - visited set: ``vmode`` 0 = epoch array (its dtype, uint8/16/32, is the
    lever; numba compiles one specialisation per dtype), 1 = bitset cleared
    through the list of touched words, 2 = open-addressing hash set.
  - prefetch: ``pf_lines`` cache lines of each new neighbour's vector,
    ``pf_visited`` the visited entries of a list before testing them,
    ``pf_next`` the link row of the next candidate while scoring this one.
  - ``sq``: V holds SQ8 codes (uint8); the ef results are then re-ranked
    with exact float distances from ``Xf`` before the k best are returned.

Costs are "smaller is better" (squared L2, or minus the inner product), as in voisin.
"""

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from voisin.kernels import FASTMATH

METRIC_IP = 0
METRIC_L2 = 1


# --- prefetch intrinsics -----------------------------------------------------------

def _emit_prefetch(builder, ptr):
    i8p = builder.bitcast(ptr, ir.IntType(8).as_pointer())
    return i8p


@intrinsic
def prefetch_row(typingctx, arr, row, byte_offset):
    """``llvm.prefetch`` of ``arr[row, 0]`` + ``byte_offset`` (2-D C array; voisin's intrinsic)."""
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


@intrinsic
def prefetch_elem(typingctx, arr, idx):
    """``llvm.prefetch`` of ``arr[idx]`` (1-D array): a visited-set entry."""
    def codegen(context, builder, sig, args):
        aryty = sig.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        i = context.cast(builder, args[1], sig.args[1], types.intp)
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [i])
        i8p = builder.bitcast(ptr, ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [i8p, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()
    return types.void(arr, idx), codegen


# =====================================================================================
# 1. Verbatim copy of voisin's search (float storage path), for the harness check
# =====================================================================================

@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _c_prep_query(q, metric, sq, sqp, qv):
    d = q.shape[0]
    if not sq:
        for t in range(d):
            qv[t] = q[t]
        return np.float32(0.0)
    if metric == METRIC_L2:
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
def _c_dist_q(qv, X, j, metric, sq, sqp, qc):
    d = qv.shape[0]
    s = np.float32(0.0)
    if metric == METRIC_L2:
        if sq:
            for t in range(d):
                e = qv[t] - np.float32(X[j, t])
                s += sqp[2, t] * e * e
            return s + qc
        else:
            for t in range(d):
                e = qv[t] - X[j, t]
                s += e * e
        return s
    if sq:
        for t in range(d):
            s += qv[t] * np.float32(X[j, t])
        return -(s + qc)
    for t in range(d):
        s += qv[t] * X[j, t]
    return -s


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _c_l2_bounded(qv, X, j, bound):
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
def _max_replace_top(hd, hi, size, c, v):
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
def _c_greedy_descend(qv, qc, X, cur, curd, top, stop, upper, upper_off, metric, sq, sqp):
    for level in range(top, stop, -1):
        changed = True
        while changed:
            changed = False
            r = upper_off[cur] + level - 1
            for t in range(upper.shape[1]):
                v = upper[r, t]
                if v < 0:
                    break
                c = _c_dist_q(qv, X, v, metric, sq, sqp, qc)
                if c < curd:
                    curd = c
                    cur = v
                    changed = True
    return cur, curd


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _c_search_layer(qv, qc, X, level, nb0, upper, upper_off, ep, epd, ef, metric, sq, sqp,
                    visited, epoch, cd, ci, rd, ri, mask, use_mask, prefetch_lines, abort_min_dim):
    visited[ep] = epoch
    ncand = _min_push(cd, ci, 0, epd, ep)
    nres = 0
    if not use_mask or mask[ep]:
        nres = _max_push(rd, ri, 0, epd, ep)
    width = nb0.shape[1] if level == 0 else upper.shape[1]
    buf = np.empty(width, dtype=np.int32)
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
        for u in range(nnew):
            v = buf[u]
            if early_abort and nres >= ef:
                c = _c_l2_bounded(qv, X, v, rd[0])
            else:
                c = _c_dist_q(qv, X, v, metric, sq, sqp, qc)
            if nres < ef or c < rd[0]:
                ncand = _min_push(cd, ci, ncand, c, v)
                if not use_mask or mask[v]:
                    if nres < ef:
                        nres = _max_push(rd, ri, nres, c, v)
                    else:
                        _max_replace_top(rd, ri, nres, c, v)
    return nres


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _c_next_epoch(visited, ep_arr, slot):
    e = ep_arr[slot] + 1
    if e >= 4294967295:
        visited[:] = 0
        e = 1
    ep_arr[slot] = e
    return e


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _c_search_one(q, k, ef, X, nb0, upper, upper_off, entry, max_level, metric, sq, sqp,
                  visited, epoch, cd, ci, rd, ri, qv, mask, use_mask, labels, use_labels,
                  tuning, Drow, Irow):
    qc = _c_prep_query(q, metric, sq, sqp, qv)
    cur = entry
    curd = _c_dist_q(qv, X, cur, metric, sq, sqp, qc)
    cur, curd = _c_greedy_descend(qv, qc, X, cur, curd, max_level, 0, upper, upper_off,
                                  metric, sq, sqp)
    e = _c_next_epoch(visited, epoch, 0)
    nres = _c_search_layer(qv, qc, X, 0, nb0, upper, upper_off, cur, curd, ef, metric, sq, sqp,
                           visited, e, cd, ci, rd, ri, mask, use_mask, tuning[0], tuning[1])
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
def copy_search_serial(xq, k, ef, X, nb0, upper, upper_off, entry, max_level, metric, sq, sqp,
                       visited, epoch, cd, ci, rd, ri, mask, use_mask, labels, use_labels,
                       tuning, D, I):
    """voisin's ``search_serial``, copied verbatim (finiteness check included)."""
    nq, d = xq.shape
    for r in range(nq):
        for t in range(d):
            if not np.isfinite(xq[r, t]):
                return False
    qv = np.empty(d, dtype=np.float32)
    for r in range(nq):
        _c_search_one(xq[r], k, ef, X, nb0, upper, upper_off, entry, max_level, metric, sq, sqp,
                      visited, epoch, cd, ci, rd, ri, qv, mask, use_mask, labels, use_labels,
                      tuning, D[r], I[r])
    return True


# =====================================================================================
# 2. The lever kernel
# =====================================================================================

@njit(cache=True, nogil=True, fastmath=FASTMATH)
def prep_query(q, dv, metric, sq, sqp, qv):
    """Query in inner-loop form, zero-padded to ``dv``; returns the SQ8 constant."""
    d = q.shape[0]
    for t in range(d, dv):
        qv[t] = np.float32(0.0)
    if not sq:
        for t in range(d):
            qv[t] = q[t]
        return np.float32(0.0)
    if metric == METRIC_L2:
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
def dist(qv, V, v, voff, dv, metric, sq, sq2, qc):
    """Cost between the prepared query and node ``v``'s vector ``V[v, voff:voff+dv]``."""
    # Unsigned column index: numba wraps negative signed indices around, and
    # with an offset LLVM cannot prove voff + t >= 0, so the per-element
    # select kept the loop scalar (measured 2x slower on fashion-mnist).
    s = np.float32(0.0)
    o = np.uint64(voff)
    if metric == METRIC_L2:
        if sq:
            for t in range(dv):
                e = qv[t] - np.float32(V[v, o + np.uint64(t)])
                s += sq2[t] * e * e
            return s + qc
        for t in range(dv):
            e = qv[t] - V[v, o + np.uint64(t)]
            s += e * e
        return s
    if sq:
        for t in range(dv):
            s += qv[t] * np.float32(V[v, o + np.uint64(t)])
        return -(s + qc)
    for t in range(dv):
        s += qv[t] * V[v, o + np.uint64(t)]
    return -s


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def exact_cost(q, Xf, v, metric):
    s = np.float32(0.0)
    if metric == METRIC_L2:
        for t in range(q.shape[0]):
            e = q[t] - Xf[v, t]
            s += e * e
        return s
    for t in range(q.shape[0]):
        s += q[t] * Xf[v, t]
    return -s


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _greedy(qv, qc, V, voff, dv, cur, curd, top, upper, upper_off, metric, sq, sq2):
    for level in range(top, 0, -1):
        changed = True
        while changed:
            changed = False
            r = upper_off[cur] + level - 1
            for t in range(upper.shape[1]):
                v = upper[r, t]
                if v < 0:
                    break
                c = dist(qv, V, v, voff, dv, metric, sq, sq2, qc)
                if c < curd:
                    curd = c
                    cur = v
                    changed = True
    return cur, curd


# --- visited sets ---------------------------------------------------------------------
# vmode 0: visited[v] == epoch (array of any unsigned dtype, epoch wraps at emax)
# vmode 1: bit v of the uint64 words in ``bits``; touched words listed in ``vlist``
# vmode 2: open-addressing hash set of int32 in ``table`` (power-of-two size, -1 empty);
#          the occupied slots are listed in ``vlist`` and cleared after the query

@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _test_and_set(vmode, v, visited, epoch, bits, table, vlist, nlist):
    """Returns (was_visited, new nlist)."""
    if vmode == 0:
        if visited[v] == epoch:
            return True, nlist
        visited[v] = epoch
        return False, nlist
    if vmode == 1:
        w = v >> 6
        b = np.uint64(1) << np.uint64(v & 63)
        x = bits[w]
        if x & b:
            return True, nlist
        if x == 0:
            vlist[nlist] = w
            nlist += 1
        bits[w] = x | b
        return False, nlist
    mask = table.shape[0] - 1
    h = (np.uint32(v) * np.uint32(2654435769)) >> np.uint32(16)
    p = np.int64(h) & mask
    while True:
        x = table[p]
        if x == v:
            return True, nlist
        if x < 0:
            table[p] = v
            vlist[nlist] = p
            return False, nlist + 1
        p = (p + 1) & mask


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _visited_clear(vmode, bits, table, vlist, nlist):
    if vmode == 1:
        for u in range(nlist):
            bits[vlist[u]] = 0
    elif vmode == 2:
        for u in range(nlist):
            table[vlist[u]] = -1


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _search0(qv, qc, L, width, V, voff, dv, ep, epd, ef, metric, sq, sq2, vmode, visited, epoch,
             bits, table, vlist, cd, ci, rd, ri, buf, pf_lines, pf_visited, pf_next):
    """Level-0 best-first search; returns (nres, nlist) (nlist: visited-set entries to clear)."""
    nlist = 0
    _, nlist = _test_and_set(vmode, ep, visited, epoch, bits, table, vlist, nlist)
    ncand = _min_push(cd, ci, 0, epd, ep)
    nres = _max_push(rd, ri, 0, epd, ep)
    row_bytes = dv * V.itemsize
    pf_bytes = min(row_bytes, pf_lines * 64)
    vbyte = voff * V.itemsize
    while ncand > 0:
        c0 = cd[0]
        v0 = ci[0]
        if nres >= ef and c0 > rd[0]:
            break
        ncand = _min_pop(cd, ci, ncand)
        if pf_next and ncand > 0:
            # the next candidate to expand is (likely) the new top: start loading its links
            prefetch_row(L, ci[0], 0)
        if pf_visited and vmode == 0:
            for t in range(width):
                v = L[v0, t]
                if v < 0:
                    break
                prefetch_elem(visited, v)
        nnew = 0
        if vmode == 0:
            # the epoch test written out (loop unswitched by hand): the generic
            # test-and-set below returns a tuple per neighbour
            for t in range(width):
                v = L[v0, t]
                if v < 0:
                    break
                if visited[v] == epoch:
                    continue
                visited[v] = epoch
                buf[nnew] = v
                nnew += 1
                for off in range(0, pf_bytes, 64):
                    prefetch_row(V, v, vbyte + off)
        else:
            for t in range(width):
                v = L[v0, t]
                if v < 0:
                    break
                seen, nlist = _test_and_set(vmode, v, visited, epoch, bits, table, vlist, nlist)
                if seen:
                    continue
                buf[nnew] = v
                nnew += 1
                for off in range(0, pf_bytes, 64):
                    prefetch_row(V, v, vbyte + off)
        for u in range(nnew):
            v = buf[u]
            c = dist(qv, V, v, voff, dv, metric, sq, sq2, qc)
            if nres < ef or c < rd[0]:
                ncand = _min_push(cd, ci, ncand, c, v)
                if nres < ef:
                    nres = _max_push(rd, ri, nres, c, v)
                else:
                    _max_replace_top(rd, ri, nres, c, v)
    return nres, nlist


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def lever_search_one(q, k, ef, L, width, V, voff, dv, upper, upper_off, entry, max_level, metric,
                     sq, sqp, Xf, vmode, visited, epoch, emax, bits, table, vlist, cd, ci, rd, ri,
                     buf, qv, labels, use_labels, pf_lines, pf_visited, pf_next, Drow, Irow):
    """One query through the lever kernel (see the module docstring for the arguments)."""
    qc = prep_query(q, dv, metric, sq, sqp, qv)
    sq2 = sqp[2]
    cur = entry
    curd = dist(qv, V, cur, voff, dv, metric, sq, sq2, qc)
    cur, curd = _greedy(qv, qc, V, voff, dv, cur, curd, max_level, upper, upper_off, metric, sq,
                        sq2)
    e = epoch[0] + 1
    if vmode == 0:
        if e > emax:
            visited[:] = 0
            e = 1
        epoch[0] = e
    nres, nlist = _search0(qv, qc, L, width, V, voff, dv, cur, curd, ef, metric, sq, sq2, vmode,
                           visited, e, bits, table, vlist, cd, ci, rd, ri, buf, pf_lines,
                           pf_visited, pf_next)
    _visited_clear(vmode, bits, table, vlist, nlist)
    if sq:
        # re-rank every traversal result with exact float distances
        m = nres
        for u in range(m):
            cd[u] = exact_cost(q, Xf, ri[u], metric)
            ci[u] = ri[u]
        nres = 0
        for u in range(m):
            if nres < k:
                nres = _max_push(rd, ri, nres, cd[u], ci[u])
            elif cd[u] < rd[0]:
                _max_replace_top(rd, ri, nres, cd[u], ci[u])
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
def lever_search_serial(xq, k, ef, L, width, V, voff, dv, upper, upper_off, entry, max_level,
                        metric, sq, sqp, Xf, vmode, visited, epoch, emax, bits, table, vlist, cd,
                        ci, rd, ri, buf, qv, labels, use_labels, pf_lines, pf_visited, pf_next,
                        D, I):
    """Queries one after another in one call (no per-query Python dispatch)."""
    for r in range(xq.shape[0]):
        lever_search_one(xq[r], k, ef, L, width, V, voff, dv, upper, upper_off, entry, max_level,
                         metric, sq, sqp, Xf, vmode, visited, epoch, emax, bits, table, vlist,
                         cd, ci, rd, ri, buf, qv, labels, use_labels, pf_lines, pf_visited,
                         pf_next, D[r], I[r])


@njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)
def lever_search_parallel(xq, k, ef, L, width, V, voff, dv, upper, upper_off, entry, max_level,
                          metric, sq, sqp, Xf, vdtype_probe, emax, labels, use_labels, pf_lines,
                          pf_visited, pf_next, nchunk, D, I):
    """Batch: one contiguous query slice per thread, epoch visited array of vdtype_probe's dtype."""
    nq = xq.shape[0]
    n = L.shape[0]
    step = (nq + nchunk - 1) // nchunk
    for ch in prange(nchunk):
        visited = np.zeros(n, dtype=vdtype_probe.dtype)
        epoch = np.zeros(1, dtype=np.int64)
        bits = np.zeros(1, dtype=np.uint64)
        table = np.full(1, -1, dtype=np.int32)
        vlist = np.zeros(1, dtype=np.int64)
        cd = np.empty(n + 1, dtype=np.float32)
        ci = np.empty(n + 1, dtype=np.int32)
        rd = np.empty(ef + 1, dtype=np.float32)
        ri = np.empty(ef + 1, dtype=np.int32)
        buf = np.empty(width, dtype=np.int32)
        qv = np.empty(dv, dtype=np.float32)
        for r in range(ch * step, min(nq, (ch + 1) * step)):
            lever_search_one(xq[r], k, ef, L, width, V, voff, dv, upper, upper_off, entry,
                             max_level, metric, sq, sqp, Xf, 0, visited, epoch, emax, bits, table,
                             vlist, cd, ci, rd, ri, buf, qv, labels, use_labels, pf_lines,
                             pf_visited, pf_next, D[r], I[r])


# =====================================================================================
# 3. Graph reordering
# =====================================================================================

@njit(cache=True, nogil=True)
def bfs_order(nb0, start, sort_by_degree):
    """Breadth-first order of the level-0 graph from ``start`` (then unreached nodes).

    With ``sort_by_degree`` each node's unseen neighbours are appended by
    ascending degree (Cuthill-McKee); reverse the result for RCM.
    """
    n = nb0.shape[0]
    width = nb0.shape[1]
    deg = np.zeros(n, dtype=np.int32)
    for v in range(n):
        for t in range(width):
            if nb0[v, t] < 0:
                break
            deg[v] += 1
    order = np.empty(n, dtype=np.int64)
    seen = np.zeros(n, dtype=np.bool_)
    tmp = np.empty(width, dtype=np.int64)
    tmpk = np.empty(width, dtype=np.int64)
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
            m = 0
            for t in range(width):
                u = nb0[v, t]
                if u < 0:
                    break
                if not seen[u]:
                    seen[u] = True
                    tmp[m] = u
                    tmpk[m] = deg[u]
                    m += 1
            if sort_by_degree and m > 1:
                idx = np.argsort(tmpk[:m], kind="mergesort")
                for a in range(m):
                    order[tail + a] = tmp[idx[a]]
            else:
                for a in range(m):
                    order[tail + a] = tmp[a]
            tail += m
    return order


@njit(cache=True, nogil=True)
def remap_links(links, inv):
    """``links`` with every id v >= 0 replaced by ``inv[v]`` (new numbering)."""
    out = np.empty_like(links)
    for i in range(links.shape[0]):
        for t in range(links.shape[1]):
            v = links[i, t]
            out[i, t] = inv[v] if v >= 0 else v
    return out
