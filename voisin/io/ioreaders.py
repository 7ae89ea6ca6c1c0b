"""FAISS's stream objects: ``VectorIOWriter`` / ``VectorIOReader`` (bytes in
memory), ``PyCallbackIOWriter`` / ``PyCallbackIOReader`` (Python functions),
``BufferedIOWriter`` / ``BufferedIOReader`` and ``FileIOWriter`` /
``FileIOReader``, usable wherever ``write_index`` / ``read_index`` (and the
codec writers of :mod:`voisin.io.codec_io`) take a file.

A reader may hold several objects one after the other: each ``read_*`` call
takes exactly one object (and its checksum trailer, when voisin wrote one)
and leaves the rest for the next call, as FAISS does.

Example:
    >>> import numpy as np, voisin
    >>> index = voisin.IndexFlatL2(4); index.add(np.eye(4))
    >>> w = voisin.VectorIOWriter(); voisin.write_index(index, w)
    >>> r = voisin.VectorIOReader(); voisin.copy_array_to_vector(voisin.vector_to_array(w.data), r.data)
    >>> voisin.read_index(r).ntotal
    4
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO, Callable

from .._validate import check_int
from ..vectors import UInt8Vector
from .stream import IndexFileError

_DEFAULT_BS = 1 << 20


class IOWriter:
    """Base of the FAISS-style writers: anything with ``write(bytes)``."""

    name = "<IOWriter>"

    def write(self, data: Any) -> int:
        raise NotImplementedError

    def __call__(self, data: Any) -> int:  # FAISS's IOWriter::operator()
        return self.write(data)


class IOReader:
    """Base of the FAISS-style readers.

    Subclasses give :meth:`_buffer` (every byte not consumed yet) and
    :meth:`_consume`; ``read(n)`` and the object readers build on them.
    """

    name = "<IOReader>"

    def _buffer(self) -> memoryview:
        raise NotImplementedError

    def _consume(self, n: int) -> None:
        raise NotImplementedError

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all the rest when n < 0)."""
        buf = self._buffer()
        n = len(buf) if n is None or n < 0 else min(int(n), len(buf))
        out = bytes(buf[:n])
        self._consume(n)
        return out

    def read_object(self, parse: Callable[[memoryview, str], tuple[Any, int]]) -> Any:
        """``parse(buffer, source) -> (object, bytes used)`` on what is left,
        then consume what it used."""
        buf = self._buffer()
        if len(buf) == 0:
            raise IndexFileError("no data left to read", 0, self.name)
        obj, used = parse(buf, self.name)
        self._consume(used)
        return obj


class VectorIOWriter(IOWriter):
    """Collects the bytes in ``data`` (a UInt8Vector: ``vector_to_array(w.data)``)."""

    name = "<VectorIOWriter>"

    def __init__(self) -> None:
        self.data = UInt8Vector()

    def write(self, data: Any) -> int:
        mv = memoryview(data).cast("B")
        n0 = self.data.size()
        self.data.resize(n0 + len(mv))
        self.data.data()[n0:] = mv
        return len(mv)


class VectorIOReader(IOReader):
    """Reads the bytes of ``data`` (a UInt8Vector) from position ``rp``."""

    name = "<VectorIOReader>"

    def __init__(self) -> None:
        self.data = UInt8Vector()
        self.rp = 0

    def _buffer(self) -> memoryview:
        return memoryview(self.data.data()[self.rp:]).cast("B")

    def _consume(self, n: int) -> None:
        self.rp += n


class _PulledReader(IOReader):
    """A reader whose bytes come from a source in pieces; unconsumed bytes stay here."""

    def __init__(self) -> None:
        self._pending = b""
        self._pos = 0
        self._done = False

    def _pull(self) -> bytes:
        raise NotImplementedError

    def _buffer(self) -> memoryview:
        if not self._done:
            # the whole rest is pulled at once: parsing needs a contiguous buffer
            pieces = [self._pending[self._pos:]]
            while True:
                piece = self._pull()
                if not piece:
                    break
                pieces.append(piece)
            self._pending, self._pos, self._done = b"".join(pieces), 0, True
        return memoryview(self._pending)[self._pos:]

    def _consume(self, n: int) -> None:
        self._pos += n


