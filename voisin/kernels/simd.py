"""Float32 distance loops written as explicit 8-lane vector code (LLVM IR).

Why: LLVM vectorises numba's ``for t in range(d)`` reductions 32 floats at a
time (8 lanes x 4 interleaved accumulators) and leaves the rest to a scalar
loop. For d = 50 that is 32 vector + 18 scalar steps: a 50-d distance cost
11 ns where a 64-d one cost 7 (micro-benchmark, this machine). Written here as
32-float steps (four 8-lane accumulators), then whole 8-float steps, then one
masked 8-lane step for the last 1-7 floats, the remainder never dominates.
``<8 x float>`` is portable LLVM: a target without AVX splits it into two SSE
halves (and emulates the masked load).

The kernels take raw pointers so one loop serves a query vector against a
stored row and a stored row against another without building array views
(which cost reference counting in numba's hot loops).
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from . import FASTMATH

# reassociation lets the four accumulators and the final horizontal sum be
# reordered; contract fuses multiply-add; no nnan/ninf (callers compare costs
# with +inf sentinels)
_FLAGS = ("reassoc", "contract", "nsz", "arcp")
_F32P = types.CPointer(types.float32)


_U8P = types.CPointer(types.uint8)
_ROW_POINTERS = {types.float32: _F32P, types.uint8: _U8P}


@intrinsic
def row_ptr(typingctx, arr, row):
    """Pointer to ``arr[row, 0]`` of a C-contiguous 2-D float32 (or uint8 code) array
    (no bounds check)."""
    if not (isinstance(arr, types.Array) and arr.ndim == 2 and arr.dtype in _ROW_POINTERS
            and arr.layout == "C"):
        return None

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        zero = context.get_constant(types.intp, 0)
        idx = context.cast(builder, args[1], sig.args[1], types.intp)
        return cgutils.get_item_pointer(context, builder, sig.args[0], ary, [idx, zero])
    return _ROW_POINTERS[arr.dtype](arr, row), codegen


@intrinsic
def vec_ptr(typingctx, arr):
    """Pointer to ``arr[0]`` of a contiguous 1-D float32 array."""
    if not (isinstance(arr, types.Array) and arr.ndim == 1 and arr.dtype == types.float32
            and arr.layout == "C"):
        return None

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        return ary.data
    return _F32P(arr), codegen


def _hsum8(builder, v):
    """Horizontal sum of an <8 x float>: 8 -> 4 -> 2 -> 1."""
    i32 = ir.IntType(32)
    width = 8
    while width > 1:
        half = width // 2
        lo = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(i32, half), list(range(half))))
        hi = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(i32, half),
                                                       list(range(half, width))))
        v = builder.fadd(lo, hi, flags=_FLAGS)
        width = half
    return builder.extract_element(v, ir.Constant(i32, 0))


def _reduction(square_diff: bool):
    def codegen(context, builder, sig, args):
        pa, pb, n = args
        n = context.cast(builder, n, sig.args[2], types.intp)
        f32 = ir.FloatType()
        i32 = ir.IntType(32)
        v8 = ir.VectorType(f32, 8)
        intp = n.type

        def const(v):
            return ir.Constant(intp, v)

        def combine(a, b):
            if square_diff:
                e = builder.fsub(a, b, flags=_FLAGS)
                return builder.fmul(e, e, flags=_FLAGS)
            return builder.fmul(a, b, flags=_FLAGS)

        def term(off):
            a = builder.load(builder.bitcast(builder.gep(pa, [off]), v8.as_pointer()), align=4)
            b = builder.load(builder.bitcast(builder.gep(pb, [off]), v8.as_pointer()), align=4)
            return combine(a, b)

        def accumulate(acc, value):
            builder.store(builder.fadd(builder.load(acc), value, flags=_FLAGS), acc)

        zero_v = ir.Constant(v8, [0.0] * 8)
        accs = [cgutils.alloca_once_value(builder, zero_v) for _ in range(4)]
        # 32 floats per step, four independent sums (hides the add latency)
        n32 = builder.udiv(n, const(32))
        with cgutils.for_range(builder, n32, intp=intp) as loop:
            i = builder.mul(loop.index, const(32))
            for u, acc in enumerate(accs):
                accumulate(acc, term(builder.add(i, const(8 * u))))
        # then whole 8-float blocks (at most three)
        done = builder.mul(n32, const(32))
        n8 = builder.udiv(builder.sub(n, done), const(8))
        with cgutils.for_range(builder, n8, intp=intp) as loop:
            accumulate(accs[0], term(builder.add(done, builder.mul(loop.index, const(8)))))
        done = builder.add(done, builder.mul(n8, const(8)))
        # and the last 1-7 floats in one masked step (masked lanes read nothing, give 0)
        rest = builder.sub(n, done)
        with builder.if_then(builder.icmp_signed(">", rest, const(0)), likely=False):
            lanes = ir.Constant(ir.VectorType(i32, 8), list(range(8)))
            r32 = builder.trunc(rest, i32)
            splat = builder.insert_element(ir.Constant(ir.VectorType(i32, 8), ir.Undefined),
                                           r32, ir.Constant(i32, 0))
            splat = builder.shuffle_vector(splat, splat, ir.Constant(ir.VectorType(i32, 8), [0] * 8))
            mask = builder.icmp_signed("<", lanes, splat)
            mload = cgutils.get_or_insert_function(
                builder.module,
                ir.FunctionType(v8, [v8.as_pointer(), i32, mask.type, v8]),
                "llvm.masked.load.v8f32.p0v8f32")
            a = builder.call(mload, [builder.bitcast(builder.gep(pa, [done]), v8.as_pointer()),
                                     ir.Constant(i32, 4), mask, zero_v])
            b = builder.call(mload, [builder.bitcast(builder.gep(pb, [done]), v8.as_pointer()),
                                     ir.Constant(i32, 4), mask, zero_v])
            accumulate(accs[1], combine(a, b))
        v = builder.fadd(builder.fadd(builder.load(accs[0]), builder.load(accs[1]), flags=_FLAGS),
                         builder.fadd(builder.load(accs[2]), builder.load(accs[3]), flags=_FLAGS),
                         flags=_FLAGS)
        return _hsum8(builder, v)
    return codegen


def _code_reduction(weighted: bool):
    """sum(q[t] * c[t]) or sum(w[t] * (q[t] - c[t])^2) over float q, w and uint8 codes c.

    Why not a numba loop: LLVM leaves the uint8 -> float conversion of such a loop
    scalar (35 ns for a 64-byte code against 6.5 ns for a 50-float row, measured
    in cache on this machine); here each step converts 8 codes at once
    (``uitofp <8 x i8>``: a zero-extend and one vcvtdq2ps on AVX2), as FAISS's
    AVX2 SQ8 distance does. The codes' rows hold a multiple of 8 bytes in voisin's
    walk spaces; any tail past the last 8 is summed one element at a time.
    """
    def codegen(context, builder, sig, args):
        if weighted:
            pq, pw, pc, n = args
            nty = sig.args[3]
        else:
            pq, pc, n = args
            pw = None
            nty = sig.args[2]
        n = context.cast(builder, n, nty, types.intp)
        f32 = ir.FloatType()
        v8 = ir.VectorType(f32, 8)
        c8 = ir.VectorType(ir.IntType(8), 8)
        intp = n.type

        def const(v):
            return ir.Constant(intp, v)

        def term(off):
            q = builder.load(builder.bitcast(builder.gep(pq, [off]), v8.as_pointer()), align=4)
            c = builder.load(builder.bitcast(builder.gep(pc, [off]), c8.as_pointer()), align=1)
            c = builder.uitofp(c, v8)
            if not weighted:
                return builder.fmul(q, c, flags=_FLAGS)
            w = builder.load(builder.bitcast(builder.gep(pw, [off]), v8.as_pointer()), align=4)
            e = builder.fsub(q, c, flags=_FLAGS)
            return builder.fmul(w, builder.fmul(e, e, flags=_FLAGS), flags=_FLAGS)

        def accumulate(acc, value):
            builder.store(builder.fadd(builder.load(acc), value, flags=_FLAGS), acc)

        zero_v = ir.Constant(v8, [0.0] * 8)
        accs = [cgutils.alloca_once_value(builder, zero_v) for _ in range(4)]
        n32 = builder.udiv(n, const(32))
        with cgutils.for_range(builder, n32, intp=intp) as loop:
            i = builder.mul(loop.index, const(32))
            for u, acc in enumerate(accs):
                accumulate(acc, term(builder.add(i, const(8 * u))))
        done = builder.mul(n32, const(32))
        n8 = builder.udiv(builder.sub(n, done), const(8))
        with cgutils.for_range(builder, n8, intp=intp) as loop:
            accumulate(accs[0], term(builder.add(done, builder.mul(loop.index, const(8)))))
        done = builder.add(done, builder.mul(n8, const(8)))
        v = builder.fadd(builder.fadd(builder.load(accs[0]), builder.load(accs[1]), flags=_FLAGS),
                         builder.fadd(builder.load(accs[2]), builder.load(accs[3]), flags=_FLAGS),
                         flags=_FLAGS)
        total = cgutils.alloca_once_value(builder, _hsum8(builder, v))
        with cgutils.for_range(builder, builder.sub(n, done), intp=intp) as loop:
            t = builder.add(done, loop.index)
            q = builder.load(builder.gep(pq, [t]))
            c = builder.uitofp(builder.load(builder.gep(pc, [t])), f32)
            if weighted:
                e = builder.fsub(q, c, flags=_FLAGS)
                term1 = builder.fmul(builder.load(builder.gep(pw, [t])),
                                     builder.fmul(e, e, flags=_FLAGS), flags=_FLAGS)
            else:
                term1 = builder.fmul(q, c, flags=_FLAGS)
            builder.store(builder.fadd(builder.load(total), term1, flags=_FLAGS), total)
        return builder.load(total)
    return codegen


@intrinsic
def code_dot(typingctx, pq, pc, n):
    """sum(q[t] * c[t], t < n): float32 pointer ``pq``, uint8 pointer ``pc``."""
    if pq != _F32P or pc != _U8P or not isinstance(n, types.Integer):
        return None
    return types.float32(pq, pc, n), _code_reduction(False)


@intrinsic
def code_wl2(typingctx, pq, pw, pc, n):
    """sum(w[t] * (q[t] - c[t])^2, t < n): float32 ``pq``/``pw``, uint8 codes ``pc``."""
    if pq != _F32P or pw != _F32P or pc != _U8P or not isinstance(n, types.Integer):
        return None
    return types.float32(pq, pw, pc, n), _code_reduction(True)


@intrinsic
def l2sq(typingctx, pa, pb, n):
    """sum((a[t] - b[t])^2, t < n) over two float32 pointers."""
    if pa != _F32P or pb != _F32P or not isinstance(n, types.Integer):
        return None
    return types.float32(pa, pb, n), _reduction(True)


@intrinsic
def dot(typingctx, pa, pb, n):
    """sum(a[t] * b[t], t < n) over two float32 pointers."""
    if pa != _F32P or pb != _F32P or not isinstance(n, types.Integer):
        return None
    return types.float32(pa, pb, n), _reduction(False)


# --- typed entry points: the vector loop for C-contiguous float32, a plain loop otherwise -------
# Kernels are compiled for float32 and uint8 (SQ8) storage alike, and numba types
# the float branch of a storage-generic kernel even where it never runs, so each
# entry point picks its body from the argument types at compile time.

def sqdist_qrow(q, X, j):
    """sum((q[t] - X[j, t])^2, t < len(q))."""


def dot_qrow(q, X, j):
    """sum(q[t] * X[j, t], t < len(q))."""


def sqdist_rows(X, i, j):
    """sum((X[i, t] - X[j, t])^2, t < X.shape[1])."""


def dot_rows(X, i, j):
    """sum(X[i, t] * X[j, t], t < X.shape[1])."""


def _vector_ok(*arrays) -> bool:
    return all(isinstance(a, types.Array) and a.dtype == types.float32 and a.layout == "C"
               for a in arrays)


_JIT = {"fastmath": FASTMATH, "nogil": True}
_PLAIN = {"cache": True, "nogil": True, "fastmath": FASTMATH}

# The entry points are inlined into their callers: an out-of-line overload call
# takes and drops a reference on each array argument per distance (atomic
# NRT_incref/decref, several times the arithmetic of a short row). The fallback
# loops are plain njit functions (no reference counting on their arguments), as
# numba's IR inliner mishandles a loop followed by a second return.


@njit(**_PLAIN)
def _plain_sqdist_qrow(q, X, j):
    s = np.float32(0.0)
    for t in range(q.shape[0]):
        e = q[t] - np.float32(X[j, t])
        s += e * e
    return s


@njit(**_PLAIN)
def _plain_dot_qrow(q, X, j):
    s = np.float32(0.0)
    for t in range(q.shape[0]):
        s += q[t] * np.float32(X[j, t])
    return s


@njit(**_PLAIN)
def _plain_sqdist_rows(X, i, j):
    s = np.float32(0.0)
    for t in range(X.shape[1]):
        e = np.float32(X[i, t]) - np.float32(X[j, t])
        s += e * e
    return s


@njit(**_PLAIN)
def _plain_dot_rows(X, i, j):
    s = np.float32(0.0)
    for t in range(X.shape[1]):
        s += np.float32(X[i, t]) * np.float32(X[j, t])
    return s


@njit(**_PLAIN)
def _plain_wl2_qrow(q, W, r, X, j):
    s = np.float32(0.0)
    for t in range(q.shape[0]):
        e = q[t] - np.float32(X[j, t])
        s += W[r, t] * e * e
    return s


@overload(sqdist_qrow, jit_options=_JIT, inline="always")
def _ol_sqdist_qrow(q, X, j):
    if _vector_ok(q, X):
        return lambda q, X, j: l2sq(vec_ptr(q), row_ptr(X, j), q.shape[0])
    return lambda q, X, j: _plain_sqdist_qrow(q, X, j)


@overload(dot_qrow, jit_options=_JIT, inline="always")
def _ol_dot_qrow(q, X, j):
    if _vector_ok(q, X):
        return lambda q, X, j: dot(vec_ptr(q), row_ptr(X, j), q.shape[0])
    return lambda q, X, j: _plain_dot_qrow(q, X, j)


@overload(sqdist_rows, jit_options=_JIT, inline="always")
def _ol_sqdist_rows(X, i, j):
    if _vector_ok(X):
        return lambda X, i, j: l2sq(row_ptr(X, i), row_ptr(X, j), X.shape[1])
    return lambda X, i, j: _plain_sqdist_rows(X, i, j)


@overload(dot_rows, jit_options=_JIT, inline="always")
def _ol_dot_rows(X, i, j):
    if _vector_ok(X):
        return lambda X, i, j: dot(row_ptr(X, i), row_ptr(X, j), X.shape[1])
    return lambda X, i, j: _plain_dot_rows(X, i, j)


def code_dot_qrow(q, X, j):
    """sum(q[t] * X[j, t], t < len(q)) for float32 ``q`` and uint8 code rows ``X``."""


def code_wl2_qrow(q, W, r, X, j):
    """sum(W[r, t] * (q[t] - X[j, t])^2, t < len(q)) for uint8 code rows ``X``."""


def _codes_ok(q, X) -> bool:
    return (_vector_ok(q) and isinstance(X, types.Array) and X.dtype == types.uint8
            and X.layout == "C")


@overload(code_dot_qrow, jit_options=_JIT, inline="always")
def _ol_code_dot_qrow(q, X, j):
    if _codes_ok(q, X):
        return lambda q, X, j: code_dot(vec_ptr(q), row_ptr(X, j), q.shape[0])
    return lambda q, X, j: _plain_dot_qrow(q, X, j)


@overload(code_wl2_qrow, jit_options=_JIT, inline="always")
def _ol_code_wl2_qrow(q, W, r, X, j):
    if _codes_ok(q, X) and _vector_ok(W):
        return lambda q, W, r, X, j: code_wl2(vec_ptr(q), row_ptr(W, r), row_ptr(X, j),
                                              q.shape[0])
    return lambda q, W, r, X, j: _plain_wl2_qrow(q, W, r, X, j)
