"""Bounds-checked reading and chunked writing of FAISS's little-endian primitives.

Every read checks that the bytes it needs are present *before* anything is
allocated, so a corrupted size field cannot make us reserve terabytes and a
truncated file fails with the offset where the data ran out. Arrays come back
either as copies (aligned, independent of the input buffer) or, for memory
mapped files, as zero-copy views of the mapping.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

_U8 = struct.Struct("<B")
_I32 = struct.Struct("<i")
_I64 = struct.Struct("<q")
_U64 = struct.Struct("<Q")
_F32 = struct.Struct("<f")


class IndexFileError(ValueError):
    """A file or buffer is not a readable index: truncated, corrupted or foreign.

    ``offset`` is the byte offset where the problem was found (None when the
    problem concerns the whole file, e.g. a checksum mismatch).
    """

    def __init__(self, message: str, offset: int | None = None, source: str = "<buffer>"):
        where = f" at offset {offset}" if offset is not None else ""
        super().__init__(f"{source}: {message}{where}")
        self.offset = offset
        self.source = source


def tag_text(raw: bytes) -> str:
    """A tag as text when it is printable ASCII, else its hex (for messages)."""
    if len(raw) == 4 and all(32 <= b < 127 for b in raw):
        return raw.decode("ascii")
    return "0x" + raw.hex()


class Reader:
    """Sequential reader over a byte buffer with a hard end.

    ``mapped=True`` makes :meth:`array` return views of the buffer (used for
    memory-mapped files: nothing is read until touched); otherwise arrays are
    copied so they are aligned and do not pin the input.
    """

    def __init__(self, buf: Any, end: int | None = None, *, mapped: bool = False,
                 source: str = "<buffer>"):
        self.buf = memoryview(buf).cast("B")
        self.pos = 0
        self.end = len(self.buf) if end is None else end
        self.mapped = mapped
        self.source = source

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def fail(self, message: str, offset: int | None = None) -> IndexFileError:
        """An error to raise, located at ``offset`` (default: the current position)."""
        return IndexFileError(message, self.pos if offset is None else offset, self.source)

    def need(self, nbytes: int, what: str) -> None:
        if nbytes < 0 or nbytes > self.remaining:
            raise self.fail(f"truncated file: {what} needs {nbytes} bytes but only "
                            f"{self.remaining} remain")

    def _unpack(self, st: struct.Struct, what: str) -> Any:
        self.need(st.size, what)
        v = st.unpack_from(self.buf, self.pos)[0]
        self.pos += st.size
        return v

    def u8(self, what: str = "byte") -> int:
        return self._unpack(_U8, what)

    def bool(self, what: str = "flag") -> bool:
        at = self.pos
        v = self.u8(what)
        if v > 1:
            raise self.fail(f"{what}: expected a boolean byte 0 or 1, got {v}", at)
        return bool(v)

    def i32(self, what: str = "int32") -> int:
        return self._unpack(_I32, what)

    def i64(self, what: str = "int64") -> int:
        return self._unpack(_I64, what)

    def u64(self, what: str = "uint64") -> int:
        return self._unpack(_U64, what)

    def f32(self, what: str = "float32") -> float:
        return self._unpack(_F32, what)

    def int_in(self, reader: str, lo: int, hi: int, what: str) -> int:
        """An integer field (``reader`` is 'i32', 'i64' or 'u64') that must lie in [lo, hi]."""
        at = self.pos
        v = getattr(self, reader)(what)
        if not lo <= v <= hi:
            raise self.fail(f"{what}: value {v} outside the valid range [{lo}, {hi}]", at)
        return v

    def tag(self, what: str = "type tag") -> bytes:
        self.need(4, what)
        raw = bytes(self.buf[self.pos:self.pos + 4])
        self.pos += 4
        return raw

    def expect_tag(self, expected: bytes, what: str) -> None:
        at = self.pos
        raw = self.tag(what)
        if raw != expected:
            raise self.fail(f"{what}: expected tag {tag_text(expected)!r}, found {tag_text(raw)!r}", at)

    def array(self, dtype: Any, count: int, what: str) -> np.ndarray:
        """``count`` elements of ``dtype`` (checked against the bytes left first)."""
        dt = np.dtype(dtype).newbyteorder("<")
        if count < 0:
            raise self.fail(f"{what}: negative element count {count}")
        nbytes = count * dt.itemsize
        self.need(nbytes, f"{what} ({count} x {dt.name})")
        arr = np.frombuffer(self.buf, dtype=dt, count=count, offset=self.pos)
        self.pos += nbytes
        if not self.mapped:
            arr = arr.astype(dt.newbyteorder("="), copy=True)
        return arr

    def skip_pad(self, what: str) -> None:
        """The counterpart of :meth:`Writer.pad_to`."""
        at = self.pos
        pad = self.u8(f"{what} padding length")
        if pad > 63:
            raise self.fail(f"{what}: padding of {pad} bytes, at most 63 expected", at)
        self.need(pad, f"{what} padding")
        self.pos += pad

    def vector(self, dtype: Any, what: str, expect: int | None = None) -> np.ndarray:
        """A FAISS vector: uint64 element count, then the elements."""
        at = self.pos
        count = self.u64(f"{what} length")
        itemsize = np.dtype(dtype).itemsize
        if count > self.remaining // itemsize:
            raise self.fail(f"{what}: length field says {count} elements of {itemsize} bytes "
                            f"but only {self.remaining} bytes remain", at)
        if expect is not None and count != expect:
            raise self.fail(f"{what}: expected {expect} elements, length field says {count}", at)
        return self.array(dtype, count, what)


class Writer:
    """Collects the pieces of a serialized index without copying large arrays."""

    def __init__(self, layout: str = "faiss", io_flags: int = 0) -> None:
        self.chunks: list[Any] = []
        self.nbytes = 0
        #: "faiss" (FAISS's bytes) or "voisin" (mappable voisin layouts where they differ)
        self.layout = layout
        #: FAISS's write flags (IO_FLAG_SKIP_STORAGE: graph indexes leave out their vectors)
        self.io_flags = io_flags

    def _put(self, b: Any) -> None:
        self.chunks.append(b)
        self.nbytes += memoryview(b).nbytes

    def u8(self, v: int) -> None:
        self._put(_U8.pack(int(v)))

    def bool(self, v: bool) -> None:
        self._put(_U8.pack(1 if v else 0))

    def i32(self, v: int) -> None:
        self._put(_I32.pack(int(v)))

    def i64(self, v: int) -> None:
        self._put(_I64.pack(int(v)))

    def u64(self, v: int) -> None:
        self._put(_U64.pack(int(v)))

    def f32(self, v: float) -> None:
        self._put(_F32.pack(float(v)))

    def tag(self, t: bytes) -> None:
        if len(t) != 4:  # pragma: no cover - programming error in a format module
            raise AssertionError(f"tags are 4 bytes, got {t!r}")
        self._put(bytes(t))

    def array(self, arr: np.ndarray, dtype: Any) -> None:
        """The raw little-endian elements of ``arr`` as ``dtype`` (no length)."""
        a = np.ascontiguousarray(arr, dtype=np.dtype(dtype).newbyteorder("<"))
        if a.size:
            self._put(memoryview(a).cast("B"))

    def vector(self, arr: np.ndarray, dtype: Any) -> None:
        """A FAISS vector: uint64 element count, then the elements."""
        a = np.asarray(arr)
        self.u64(a.size)
        self.array(a.reshape(-1), dtype)

    def pad_to(self, alignment: int) -> None:
        """A uint8 pad length then that many zero bytes, so the next byte sits at a
        multiple of ``alignment`` from the start of the file (voisin layouts only)."""
        pad = (-(self.nbytes + 1)) % alignment
        self.u8(pad)
        if pad:
            self._put(bytes(pad))

    def getvalue(self) -> bytes:
        return b"".join(self.chunks)
