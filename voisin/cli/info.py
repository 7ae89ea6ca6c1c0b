"""``voisin info``: versions, CPU, threads, BLAS, numba's cache and which index families exist."""

from __future__ import annotations

import json

import click
from rich.markup import escape
from rich.table import Table

import voisin.cli as app

ROWS = ("python", "numpy", "numba", "llvmlite", "cpu", "simd", "cores", "numba_threads", "threading_layer",
        "blas", "numba_cache_dir")


@click.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def command(as_json: bool) -> None:
    """Versions, threads, BLAS, CPU, numba cache and which index families exist."""
    from voisin.machine import installation
    report = installation()
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    con = app.console()
    table = Table(show_header=False, title=f"voisin {report['voisin']}", title_justify="left")
    for key in ROWS:
        table.add_row(key.replace("_", " "), escape(str(report[key])))
    con.print(table)
    fam = Table("index family", "available", "classes", title="what this voisin has", title_justify="left")
    for name, entry in report["families"].items():
        fam.add_row(name, "[green]yes[/]" if entry["available"] else "[dim]not yet[/]", ", ".join(entry["names"]))
    con.print(fam)
    peers = Table("optional package", "version", "used for", title="optional packages", title_justify="left")
    for name, entry in report["optional"].items():
        peers.add_row(name, entry["version"] or "[dim]not installed[/]", entry["for"])
    con.print(peers)
