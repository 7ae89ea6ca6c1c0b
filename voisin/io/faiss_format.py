"""Reading and writing indexes in FAISS's binary layout.

Each index type is a small pair of functions registered here by tag (reading)
and by class (writing); the pairs live in ``voisin/io/formats/``. This module
owns the framing: the common header, nested sub-indexes, the checksum trailer,
memory mapping, and the public ``write_index`` / ``read_index`` /
``serialize_index`` / ``deserialize_index``. The layout is described in
``docs/file-format.md``.

Why it is past 500 lines: the framing is one protocol (header, nesting, trailer,
mapping, pickles through the same bytes) whose parts check each other; the
per-type code that would make it grow lives in ``formats/``.
"""

from __future__ import annotations

import importlib
import mmap as _mmap
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Iterator

import numpy as np

from ..metric import EXTRA_METRICS
from . import checksum as _checksum
from .atomic import atomic_write
from .stream import IndexFileError, Reader, Writer, tag_text

# FAISS's values, so code written for faiss passes the same flags.
IO_FLAG_SKIP_STORAGE = 1
IO_FLAG_READ_ONLY = 2
IO_FLAG_MMAP = 0x646F0008
IO_FLAG_MMAP_IFC = 1 << 9
_MMAP_BITS = (IO_FLAG_MMAP & ~8) | IO_FLAG_MMAP_IFC

# Nesting deeper than this is not something a real index does; a forged file
# could otherwise recurse until Python's stack gives out.
MAX_DEPTH = 32
# FAISS has no limit on d; this one rejects garbage long before allocation.
MAX_DIMENSION = 1 << 24
_DUMMY = 1 << 20

# Format modules: each registers its readers and writers when imported. A
# module whose index family does not exist yet is skipped (and remembered, so
# the error for its tag can say so).
_FORMAT_MODULES = ("flat", "idmap", "ivf", "ivf_dedup", "sq", "pq", "ivfpq", "fastscan", "hnsw",
                   "pretransform", "refine", "binary", "lsh", "spectral_hash", "imi", "rq",
                   "graphs", "index2layer", "rabitq", "aq_fastscan")

ReadFn = Callable[[Reader, "ReadContext", bytes], Any]
WriteFn = Callable[[Writer, Any], None]

_READERS: dict[bytes, ReadFn] = {}
_WRITERS: dict[type, WriteFn] = {}
_FORMATS_LOADED = False
_FORMAT_ERRORS: dict[str, str] = {}

# FAISS tags voisin has no counterpart for, so the error names the FAISS type.
_FAISS_TAG_NAMES = {
    b"IvFl": "IndexIVFFlat (pre-2017 layout)", b"IvFL": "IndexIVFFlat (pre-2017 layout)",
    b"IxRQ": "IndexResidualQuantizer (pre-1.7 layout)",
    b"IBHc": "IndexBinaryHNSWCagra",
    # RaBitQ fast-scan forms (faiss 1.13+): see the "Not implemented" section of
    # docs/file-format.md (the plain Ixrq/Iwrq forms are io/formats/rabitq.py)
    b"Irfn": "IndexRaBitQFastScan", b"Iwrn": "IndexIVFRaBitQFastScan",
}


# --------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------

def register_reader(*tags: bytes) -> Callable[[ReadFn], ReadFn]:
    """Decorator: ``fn(reader, ctx, tag) -> Index`` reads the body after ``tag``."""
    def deco(fn: ReadFn) -> ReadFn:
        for t in tags:
            _READERS[t] = fn
        return fn
    return deco


def register_writer(*classes: type) -> Callable[[WriteFn], WriteFn]:
    """Decorator: ``fn(writer, index)`` writes ``index`` including its tag."""
    def deco(fn: WriteFn) -> WriteFn:
        for c in classes:
            _WRITERS[c] = fn
        return fn
    return deco


def _load_formats() -> None:
    global _FORMATS_LOADED
    if _FORMATS_LOADED:
        return
    for name in _FORMAT_MODULES:
        try:
            importlib.import_module(f"{__package__}.formats.{name}")
        except Exception as exc:  # the index family is not in this build (or broken):
            # the other families must stay readable
            _FORMAT_ERRORS[name] = f"{type(exc).__name__}: {exc}"
    _FORMATS_LOADED = True


def supported_tags() -> list[str]:
    """The tags this build of voisin can read."""
    _load_formats()
    return sorted(t.decode("ascii") for t in _READERS)


