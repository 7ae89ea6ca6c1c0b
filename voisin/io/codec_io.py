"""Codec files, FAISS's ``write_ProductQuantizer`` / ``read_ProductQuantizer``,
``write_VectorTransform`` / ``read_VectorTransform`` and
``write_InvertedLists`` / ``read_InvertedLists``, plus
``write_ScalarQuantizer`` / ``read_ScalarQuantizer`` (FAISS writes that codec
only inside indexes; voisin gives it the same standalone treatment).

The bytes are the ones FAISS writes for the object inside an index (the
pieces come from ``voisin/io/formats``), followed by voisin's checksum
trailer unless ``checksum=False``; FAISS's readers stop before the trailer.
``f`` is a path (written atomically), a binary file or an IOWriter/IOReader.

Example:
    >>> import numpy as np, os, tempfile, voisin
    >>> pq = voisin.ProductQuantizer(8, 2, 4); pq.train(np.random.rand(1000, 8))
    >>> path = os.path.join(tempfile.mkdtemp(), "pq.bin")
    >>> voisin.write_ProductQuantizer(pq, path)
    >>> voisin.read_ProductQuantizer(path).M
    2
"""

from __future__ import annotations

import os
import struct
from typing import Any, Callable

from .faiss_format import add_trailer, emit, parse_prefix
from .ioreaders import IOReader
from .stream import IndexFileError, Reader, Writer


def _write(f: Any, body: Callable[[Writer], None], checksum: bool) -> None:
    w = Writer()
    body(w)
    if checksum:
        add_trailer(w)
    emit(w, f)


def _read(f: Any, body: Callable[[Reader], Any], io_flags: int = 0) -> Any:
    def parse(buf: Any, source: str) -> tuple[Any, int]:
        return parse_prefix(buf, source, io_flags, True, lambda r, ctx: body(r))

    if isinstance(f, IOReader):
        return f.read_object(parse)
    if hasattr(f, "read"):
        data, source = f.read(), getattr(f, "name", "<file>")
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("f: expected a binary file object (opened with 'rb')")
    elif isinstance(f, (str, os.PathLike)):
        source = os.fspath(f)
        with open(source, "rb") as fh:
            data = fh.read()
    else:
        raise TypeError(f"f: expected a path, a binary file or an IOReader, got {type(f).__name__}")
    if not data:
        raise IndexFileError("empty file", 0, source)
    obj, used = parse(data, source)
    if used != len(data):
        raise IndexFileError(f"{len(data) - used} unexpected bytes after the object "
                             "(appended data or a damaged file)", used, source)
    return obj


def _peek_u64(r: Reader, offset: int, what: str) -> int:
    r.need(offset + 8, what)
    return struct.unpack_from("<Q", r.buf, r.pos + offset)[0]


# --- ProductQuantizer ------------------------------------------------------

def write_ProductQuantizer(pq: Any, f: Any, *, checksum: bool = True) -> None:
    """Write a :class:`voisin.ProductQuantizer` (``d | M | nbits | centroids``)."""
    from ..codecs.pq import ProductQuantizer
    from .formats.pq import write_pq
    if not isinstance(pq, ProductQuantizer):
        raise TypeError(f"pq: expected a ProductQuantizer, got {type(pq).__name__}")
    _write(f, lambda w: write_pq(w, pq), checksum)


def read_ProductQuantizer(f: Any) -> Any:
    from .formats.pq import read_pq
    return _read(f, lambda r: read_pq(r))


# --- ScalarQuantizer -------------------------------------------------------

def write_ScalarQuantizer(sq: Any, f: Any, *, checksum: bool = True) -> None:
    """Write a :class:`voisin.ScalarQuantizer` in FAISS's in-index layout."""
    from ..codecs.sq import ScalarQuantizer
    from .formats.sqcodec import write_sq
    if not isinstance(sq, ScalarQuantizer):
        raise TypeError(f"sq: expected a ScalarQuantizer, got {type(sq).__name__}")
    _write(f, lambda w: write_sq(w, sq), checksum)


def read_ScalarQuantizer(f: Any) -> Any:
    from .faiss_format import MAX_DIMENSION
    from .formats.sqcodec import read_sq

    def body(r: Reader) -> Any:
        # d follows qtype, rangestat and rangestat_arg (3 x 4 bytes)
        d = _peek_u64(r, 12, "ScalarQuantizer header")
        if not 1 <= d <= MAX_DIMENSION:
            raise r.fail(f"ScalarQuantizer: dimension {d} outside [1, {MAX_DIMENSION}]")
        return read_sq(r, d)
    return _read(f, body)


# --- VectorTransform -------------------------------------------------------

def write_VectorTransform(vt: Any, f: Any, *, checksum: bool = True) -> None:
    """Write a vector transform (PCAMatrix, OPQMatrix, RandomRotationMatrix,
    LinearTransform, NormalizationTransform) as FAISS does."""
    from .formats.transforms import write_transform
    _write(f, lambda w: write_transform(w, vt), checksum)


def read_VectorTransform(f: Any) -> Any:
    from .formats.transforms import read_transform
    return _read(f, lambda r: read_transform(r))


def transform_bytes(vt: Any) -> bytes:
    """FAISS's serialization of a transform (to compare two transforms)."""
    from .formats.transforms import write_transform
    w = Writer()
    write_transform(w, vt)
    return w.getvalue()


# --- InvertedLists ---------------------------------------------------------

class _ListsOf:
    """What the IVF lists writer reads from an index: its ``invlists``."""

    def __init__(self, invlists: Any):
        self.invlists = invlists


def write_InvertedLists(invlists: Any, f: Any, *, checksum: bool = True) -> None:
    """Write inverted lists (``ilar``: nlist, code_size, sizes, then the codes
    and ids of each list), as FAISS's ``write_InvertedLists``."""
    from ..indexes.invlists import InvertedLists
    from .formats.ivf import write_invlists
    if not isinstance(invlists, InvertedLists):
        raise TypeError(f"invlists: expected InvertedLists, got {type(invlists).__name__}")
    _write(f, lambda w: write_invlists(w, _ListsOf(invlists)), checksum)


def read_InvertedLists(f: Any, io_flags: int = 0) -> Any:
    from .formats.ivf import read_invlists

    def body(r: Reader) -> Any:
        # nlist and code_size follow the 4-byte tag; read_invlists checks them again
        nlist = _peek_u64(r, 4, "InvertedLists header")
        code_size = _peek_u64(r, 12, "InvertedLists header")
        if not (1 <= nlist <= 1 << 40 and code_size <= 1 << 24):
            raise r.fail(f"InvertedLists: nlist={nlist} / code_size={code_size} out of range")
        return read_invlists(r, nlist, code_size, None, "InvertedLists")
    return _read(f, body, io_flags)
