"""TEXMEX ``.fvecs`` / ``.ivecs`` / ``.bvecs`` files (``faiss.contrib.vecs_io``).

Each row is an int32 dimension followed by that many float32 / int32 / uint8
values. The readers check the file (whole rows, one dimension) through
:func:`voisin.datasets.read_vecs`; the ``*_mmap`` ones return read-only views
of the file, the others copies.

Example:
    >>> import numpy as np, os, tempfile
    >>> from voisin.contrib.vecs_io import fvecs_read, fvecs_write
    >>> path = os.path.join(tempfile.mkdtemp(), "x.fvecs")
    >>> fvecs_write(path, np.eye(3))
    >>> fvecs_read(path).shape
    (3, 3)
"""

from __future__ import annotations

import os
from typing import Any, Iterator

import numpy as np

from .._validate import check_int
from ..datasets import read_vecs, write_vecs


def ivecs_read(fname: str | os.PathLike) -> np.ndarray:
    return read_vecs(fname, np.int32)


def fvecs_read(fname: str | os.PathLike) -> np.ndarray:
    return read_vecs(fname, np.float32)


def bvecs_read(fname: str | os.PathLike) -> np.ndarray:
    return read_vecs(fname, np.uint8)


def ivecs_mmap(fname: str | os.PathLike) -> np.ndarray:
    return read_vecs(fname, np.int32, mmap=True)


def fvecs_mmap(fname: str | os.PathLike) -> np.ndarray:
    return read_vecs(fname, np.float32, mmap=True)


def bvecs_mmap(fname: str | os.PathLike) -> np.ndarray:
    return read_vecs(fname, np.uint8, mmap=True)


def ivecs_write(fname: str | os.PathLike, m: Any) -> None:
    write_vecs(fname, m, np.int32)


def fvecs_write(fname: str | os.PathLike, m: Any) -> None:
    write_vecs(fname, np.asarray(m, dtype=np.float32), np.float32)


def bvecs_write(fname: str | os.PathLike, m: Any) -> None:
    write_vecs(fname, m, np.uint8)


def bvecs_iter(filepath: str | os.PathLike, batch_size: int = 100_000) -> Iterator[np.ndarray]:
    """Batches of at most ``batch_size`` rows of a ``.bvecs`` file (memory-mapped views)."""
    batch_size = check_int(batch_size, "batch_size", lo=1)
    x = bvecs_mmap(filepath)
    for i0 in range(0, x.shape[0], batch_size):
        yield x[i0:i0 + batch_size]


def bvecs_iter_chunked(chunk_folder: str | os.PathLike, batch_size: int = 100_000
                       ) -> Iterator[np.ndarray]:
    """Batches of exactly ``batch_size`` rows (the last one shorter) across the
    files ``chunk_0000.bvecs``, ``chunk_0001.bvecs``... of a folder, in order;
    a gap in the numbering is an error."""
    batch_size = check_int(batch_size, "batch_size", lo=1)
    folder = os.fspath(chunk_folder)
    chunks: dict[int, str] = {}
    for entry in os.scandir(folder):
        if entry.is_file() and entry.name.startswith("chunk_") and entry.name.endswith(".bvecs"):
            num = entry.name[len("chunk_"):-len(".bvecs")]
            if not num.isdigit():
                raise ValueError(f"chunk_folder: invalid chunk file name {entry.name!r}")
            chunks[int(num)] = entry.path
    if not chunks:
        raise ValueError(f"chunk_folder: no chunk_XXXX.bvecs files in {folder}")
    missing = sorted(set(range(len(chunks))) - set(chunks))
    if missing:
        raise ValueError(f"chunk_folder: gap in the chunk sequence, missing chunks {missing} "
                         f"(found {sorted(chunks)})")
    pending: list[np.ndarray] = []
    have = 0
    for i in range(len(chunks)):
        x = bvecs_mmap(chunks[i])
        start = 0
        while start < x.shape[0]:
            take = min(batch_size - have, x.shape[0] - start)
            pending.append(x[start:start + take])
            have += take
            start += take
            if have == batch_size:
                yield pending[0] if len(pending) == 1 else np.vstack(pending)
                pending, have = [], 0
    if have:
        yield np.vstack(pending)
