"""HNSW indexes: ``IHNf`` (flat storage), ``IHNs`` (SQ8 codes), ``IHNp`` (PQ codes),
``IHN2`` (Index2Layer codes, a nested ``Ix2L``).

Body after the header: the graph in FAISS's layout (one ``neighbors`` array,
node i's slots at ``offsets[i] + cum_nneighbor_per_level[l]``), the entry
point and knobs, then the storage as a nested index. voisin keeps level 0 as
an (n, 2M) block and upper levels as (rows, M), so the graph is regrouped on
load (vectorised gathers); the storage vectors are used in place, and stay in
the mapping when the file is memory-mapped.

Everything a search kernel will index with is validated here (neighbour ids
in range, upper-level links pointing at nodes that have that level, entry
point at the top level), so a damaged file cannot make a kernel read out of
bounds.
"""

from __future__ import annotations

import numpy as np

from ...indexes.flat import IndexFlat
from ...indexes.hnsw import IndexHNSW, IndexHNSWFlat, IndexHNSWSQ
from ...indexes.hnsw_2level import IndexHNSW2Level
from ...indexes.hnsw_pq import IndexHNSWPQ
from ...indexes.index2layer import Index2Layer
from ..faiss_format import (IO_FLAG_SKIP_STORAGE, read_header, register_reader, register_writer,
                            write_header, write_object)
from .flat import flat_tag
from .pq import read_codes, read_pq, write_pq
from .sqcodec import read_sq, write_sq


def write_graph(w, index: IndexHNSW) -> None:
    """The graph in FAISS's layout (``index`` holds no tombstones)."""
    h = index.hnsw
    w.vector(h.assign_probas, np.float64)
    w.vector(h.cum_nneighbor_per_level, np.int32)
    w.vector(h.levels, np.int32)
    w.vector(h.offsets, np.uint64)
    w.vector(h.neighbors, np.int32)
    w.i32(h.entry_point)
    w.i32(h.max_level)
    w.i32(h.efConstruction)
    w.i32(h.efSearch)
    w.i32(h.upper_beam)


@register_writer(IndexHNSWFlat)
def write_hnsw_flat(w, index: IndexHNSWFlat) -> None:
    # FAISS's format has no tombstones: deleted nodes are dropped from a copy
    index = index.compacted_copy()
    if w.layout == "voisin":
        write_hnsw_flat_voisin(w, index)
        return
    w.tag(b"IHNf")
    write_header(w, index)
    write_graph(w, index)
    if w.io_flags & IO_FLAG_SKIP_STORAGE:
        w.tag(b"null")  # FAISS's graph-only file
        return
    # voisin's HNSW holds its vectors directly; FAISS nests an IndexFlat
    w.tag(flat_tag(index.metric_type))
    write_header(w, index)
    w.vector(index.storage_rows(), np.float32)


def install_graph(r, index: IndexHNSW, probas, cum, efc: int, efs: int, upper_beam: int,
                  at: int) -> None:
    """Set the graph fields read from a file on a new index."""
    hn = index.hnsw
    hn.assign_probas = np.array(probas, dtype=np.float64)
    hn.cum_nneighbor_per_level = np.array(cum, dtype=np.int32)
    hn.efConstruction, hn.efSearch = efc, efs
    if upper_beam != 1:
        raise r.fail(f"HNSW upper_beam = {upper_beam}: voisin descends the upper levels "
                     "greedily (beam 1) and does not implement wider beams", at)


