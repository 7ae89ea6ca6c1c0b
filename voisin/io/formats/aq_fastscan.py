"""Additive-quantizer fast-scan: IndexResidualQuantizerFastScan ``IRfs``,
IndexLocalSearchQuantizerFastScan ``ILfs``.

Layout (FAISS's write_index): header, the ResidualQuantizer or
LocalSearchQuantizer, ``int32 implem | int32 bbs | int32 qbs | uint64 M |
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
from .rq import read_lsq, read_rq, write_lsq, write_rq

_FLAT = {IndexResidualQuantizerFastScan: (b"IRfs", write_rq, read_rq),
         IndexLocalSearchQuantizerFastScan: (b"ILfs", write_lsq, read_lsq)}
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
        index = cls(h.d, aq.M, 4, h.metric_type, aq.search_type)
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
