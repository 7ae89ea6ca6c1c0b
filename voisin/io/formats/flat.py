"""IndexFlat: ``IxF2`` (L2) / ``IxFI`` (inner product) / ``IxFl`` (another metric,
its ``metric_arg`` in the header), header then the vectors."""

from __future__ import annotations

import numpy as np

from ...indexes.flat import IndexFlat, IndexFlatIP, IndexFlatL2
from ...metric import METRIC_INNER_PRODUCT, METRIC_L2
from ..faiss_format import read_header, register_reader, register_writer, write_header

_TAG_METRIC = {b"IxF2": METRIC_L2, b"IxFI": METRIC_INNER_PRODUCT}


def flat_tag(metric: int) -> bytes:
    return b"IxFI" if metric == METRIC_INNER_PRODUCT else b"IxF2" if metric == METRIC_L2 else b"IxFl"


@register_writer(IndexFlat)
def write_flat(w, index: IndexFlat) -> None:
    w.tag(flat_tag(index.metric_type))
    write_header(w, index)
    w.vector(index._xb[:index.ntotal], np.float32)


def restore_flat(d: int, metric: int, xb: np.ndarray, mapped: bool, metric_arg: float = 0.0) -> IndexFlat:
    """An IndexFlat of the right class holding ``xb`` (ntotal, d) as its storage."""
    cls = {METRIC_L2: IndexFlatL2, METRIC_INNER_PRODUCT: IndexFlatIP}.get(metric)
    index = cls(d) if cls is not None else IndexFlat(d, metric)
    index.metric_arg = float(metric_arg)
    index._xb = xb
    # a mapped load must not touch every page to compute norms: they are lazy
    index._norms = None
    index.ntotal = xb.shape[0]
    return index


@register_reader(b"IxF2", b"IxFI", b"IxFl")
def read_flat(r, ctx, tag: bytes) -> IndexFlat:
    at = r.pos
    h = read_header(r, "IndexFlat", extra_metrics=True)
    if tag in _TAG_METRIC and _TAG_METRIC[tag] != h.metric_type:
        raise r.fail(f"IndexFlat: tag {tag.decode()!r} contradicts metric_type {h.metric_type}", at)
    xb = r.vector(np.float32, "IndexFlat vectors", expect=h.ntotal * h.d)
    return restore_flat(h.d, h.metric_type, xb.reshape(h.ntotal, h.d), ctx.mapped, h.metric_arg)
