"""Index2Layer ``Ix2L``.

``header | the coarse quantizer (nested index) | uint64 nlist | uint8
quantizer_trains_alone | ProductQuantizer | uint64 code_size_1 | uint64
code_size_2 | uint64 code_size | vector<uint8> codes`` (ntotal * code_size
bytes, each the little-endian list number then the residual's PQ code).
"""

from __future__ import annotations

import numpy as np

from ...index import Index
from ...indexes.index2layer import Index2Layer, coarse_code_size
from ..faiss_format import read_header, register_reader, register_writer, write_header, write_object
from .pq import read_codes, read_pq, write_pq


@register_writer(Index2Layer)
def write_index2layer(w, index: Index2Layer) -> None:
    w.tag(b"Ix2L")
    write_header(w, index)
    write_object(w, index.q1.quantizer)
    w.u64(index.q1.nlist)
    w.u8(index.q1.quantizer_trains_alone)
    write_pq(w, index.pq)
    w.u64(index.code_size_1)
    w.u64(index.code_size_2)
    w.u64(index.code_size)
    w.vector(index._codes[:index.ntotal], np.uint8)


@register_reader(b"Ix2L")
def read_index2layer(r, ctx, tag: bytes) -> Index2Layer:
    what = "Index2Layer"
    h = read_header(r, what)
    q_at = r.pos
    quantizer = ctx.read_nested(r, f"{what} quantizer")
    if not isinstance(quantizer, Index) or quantizer.d != h.d:
        raise r.fail(f"{what}: the quantizer's dimension differs from the index's", q_at)
    at = r.pos
    nlist = r.int_in("u64", 1, 1 << 62, f"{what} nlist")
    if quantizer.is_trained and h.is_trained and quantizer.ntotal != nlist:
        raise r.fail(f"{what}: the quantizer holds {quantizer.ntotal} centroids for nlist={nlist}", at)
    alone = r.int_in("u8", 0, 2, f"{what} quantizer_trains_alone")
    pq = read_pq(r, h.d, f"{what} quantizer")
    cs1 = r.int_in("u64", coarse_code_size(nlist), coarse_code_size(nlist), f"{what} code_size_1")
    cs2 = r.int_in("u64", pq.code_size, pq.code_size, f"{what} code_size_2")
    r.int_in("u64", cs1 + cs2, cs1 + cs2, f"{what} code_size")
    codes_at = r.pos
    codes = read_codes(r, h.ntotal, cs1 + cs2, f"{what} codes")
    index = Index2Layer(quantizer, nlist, pq.M, pq.nbits, h.metric_type)
    index.q1.quantizer_trains_alone = alone
    pq.is_trained = h.is_trained
    index.pq = pq
    index.is_trained = h.is_trained
    lists = index.q1.decode_listno(codes)
    if lists.size and lists.max() >= nlist:
        raise r.fail(f"{what}: a code's list number is not below nlist={nlist}", codes_at)
    index._codes = np.ascontiguousarray(codes)
    index.ntotal = h.ntotal
    return index
