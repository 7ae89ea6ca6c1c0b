"""``voisin tune``: the fastest knob setting of an index file that reaches a target recall."""

from __future__ import annotations

import json
import warnings

import click
import numpy as np
from rich.table import Table

import voisin.cli as app
from voisin.tuning import MODES


@click.command("tune")
@app.index_file_option
@app.queries_options
@click.option("--target", "target", type=click.FloatRange(0, 1, min_open=True), default=0.95, show_default=True,
              help="recall@k the setting must reach.")
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True, help="Neighbours per query.")
@click.option("--gt", "gt_path", default=None, type=click.Path(dir_okay=False),
              help="True neighbour ids of the queries (nq x >= k): .npy, .ivecs or .hdf5 (dataset "
                   "'neighbors'). Default: computed exactly from --data or the index's own vectors.")
@click.option("--data", "data_path", default=None, type=click.Path(dir_okay=False),
              help="The indexed vectors (row i = id i; HDF5 dataset 'train'): exact ground truth and "
                   "ties for indexes that do not keep raw vectors (PQ, SQ...).")
@click.option("--normalize", is_flag=True, help="Unit-normalise queries and --data (cosine indexes).")
@click.option("--mode", type=click.Choice(MODES), default="batch", show_default=True,
              help="What 'fastest' means: batch (all queries per call) or single (one query per call).")
@click.option("--confidence", type=click.FloatRange(0.5, 1, max_open=True), default=0.95, show_default=True,
              help="One-sided confidence that the mean recall reaches the target on fresh queries.")
@click.option("--min-time", type=click.FloatRange(min=0), default=0.05, show_default=True,
              help="Seconds of searching per measured setting.")
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="Write the tuned index here (FAISS files keep nprobe, efSearch and k_factor).")
@click.option("--plot", "plot_path", default=None, type=click.Path(dir_okay=False),
              help="Save the recall/QPS plot as an image (needs matplotlib).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def command(index_path: str, queries: str, key: str | None, target: float, k: int, gt_path: str | None,
            data_path: str | None, normalize: bool, mode: str, confidence: float, min_time: float,
            out: str | None, plot_path: str | None, as_json: bool) -> None:
    """Find and set the fastest setting (nprobe, efSearch, k_factor_rf...) reaching --target recall@k."""
    from voisin.building import prepare
    from voisin.tuning import tune
    index = app.load_index(index_path)
    xq = prepare(app.load_vectors(queries, key or "test"), normalize)
    xb = prepare(app.load_vectors(data_path, "train"), normalize) if data_path else None
    gt = None
    if gt_path:
        gt = np.asarray(app.load_vectors(gt_path, "neighbors"))
        if gt.dtype.kind not in "iu":
            raise click.ClickException(f"--gt {gt_path}: expected integer neighbour ids, got dtype {gt.dtype}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        try:
            report = tune(index, xq, target, k, gt, xb=xb, confidence=confidence, mode=mode, min_time=min_time)
        except (ValueError, TypeError) as exc:
            hint = " (here: --gt FILE or --data FILE)" if str(exc).startswith("gt:") else ""
            raise click.ClickException(f"{exc}{hint}") from None
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        _print(report, caught)
    if out is not None:
        app.save_index(index, out)
    if plot_path is not None:
        try:
            report.plot(plot_path)
        except ImportError as exc:
            raise click.ClickException(f"--plot {exc}") from None
    if not report.met:
        raise SystemExit(3)  # scriptable: the target was not reached (the report above says so)


def _print(report, caught) -> None:
    con = app.console()
    table = Table("setting", f"recall@{report.k}", "recall, low bound", f"queries/s ({report.mode})",
                  title=f"Pareto frontier of {len(report.points)} measured settings ({report.skipped} skipped "
                        f"as dominated), {report.nq:,} queries", title_justify="left")
    for p in sorted(report.frontier, key=lambda p: p.recall):
        mark = " [bold green]<- chosen[/]" if p is report.chosen else ""
        table.add_row(p.key or "(no knob)", f"{p.recall:.4f}", f"{p.recall_low:.4f}", f"{p.qps:,.0f}{mark}")
    con.print(table)
    for w in caught:
        con.print(f"[yellow]{w.message}[/]")
    verdict = "[bold green]meets[/]" if report.met else "[bold red]does not reach[/]"
    con.print(f"{report.index}: [bold]{report.key or '(no knob)'}[/] {verdict} recall@{report.k} >= "
              f"{report.target_recall:g} (recall {report.recall:.4f}, {report.qps:,.0f} queries/s)")
    if report.key:
        con.print(f"search with it: [bold]voisin search --param {report.key}[/] "
                  f"(or ParameterSpace().set_index_parameters(index, {report.key!r}))")
