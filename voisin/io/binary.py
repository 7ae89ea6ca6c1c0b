"""FAISS's binary-index files: ``write_index_binary`` / ``read_index_binary`` /
``serialize_index_binary`` / ``deserialize_index_binary``.

The framing (checksum trailer, atomic writes, IOReader streams, read-only
loads) is :mod:`voisin.io.faiss_format`'s; the layouts are in
:mod:`voisin.io.formats.binary`. As in FAISS, a binary file is refused by
``read_index`` and a float file by ``read_index_binary``.

Example:
    >>> import numpy as np, voisin
    >>> index = voisin.IndexBinaryFlat(16)
    >>> index.add(np.array([[1, 2], [3, 4]], np.uint8))
    >>> voisin.deserialize_index_binary(voisin.serialize_index_binary(index)).ntotal
    2
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO

import numpy as np

from . import faiss_format as F


def write_index_binary(index: Any, f: str | os.PathLike | BinaryIO, *,
                       checksum: bool = True) -> None:
    """Write a binary index to a path (atomically), a binary file or an IOWriter.
    ``checksum=False`` writes exactly FAISS's bytes (no voisin trailer)."""
    if not hasattr(f, "write") and not isinstance(f, (str, os.PathLike)):
        raise TypeError(f"f: expected a path or a binary file object, got {type(f).__name__}")
    with F._serialize(index, checksum, binary=True) as w:
        F.emit(w, f)


def serialize_index_binary(index: Any, *, checksum: bool = True) -> np.ndarray:
    """The bytes of ``write_index_binary(index, ...)`` as a uint8 numpy array."""
    with F._serialize(index, checksum, binary=True) as w:
        return np.frombuffer(w.getvalue(), dtype=np.uint8).copy()


def read_index_binary(f: str | os.PathLike | BinaryIO, io_flags: int = 0, *,
                      mmap: bool = False, verify_checksum: bool | None = None) -> Any:
    """Open a binary index written by voisin or FAISS (flags as :func:`read_index`)."""
    io_flags = F._check_flags(io_flags)
    return F.check_read_kind(F._read_any(f, io_flags, mmap, verify_checksum), True,
                             F._source_of(f))


def deserialize_index_binary(data: Any, io_flags: int = 0, *,
                             verify_checksum: bool = True) -> Any:
    """The binary index held in ``data`` (bytes or uint8 array)."""
    return F.check_read_kind(F._deserialize_any(data, io_flags, verify_checksum), True,
                             "<serialized index>")


def _unpickle_binary(data: bytes) -> Any:
    return F._parse(data, "<pickled index>", 0, True)


def reduce_index_binary(index: Any) -> tuple:
    """``__reduce__`` of every binary index: its serialized bytes."""
    if F._writer_for(index) is None:
        return (F._restore_state, (type(index), index.__getstate__()))
    with F._serialize(index, True, binary=True) as w:
        return (_unpickle_binary, (w.getvalue(),))