def read_graph(r, ntotal: int):
    """The graph fields, validated and regrouped into voisin's split arrays."""
    at = r.pos
    probas = r.vector(np.float64, "HNSW assign_probas")
    cum_at = r.pos
    cum = r.vector(np.int32, "HNSW cum_nneighbor_per_level")
    if cum.size < 2 or cum[0] != 0 or cum[1] < 2 or cum[1] % 2:
        raise r.fail("HNSW cum_nneighbor_per_level: expected 0, 2M, 3M, ...", cum_at)
    M = int(cum[1]) // 2
    if not np.array_equal(np.diff(cum[1:].astype(np.int64)), np.full(cum.size - 2, M)):
        raise r.fail("HNSW cum_nneighbor_per_level: voisin needs 2M neighbours at level 0 "
                     f"and M={M} above, found {cum[:6].tolist()}...", cum_at)
    if probas.size != cum.size - 1 or not np.all(np.isfinite(probas)) or (probas < 0).any():
        raise r.fail("HNSW assign_probas: expected one finite probability per level", at)
    lv_at = r.pos
    levels = r.vector(np.int32, "HNSW levels", expect=ntotal)
    if ntotal and (levels.min() < 1 or levels.max() > cum.size - 1):
        raise r.fail(f"HNSW levels: values must lie in [1, {cum.size - 1}]", lv_at)
    off_at = r.pos
    offsets = r.vector(np.uint64, "HNSW offsets", expect=ntotal + 1)
    sizes = cum[levels.astype(np.int64)].astype(np.uint64)
    expected = np.zeros(ntotal + 1, dtype=np.uint64)
    np.cumsum(sizes, out=expected[1:])
    if not np.array_equal(offsets, expected):
        raise r.fail("HNSW offsets do not match the node levels", off_at)
    nb_at = r.pos
    neighbors = r.vector(np.int32, "HNSW neighbors", expect=int(expected[-1]))
    if neighbors.size and (neighbors.min() < -1 or neighbors.max() >= ntotal):
        raise r.fail(f"HNSW neighbors: ids must lie in [-1, {ntotal})", nb_at)
    ep_at = r.pos
    entry = r.i32("HNSW entry_point")
    max_level = r.i32("HNSW max_level")
    efc = r.int_in("i32", 1, 1 << 24, "HNSW efConstruction")
    efs = r.int_in("i32", 1, 1 << 24, "HNSW efSearch")
    upper_beam = r.i32("HNSW upper_beam")
    if ntotal == 0:
        if entry != -1:
            raise r.fail(f"HNSW entry_point: {entry} in an empty graph", ep_at)
    elif not (0 <= entry < ntotal and max_level == int(levels[entry]) - 1
              and max_level == int(levels.max()) - 1):
        raise r.fail(f"HNSW entry_point {entry} / max_level {max_level}: the entry point must "
                     "be a node of the top level", ep_at)

    # regroup: level 0 as (n, 2M), levels >= 1 as rows of M in node order
    starts = offsets[:-1].astype(np.int64)
    nb0 = neighbors[starts[:, None] + np.arange(2 * M)] if ntotal else \
        np.empty((0, 2 * M), np.int32)
    nup = levels.astype(np.int64) - 1
    owners = np.repeat(np.arange(ntotal), nup)
    first = np.repeat(np.cumsum(nup) - nup, nup)
    lvl = np.arange(owners.size) - first  # 0 = level 1
    upper = neighbors[(starts[owners] + 2 * M + lvl * M)[:, None] + np.arange(M)] \
        if owners.size else np.empty((0, M), np.int32)
    if upper.size:
        # a link at level l must point at a node that has level l
        tgt = upper.astype(np.int64)
        need = (lvl + 2)[:, None]
        bad = (tgt >= 0) & (levels[np.maximum(tgt, 0)] < need)
        if bad.any():
            raise r.fail("HNSW neighbors: an upper-level link points at a node without that level",
                         nb_at)
    upper_off = (np.cumsum(nup) - nup).astype(np.int64)
    state = np.array([entry, max_level], dtype=np.int64)
    graph = (np.ascontiguousarray(nb0, dtype=np.int32), np.ascontiguousarray(upper, dtype=np.int32),
             upper_off, np.ascontiguousarray(levels, dtype=np.int32), state)
    return M, probas, cum, graph, efc, efs, upper_beam


