"""Additive-quantizer fast-scan: IndexResidualQuantizerFastScan ``IRfs``,
IndexLocalSearchQuantizerFastScan ``ILfs``, the product forms ``IPRf`` /
``IPLf`` and the IVF forms ``IVRf`` / ``IVLf`` / ``NPRf`` / ``NPLf``.

Layout (FAISS's write_index): header, the quantizer (as in the
non-fast-scan files), ``int32 implem | int32 bbs | int32 qbs | uint64 M |
uint64 nbits | uint64 ksub | uint64 code_size | uint64 ntotal2 | uint64 M2 |
uint8 rescale_norm | int32 norm_scale | uint64 max_train_points``, then a
vector<uint8> of codes packed in blocks of bbs vectors (FAISS's
pq4_pack_codes). voisin stores plain codes and reads / writes the blocks with
the PQ fast-scan packer (``io/formats/fastscan.py``).
"""

from __future__ import annotations

import numpy as np

from ...indexes.aq_fastscan import (IndexLocalSearchQuantizerFastScan,
                                    IndexResidualQuantizerFastScan)
from ...indexes.fastscan import pack_codes
from ..faiss_format import read_header, register_reader, register_writer, write_header
from .fastscan import BBS, unpack_blocks
from ...codecs.prq import ProductLocalSearchQuantizer, ProductResidualQuantizer
from ...indexes.aq_fastscan import (IndexProductLocalSearchQuantizerFastScan,
                                    IndexProductResidualQuantizerFastScan)
from .rq import read_lsq, read_paq, read_rq, write_lsq, write_paq, write_rq


def _read_prq(r, what, d):
    return read_paq(r, ProductResidualQuantizer, what, d)


def _read_plsq(r, what, d):
    return read_paq(r, ProductLocalSearchQuantizer, what, d)


