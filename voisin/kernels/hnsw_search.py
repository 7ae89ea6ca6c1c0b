"""HNSW search entry points: one query or a block of queries, with an optional exact re-rank.

A search walks the graph in the index's own space (float rows or SQ8 codes) and,
when a refine wrapper pushed its float rows down (``IndexRefineFlat`` over an HNSW,
possibly through a PCA ``IndexPreTransform``), re-scores the ``kb`` best walk results
exactly and keeps ``k``: FAISS's IndexRefineFlat semantics, fused into the walk so
the candidates never leave the kernel.

The arguments arrive as plain tuples (typed at the call boundary as cheaply as
separate arrays) and become namedtuples here:

* ``walk_t``: the space's fields, ``(rows,)`` or ``(codes, sqp)``;
* ``graph_t``: ``(nb0, upper, upper_off, levels)``, plus ``entry`` and ``max_level``;
* ``scratch_t``: ``(visited, epoch, cd, ci, rd, ri)``, the calling thread's;
* ``filter_t``: ``(mask, use_mask, labels, use_labels)``: allowed nodes, and the
  node -> id map applied to the results (tombstones shift ids);
* ``exact_t``: ``(rows, on, kb, A, b)``: with ``on``, float rows in id order and the
  number of walk results re-scored; ``A`` (dw, de) and ``b`` (dw,) map an exact-space
  query to the walk space (a PCA in front of the graph); ``A`` with 0 rows means
  the walk query is given in ``xw``.
"""

import numpy as np
from numba import njit

from . import FASTMATH
from .heap import max_pop
from .hnsw import Graph, Walk, greedy_descend, next_epoch, rescore, search_layer
from .hnsw_space import (FlatSpace, MetricSpace, PQSpace, SQ8Space, cost_sign, prepare_query,
                         query_cost, query_width)
from .simd import dot_qrow

_WORST = np.float32(3.4028234663852886e38)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _map_query(q, A, b, out):
    """``out = A @ q + b`` (A row-major: each output is one contiguous dot product)."""
    for j in range(out.shape[0]):
        out[j] = dot_qrow(q, A, j) + b[j]


@njit(cache=True, nogil=True, fastmath=FASTMATH, inline="always")
def _search_one(space, graph, entry, max_level, qw, qe, k, ef, metric, walk, qv, qm, filt,
                exact, Drow, Irow):
    mask, use_mask, labels, use_labels = filt
    rows, refine, kb, A, b = exact
    if A.shape[0] > 0:
        _map_query(qe, A, b, qm)
        qc = prepare_query(space, qm, metric, qv)
    else:
        qc = prepare_query(space, qw, metric, qv)
    cur, curd = greedy_descend(space, qv, qc, graph, entry,
                               query_cost(space, qv, qc, entry, metric), max_level,
                               np.int64(0), metric)
    next_epoch(walk)
    nres = search_layer(space, qv, qc, graph, np.int64(0), cur, curd, ef, metric, walk, mask,
                        use_mask)
    rd, ri = walk.rd, walk.ri
    if refine:
        # FAISS's IndexRefine: the kb best by walk cost are re-scored exactly
        while nres > kb:
            nres = max_pop(rd, ri, nres)
        nres = rescore(qe, rows, labels, use_labels, metric, rd, ri, nres, k, walk.cd, walk.ci)
    while nres > k:
        nres = max_pop(rd, ri, nres)
    sign = cost_sign(metric)
    for t in range(k - 1, -1, -1):
        # +inf is a NaN distance of the further metrics (hnsw_space.MetricSpace): no result
        if t >= nres or rd[0] == np.inf:
            if t < nres:
                nres = max_pop(rd, ri, nres)
            Irow[t] = -1
            Drow[t] = sign * _WORST
            continue
        c = rd[0]
        v = ri[0]
        nres = max_pop(rd, ri, nres)
        Irow[t] = labels[v] if use_labels else v
        Drow[t] = sign * c


