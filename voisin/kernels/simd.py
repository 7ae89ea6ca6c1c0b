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
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from . import FASTMATH

# reassociation lets the four accumulators and the final horizontal sum be
# reordered; contract fuses multiply-add; no nnan/ninf (callers compare costs
# with +inf sentinels)
_FLAGS = ("reassoc", "contract", "nsz", "arcp")
_F32P = types.CPointer(types.float32)


@intrinsic
def row_ptr(typingctx, arr, row):
    """Pointer to ``arr[row, 0]`` of a C-contiguous 2-D float32 array (no bounds check)."""
    if not (isinstance(arr, types.Array) and arr.ndim == 2 and arr.dtype == types.float32
            and arr.layout == "C"):
        return None

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        zero = context.get_constant(types.intp, 0)
        idx = context.cast(builder, args[1], sig.args[1], types.intp)
        return cgutils.get_item_pointer(context, builder, sig.args[0], ary, [idx, zero])
    return _F32P(arr, row), codegen


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
        # horizontal sum 8 -> 4 -> 2 -> 1
        width = 8
        while width > 1:
            half = width // 2
            lo = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(i32, half), list(range(half))))
            hi = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(i32, half),
                                                           list(range(half, width))))
            v = builder.fadd(lo, hi, flags=_FLAGS)
            width = half
        return builder.extract_element(v, ir.Constant(i32, 0))
    return codegen


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


@overload(sqdist_qrow, jit_options=_JIT)
def _ol_sqdist_qrow(q, X, j):
    if _vector_ok(q, X):
        return lambda q, X, j: l2sq(vec_ptr(q), row_ptr(X, j), q.shape[0])

    def plain(q, X, j):
        s = np.float32(0.0)
        for t in range(q.shape[0]):
            e = q[t] - np.float32(X[j, t])
            s += e * e
        return s
    return plain


@overload(dot_qrow, jit_options=_JIT)
def _ol_dot_qrow(q, X, j):
    if _vector_ok(q, X):
        return lambda q, X, j: dot(vec_ptr(q), row_ptr(X, j), q.shape[0])

    def plain(q, X, j):
        s = np.float32(0.0)
        for t in range(q.shape[0]):
            s += q[t] * np.float32(X[j, t])
        return s
    return plain


@overload(sqdist_rows, jit_options=_JIT)
def _ol_sqdist_rows(X, i, j):
    if _vector_ok(X):
        return lambda X, i, j: l2sq(row_ptr(X, i), row_ptr(X, j), X.shape[1])

    def plain(X, i, j):
        s = np.float32(0.0)
        for t in range(X.shape[1]):
            e = np.float32(X[i, t]) - np.float32(X[j, t])
            s += e * e
        return s
    return plain


@overload(dot_rows, jit_options=_JIT)
def _ol_dot_rows(X, i, j):
    if _vector_ok(X):
        return lambda X, i, j: dot(row_ptr(X, i), row_ptr(X, j), X.shape[1])

    def plain(X, i, j):
        s = np.float32(0.0)
        for t in range(X.shape[1]):
            s += np.float32(X[i, t]) * np.float32(X[j, t])
        return s
    return plain
