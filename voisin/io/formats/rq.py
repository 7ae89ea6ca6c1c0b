"""Additive quantizers: IndexResidualQuantizer ``IxRq``, IndexIVFResidualQuantizer ``IwRQ``.

AdditiveQuantizer: ``uint64 d | uint64 M | vector<uint64> nbits | uint8
is_trained | vector<float32> codebooks | int32 search_type | float32 norm_min
| float32 norm_max``, then for the non-uniform norm encodings (cqint8,
cqint4, lsq2x4, rq2x4) the norm levels as a float vector, and for lsq2x4 /
rq2x4 the 2x4 norm codebooks (``norm_tabs``). ResidualQuantizer adds ``int32
train_type | int32 max_beam_size``.

ProductResidualQuantizer: the AdditiveQuantizer part (codewords of d / nsplits
values), ``uint64 nsplits``, then each sub-space's ResidualQuantizer.

IxRq (IxPR): header, the quantizer, ``uint64 code_size``, ``vector<uint8> codes``.
LocalSearchQuantizer: the AdditiveQuantizer part, ``uint64 K, train_iters,
encode_ils_iters, train_ils_iters, icm_iters | float32 p, lambd | uint64
chunk_size | int32 random_seed | uint64 nperts | uint8
update_codebooks_with_double``; indexes IxLS / IwLS as IxRq / IwRQ; IxPL / IwPL
as IxPR / IwPR with local search sub-quantizers.
ImRQ (ResidualCoarseQuantizer): header, the quantizer, ``float32 beam_factor``.
IwRQ (IwPR): IVF common part, ``uint64 code_size``, the quantizer, ``uint8
by_residual``, ``int32 use_precomputed_table``, the inverted lists.
Only the FAISS codes are stored; voisin's per-vector side values (see
voisin/indexes/additive.py) are recomputed on load.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from ...codecs.additive import (ST_norm_cqint4, ST_norm_cqint8, ST_norm_lsq2x4, ST_norm_rq2x4,
                                AdditiveQuantizer, check_search_type)
from ...codecs.lsq import LocalSearchQuantizer
from ...codecs.prq import (ProductAdditiveQuantizer, ProductLocalSearchQuantizer,
                           ProductResidualQuantizer)
from ...codecs.rq import ResidualQuantizer
from ...indexes.additive import (IndexLocalSearchQuantizer, IndexProductLocalSearchQuantizer,
                                 IndexProductResidualQuantizer, IndexResidualQuantizer)
from ...indexes.ivf_rq import (IndexIVFLocalSearchQuantizer, IndexIVFProductLocalSearchQuantizer,
                               IndexIVFProductResidualQuantizer, IndexIVFResidualQuantizer)
from ...indexes.rcq import ResidualCoarseQuantizer
from ..faiss_format import read_header, register_reader, register_writer, write_header
from .ivf import IVFCommon, install_ivf, read_invlists, write_invlists, write_ivf_header

_QNORM_TYPES = (ST_norm_cqint8, ST_norm_cqint4, ST_norm_lsq2x4, ST_norm_rq2x4)
_QNORM_LEVELS = {ST_norm_cqint8: 256, ST_norm_cqint4: 16, ST_norm_lsq2x4: 256, ST_norm_rq2x4: 256}


def write_aq(w, aq: AdditiveQuantizer) -> None:
    w.u64(aq.d)
    w.u64(aq.M)
    w.vector(np.asarray(aq.nbits, dtype=np.uint64), np.uint64)
    w.bool(aq.is_trained)
    w.vector(aq.codebooks.reshape(-1), np.float32)
    w.i32(aq.search_type)
    w.f32(float(aq.norm_min))
    w.f32(float(aq.norm_max))
    if aq.search_type in _QNORM_TYPES:
        w.vector(np.asarray(aq.qnorm, dtype=np.float32), np.float32)
    if aq.search_type in (ST_norm_lsq2x4, ST_norm_rq2x4):
        w.vector(np.asarray(aq.norm_tabs, dtype=np.float32), np.float32)


def write_rq(w, rq: ResidualQuantizer) -> None:
    write_aq(w, rq)
    w.i32(rq.train_type)
    w.i32(rq.max_beam_size)


def read_aq_fields(r, what: str, d: int | None = None, product: bool = False) -> dict:
    """The AdditiveQuantizer part, checked, as a dict of constructor inputs
    (``product``: codewords are sub-vectors, their size is checked by the caller)."""
    at = r.pos
    qd = r.int_in("u64", 1, 1 << 24, f"{what} d")
    if d is not None and qd != d:
        raise r.fail(f"{what}: d={qd} differs from the index dimension {d}", at)
    M = r.int_in("u64", 1, 1 << 16, f"{what} M")
    nb_at = r.pos
    nbits = r.vector(np.uint64, f"{what} nbits", expect=M)
    if nbits.size and (nbits.min() < 1 or nbits.max() > 20):
        raise r.fail(f"{what}: bits per codebook must lie in [1, 20], got {nbits.tolist()}", nb_at)
    bits = [int(b) for b in nbits]
    is_trained = r.bool(f"{what} is_trained")
    total = sum(1 << b for b in bits)
    cb_at = r.pos
    cb = r.vector(np.float32, f"{what} codebooks")
    if not product and cb.size not in (0, total * qd):
        raise r.fail(f"{what}: {cb.size} codebook values, expected {total} x {qd}", cb_at)
    st_at = r.pos
    st = r.i32(f"{what} search_type")
    try:
        st = check_search_type(st)
    except (ValueError, NotImplementedError) as exc:
        raise r.fail(f"{what}: {exc}", st_at) from None
    norm_min = r.f32(f"{what} norm_min")
    norm_max = r.f32(f"{what} norm_max")
    qnorm = np.zeros(0, dtype=np.float32)
    tabs = np.zeros(0, dtype=np.float32)
    if st in _QNORM_TYPES:
        q_at = r.pos
        qnorm = r.vector(np.float32, f"{what} norm levels")
        if qnorm.size not in (0, _QNORM_LEVELS[st]):
            raise r.fail(f"{what}: {qnorm.size} norm levels, expected {_QNORM_LEVELS[st]}", q_at)
    if st in (ST_norm_lsq2x4, ST_norm_rq2x4):
        tabs = r.vector(np.float32, f"{what} norm codebooks")
    return dict(d=qd, bits=bits, is_trained=is_trained, codebooks=cb, search_type=st,
                norm_min=norm_min, norm_max=norm_max, qnorm=qnorm, norm_tabs=tabs)


def install_aq(aq: AdditiveQuantizer, f: dict) -> AdditiveQuantizer:
    cb = f["codebooks"]
    if cb.size:
        if not np.isfinite(cb).all():
            raise ValueError("codebooks: contains NaN or inf")
        # kept as read (a view of a memory-mapped file stays one): training
        # replaces the array, nothing writes into it
        aq.codebooks = cb.reshape(aq.total_codebook_size, aq.codebook_dim)
        aq._codebooks_changed()
        aq.compute_codebook_tables()
    aq.is_trained = bool(f["is_trained"])
    aq.norm_min, aq.norm_max = np.float32(f["norm_min"]), np.float32(f["norm_max"])
    aq.qnorm = np.ascontiguousarray(f["qnorm"], dtype=np.float32)
    aq.norm_tabs = np.ascontiguousarray(f["norm_tabs"], dtype=np.float32)
    return aq


def read_rq(r, what: str = "ResidualQuantizer", d: int | None = None) -> ResidualQuantizer:
    f = read_aq_fields(r, what, d)
    rq = ResidualQuantizer(f["d"], f["bits"], f["search_type"])
    install_aq(rq, f)
    rq.train_type = r.i32(f"{what} train_type")
    rq.max_beam_size = r.int_in("i32", 1, 1 << 20, f"{what} max_beam_size")
    return rq


def read_code_vector(r, n: int, code_size: int, what: str) -> np.ndarray:
    return r.vector(np.uint8, what, expect=n * code_size).reshape(n, code_size)


# --------------------------------------------------------------------------
# product residual quantizers: IxPR, IwPR
# --------------------------------------------------------------------------

def write_paq(w, paq: ProductAdditiveQuantizer) -> None:
    write_aq(w, paq)
    w.u64(paq.nsplits)
    for q in paq.quantizers:
        (write_lsq if isinstance(q, LocalSearchQuantizer) else write_rq)(w, q)


def read_paq(r, cls: type, what: str, d: int | None = None) -> ProductAdditiveQuantizer:
    """A ProductResidualQuantizer or ProductLocalSearchQuantizer (``cls``)."""
    at = r.pos
    f = read_aq_fields(r, what, d, product=True)
    nsplits = r.int_in("u64", 1, f["d"], f"{what} nsplits")
    if f["d"] % nsplits or len(f["bits"]) % nsplits:
        raise r.fail(f"{what}: d={f['d']} and M={len(f['bits'])} must be multiples of "
                     f"nsplits={nsplits}", at)
    read_sub = read_lsq if cls is ProductLocalSearchQuantizer else read_rq
    subs = [read_sub(r, f"{what} sub-quantizer {s}", f["d"] // nsplits) for s in range(nsplits)]
    msub = len(f["bits"]) // nsplits
    if any(q.nbits != f["bits"][s * msub:(s + 1) * msub] for s, q in enumerate(subs)):
        raise r.fail(f"{what}: the sub-quantizers' bits differ from the quantizer's", at)
    if len(set(f["bits"])) != 1:
        raise r.fail(f"{what}: voisin reads product quantizers with one bit count only", at)
    paq = cls(f["d"], nsplits, msub, f["bits"][0], f["search_type"])
    if f["codebooks"].size not in (0, paq.total_codebook_size * paq.codebook_dim):
        raise r.fail(f"{what}: {f['codebooks'].size} codebook values, expected "
                     f"{paq.total_codebook_size} x {paq.codebook_dim}", at)
    # the sub-quantizers as written (their settings and norm ranges); their
    # codebooks are the product quantizer's
    paq.quantizers = subs
    install_aq(paq, f)
    return paq


def read_prq(r, what: str = "ProductResidualQuantizer", d: int | None = None
             ) -> ProductResidualQuantizer:
    return read_paq(r, ProductResidualQuantizer, what, d)


write_prq = write_paq


# --------------------------------------------------------------------------
# ResidualCoarseQuantizer: ImRQ
# --------------------------------------------------------------------------

@register_writer(ResidualCoarseQuantizer)
def write_rcq(w, index: ResidualCoarseQuantizer) -> None:
    w.tag(b"ImRQ")
    write_header(w, index)
    write_rq(w, index.rq)
    w.f32(index.beam_factor)


@register_reader(b"ImRQ")
def read_rcq(r, ctx, tag: bytes) -> ResidualCoarseQuantizer:
    h = read_header(r, "ResidualCoarseQuantizer")
    at = r.pos
    rq = read_rq(r, "ResidualCoarseQuantizer quantizer", h.d)
    if sum(rq.nbits) > 63 or (h.is_trained and h.ntotal != 1 << sum(rq.nbits)):
        raise r.fail(f"ResidualCoarseQuantizer: ntotal={h.ntotal} is not 2**{sum(rq.nbits)}", at)
    bf_at = r.pos
    beam_factor = r.f32("ResidualCoarseQuantizer beam_factor")
    index = ResidualCoarseQuantizer(h.d, rq.nbits, h.metric_type)
    index.install_rq(rq, h.is_trained)
    try:
        index.set_beam_factor(beam_factor)
    except ValueError as exc:
        raise r.fail(f"ResidualCoarseQuantizer: {exc}", bf_at) from None
    return index


# --------------------------------------------------------------------------
# local search quantizers: IxLS, IwLS
# --------------------------------------------------------------------------

def write_lsq(w, lsq: LocalSearchQuantizer) -> None:
    write_aq(w, lsq)
    for v in (lsq.K, lsq.train_iters, lsq.encode_ils_iters, lsq.train_ils_iters, lsq.icm_iters):
        w.u64(v)
    w.f32(lsq.p)
    w.f32(lsq.lambd)
    w.u64(lsq.chunk_size)
    w.i32(lsq.random_seed)
    w.u64(lsq.nperts)
    w.bool(lsq.update_codebooks_with_double)


def read_lsq(r, what: str = "LocalSearchQuantizer", d: int | None = None) -> LocalSearchQuantizer:
    at = r.pos
    f = read_aq_fields(r, what, d)
    if len(set(f["bits"])) != 1:
        raise r.fail(f"{what}: every codebook must have the same size", at)
    lsq = LocalSearchQuantizer(f["d"], len(f["bits"]), f["bits"][0], f["search_type"])
    install_aq(lsq, f)
    k_at = r.pos
    if r.u64(f"{what} K") != lsq.K:
        raise r.fail(f"{what}: K differs from 2**nbits = {lsq.K}", k_at)
    lsq.train_iters = r.int_in("u64", 0, 1 << 30, f"{what} train_iters")
    lsq.encode_ils_iters = r.int_in("u64", 0, 1 << 30, f"{what} encode_ils_iters")
    lsq.train_ils_iters = r.int_in("u64", 0, 1 << 30, f"{what} train_ils_iters")
    lsq.icm_iters = r.int_in("u64", 0, 1 << 30, f"{what} icm_iters")
    lsq.p = r.f32(f"{what} p")
    lsq.lambd = r.f32(f"{what} lambd")
    lsq.chunk_size = r.int_in("u64", 1, 1 << 40, f"{what} chunk_size")
    lsq.random_seed = r.i32(f"{what} random_seed")
    lsq.nperts = r.int_in("u64", 0, 1 << 20, f"{what} nperts")
    lsq.update_codebooks_with_double = r.bool(f"{what} update_codebooks_with_double")
    return lsq


# --------------------------------------------------------------------------
# the indexes: one layout per kind (flat, IVF), one codec per family
# --------------------------------------------------------------------------

class _Family(NamedTuple):
    flat_tag: bytes
    ivf_tag: bytes
    write: Callable
    read: Callable
    #: the flat index for a header and a codec read from the file
    flat: Callable
    #: the IVF index for the IVF common part and a codec
    ivf: Callable


def _product(flat_cls: type, ivf_cls: type, codec_cls: type) -> tuple:
    read = lambda r, what, d: read_paq(r, codec_cls, what, d)  # noqa: E731
    return (write_paq, read,
            lambda h, q: flat_cls(h.d, q.nsplits, q.quantizers[0].M, q.nbits[0], h.metric_type,
                                  q.search_type),
            lambda c, q: ivf_cls(c.quantizer, c.h.d, c.nlist, q.nsplits, q.quantizers[0].M,
                                 q.nbits[0], c.h.metric_type, q.search_type))


_FAMILIES = {
    (IndexResidualQuantizer, IndexIVFResidualQuantizer): _Family(
        b"IxRq", b"IwRQ", write_rq, read_rq,
        lambda h, q: IndexResidualQuantizer(h.d, q.nbits, h.metric_type, q.search_type),
        lambda c, q: IndexIVFResidualQuantizer(c.quantizer, c.h.d, c.nlist, q.nbits,
                                               c.h.metric_type, q.search_type)),
    (IndexLocalSearchQuantizer, IndexIVFLocalSearchQuantizer): _Family(
        b"IxLS", b"IwLS", write_lsq, read_lsq,
        lambda h, q: IndexLocalSearchQuantizer(h.d, q.M, q.nbits[0], h.metric_type, q.search_type),
        lambda c, q: IndexIVFLocalSearchQuantizer(c.quantizer, c.h.d, c.nlist, q.M, q.nbits[0],
                                                  c.h.metric_type, q.search_type)),
    (IndexProductResidualQuantizer, IndexIVFProductResidualQuantizer): _Family(
        b"IxPR", b"IwPR", *_product(IndexProductResidualQuantizer, IndexIVFProductResidualQuantizer,
                                    ProductResidualQuantizer)),
    (IndexProductLocalSearchQuantizer, IndexIVFProductLocalSearchQuantizer): _Family(
        b"IxPL", b"IwPL", *_product(IndexProductLocalSearchQuantizer,
                                    IndexIVFProductLocalSearchQuantizer, ProductLocalSearchQuantizer)),
}
_BY_CLASS = {cls: fam for classes, fam in _FAMILIES.items() for cls in classes}
_BY_TAG = {tag: (classes[i], fam) for classes, fam in _FAMILIES.items()
           for i, tag in enumerate((fam.flat_tag, fam.ivf_tag))}


def _family_of(index) -> _Family:
    return next(_BY_CLASS[c] for c in type(index).__mro__ if c in _BY_CLASS)


def _check_code_size(r, what: str, code_size: int, aq: AdditiveQuantizer, at: int) -> None:
    if code_size != aq.code_size:
        raise r.fail(f"{what}: code_size {code_size} does not match the quantizer's "
                     f"{aq.code_size}", at)


@register_writer(*(classes[0] for classes in _FAMILIES))
def write_index_aq(w, index) -> None:
    fam = _family_of(index)
    w.tag(fam.flat_tag)
    write_header(w, index)
    fam.write(w, index.aq)
    w.u64(index.code_size)
    w.vector(np.ascontiguousarray(index.codes), np.uint8)


@register_reader(*(fam.flat_tag for fam in _FAMILIES.values()))
def read_index_aq(r, ctx, tag: bytes):
    cls, fam = _BY_TAG[tag]
    what = cls.__name__
    h = read_header(r, what)
    aq = fam.read(r, f"{what} quantizer", h.d)
    cs_at = r.pos
    code_size = r.u64(f"{what} code_size")
    _check_code_size(r, what, code_size, aq, cs_at)
    codes = read_code_vector(r, h.ntotal, code_size, f"{what} codes")
    index = fam.flat(h, aq)
    index._set_aq(aq)
    index.is_trained = h.is_trained
    if h.ntotal:
        if not aq.is_trained:
            raise r.fail(f"{what}: holds codes but its quantizer is not trained", cs_at)
        index.set_codes(codes)
    return index


class _FaissLists:
    """What write_invlists reads of an index: its lists, with FAISS-sized codes."""

    def __init__(self, index) -> None:
        self.invlists = index.faiss_lists()


@register_writer(*(classes[1] for classes in _FAMILIES))
def write_ivf_aq(w, index) -> None:
    fam = _family_of(index)
    w.tag(fam.ivf_tag)
    write_ivf_header(w, index)
    w.u64(index.code_size)
    fam.write(w, index.aq)
    w.bool(index.by_residual)
    w.i32(index.use_precomputed_table)
    write_invlists(w, _FaissLists(index))


@register_reader(*(fam.ivf_tag for fam in _FAMILIES.values()))
def read_ivf_aq(r, ctx, tag: bytes):
    cls, fam = _BY_TAG[tag]
    what = cls.__name__
    c = IVFCommon(r, ctx, what)
    cs_at = r.pos
    code_size = r.u64(f"{what} code_size")
    aq = fam.read(r, f"{what} quantizer", c.h.d)
    _check_code_size(r, what, code_size, aq, cs_at)
    by_residual = r.bool(f"{what} by_residual")
    use_precomputed = r.i32(f"{what} use_precomputed_table")
    il = read_invlists(r, c.nlist, code_size, c.h.ntotal, what)
    index = fam.ivf(c, aq)
    index.aq = aq
    index.by_residual = by_residual
    index.use_precomputed_table = use_precomputed
    install_ivf(index, c, il)
    if c.h.ntotal and not aq.is_trained:
        raise r.fail(f"{what}: holds codes but its quantizer is not trained", cs_at)
    index.install_lists(il)
    return index
