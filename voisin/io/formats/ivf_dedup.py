"""IndexIVFFlatDedup ``IwFd``.

``IVF common part | vector<int64> instances | inverted lists``: the instances
are FAISS's multimap flattened as (stored id, duplicate id) pairs in the
map's order (stored id ascending, duplicates in the order they were added).
The lists hold the stored copies only, so their total is ``ntotal`` minus the
duplicates (after a ``remove_ids`` FAISS's ``ntotal`` may differ further: it
is written and read as it is).
"""

from __future__ import annotations

import numpy as np

from ...indexes.ivf_dedup import IndexIVFFlatDedup
from ..faiss_format import register_reader, register_writer
from .ivf import IVFCommon, install_ivf, read_invlists, write_invlists, write_ivf_header


@register_writer(IndexIVFFlatDedup)
def write_ivf_flat_dedup(w, index: IndexIVFFlatDedup) -> None:
    w.tag(b"IwFd")
    write_ivf_header(w, index)
    w.vector(index.instance_pairs().ravel(), np.int64)
    write_invlists(w, index)


@register_reader(b"IwFd")
def read_ivf_flat_dedup(r, ctx, tag: bytes) -> IndexIVFFlatDedup:
    what = "IndexIVFFlatDedup"
    c = IVFCommon(r, ctx, what)
    at = r.pos
    tab = r.vector(np.int64, f"{what} instances")
    if tab.size % 2:
        raise r.fail(f"{what}: instances hold {tab.size} int64s, not (stored id, duplicate id) pairs", at)
    if c.dm_type != 0:
        raise r.fail(f"{what}: FAISS's dedup index has no direct map, the file says type {c.dm_type}", at)
    il = read_invlists(r, c.nlist, 4 * c.h.d, None, what)
    index = IndexIVFFlatDedup(c.quantizer, c.h.d, c.nlist, c.h.metric_type)
    install_ivf(index, c, il)
    index.set_instance_pairs(tab.reshape(-1, 2))
    return index
