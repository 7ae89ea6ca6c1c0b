"""Binary indexes (FAISS's ``IndexBinary`` family).

Every binary object starts, after its tag, with FAISS's binary header:
``int32 d | int32 code_size | int64 ntotal | uint8 is_trained | int32 metric_type``.

* ``IBxF`` IndexBinaryFlat: header, ``vector<uint8>`` codes (ntotal * code_size).
* ``IBwF`` IndexBinaryIVF: header, ``uint64 nlist | uint64 nprobe``, the quantizer
  (a binary index), the direct map and ``ilar`` inverted lists, as the float IVFs.
* ``IBHf`` IndexBinaryHNSW: header, the graph in FAISS's HNSW layout (as ``IHNf``),
  the storage (``IBxF``).
* ``IBHh`` IndexBinaryHash and ``IBHm`` IndexBinaryMultiHash: bucket tables as FAISS's
  bit strings (see the writers); MultiHash nests its storage (``IBxF``) and voisin
  rebuilds its tables from the codes on load (the stored tables are the same).
* ``IBFf`` IndexBinaryFromFloat: header, the wrapped float index.
* ``IBMp`` / ``IBM2`` IndexBinaryIDMap / IDMap2: header, the wrapped binary
  index, ``vector<int64>`` ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...index import Index
from ...indexes.binary import IndexBinary
from ...indexes.binary_from_float import IndexBinaryFromFloat
from ...indexes.binary_flat import IndexBinaryFlat
from ...indexes.binary_idmap import IndexBinaryIDMap, IndexBinaryIDMap2
from ...indexes.binary_hash import IndexBinaryHash, IndexBinaryMultiHash
from ...indexes.binary_hnsw import IndexBinaryHNSW
from ...indexes.binary_ivf import IndexBinaryIVF
from ..faiss_format import MAX_DIMENSION, register_reader, register_writer, write_object
from .hnsw import install_graph, read_graph, write_graph
from .ivf import read_direct_map, read_invlists, write_direct_map, write_invlists


@dataclass
class BinaryHeader:
    d: int
    code_size: int
    ntotal: int
    is_trained: bool
    metric_type: int


def write_binary_header(w, index: IndexBinary, ntotal: int | None = None) -> None:
    w.i32(index.d)
    w.i32(index.code_size)
    w.i64(index.ntotal if ntotal is None else ntotal)
    w.bool(index.is_trained)
    w.i32(index.metric_type)


def read_binary_header(r, what: str) -> BinaryHeader:
    at = r.pos
    d = r.int_in("i32", 8, MAX_DIMENSION, f"{what} dimension d")
    code_size = r.i32(f"{what} code_size")
    if d % 8 or code_size != d // 8:
        raise r.fail(f"{what}: d={d} bits and code_size={code_size} bytes do not match "
                     "(expected d a multiple of 8 and code_size = d / 8)", at)
    ntotal = r.int_in("i64", 0, 1 << 48, f"{what} ntotal")
    is_trained = r.bool(f"{what} is_trained")
    metric = r.i32(f"{what} metric_type")
    return BinaryHeader(d, code_size, ntotal, is_trained, metric)


def read_binary_nested(r, ctx, what: str) -> IndexBinary:
    at = r.pos
    sub = ctx.read_nested(r, what)
    if not isinstance(sub, IndexBinary):
        raise r.fail(f"{what}: expected a binary index, found {type(sub).__name__}", at)
    return sub


# --- IndexBinaryFlat ------------------------------------------------------------------------

@register_writer(IndexBinaryFlat)
def write_binary_flat(w, index: IndexBinaryFlat) -> None:
    codes = index.codes_snapshot()
    w.tag(b"IBxF")
    write_binary_header(w, index, codes.shape[0])
    w.vector(codes, np.uint8)


@register_reader(b"IBxF")
def read_binary_flat(r, ctx, tag: bytes) -> IndexBinaryFlat:
    h = read_binary_header(r, "IndexBinaryFlat")
    codes = r.vector(np.uint8, "IndexBinaryFlat codes", expect=h.ntotal * h.code_size)
    index = IndexBinaryFlat(h.d)
    index.set_codes(codes.reshape(h.ntotal, h.code_size))
    return index


# --- IndexBinaryIDMap / IndexBinaryIDMap2 ---------------------------------------------------

@register_writer(IndexBinaryIDMap, IndexBinaryIDMap2)
def write_binary_idmap(w, index: IndexBinaryIDMap) -> None:
    w.tag(b"IBM2" if isinstance(index, IndexBinaryIDMap2) else b"IBMp")
    write_binary_header(w, index)
    write_object(w, index.index)
    w.vector(index.id_map, np.int64)


@register_reader(b"IBMp", b"IBM2")
def read_binary_idmap(r, ctx, tag: bytes) -> IndexBinaryIDMap:
    what = "IndexBinaryIDMap"
    at = r.pos
    h = read_binary_header(r, what)
    sub = read_binary_nested(r, ctx, f"{what} sub-index")
    if sub.d != h.d or sub.ntotal != h.ntotal:
        raise r.fail(f"{what}: header says d={h.d}, ntotal={h.ntotal} but the wrapped index "
                     f"has d={sub.d}, ntotal={sub.ntotal}", at)
    ids = r.vector(np.int64, f"{what} ids", expect=h.ntotal)
    cls = IndexBinaryIDMap2 if tag == b"IBM2" else IndexBinaryIDMap
    # the constructor wants an empty index: build around a placeholder, then
    # install the loaded state
    index = cls(IndexBinaryFlat(h.d))
    index.index = sub
    index.params_type = sub.params_type
    index.set_id_map(ids)
    return index


# --- IndexBinaryIVF -------------------------------------------------------------------------
# header | uint64 nlist | uint64 nprobe | quantizer (binary index) | direct map | ilar lists

@register_writer(IndexBinaryIVF)
def write_binary_ivf(w, index: IndexBinaryIVF) -> None:
    w.tag(b"IBwF")
    write_binary_header(w, index)
    w.u64(index.nlist)
    w.u64(index.nprobe)
    write_object(w, index.quantizer)
    write_direct_map(w, index)
    write_invlists(w, index)


@register_reader(b"IBwF")
def read_binary_ivf(r, ctx, tag: bytes) -> IndexBinaryIVF:
    what = "IndexBinaryIVF"
    h = read_binary_header(r, what)
    nlist = r.int_in("u64", 1, 1 << 40, f"{what} nlist")
    nprobe = r.int_in("u64", 1, 1 << 40, f"{what} nprobe")
    q_at = r.pos
    quantizer = read_binary_nested(r, ctx, f"{what} quantizer")
    if quantizer.d != h.d:
        raise r.fail(f"{what}: the quantizer's d={quantizer.d} differs from d={h.d}", q_at)
    if h.is_trained and quantizer.ntotal != nlist:
        raise r.fail(f"{what}: trained, but the quantizer holds {quantizer.ntotal} centroids "
                     f"for nlist={nlist}", q_at)
    dm_type = read_direct_map(r, h.ntotal, what)
    il = read_invlists(r, nlist, h.code_size, h.ntotal, what)
    index = IndexBinaryIVF(quantizer, h.d, nlist)
    index.nprobe = nprobe
    index.invlists = il
    index.direct_map.type = dm_type
    index.ntotal = h.ntotal
    index.is_trained = h.is_trained
    return index


# --- IndexBinaryHNSW ------------------------------------------------------------------------
# header | the graph, as the float HNSW's (IHNf) | the storage (IBxF)

@register_writer(IndexBinaryHNSW)
def write_binary_hnsw(w, index: IndexBinaryHNSW) -> None:
    w.tag(b"IBHf")
    write_binary_header(w, index)
    write_graph(w, index)
    write_object(w, index.storage)


@register_reader(b"IBHf")
def read_binary_hnsw(r, ctx, tag: bytes) -> IndexBinaryHNSW:
    what = "IndexBinaryHNSW"
    at = r.pos
    h = read_binary_header(r, what)
    M, probas, cum, graph, efc, efs, upper_beam = read_graph(r, h.ntotal)
    storage = read_binary_nested(r, ctx, f"{what} storage")
    if not isinstance(storage, IndexBinaryFlat) or storage.d != h.d \
            or storage.ntotal != h.ntotal:
        raise r.fail(f"{what}: the storage must be an IndexBinaryFlat with the graph's d "
                     "and ntotal", at)
    index = IndexBinaryHNSW(h.d, M)
    install_graph(r, index, probas, cum, efc, efs, upper_beam, at)
    index.load_state(storage.codes_snapshot(), graph)
    return index


# --- bit strings (FAISS's BitstringWriter / BitstringReader: LSB first) ----------------------

def pack_bits(values: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Values written one after another, value i on ``widths[i]`` bits, least
    significant bit first, into bytes (the last one zero-padded)."""
    values = np.asarray(values, dtype=np.uint64)
    widths = np.asarray(widths, dtype=np.int64)
    total = int(widths.sum())
    owner = np.repeat(np.arange(values.size), widths)
    first = np.repeat(np.cumsum(widths) - widths, widths)
    shift = (np.arange(total, dtype=np.int64) - first).astype(np.uint64)
    bits = ((values[owner] >> shift) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bits, bitorder="little")


