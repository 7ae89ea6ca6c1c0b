"""IndexIDMap ``IxMp`` / IndexIDMap2 ``IxM2``: header, the wrapped index, the ids."""

from __future__ import annotations

import numpy as np

from ...indexes.flat import IndexFlat
from ...indexes.idmap import IndexIDMap, IndexIDMap2
from ..faiss_format import read_header, register_reader, register_writer, write_header, write_object


@register_writer(IndexIDMap, IndexIDMap2)
def write_idmap(w, index: IndexIDMap) -> None:
    w.tag(b"IxM2" if isinstance(index, IndexIDMap2) else b"IxMp")
    write_header(w, index)
    write_object(w, index.index)
    w.vector(index._ids[:index.ntotal], np.int64)


@register_reader(b"IxMp", b"IxM2")
def read_idmap(r, ctx, tag: bytes) -> IndexIDMap:
    at = r.pos
    h = read_header(r, "IndexIDMap", extra_metrics=True)  # the wrapped index checks its own
    sub = ctx.read_nested(r, "IndexIDMap sub-index")
    if sub.d != h.d or sub.ntotal != h.ntotal:
        raise r.fail(f"IndexIDMap: header says d={h.d}, ntotal={h.ntotal} but the wrapped "
                     f"index has d={sub.d}, ntotal={sub.ntotal}", at)
    ids = r.vector(np.int64, "IndexIDMap ids", expect=h.ntotal)
    cls = IndexIDMap2 if tag == b"IxM2" else IndexIDMap
    # The constructor insists on an empty index; build around a placeholder
    # and then install the loaded state.
    index = cls(IndexFlat(h.d, sub.metric_type))
    index.metric_arg = h.metric_arg
    index.index = sub
    index.params_type = sub.params_type
    index._ids = ids
    index._sorted = None
    index.ntotal = h.ntotal
    return index