@register_reader(b"IHNf")
def read_hnsw_flat(r, ctx, tag: bytes) -> IndexHNSWFlat:
    at = r.pos
    h = read_header(r, "IndexHNSWFlat", extra_metrics=True)
    M, probas, cum, graph, efc, efs, upper_beam = read_graph(r, h.ntotal)
    storage = ctx.read_nested(r, "IndexHNSWFlat storage")
    if not isinstance(storage, IndexFlat) or storage.d != h.d or storage.ntotal != h.ntotal \
            or storage.metric_type != h.metric_type:
        raise r.fail("IndexHNSWFlat: the storage must be an IndexFlat with the same d, ntotal "
                     "and metric as the graph", at)
    index = IndexHNSWFlat(h.d, M, h.metric_type)
    # faiss's distances use the storage's metric_arg (the graph's own is not passed down)
    index.metric_arg = storage.metric_arg
    install_graph(r, index, probas, cum, efc, efs, upper_beam, at)
    index.load_state(storage.xb, graph)
    return index


# --------------------------------------------------------------------------
# voisin layout: the graph as voisin holds it, aligned, so a mapping uses it in place
# --------------------------------------------------------------------------

def write_hnsw_flat_voisin(w, index: IndexHNSWFlat) -> None:
    """``VHNf``: header, ``vector<float64> assign_probas | vector<int32> cum |
    int32 entry_point, max_level, efConstruction, efSearch, upper_beam |
    uint64 M | vector<int32> levels | uint64 upper rows``, then three arrays,
    each after a pad to 64 bytes: level-0 links (ntotal x 2M int32), upper
    links (rows x M int32), vectors (ntotal x d float32)."""
    h = index.hnsw
    nb0, upper, _, levels, _ = index.graph_arrays()
    n = index.ntotal
    w.tag(b"VHNf")
    write_header(w, index)
    w.vector(h.assign_probas, np.float64)
    w.vector(h.cum_nneighbor_per_level, np.int32)
    for v in (h.entry_point, h.max_level, h.efConstruction, h.efSearch, h.upper_beam):
        w.i32(v)
    w.u64(h.M)
    w.vector(levels[:n], np.int32)
    w.u64(upper.shape[0])
    w.pad_to(64)
    w.array(nb0[:n], np.int32)
    w.pad_to(64)
    w.array(upper, np.int32)
    w.pad_to(64)
    w.array(index.storage_rows(), np.float32)


@register_reader(b"VHNf")
def read_hnsw_flat_voisin(r, ctx, tag: bytes) -> IndexHNSWFlat:
    what = "IndexHNSWFlat (voisin layout)"
    h = read_header(r, what, extra_metrics=True)
    n = h.ntotal
    probas = r.vector(np.float64, f"{what} assign_probas")
    cum = r.vector(np.int32, f"{what} cum_nneighbor_per_level")
    ep_at = r.pos
    entry, max_level = r.i32(f"{what} entry_point"), r.i32(f"{what} max_level")
    efc = r.int_in("i32", 1, 1 << 24, f"{what} efConstruction")
    efs = r.int_in("i32", 1, 1 << 24, f"{what} efSearch")
    upper_beam = r.i32(f"{what} upper_beam")
    m_at = r.pos
    M = r.int_in("u64", 2, 1 << 15, f"{what} M")
    expected_cum = np.concatenate([[0], 2 * M + M * np.arange(max(cum.size - 1, 0))])
    if cum.size < 2 or probas.size != cum.size - 1 or not np.array_equal(cum, expected_cum):
        raise r.fail(f"{what}: level tables do not match M={M}", m_at)
    lv_at = r.pos
    levels = r.vector(np.int32, f"{what} levels", expect=n)
    if n and (levels.min() < 1 or levels.max() > cum.size - 1):
        raise r.fail(f"{what} levels: values must lie in [1, {cum.size - 1}]", lv_at)
    nup = levels.astype(np.int64) - 1
    rows_at = r.pos
    rows = r.int_in("u64", 0, r.remaining, f"{what} upper rows")
    if rows != int(nup.sum()):
        raise r.fail(f"{what}: {rows} upper rows for levels that need {int(nup.sum())}", rows_at)
    r.skip_pad(f"{what} level-0 links")
    nb_at = r.pos
    nb0 = r.array(np.int32, n * 2 * M, f"{what} level-0 links").reshape(n, 2 * M)
    r.skip_pad(f"{what} upper links")
    up_at = r.pos
    upper = r.array(np.int32, rows * M, f"{what} upper links").reshape(rows, M)
    r.skip_pad(f"{what} vectors")
    X = r.array(np.float32, n * h.d, f"{what} vectors").reshape(n, h.d)
    # the kernels index with these: one vectorised pass, even for a mapped file
    if nb0.size and (nb0.min() < -1 or nb0.max() >= n):
        raise r.fail(f"{what} level-0 links: ids must lie in [-1, {n})", nb_at)
    upper_off = (np.cumsum(nup) - nup).astype(np.int64)
    if upper.size:
        if upper.min() < -1 or upper.max() >= n:
            raise r.fail(f"{what} upper links: ids must lie in [-1, {n})", up_at)
        owners = np.repeat(np.arange(n), nup)
        lvl = np.arange(rows) - upper_off[owners]  # 0 = level 1
        tgt = upper.astype(np.int64)
        if ((tgt >= 0) & (levels[np.maximum(tgt, 0)] < (lvl + 2)[:, None])).any():
            raise r.fail(f"{what}: an upper-level link points at a node without that level", up_at)
    if n == 0:
        if entry != -1:
            raise r.fail(f"{what}: entry_point {entry} in an empty graph", ep_at)
    elif not (0 <= entry < n and max_level == int(levels[entry]) - 1
              and max_level == int(levels.max()) - 1):
        raise r.fail(f"{what}: the entry point must be a node of the top level", ep_at)
    index = IndexHNSWFlat(h.d, M, h.metric_type)
    index.metric_arg = h.metric_arg
    install_graph(r, index, probas, cum, efc, efs, upper_beam, ep_at)
    index.load_state(X, (nb0, upper, upper_off, np.ascontiguousarray(levels, dtype=np.int32),
                         np.array([entry, max_level], dtype=np.int64)))
    return index


