"""IndexLSH ``IxHe``: the float header, ``int32 nbits | uint8 rotate_data |
uint8 train_thresholds | vector<float32> thresholds | int32 code_size``, the
rotation (``rrot``, written even when unused: then untrained and empty), and
``vector<uint8>`` codes (ntotal * code_size).

``IxHE`` is FAISS's older tag, whose code size counted 64-bit words; it is
read too (nbits a multiple of 64, as FAISS requires).
"""

from __future__ import annotations

import numpy as np

from ...indexes.lsh import IndexLSH
from ...transforms import RandomRotationMatrix
from ..faiss_format import read_header, register_reader, register_writer, write_header
from .transforms import read_transform, write_transform


@register_writer(IndexLSH)
def write_lsh(w, index: IndexLSH) -> None:
    codes = index.codes
    w.tag(b"IxHe")
    write_header(w, index, codes.shape[0])
    w.i32(index.nbits)
    w.bool(index.rotate_data)
    w.bool(index.train_thresholds)
    w.vector(index.thresholds, np.float32)
    w.i32(index.code_size)
    write_transform(w, index.rrot)
    w.vector(codes, np.uint8)


@register_reader(b"IxHe", b"IxHE")
def read_lsh(r, ctx, tag: bytes) -> IndexLSH:
    what = "IndexLSH"
    at = r.pos
    h = read_header(r, what)
    if h.metric_type != 1:
        raise r.fail(f"{what}: metric_type {h.metric_type}, expected 1 (L2)", at)
    nbits = r.int_in("i32", 1, 1 << 24, f"{what} nbits")
    rotate_data = r.bool(f"{what} rotate_data")
    train_thresholds = r.bool(f"{what} train_thresholds")
    thresholds = r.vector(np.float32, f"{what} thresholds")
    cs_at = r.pos
    code_size = r.i32(f"{what} code_size")
    if tag == b"IxHE":
        if nbits % 64:
            raise r.fail(f"{what}: the old IxHE layout holds nbits that are multiples of 64, "
                         f"got {nbits}", cs_at)
        code_size *= 8
    if code_size != (nbits + 7) // 8:
        raise r.fail(f"{what}: code_size {code_size} does not fit nbits={nbits} "
                     f"(expected {(nbits + 7) // 8})", cs_at)
    if thresholds.size not in (0, nbits) or (train_thresholds and h.is_trained
                                             and thresholds.size != nbits):
        raise r.fail(f"{what}: {thresholds.size} thresholds for nbits={nbits}", at)
    rt_at = r.pos
    rrot = read_transform(r, f"{what} rotation")
    if not isinstance(rrot, RandomRotationMatrix) or (rrot.d_in, rrot.d_out) != (h.d, nbits):
        raise r.fail(f"{what}: expected a random rotation {h.d} -> {nbits}, found "
                     f"{rrot!r}", rt_at)
    if rotate_data and not rrot.is_trained:
        raise r.fail(f"{what}: rotate_data is set but the rotation has no matrix", rt_at)
    codes = r.vector(np.uint8, f"{what} codes", expect=h.ntotal * code_size)
    index = IndexLSH(h.d, nbits, rotate_data, train_thresholds)
    index.rrot = rrot
    index.thresholds = np.ascontiguousarray(thresholds, dtype=np.float32)
    index.is_trained = h.is_trained
    index.set_codes(codes.reshape(h.ntotal, code_size))
    return index
