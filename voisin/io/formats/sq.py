"""Scalar-quantizer indexes: IndexScalarQuantizer ``IxSQ`` and
IndexIVFScalarQuantizer ``IwSq``.

``IxSQ``: header, ScalarQuantizer (see ``sqcodec``), vector<uint8> codes.
``IwSq``: IVF common part, ScalarQuantizer, ``uint64 code_size``,
``uint8 by_residual``, inverted lists.
"""

from __future__ import annotations

import numpy as np

from ...indexes.ivf_sq import IndexIVFScalarQuantizer
from ...indexes.sq import IndexScalarQuantizer
from ..faiss_format import read_header, register_reader, register_writer, write_header
from .ivf import IVFCommon, install_ivf, read_invlists, write_invlists, write_ivf_header
from .sqcodec import read_sq, write_sq


@register_writer(IndexScalarQuantizer)
def write_index_sq(w, index: IndexScalarQuantizer) -> None:
    w.tag(b"IxSQ")
    write_header(w, index)
    write_sq(w, index.sq)
    w.vector(index._codes[:index.ntotal], np.uint8)


@register_reader(b"IxSQ")
def read_index_sq(r, ctx, tag: bytes) -> IndexScalarQuantizer:
    h = read_header(r, "IndexScalarQuantizer")
    sq = read_sq(r, h.d, "IndexScalarQuantizer quantizer")
    codes = r.vector(np.uint8, "IndexScalarQuantizer codes", expect=h.ntotal * sq.code_size)
    index = IndexScalarQuantizer(h.d, sq.qtype, h.metric_type)
    index.sq = sq
    index.code_size = sq.code_size
    index._codes = codes.reshape(h.ntotal, sq.code_size)
    index.ntotal = h.ntotal
    index.is_trained = h.is_trained and sq.is_trained
    return index


@register_writer(IndexIVFScalarQuantizer)
def write_ivf_sq(w, index: IndexIVFScalarQuantizer) -> None:
    w.tag(b"IwSq")
    write_ivf_header(w, index)
    write_sq(w, index.sq)
    w.u64(index.code_size)
    w.bool(index.by_residual)
    write_invlists(w, index)


@register_reader(b"IwSq")
def read_ivf_sq(r, ctx, tag: bytes) -> IndexIVFScalarQuantizer:
    what = "IndexIVFScalarQuantizer"
    c = IVFCommon(r, ctx, what)
    sq = read_sq(r, c.h.d, f"{what} quantizer")
    r.int_in("u64", sq.code_size, sq.code_size, f"{what} code_size")
    by_residual = r.bool(f"{what} by_residual")
    il = read_invlists(r, c.nlist, sq.code_size, c.h.ntotal, what)
    index = IndexIVFScalarQuantizer(c.quantizer, c.h.d, c.nlist, sq.qtype, c.h.metric_type,
                                    by_residual=by_residual)
    index.sq = sq
    index._codec_trained = sq.is_trained
    return install_ivf(index, c, il)
