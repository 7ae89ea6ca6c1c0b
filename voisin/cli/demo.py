"""``voisin demo``: nearest words in GloVe (voisin.demo.run), or with ``--text`` semantic
search over the standard library's docstrings (voisin.demo_text.run)."""

from __future__ import annotations

import click

import voisin.cli as app

#: the GloVe demo needs this many words to train and measure anything
GLOVE_MIN_LIMIT = 1000


@click.command("demo")
@click.option("--text", "text_demo", is_flag=True,
              help="Semantic search over the docstrings of Python's standard library with the offline "
                   "sentence encoder (needs the `text` extra and the weights).")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Use only N words (GloVe: the most frequent, at least 1000; default all 400,000) "
                   "or, with --text, N docstrings spread over the library (default all).")
@click.option("--query", "queries", multiple=True, metavar="TEXT",
              help="With --text: a question to ask (repeatable; default: a few examples).")
@click.option("--index", "index_choice", default="auto", show_default=True,
              help="auto (best available), hnsw, ivf, flat, or a factory string such as 'HNSW16'.")
@click.option("--queries", "nqueries", type=click.IntRange(min=10), default=1000, show_default=True,
              help="Random words used to measure recall@10 and speed.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random sample.")
def command(text_demo: bool, limit: int | None, queries: tuple[str, ...], index_choice: str,
            nqueries: int, seed: int) -> None:
    """Nearest words in GloVe (400k words, 50-d), or with --text semantic search over the
    standard library's docstrings: what voisin does, on real data."""
    from voisin.demo import DemoError
    try:
        if text_demo:
            from voisin import demo_text  # lazy: only this command needs the encoder
            demo_text.run(limit=limit, queries=list(queries) or None, out=app.console())
            return
        if queries:
            raise click.UsageError("--query: only with --text (the GloVe demo picks random words)")
        if limit is not None and limit < GLOVE_MIN_LIMIT:
            raise click.BadParameter(f"expected at least {GLOVE_MIN_LIMIT} words, got {limit}",
                                     param_hint="--limit")
        from voisin import demo  # lazy: only this command needs pyarrow and the data
        demo.run(limit=limit, index=index_choice, nqueries=nqueries, seed=seed, out=app.console())
    except DemoError as exc:
        raise click.ClickException(str(exc)) from None
