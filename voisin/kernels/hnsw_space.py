"""What the HNSW graph kernels know of the stored vectors: a distance (hnswlib's "space").

The graph code (:mod:`voisin.kernels.hnsw`) walks, links and prunes through the
functions below and never looks at an encoding. A *space* is a namedtuple
whose type picks the implementation at compile time (numba specialises the
graph kernels once per space type, as it would per array dtype):

* :class:`FlatSpace` ``(rows,)``: float32 (n, d) rows, C-contiguous; distances
  through the 8-lane loops of :mod:`voisin.kernels.simd`.
* :class:`SQ8Space` ``(codes, sqp)``: uint8 (n, w) codes of an 8-bit scalar
  quantizer (FAISS's QT_8bit / QT_8bit_uniform / QT_8bit_direct codes) and float32
  (3, w) rows (cell start, step, step^2) per column, so code c decodes to
  ``start + step * (c + 0.5)``. Rows may be padded past d (w = round_up(d, 32)):
  padded columns hold code 0 and step 0, so they add nothing to a distance and the
  loop runs whole rows.
* :class:`PQSpace` ``(codes, cent, sdc)``: uint8 (n, M) codes of an 8-bit product
  quantizer, its float32 (M, 256, dsub) centroids and (M, 256, 256) symmetric cost
  table (squared distances, or minus the inner products, between centroids). A
  query becomes its (M, 256) cost table, so a query distance is M lookups (FAISS's
  ADC); a node-to-node distance while linking is M lookups in the symmetric table
  (FAISS's SDC, as its IndexHNSWPQ builds).

A query is turned once into the form the inner loop wants (:func:`prepare_query`),
so an SQ8 distance is one fused pass over the codes with no per-element decode.
Costs are "smaller is better": squared L2, minus the inner product, the further
metrics' distances, or minus the Jaccard similarity (:func:`cost_sign`).

Namedtuples are built inside the entry kernels from plain tuples: numba types a
plain tuple of arrays at the call boundary as cheaply as separate arguments,
a namedtuple about 5 us slower per call (measured, docs/architecture.md).
"""

from collections import namedtuple

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from . import FASTMATH
from ..metric import METRIC_INNER_PRODUCT, METRIC_Jaccard, METRIC_L2
from .extra_metrics import pair
from .simd import (code_dot_qrow, code_wl2_qrow, dot_qrow, dot_rows, sqdist_qrow,
                   sqdist_rows)

FlatSpace = namedtuple("FlatSpace", ["rows"])
SQ8Space = namedtuple("SQ8Space", ["codes", "sqp"])
PQSpace = namedtuple("PQSpace", ["codes", "cent", "sdc"])
MetricSpace = namedtuple("MetricSpace", ["rows", "arg"])

_JIT = {"fastmath": FASTMATH, "nogil": True}
# the further metrics take logs and divisions whose NaN must survive to be caught
# (numpy's error model: 0/0 is NaN, not a ZeroDivisionError)
_EXACT_JIT = {"fastmath": False, "nogil": True, "error_model": "numpy"}
# cache lines of each vector requested before its distance is computed
PREFETCH_LINES = 4


def _is(space, cls) -> bool:
    return isinstance(space, (types.NamedTuple, types.NamedUniTuple)) and space.instance_class is cls


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


# --- the interface (pure-Python stubs; numba compiles the overloads) --------------------

def query_width(space):
    """Length of the prepared query buffer (the stored row width)."""


def prepare_query(space, q, metric, qv):
    """Write query ``q`` in the inner-loop form into ``qv``; returns a constant of the cost."""


def query_cost(space, qv, qc, j, metric):
    """Cost between a prepared query (``qv``, ``qc``) and stored vector ``j``."""


def node_cost(space, i, j, metric):
    """Cost between stored vectors ``i`` and ``j`` (decoded values for codes)."""


def node_vector(space, u, q):
    """Stored vector ``u`` as a float query in ``q`` (codes decoded at their cell centres)."""


def prefetch(space, j, lines):
    """Start loading the first ``lines`` cache lines of stored vector ``j``."""


@overload(query_width, jit_options=_JIT)
def _ol_query_width(space):
    if _is(space, FlatSpace) or _is(space, MetricSpace):
        return lambda space: space.rows.shape[1]
    if _is(space, SQ8Space):
        return lambda space: space.codes.shape[1]
    if _is(space, PQSpace):
        # the cost table, and room for a decoded vector (node_vector) when it is longer
        return lambda space: max(space.cent.shape[0] * space.cent.shape[1],
                                 space.cent.shape[0] * space.cent.shape[2])