def _writer_for(index: Any) -> WriteFn | None:
    _load_formats()
    for cls in type(index).__mro__:
        fn = _WRITERS.get(cls)
        if fn is not None:
            return fn
    return None


# --------------------------------------------------------------------------
# the common header and nesting
# --------------------------------------------------------------------------

@dataclass
class Header:
    """FAISS's common float-index header."""
    d: int
    ntotal: int
    is_trained: bool
    metric_type: int
    metric_arg: float = 0.0


def read_header(r: Reader, what: str = "index", extra_metrics: bool = False) -> Header:
    """FAISS's index header; ``extra_metrics``: the family serves METRIC_L1 and the
    other further metrics (IndexFlat and the wrappers around it)."""
    d = r.int_in("i32", 1, MAX_DIMENSION, f"{what} dimension d")
    ntotal = r.int_in("i64", 0, 1 << 48, f"{what} ntotal")
    r.i64(f"{what} header padding")
    r.i64(f"{what} header padding")
    is_trained = r.bool(f"{what} is_trained")
    at = r.pos
    metric = r.i32(f"{what} metric_type")
    metric_arg = 0.0
    if metric > 1:
        metric_arg = r.f32(f"{what} metric_arg")
    if metric not in (0, 1) and not (extra_metrics and metric in EXTRA_METRICS):
        served = "IndexFlat" if metric in EXTRA_METRICS else "voisin"
        raise r.fail(f"{what}: metric_type {metric} is not supported by {served} "
                     "(only 0 = inner product and 1 = L2)", at)
    return Header(d, ntotal, is_trained, metric, metric_arg)


def write_header(w: Writer, index: Any, ntotal: int | None = None) -> None:
    w.i32(index.d)
    w.i64(index.ntotal if ntotal is None else ntotal)
    w.i64(_DUMMY)
    w.i64(_DUMMY)
    w.bool(index.is_trained)
    w.i32(index.metric_type)
    if index.metric_type > 1:
        w.f32(getattr(index, "metric_arg", 0.0))


@dataclass
class ReadContext:
    """What a type reader may need beyond the bytes: flags and nesting depth."""
    io_flags: int = 0
    depth: int = 0

    @property
    def mapped(self) -> bool:
        return bool(self.io_flags & _MMAP_BITS)

    def read_nested(self, r: Reader, what: str) -> Any:
        """A sub-index (e.g. the quantizer of an IVF index); None for ``null``."""
        return read_object(r, self, what)


def read_object(r: Reader, ctx: ReadContext, what: str = "index", allow_null: bool = False) -> Any:
    at = r.pos
    tag = r.tag(f"{what} type tag")
    if tag == b"null":
        if allow_null:
            return None
        raise r.fail(f"{what}: found an empty ('null') index where one is required (FAISS "
                     "writes one in place of a graph's storage with IO_FLAG_SKIP_STORAGE; "
                     "voisin cannot open a graph without its vectors)", at)
    fn = _READERS.get(tag)
    if fn is None:
        raise r.fail(_unknown_tag_message(tag, what), at)
    if ctx.depth >= MAX_DEPTH:
        raise r.fail(f"{what}: indexes nested more than {MAX_DEPTH} deep", at)
    sub = ReadContext(ctx.io_flags, ctx.depth + 1)
    try:
        return fn(r, sub, tag)
    except IndexFileError:
        raise
    except (ValueError, TypeError, OverflowError) as exc:
        # a constructor refusing the values read (e.g. an impossible parameter):
        # report it as a bad file, located at the object that holds it
        raise r.fail(f"{what} {tag_text(tag)!r}: inconsistent content ({exc})", at) from exc


def _unknown_tag_message(tag: bytes, what: str) -> str:
    name = _FAISS_TAG_NAMES.get(tag)
    if name is not None:
        return f"{what}: FAISS type {name} (tag {tag_text(tag)!r}) is not supported by voisin"
    if all(32 <= b < 127 for b in tag):
        return (f"{what}: unknown index type tag {tag_text(tag)!r} (supported: "
                f"{', '.join(supported_tags())})")
    return f"{what}: not an index file, found bytes {tag_text(tag)} where a type tag was expected"


def write_object(w: Writer, index: Any) -> None:
    """Write ``index`` (tag + body), or ``null`` for None."""
    if index is None:
        w.tag(b"null")
        return
    fn = _writer_for(index)
    if fn is None:
        raise TypeError(f"write_index: no file format for {type(index).__name__} "
                        f"(formats known for: {', '.join(sorted(c.__name__ for c in _WRITERS))})")
    fn(w, index)