@njit(cache=True, nogil=True, fastmath=FASTMATH, inline="always")
def _search_block(space, xw, xe, k, ef, graph_t, entry, max_level, metric, scratch_t, filter_t,
                  exact_t, D, I):
    # a query holding NaN or inf is refused before anything is written: the
    # Python fast path skips validation and takes the validated path on False
    nq = xe.shape[0]
    for r in range(nq):
        for t in range(xe.shape[1]):
            if not np.isfinite(xe[r, t]):
                return False
        for t in range(xw.shape[1]):
            if not np.isfinite(xw[r, t]):
                return False
    graph = Graph(graph_t[0], graph_t[1], graph_t[2], graph_t[3])
    walk = Walk(scratch_t[0], scratch_t[1], scratch_t[2], scratch_t[3], scratch_t[4],
                scratch_t[5])
    qv = np.empty(query_width(space), dtype=np.float32)
    qm = np.empty(exact_t[3].shape[0], dtype=np.float32)
    for r in range(nq):
        _search_one(space, graph, entry, max_level, xw[r], xe[r], k, ef, metric, walk, qv, qm,
                    filter_t, exact_t, D[r], I[r])
    return True


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def search_flat(xw, xe, k, ef, walk_t, graph_t, entry, max_level, metric, scratch_t, filter_t,
                exact_t, D, I):
    """Search the queries of ``xw`` (walk space) / ``xe`` (exact space) over float rows."""
    return _search_block(FlatSpace(walk_t[0]), xw, xe, k, ef, graph_t, entry, max_level, metric,
                         scratch_t, filter_t, exact_t, D, I)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def search_sq8(xw, xe, k, ef, walk_t, graph_t, entry, max_level, metric, scratch_t, filter_t,
               exact_t, D, I):
    """Search the queries of ``xw`` (walk space) / ``xe`` (exact space) over SQ8 codes."""
    return _search_block(SQ8Space(walk_t[0], walk_t[1]), xw, xe, k, ef, graph_t, entry,
                         max_level, metric, scratch_t, filter_t, exact_t, D, I)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def search_pq(xw, xe, k, ef, walk_t, graph_t, entry, max_level, metric, scratch_t, filter_t,
              exact_t, D, I):
    """Search the queries of ``xw`` (walk space) / ``xe`` (exact space) over PQ codes."""
    return _search_block(PQSpace(walk_t[0], walk_t[1], walk_t[2]), xw, xe, k, ef, graph_t, entry,
                         max_level, metric, scratch_t, filter_t, exact_t, D, I)


@njit(cache=True, nogil=True)
def search_metric(xw, xe, k, ef, walk_t, graph_t, entry, max_level, metric, scratch_t, filter_t,
                  exact_t, D, I):
    """Search over float rows under a further metric (``walk_t`` = ``(rows, arg)``)."""
    return _search_block(MetricSpace(walk_t[0], walk_t[1]), xw, xe, k, ef, graph_t, entry,
                         max_level, metric, scratch_t, filter_t, exact_t, D, I)


# --- range search -------------------------------------------------------------------------

@njit(cache=True, nogil=True, fastmath=FASTMATH, inline="always")
def _range_one(space, graph, entry, max_level, q, bound, ef0, metric, walk_t, qv, mask, use_mask,
               out_c, out_v):
    """Nodes within cost ``bound`` of query ``q``; returns how many were written to
    ``out_c``/``out_v`` (grown by the caller to the returned size when too small: the
    return value is then larger than their length and nothing is written).

    The walk runs at ef = ef0 and doubles ef while every one of its ef results lies
    inside the ball (the walk's boundary did not reach the ball's): then the ball
    holds more nodes than the result list could show. It stops once the ef-th
    result lies outside, or ef covers the graph.
    """
    n = graph.levels.size
    qc = prepare_query(space, q, metric, qv)
    ef = min(max(ef0, 1), n)
    while True:
        walk = Walk(walk_t[0], walk_t[1], walk_t[2], walk_t[3],
                    np.empty(ef + 1, dtype=np.float32), np.empty(ef + 1, dtype=np.int32))
        cur, curd = greedy_descend(space, qv, qc, graph, entry,
                                   query_cost(space, qv, qc, entry, metric), max_level,
                                   np.int64(0), metric)
        next_epoch(walk)
        nres = search_layer(space, qv, qc, graph, np.int64(0), cur, curd, ef, metric, walk, mask,
                        use_mask)
        inside = 0
        for t in range(nres):
            if walk.rd[t] < bound:
                inside += 1
        if inside < nres or nres < ef or ef >= n:
            break
        ef = min(2 * ef, n)
    if inside > out_c.shape[0]:
        return inside
    m = 0
    for t in range(nres):
        if walk.rd[t] < bound:
            out_c[m] = walk.rd[t]
            out_v[m] = walk.ri[t]
            m += 1
    return m


