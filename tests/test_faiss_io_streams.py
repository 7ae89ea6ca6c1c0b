"""FAISS's I/O objects on voisin: IO flags, IOReader/IOWriter streams and the
codec files, compared byte for byte with faiss-cpu where its bytes are
deterministic (structures loaded from one faiss file), read both ways.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

import voisin

faiss = pytest.importorskip("faiss")
pytestmark = pytest.mark.usefixtures("faiss_single_thread")


@pytest.fixture(scope="module")
def xb():
    return voisin.rand((3000, 16), 11)


def _faiss_bytes(write, obj, *args) -> np.ndarray:
    w = faiss.VectorIOWriter()
    write(obj, w, *args)
    return faiss.vector_to_array(w.data)


def _voisin_reader(data) -> voisin.VectorIOReader:
    r = voisin.VectorIOReader()
    voisin.copy_array_to_vector(np.asarray(data, dtype=np.uint8), r.data)
    return r


def test_io_flags_have_faiss_values():
    for name in ("IO_FLAG_MMAP", "IO_FLAG_READ_ONLY", "IO_FLAG_SKIP_STORAGE", "IO_FLAG_MMAP_IFC"):
        assert getattr(voisin, name) == getattr(faiss, name), name


def test_vector_io_round_trip_both_ways(xb):
    f = faiss.index_factory(16, "IVF8,PQ4x4")
    f.train(xb)
    f.add(xb)
    fbytes = _faiss_bytes(faiss.write_index, f)
    v = voisin.read_index(_voisin_reader(fbytes))
    w = voisin.VectorIOWriter()
    voisin.write_index(v, w, checksum=False)
    np.testing.assert_array_equal(voisin.vector_to_array(w.data), fbytes)
    # with voisin's checksum trailer, faiss still reads it
    w = voisin.VectorIOWriter()
    voisin.write_index(v, w)
    r = faiss.VectorIOReader()
    faiss.copy_array_to_vector(voisin.vector_to_array(w.data), r.data)
    back = faiss.read_index(r)
    xq = xb[:5]
    np.testing.assert_array_equal(back.search(xq, 4)[1], f.search(xq, 4)[1])
    # FAISS's own serialize_index / deserialize_index signatures
    np.testing.assert_array_equal(voisin.serialize_index(v, 0, checksum=False), fbytes)
    assert voisin.deserialize_index(fbytes, 0).ntotal == 3000


def test_several_objects_in_one_stream(xb):
    a, b = voisin.IndexFlatL2(16), voisin.IndexFlatIP(16)
    a.add(xb[:10])
    b.add(xb[:20])
    pq = voisin.ProductQuantizer(16, 4, 4)
    pq.train(xb)
    w = voisin.VectorIOWriter()
    voisin.write_index(a, w)                 # with trailer
    voisin.write_index(b, w, checksum=False)  # without
    voisin.write_ProductQuantizer(pq, w)
    r = _voisin_reader(voisin.vector_to_array(w.data))
    assert voisin.read_index(r).ntotal == 10
    got = voisin.read_index(r)
    assert got.ntotal == 20 and got.metric_type == voisin.METRIC_INNER_PRODUCT
    np.testing.assert_array_equal(voisin.read_ProductQuantizer(r).centroids, pq.centroids)
    assert r.rp == r.data.size()
    with pytest.raises(voisin.IndexFileError, match="no data left"):
        voisin.read_index(r)


def test_callback_and_buffered_streams(xb, tmp_path):
    index = voisin.IndexFlatL2(16)
    index.add(xb)
    sink = io.BytesIO()
    chunks = []

    def write(b):
        chunks.append(len(b))
        sink.write(b)
    voisin.write_index(index, voisin.BufferedIOWriter(voisin.PyCallbackIOWriter(write, 1000), 4096))
    assert max(chunks) <= 1000
    sink.seek(0)
    back = voisin.read_index(voisin.BufferedIOReader(voisin.PyCallbackIOReader(sink.read, 777)))
    np.testing.assert_array_equal(back.reconstruct_n(0, 3000), xb)
    # faiss reads what a voisin callback writer produced, and the reverse
    sink = io.BytesIO()
    voisin.write_index(index, voisin.PyCallbackIOWriter(sink.write))
    sink.seek(0)
    fidx = faiss.read_index(faiss.PyCallbackIOReader(sink.read))
    assert fidx.ntotal == 3000
    sink = io.BytesIO()
    faiss.write_index(fidx, faiss.PyCallbackIOWriter(sink.write))
    sink.seek(0)
    assert voisin.read_index(voisin.PyCallbackIOReader(sink.read)).ntotal == 3000
    path = tmp_path / "f.index"
    voisin.write_index(index, voisin.FileIOWriter(str(path)))
    assert voisin.read_index(voisin.FileIOReader(str(path))).ntotal == 3000


def test_stream_bad_input(xb):
    with pytest.raises(TypeError, match="callback: expected a function"):
        voisin.PyCallbackIOReader(5)
    with pytest.raises(TypeError, match="callback: expected it to return bytes"):
        voisin.read_index(voisin.PyCallbackIOReader(lambda n: "text"))
    with pytest.raises(ValueError, match="bs: expected an integer >= 1"):
        voisin.PyCallbackIOWriter(print, 0)
    with pytest.raises(TypeError, match="reader: expected an IOReader"):
        voisin.BufferedIOReader(io.BytesIO())
    index = voisin.IndexFlatL2(16)
    index.add(xb[:50])
    data = voisin.serialize_index(index)
    with pytest.raises(voisin.IndexFileError, match="only 55 bytes remain"):
        voisin.read_index(_voisin_reader(data[:100]))
    damaged = data.copy()
    damaged[60] ^= 0xFF
    with pytest.raises(voisin.IndexFileError, match="checksum mismatch"):
        voisin.read_index(_voisin_reader(damaged))


def test_read_only_flag_through_a_stream(xb):
    index = voisin.IndexFlatL2(16)
    index.add(xb[:50])
    got = voisin.read_index(_voisin_reader(voisin.serialize_index(index)), voisin.IO_FLAG_READ_ONLY)
    with pytest.raises(RuntimeError, match="IO_FLAG_READ_ONLY"):
        got.add(xb[:1])


def test_skip_storage_writes_faiss_bytes(xb):
    f = faiss.IndexHNSWFlat(16, 8)
    f.add(xb[:800])
    v = voisin.deserialize_index(faiss.serialize_index(f))
    fb = _faiss_bytes(faiss.write_index, f, faiss.IO_FLAG_SKIP_STORAGE)
    vb = voisin.serialize_index(v, voisin.IO_FLAG_SKIP_STORAGE, checksum=False)
    np.testing.assert_array_equal(vb, fb)
    assert vb.size < voisin.serialize_index(v, checksum=False).size - 800 * 16 * 4
    # faiss opens the graph-only file; voisin, whose HNSW holds its vectors, says why it cannot
    g = faiss.deserialize_index(vb)
    assert g.ntotal == 800 and g.storage is None
    with pytest.raises(voisin.IndexFileError, match="IO_FLAG_SKIP_STORAGE"):
        voisin.deserialize_index(vb)
    with pytest.raises(TypeError, match="io_flags: expected an int"):
        voisin.serialize_index(v, "skip")


def test_product_quantizer_files(xb, tmp_path):
    fpq = faiss.ProductQuantizer(16, 4, 6)
    fpq.train(xb)
    fb = _faiss_bytes(faiss.write_ProductQuantizer, fpq)
    pq = voisin.read_ProductQuantizer(_voisin_reader(fb))
    assert (pq.d, pq.M, pq.nbits) == (16, 4, 6)
    np.testing.assert_array_equal(pq.centroids.ravel(), faiss.vector_to_array(fpq.centroids))
    w = voisin.VectorIOWriter()
    voisin.write_ProductQuantizer(pq, w, checksum=False)
    np.testing.assert_array_equal(voisin.vector_to_array(w.data), fb)
    path = str(tmp_path / "pq.bin")
    voisin.write_ProductQuantizer(pq, path)
    back = faiss.read_ProductQuantizer(path)  # FAISS stops before voisin's trailer
    np.testing.assert_array_equal(faiss.vector_to_array(back.centroids), pq.centroids.ravel())
    np.testing.assert_array_equal(voisin.read_ProductQuantizer(path).compute_codes(xb[:20]),
                                  pq.compute_codes(xb[:20]))
    faiss.write_ProductQuantizer(fpq, path)
    assert voisin.read_ProductQuantizer(path).M == 4
    with open(path, "ab") as fh:
        fh.write(b"junk")
    with pytest.raises(voisin.IndexFileError, match="4 unexpected bytes"):
        voisin.read_ProductQuantizer(path)
    with pytest.raises(TypeError, match="pq: expected a ProductQuantizer"):
        voisin.write_ProductQuantizer("pq", path)


def test_vector_transform_files(xb):
    for make in (lambda: faiss.PCAMatrix(16, 8), lambda: faiss.PCAMatrix(16, 16, -0.5, True),
                 lambda: faiss.RandomRotationMatrix(16, 16), lambda: faiss.NormalizationTransform(16)):
        ft = make()
        ft.train(xb)
        fb = _faiss_bytes(faiss.write_VectorTransform, ft)
        vt = voisin.read_VectorTransform(_voisin_reader(fb))
        np.testing.assert_allclose(vt.apply(xb[:10]), ft.apply(xb[:10]), atol=1e-5)
        w = voisin.VectorIOWriter()
        voisin.write_VectorTransform(vt, w, checksum=False)
        np.testing.assert_array_equal(voisin.vector_to_array(w.data), fb)
        r = faiss.VectorIOReader()
        w = voisin.VectorIOWriter()
        voisin.write_VectorTransform(vt, w)
        faiss.copy_array_to_vector(voisin.vector_to_array(w.data), r.data)
        np.testing.assert_allclose(faiss.read_VectorTransform(r).apply(xb[:3]), ft.apply(xb[:3]),
                                   atol=1e-6)


def test_inverted_lists_files(xb):
    f = faiss.IndexIVFFlat(faiss.IndexFlatL2(16), 16, 8)
    f.train(xb)
    f.add(xb)
    fb = _faiss_bytes(faiss.write_InvertedLists, f.invlists)
    il = voisin.read_InvertedLists(_voisin_reader(fb))
    assert il.nlist == 8 and il.ntotal == 3000
    for l in range(8):
        np.testing.assert_array_equal(il.get_ids(l), faiss.rev_swig_ptr(f.invlists.get_ids(l),
                                                                         f.invlists.list_size(l)))
    w = voisin.VectorIOWriter()
    voisin.write_InvertedLists(il, w, checksum=False)
    np.testing.assert_array_equal(voisin.vector_to_array(w.data), fb)
    with pytest.raises(TypeError, match="invlists: expected InvertedLists"):
        voisin.write_InvertedLists([], w)


def test_scalar_quantizer_files(xb, tmp_path):
    sq = voisin.ScalarQuantizer(16, voisin.ScalarQuantizer.QT_8bit)
    sq.train(xb)
    path = str(tmp_path / "sq.bin")
    voisin.write_ScalarQuantizer(sq, path)
    back = voisin.read_ScalarQuantizer(path)
    np.testing.assert_array_equal(back.compute_codes(xb[:10]), sq.compute_codes(xb[:10]))
    # the same bytes as inside FAISS's IndexScalarQuantizer file (after its header)
    fsq = faiss.IndexScalarQuantizer(16, faiss.ScalarQuantizer.QT_8bit)
    fsq.train(xb)
    fbytes = faiss.serialize_index(fsq).tobytes()
    w = voisin.VectorIOWriter()
    voisin.write_ScalarQuantizer(voisin.deserialize_index(fbytes).sq, w, checksum=False)
    assert voisin.vector_to_array(w.data).tobytes() in fbytes
