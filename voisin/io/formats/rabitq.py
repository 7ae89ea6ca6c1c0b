"""RaBitQ indexes: IndexRaBitQ ``Ixrq`` (1 bit) / ``Ixrr`` (multi-bit) and
IndexIVFRaBitQ ``Iwrq`` / ``Iwrr``.

RaBitQuantizer: ``uint64 d | uint64 code_size | int32 metric_type``; the
multi-bit tags add ``uint64 nb_bits`` after it (FAISS writes the 1-bit tags
for nb_bits = 1 and the multi-bit ones otherwise). The quantizer's own
centroid is not stored (the indexes own theirs).

``Ixrq``: header, RaBitQuantizer, vector<uint8> codes, vector<float> center,
``uint8 qb``. ``centered`` is not stored (a loaded index has False, as FAISS).
``Iwrq``: IVF common part, RaBitQuantizer, ``uint64 code_size``,
``uint8 by_residual``, ``uint8 qb``, inverted lists.
"""

from __future__ import annotations

import numpy as np

from ...codecs.rabitq import RaBitQuantizer, compute_code_size
from ...indexes.ivf_rabitq import IndexIVFRaBitQ
from ...indexes.rabitq import IndexRaBitQ
from ...metric import METRIC_INNER_PRODUCT, METRIC_L2
from ..faiss_format import MAX_DIMENSION, read_header, register_reader, register_writer, write_header
from .ivf import IVFCommon, install_ivf, read_invlists, write_invlists, write_ivf_header


def write_rabitq(w, rq: RaBitQuantizer) -> None:
    w.u64(rq.d)
    w.u64(rq.code_size)
    w.i32(rq.metric_type)
    if rq.nb_bits != 1:
        w.u64(rq.nb_bits)


def read_rabitq(r, d: int, metric: int, multi_bit: bool, what: str) -> RaBitQuantizer:
    at = r.pos
    rd = r.int_in("u64", 1, MAX_DIMENSION, f"{what} d")
    code_size = r.int_in("u64", 1, 1 << 30, f"{what} code_size")
    m = r.int_in("i32", 0, 1, f"{what} metric_type")
    nb_bits = r.int_in("u64", 1, 9, f"{what} nb_bits") if multi_bit else 1
    if rd != d:
        raise r.fail(f"{what}: dimension {rd} differs from the index's {d}", at)
    if m != metric or m not in (METRIC_L2, METRIC_INNER_PRODUCT):
        raise r.fail(f"{what}: metric_type {m} differs from the index's {metric}", at)
    if code_size != compute_code_size(d, nb_bits):
        raise r.fail(f"{what}: code_size {code_size} is not the size of a {nb_bits}-bit code of "
                     f"dimension {d} ({compute_code_size(d, nb_bits)})", at)
    return RaBitQuantizer(d, metric, nb_bits)


def _read_qb(r, what: str) -> int:
    return r.int_in("u8", 0, 8, f"{what} qb")


@register_writer(IndexRaBitQ)
def write_index_rabitq(w, index: IndexRaBitQ) -> None:
    w.tag(b"Ixrq" if index.rabitq.nb_bits == 1 else b"Ixrr")
    write_header(w, index)
    write_rabitq(w, index.rabitq)
    w.vector(index._codes[:index.ntotal], np.uint8)
    w.vector(np.ascontiguousarray(index.center, dtype=np.float32), np.float32)
    w.u8(index.qb)


@register_reader(b"Ixrq", b"Ixrr")
def read_index_rabitq(r, ctx, tag: bytes) -> IndexRaBitQ:
    what = "IndexRaBitQ"
    h = read_header(r, what)
    rq = read_rabitq(r, h.d, h.metric_type, tag == b"Ixrr", f"{what} quantizer")
    codes = r.vector(np.uint8, f"{what} codes", expect=h.ntotal * rq.code_size)
    at = r.pos
    center = r.vector(np.float32, f"{what} center")
    if center.size not in (0, h.d) or (h.is_trained and center.size != h.d):
        raise r.fail(f"{what}: center holds {center.size} floats, expected d={h.d}", at)
    qb = _read_qb(r, what)
    index = IndexRaBitQ(h.d, h.metric_type, rq.nb_bits)
    index.rabitq = rq
    index.code_size = rq.code_size
    index._codes = codes.reshape(h.ntotal, rq.code_size)
    index.ntotal = h.ntotal
    index.center = np.array(center, dtype=np.float32)
    index.qb = qb
    index.is_trained = h.is_trained
    return index


@register_writer(IndexIVFRaBitQ)
def write_ivf_rabitq(w, index: IndexIVFRaBitQ) -> None:
    w.tag(b"Iwrq" if index.rabitq.nb_bits == 1 else b"Iwrr")
    write_ivf_header(w, index)
    write_rabitq(w, index.rabitq)
    w.u64(index.code_size)
    w.bool(index.by_residual)
    w.u8(index.qb)
    write_invlists(w, index)


@register_reader(b"Iwrq", b"Iwrr")
def read_ivf_rabitq(r, ctx, tag: bytes) -> IndexIVFRaBitQ:
    what = "IndexIVFRaBitQ"
    c = IVFCommon(r, ctx, what)
    rq = read_rabitq(r, c.h.d, c.h.metric_type, tag == b"Iwrr", f"{what} quantizer")
    r.int_in("u64", rq.code_size, rq.code_size, f"{what} code_size")
    by_residual = r.bool(f"{what} by_residual")
    qb = _read_qb(r, what)
    il = read_invlists(r, c.nlist, rq.code_size, c.h.ntotal, what)
    index = IndexIVFRaBitQ(c.quantizer, c.h.d, c.nlist, c.h.metric_type, nb_bits=rq.nb_bits)
    index.rabitq = rq
    index.by_residual = by_residual
    index.qb = qb
    return install_ivf(index, c, il)
