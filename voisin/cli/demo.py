"""``voisin demo``: nearest words in GloVe (the work is voisin.demo.run)."""

from __future__ import annotations

import click

import voisin.cli as app


@click.command("demo")
@click.option("--limit", type=click.IntRange(min=1000), default=None,
              help="Use only the N most frequent words (default: all 400,000).")
@click.option("--index", "index_choice", default="auto", show_default=True,
              help="auto (best available), hnsw, ivf, flat, or a factory string such as 'HNSW16'.")
@click.option("--queries", "nqueries", type=click.IntRange(min=10), default=1000, show_default=True,
              help="Random words used to measure recall@10 and speed.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random sample.")
def command(limit: int | None, index_choice: str, nqueries: int, seed: int) -> None:
    """Nearest words in GloVe (400k words, 50-d): what voisin does, on real data."""
    from voisin import demo  # lazy: only this command needs pyarrow and the data
    try:
        demo.run(limit=limit, index=index_choice, nqueries=nqueries, seed=seed, out=app.console())
    except demo.DemoError as exc:
        raise click.ClickException(str(exc)) from None