class PyCallbackIOReader(_PulledReader):
    """Reads through ``callback(n) -> bytes`` (at most n bytes per call, b"" at
    the end), e.g. ``PyCallbackIOReader(f.read)``."""

    name = "<PyCallbackIOReader>"

    def __init__(self, callback: Callable[[int], bytes], bs: int = _DEFAULT_BS):
        super().__init__()
        if not callable(callback):
            raise TypeError(f"callback: expected a function n -> bytes, got {callback!r}")
        self.callback = callback
        self.bs = check_int(bs, "bs", lo=1)

    def _pull(self) -> bytes:
        piece = self.callback(self.bs)
        if not isinstance(piece, (bytes, bytearray, memoryview)):
            raise TypeError(f"callback: expected it to return bytes, got {type(piece).__name__}")
        if len(piece) > self.bs:
            raise ValueError(f"callback: returned {len(piece)} bytes when asked for at most {self.bs}")
        return bytes(piece)


class PyCallbackIOWriter(IOWriter):
    """Writes through ``callback(bytes)``, in pieces of at most ``bs`` bytes,
    e.g. ``PyCallbackIOWriter(f.write)``."""

    name = "<PyCallbackIOWriter>"

    def __init__(self, callback: Callable[[bytes], Any], bs: int = _DEFAULT_BS):
        if not callable(callback):
            raise TypeError(f"callback: expected a function bytes -> None, got {callback!r}")
        self.callback = callback
        self.bs = check_int(bs, "bs", lo=1)

    def write(self, data: Any) -> int:
        mv = memoryview(data).cast("B")
        for i in range(0, len(mv), self.bs):
            self.callback(bytes(mv[i:i + self.bs]))
        return len(mv)


class BufferedIOReader(IOReader):
    """Reads another reader in blocks of ``bsz`` bytes (FAISS's read-ahead;
    voisin's readers already take their input in large pieces)."""

    name = "<BufferedIOReader>"

    def __init__(self, reader: IOReader, bsz: int = _DEFAULT_BS):
        if not isinstance(reader, IOReader):
            raise TypeError(f"reader: expected an IOReader, got {type(reader).__name__}")
        self.reader = reader
        self.bsz = check_int(bsz, "bsz", lo=1)
        self.name = f"<BufferedIOReader of {reader.name}>"

    def _buffer(self) -> memoryview:
        return self.reader._buffer()

    def _consume(self, n: int) -> None:
        self.reader._consume(n)


class BufferedIOWriter(PyCallbackIOWriter):
    """Passes writes to another writer in pieces of at most ``bsz`` bytes."""

    name = "<BufferedIOWriter>"

    def __init__(self, writer: Any, bsz: int = _DEFAULT_BS):
        if not hasattr(writer, "write"):
            raise TypeError(f"writer: expected an IOWriter, got {type(writer).__name__}")
        super().__init__(writer.write, check_int(bsz, "bsz", lo=1))
        self.writer = writer
        self.bsz = self.bs


class FileIOWriter(IOWriter):
    """Writes to a path (created or truncated) or to an open binary file."""

    def __init__(self, f: str | os.PathLike | BinaryIO):
        if isinstance(f, (str, os.PathLike)):
            self._file: BinaryIO = open(f, "wb")
            self._own = True
            self.name = os.fspath(f)
        elif hasattr(f, "write"):
            self._file, self._own = f, False
            self.name = getattr(f, "name", "<file>")
        else:
            raise TypeError(f"f: expected a path or a binary file object, got {type(f).__name__}")

    def write(self, data: Any) -> int:
        return self._file.write(data)

    def close(self) -> None:
        if self._own and not self._file.closed:
            self._file.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


class FileIOReader(_PulledReader):
    """Reads a path or an open binary file from its current position."""

    def __init__(self, f: str | os.PathLike | BinaryIO):
        super().__init__()
        if isinstance(f, (str, os.PathLike)):
            with open(f, "rb") as fh:
                self._pending = fh.read()
            self._done = True
            self.name = os.fspath(f)
            self._file = None
        elif hasattr(f, "read"):
            self._file = f
            self.name = getattr(f, "name", "<file>")
        else:
            raise TypeError(f"f: expected a path or a binary file object, got {type(f).__name__}")

    def _pull(self) -> bytes:
        assert self._file is not None
        piece = self._file.read(_DEFAULT_BS)
        if not isinstance(piece, (bytes, bytearray)):
            raise TypeError("f: expected a binary file object (opened with 'rb')")
        return bytes(piece)
