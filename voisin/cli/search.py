"""``voisin search``: the k nearest neighbours of each query in an index file."""

from __future__ import annotations

import time

import click
import numpy as np
from rich.table import Table

import voisin.cli as app


@click.command("search")
@app.index_file_option
@app.queries_options
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True,
              help="Neighbours per query.")
@click.option("--normalize", is_flag=True, help="Unit-normalise the queries (for indexes built with cosine).")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Query-time knob (FAISS's ParameterSpace names), repeatable or comma-separated: "
                   "nprobe=16, efSearch=64, k_factor_rf=4, quantizer_efSearch=32 ...")
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="Save the results as .npz with arrays D (distances) and I (ids).")
@click.option("--show", type=click.IntRange(min=0), default=5, show_default=True,
              help="Print the results of the first N queries.")
@click.option("--mmap", is_flag=True,
              help="Memory-map the index file instead of reading it (FAISS-format files).")
def command(index_path: str, queries: str, key: str | None, k: int, normalize: bool,
            params: tuple[str, ...], out: str | None, show: int, mmap: bool) -> None:
    """Search an index for the k nearest neighbours of each query."""
    from voisin.building import prepare
    con = app.console()
    knobs = app.parse_params(params)
    t0 = time.perf_counter()
    index = app.load_index(index_path, mmap=mmap)
    t_open = time.perf_counter() - t0
    app.set_params(index, knobs)
    xq = prepare(app.load_vectors(queries, key or "test"), normalize)
    if xq.shape[1] != index.d:
        raise click.ClickException(f"--queries {queries}: vectors have d={xq.shape[1]} but the index "
                                   f"holds d={index.d}")
    try:
        # one query first: it pays numba's compilation (or cache load), which
        # would otherwise be counted as search time
        t0 = time.perf_counter()
        index.search(xq[:1], k)
        t_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        D, I = index.search(xq, k)
        dt = time.perf_counter() - t0
    except (ValueError, TypeError, RuntimeError) as exc:
        raise click.ClickException(f"search: {exc}") from None
    con.print(f"opened {index_path} in {t_open:.3f} s{' (mapped)' if mmap else ''}; first query "
              f"(includes numba compile / cache load) {t_first:.3f} s")
    con.print(f"searched {xq.shape[0]:,} queries in {type(index).__name__} ({index.ntotal:,} vectors), "
              f"k={k}: {dt:.3f} s, {xq.shape[0] / max(dt, 1e-9):,.0f} queries/s")
    if show:
        table = Table("query", "ids", "distances", title=f"first {min(show, len(I))} queries")
        for q in range(min(show, len(I))):
            table.add_row(str(q), " ".join(str(i) for i in I[q]), " ".join(f"{v:.4g}" for v in D[q]))
        con.print(table)
    if out is not None:
        np.savez(out, D=D, I=I)
        con.print(f"wrote D {D.shape} and I {I.shape} to {out}")
