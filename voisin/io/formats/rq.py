"""Additive quantizers: IndexResidualQuantizer ``IxRq``, IndexIVFResidualQuantizer ``IwRQ``.

AdditiveQuantizer: ``uint64 d | uint64 M | vector<uint64> nbits | uint8
is_trained | vector<float32> codebooks | int32 search_type | float32 norm_min
| float32 norm_max``, then for the non-uniform norm encodings (cqint8,
cqint4, lsq2x4, rq2x4) the norm levels as a float vector, and for lsq2x4 /
rq2x4 the 2x4 norm codebooks (``norm_tabs``). ResidualQuantizer adds ``int32
train_type | int32 max_beam_size``.

IxRq: header, the quantizer, ``uint64 code_size``, ``vector<uint8> codes``.
IwRQ: IVF common part, ``uint64 code_size``, the quantizer, ``uint8
by_residual``, ``int32 use_precomputed_table``, the inverted lists.
Only the FAISS codes are stored; voisin's per-vector side values (see
voisin/indexes/additive.py) are recomputed on load.
"""

from __future__ import annotations

import numpy as np

from ...codecs.additive import (ST_norm_cqint4, ST_norm_cqint8, ST_norm_lsq2x4, ST_norm_rq2x4,
                                AdditiveQuantizer, check_search_type)
from ...codecs.rq import ResidualQuantizer
from ...indexes.additive import IndexResidualQuantizer
from ...indexes.ivf_rq import IndexIVFResidualQuantizer
from ..faiss_format import read_header, register_reader, register_writer, write_header
from .ivf import IVFCommon, install_ivf, read_invlists, write_invlists, write_ivf_header

_QNORM_TYPES = (ST_norm_cqint8, ST_norm_cqint4, ST_norm_lsq2x4, ST_norm_rq2x4)
_QNORM_LEVELS = {ST_norm_cqint8: 256, ST_norm_cqint4: 16, ST_norm_lsq2x4: 256, ST_norm_rq2x4: 256}


def write_aq(w, aq: AdditiveQuantizer) -> None:
    w.u64(aq.d)
    w.u64(aq.M)
    w.vector(np.asarray(aq.nbits, dtype=np.uint64), np.uint64)
    w.bool(aq.is_trained)
    w.vector(aq.codebooks.reshape(-1), np.float32)
    w.i32(aq.search_type)
    w.f32(float(aq.norm_min))
    w.f32(float(aq.norm_max))
    if aq.search_type in _QNORM_TYPES:
        w.vector(np.asarray(aq.qnorm, dtype=np.float32), np.float32)
    if aq.search_type in (ST_norm_lsq2x4, ST_norm_rq2x4):
        w.vector(np.asarray(aq.norm_tabs, dtype=np.float32), np.float32)


def write_rq(w, rq: ResidualQuantizer) -> None:
    write_aq(w, rq)
    w.i32(rq.train_type)
    w.i32(rq.max_beam_size)


def read_aq_fields(r, what: str, d: int | None = None) -> dict:
    """The AdditiveQuantizer part, checked, as a dict of constructor inputs."""
    at = r.pos
    qd = r.int_in("u64", 1, 1 << 24, f"{what} d")
    if d is not None and qd != d:
        raise r.fail(f"{what}: d={qd} differs from the index dimension {d}", at)
    M = r.int_in("u64", 1, 1 << 16, f"{what} M")
    nb_at = r.pos
    nbits = r.vector(np.uint64, f"{what} nbits", expect=M)
    if nbits.size and (nbits.min() < 1 or nbits.max() > 20):
        raise r.fail(f"{what}: bits per codebook must lie in [1, 20], got {nbits.tolist()}", nb_at)
    bits = [int(b) for b in nbits]
    is_trained = r.bool(f"{what} is_trained")
    total = sum(1 << b for b in bits)
    cb_at = r.pos
    cb = r.vector(np.float32, f"{what} codebooks")
    if cb.size not in (0, total * qd):
        raise r.fail(f"{what}: {cb.size} codebook values, expected {total} x {qd}", cb_at)
    st_at = r.pos
    st = r.i32(f"{what} search_type")
    try:
        st = check_search_type(st)
    except (ValueError, NotImplementedError) as exc:
        raise r.fail(f"{what}: {exc}", st_at) from None
    norm_min = r.f32(f"{what} norm_min")
    norm_max = r.f32(f"{what} norm_max")
    qnorm = np.zeros(0, dtype=np.float32)
    tabs = np.zeros(0, dtype=np.float32)
    if st in _QNORM_TYPES:
        q_at = r.pos
        qnorm = r.vector(np.float32, f"{what} norm levels")
        if qnorm.size not in (0, _QNORM_LEVELS[st]):
            raise r.fail(f"{what}: {qnorm.size} norm levels, expected {_QNORM_LEVELS[st]}", q_at)
    if st in (ST_norm_lsq2x4, ST_norm_rq2x4):
        tabs = r.vector(np.float32, f"{what} norm codebooks")
    return dict(d=qd, bits=bits, is_trained=is_trained, codebooks=cb, search_type=st,
                norm_min=norm_min, norm_max=norm_max, qnorm=qnorm, norm_tabs=tabs)


