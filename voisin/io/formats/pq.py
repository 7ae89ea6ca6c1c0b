"""IndexPQ ``IxPq`` and the product quantizer shared by every PQ-based format.

ProductQuantizer: ``uint64 d | uint64 M | uint64 nbits | vector<float32>
centroids`` laid out [M][2^nbits][d/M]. IndexPQ: header, the quantizer, the
codes as a vector<uint8> (ntotal * code_size), then FAISS's polysemous search
settings (int32 search_type, uint8 encode_signs, int32 polysemous_ht): the
index's ``search_type``, ``encode_signs`` and ``polysemous_ht``.
"""

from __future__ import annotations

import numpy as np

from ...codecs.pq import ProductQuantizer
from ...indexes.pq import IndexPQ
from ..faiss_format import read_header, register_reader, register_writer, write_header


def write_pq(w, pq: ProductQuantizer) -> None:
    w.u64(pq.d)
    w.u64(pq.M)
    w.u64(pq.nbits)
    w.vector(pq.centroids, np.float32)


def read_pq(r, d: int | None = None, what: str = "ProductQuantizer") -> ProductQuantizer:
    at = r.pos
    pd = r.int_in("u64", 1, 1 << 24, f"{what} d")
    M = r.int_in("u64", 1, pd, f"{what} M")
    nbits = r.int_in("u64", 1, 16, f"{what} nbits")
    if pd % M:
        raise r.fail(f"{what}: d={pd} is not a multiple of M={M}", at)
    if d is not None and pd != d:
        raise r.fail(f"{what}: d={pd} differs from the index dimension {d}", at)
    cent = r.vector(np.float32, f"{what} centroids", expect=M * (1 << nbits) * (pd // M))
    pq = ProductQuantizer(pd, M, nbits)
    pq.centroids = np.ascontiguousarray(cent.reshape(M, 1 << nbits, pd // M))
    pq._cent_t = None
    # FAISS writes the (zero) centroids of an untrained quantizer too
    pq.is_trained = bool(cent.size and np.any(cent != 0))
    return pq


def read_codes(r, n: int, code_size: int, what: str) -> np.ndarray:
    codes = r.vector(np.uint8, what, expect=n * code_size)
    return codes.reshape(n, code_size)


@register_writer(IndexPQ)
def write_index_pq(w, index: IndexPQ) -> None:
    w.tag(b"IxPq")
    write_header(w, index)
    write_pq(w, index.pq)
    w.vector(index._codes[:index.ntotal], np.uint8)
    w.i32(index.search_type)
    w.u8(int(bool(index.encode_signs)))
    w.i32(index.polysemous_ht)


@register_reader(b"IxPq")
def read_index_pq(r, ctx, tag: bytes) -> IndexPQ:
    h = read_header(r, "IndexPQ")
    pq = read_pq(r, h.d, "IndexPQ quantizer")
    codes = read_codes(r, h.ntotal, pq.code_size, "IndexPQ codes")
    at = r.pos
    search_type = r.int_in("i32", 0, 5, "IndexPQ search_type")
    encode_signs = r.u8("IndexPQ encode_signs")
    ht = r.i32("IndexPQ polysemous_ht")
    if ht < 0:
        raise r.fail(f"IndexPQ: negative polysemous_ht {ht}", at)
    index = IndexPQ(h.d, pq.M, pq.nbits, h.metric_type)
    pq.is_trained = h.is_trained
    index.pq = pq
    index.is_trained = h.is_trained
    index._codes = codes
    index.ntotal = h.ntotal
    index.search_type = search_type
    index.encode_signs = bool(encode_signs)
    index.polysemous_ht = ht
    return index
