"""IVF indexes: the common part, the inverted lists, and IndexIVFFlat ``IwFl``.

IVF common part (after the header): ``uint64 nlist | uint64 nprobe | the
coarse quantizer (nested index) | int8 direct_map_type | vector<int64>
direct-map array | [vector<(int64, int64)> hashtable, type 2 only]``.

Inverted lists ``ilar``: ``uint64 nlist | uint64 code_size | 'full' +
vector<uint64> sizes`` or ``'sprs' + vector<uint64> (list_no, size) pairs``
(FAISS writes sparse when at most half the lists are used), then list by list
``size * code_size`` bytes of codes followed by ``size`` int64 ids.

voisin scans one slab per index (list l at rows ``offsets[l] ..``), FAISS
interleaves codes and ids per list, so the lists are gathered into a slab on
load (one copy; see docs/file-format.md on memory mapping).
"""

from __future__ import annotations

import numpy as np

from ...index import Index
from ...indexes.invlists import DirectMap, InvertedLists
from ...indexes.ivf import IndexIVF
from ...indexes.ivf_flat import IndexIVFFlat
from ..faiss_format import read_header, register_reader, register_writer, write_header, write_object

_LO_SHIFT = 32


# --------------------------------------------------------------------------
# the IVF common part
# --------------------------------------------------------------------------

def _direct_map_entries(index) -> tuple[np.ndarray, np.ndarray]:
    """(ids, lo) of every stored entry, lo = list_no << 32 | offset in the list."""
    il = index.invlists
    rows, lists = il.used_rows()
    ids = il.ids[rows]
    starts = np.cumsum(il.sizes) - il.sizes
    within = np.arange(rows.size, dtype=np.int64) - starts[lists]
    return ids, (lists.astype(np.int64) << _LO_SHIFT) | within


def write_ivf_header(w, index: IndexIVF) -> None:
    write_header(w, index)
    w.u64(index.nlist)
    w.u64(index.nprobe)
    write_object(w, index.quantizer)
    write_direct_map(w, index)


def write_direct_map(w, index) -> None:
    """``int8 type | vector<int64> array | [vector<(int64, int64)> hashtable]``."""
    dm_type = int(index.direct_map.type)
    w.u8(dm_type)
    if dm_type == DirectMap.Array:
        ids, lo = _direct_map_entries(index)
        if ids.size and not np.array_equal(np.sort(ids), np.arange(ids.size)):
            raise ValueError("write_index: an IVF index with an array direct map needs "
                             "sequential ids 0..ntotal-1 (FAISS's rule); use "
                             "set_direct_map_type(2) for arbitrary ids")
        array = np.empty(ids.size, dtype=np.int64)
        array[ids] = lo
        w.vector(array, np.int64)
    else:
        w.vector(np.empty(0, np.int64), np.int64)
    if dm_type == DirectMap.Hashtable:
        ids, lo = _direct_map_entries(index)
        pairs = np.empty((ids.size, 2), dtype=np.int64)
        pairs[:, 0], pairs[:, 1] = ids, lo
        w.u64(ids.size)  # FAISS counts (id, lo) pairs, not int64s
        w.array(pairs, np.int64)


class IVFCommon:
    """What the IVF common part holds, before the codec-specific fields."""

    def __init__(self, r, ctx, what: str):
        self.at = r.pos
        h = read_header(r, what)
        self.h = h
        self.nlist = r.int_in("u64", 1, 1 << 40, f"{what} nlist")
        self.nprobe = r.int_in("u64", 1, 1 << 40, f"{what} nprobe")
        q_at = r.pos
        self.quantizer = ctx.read_nested(r, f"{what} quantizer")
        if not isinstance(self.quantizer, Index) or self.quantizer.d != h.d:
            raise r.fail(f"{what}: the quantizer's dimension differs from the index's", q_at)
        if h.is_trained and self.quantizer.ntotal != self.nlist:
            raise r.fail(f"{what}: trained, but the quantizer holds {self.quantizer.ntotal} "
                         f"centroids for nlist={self.nlist}", q_at)
        self.dm_type = read_direct_map(r, h.ntotal, what)


