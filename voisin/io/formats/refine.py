"""IndexRefine / IndexRefineFlat ``IxRF``: header, the base index, the refine
index (both nested), ``float32 k_factor``. FAISS writes IndexRefineFlat with
the same tag; a refine index that is an IndexFlat comes back as
IndexRefineFlat."""

from __future__ import annotations

import numpy as np

from ...indexes.flat import IndexFlat
from ...indexes.refine import IndexRefine, IndexRefineFlat
from ..faiss_format import read_header, register_reader, register_writer, write_header, write_object


@register_writer(IndexRefine, IndexRefineFlat)
def write_refine(w, index: IndexRefine) -> None:
    w.tag(b"IxRF")
    write_header(w, index)
    write_object(w, index.base_index)
    write_object(w, index.refine_index)
    w.f32(index.k_factor)


@register_reader(b"IxRF")
def read_refine(r, ctx, tag: bytes) -> IndexRefine:
    at = r.pos
    h = read_header(r, "IndexRefine")
    base = ctx.read_nested(r, "IndexRefine base index")
    refine = ctx.read_nested(r, "IndexRefine refine index")
    k_at = r.pos
    k_factor = r.f32("IndexRefine k_factor")
    if not (np.isfinite(k_factor) and 0 < k_factor <= 1 << 16):
        raise r.fail(f"IndexRefine: k_factor {k_factor} must be a positive number", k_at)
    if (base.d, base.ntotal) != (h.d, h.ntotal) or (refine.d, refine.ntotal) != (h.d, h.ntotal):
        raise r.fail("IndexRefine: base and refine indexes must match the header's d and ntotal", at)
    if isinstance(refine, IndexFlat):
        # IndexRefineFlat's constructor would rebuild the flat copy from the
        # base codes; build around an empty base, then install the loaded pieces
        index = IndexRefineFlat.from_parts(base, refine, float(k_factor))
    else:
        index = IndexRefine(base, refine)
        index.k_factor = float(k_factor)
    return index
