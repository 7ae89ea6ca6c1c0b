"""Building an index over a large array: factory string, training sample, chunked adds.

Shared by ``voisin build`` and the demo. Chunks keep memory flat when the
vectors are a memory-mapped file (each chunk is converted to float32 on its
own) and let a progress bar move.

>>> import numpy as np
>>> from voisin.building import add_in_chunks, make_index, train_if_needed
>>> x = np.random.default_rng(0).random((3000, 8), dtype="float32")
>>> index = make_index(8, "IVF16,Flat")
>>> train_if_needed(index, x, normalize=False, max_points=1000) > 0
True
>>> _ = add_in_chunks(index, x, normalize=False, chunk=1000); index.ntotal
3000
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from .metric import METRIC_INNER_PRODUCT, METRIC_L2

#: metric names the command line takes; cosine = normalise, then inner product
METRICS = ("l2", "ip", "cosine")
#: vectors per add() call: big enough that per-call overhead vanishes, small enough that a bar moves
ADD_CHUNK = 20_000


def make_index(d: int, description: str, metric: int = METRIC_L2) -> Any:
    """An empty index from a FAISS factory string (``"Flat"``, ``"HNSW32"``, ``"IVF1024,Flat"``...).

    Raises ValueError naming the description when the factory cannot build it.
    """
    from .factory import index_factory
    try:
        return index_factory(d, description, metric)
    except (ValueError, TypeError, NotImplementedError) as exc:
        raise ValueError(f"--index {description!r}: {exc}") from None


def parse_metric(name: str) -> tuple[int, bool]:
    """``"l2"`` / ``"ip"`` / ``"cosine"`` -> (voisin metric, normalise the vectors first?)."""
    if name not in METRICS:
        raise ValueError(f"metric: expected one of {', '.join(METRICS)}, got {name!r}")
    return (METRIC_L2 if name == "l2" else METRIC_INNER_PRODUCT), name == "cosine"


def chunks(n: int, size: int) -> Iterator[tuple[int, int]]:
    for i0 in range(0, n, size):
        yield i0, min(n, i0 + size)


def prepare(x: np.ndarray, normalize: bool) -> np.ndarray:
    """A float32 C-contiguous copy-if-needed of ``x``, unit-normalised for cosine."""
    out = np.ascontiguousarray(x, dtype=np.float32)
    if normalize:
        if out is x or not out.flags.writeable:
            out = out.copy()
        from .utils import normalize_L2
        normalize_L2(out)
    return out


def train_if_needed(index: Any, x: np.ndarray, normalize: bool, max_points: int, seed: int = 0) -> float:
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


def add_in_chunks(index: Any, x: np.ndarray, normalize: bool, console: Any = None, label: str = "adding",
                  chunk: int | None = None) -> float:
    """Add all rows of ``x`` in chunks, behind a rich progress bar on ``console`` when given and
    there is more than one chunk; returns seconds.

    Indexes that need explicit ids (IndexIDMap) get ids 0..n-1, the row numbers.
    """
    from . import IndexIDMap
    n = x.shape[0]
    chunk = chunk or ADD_CHUNK
    needs_ids = isinstance(index, IndexIDMap)
    t0 = time.perf_counter()
    with _progress(console, label, n, disable=console is None or n <= chunk) as advance:
        for i0, i1 in chunks(n, chunk):
            xs = prepare(x[i0:i1], normalize)
            if needs_ids:
                index.add_with_ids(xs, np.arange(i0, i1, dtype=np.int64))
            else:
                index.add(xs)
            advance(i1)
    return time.perf_counter() - t0


class _progress:
    """A rich progress bar over ``total`` vectors, or nothing when disabled."""

    def __init__(self, console: Any, label: str, total: int, disable: bool):
        self.console, self.label, self.total, self.disable = console, label, total, disable

    def __enter__(self):
        if self.disable:
            return lambda done: None
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)
        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("vectors"), TimeElapsedColumn(), TimeRemainingColumn(),
                            console=self.console, transient=False)
        self.bar.__enter__()
        task = self.bar.add_task(self.label, total=self.total)
        return lambda done: self.bar.update(task, completed=done)

    def __exit__(self, *exc: Any) -> None:
        if not self.disable:
            self.bar.__exit__(*exc)
