"""IndexIVFPQ ``IwPQ``: IVF common part, ``uint8 by_residual``, ``uint64
code_size``, the product quantizer, the inverted lists. FAISS does not store
the precomputed tables; both libraries rebuild them on load."""

from __future__ import annotations

from ...indexes.ivfpq import IndexIVFPQ
from ..faiss_format import register_reader, register_writer
from .ivf import IVFCommon, install_ivf, read_invlists, write_invlists, write_ivf_header
from .pq import read_pq, write_pq


@register_writer(IndexIVFPQ)
def write_ivfpq(w, index: IndexIVFPQ) -> None:
    w.tag(b"IwPQ")
    write_ivf_header(w, index)
    w.bool(index.by_residual)
    w.u64(index.code_size)
    write_pq(w, index.pq)
    write_invlists(w, index)


@register_reader(b"IwPQ")
def read_ivfpq(r, ctx, tag: bytes) -> IndexIVFPQ:
    c = IVFCommon(r, ctx, "IndexIVFPQ")
    by_residual = r.bool("IndexIVFPQ by_residual")
    cs_at = r.pos
    code_size = r.u64("IndexIVFPQ code_size")
    pq = read_pq(r, c.h.d, "IndexIVFPQ quantizer")
    if code_size != pq.code_size:
        raise r.fail(f"IndexIVFPQ: code_size {code_size} does not match M={pq.M}, "
                     f"nbits={pq.nbits}", cs_at)
    il = read_invlists(r, c.nlist, code_size, c.h.ntotal, "IndexIVFPQ")
    index = IndexIVFPQ(c.quantizer, c.h.d, c.nlist, pq.M, pq.nbits, c.h.metric_type,
                       by_residual=by_residual)
    pq.is_trained = c.h.is_trained
    index.pq = pq
    index._codec_trained = c.h.is_trained
    install_ivf(index, c, il)
    # FAISS rebuilds the precomputed tables on load, and so do we
    index._cent_cache = None
    index.precompute_table()
    return index
