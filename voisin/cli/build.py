"""``voisin build``: index a file of vectors and write the index."""

from __future__ import annotations

import time
from pathlib import Path

import click

import voisin.cli as app
from voisin.building import METRICS


@click.command("build")
@click.option("--data", "data", required=True, type=click.Path(dir_okay=False),
              help="Vectors to index: .npy, .fvecs, .bvecs or ann-benchmarks .hdf5 (dataset 'train').")
@click.option("--key", default=None, help="HDF5 dataset to read (default: train).")
@click.option("--index", "description", default="Flat", show_default=True,
              help="FAISS factory string, e.g. 'Flat', 'IDMap,Flat', 'HNSW32', 'IVF1024,Flat'.")
@click.option("--metric", type=click.Choice(METRICS), default="l2", show_default=True,
              help="cosine = normalise the vectors, then inner product.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Index file to write (FAISS format; a .pkl name uses Python pickle).")
@click.option("--train-size", type=click.IntRange(min=1), default=100_000, show_default=True,
              help="At most this many (seeded random) vectors train indexes that need it.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Index only the first N vectors.")
def command(data: str, key: str | None, description: str, metric: str, out: str, train_size: int,
            limit: int | None) -> None:
    """Build an index over a file of vectors and write it to --out."""
    from voisin.building import add_in_chunks, make_index, parse_metric, train_if_needed
    con = app.console()
    t0 = time.perf_counter()
    x = app.load_vectors(data, key)
    if limit is not None:
        x = x[:limit]
    n, d = x.shape
    t_load = time.perf_counter() - t0
    code, normalize = parse_metric(metric)
    try:
        index = make_index(d, description, code)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    con.print(f"[bold]{type(index).__name__}[/] {description!r}, {n:,} vectors of d={d}, "
              f"metric {metric} (read in {t_load:.2f} s)")
    try:
        t_train = train_if_needed(index, x, normalize, train_size)
        if t_train:
            con.print(f"trained in {t_train:.2f} s")
        t_add = add_in_chunks(index, x, normalize, con, chunk=app.ADD_CHUNK)
    except (ValueError, TypeError, RuntimeError, NotImplementedError) as exc:
        raise click.ClickException(f"building {description!r} on {data}: {exc}") from None
    app.save_index(index, out)
    size = Path(out).stat().st_size
    con.print(f"added {index.ntotal:,} vectors in {t_add:.2f} s ({index.ntotal / max(t_add, 1e-9):,.0f}/s); "
              f"wrote {out} ({size / 2**20:.1f} MiB)")
    if normalize:
        con.print("cosine: search this index with [bold]voisin search --normalize[/] so queries are "
                  "normalised too")