class BitReader:
    """Sequential reads of LSB-first bit fields from a byte buffer."""

    def __init__(self, buf: np.ndarray):
        self.bits = np.unpackbits(np.asarray(buf, dtype=np.uint8), bitorder="little")
        self.pos = 0

    def read(self, nbit: int, count: int = 1) -> np.ndarray:
        """``count`` fields of ``nbit`` bits each (uint64); ValueError past the end."""
        end = self.pos + nbit * count
        if end > self.bits.size:
            raise ValueError(f"bit string too short: {end} bits needed, {self.bits.size} held")
        chunk = self.bits[self.pos:end].reshape(count, nbit).astype(np.uint64)
        self.pos = end
        return (chunk << np.arange(nbit, dtype=np.uint64)).sum(axis=1, dtype=np.uint64)


def _bits_for(n: int, strict: bool) -> int:
    """FAISS's width: the least w with n < 2^w (``strict``) or n <= 2^w."""
    w = 0
    while (n >= (1 << w)) if strict else (n > (1 << w)):
        w += 1
    return w


# --- IndexBinaryHash ------------------------------------------------------------------------
# header | int32 b | int32 nflip | uint64 nbuckets | int32 il_nbit |
# vector<uint8> bit string of (key: b bits, size: il_nbit bits) per bucket |
# per bucket: vector<int64> ids, vector<uint8> codes

