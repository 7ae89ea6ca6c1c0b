"""Measure HNSW search levers on voisin's own graph, side by side with voisin, hnswlib and faiss.

    flock /tmp/voisin-bench.lock python benchmarks/experiments/hnsw_levers/run_levers.py \
        --dataset glove-50-angular --set levers --rounds 3 --out /tmp/hnsw_levers/glove-levers.json

Needs the indexes built by build.py in /tmp/hnsw_levers/. Every variant
searches the SAME voisin graph (IndexHNSWFlat M=16, efConstruction 200); the
variants differ only in memory layout, node numbering, visited set,
prefetching and (SQ8) the traversal distance. For exact levers the returned
ids are checked equal to the reference prototype's (after mapping reordered
ids back); the fraction of identical result rows is recorded for every
variant.

Timing: single-query, one thread. ``kernel`` QPS runs the 1,000 queries in
one numba call (no per-query Python); ``python`` QPS calls once per query, as
ann-benchmarks and `voisin bench --mode single` do, and is what the peers
(voisin's index.search, hnswlib knn_query, faiss search) are measured with.
Rounds are interleaved (round -> variant -> ef), medians and min/max reported.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import kernels as P  # noqa: E402
from build import index_path  # noqa: E402

SWEEPS = {
    "glove-50-angular": [32, 48, 64, 96, 128, 192],
    "fashion-mnist-784-euclidean": [10, 12, 16, 20, 24, 32, 48],
}
K = 10
NQ = 1000
SEED = 0
ALIGN = 64


# --- data structures for the variants ------------------------------------------------

def aligned_empty(shape, dtype, align=ALIGN) -> np.ndarray:
    """A C array whose first byte is ``align``-aligned (rows then too, when row bytes are)."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(nbytes + align, dtype=np.uint8)
    off = (-raw.ctypes.data) % align
    return raw[off:off + nbytes].view(dtype).reshape(shape)


def round_up(x: int, m: int) -> int:
    return (x + m - 1) // m * m


def colocate(nb0: np.ndarray, V: np.ndarray, align_rows: bool):
    """One row per node: [2M int32 links | vector | padding] -> (Gi int32 view, Gv view, voff).

    ``voff`` counts elements of V's dtype from the row start to the vector.
    """
    n, width = nb0.shape
    link_bytes = width * 4
    row_bytes = link_bytes + V.shape[1] * V.itemsize
    if align_rows:
        row_bytes = round_up(row_bytes, ALIGN)
    else:
        row_bytes = round_up(row_bytes, 4)
    buf = aligned_empty((n, row_bytes), np.uint8)
    buf[:] = 0
    Gi = buf.view(np.int32)
    Gi[:, :width] = nb0
    Gv = buf.view(V.dtype)
    voff = link_bytes // V.itemsize
    Gv[:, voff:voff + V.shape[1]] = V
    return Gi, Gv, voff


def pad_cols(X: np.ndarray, dv: int) -> np.ndarray:
    out = aligned_empty((X.shape[0], dv), X.dtype)
    out[:] = 0
    out[:, :X.shape[1]] = X
    return out


def train_sq8(X: np.ndarray):
    """Per-dimension uniform 8-bit quantizer (voisin's convention: c -> vmin + s (c + .5))."""
    vmin = X.min(0).astype(np.float32)
    vmax = X.max(0).astype(np.float32)
    s = ((vmax - vmin) / 256.0).astype(np.float32)
    safe = np.where(s > 0, s, 1.0).astype(np.float32)
    codes = np.clip(np.floor((X - vmin) / safe), 0, 255).astype(np.uint8)
    codes[:, s == 0] = 0
    sqp = np.stack([vmin, s, s * s]).astype(np.float32)
    return codes, sqp