# --------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------

LAYOUTS = ("faiss", "voisin")


def _check_flags(io_flags: Any) -> int:
    if isinstance(io_flags, bool) or not isinstance(io_flags, (int, np.integer)):
        raise TypeError(f"io_flags: expected an int (e.g. IO_FLAG_MMAP), got {io_flags!r}")
    return int(io_flags)


def emit(w: Writer, f: Any) -> None:
    """Send the pieces of ``w`` to a path (atomically) or to anything with ``write``."""
    def dump(out: BinaryIO) -> None:
        for chunk in w.chunks:
            out.write(chunk)

    if hasattr(f, "write"):
        dump(f)
    elif isinstance(f, (str, os.PathLike)):
        atomic_write(f, dump)
    else:
        raise TypeError(f"f: expected a path or a binary file object, got {type(f).__name__}")


def add_trailer(w: Writer) -> None:
    """Append voisin's checksum trailer over everything written so far."""
    crc = 0
    for chunk in w.chunks:
        crc = _checksum.crc32(chunk, crc=crc)
    w._put(_checksum.make_trailer(w.nbytes, crc))


def parse_prefix(buf: Any, source: str, io_flags: int, verify: bool,
                 read: Callable[[Reader, ReadContext], Any] = read_object) -> tuple[Any, int]:
    """The object at the start of ``buf`` and the bytes it took, its checksum
    trailer included when one follows it: a stream may hold more after it."""
    _load_formats()
    r = Reader(buf, source=source)
    obj = read(r, ReadContext(io_flags & ~_MMAP_BITS))
    end = r.pos
    mv = memoryview(buf).cast("B")
    if len(mv) - end >= _checksum.TRAILER_SIZE:
        trailer = _checksum.find_trailer(mv[:end + _checksum.TRAILER_SIZE], source)
        if trailer is not None:
            if verify:
                _checksum.verify(mv, trailer, source)
            end += _checksum.TRAILER_SIZE
    return obj, end


@contextmanager
def _serialize(index: Any, with_checksum: bool, layout: str = "faiss",
               io_flags: int = 0, binary: bool = False) -> Iterator[Writer]:
    """The index's pieces, valid only inside the ``with`` block.

    The chunks are views of the index's live arrays (no copy), and writers
    change some arrays in place (an id map shifts its ids on removal): the
    write lock is held until the caller has consumed them, or a save racing
    a removal would store (and checksum) a state that never existed.
    """
    _check_kind(index, binary)
    if layout not in LAYOUTS:
        raise ValueError(f"layout: expected 'faiss' or 'voisin', got {layout!r}")
    w = Writer(layout, _check_flags(io_flags))
    with index._write_lock:
        write_object(w, index)
        if with_checksum:
            add_trailer(w)
        yield w


def _check_kind(index: Any, binary: bool) -> None:
    """Float indexes go through write_index, binary ones through write_index_binary
    (FAISS's split; a file of one kind is refused by the other reader too)."""
    from ..index import Index
    from ..indexes.binary import IndexBinary
    if binary and not isinstance(index, IndexBinary):
        hint = " (a float index: use write_index)" if isinstance(index, Index) else ""
        raise TypeError(f"index: expected a voisin binary index (IndexBinary...), got "
                        f"{type(index).__name__}{hint}")
    if not binary and not isinstance(index, Index):
        hint = (" (a binary index: use write_index_binary / serialize_index_binary)"
                if isinstance(index, IndexBinary) else "")
        raise TypeError(f"index: expected a voisin Index, got {type(index).__name__}{hint}")


def check_read_kind(index: Any, binary: bool, source: str) -> Any:
    """The index read from ``source`` when it is of the kind asked for."""
    from ..indexes.binary import IndexBinary
    if binary and not isinstance(index, IndexBinary):
        raise IndexFileError(f"holds a float index ({type(index).__name__}), not a binary one: "
                             "open it with read_index", 0, source)
    if not binary and isinstance(index, IndexBinary):
        raise IndexFileError(f"holds a binary index ({type(index).__name__}): open it with "
                             "read_index_binary", 0, source)
    return index


