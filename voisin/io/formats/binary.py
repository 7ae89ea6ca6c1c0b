"""Binary indexes (FAISS's ``IndexBinary`` family).

Every binary object starts, after its tag, with FAISS's binary header:
``int32 d | int32 code_size | int64 ntotal | uint8 is_trained | int32 metric_type``.

* ``IBxF`` IndexBinaryFlat: header, ``vector<uint8>`` codes (ntotal * code_size).
* ``IBwF`` IndexBinaryIVF: header, ``uint64 nlist | uint64 nprobe``, the quantizer
  (a binary index), the direct map and ``ilar`` inverted lists, as the float IVFs.
* ``IBHf`` IndexBinaryHNSW: header, the graph in FAISS's HNSW layout (as ``IHNf``),
  the storage (``IBxF``).
* ``IBMp`` / ``IBM2`` IndexBinaryIDMap / IDMap2: header, the wrapped binary
  index, ``vector<int64>`` ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...indexes.binary import IndexBinary
from ...indexes.binary_flat import IndexBinaryFlat
from ...indexes.binary_idmap import IndexBinaryIDMap, IndexBinaryIDMap2
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
