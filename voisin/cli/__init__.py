"""The ``voisin`` command (also ``python -m voisin``): demo, build, search, tune, info, bench.

Each command is one module of this package that parses its options and
prints; the work lives in the library (voisin.building, voisin.datasets,
voisin.io.files, voisin.params, voisin.tuning, voisin.machine, voisin.demo).
Adding a command is one module exposing ``command`` plus its name in
:data:`COMMANDS`. Commands reach the helpers below through this package
(``app.load_index``...), so there is one place to substitute them.

Every command reports bad input as a one-line error and a non-zero exit
status, never a traceback. Index files: a path ending in ``.pkl`` is a Python
pickle (any voisin index, readable only by voisin: load only files you
trust), any other path FAISS's binary format; both are written atomically.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import click
from rich.console import Console

import voisin

#: the commands, one module each (voisin/cli/<name>.py defines ``command``)
COMMANDS = ("demo", "build", "search", "tune", "info", "bench", "serve")
#: vectors per add() while `voisin build` runs (the progress bar's step)
ADD_CHUNK = 20_000


def console() -> Console:
    # Created per call so CliRunner's captured stdout is picked up in tests.
    return Console(highlight=False, soft_wrap=False)


def load_vectors(path: str | os.PathLike, key: str | None = None) -> Any:
    """:func:`voisin.datasets.load_vectors`, its errors as one-line CLI errors."""
    from voisin.datasets import load_vectors as load
    try:
        return load(path, key)
    except (OSError, ValueError, ImportError) as exc:
        raise click.ClickException(str(exc)) from None


def load_index(path: str | os.PathLike, mmap: bool = False) -> Any:
    """:func:`voisin.io.files.load_index` for ``--index``."""
    from voisin.io.files import load_index as load
    try:
        return load(path, mmap=mmap)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"--index {exc}") from None


def save_index(index: Any, path: str | os.PathLike) -> None:
    """:func:`voisin.io.files.save_index` (atomic, pickle or FAISS format) for ``--out``."""
    from voisin.io.files import save_index as save
    try:
        save(index, path)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"--out {exc}") from None


def parse_params(texts: tuple[str, ...]) -> dict[str, float]:
    """``--param`` values (``nprobe=16``, or FAISS's ``nprobe=16,efSearch=64``) -> ``{name: value}``."""
    from voisin.params import ParameterError, parse_parameters
    out: dict[str, float] = {}
    for text in texts:
        try:
            items = parse_parameters(text)
            if not items:
                raise ParameterError(text)
        except ParameterError:
            raise click.BadParameter(f"expected NAME=NUMBER such as efSearch=64, got {text!r}",
                                     param_hint="--param") from None
        out.update(items)
    return out


def set_params(index: Any, params: dict[str, float]) -> None:
    """Set ``--param`` knobs through :class:`voisin.ParameterSpace` (all checked before any is set)."""
    from voisin.params import ParameterError, ParameterSpace
    try:
        ParameterSpace().set_index_parameters(index, params)
    except ParameterError as exc:
        raise click.ClickException(f"--param {exc}") from None


def index_file_option(f: Any) -> Any:
    """``--index FILE``: an index to open (search, tune)."""
    return click.option("--index", "index_path", required=True, type=click.Path(dir_okay=False),
                        help="Index file written by `voisin build` (or FAISS's write_index).")(f)


def queries_options(f: Any) -> Any:
    """``--queries FILE`` and ``--key``: the query vectors (HDF5 dataset ``test`` by default)."""
    f = click.option("--key", default=None, help="HDF5 dataset of the queries (default: test).")(f)
    return click.option("--queries", required=True, type=click.Path(dir_okay=False),
                        help="Query vectors: .npy, .fvecs, .bvecs or .hdf5 (dataset 'test').")(f)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(voisin.__version__, prog_name="voisin")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Threads for voisin's parallel kernels (default: all cores).")
def cli(threads: int | None) -> None:
    """voisin: vector similarity search with FAISS's API, in Python and numba.

    Start with `voisin demo` (nearest GloVe words), `voisin info` to see what is
    installed, `voisin build` / `voisin search` to index your own vectors and
    `voisin tune` to find the fastest setting that reaches a recall.
    """
    if threads is not None:
        voisin.omp_set_num_threads(threads)


def _register(name: str) -> None:
    module = importlib.import_module(f".{name}", __name__)
    cli.add_command(module.command, name)


def _register_bench() -> None:
    """(Re-)register ``bench``: the harness's command, or one explaining what is missing."""
    from .bench import make
    cli.add_command(make(), "bench")


for _name in COMMANDS:
    _register(_name)


def main(argv: list[str] | None = None, prog_name: str = "voisin") -> None:
    """Console-script entry point (``voisin``)."""
    cli.main(args=argv, prog_name=prog_name)
