"""Reading is safe: damaged, truncated, empty or foreign input raises a clear error.

Every error is an ``IndexFileError`` (a ValueError) whose message names the
problem and, where it has one, the byte offset. Exhaustive over small files:
every truncation length and every single-byte change.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

import voisin
from voisin.io import IndexFileError
from voisin.io.checksum import TRAILER_SIZE

faiss = pytest.importorskip("faiss")


def small_flat() -> voisin.IndexFlatL2:
    index = voisin.IndexFlatL2(3)
    index.add(np.arange(12, dtype=np.float32).reshape(4, 3))
    return index


def small_idmap() -> voisin.IndexIDMap:
    index = voisin.IndexIDMap(voisin.IndexFlatIP(2))
    index.add_with_ids(np.arange(6, dtype=np.float32).reshape(3, 2), np.array([9, 4, 7]))
    return index


def test_faiss_ignores_the_checksum_trailer(tmp_path):
    """The premise of the trailer: FAISS reads the index and stops, by path and from memory."""
    index = small_idmap()
    plain = voisin.serialize_index(index, checksum=False)
    full = voisin.serialize_index(index)
    assert len(full) == len(plain) + TRAILER_SIZE
    path = tmp_path / "with-trailer.index"
    path.write_bytes(full.tobytes())
    q = np.ones((1, 2), np.float32)
    for loaded in (faiss.read_index(str(path)), faiss.deserialize_index(full)):
        ref = faiss.deserialize_index(plain)
        assert loaded.ntotal == 3
        np.testing.assert_array_equal(loaded.search(q, 3)[1], ref.search(q, 3)[1])
        np.testing.assert_array_equal(loaded.search(q, 3)[0], ref.search(q, 3)[0])


@pytest.mark.parametrize("build", [small_flat, small_idmap])
@pytest.mark.parametrize("checksum", [True, False])
def test_every_truncation_is_reported(build, checksum):
    buf = voisin.serialize_index(build(), checksum=checksum).tobytes()
    for n in range(len(buf)):
        cut = buf[:n]
        if checksum and n == len(buf) - TRAILER_SIZE:
            # without its trailer the file is a valid plain FAISS file
            assert voisin.deserialize_index(cut).ntotal == build().ntotal
            continue
        with pytest.raises(IndexFileError) as err:
            voisin.deserialize_index(cut)
        msg = str(err.value)
        assert "offset" in msg or "empty" in msg, msg


@pytest.mark.parametrize("build", [small_flat, small_idmap])
def test_every_byte_change_is_detected_with_checksum(build):
    buf = bytearray(voisin.serialize_index(build()).tobytes())
    for pos in range(len(buf)):
        for delta in (1, 0x80):
            bad = bytearray(buf)
            bad[pos] ^= delta
            with pytest.raises(IndexFileError):
                voisin.deserialize_index(bytes(bad))


@pytest.mark.parametrize("build", [small_flat, small_idmap])
def test_byte_changes_without_checksum_never_crash(build):
    """Without the trailer some changes (a float) are undetectable; none may crash."""
    buf = bytearray(voisin.serialize_index(build(), checksum=False).tobytes())
    q = np.ones((2, build().d), np.float32)
    for pos in range(len(buf)):
        for value in (0, 0xFF, buf[pos] ^ 1):
            bad = bytearray(buf)
            bad[pos] = value
            try:
                index = voisin.deserialize_index(bytes(bad))
            except IndexFileError:
                continue
            index.search(q, 3)


def test_empty_and_foreign_files(tmp_path):
    empty = tmp_path / "empty.index"
    empty.write_bytes(b"")
    with pytest.raises(IndexFileError, match="empty"):
        voisin.read_index(empty)
    with pytest.raises(IndexFileError, match="empty"):
        voisin.read_index(empty, voisin.IO_FLAG_MMAP)
    png = tmp_path / "image.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(IndexFileError, match=r"not an index file.*offset 0"):
        voisin.read_index(png)
    text = tmp_path / "notes.txt"
    text.write_bytes(b"hello world, this is not an index")
    with pytest.raises(IndexFileError, match=r"unknown index type tag 'hell'.*offset 0"):
        voisin.read_index(text)


def test_unsupported_faiss_types_are_named():
    rabitq = faiss.IndexRaBitQFastScan(8, faiss.METRIC_L2)
    with pytest.raises(IndexFileError, match="IndexRaBitQFastScan"):
        voisin.deserialize_index(faiss.serialize_index(rabitq))
    binary = faiss.IndexBinaryFlat(16)
    with pytest.raises(IndexFileError, match="IndexBinaryFlat"):
        voisin.deserialize_index(faiss.serialize_index_binary(binary))


def test_absurd_size_fields_do_not_allocate():
    buf = bytearray(voisin.serialize_index(small_flat(), checksum=False).tobytes())
    # the vector length field follows the 4-byte tag and the 33-byte header
    at = 4 + 33
    for huge in (1 << 40, 1 << 62, (1 << 64) - 1):
        bad = bytearray(buf)
        struct.pack_into("<Q", bad, at, huge)
        with pytest.raises(IndexFileError, match=rf"length field says {huge}.*offset {at}"):
            voisin.deserialize_index(bytes(bad))
    bad = bytearray(buf)
    struct.pack_into("<q", bad, 8, 1 << 45)  # ntotal
    with pytest.raises(IndexFileError, match="IndexFlat vectors"):
        voisin.deserialize_index(bytes(bad))
    bad = bytearray(buf)
    struct.pack_into("<i", bad, 4, -3)  # d
    with pytest.raises(IndexFileError, match=r"dimension d: value -3.*offset 4"):
        voisin.deserialize_index(bytes(bad))


def test_unsupported_metric_is_reported():
    bad = bytearray(voisin.serialize_index(small_flat(), checksum=False).tobytes())
    struct.pack_into("<i", bad, 4 + 29, 7)
    with pytest.raises(IndexFileError, match="metric_type 7"):
        voisin.deserialize_index(bytes(bad))


def test_trailing_garbage_and_damaged_trailer():
    plain = voisin.serialize_index(small_flat(), checksum=False).tobytes()
    with pytest.raises(IndexFileError, match=rf"5 unexpected bytes.*offset {len(plain)}"):
        voisin.deserialize_index(plain + b"extra")
    full = voisin.serialize_index(small_flat()).tobytes()
    with pytest.raises(IndexFileError, match="does not match its checksum trailer"):
        voisin.deserialize_index(full[:10] + full[11:])
    bad = bytearray(full)
    bad[-3] ^= 1  # inside the trailer's own CRC
    with pytest.raises(IndexFileError, match="trailer is damaged"):
        voisin.deserialize_index(bytes(bad))
    bad = bytearray(full)
    bad[50] ^= 4  # a float of the payload
    with pytest.raises(IndexFileError, match="checksum mismatch"):
        voisin.deserialize_index(bytes(bad))
    # explicitly skipping verification serves the damaged float
    assert voisin.deserialize_index(bytes(bad), verify_checksum=False).ntotal == 4


def test_deep_nesting_is_bounded():
    # IxMp headers nested 200 deep: rejected without exhausting the stack
    header = struct.pack("<iqqqBi", 2, 0, 1 << 20, 1 << 20, 1, 1)
    buf = (b"IxMp" + header) * 200 + b"IxF2" + header + struct.pack("<Q", 0)
    with pytest.raises(IndexFileError, match="nested more than"):
        voisin.deserialize_index(buf)


def test_null_where_an_index_is_required():
    header = struct.pack("<iqqqBi", 2, 0, 1 << 20, 1 << 20, 1, 1)
    with pytest.raises(IndexFileError, match=r"'null'.*offset 37"):
        voisin.deserialize_index(b"IxMp" + header + b"null" + struct.pack("<Q", 0))


def test_inconsistent_nested_sizes():
    v = small_idmap()
    buf = bytearray(voisin.serialize_index(v, checksum=False).tobytes())
    struct.pack_into("<q", buf, 8, 2)  # wrapper ntotal 2, wrapped index holds 3
    with pytest.raises(IndexFileError, match=r"ntotal=2 but the wrapped index has.*ntotal=3.*offset 4"):
        voisin.deserialize_index(bytes(buf))


@pytest.mark.parametrize("desc,name", [("RaBitQfs", "IndexRaBitQFastScan"),
                                       ("IVF16,RaBitQfs", "IndexIVFRaBitQFastScan")])
def test_rabitq_fastscan_files_and_strings_are_refused_by_name(desc, name):
    # the plain forms (Ixrq, Iwrq) are read and written: tests/test_rabitq.py
    faiss = pytest.importorskip("faiss")
    x = np.random.default_rng(0).normal(size=(2000, 16)).astype("float32")
    f = faiss.index_factory(16, desc)
    f.train(x)
    f.add(x)
    with pytest.raises(voisin.IndexFileError, match=f"FAISS type {name}"):
        voisin.deserialize_index(faiss.serialize_index(f))
    with pytest.raises(voisin.FactoryError, match="RaBitQ's fast-scan forms .* are not implemented"):
        voisin.index_factory(16, desc)
