"""The space of Index2Layer codes for the HNSW kernels (FAISS's IndexHNSW2Level).

:class:`TwoLevelSpace` ``(codes, coarse, cent, qbits)``: uint8 (n, cs1 + M) Index2Layer
codes (the little-endian list number in ``cs1`` bytes, then M 8-bit PQ codes of the
residual), the coarse centroids as a (Mq, K, dq) table of sub-centroids (a flat coarse
quantizer: Mq = 1, K = nlist; a multi-index: its Mq sub-quantizers of 2**qbits
centroids, list number = sum of idx_m << (m * qbits)), and the PQ's (M, 256, dsub)
centroids. A stored vector is coarse part + PQ part, component by component, as
FAISS's Index2Layer distance computers decode it; a query cost is the squared L2
distance to that (minus the inner product under METRIC_INNER_PRODUCT), a node cost the
same between two decoded vectors.

The overloads below extend the interface of :mod:`voisin.kernels.hnsw_space` (numba
tries every overload of a stub and keeps the one that accepts the type), so the graph
kernels (search, range search, insertion) walk these codes without a decoded copy.
"""

from collections import namedtuple

import numpy as np
from numba import njit, types
from numba.extending import overload

from . import FASTMATH
from ..metric import METRIC_L2
from .hnsw_search import _range_block, _search_block
from .hnsw_space import (node_cost, node_vector, prefetch, prefetch_row, prepare_query, query_cost,
                         query_width)

TwoLevelSpace = namedtuple("TwoLevelSpace", ["codes", "coarse", "cent", "qbits"])

_JIT = {"fastmath": FASTMATH, "nogil": True}


def _is2(space) -> bool:
    return isinstance(space, (types.NamedTuple, types.NamedUniTuple)) \
        and space.instance_class is TwoLevelSpace


@njit(cache=True, nogil=True, inline="always")
def _listno(codes, j, cs1):
    key = np.int64(0)
    for b in range(cs1):
        key |= np.int64(codes[j, b]) << (8 * b)
    return key


@njit(cache=True, nogil=True, fastmath=FASTMATH, inline="always")
def _decode_into(space, j, out):
    """Stored vector ``j`` into ``out`` (coarse sub-centroid + PQ sub-centroid)."""
    codes, coarse, cent = space.codes, space.coarse, space.cent
    M, _, dsub = cent.shape
    Mq, _, dq = coarse.shape
    cs1 = codes.shape[1] - M
    key = _listno(codes, j, cs1)
    mask = (np.int64(1) << space.qbits) - 1
    m = 0
    t = 0
    comp = 0
    for mq in range(Mq):
        idx = (key >> (mq * space.qbits)) & mask
        for tq in range(dq):
            out[comp] = coarse[mq, idx, tq] + cent[m, codes[j, cs1 + m], t]
            comp += 1
            t += 1
            if t == dsub:
                t = 0
                m += 1


@overload(query_width, jit_options=_JIT)
def _ol_query_width(space):
    if _is2(space):
        return lambda space: space.coarse.shape[0] * space.coarse.shape[2]


@overload(prepare_query, jit_options=_JIT)
def _ol_prepare_query(space, q, metric, qv):
    if _is2(space):
        def impl(space, q, metric, qv):
            for t in range(q.shape[0]):
                qv[t] = q[t]
            return np.float32(0.0)
        return impl


@overload(query_cost, jit_options=_JIT)
def _ol_query_cost(space, qv, qc, j, metric):
    if _is2(space):
        def impl(space, qv, qc, j, metric):
            codes, coarse, cent = space.codes, space.coarse, space.cent
            M, _, dsub = cent.shape
            Mq, _, dq = coarse.shape
            cs1 = codes.shape[1] - M
            key = _listno(codes, j, cs1)
            mask = (np.int64(1) << space.qbits) - 1
            s = np.float32(0.0)
            m = 0
            t = 0
            comp = 0
            for mq in range(Mq):
                idx = (key >> (mq * space.qbits)) & mask
                for tq in range(dq):
                    r = coarse[mq, idx, tq] + cent[m, codes[j, cs1 + m], t]
                    if metric == METRIC_L2:
                        e = qv[comp] - r
                        s += e * e
                    else:
                        s -= qv[comp] * r
                    comp += 1
                    t += 1
                    if t == dsub:
                        t = 0
                        m += 1
            return s
        return impl


@overload(node_cost, jit_options=_JIT)
def _ol_node_cost(space, i, j, metric):
    if _is2(space):
        def impl(space, i, j, metric):
            codes, coarse, cent = space.codes, space.coarse, space.cent
            M, _, dsub = cent.shape
            Mq, _, dq = coarse.shape
            cs1 = codes.shape[1] - M
            ki = _listno(codes, i, cs1)
            kj = _listno(codes, j, cs1)
            mask = (np.int64(1) << space.qbits) - 1
            s = np.float32(0.0)
            m = 0
            t = 0
            for mq in range(Mq):
                ii = (ki >> (mq * space.qbits)) & mask
                jj = (kj >> (mq * space.qbits)) & mask
                for tq in range(dq):
                    a = coarse[mq, ii, tq] + cent[m, codes[i, cs1 + m], t]
                    b = coarse[mq, jj, tq] + cent[m, codes[j, cs1 + m], t]
                    if metric == METRIC_L2:
                        e = a - b
                        s += e * e
                    else:
                        s -= a * b
                    t += 1
                    if t == dsub:
                        t = 0
                        m += 1
            return s
        return impl


@overload(node_vector, jit_options=_JIT)
def _ol_node_vector(space, u, q):
    if _is2(space):
        return lambda space, u, q: _decode_into(space, u, q)


@overload(prefetch, jit_options=_JIT)
def _ol_prefetch(space, j, lines):
    if _is2(space):
        def impl(space, j, lines):
            X = space.codes
            nbytes = min(X.shape[1], lines * 64)
            for off in range(0, nbytes, 64):
                prefetch_row(X, j, off)
        return impl


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def search_2level(xw, xe, k, ef, walk_t, graph_t, entry, max_level, metric, scratch_t, filter_t,
                  exact_t, D, I):
    """Search over Index2Layer codes (``walk_t`` = ``(codes, coarse, cent, qbits)``)."""
    return _search_block(TwoLevelSpace(walk_t[0], walk_t[1], walk_t[2], walk_t[3]), xw, xe, k,
                         ef, graph_t, entry, max_level, metric, scratch_t, filter_t, exact_t, D, I)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def range_2level(xq, bound, ef0, walk_t, graph_t, entry, max_level, metric, scratch_t, filter_t):
    """Range search over Index2Layer codes."""
    return _range_block(TwoLevelSpace(walk_t[0], walk_t[1], walk_t[2], walk_t[3]), xq, bound,
                        ef0, graph_t, entry, max_level, metric, scratch_t, filter_t)