def _codec_args(aq) -> tuple:
    """The (M,) or (nsplits, Msub) constructor arguments of a codec read from a file."""
    if hasattr(aq, "nsplits"):
        return (aq.nsplits, aq.M // aq.nsplits)
    return (aq.M,)


_FLAT = {IndexResidualQuantizerFastScan: (b"IRfs", write_rq, read_rq),
         IndexLocalSearchQuantizerFastScan: (b"ILfs", write_lsq, read_lsq),
         IndexProductResidualQuantizerFastScan: (b"IPRf", write_paq, _read_prq),
         IndexProductLocalSearchQuantizerFastScan: (b"IPLf", write_paq, _read_plsq)}
_BY_TAG = {tag: (cls, rd) for cls, (tag, _, rd) in _FLAT.items()}


def write_fastscan_fields(w, index) -> None:
    """implem .. max_train_points (``ntotal2`` None: the IVF form, which writes qbs2)."""
    w.i32(index.implem)
    w.i32(index.bbs)
    w.i32(index.qbs)
    w.u64(index.M)
    w.u64(index.nbits)
    w.u64(index.ksub)
    w.u64(index.code_size)


def _check_bbs(index) -> None:
    if index.bbs != BBS:
        raise ValueError(f"write_index: fast-scan indexes with bbs={index.bbs} have no file "
                         f"format in voisin (bbs={BBS} only)")


@register_writer(*_FLAT)
def write_aq_fastscan(w, index) -> None:
    _check_bbs(index)
    tag, write_codec, _ = next(v for c, v in _FLAT.items() if isinstance(index, c))
    w.tag(tag)
    write_header(w, index)
    write_codec(w, index.aq)
    write_fastscan_fields(w, index)
    w.u64(index.ntotal2)
    w.u64(index.M2)
    w.bool(index.rescale_norm)
    w.i32(index.norm_scale)
    w.u64(index.max_train_points)
    w.vector(pack_codes(index._codes[:index.ntotal], index.M), np.uint8)


def read_fastscan_fields(r, what: str, index) -> None:
    """Check implem .. code_size against the index built from the codec."""
    r.i32(f"{what} implem")
    at = r.pos
    bbs = r.i32(f"{what} bbs")
    if bbs != BBS:
        raise r.fail(f"{what}: block size bbs={bbs}, voisin reads bbs={BBS} only", at)
    r.i32(f"{what} qbs")
    r.int_in("u64", index.M, index.M, f"{what} M")
    r.int_in("u64", 4, 4, f"{what} nbits")
    r.int_in("u64", 16, 16, f"{what} ksub")
    r.int_in("u64", index.code_size, index.code_size, f"{what} code_size")


def read_norm_fields(r, what: str, index) -> None:
    index.rescale_norm = r.bool(f"{what} rescale_norm")
    index.norm_scale = r.int_in("i32", 1, 1 << 14, f"{what} norm_scale")
    index.max_train_points = r.int_in("u64", 0, 1 << 62, f"{what} max_train_points")


@register_reader(*_BY_TAG)
def read_aq_fastscan(r, ctx, tag: bytes):
    cls, read_codec = _BY_TAG[tag]
    what = cls.__name__
    h = read_header(r, what)
    at = r.pos
    aq = read_codec(r, f"{what} quantizer", h.d)
    if any(b != 4 for b in aq.nbits):
        raise r.fail(f"{what}: fast-scan needs 4-bit codebooks, got {aq.nbits}", at)
    try:
        index = cls(h.d, *_codec_args(aq), 4, h.metric_type, aq.search_type)
    except ValueError as exc:
        raise r.fail(f"{what}: {exc}", at) from None
    index.aq = aq
    read_fastscan_fields(r, what, index)
    r.int_in("u64", h.ntotal, h.ntotal + BBS, f"{what} ntotal2")
    r.int_in("u64", index.M2, index.M2, f"{what} M2")
    read_norm_fields(r, what, index)
    nblk = (h.ntotal + BBS - 1) // BBS
    blocks = r.vector(np.uint8, f"{what} codes", expect=nblk * BBS * index.M2 // 2)
    blocks = blocks.reshape(nblk, BBS * index.M2 // 2)
    index.is_trained = h.is_trained
    if h.ntotal:
        if not aq.is_trained:
            raise r.fail(f"{what}: holds codes but its quantizer is not trained", at)
        sub = unpack_blocks(blocks, h.ntotal, index.M).astype(np.uint8)
        codes = np.zeros((h.ntotal, index.code_size), dtype=np.uint8)
        codes |= _nibbles_to_bytes(sub, index.code_size)
        index._snap = (codes, h.ntotal)
    return index


def _nibbles_to_bytes(sub: np.ndarray, code_size: int) -> np.ndarray:
    """Plain 4-bit codes (n, code_size) from sub-quantizer indices (n, M): field m
    in byte m // 2, low nibble first (FAISS's bit stream)."""
    n, M = sub.shape
    out = np.zeros((n, code_size), dtype=np.uint8)
    out[:, :(M + 1) // 2] |= sub[:, 0::2]
    out[:, :M // 2] |= (sub[:, 1::2] << 4).astype(np.uint8)
    return out


# --------------------------------------------------------------------------
# IVF: IVRf (residual), IVLf (local search)
# IVF common part, the quantizer, ``uint8 by_residual | int32 implem | int32
# bbs | int32 qbs | uint64 M | uint64 nbits | uint64 ksub | uint64 code_size |
# uint64 qbs2 | uint64 M2 | uint8 rescale_norm | int32 norm_scale | uint64
# max_train_points``, then block inverted lists ``ilbl`` (as IwPf).
# --------------------------------------------------------------------------

from ...indexes.aq_fastscan import (IndexIVFLocalSearchQuantizerFastScan,  # noqa: E402
                                    IndexIVFProductLocalSearchQuantizerFastScan,
                                    IndexIVFProductResidualQuantizerFastScan,
                                    IndexIVFResidualQuantizerFastScan)
from ...indexes.invlists import InvertedLists  # noqa: E402
from .ivf import IVFCommon, install_ivf, write_ivf_header  # noqa: E402

_IVF = {IndexIVFResidualQuantizerFastScan: (b"IVRf", write_rq, read_rq),
        IndexIVFLocalSearchQuantizerFastScan: (b"IVLf", write_lsq, read_lsq),
        IndexIVFProductResidualQuantizerFastScan: (b"NPRf", write_paq, _read_prq),
        IndexIVFProductLocalSearchQuantizerFastScan: (b"NPLf", write_paq, _read_plsq)}
_IVF_BY_TAG = {tag: (cls, rd) for cls, (tag, _, rd) in _IVF.items()}
_INVALID_CODE_SIZE = (1 << 64) - 1


@register_writer(*_IVF)
def write_ivf_aq_fastscan(w, index) -> None:
    _check_bbs(index)
    tag, write_codec, _ = next(v for c, v in _IVF.items() if isinstance(index, c))
    w.tag(tag)
    write_ivf_header(w, index)
    write_codec(w, index.aq)
    w.bool(index.by_residual)
    write_fastscan_fields(w, index)
    w.u64(index.qbs2)
    w.u64(index.M2)
    w.bool(index.rescale_norm)
    w.i32(index.norm_scale)
    w.u64(index.max_train_points)
    il = index.invlists
    w.tag(b"ilbl")
    w.u64(il.nlist)
    w.u64(_INVALID_CODE_SIZE)
    w.u64(BBS)
    w.u64(BBS * index.M2 // 2)
    for l in range(il.nlist):
        w.vector(il.get_ids(l), np.int64)
        w.vector(pack_codes(np.ascontiguousarray(il.get_codes(l)[:, :index.code_size]), index.M),
                 np.uint8)


@register_reader(*_IVF_BY_TAG)
def read_ivf_aq_fastscan(r, ctx, tag: bytes):
    cls, read_codec = _IVF_BY_TAG[tag]
    what = cls.__name__
    c = IVFCommon(r, ctx, what)
    at = r.pos
    aq = read_codec(r, f"{what} quantizer", c.h.d)
    if any(b != 4 for b in aq.nbits):
        raise r.fail(f"{what}: fast-scan needs 4-bit codebooks, got {aq.nbits}", at)
    try:
        index = cls(c.quantizer, c.h.d, c.nlist, *_codec_args(aq), 4, c.h.metric_type,
                    aq.search_type)
    except ValueError as exc:
        raise r.fail(f"{what}: {exc}", at) from None
    index.aq = aq
    index.by_residual = r.bool(f"{what} by_residual")
    read_fastscan_fields(r, what, index)
    r.u64(f"{what} qbs2")
    r.int_in("u64", index.M2, index.M2, f"{what} M2")
    read_norm_fields(r, what, index)
    r.expect_tag(b"ilbl", f"{what} inverted lists")
    r.int_in("u64", c.nlist, c.nlist, f"{what} inverted lists nlist")
    r.u64(f"{what} inverted lists code_size")
    r.int_in("u64", BBS, BBS, f"{what} n_per_block")
    r.int_in("u64", BBS * index.M2 // 2, BBS * index.M2 // 2, f"{what} block_size")
    ids_per_list, codes_per_list = [], []
    for l in range(c.nlist):
        ids = r.vector(np.int64, f"{what} ids of list {l}")
        nblk = (ids.size + BBS - 1) // BBS
        blocks = r.vector(np.uint8, f"{what} codes of list {l}",
                          expect=nblk * BBS * index.M2 // 2).reshape(nblk, BBS * index.M2 // 2)
        ids_per_list.append(ids)
        sub = unpack_blocks(blocks, ids.size, index.M).astype(np.uint8)
        codes_per_list.append(_nibbles_to_bytes(sub, index.code_size))
    sizes = np.array([a.size for a in ids_per_list], dtype=np.int64)
    if int(sizes.sum()) != c.h.ntotal:
        raise r.fail(f"{what}: the lists hold {int(sizes.sum())} entries for ntotal={c.h.ntotal}")
    if c.h.ntotal and not aq.is_trained:
        raise r.fail(f"{what}: holds codes but its quantizer is not trained", at)
    il = InvertedLists(c.nlist, index.code_size)
    il.codes = np.concatenate(codes_per_list) if codes_per_list else \
        np.empty((0, index.code_size), np.uint8)
    il.sizes, il.offsets, il.capacity = sizes, np.cumsum(sizes) - sizes, sizes.copy()
    il.ids = np.concatenate(ids_per_list) if ids_per_list else np.empty(0, np.int64)
    install_ivf(index, c, il)
    index.install_lists(il)
    index._codec_trained = aq.is_trained
    index._packed = None
    return index
