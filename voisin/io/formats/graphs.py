"""Graph indexes: ``INNf`` (IndexNNDescentFlat), ``INSf`` (IndexNSGFlat), ``INSp``
(IndexNSGPQ) and ``INSs`` (IndexNSGSQ).

``INNf``: header | int32 ntotal, d, K, S, R, L, iter, search_L, random_seed | bool
has_built | vector<int32> final_graph (ntotal x K) | storage (a nested IndexFlat).

``INSf``: header | int32 GK | char build_type | int32 nndescent_S, nndescent_R,
nndescent_L, nndescent_iter | NSG: int32 ntotal, R, L, C, search_L, enterpoint | bool
is_built | when built, each node's neighbours followed by -1 (no count: the rows are
found by their terminators) | storage.

``INSp`` / ``INSs``: the INSf layout, the storage being an IndexPQ (``IxPq``) / an
IndexScalarQuantizer (``IxSQ``) with the same d, ntotal and metric.

Every id a kernel will follow is checked here (in [0, ntotal), rows of at most R
neighbours), so a damaged file cannot make a walk read out of bounds.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ...indexes.flat import IndexFlat
from ...indexes.graph_flat import IndexNNDescentFlat, IndexNSGFlat
from ...indexes.nsg_codes import IndexNSGPQ, IndexNSGSQ
from ...indexes.pq import IndexPQ
from ...indexes.sq import IndexScalarQuantizer
from ...metric import METRIC_L2
from ..faiss_format import read_header, register_reader, register_writer, write_header, write_object
from .flat import flat_tag

_I32_MAX = (1 << 31) - 1


def _write_storage(w, index) -> None:
    # voisin's graph indexes hold an IndexFlat, written as FAISS nests it
    w.tag(flat_tag(index.metric_type))
    write_header(w, index)
    w.vector(index.storage.xb, np.float32)


def _read_storage(r, ctx, what: str, h, at: int) -> tuple[np.ndarray, float]:
    """The stored rows, and the metric_arg faiss's distances use (the storage's)."""
    storage = ctx.read_nested(r, f"{what} storage")
    if not isinstance(storage, IndexFlat) or storage.d != h.d or storage.ntotal != h.ntotal \
            or storage.metric_type != h.metric_type:
        raise r.fail(f"{what}: the storage must be an IndexFlat with the same d, ntotal and "
                     "metric as the graph", at)
    return storage.xb, storage.metric_arg


@register_writer(IndexNNDescentFlat)
def write_nndescent_flat(w, index: IndexNNDescentFlat) -> None:
    nnd = index.nndescent
    graph = index.graph()
    w.tag(b"INNf")
    write_header(w, index)
    # K as the graph was built (the knob may have changed since)
    K = graph.shape[1] if index.ntotal else nnd.K
    for v in (index.ntotal, index.d, K, nnd.S, nnd.R, nnd.L, nnd.iter, nnd.search_L,
              nnd.random_seed):
        w.i32(v)
    w.bool(index.ntotal > 0)
    w.vector(graph.reshape(-1), np.int32)
    _write_storage(w, index)


@register_reader(b"INNf")
def read_nndescent_flat(r, ctx, tag: bytes) -> IndexNNDescentFlat:
    what = "IndexNNDescentFlat"
    at = r.pos
    h = read_header(r, what, extra_metrics=True)
    n_at = r.pos
    ntotal = r.int_in("i32", 0, _I32_MAX, f"{what} nndescent.ntotal")
    d = r.i32(f"{what} nndescent.d")
    if ntotal != h.ntotal or d != h.d:
        raise r.fail(f"{what}: nndescent ntotal/d ({ntotal}, {d}) differ from the header "
                     f"({h.ntotal}, {h.d})", n_at)
    K = r.int_in("i32", 1, 1 << 16, f"{what} nndescent.K")
    S = r.int_in("i32", 1, 1 << 16, f"{what} nndescent.S")
    R = r.int_in("i32", 0, 1 << 20, f"{what} nndescent.R")
    L = r.int_in("i32", 1, 1 << 20, f"{what} nndescent.L")
    niter = r.int_in("i32", 0, 1 << 20, f"{what} nndescent.iter")
    search_L = r.int_in("i32", 0, 1 << 24, f"{what} nndescent.search_L")
    seed = r.i32(f"{what} nndescent.random_seed")
    built_at = r.pos
    built = r.bool(f"{what} nndescent.has_built")
    g_at = r.pos
    graph = r.vector(np.int32, f"{what} nndescent.final_graph")
    if built != (ntotal > 0):
        raise r.fail(f"{what}: has_built={built} with ntotal={ntotal}: voisin opens built "
                     "graphs and empty indexes only", built_at)
    if graph.size != (ntotal * K if built else 0):
        raise r.fail(f"{what} nndescent.final_graph: expected {ntotal} x K={K} ids, "
                     f"found {graph.size}", g_at)
    if graph.size and (graph.min() < 0 or graph.max() >= ntotal):
        raise r.fail(f"{what} nndescent.final_graph: ids must lie in [0, {ntotal})", g_at)
    rows, metric_arg = _read_storage(r, ctx, what, h, at)
    index = IndexNNDescentFlat(h.d, K, h.metric_type)
    index.metric_arg = metric_arg
    nnd = index.nndescent
    nnd.S, nnd.R, nnd.L, nnd.iter, nnd.search_L, nnd.random_seed = S, R, L, niter, search_L, seed
    index.load_state(rows, graph.reshape(ntotal, K).astype(np.int32, copy=False))
    return index


def _write_nsg_graph(w, index, tag: bytes) -> None:
    """Everything of an NSG file up to its storage (the same for INSf, INSp, INSs)."""
    nsg = index.nsg
    g = index.graph()
    built = index.ntotal > 0
    w.tag(tag)
    write_header(w, index)
    w.i32(index.GK)
    w.u8(index.build_type)
    R = g.shape[1] if built else nsg.R  # as the graph was built
    for v in (index.nndescent_S, index.nndescent_R, index.nndescent_L, index.nndescent_iter,
              index.ntotal, R, nsg.L, nsg.C, nsg.search_L,
              # an empty graph keeps the enterpoint it was read with (faiss leaves
              # whatever its memory held there), so files round-trip byte for byte
              index.navigation_node() if built else nsg.enterpoint):
        w.i32(v)
    w.bool(built)
    if built:
        # each row: its ids (the valid ones come first), then the -1 terminator
        ext = np.full((g.shape[0], g.shape[1] + 1), -1, dtype=np.int32)
        ext[:, :-1] = g
        keep = ext >= 0
        keep[np.arange(g.shape[0]), (g >= 0).sum(1)] = True
        w.array(np.ascontiguousarray(ext[keep]), np.int32)


@register_writer(IndexNSGFlat)
def write_nsg_flat(w, index: IndexNSGFlat) -> None:
    _write_nsg_graph(w, index, b"INSf")
    _write_storage(w, index)


@register_writer(IndexNSGPQ, IndexNSGSQ)
def write_nsg_codes(w, index) -> None:
    _write_nsg_graph(w, index, b"INSp" if isinstance(index, IndexNSGPQ) else b"INSs")
    write_object(w, index.storage)


class _NSGBody(NamedTuple):
    h: Any
    GK: int
    build_type: int
    nndescent: tuple
    R: int
    L: int
    C: int
    search_L: int
    ep: int
    graph: np.ndarray


def _read_nsg_graph(r, what: str, extra_metrics: bool) -> _NSGBody:
    h = read_header(r, what, extra_metrics=extra_metrics)
    GK = r.int_in("i32", 1, 1 << 16, f"{what} GK")
    build_type = r.int_in("u8", 0, 1, f"{what} build_type")
    S = r.int_in("i32", 1, 1 << 16, f"{what} nndescent_S")
    NR = r.int_in("i32", 0, 1 << 20, f"{what} nndescent_R")
    NL = r.int_in("i32", 1, 1 << 20, f"{what} nndescent_L")
    niter = r.int_in("i32", 0, 1 << 20, f"{what} nndescent_iter")
    n_at = r.pos
    ntotal = r.int_in("i32", 0, _I32_MAX, f"{what} nsg.ntotal")
    if ntotal != h.ntotal:
        raise r.fail(f"{what}: nsg.ntotal {ntotal} differs from the header's {h.ntotal}", n_at)
    R = r.int_in("i32", 1, 1 << 16, f"{what} nsg.R")
    L = r.int_in("i32", 1, 1 << 24, f"{what} nsg.L")
    C = r.int_in("i32", 1, 1 << 24, f"{what} nsg.C")
    search_L = r.int_in("i32", 0, 1 << 24, f"{what} nsg.search_L")
    ep_at = r.pos
    ep = r.i32(f"{what} nsg.enterpoint")
    built_at = r.pos
    built = r.bool(f"{what} nsg.is_built")
    if built != (ntotal > 0):
        raise r.fail(f"{what}: is_built={built} with ntotal={ntotal}: voisin opens built "
                     "graphs and empty indexes only", built_at)
    graph = np.empty((0, R), dtype=np.int32)
    if built:
        if not 0 <= ep < ntotal:
            raise r.fail(f"{what} nsg.enterpoint: {ep} outside [0, {ntotal})", ep_at)
        g_at = r.pos
        window = min(r.remaining // 4, ntotal * (R + 1))
        flat = np.frombuffer(r.buf, dtype="<i4", count=window, offset=r.pos)
        ends = np.flatnonzero(flat == -1)[:ntotal]
        if ends.size < ntotal:
            raise r.fail(f"{what} nsg graph: {ntotal} rows ending in -1 expected, found "
                         f"{ends.size}", g_at)
        ints = r.array(np.int32, int(ends[-1]) + 1, f"{what} nsg graph")
        starts = np.concatenate([[0], ends[:-1] + 1])
        lens = ends - starts
        if lens.max() > R:
            raise r.fail(f"{what} nsg graph: a row holds more than R={R} neighbours", g_at)
        ids = np.delete(ints, ends)
        if ids.size and (ids.min() < 0 or ids.max() >= ntotal):
            raise r.fail(f"{what} nsg graph: ids must lie in [0, {ntotal})", g_at)
        graph = np.full((ntotal, R), -1, dtype=np.int32)
        rows_of = np.repeat(np.arange(ntotal), lens)
        cols = np.arange(ids.size) - np.repeat(np.cumsum(lens) - lens, lens)
        graph[rows_of, cols] = ids
    return _NSGBody(h, GK, build_type, (S, NR, NL, niter), R, L, C, search_L, ep, graph)


def _set_knobs(index, b: _NSGBody) -> None:
    index.GK, index.build_type = b.GK, b.build_type
    (index.nndescent_S, index.nndescent_R, index.nndescent_L,
     index.nndescent_iter) = b.nndescent
    index.nsg.L, index.nsg.C, index.nsg.search_L = b.L, b.C, b.search_L
    object.__setattr__(index.nsg, "enterpoint", b.ep)


@register_reader(b"INSf")
def read_nsg_flat(r, ctx, tag: bytes) -> IndexNSGFlat:
    what = "IndexNSGFlat"
    at = r.pos
    b = _read_nsg_graph(r, what, True)
    rows, metric_arg = _read_storage(r, ctx, what, b.h, at)
    index = IndexNSGFlat(b.h.d, b.R, b.h.metric_type)
    index.metric_arg = metric_arg
    _set_knobs(index, b)
    index.load_state(rows, b.graph, b.ep)
    return index


@register_reader(b"INSp", b"INSs")
def read_nsg_codes(r, ctx, tag: bytes):
    pq = tag == b"INSp"
    what = "IndexNSGPQ" if pq else "IndexNSGSQ"
    b = _read_nsg_graph(r, what, False)
    h = b.h
    st_at = r.pos
    storage = ctx.read_nested(r, f"{what} storage")
    kind = IndexPQ if pq else IndexScalarQuantizer
    if type(storage) is not kind or (storage.d, storage.ntotal, storage.metric_type) \
            != (h.d, h.ntotal, h.metric_type):
        raise r.fail(f"{what}: the storage must be an {kind.__name__} with the same d, ntotal "
                     f"and metric as the graph, found {storage!r}", st_at)
    if pq:
        if h.metric_type != METRIC_L2:
            raise r.fail(f"{what}: FAISS's IndexNSGPQ is L2 only, the file says metric "
                         f"{h.metric_type}", st_at)
        index = IndexNSGPQ(h.d, storage.pq.M, b.R, storage.pq.nbits)
    else:
        index = IndexNSGSQ(h.d, storage.sq.qtype, b.R, h.metric_type)
    index.set_storage(storage)
    index.is_trained = bool(h.is_trained) and bool(storage.is_trained)
    _set_knobs(index, b)
    index.load_state(storage.codes, b.graph, b.ep)
    return index