@njit(cache=True, nogil=True, fastmath=FASTMATH, inline="always")
def _range_block(space, xq, bound, ef0, graph_t, entry, max_level, metric, scratch_t, filter_t):
    graph = Graph(graph_t[0], graph_t[1], graph_t[2], graph_t[3])
    mask, use_mask, labels, use_labels = filter_t
    nq = xq.shape[0]
    qv = np.empty(query_width(space), dtype=np.float32)
    lims = np.zeros(nq + 1, dtype=np.int64)
    cap = max(16, nq * ef0)
    Dall = np.empty(cap, dtype=np.float32)
    Iall = np.empty(cap, dtype=np.int64)
    buf_c = np.empty(ef0 + 1, dtype=np.float32)
    buf_v = np.empty(ef0 + 1, dtype=np.int32)
    for r in range(nq):
        m = _range_one(space, graph, entry, max_level, xq[r], bound, ef0, metric, scratch_t, qv,
                       mask, use_mask, buf_c, buf_v)
        if m > buf_c.shape[0]:
            buf_c = np.empty(m, dtype=np.float32)
            buf_v = np.empty(m, dtype=np.int32)
            m = _range_one(space, graph, entry, max_level, xq[r], bound, ef0, metric, scratch_t,
                           qv, mask, use_mask, buf_c, buf_v)
        start = lims[r]
        if start + m > cap:
            cap = max(2 * cap, start + m)
            D2 = np.empty(cap, dtype=np.float32)
            I2 = np.empty(cap, dtype=np.int64)
            D2[:start] = Dall[:start]
            I2[:start] = Iall[:start]
            Dall, Iall = D2, I2
        # ascending cost, as the other indexes return them
        order = np.argsort(buf_c[:m], kind="mergesort")
        for t in range(m):
            c = buf_c[order[t]]
            v = buf_v[order[t]]
            Dall[start + t] = cost_sign(metric) * c
            Iall[start + t] = labels[v] if use_labels else v
        lims[r + 1] = start + m
    return lims, Dall[:lims[nq]].copy(), Iall[:lims[nq]].copy()


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def range_flat(xq, bound, ef0, walk_t, graph_t, entry, max_level, metric, scratch_t, filter_t):
    """Range search over float rows: ``(lims, D, I)`` of the nodes with cost < ``bound``."""
    return _range_block(FlatSpace(walk_t[0]), xq, bound, ef0, graph_t, entry, max_level, metric,
                        scratch_t, filter_t)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def range_sq8(xq, bound, ef0, walk_t, graph_t, entry, max_level, metric, scratch_t, filter_t):
    """Range search over SQ8 codes: ``(lims, D, I)`` of the nodes with cost < ``bound``."""
    return _range_block(SQ8Space(walk_t[0], walk_t[1]), xq, bound, ef0, graph_t, entry,
                        max_level, metric, scratch_t, filter_t)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def range_pq(xq, bound, ef0, walk_t, graph_t, entry, max_level, metric, scratch_t, filter_t):
    """Range search over PQ codes: ``(lims, D, I)`` of the nodes with cost < ``bound``."""
    return _range_block(PQSpace(walk_t[0], walk_t[1], walk_t[2]), xq, bound, ef0, graph_t, entry,
                        max_level, metric, scratch_t, filter_t)


@njit(cache=True, nogil=True)
def range_metric(xq, bound, ef0, walk_t, graph_t, entry, max_level, metric, scratch_t, filter_t):
    """Range search over float rows under a further metric: cost < ``bound``."""
    return _range_block(MetricSpace(walk_t[0], walk_t[1]), xq, bound, ef0, graph_t, entry,
                        max_level, metric, scratch_t, filter_t)
