"""The ``voisin bench`` command (registered by voisin.cli with ``cli.add_command(bench)``)."""

from __future__ import annotations

import sys

import click

from .. import datasets as dsets
from .spec import LIBRARIES

EPILOG = """\b
Index specs: LIB:DESCRIPTION [key=value ...], LIB one of voisin, faiss, hnswlib,
pynndescent, usearch, scann, ngt, voyager. Examples:
  --index voisin:Flat --index faiss:Flat
  --index "faiss:HNSW32 efConstruction=200" --index "voisin:HNSW32 efConstruction=200"
  --index "faiss:IVF1024,Flat" --index "hnswlib:M=16 efConstruction=200"
  --index "pynndescent:n_neighbors=30" --index "usearch:connectivity=16 expansion_add=200"
  --index "scann:num_leaves=2000 leaves_to_search+reorder=10:100,40:200" (pairs, swept as given)
  --index "ngt:ONNG outdegree=10 indegree=120" --index "voyager:M=16 ef_construction=500"
Presets (ann-benchmarks' grids on angular sets; NAME/GROUP runs one build group):
  --preset scann-glove --preset ngt-qg-glove --preset ngt-onng-glove --preset voyager-glove/M-16
A comma list in a spec (efSearch=16,32,64) or a --sweep option sets the query-time
sweep; defaults: HNSW efSearch, IVF nprobe, hnswlib ef, pynndescent epsilon,
usearch expansion_search, Flat nothing.
"""


@click.command("bench", epilog=EPILOG)
@click.option("--dataset", "-d", required=True,
              help="ann-benchmarks name (looked up in $VOISIN_DATA, ~/.cache/voisin, ../shared/datasets) "
                   "or path to an .hdf5 file")
@click.option("--index", "-i", "indexes", multiple=True, metavar="SPEC",
              help="index spec LIB:DESCRIPTION [key=value ...]; repeat for several")
@click.option("--preset", "-p", "presets", multiple=True, metavar="NAME[/GROUP]",
              help="a named grid of index specs (ann-benchmarks' settings), e.g. scann-glove; repeat for several")
@click.option("--mode", "-m", "modes", multiple=True, type=click.Choice(["single", "batch"]),
              help="single: one query per call on 1 thread; batch: all queries in one call on all cores "
                   "(default: both)")
@click.option("--sweep", "-s", "sweeps", multiple=True, metavar="KNOB=V1,V2,...",
              help="query-time sweep applied to every spec that has this knob, e.g. efSearch=16,32,64")
@click.option("--queries", "-q", type=click.IntRange(min=1), default=None,
              help="use a seeded random subset of this many test queries (default: all)")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the query subset")
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True, help="neighbours per query")
@click.option("--repeat", "-r", type=click.IntRange(min=1), default=3, show_default=True,
              help="timed rounds per sweep point (median and spread are reported)")
@click.option("--min-time", type=click.FloatRange(min=0), default=0.2, show_default=True,
              help="seconds per measurement: small query sets repeat whole passes until this is reached")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="threads for builds and batch mode (default: all available cores)")
@click.option("--cold-compile", is_flag=True,
              help="also measure numba compilation from an empty cache, in a subprocess")
@click.option("--out", "-o", type=click.Path(dir_okay=False), default=None,
              help="result JSON path (default: benchmarks/results/<dataset>-<modes>-<timestamp>.json)")
@click.option("--out-dir", type=click.Path(file_okay=False), default="benchmarks/results", show_default=True)
@click.option("--no-plot", is_flag=True, help="do not write the recall/QPS PNG")
@click.option("--quiet", is_flag=True, help="no progress bars")
def bench(dataset, indexes, presets, modes, sweeps, queries, seed, k, repeat, min_time, threads, cold_compile, out,
          out_dir, no_plot, quiet):
    """Measure recall@k (with ties) and QPS of voisin and its peers on a dataset.

    Writes a JSON result (machine, dataset, build time, JIT time, memory,
    every sweep point, Pareto frontier, QPS at recall 0.90/0.95 and
    voisin/peer ratios) and a recall/QPS plot, and prints tables.
    """
    from rich.console import Console

    from .presets import preset_specs
    from .report import print_tables
    from .runner import run

    specs: list = list(indexes)
    try:
        for name in presets:
            specs += preset_specs(name)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if not specs:
        raise click.UsageError("give at least one --index SPEC or --preset NAME")

    # Piped output (logs, CI) defaults to 80 columns, too narrow for the tables.
    console = Console(width=None if sys.stdout.isatty() else 150)
    try:
        ds = dsets.load(dataset)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    console.print(f"dataset {ds.name}: {ds.train.shape[0]} x {ds.d} ({ds.metric}), "
                  f"{ds.test.shape[0]} test queries")
    try:
        result = run(ds, specs, modes=list(modes) or ["single", "batch"], k=k, queries=queries,
                     repeat=repeat, min_time=min_time, sweep=list(sweeps), seed=seed, batch_threads=threads,
                     cold_compile=cold_compile, out=out, out_dir=out_dir, plot=not no_plot,
                     progress=not quiet, console=console, log=console.print,
                     command=list(sys.argv))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    print_tables(result, console)
    if not result["indexes"]:
        raise click.ClickException("no index could be benchmarked (see the messages above); "
                                   f"libraries: {', '.join(LIBRARIES)}")