@overload(prepare_query, jit_options=_JIT)
def _ol_prepare_query(space, q, metric, qv):
    if _is(space, FlatSpace) or _is(space, MetricSpace):
        def flat(space, q, metric, qv):
            d = q.shape[0]
            for t in range(d):
                qv[t] = q[t]
            for t in range(d, qv.shape[0]):
                qv[t] = np.float32(0.0)
            return np.float32(0.0)
        return flat
    if _is(space, SQ8Space):
        def sq8(space, q, metric, qv):
            sqp = space.sqp
            d = q.shape[0]
            for t in range(d, qv.shape[0]):
                qv[t] = np.float32(0.0)
            c = np.float32(0.0)
            if metric == METRIC_L2:
                # ||q - (a + s (c + .5))||^2 = sum s^2 ((q - a)/s - .5 - c)^2; a column
                # with s = 0 adds the constant (q - a)^2, returned here
                for t in range(d):
                    s = sqp[1, t]
                    if s > 0:
                        qv[t] = (q[t] - sqp[0, t]) / s - np.float32(0.5)
                    else:
                        qv[t] = np.float32(0.0)
                        e = q[t] - sqp[0, t]
                        c += e * e
                return c
            for t in range(d):
                qv[t] = q[t] * sqp[1, t]
                c += q[t] * (sqp[0, t] + np.float32(0.5) * sqp[1, t])
            return c
        return sq8
    if _is(space, PQSpace):
        def pq(space, q, metric, qv):
            cent = space.cent
            M, ksub, dsub = cent.shape
            for m in range(M):
                for c in range(ksub):
                    s = np.float32(0.0)
                    if metric == METRIC_L2:
                        for t in range(dsub):
                            e = q[m * dsub + t] - cent[m, c, t]
                            s += e * e
                    else:
                        for t in range(dsub):
                            s -= q[m * dsub + t] * cent[m, c, t]
                    qv[m * ksub + c] = s
            return np.float32(0.0)
        return pq


@overload(query_cost, jit_options=_JIT, inline="always")
def _ol_query_cost(space, qv, qc, j, metric):
    if _is(space, FlatSpace):
        def flat(space, qv, qc, j, metric):
            if metric == METRIC_L2:
                return sqdist_qrow(qv, space.rows, j)
            return -dot_qrow(qv, space.rows, j)
        return flat
    if _is(space, MetricSpace):
        return lambda space, qv, qc, j, metric: metric_cost(space, qv, j, metric)
    if _is(space, SQ8Space):
        def sq8(space, qv, qc, j, metric):
            if metric == METRIC_L2:
                return code_wl2_qrow(qv, space.sqp, 2, space.codes, j) + qc
            return -(code_dot_qrow(qv, space.codes, j) + qc)
        return sq8
    if _is(space, PQSpace):
        return lambda space, qv, qc, j, metric: _pq_adc(space.codes, qv, space.cent.shape[1], j)


@overload(node_cost, jit_options=_JIT)
def _ol_node_cost(space, i, j, metric):
    if _is(space, FlatSpace):
        def flat(space, i, j, metric):
            if metric == METRIC_L2:
                return _rows_l2(space.rows, i, j)
            return -_rows_dot(space.rows, i, j)
        return flat
    if _is(space, MetricSpace):
        return lambda space, i, j, metric: metric_node_cost(space, i, j, metric)
    if _is(space, SQ8Space):
        def sq8(space, i, j, metric):
            if metric == METRIC_L2:
                return _sq8_node_l2(space.codes, space.sqp, i, j)
            return -_sq8_node_dot(space.codes, space.sqp, i, j)
        return sq8
    if _is(space, PQSpace):
        return lambda space, i, j, metric: _pq_sdc(space.codes, space.sdc, i, j)


