"""MultiIndexQuantizer: ``Imiq``, the header then the product quantizer."""

from __future__ import annotations

from ...indexes.imi import MultiIndexQuantizer
from ...metric import METRIC_L2
from ..faiss_format import read_header, register_reader, register_writer, write_header
from .pq import read_pq, write_pq


@register_writer(MultiIndexQuantizer)
def write_imi(w, index: MultiIndexQuantizer) -> None:
    w.tag(b"Imiq")
    write_header(w, index)
    write_pq(w, index.pq)


@register_reader(b"Imiq")
def read_imi(r, ctx, tag: bytes) -> MultiIndexQuantizer:
    at = r.pos
    h = read_header(r, "MultiIndexQuantizer")
    if h.metric_type != METRIC_L2:
        raise r.fail("MultiIndexQuantizer: only L2 is supported", at)
    pq = read_pq(r, h.d, "MultiIndexQuantizer product quantizer")
    index = MultiIndexQuantizer(h.d, pq.M, pq.nbits)
    pq.is_trained = pq.is_trained or h.is_trained
    index.set_quantizer(pq)
    if h.is_trained and index.ntotal != h.ntotal:
        raise r.fail(f"MultiIndexQuantizer: ntotal {h.ntotal} is not 2**(M*nbits) = {index.ntotal}", at)
    return index