def serialize_index(index: Any, io_flags: int = 0, *, checksum: bool = True,
                    layout: str = "faiss") -> np.ndarray:
    """The bytes of ``write_index(index, ...)`` as a uint8 numpy array (as FAISS).

    ``checksum=False`` leaves out voisin's integrity trailer, giving exactly the
    bytes FAISS would write for the same index.

    Example:
        >>> import numpy as np, voisin
        >>> index = voisin.IndexFlatL2(4); index.add(np.eye(4))
        >>> buf = voisin.serialize_index(index)
        >>> voisin.deserialize_index(buf).ntotal
        4
    """
    with _serialize(index, checksum, layout, io_flags) as w:
        return np.frombuffer(w.getvalue(), dtype=np.uint8).copy()


def write_index(index: Any, f: str | os.PathLike | BinaryIO, io_flags: int = 0, *,
                checksum: bool = True, layout: str = "faiss") -> None:
    """Write ``index`` to a path (atomically), an open binary file or an
    IOWriter (``VectorIOWriter``, ``PyCallbackIOWriter``...).

    ``io_flags=IO_FLAG_SKIP_STORAGE`` writes a graph index (HNSW) without its
    vectors, as FAISS does (an empty ``null`` storage); voisin cannot open
    such a file, FAISS can.

    For a path the bytes go to a temporary file in the same directory, which
    is fsynced and renamed over ``f``: readers see the old file or the new
    one, never a torn one. The file ends with a checksum trailer that FAISS
    ignores; ``checksum=False`` writes exactly what FAISS writes.

    ``layout="voisin"`` stores the parts whose FAISS layout differs from
    voisin's memory layout (IVF inverted lists, HNSW graphs) the voisin way,
    so that ``read_index(..., IO_FLAG_MMAP)`` maps them without copying. FAISS
    cannot read such files; voisin reads both (docs/file-format.md).

    Example:
        >>> import numpy as np, os, tempfile, voisin
        >>> index = voisin.IndexFlatL2(4); index.add(np.eye(4))
        >>> path = os.path.join(tempfile.mkdtemp(), "flat.index")
        >>> voisin.write_index(index, path)
        >>> voisin.read_index(path).ntotal
        4
    """
    if not hasattr(f, "write") and not isinstance(f, (str, os.PathLike)):
        raise TypeError(f"f: expected a path or a binary file object, got {type(f).__name__}")
    with _serialize(index, checksum, layout, io_flags) as w:
        emit(w, f)


def _parse(buf: Any, source: str, io_flags: int, verify: bool) -> Any:
    _load_formats()
    n = len(memoryview(buf).cast("B"))
    if n == 0:
        raise IndexFileError("empty file, not an index", 0, source)
    trailer = _checksum.find_trailer(buf, source)
    end = n
    if trailer is not None:
        end = trailer.payload_length
        if verify:
            _checksum.verify(buf, trailer, source)
    ctx = ReadContext(io_flags)
    r = Reader(buf, end, mapped=ctx.mapped, source=source)
    index = read_object(r, ctx)
    if r.pos != end:
        raise r.fail(f"{end - r.pos} unexpected bytes after the end of the index "
                     "(appended data or a damaged file)")
    return index


def read_index(f: str | os.PathLike | BinaryIO, io_flags: int = 0, *, mmap: bool = False,
               verify_checksum: bool | None = None) -> Any:
    """Open an index written by voisin or FAISS.

    ``io_flags=IO_FLAG_MMAP`` (or ``mmap=True``) maps the file and leaves the
    large arrays (vectors, inverted lists, the HNSW graph) in the page cache
    instead of reading them: opening costs milliseconds whatever the size and
    processes mapping the same file share its pages. Changes to a mapped index
    stay private to the process (copy-on-write) and never reach the file; add
    ``IO_FLAG_READ_ONLY`` to make in-place changes raise instead.

    ``verify_checksum`` (default: True, except when mapping, where it would
    read the whole file) checks voisin's integrity trailer when present.
    Damaged, truncated, empty or foreign files raise :class:`IndexFileError`
    (a ValueError) naming the problem and its offset.

    Example:
        >>> import numpy as np, os, tempfile, voisin
        >>> path = os.path.join(tempfile.mkdtemp(), "x.index")
        >>> index = voisin.IndexFlatIP(3); index.add(np.eye(3))
        >>> voisin.write_index(index, path)
        >>> voisin.read_index(path, voisin.IO_FLAG_MMAP).search(np.eye(3)[:1], 1)[1].tolist()
        [[0]]
    """
    return check_read_kind(_read_any(f, io_flags, mmap, verify_checksum), False, _source_of(f))


def _source_of(f: Any) -> str:
    if isinstance(f, (str, os.PathLike)):
        return os.fspath(f)
    return str(getattr(f, "name", "<file>"))


