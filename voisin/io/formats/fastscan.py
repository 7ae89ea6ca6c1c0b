"""4-bit PQ fast-scan: IndexPQFastScan ``IPfs`` and IndexIVFPQFastScan ``IwPf``.

FAISS stores fast-scan codes in its packed blocks of ``bbs`` = 32 vectors;
voisin keeps plain PQ codes as storage and derives the blocks. Writing packs
with voisin's packer (FAISS's layout, checked byte for byte by the tests);
reading unpacks with the inverse nibble permutation, which is derived from
that same packer (so the two can never disagree).

``IPfs``: header, ProductQuantizer, ``int32 implem | int32 bbs | int32 qbs |
uint64 ntotal2 | uint64 M2 | vector<uint8> packed codes``.

``IwPf``: IVF common part, ``uint8 by_residual | uint64 code_size | int32 bbs |
uint64 M2 | int32 implem | uint64 qbs2``, ProductQuantizer, then block
inverted lists ``ilbl``: ``uint64 nlist | uint64 code_size (-1) | uint64
n_per_block | uint64 block_size``, then list by list a vector<int64> of ids
and a vector<uint8> of packed codes.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ...indexes.fastscan import IndexIVFPQFastScan, IndexPQFastScan, pack_codes
from ...indexes.invlists import InvertedLists
from ..faiss_format import read_header, register_reader, register_writer, write_header
from .ivf import IVFCommon, install_ivf, read_slab, write_ivf_header, write_slab
from .pq import read_pq, write_pq

BBS = 32
_INVALID_CODE_SIZE = (1 << 64) - 1


@lru_cache(maxsize=None)
def _nibble_sources(M: int) -> np.ndarray:
    """For each nibble of a packed block, the (row * M + sub-quantizer) it holds, -1 = padding.

    Packs three probe blocks whose 4-bit codes spell out (position + 1) in base
    16, then reads the digits back from the packed nibbles.
    """
    from ...codecs.pq import ProductQuantizer
    pq = ProductQuantizer(2 * M, M, 4)
    pos = np.arange(BBS * M, dtype=np.int64).reshape(BBS, M) + 1
    found = None
    for digit in range(3):
        probe = ((pos >> (4 * digit)) & 15).astype(np.int32)
        packed = pack_codes(pq.pack(probe), M)[0]
        nib = np.empty(packed.size * 2, dtype=np.int64)
        nib[0::2], nib[1::2] = packed & 15, packed >> 4
        found = nib << (4 * digit) if found is None else found | (nib << (4 * digit))
    return found - 1


def unpack_blocks(blocks: np.ndarray, n: int, M: int) -> np.ndarray:
    """Sub-quantizer indices (n, M) of the first ``n`` vectors in packed blocks."""
    src = _nibble_sources(M)
    nblk = blocks.shape[0]
    nib = np.empty((nblk, blocks.shape[1] * 2), dtype=np.int32)
    nib[:, 0::2], nib[:, 1::2] = blocks & 15, blocks >> 4
    out = np.zeros((nblk, BBS * M), dtype=np.int32)
    used = src >= 0
    out[:, src[used]] = nib[:, used]
    return out.reshape(nblk * BBS, M)[:n]


def _check_bbs(r, bbs: int, at: int, what: str) -> None:
    if bbs != BBS:
        raise r.fail(f"{what}: block size bbs={bbs}, voisin reads bbs={BBS} only", at)


def _read_blocks(r, n: int, M: int, M2: int, what: str) -> np.ndarray:
    nblk = (n + BBS - 1) // BBS
    blocks = r.vector(np.uint8, what, expect=nblk * BBS * M2 // 2)
    return blocks.reshape(nblk, BBS * M2 // 2)


@register_writer(IndexPQFastScan)
def write_pq_fastscan(w, index: IndexPQFastScan) -> None:
    if index.bbs != BBS:
        raise ValueError(f"write_index: fast-scan indexes with bbs={index.bbs} have no file "
                         f"format in voisin (bbs={BBS} only)")
    w.tag(b"IPfs")
    write_header(w, index)
    write_pq(w, index.pq)
    w.i32(0)  # implem
    w.i32(index.bbs)
    w.i32(0)  # qbs
    w.u64(index.ntotal2)
    w.u64(index.M2)
    w.vector(pack_codes(index._codes[:index.ntotal], index.pq.M), np.uint8)


@register_reader(b"IPfs")
def read_pq_fastscan(r, ctx, tag: bytes) -> IndexPQFastScan:
    h = read_header(r, "IndexPQFastScan")
    pq = read_pq(r, h.d, "IndexPQFastScan quantizer")
    if pq.nbits != 4:
        raise r.fail(f"IndexPQFastScan: nbits={pq.nbits}, fast-scan needs 4")
    r.i32("IndexPQFastScan implem")
    at = r.pos
    _check_bbs(r, r.i32("IndexPQFastScan bbs"), at, "IndexPQFastScan")
    r.i32("IndexPQFastScan qbs")
    r.int_in("u64", h.ntotal, h.ntotal + BBS, "IndexPQFastScan ntotal2")
    r.int_in("u64", pq.M + (pq.M & 1), pq.M + (pq.M & 1), "IndexPQFastScan M2")
    blocks = _read_blocks(r, h.ntotal, pq.M, pq.M + (pq.M & 1), "IndexPQFastScan codes")
    index = IndexPQFastScan(h.d, pq.M, 4, h.metric_type)
    pq.is_trained = h.is_trained
    index.pq = pq
    index.is_trained = h.is_trained
    index._codes = pq.pack(unpack_blocks(blocks, h.ntotal, pq.M))
    index.ntotal = h.ntotal
    return index


@register_writer(IndexIVFPQFastScan)
def write_ivfpq_fastscan(w, index: IndexIVFPQFastScan) -> None:
    if index.bbs != BBS:
        raise ValueError(f"write_index: fast-scan indexes with bbs={index.bbs} have no file "
                         f"format in voisin (bbs={BBS} only)")
    w.tag(b"IwPf")
    write_ivf_header(w, index)
    w.bool(index.by_residual)
    w.u64(index.code_size)
    w.i32(index.bbs)
    w.u64(index.M2)
    w.i32(0)  # implem
    w.u64(0)  # qbs2
    write_pq(w, index.pq)
    if w.layout == "voisin":
        write_slab(w, index)  # voisin keeps plain codes: its slab maps as is
        return
    il = index.invlists
    w.tag(b"ilbl")
    w.u64(il.nlist)
    w.u64(_INVALID_CODE_SIZE)
    w.u64(BBS)
    w.u64(BBS * index.M2 // 2)
    for l in range(il.nlist):
        w.vector(il.get_ids(l), np.int64)
        w.vector(pack_codes(il.get_codes(l), index.pq.M), np.uint8)


@register_reader(b"IwPf")
def read_ivfpq_fastscan(r, ctx, tag: bytes) -> IndexIVFPQFastScan:
    what = "IndexIVFPQFastScan"
    c = IVFCommon(r, ctx, what)
    by_residual = r.bool(f"{what} by_residual")
    code_size = r.u64(f"{what} code_size")
    at = r.pos
    _check_bbs(r, r.i32(f"{what} bbs"), at, what)
    M2 = r.u64(f"{what} M2")
    r.i32(f"{what} implem")
    r.u64(f"{what} qbs2")
    pq = read_pq(r, c.h.d, f"{what} quantizer")
    if pq.nbits != 4 or code_size != pq.code_size or M2 != pq.M + (pq.M & 1):
        raise r.fail(f"{what}: code_size/M2 ({code_size}/{M2}) do not match a 4-bit PQ with "
                     f"M={pq.M}", at)
    if r.buf[r.pos:r.pos + 4] == b"VSlb":
        r.pos += 4
        il = read_slab(r, c.nlist, pq.code_size, c.h.ntotal, what)
        return _install_fastscan(c, pq, by_residual, il)
    r.expect_tag(b"ilbl", f"{what} inverted lists")
    r.int_in("u64", c.nlist, c.nlist, f"{what} inverted lists nlist")
    r.u64(f"{what} inverted lists code_size")
    r.int_in("u64", BBS, BBS, f"{what} n_per_block")
    r.int_in("u64", BBS * M2 // 2, BBS * M2 // 2, f"{what} block_size")
    ids_per_list, codes_per_list = [], []
    for l in range(c.nlist):
        ids = r.vector(np.int64, f"{what} ids of list {l}")
        blocks = _read_blocks(r, ids.size, pq.M, M2, f"{what} codes of list {l}")
        ids_per_list.append(ids)
        codes_per_list.append(pq.pack(unpack_blocks(blocks, ids.size, pq.M)))
    sizes = np.array([a.size for a in ids_per_list], dtype=np.int64)
    if int(sizes.sum()) != c.h.ntotal:
        raise r.fail(f"{what}: the lists hold {int(sizes.sum())} entries for ntotal={c.h.ntotal}")
    codes = np.concatenate(codes_per_list) if codes_per_list else \
        np.empty((0, pq.code_size), np.uint8)
    offsets = np.cumsum(sizes) - sizes
    il = InvertedLists(c.nlist, pq.code_size)
    il.codes, il.sizes, il.offsets, il.capacity = codes, sizes, offsets, sizes.copy()
    il.ids = np.concatenate(ids_per_list) if ids_per_list else np.empty(0, np.int64)
    return _install_fastscan(c, pq, by_residual, il)


def _install_fastscan(c: IVFCommon, pq, by_residual: bool, il: InvertedLists) -> IndexIVFPQFastScan:
    index = IndexIVFPQFastScan(c.quantizer, c.h.d, c.nlist, pq.M, 4, c.h.metric_type,
                               by_residual=by_residual)
    pq.is_trained = c.h.is_trained
    index.pq = pq
    index._codec_trained = c.h.is_trained
    install_ivf(index, c, il)
    index._cent_cache = None
    index._packed = None
    index.precompute_table()
    return index