def read_direct_map(r, ntotal: int, what: str) -> int:
    """The direct map's type (voisin rebuilds its id lookup from the lists)."""
    dm_at = r.pos
    dm_type = r.u8(f"{what} direct_map type")
    if dm_type > 2:
        raise r.fail(f"{what}: unknown direct map type {dm_type}", dm_at)
    array = r.vector(np.int64, f"{what} direct map array")
    if dm_type == DirectMap.Array and array.size != ntotal:
        raise r.fail(f"{what}: direct map has {array.size} entries for ntotal={ntotal}", dm_at)
    if dm_type == DirectMap.Hashtable:
        pairs_at = r.pos
        npairs = r.u64(f"{what} direct map hashtable length")
        if npairs > r.remaining // 16:
            raise r.fail(f"{what}: direct map hashtable length {npairs} exceeds the file",
                         pairs_at)
        r.array(np.int64, 2 * npairs, f"{what} direct map hashtable")
    return dm_type


def write_slab(w, index: IndexIVF) -> None:
    """voisin layout ``VSlb``: the slab as voisin scans it, aligned for mapping.

    ``'VSlb' | uint64 nlist | uint64 code_size | vector<int64> sizes | pad |
    codes (sum(sizes) * code_size bytes, list by list) | pad | int64 ids``,
    each pad a uint8 length then zeros so the array after it starts at a
    multiple of 64 bytes in the file.
    """
    il = index.invlists
    rows, _ = il.used_rows()
    contiguous = rows.size == 0 or (rows[0] == 0 and rows[-1] == rows.size - 1)
    codes = il.codes[:rows.size] if contiguous else il.codes[rows]
    ids = il.ids[:rows.size] if contiguous else il.ids[rows]
    w.tag(b"VSlb")
    w.u64(il.nlist)
    w.u64(il.code_size)
    w.vector(np.asarray(il.sizes, dtype=np.int64), np.int64)
    w.pad_to(64)
    w.array(codes, np.uint8)
    w.pad_to(64)
    w.array(ids, np.int64)


def read_slab(r, nlist: int, code_size: int, ntotal: int | None, what: str) -> InvertedLists:
    r.int_in("u64", nlist, nlist, f"{what} inverted lists nlist")
    r.int_in("u64", code_size, code_size, f"{what} inverted lists code_size")
    at = r.pos
    sizes = r.vector(np.int64, f"{what} list sizes", expect=nlist)
    if sizes.size and (sizes.min() < 0 or sizes.max() > r.remaining):
        raise r.fail(f"{what}: list sizes must lie in [0, {r.remaining}]", at)
    total = int(sizes.sum())
    if ntotal is not None and total != ntotal:
        raise r.fail(f"{what}: the lists hold {total} entries for ntotal={ntotal}", at)
    r.skip_pad(f"{what} codes")
    codes = r.array(np.uint8, total * code_size, f"{what} codes").reshape(total, code_size)
    r.skip_pad(f"{what} ids")
    ids = r.array(np.int64, total, f"{what} ids")
    il = InvertedLists(nlist, code_size)
    sizes = np.ascontiguousarray(sizes, dtype=np.int64)
    il.codes, il.ids, il.sizes = codes, ids, sizes
    il.offsets = np.cumsum(sizes) - sizes
    il.capacity = sizes.copy()
    return il


def write_invlists(w, index: IndexIVF) -> None:
    if w.layout == "voisin":
        write_slab(w, index)
        return
    il = index.invlists
    w.tag(b"ilar")
    w.u64(il.nlist)
    w.u64(il.code_size)
    sizes = np.asarray(il.sizes, dtype=np.int64)
    used = np.flatnonzero(sizes)
    if used.size > il.nlist // 2:
        w.tag(b"full")
        w.vector(sizes, np.uint64)
    else:
        w.tag(b"sprs")
        pairs = np.empty((used.size, 2), dtype=np.uint64)
        pairs[:, 0], pairs[:, 1] = used, sizes[used]
        w.vector(pairs, np.uint64)
    for l in used.tolist():
        w.array(il.get_codes(l), np.uint8)
        w.array(il.get_ids(l), np.int64)


