"""Batches for ShardedIndex.add_from: numpy arrays, (x, ids) pairs or a Ray Dataset."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np


def _dataset_batches(ds: Any, vector_column: str | None, id_column: str | None,
                     batch_size: int) -> Iterator[tuple[Any, Any]]:
    columns = list(ds.schema().names)
    if vector_column is None:
        others = [c for c in columns if c != id_column]
        if len(others) != 1:
            raise ValueError(f"vector_column: the dataset has columns {columns}; say which holds the vectors")
        vector_column = others[0]
    for name, what in ((vector_column, "vector_column"), (id_column, "id_column")):
        if name is not None and name not in columns:
            raise ValueError(f"{what}: expected one of the dataset's columns {columns}, got {name!r}")
    for batch in ds.iter_batches(batch_size=batch_size, batch_format="numpy"):
        x = np.stack(batch[vector_column]) if batch[vector_column].dtype == object else batch[vector_column]
        yield x, (batch[id_column] if id_column is not None else None)


def _iterable_batches(source: Any) -> Iterator[tuple[Any, Any]]:
    try:
        it = iter(source)
    except TypeError:
        raise TypeError(f"source: expected an iterable of arrays or (x, ids) pairs, or a Ray Dataset, "
                        f"got {type(source).__name__}") from None
    for item in it:
        if isinstance(item, tuple):
            if len(item) != 2:
                raise ValueError(f"source: expected (x, ids) pairs, got a tuple of {len(item)}")
            yield item
        else:
            yield item, None


@contextmanager
def _bar(enabled: bool, total: int | None) -> Iterator[Any]:
    if not enabled:
        yield None
        return
    try:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    except ImportError:  # the progress bar is a nicety, not a reason to fail
        yield None
        return
    with Progress(TextColumn("adding"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as p:
        yield (p, p.add_task("add", total=total))


def iterate_batches(source: Any, vector_column: str | None, id_column: str | None, batch_size: int,
                    progress: bool) -> Iterator[tuple[Any, Any]]:
    """Yield (x, ids or None) from ``source``, advancing a progress bar by rows."""
    is_dataset = hasattr(source, "iter_batches") and hasattr(source, "schema")
    total = source.count() if is_dataset and progress else None  # a list's length counts batches
    batches = _dataset_batches(source, vector_column, id_column, batch_size) if is_dataset \
        else _iterable_batches(source)
    with _bar(progress, total) as bar:
        for x, ids in batches:
            yield x, ids
            if bar is not None:
                bar[0].advance(bar[1], len(x))