# --------------------------------------------------------------------------
# HNSW over SQ8 codes: ``IHNs`` (graph, then an IndexScalarQuantizer ``IxSQ``)
# --------------------------------------------------------------------------

@register_writer(IndexHNSWSQ)
def write_hnsw_sq(w, index: IndexHNSWSQ) -> None:
    index = index.compacted_copy()  # no tombstones in the file
    w.tag(b"IHNs")
    write_header(w, index)
    write_graph(w, index)
    if w.io_flags & IO_FLAG_SKIP_STORAGE:
        w.tag(b"null")  # FAISS's graph-only file
        return
    w.tag(b"IxSQ")
    write_header(w, index)
    write_sq(w, index.sq)
    w.vector(index.storage_rows(), np.uint8)


@register_reader(b"IHNs")
def read_hnsw_sq(r, ctx, tag: bytes) -> IndexHNSWSQ:
    what = "IndexHNSWSQ"
    at = r.pos
    h = read_header(r, what)
    M, probas, cum, graph, efc, efs, upper_beam = read_graph(r, h.ntotal)
    st_at = r.pos
    st_tag = r.tag(f"{what} storage tag")
    if st_tag != b"IxSQ":
        raise r.fail(f"{what}: storage must be an IndexScalarQuantizer ('IxSQ'), found "
                     f"{st_tag!r}", st_at)
    sh = read_header(r, f"{what} storage")
    if (sh.d, sh.ntotal, sh.metric_type) != (h.d, h.ntotal, h.metric_type):
        raise r.fail(f"{what}: storage and graph disagree on d, ntotal or metric", at)
    sq = read_sq(r, h.d, f"{what} scalar quantizer")
    codes = r.vector(np.uint8, f"{what} codes", expect=h.ntotal * sq.code_size)
    try:
        index = IndexHNSWSQ(h.d, sq.qtype, M, h.metric_type)
    except NotImplementedError as exc:
        raise r.fail(f"{what}: {exc}", st_at) from None
    install_graph(r, index, probas, cum, efc, efs, upper_beam, at)
    index.set_quantizer(sq)
    if not sh.is_trained:
        index.is_trained = False
    index.load_state(codes.reshape(h.ntotal, sq.code_size), graph)
    return index


# --------------------------------------------------------------------------
# HNSW over PQ codes: ``IHNp`` (graph, then an IndexPQ ``IxPq``)
# --------------------------------------------------------------------------