@register_writer(IndexBinaryHash)
def write_binary_hash(w, index: IndexBinaryHash) -> None:
    buckets = index.buckets()
    w.tag(b"IBHh")
    write_binary_header(w, index)
    w.i32(index.b)
    w.i32(index.nflip)
    w.u64(len(buckets))
    maxil = max((ids.size for _, ids, _ in buckets), default=0)
    il_nbit = _bits_for(maxil, strict=True)
    w.i32(il_nbit)
    vals = np.array([v for key, ids, _ in buckets for v in (key, ids.size)], dtype=np.uint64)
    widths = np.tile(np.array([index.b, il_nbit], np.int64), len(buckets))
    w.vector(pack_bits(vals, widths), np.uint8)
    for _, ids, codes in buckets:
        w.vector(ids, np.int64)
        w.vector(codes, np.uint8)


@register_reader(b"IBHh")
def read_binary_hash(r, ctx, tag: bytes) -> IndexBinaryHash:
    what = "IndexBinaryHash"
    h = read_binary_header(r, what)
    b_at = r.pos
    b = r.int_in("i32", 1, min(63, h.d), f"{what} b")
    nflip = r.int_in("i32", 0, b, f"{what} nflip")
    nb = r.int_in("u64", 0, h.ntotal, f"{what} number of buckets")
    il_nbit = r.int_in("i32", 0, 63, f"{what} il_nbit")
    if nb and il_nbit == 0:
        raise r.fail(f"{what}: il_nbit=0 with {nb} buckets", b_at)
    bits_at = r.pos
    buf = r.vector(np.uint8, f"{what} bucket sizes", expect=((b + il_nbit) * nb + 7) // 8)
    rd = BitReader(buf)
    pairs = rd.read(b + il_nbit, nb) if nb else np.zeros(0, np.uint64)
    sizes = (pairs >> np.uint64(b)).astype(np.int64)
    if sizes.sum() != h.ntotal:
        raise r.fail(f"{what}: the buckets hold {int(sizes.sum())} codes for ntotal={h.ntotal}",
                     bits_at)
    all_ids, all_codes = [], []
    for g in range(nb):
        all_ids.append(r.vector(np.int64, f"{what} bucket ids", expect=int(sizes[g])))
        all_codes.append(r.vector(np.uint8, f"{what} bucket codes",
                                  expect=int(sizes[g]) * h.code_size))
    index = IndexBinaryHash(h.d, b)
    index.nflip = nflip
    if nb:
        index.set_buckets(np.concatenate(all_codes), np.concatenate(all_ids))
    return index


# --- IndexBinaryMultiHash -------------------------------------------------------------------
# header | storage (IBxF) | int32 b | int32 nhash | int32 nflip | per table: int32 id_bits |
# uint64 nbuckets | vector<uint8> bit string of (key: b, size: id_bits, ids: id_bits each)

@register_writer(IndexBinaryMultiHash)
def write_binary_multihash(w, index: IndexBinaryMultiHash) -> None:
    maps = index.maps()
    n = index.ntotal
    w.tag(b"IBHm")
    write_binary_header(w, index, n)
    write_object(w, index.storage)
    w.i32(index.b)
    w.i32(index.nhash)
    w.i32(index.nflip)
    id_bits = _bits_for(n, strict=False)
    for table in maps:
        if any(rows.size >= (1 << id_bits) for _, rows in table):
            raise ValueError("write_index_binary: a bucket holds all the codes, a size FAISS's "
                             "IndexBinaryMultiHash layout cannot store")
        w.i32(id_bits)
        w.u64(len(table))
        parts_v, parts_w = [], []
        for key, rows in table:
            parts_v.append(np.concatenate([np.array([key, rows.size], np.uint64),
                                           rows.astype(np.uint64)]))
            parts_w.append(np.concatenate([[index.b, id_bits], np.full(rows.size, id_bits)]))
        v = np.concatenate(parts_v) if parts_v else np.zeros(0, np.uint64)
        wd = np.concatenate(parts_w).astype(np.int64) if parts_w else np.zeros(0, np.int64)
        w.vector(pack_bits(v, wd), np.uint8)


@register_reader(b"IBHm")
def read_binary_multihash(r, ctx, tag: bytes) -> IndexBinaryMultiHash:
    what = "IndexBinaryMultiHash"
    at = r.pos
    h = read_binary_header(r, what)
    storage = read_binary_nested(r, ctx, f"{what} storage")
    if not isinstance(storage, IndexBinaryFlat) or storage.ntotal != h.ntotal \
            or storage.d != h.d:
        raise r.fail(f"{what}: the storage must be an IndexBinaryFlat of the same d and ntotal",
                     at)
    b = r.int_in("i32", 1, min(63, h.d), f"{what} b")
    nhash = r.int_in("i32", 1, h.d // b, f"{what} nhash")
    nflip = r.int_in("i32", 0, b, f"{what} nflip")
    for t in range(nhash):
        # voisin rebuilds the tables from the codes (FAISS's keys, the same buckets);
        # the stored ones are only checked for size
        id_bits = r.int_in("i32", 0, 63, f"{what} id_bits")
        nb = r.int_in("u64", 0, h.ntotal, f"{what} number of buckets")
        r.vector(np.uint8, f"{what} table {t}",
                 expect=((b + id_bits) * nb + h.ntotal * id_bits + 7) // 8)
    index = IndexBinaryMultiHash(h.d, nhash, b)
    index.nflip = nflip
    index.set_storage(storage.codes_snapshot())
    return index


# --- IndexBinaryFromFloat: header | the float index -------------------------------------------

@register_writer(IndexBinaryFromFloat)
def write_binary_from_float(w, index: IndexBinaryFromFloat) -> None:
    w.tag(b"IBFf")
    write_binary_header(w, index)
    write_object(w, index.index)


@register_reader(b"IBFf")
def read_binary_from_float(r, ctx, tag: bytes) -> IndexBinaryFromFloat:
    what = "IndexBinaryFromFloat"
    at = r.pos
    h = read_binary_header(r, what)
    inner = ctx.read_nested(r, f"{what} float index")
    if not isinstance(inner, Index) or inner.d != h.d or inner.ntotal != h.ntotal:
        raise r.fail(f"{what}: the wrapped index must be a float index with d={h.d} and "
                     f"ntotal={h.ntotal}", at)
    return IndexBinaryFromFloat(inner)