def reorder(nb0, upper, upper_off, levels, entry, X, how: str):
    """Renumber nodes; returns (nb0', upper', upper_off', entry', X', labels new->old)."""
    n = nb0.shape[0]
    if how == "bfs":
        perm = P.bfs_order(nb0, entry, False)
    elif how == "rcm":
        # Cuthill-McKee from a minimum-degree node, reversed
        deg = (nb0 >= 0).sum(1)
        perm = P.bfs_order(nb0, int(np.argmin(deg)), True)[::-1].copy()
    elif how == "degree":
        # in-degree descending: hubs (reached by most searches) packed together
        indeg = np.bincount(nb0[nb0 >= 0].ravel(), minlength=n)
        perm = np.argsort(-indeg, kind="stable")
    elif how == "level":
        # upper-level nodes first (every search passes through them), then BFS
        bfs = P.bfs_order(nb0, entry, False)
        perm = bfs[np.argsort(-levels[bfs], kind="stable")]
    else:
        raise ValueError(how)
    perm = np.ascontiguousarray(perm, dtype=np.int64)
    assert np.array_equal(np.sort(perm), np.arange(n))
    inv = np.empty(n, dtype=np.int64)
    inv[perm] = np.arange(n)
    nb0n = P.remap_links(nb0[perm], inv)
    uppern = P.remap_links(upper, inv)
    offn = np.ascontiguousarray(upper_off[perm])
    return (np.ascontiguousarray(nb0n), uppern, offn, int(inv[entry]),
            np.ascontiguousarray(X[perm]), perm)