@register_writer(IndexHNSWPQ)
def write_hnsw_pq(w, index: IndexHNSWPQ) -> None:
    index = index.compacted_copy()  # no tombstones in the file
    w.tag(b"IHNp")
    write_header(w, index)
    write_graph(w, index)
    if w.io_flags & IO_FLAG_SKIP_STORAGE:
        w.tag(b"null")
        return
    w.tag(b"IxPq")
    write_header(w, index)
    write_pq(w, index.pq)
    w.vector(index.storage_rows(), np.uint8)
    w.i32(0)                          # search_type: ST_PQ
    w.u8(0)                           # encode_signs
    w.i32(index.pq.M * 8 + 1)         # polysemous_ht: off


@register_reader(b"IHNp")
def read_hnsw_pq(r, ctx, tag: bytes) -> IndexHNSWPQ:
    what = "IndexHNSWPQ"
    at = r.pos
    h = read_header(r, what)
    M, probas, cum, graph, efc, efs, upper_beam = read_graph(r, h.ntotal)
    st_at = r.pos
    st_tag = r.tag(f"{what} storage tag")
    if st_tag != b"IxPq":
        raise r.fail(f"{what}: storage must be an IndexPQ ('IxPq'), found {st_tag!r}", st_at)
    sh = read_header(r, f"{what} storage")
    if (sh.d, sh.ntotal, sh.metric_type) != (h.d, h.ntotal, h.metric_type):
        raise r.fail(f"{what}: storage and graph disagree on d, ntotal or metric", at)
    pq = read_pq(r, h.d, f"{what} product quantizer")
    if pq.nbits != 8:
        raise r.fail(f"{what}: voisin walks 8-bit PQ codes, the file has {pq.nbits}-bit codes", st_at)
    codes = read_codes(r, h.ntotal, pq.code_size, f"{what} codes")
    r.i32(f"{what} search_type")
    r.u8(f"{what} encode_signs")
    r.i32(f"{what} polysemous_ht")
    index = IndexHNSWPQ(h.d, pq.M, M, 8, h.metric_type)
    install_graph(r, index, probas, cum, efc, efs, upper_beam, at)
    pq.is_trained = pq.is_trained or bool(sh.is_trained)
    index.set_quantizer(pq)
    index.is_trained = bool(sh.is_trained)
    index.load_state(codes, graph)
    return index


# --------------------------------------------------------------------------
# HNSW over Index2Layer codes: ``IHN2`` (graph, then an Index2Layer ``Ix2L``)
# --------------------------------------------------------------------------

@register_writer(IndexHNSW2Level)
def write_hnsw_2level(w, index: IndexHNSW2Level) -> None:
    index = index.compacted_copy()  # no tombstones in the file
    w.tag(b"IHN2")
    write_header(w, index)
    write_graph(w, index)
    if w.io_flags & IO_FLAG_SKIP_STORAGE:
        w.tag(b"null")
        return
    write_object(w, index.storage)


@register_reader(b"IHN2")
def read_hnsw_2level(r, ctx, tag: bytes) -> IndexHNSW2Level:
    what = "IndexHNSW2Level"
    at = r.pos
    h = read_header(r, what)
    M, probas, cum, graph, efc, efs, upper_beam = read_graph(r, h.ntotal)
    st_at = r.pos
    storage = ctx.read_nested(r, f"{what} storage")
    if type(storage) is not Index2Layer or (storage.d, storage.ntotal, storage.metric_type) \
            != (h.d, h.ntotal, h.metric_type):
        raise r.fail(f"{what}: the storage must be an Index2Layer with the same d, ntotal and "
                     f"metric as the graph, found {storage!r}", st_at)
    if storage.pq.nbits != 8:
        raise r.fail(f"{what}: the storage's PQ has {storage.pq.nbits}-bit codes; FAISS's "
                     "IndexHNSW2Level has 8-bit ones", st_at)
    index = IndexHNSW2Level(storage.q1.quantizer, storage.q1.nlist, storage.pq.M, M)
    install_graph(r, index, probas, cum, efc, efs, upper_beam, at)
    index.set_storage(storage)
    index.is_trained = bool(h.is_trained) and bool(storage.is_trained)
    index.load_state(np.ascontiguousarray(storage.codes), graph)
    return index