def _read_any(f: Any, io_flags: int, mmap: bool, verify_checksum: bool | None) -> Any:
    """Any index (float or binary) from a path, a file object or an IOReader."""
    io_flags = _check_flags(io_flags)
    if mmap:
        io_flags |= IO_FLAG_MMAP
    mapped = bool(io_flags & _MMAP_BITS)
    verify = (not mapped) if verify_checksum is None else bool(verify_checksum)
    from .ioreaders import IOReader
    if isinstance(f, IOReader):
        # a stream may hold several objects: read one, leave the rest
        index = f.read_object(lambda buf, source: parse_prefix(
            buf, source, io_flags, verify_checksum is None or bool(verify_checksum)))
        if io_flags & IO_FLAG_READ_ONLY:
            _freeze(index)
        return index
    if hasattr(f, "read"):
        data = f.read()  # type: ignore[union-attr]
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("f: expected a binary file object (opened with 'rb')")
        return _parse(data, getattr(f, "name", "<file>"), io_flags & ~_MMAP_BITS, verify)
    if not isinstance(f, (str, os.PathLike)):
        raise TypeError(f"f: expected a path or a binary file object, got {type(f).__name__}")
    path = os.fspath(f)
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            raise IndexFileError("empty file, not an index", 0, path)
        if mapped:
            access = _mmap.ACCESS_READ if io_flags & IO_FLAG_READ_ONLY else _mmap.ACCESS_COPY
            buf: Any = _mmap.mmap(fh.fileno(), 0, access=access)
        else:
            buf = bytearray(size)
            got = fh.readinto(buf)
            if got != size:
                raise IndexFileError(f"file shrank while reading: expected {size} bytes, got {got}",
                                     got, path)
    index = _parse(buf, path, io_flags, verify)
    if io_flags & IO_FLAG_READ_ONLY:
        _freeze(index)
    return index


def _freeze(index: Any) -> None:
    """IO_FLAG_READ_ONLY: refuse modifications and make the loaded arrays non-writeable."""
    from ..index import Index
    from ..indexes.binary import IndexBinary
    seen: set[int] = set()

    def walk(obj: Any) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, (Index, IndexBinary)):
            obj._read_only = True
        for v in vars(obj).values():
            if isinstance(v, np.ndarray):
                v.flags.writeable = False
            elif isinstance(v, (list, tuple)):
                for item in v:
                    if isinstance(item, np.ndarray):
                        item.flags.writeable = False
                    elif hasattr(item, "__dict__") and type(item).__module__.startswith("voisin"):
                        walk(item)
            elif hasattr(v, "__dict__") and type(v).__module__.startswith("voisin"):
                walk(v)

    walk(index)


def deserialize_index(data: Any, io_flags: int = 0, *, verify_checksum: bool = True) -> Any:
    """The index held in ``data`` (uint8 array or bytes from :func:`serialize_index`)."""
    return check_read_kind(_deserialize_any(data, io_flags, verify_checksum), False,
                           "<serialized index>")


def _deserialize_any(data: Any, io_flags: int, verify_checksum: bool) -> Any:
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8 or data.ndim != 1:
            raise TypeError(f"data: expected a 1-D uint8 array, got dtype {data.dtype} "
                            f"and shape {data.shape}")
        data = np.ascontiguousarray(data)
    elif not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data: expected a uint8 numpy array or bytes, got {type(data).__name__}")
    # Arrays are always copied out of a caller's buffer: it may change later.
    return _parse(data, "<serialized index>", int(io_flags) & ~_MMAP_BITS, verify_checksum)


# --------------------------------------------------------------------------
# pickling (used by Index.__reduce__)
# --------------------------------------------------------------------------

def _unpickle_index(data: bytes, knobs: tuple = ()) -> Any:
    # ``knobs``: written by voisin 0.1 pickles for HNSW walk settings that became
    # index compositions; they are ignored (the index is whole without them)
    return _parse(data, "<pickled index>", 0, True)


def _restore_state(cls: type, state: dict) -> Any:
    obj = cls.__new__(cls)
    obj.__setstate__(state)
    return obj


def reduce_index(index: Any) -> tuple:
    """``__reduce__`` of every Index: its serialized bytes when a format exists."""
    if _writer_for(index) is None:
        return (_restore_state, (type(index), index.__getstate__()))
    with _serialize(index, True) as w:
        return (_unpickle_index, (w.getvalue(),))