def read_invlists(r, nlist: int, code_size: int, ntotal: int | None, what: str) -> InvertedLists:
    """FAISS's ``ilar`` lists, gathered into voisin's slab (``ntotal=None``:
    any number of entries, for lists read on their own)."""
    at = r.pos
    tag = r.tag(f"{what} inverted lists tag")
    if tag == b"VSlb":
        return read_slab(r, nlist, code_size, ntotal, what)
    if tag != b"ilar":
        kind = {b"il00": "no inverted lists", b"ilod": "on-disk inverted lists",
                b"ilbl": "block inverted lists (fast-scan)"}.get(tag, f"tag {tag!r}")
        raise r.fail(f"{what}: {kind} are not supported by voisin (expected 'ilar')", at)
    r.int_in("u64", nlist, nlist, f"{what} inverted lists nlist")
    r.int_in("u64", code_size, code_size, f"{what} inverted lists code_size")
    kind_at = r.pos
    kind = r.tag(f"{what} inverted lists kind")
    if kind == b"full":
        sizes = r.vector(np.uint64, f"{what} list sizes", expect=nlist).astype(np.int64)
    elif kind == b"sprs":
        pairs_at = r.pos
        pairs = r.vector(np.uint64, f"{what} sparse list sizes")
        if pairs.size % 2 or (pairs.size and pairs[0::2].max() >= nlist):
            raise r.fail(f"{what}: sparse list sizes must be (list_no < {nlist}, size) pairs",
                         pairs_at)
        sizes = np.zeros(nlist, dtype=np.int64)
        lists = pairs[0::2].astype(np.int64)
        if np.unique(lists).size != lists.size:
            raise r.fail(f"{what}: a list appears twice in the sparse sizes", pairs_at)
        if pairs.size and pairs[1::2].max() > r.remaining:
            raise r.fail(f"{what}: a list size exceeds the file", pairs_at)
        sizes[lists] = pairs[1::2].astype(np.int64)
    else:
        raise r.fail(f"{what}: unknown inverted list kind {kind!r}", kind_at)
    entry = code_size + 8
    # bound every size before summing so the total cannot overflow
    if sizes.size and (sizes.min() < 0 or sizes.max() > r.remaining // entry):
        raise r.fail(f"{what}: list sizes exceed the remaining {r.remaining} bytes", kind_at)
    total = int(sizes.sum())
    if total * entry > r.remaining:
        raise r.fail(f"{what}: lists need {total * entry} bytes but only {r.remaining} remain",
                     kind_at)
    if ntotal is not None and total != ntotal:
        raise r.fail(f"{what}: the lists hold {total} entries for ntotal={ntotal}", kind_at)
    il = InvertedLists(nlist, code_size)
    codes = np.empty((total, code_size), dtype=np.uint8)
    ids = np.empty(total, dtype=np.int64)
    offsets = np.cumsum(sizes) - sizes
    buf = r.buf
    for l in np.flatnonzero(sizes).tolist():
        n, o, p = int(sizes[l]), int(offsets[l]), r.pos
        codes[o:o + n] = np.frombuffer(buf, np.uint8, n * code_size, p).reshape(n, code_size)
        ids[o:o + n] = np.frombuffer(buf, "<i8", n, p + n * code_size)
        r.pos = p + n * entry
    il.codes, il.ids, il.offsets, il.sizes, il.capacity = codes, ids, offsets, sizes, sizes.copy()
    return il


def install_ivf(index: IndexIVF, common: IVFCommon, il: InvertedLists) -> IndexIVF:
    """Give a freshly constructed IVF index the loaded state."""
    index.nprobe = common.nprobe
    index.invlists = il
    index.direct_map.type = common.dm_type
    index.direct_map.invalidate()
    index.ntotal = common.h.ntotal
    index.is_trained = common.h.is_trained
    return index


# --------------------------------------------------------------------------
# IndexIVFFlat
# --------------------------------------------------------------------------

@register_writer(IndexIVFFlat)
def write_ivf_flat(w, index: IndexIVFFlat) -> None:
    w.tag(b"IwFl")
    write_ivf_header(w, index)
    write_invlists(w, index)


@register_reader(b"IwFl")
def read_ivf_flat(r, ctx, tag: bytes) -> IndexIVFFlat:
    c = IVFCommon(r, ctx, "IndexIVFFlat")
    il = read_invlists(r, c.nlist, 4 * c.h.d, c.h.ntotal, "IndexIVFFlat")
    index = IndexIVFFlat(c.quantizer, c.h.d, c.nlist, c.h.metric_type)
    return install_ivf(index, c, il)