def install_aq(aq: AdditiveQuantizer, f: dict) -> AdditiveQuantizer:
    if f["codebooks"].size:
        aq.set_codebooks(f["codebooks"])
    aq.is_trained = bool(f["is_trained"])
    aq.norm_min, aq.norm_max = np.float32(f["norm_min"]), np.float32(f["norm_max"])
    aq.qnorm = np.ascontiguousarray(f["qnorm"], dtype=np.float32)
    aq.norm_tabs = np.ascontiguousarray(f["norm_tabs"], dtype=np.float32)
    return aq


def read_rq(r, what: str = "ResidualQuantizer", d: int | None = None) -> ResidualQuantizer:
    f = read_aq_fields(r, what, d)
    rq = ResidualQuantizer(f["d"], f["bits"], f["search_type"])
    install_aq(rq, f)
    rq.train_type = r.i32(f"{what} train_type")
    rq.max_beam_size = r.int_in("i32", 1, 1 << 20, f"{what} max_beam_size")
    return rq


def read_code_vector(r, n: int, code_size: int, what: str) -> np.ndarray:
    return r.vector(np.uint8, what, expect=n * code_size).reshape(n, code_size)


@register_writer(IndexResidualQuantizer)
def write_index_rq(w, index: IndexResidualQuantizer) -> None:
    w.tag(b"IxRq")
    write_header(w, index)
    write_rq(w, index.rq)
    w.u64(index.code_size)
    w.vector(np.ascontiguousarray(index.codes), np.uint8)


@register_reader(b"IxRq")
def read_index_rq(r, ctx, tag: bytes) -> IndexResidualQuantizer:
    h = read_header(r, "IndexResidualQuantizer")
    rq = read_rq(r, "IndexResidualQuantizer quantizer", h.d)
    cs_at = r.pos
    code_size = r.u64("IndexResidualQuantizer code_size")
    if code_size != rq.code_size:
        raise r.fail(f"IndexResidualQuantizer: code_size {code_size} does not match the "
                     f"quantizer's {rq.code_size}", cs_at)
    codes = read_code_vector(r, h.ntotal, code_size, "IndexResidualQuantizer codes")
    index = IndexResidualQuantizer(h.d, rq.nbits, h.metric_type, rq.search_type)
    index.rq = rq
    index.is_trained = h.is_trained
    if h.ntotal:
        if not rq.is_trained:
            raise r.fail("IndexResidualQuantizer: holds codes but its quantizer is not trained",
                         cs_at)
        index.set_codes(codes)
    return index


class _FaissLists:
    """What write_invlists reads of an index: its lists, with FAISS-sized codes."""

    def __init__(self, index: IndexIVFResidualQuantizer):
        self.invlists = index.faiss_lists()


@register_writer(IndexIVFResidualQuantizer)
def write_ivf_rq(w, index: IndexIVFResidualQuantizer) -> None:
    w.tag(b"IwRQ")
    write_ivf_header(w, index)
    w.u64(index.code_size)
    write_rq(w, index.rq)
    w.bool(index.by_residual)
    w.i32(index.use_precomputed_table)
    write_invlists(w, _FaissLists(index))


@register_reader(b"IwRQ")
def read_ivf_rq(r, ctx, tag: bytes) -> IndexIVFResidualQuantizer:
    c = IVFCommon(r, ctx, "IndexIVFResidualQuantizer")
    cs_at = r.pos
    code_size = r.u64("IndexIVFResidualQuantizer code_size")
    rq = read_rq(r, "IndexIVFResidualQuantizer quantizer", c.h.d)
    if code_size != rq.code_size:
        raise r.fail(f"IndexIVFResidualQuantizer: code_size {code_size} does not match the "
                     f"quantizer's {rq.code_size}", cs_at)
    by_residual = r.bool("IndexIVFResidualQuantizer by_residual")
    use_precomputed = r.i32("IndexIVFResidualQuantizer use_precomputed_table")
    il = read_invlists(r, c.nlist, code_size, c.h.ntotal, "IndexIVFResidualQuantizer")
    index = IndexIVFResidualQuantizer(c.quantizer, c.h.d, c.nlist, rq.nbits, c.h.metric_type,
                                      rq.search_type)
    index.rq = rq
    index.by_residual = by_residual
    index.use_precomputed_table = use_precomputed
    install_ivf(index, c, il)
    if c.h.ntotal and not rq.is_trained:
        raise r.fail("IndexIVFResidualQuantizer: holds codes but its quantizer is not trained",
                     cs_at)
    index.install_lists(il)
    return index