@overload(node_vector, jit_options=_JIT)
def _ol_node_vector(space, u, q):
    if _is(space, FlatSpace) or _is(space, MetricSpace):
        def flat(space, u, q):
            for t in range(q.shape[0]):
                q[t] = space.rows[u, t]
        return flat
    if _is(space, SQ8Space):
        def sq8(space, u, q):
            sqp = space.sqp
            for t in range(q.shape[0]):
                q[t] = sqp[0, t] + sqp[1, t] * (np.float32(space.codes[u, t]) + np.float32(0.5))
        return sq8
    if _is(space, PQSpace):
        def pq(space, u, q):
            cent = space.cent
            M, _, dsub = cent.shape
            for m in range(M):
                c = space.codes[u, m]
                for t in range(dsub):
                    q[m * dsub + t] = cent[m, c, t]
        return pq


@overload(prefetch, jit_options=_JIT, inline="always")
def _ol_prefetch(space, j, lines):
    if _is(space, FlatSpace) or _is(space, SQ8Space) or _is(space, PQSpace) \
            or _is(space, MetricSpace):
        return lambda space, j, lines: prefetch_lines(space[0], j, lines)


# --- loop bodies of the costs above --------------------------------------------------------
# query_cost and prefetch are inlined into the walk (inline="always"): an out-of-line
# overload call took and dropped a reference on every array of the space per
# distance (atomic NRT_incref/decref: 50 ns for an SQ8 distance whose arithmetic
# takes 7 ns, measured in cache; half of a glove-50 query's time). The inlined
# bodies only branch and call: numba's IR inliner mis-scopes the variables of a
# loop followed by a second return (NumbaIRAssumptionWarning), so loops live in
# plain njit functions, whose array arguments cost no reference counting.
# node_cost stays out of line: inlined, it built wrong graphs (recall 0.01 on
# every space; not narrowed down further), and linking spends less time in it.

@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _rows_l2(rows, i, j):
    return sqdist_rows(rows, i, j)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _rows_dot(rows, i, j):
    return dot_rows(rows, i, j)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _pq_adc(codes, table, ksub, j):
    s = np.float32(0.0)
    for m in range(codes.shape[1]):
        s += table[m * ksub + codes[j, m]]
    return s


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _pq_sdc(codes, sdc, i, j):
    s = np.float32(0.0)
    for m in range(codes.shape[1]):
        s += sdc[m, codes[i, m], codes[j, m]]
    return s


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _sq8_node_l2(codes, sqp, i, j):
    s = np.float32(0.0)
    for t in range(codes.shape[1]):
        e = np.float32(codes[i, t]) - np.float32(codes[j, t])
        s += sqp[2, t] * e * e
    return s


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _sq8_node_dot(codes, sqp, i, j):
    s = np.float32(0.0)
    for t in range(codes.shape[1]):
        a = sqp[0, t] + sqp[1, t] * (np.float32(codes[i, t]) + np.float32(0.5))
        b = sqp[0, t] + sqp[1, t] * (np.float32(codes[j, t]) + np.float32(0.5))
        s += a * b
    return s


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def prefetch_lines(X, j, lines):
    """Start loading the first ``lines`` cache lines of row ``j`` of a 2-D C array."""
    nbytes = min(X.shape[1] * X.itemsize, lines * 64)
    for off in range(0, nbytes, 64):
        prefetch_row(X, j, off)


# --- the further metrics (MetricSpace) -------------------------------------------------

@njit(cache=True, nogil=True, inline="always")
def cost_sign(metric):
    """-1 where larger is better (inner product, Jaccard): cost = sign * distance."""
    if metric == METRIC_INNER_PRODUCT or metric == METRIC_Jaccard:
        return np.float32(-1.0)
    return np.float32(1.0)


def metric_cost(space, qv, j, metric):
    """Cost of prepared query ``qv`` against row ``j`` of a MetricSpace (NaN -> +inf)."""


def metric_node_cost(space, i, j, metric):
    """Cost between rows ``i`` and ``j`` of a MetricSpace (NaN -> +inf)."""


@overload(metric_cost, jit_options=_EXACT_JIT)
def _ol_metric_cost(space, qv, j, metric):
    def impl(space, qv, j, metric):
        c = cost_sign(metric) * pair(qv, space.rows[j], metric, space.arg)
        return c if c == c else np.float32(np.inf)
    return impl


@overload(metric_node_cost, jit_options=_EXACT_JIT)
def _ol_metric_node_cost(space, i, j, metric):
    def impl(space, i, j, metric):
        c = cost_sign(metric) * pair(space.rows[i], space.rows[j], metric, space.arg)
        return c if c == c else np.float32(np.inf)
    return impl
