"""The ScalarQuantizer object shared by IxSQ, IwSq and IHNs.

``int32 qtype | int32 rangestat | float32 rangestat_arg | uint64 d |
uint64 code_size | vector<float32> trained`` (2d values for per-dimension
ranges, 2 for uniform ones, none for fp16/bf16/direct).
"""

from __future__ import annotations

import numpy as np

from ...codecs import sq as S


def write_sq(w, sq: S.ScalarQuantizer) -> None:
    w.i32(sq.qtype)
    w.i32(sq.rangestat)
    w.f32(sq.rangestat_arg)
    w.u64(sq.d)
    w.u64(sq.code_size)
    w.vector(sq.trained, np.float32)


def _trained_size(qtype: int, d: int) -> set[int]:
    if qtype in (S.QT_8bit, S.QT_6bit, S.QT_4bit):
        return {0, 2 * d}
    if qtype in (S.QT_8bit_uniform, S.QT_4bit_uniform):
        return {0, 2}
    return {0}


def read_sq(r, d: int, what: str = "ScalarQuantizer") -> S.ScalarQuantizer:
    at = r.pos
    qtype = r.i32(f"{what} qtype")
    if qtype not in S._SUPPORTED:
        raise r.fail(f"{what}: quantizer type {qtype} ({S.qtype_name(qtype)}) is not supported "
                     "by voisin", at)
    rangestat = r.int_in("i32", 0, 3, f"{what} rangestat")
    rangestat_arg = r.f32(f"{what} rangestat_arg")
    if not np.isfinite(rangestat_arg):
        raise r.fail(f"{what}: rangestat_arg is not finite", at)
    r.int_in("u64", d, d, f"{what} d")
    cs_at = r.pos
    code_size = r.u64(f"{what} code_size")
    tr_at = r.pos
    trained = r.vector(np.float32, f"{what} trained ranges")
    sq = S.ScalarQuantizer(d, qtype, rangestat, float(rangestat_arg))
    if code_size != sq.code_size:
        raise r.fail(f"{what}: code_size {code_size} does not match {S.qtype_name(qtype)} "
                     f"in dimension {d} ({sq.code_size})", cs_at)
    if trained.size not in _trained_size(qtype, d):
        raise r.fail(f"{what}: {trained.size} trained values for {S.qtype_name(qtype)} in "
                     f"dimension {d}", tr_at)
    sq.trained = np.ascontiguousarray(trained, dtype=np.float32)
    return sq