class Variant:
    """One configuration of the lever kernel, with its scratch."""

    def __init__(self, name, *, L, V, voff, dv, upper, upper_off, entry, max_level, metric,
                 vmode=0, vdtype=np.uint32, sq=False, sqp=None, Xf=None, labels=None,
                 pf_lines=4, pf_visited=False, pf_next=False, exact=True, note=""):
        n = L.shape[0]
        d = dv
        self.name, self.exact, self.note = name, exact, note
        self.width = 32  # 2M, M = 16
        self.sq = sq
        sqp_pad = np.zeros((3, dv), np.float32)
        if sqp is not None:
            sqp_pad[:, :sqp.shape[1]] = sqp
        vis = np.zeros(n if vmode == 0 else 1, dtype=vdtype)
        emax = int(np.iinfo(vdtype).max) if vmode == 0 else 0
        bits = np.zeros((n + 63) // 64 if vmode == 1 else 1, dtype=np.uint64)
        tsize = 1 << 16
        table = np.full(tsize if vmode == 2 else 1, -1, dtype=np.int32)
        vlist = np.zeros(max(bits.size, table.size), dtype=np.int64)
        self.labels = labels
        self.args = (L, self.width, V, voff, dv, upper, upper_off, entry, max_level, metric,
                     sq, sqp_pad, Xf if Xf is not None else np.zeros((1, 1), np.float32),
                     vmode, vis, np.zeros(1, np.int64), emax, bits, table, vlist,
                     np.empty(n + 1, np.float32), np.empty(n + 1, np.int32),
                     np.empty(1024, np.float32), np.empty(1024, np.int32),
                     np.empty(self.width, np.int32), np.empty(d, np.float32),
                     labels if labels is not None else np.zeros(1, np.int64), labels is not None,
                     pf_lines, pf_visited, pf_next)
        self.config = {"layout": "", "vmode": ["epoch", "bitset", "hash"][vmode],
                       "visited_dtype": np.dtype(vdtype).name if vmode == 0 else None,
                       "dv": dv, "voff": voff, "sq8": sq, "pf_lines": pf_lines,
                       "pf_visited": pf_visited, "pf_next": pf_next,
                       "reordered": labels is not None}

    def kernel(self, xq, ef):
        ef = max(ef, K)  # voisin's rule: the result list holds at least k
        nq = xq.shape[0]
        D = np.empty((nq, K), np.float32)
        I = np.empty((nq, K), np.int64)
        P.lever_search_serial(xq, K, ef, *self.args, D, I)
        return I

    def python(self, xq, ef):
        ef = max(ef, K)
        nq = xq.shape[0]
        I = np.empty((nq, K), np.int64)
        D = np.empty((nq, K), np.float32)
        fn = P.lever_search_one
        args = self.args
        for i in range(nq):
            fn(xq[i], K, ef, *args, D[i], I[i])
        return I


class InterleavedVariant:
    """hnswlib's one-pass neighbour loop (kernels_interleaved.py) on the split layout,
    float vectors or (``sq``) SQ8 codes + exact re-rank."""

    def __init__(self, name, index, pf_lines, sq=False):
        nb0, upper, upper_off, levels, state = index.hnsw._g
        X = index._X
        n, d = X.shape
        self.name, self.exact, self.note, self.labels = name, not sq, "", None
        self.config = {"layout": "split", "loop": "one pass, prefetch neighbour j+1 (hnswlib)",
                       "pf_lines": pf_lines, "vmode": "epoch", "visited_dtype": "uint32",
                       "sq8": sq}
        if sq:
            codes, sqp = train_sq8(X)
            V = pad_cols(codes, round_up(d, 32))
            dv = V.shape[1]
            sqp_pad = np.zeros((3, dv), np.float32)
            sqp_pad[:, :d] = sqp
        else:
            V, dv, sqp_pad = X, d, np.zeros((3, d), np.float32)
        self.a = (nb0, 32, V, dv, upper, upper_off, int(state[0]), int(state[1]),
                  index.metric_type, sq, sqp_pad, X, np.zeros(n, np.uint32), np.zeros(1, np.int64),
                  np.empty(n + 1, np.float32), np.empty(n + 1, np.int32),
                  np.empty(1024, np.float32), np.empty(1024, np.int32), np.empty(dv, np.float32),
                  pf_lines)

    def kernel(self, xq, ef):
        import kernels_interleaved as KI
        D = np.empty((xq.shape[0], K), np.float32)
        I = np.empty((xq.shape[0], K), np.int64)
        KI.interleaved_search_serial(xq, K, max(ef, K), *self.a, D, I)
        return I

    def python(self, xq, ef):
        import kernels_interleaved as KI
        D = np.empty((xq.shape[0], K), np.float32)
        I = np.empty((xq.shape[0], K), np.int64)
        fn, a, ef = KI.interleaved_search_serial, self.a, max(ef, K)
        for i in range(xq.shape[0]):
            fn(xq[i:i + 1], K, ef, *a, D[i:i + 1], I[i:i + 1])
        return I


# --- peers ---------------------------------------------------------------------------

class VoisinSearch:
    name = "voisin index.search"

    def __init__(self, index):
        self.index = index

    def python(self, xq, ef):
        self.index.hnsw.efSearch = int(ef)
        I = np.empty((xq.shape[0], K), np.int64)
        s = self.index.search
        for i in range(xq.shape[0]):
            I[i] = s(xq[i:i + 1], K)[1][0]
        return I


class CopyKernel:
    """The verbatim copy of voisin's search_serial, one call per query (as index.search does)."""
    name = "copy of voisin kernel"

    def __init__(self, index):
        nb0, upper, upper_off, levels, state = index.hnsw._g
        n = levels.size
        self.index = index
        self.a = (index._X, nb0, upper, upper_off, int(state[0]), int(state[1]), index.metric_type,
                  False, index._sqp, np.zeros(n, np.uint32), np.zeros(1, np.int64),
                  np.empty(n + 1, np.float32), np.empty(n + 1, np.int32))
        self.tail = (np.zeros(1, np.bool_), False, np.zeros(1, np.int64), False, index._tune)

    def _call(self, xq, ef):
        ef = max(ef, K)
        D = np.empty((xq.shape[0], K), np.float32)
        I = np.empty((xq.shape[0], K), np.int64)
        rd = np.empty(ef + 1, np.float32)
        ri = np.empty(ef + 1, np.int32)
        return D, I, rd, ri

    def python(self, xq, ef):
        D, I, rd, ri = self._call(xq, ef)
        ef = max(ef, K)
        fn = P.copy_search_serial
        a, tail = self.a, self.tail
        for i in range(xq.shape[0]):
            fn(xq[i:i + 1], K, ef, *a, rd, ri, *tail, D[i:i + 1], I[i:i + 1])
        return I

    def kernel(self, xq, ef):
        D, I, rd, ri = self._call(xq, ef)
        P.copy_search_serial(xq, K, max(ef, K), *self.a, rd, ri, *self.tail, D, I)
        return I


class Hnswlib:
    name = "hnswlib M=16 efC=200"

    def __init__(self, path, space, d, n):
        import hnswlib
        self.index = hnswlib.Index(space=space, dim=d)
        self.index.load_index(str(path), max_elements=n)
        self.index.set_num_threads(1)

    def python(self, xq, ef):
        self.index.set_ef(int(ef))
        I = np.empty((xq.shape[0], K), np.int64)
        q = self.index.knn_query
        for i in range(xq.shape[0]):
            I[i] = q(xq[i], k=K, num_threads=1)[0][0]
        return I

    def batch(self, xq, ef, threads):
        self.index.set_ef(int(ef))
        return self.index.knn_query(xq, k=K, num_threads=threads)[0].astype(np.int64)


class Faiss:
    name = "faiss HNSW32 efC=200"

    def __init__(self, path):
        import faiss
        self.faiss = faiss
        self.index = faiss.read_index(str(path))

    def python(self, xq, ef):
        self.faiss.omp_set_num_threads(1)
        self.index.hnsw.efSearch = int(ef)
        I = np.empty((xq.shape[0], K), np.int64)
        s = self.index.search
        for i in range(xq.shape[0]):
            I[i] = s(xq[i:i + 1], K)[1][0]
        return I

    def batch(self, xq, ef, threads):
        self.faiss.omp_set_num_threads(threads)
        self.index.hnsw.efSearch = int(ef)
        return self.index.search(xq, K)[1]


class Pynndescent:
    """pynndescent NNDescent(n_neighbors=30), built in the run (as `voisin bench` does); its
    query knob is epsilon, swept alongside the ef sweep (``eps_for_ef``)."""
    name = "pynndescent n_neighbors=30"
    EPS = [0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4]

    def __init__(self, xb, metric, efs, say):
        from pynndescent import NNDescent
        import voisin
        t0 = time.perf_counter()
        voisin.omp_set_num_threads(2)
        self.index = NNDescent(xb, metric="dot" if metric == voisin.METRIC_INNER_PRODUCT
                               else "euclidean", n_neighbors=30, random_state=0,
                               parallel_batch_queries=True)
        self.index.prepare()
        voisin.omp_set_num_threads(1)
        self.build_s = time.perf_counter() - t0
        say(f"pynndescent built in {self.build_s:.1f} s (2 threads, JIT included)")
        self.eps_for_ef = {ef: self.EPS[min(i, len(self.EPS) - 1)] for i, ef in enumerate(efs)}

    def python(self, xq, ef):
        eps = self.eps_for_ef[ef]
        I = np.empty((xq.shape[0], K), np.int64)
        q = self.index.query
        for i in range(xq.shape[0]):
            I[i] = q(xq[i:i + 1], k=K, epsilon=eps)[0][0]
        return I


# --- driver --------------------------------------------------------------------------

def build_variants(index, which: str, say):
    nb0, upper, upper_off, levels, state = index.hnsw._g
    X = index._X
    n, d = X.shape
    metric = index.metric_type
    entry, max_level = int(state[0]), int(state[1])
    dpad = round_up(d, 32)
    common = dict(upper=upper, upper_off=upper_off, entry=entry, max_level=max_level, metric=metric)
    V = {}

    def add(v, layout):
        v.config["layout"] = layout
        V[v.name] = v

    add(Variant("ref (split, uint32 epoch, pf 4 lines)", L=nb0, V=X, voff=0, dv=d, **common),
        "split")
    if which in ("levers", "all"):
        t0 = time.perf_counter()
        Gi, Gv, voff = colocate(nb0, X, align_rows=True)
        add(Variant("co-located, rows 64B-aligned", L=Gi, V=Gv, voff=voff, dv=d, **common),
            f"co-located {Gi.shape[1] * 4} B/row")
        Gi2, Gv2, voff2 = colocate(nb0, X, align_rows=False)
        add(Variant("co-located, packed rows", L=Gi2, V=Gv2, voff=voff2, dv=d, **common),
            f"co-located packed {Gi2.shape[1] * 4} B/row")
        if dpad != d:
            Xp = pad_cols(X, dpad)
            add(Variant(f"split, vectors padded to {dpad}", L=nb0, V=Xp, voff=0, dv=dpad,
                        exact=False, note="float sums reassociate: ids may differ on near-ties",
                        **common), "split padded")
        say(f"layouts built in {time.perf_counter() - t0:.1f} s")
        for pf in (0, 1, 2, 8):
            add(Variant(f"split, pf {pf} lines", L=nb0, V=X, voff=0, dv=d, pf_lines=pf, **common),
                "split")
        add(Variant("split, pf + visited prefetch", L=nb0, V=X, voff=0, dv=d, pf_visited=True,
                    **common), "split")
        add(Variant("split, pf + next-candidate links prefetch", L=nb0, V=X, voff=0, dv=d,
                    pf_next=True, **common), "split")
        for dt in (np.uint16, np.uint8):
            add(Variant(f"split, {np.dtype(dt).name} epoch", L=nb0, V=X, voff=0, dv=d, vdtype=dt,
                        **common), "split")
        add(Variant("split, bitset visited", L=nb0, V=X, voff=0, dv=d, vmode=1, **common), "split")
        add(Variant("split, hash-set visited", L=nb0, V=X, voff=0, dv=d, vmode=2, **common),
            "split")
        for how in ("bfs", "rcm", "degree", "level"):
            t0 = time.perf_counter()
            nb0r, upr, offr, entr, Xr, perm = reorder(nb0, upper, upper_off, levels, entry, X, how)
            say(f"reorder {how}: {time.perf_counter() - t0:.1f} s")
            add(Variant(f"split, reordered {how}", L=nb0r, V=Xr, voff=0, dv=d, upper=upr,
                        upper_off=offr, entry=entr, max_level=max_level, metric=metric,
                        labels=perm), f"split, {how} order")
        codes, sqp = train_sq8(X)
        codes_p = pad_cols(codes, round_up(d, 32))
        add(Variant("SQ8 traversal + exact re-rank (split)", L=nb0, V=codes_p, voff=0,
                    dv=codes_p.shape[1], sq=True, sqp=sqp, Xf=X, exact=False, **common),
            "split, SQ8 codes")
        Gi3, Gv3, voff3 = colocate(nb0, codes_p, align_rows=True)
        add(Variant("SQ8 traversal + exact re-rank (co-located)", L=Gi3, V=Gv3, voff=voff3,
                    dv=codes_p.shape[1], sq=True, sqp=sqp, Xf=X, exact=False, **common),
            f"co-located SQ8 {Gi3.shape[1] * 4} B/row")
    return V


def build_combo(index, spec: dict, say):
    """The combination chosen from the lever runs (spec: layout/reorder/vdtype/pf/pad/sq)."""
    nb0, upper, upper_off, levels, state = index.hnsw._g
    X = index._X
    n, d = X.shape
    metric = index.metric_type
    entry, max_level = int(state[0]), int(state[1])
    labels = None
    if spec.get("reorder"):
        nb0, upper, upper_off, entry, X, labels = reorder(nb0, upper, upper_off, levels, entry, X,
                                                           spec["reorder"])
    dv = round_up(d, 32) if spec.get("pad") else d
    Vs = pad_cols(X, dv) if dv != d else X
    sqp = None
    if spec.get("sq"):
        codes, sqp = train_sq8(X)
        Vs = pad_cols(codes, round_up(d, 32))
        dv = Vs.shape[1]
    if spec.get("colocate"):
        L, Vv, voff = colocate(nb0, Vs, align_rows=True)
    else:
        L, Vv, voff = nb0, Vs, 0
    return Variant(spec["name"], L=L, V=Vv, voff=voff, dv=dv, upper=upper, upper_off=upper_off,
                   entry=entry, max_level=max_level, metric=metric,
                   vdtype=np.dtype(spec.get("vdtype", "uint32")).type, sq=bool(spec.get("sq")),
                   sqp=sqp, Xf=X, labels=labels, pf_lines=spec.get("pf_lines", 4),
                   pf_visited=spec.get("pf_visited", False), pf_next=spec.get("pf_next", False),
                   exact=not (spec.get("pad") or spec.get("sq")))


COMBOS = {
    # filled from the lever runs; see docs/hnsw-levers.md
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--set", choices=["levers", "combo", "smoke", "interleave", "final"], default="levers")
    ap.add_argument("--combo", action="append", default=[],
                    help="JSON spec of a combination (name, colocate, reorder, vdtype, pf_lines, "
                         "pf_visited, pf_next, pad, sq); repeatable")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ef", type=str, default=None, help="comma-separated efSearch sweep")
    ap.add_argument("--python-all", action="store_true",
                    help="also time every variant with one Python call per query")
    ap.add_argument("--peers", default="voisin,copy,hnswlib,faiss,pynndescent")
    ap.add_argument("--batch", action="store_true", help="also time batch mode (2 threads)")
    ap.add_argument("--hnswlib-graph", action="store_true",
                    help="also run the reference kernel (float and SQ8) on hnswlib's own graph")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    import voisin
    from voisin.bench import frontier, machine
    from voisin.evaluate import recall_at_k

    def say(msg):
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    t_start = time.perf_counter()
    voisin.omp_set_num_threads(1)
    ds = voisin.datasets.load(args.dataset).subset(NQ, seed=SEED)
    xb, xq, metric = ds.search_arrays()
    xq = np.ascontiguousarray(xq, dtype=np.float32)
    index = voisin.read_index(str(index_path(args.dataset, "voisin")))
    say(f"loaded {args.dataset}: n={index.ntotal}, d={index.d}")
    efs = [int(e) for e in args.ef.split(",")] if args.ef else SWEEPS[args.dataset]
    if args.set == "smoke":
        efs = efs[:2]

    # numba: first call per specialisation (load from the on-disk cache, or compile)
    t0 = time.perf_counter()
    variants = build_variants(index, "levers" if args.set in ("levers", "smoke") else "ref", say)
    if args.set == "interleave":
        for pf in (1, 4):
            v = InterleavedVariant(f"one-pass loop, prefetch j+1 ({pf} lines)", index, pf)
            variants[v.name] = v
    if args.set == "final":
        for v in (InterleavedVariant("combo D: one-pass loop (float, exact)", index, 4),
                  InterleavedVariant("combo E: one-pass loop + SQ8 traversal + re-rank", index, 4,
                                     sq=True)):
            v.config["combo"] = v.name
            variants[v.name] = v
    for spec in args.combo:
        spec = json.loads(spec)
        variants[spec["name"]] = build_combo(index, spec, say)
        variants[spec["name"]].config.update({"combo": spec})
    if args.hnswlib_graph:
        from hnswlib_graph import read_hnswlib
        t1 = time.perf_counter()
        g = read_hnswlib(str(index_path(args.dataset, "hnswlib")), index.d)
        say(f"hnswlib graph read in {time.perf_counter() - t1:.1f} s")
        d = index.d
        hg = dict(L=g["nb0"], voff=0, upper=g["upper"], upper_off=g["upper_off"], entry=g["entry"],
                  max_level=g["max_level"], metric=metric, labels=g["labels"], exact=False,
                  note="hnswlib's graph (its file), voisin's search algorithm and kernel")
        v = Variant("ref kernel on hnswlib's graph", V=g["X"], dv=d, **hg)
        v.config["layout"] = "split, hnswlib's graph"
        variants[v.name] = v
        codes, sqp = train_sq8(g["X"])
        codes_p = pad_cols(codes, round_up(d, 32))
        v = Variant("SQ8 + re-rank on hnswlib's graph", V=codes_p, dv=codes_p.shape[1], sq=True,
                    sqp=sqp, Xf=g["X"], **hg)
        v.config["layout"] = "split SQ8, hnswlib's graph"
        variants[v.name] = v
    say(f"{len(variants)} variants built in {time.perf_counter() - t0:.1f} s")
    first_call = {}
    for name, v in variants.items():
        t0 = time.perf_counter()
        v.kernel(xq[:2], efs[0])
        v.python(xq[:2], efs[0])
        first_call[name] = time.perf_counter() - t0

    peers = {}
    wanted = args.peers.split(",") if args.peers else []
    if "voisin" in wanted:
        peers["voisin index.search"] = VoisinSearch(index)
    if "copy" in wanted:
        peers["copy of voisin kernel"] = CopyKernel(index)
    if "hnswlib" in wanted:
        peers["hnswlib M=16 efC=200"] = Hnswlib(index_path(args.dataset, "hnswlib"),
                                                "ip" if metric == voisin.METRIC_INNER_PRODUCT
                                                else "l2", index.d, index.ntotal)
    if "faiss" in wanted:
        peers["faiss HNSW32 efC=200"] = Faiss(index_path(args.dataset, "faiss"))
    if "pynndescent" in wanted:
        peers["pynndescent n_neighbors=30"] = Pynndescent(xb, metric, efs, say)
    for p in peers.values():
        p.python(xq[:2], efs[0])
        if hasattr(p, "kernel"):
            p.kernel(xq[:2], efs[0])

    # correctness: ids per (variant, ef), against the reference prototype
    def recall(I):
        return float(recall_at_k(I, ds.distances[:, :K], K, xq=ds.test, xb=ds.train,
                                 metric=ds.metric))

    def to_ids(v, I):
        if getattr(v, "labels", None) is not None:
            return np.where(I >= 0, I, -1)  # the kernel maps labels itself
        return I

    ref_name = "ref (split, uint32 epoch, pf 4 lines)"
    quality = {}
    ref_ids = {}
    for ef in efs:
        ref_ids[ef] = variants[ref_name].kernel(xq, ef)
    copy_check = {}
    if "copy of voisin kernel" in peers:
        for ef in efs:
            Ic = peers["copy of voisin kernel"].kernel(xq, ef)
            Iv = peers["voisin index.search"].python(xq, ef) if "voisin index.search" in peers else Ic
            Ip = peers["copy of voisin kernel"].python(xq, ef)
            copy_check[ef] = {"copy_kernel_vs_voisin_search_identical_rows": float((Ic == Iv).all(1).mean()),
                              "copy_python_vs_kernel_identical_rows": float((Ic == Ip).all(1).mean()),
                              "ref_vs_copy_identical_rows": float((ref_ids[ef] == Ic).all(1).mean())}
            assert copy_check[ef]["copy_kernel_vs_voisin_search_identical_rows"] == 1.0, copy_check[ef]
            assert copy_check[ef]["ref_vs_copy_identical_rows"] == 1.0, copy_check[ef]
    for name, v in variants.items():
        quality[name] = {}
        for ef in efs:
            I = to_ids(v, v.kernel(xq, ef))
            same = float((I == ref_ids[ef]).all(1).mean())
            if ef == efs[-1]:
                Ip = v.python(xq[:200], ef)
                assert (I[:200] == Ip).all(), f"{name}: python and kernel loops disagree at ef={ef}"
            if v.exact:
                assert same == 1.0, f"{name}: exact lever changed the results at ef={ef} ({same})"
            quality[name][ef] = {"recall": recall(I), "identical_rows_vs_ref": same}
    for name, p in peers.items():
        if name == "copy of voisin kernel":
            quality[name] = {ef: dict(quality[ref_name][ef]) for ef in efs}
            continue
        quality[name] = {ef: {"recall": recall(p.python(xq, ef))} for ef in efs}
    say(f"correctness checked ({time.perf_counter() - t_start:.0f} s so far)")

    # timing rounds
    times = {}  # (name, mode, ef) -> [seconds]
    python_variants = set(variants) if args.python_all else {ref_name} | {
        n for n, v in variants.items() if "combo" in v.config or "hnswlib's graph" in n}
    # interleaved as finely as possible: per ef, every entry back to back, the
    # order rotated each round so no entry always follows the same neighbour
    jobs = [(name, "kernel", v.kernel) for name, v in variants.items()]
    jobs += [(name, "python", v.python) for name, v in variants.items() if name in python_variants]
    for name, p in peers.items():
        jobs.append((name, "python", p.python))
        if hasattr(p, "kernel"):
            jobs.append((name, "kernel", p.kernel))
    for r in range(args.rounds):
        for ef in efs:
            shift = (r * 7 + ef) % len(jobs)
            for name, mode, fn in jobs[shift:] + jobs[:shift]:
                t0 = time.perf_counter()
                fn(xq, ef)
                times.setdefault((name, mode, ef), []).append(time.perf_counter() - t0)
        say(f"round {r + 1}/{args.rounds} done ({time.perf_counter() - t_start:.0f} s)")

    batch = {}
    if args.batch:
        threads = 2
        bnames = [n for n, v in variants.items() if "combo" in v.config] + [ref_name]
        for r in range(args.rounds):
            for name in bnames:
                v = variants[name]
                a = v.args
                (L, width, V_, voff, dv, upper, upper_off, entry, max_level, metric_, sq, sqp, Xf,
                 vmode, vis, _ep, emax) = a[:17]
                labels, use_labels, pfl, pfv, pfn = a[26:31]
                for ef in efs:
                    efk = max(ef, K)
                    D = np.empty((NQ, K), np.float32)
                    I = np.empty((NQ, K), np.int64)
                    voisin.omp_set_num_threads(threads)
                    t0 = time.perf_counter()
                    P.lever_search_parallel(xq, K, efk, L, width, V_, voff, dv, upper, upper_off,
                                            entry, max_level, metric_, sq, sqp, Xf,
                                            np.zeros(1, vis.dtype), emax, labels, use_labels,
                                            pfl, pfv, pfn, threads, D, I)
                    times.setdefault((name, "batch", ef), []).append(time.perf_counter() - t0)
                    voisin.omp_set_num_threads(1)
                    if r == 0:
                        batch.setdefault(name, {})[ef] = recall(I)
            for name, p in list(peers.items()):
                if name == "voisin index.search":
                    for ef in efs:
                        voisin.omp_set_num_threads(threads)
                        index.hnsw.efSearch = ef
                        t0 = time.perf_counter()
                        I = index.search(xq, K)[1]
                        times.setdefault((name, "batch", ef), []).append(time.perf_counter() - t0)
                        voisin.omp_set_num_threads(1)
                        if r == 0:
                            batch.setdefault(name, {})[ef] = recall(I)
                elif hasattr(p, "batch"):
                    for ef in efs:
                        t0 = time.perf_counter()
                        I = p.batch(xq, ef, threads)
                        times.setdefault((name, "batch", ef), []).append(time.perf_counter() - t0)
                        if r == 0:
                            batch.setdefault(name, {})[ef] = recall(I)
            say(f"batch round {r + 1} done")

    # summarise
    out = {"dataset": args.dataset, "n": int(index.ntotal), "d": int(index.d), "queries": NQ,
           "query_seed": SEED, "k": K, "rounds": args.rounds, "efs": efs,
           "machine": machine.describe(), "command": " ".join(sys.argv),
           "graph": "voisin IndexHNSWFlat M=16 efConstruction=200 (2 threads), shared by every variant",
           "interpolation": frontier.INTERPOLATION,
           "first_call_s": first_call, "copy_check": copy_check, "entries": {}}
    if "pynndescent n_neighbors=30" in peers:
        pn = peers["pynndescent n_neighbors=30"]
        out["pynndescent"] = {"epsilon_for_ef": pn.eps_for_ef, "build_s_with_jit_2_threads": pn.build_s}
    bt = Path(index_path(args.dataset, "voisin")).parent / "build_times.json"
    if bt.exists():
        out["build_times"] = {k: v for k, v in json.loads(bt.read_text()).items()
                              if k.startswith(args.dataset)}
    names = list(variants) + list(peers)
    for name in names:
        e = {"config": variants[name].config if name in variants else None,
             "note": variants[name].note if name in variants else "",
             "exact": variants[name].exact if name in variants else None, "modes": {}}
        for mode in ("kernel", "python", "batch"):
            pts = []
            for ef in efs:
                ts = times.get((name, mode, ef))
                if not ts:
                    continue
                rec = (batch[name][ef] if mode == "batch" else quality[name][ef]["recall"])
                qps = [NQ / t for t in ts]
                pts.append({"ef": ef, "recall": rec, "qps_median": float(np.median(qps)),
                            "qps_min": float(min(qps)), "qps_max": float(max(qps)),
                            **({"identical_rows_vs_ref": quality[name][ef].get("identical_rows_vs_ref")}
                               if mode != "batch" and name in quality else {})})
            if not pts:
                continue
            fr = [(p["recall"], p["qps_median"]) for p in pts]
            e["modes"][mode] = {"points": pts,
                                "qps_at_0.90": frontier.qps_at_recall(fr, 0.90)["qps"],
                                "qps_at_0.95": frontier.qps_at_recall(fr, 0.95)["qps"]}
        out["entries"][name] = e
    # ratios (same run): kernel mode vs ref kernel; python mode vs hnswlib / faiss / voisin
    def q(name, mode, t):
        m = out["entries"].get(name, {}).get("modes", {}).get(mode)
        return m and m[f"qps_at_{t}"]
    for name, e in out["entries"].items():
        rat = {}
        for t in ("0.90", "0.95"):
            for mode, base in (("kernel", ref_name), ("python", "hnswlib M=16 efC=200"),
                               ("python", "faiss HNSW32 efC=200"), ("python", "voisin index.search"),
                               ("batch", "hnswlib M=16 efC=200"), ("batch", "faiss HNSW32 efC=200"),
                               ("batch", "voisin index.search")):
                a, b = q(name, mode, t), q(base, mode, t)
                if a and b:
                    rat[f"{mode}_vs_{base}@{t}"] = a / b
        e["ratios"] = rat
    out["total_s"] = time.perf_counter() - t_start
    Path(args.out).write_text(json.dumps(out, indent=1, default=float))
    say(f"wrote {args.out} ({out['total_s']:.0f} s)")
    for name, e in out["entries"].items():
        ks = e["modes"].get("kernel", {})
        ps = e["modes"].get("python", {})
        bs = e["modes"].get("batch", {})
        f = lambda x: f"{x:8.0f}" if x else "       -"  # noqa: E731
        print(f"{name:48s} kernel {f(ks.get('qps_at_0.90'))} {f(ks.get('qps_at_0.95'))}  "
              f"python {f(ps.get('qps_at_0.90'))} {f(ps.get('qps_at_0.95'))}  "
              f"batch {f(bs.get('qps_at_0.90'))} {f(bs.get('qps_at_0.95'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
