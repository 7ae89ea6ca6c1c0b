"""Every index family round-trips through FAISS's file format, both ways.

For each case in ``io_cases.CASES``: a file written by faiss-cpu opens in
voisin and searches the same; a file written by voisin opens in faiss-cpu and
searches the same; voisin -> voisin is lossless (re-serializing gives the same
bytes); deterministic types give byte-for-byte the bytes FAISS writes.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import voisin
from io_cases import CASE_IDS, CASES, assert_same_search, data

faiss = pytest.importorskip("faiss")


@pytest.fixture(params=CASES, ids=CASE_IDS)
def case(request):
    return request.param


def test_faiss_file_opens_in_voisin(case, tmp_path):
    fidx = case.faiss()
    case.tune(fidx)
    path = tmp_path / f"{case.name}.faiss"
    faiss.write_index(fidx, str(path))
    vidx = voisin.read_index(path)
    case.tune(vidx)
    assert isinstance(vidx, voisin.Index)
    assert (vidx.d, vidx.ntotal, vidx.metric_type) == (fidx.d, fidx.ntotal, fidx.metric_type)
    assert_same_search(vidx, fidx, case.faiss_queries(), approx=case.approx)
    # lossless: voisin writes back exactly the bytes faiss wrote
    assert bytes(voisin.serialize_index(vidx, checksum=False)) == path.read_bytes()


def test_voisin_file_opens_in_faiss(case, tmp_path):
    vidx = case.voisin()
    case.tune(vidx)
    path = tmp_path / f"{case.name}.voisin"
    voisin.write_index(vidx, path)
    fidx = faiss.read_index(str(path))  # the checksum trailer must not bother faiss
    case.tune(fidx)
    assert (fidx.d, fidx.ntotal, fidx.metric_type) == (vidx.d, vidx.ntotal, vidx.metric_type)
    assert_same_search(fidx, vidx, case.faiss_queries(), approx=case.approx)
    # and back: what faiss writes from it is what voisin wrote (minus the trailer)
    assert bytes(faiss.serialize_index(fidx)) == bytes(voisin.serialize_index(vidx, checksum=False))


def test_voisin_roundtrip_is_lossless(case):
    vidx = case.voisin()
    case.tune(vidx)
    buf = voisin.serialize_index(vidx)
    back = voisin.deserialize_index(buf)
    case.tune(back)
    assert type(back) is type(vidx)
    np.testing.assert_array_equal(voisin.serialize_index(back), buf)
    _, xq, _ = data()
    D1, I1 = vidx.search(xq, 8)
    D2, I2 = back.search(xq, 8)
    np.testing.assert_array_equal(I1, I2)
    np.testing.assert_array_equal(D1, D2)


DETERMINISTIC = [c for c in CASES if c.deterministic]


@pytest.mark.parametrize("det", DETERMINISTIC, ids=[c.name for c in DETERMINISTIC])
def test_deterministic_types_match_faiss_bytes(det):
    """Same content -> the same bytes as FAISS (types whose content needs no training)."""
    case = det
    v, f = case.voisin(), case.faiss()
    case.tune(v)
    case.tune(f)
    vbytes = voisin.serialize_index(v, checksum=False)
    fbytes = faiss.serialize_index(f)
    assert vbytes.dtype == np.uint8
    assert bytes(vbytes) == bytes(fbytes)
    # with the trailer: FAISS's bytes, then exactly 24 more
    full = voisin.serialize_index(case.voisin())
    assert bytes(full[:len(fbytes)]) == bytes(fbytes) and len(full) == len(fbytes) + 24


def test_pickle_goes_through_the_file_format(case):
    vidx = case.voisin()
    case.tune(vidx)
    blob = pickle.dumps(vidx)
    assert voisin.serialize_index(vidx, checksum=False).tobytes() in blob
    back = pickle.loads(blob)
    case.tune(back)
    _, xq, _ = data()
    D1, I1 = vidx.search(xq, 5)
    D2, I2 = back.search(xq, 5)
    np.testing.assert_array_equal(I1, I2)
    np.testing.assert_array_equal(D1, D2)
    # the copy is independent and writable
    back.reset()
    assert back.ntotal == 0 and vidx.ntotal > 0


def test_file_objects_and_paths(tmp_path):
    xb, xq, _ = data()
    index = voisin.IndexFlatIP(xb.shape[1])
    index.add(xb)
    with open(tmp_path / "a.index", "wb") as f:
        voisin.write_index(index, f)
    with open(tmp_path / "a.index", "rb") as f:
        back = voisin.read_index(f)
    assert back.ntotal == index.ntotal
    voisin.write_index(index, str(tmp_path / "b.index"))
    assert (tmp_path / "a.index").read_bytes() == (tmp_path / "b.index").read_bytes()


def test_empty_indexes_roundtrip_both_ways():
    for v, f in ((voisin.IndexFlatL2(5), faiss.IndexFlatL2(5)),
                 (voisin.IndexIDMap(voisin.IndexFlatIP(3)), faiss.IndexIDMap(faiss.IndexFlatIP(3)))):
        vb = voisin.serialize_index(v, checksum=False)
        assert bytes(vb) == bytes(faiss.serialize_index(f))
        back = voisin.deserialize_index(faiss.serialize_index(f))
        assert back.ntotal == 0 and back.d == v.d
        assert back.search(np.zeros((1, v.d), np.float32), 2)[1].tolist() == [[-1, -1]]


def test_loaded_index_stays_usable():
    xb, xq, ids = data()
    index = voisin.IndexIDMap2(voisin.IndexFlatL2(xb.shape[1]))
    index.add_with_ids(xb[:600], ids[:600])
    back = voisin.deserialize_index(voisin.serialize_index(index))
    back.add_with_ids(xb[600:], ids[600:])
    assert back.remove_ids(ids[:10]) == 10
    ref = voisin.IndexIDMap2(voisin.IndexFlatL2(xb.shape[1]))
    ref.add_with_ids(xb[10:], ids[10:])
    assert_same_search(back, ref, xq)
    np.testing.assert_array_equal(back.reconstruct(int(ids[700])), xb[700])


def test_bad_arguments():
    index = voisin.IndexFlatL2(4)
    with pytest.raises(TypeError, match="index"):
        voisin.serialize_index(object())
    with pytest.raises(TypeError, match="path or a binary file"):
        voisin.write_index(index, 12)
    with pytest.raises(TypeError, match="io_flags"):
        voisin.read_index("x", io_flags="mmap")
    with pytest.raises(TypeError, match="uint8"):
        voisin.deserialize_index(np.zeros(10, np.float32))
    with pytest.raises(FileNotFoundError):
        voisin.read_index("/nonexistent/dir/x.index")


def test_ivf_direct_maps_both_ways():
    """FAISS's array and hashtable direct maps survive both directions, byte for byte."""
    if not hasattr(voisin, "IndexIVFFlat"):
        pytest.skip("IndexIVFFlat not in this voisin build yet")
    from io_cases import _ivf_flat
    xb, _, ids = data()
    f = _ivf_flat(faiss, "l2")
    f.make_direct_map()
    v = voisin.deserialize_index(faiss.serialize_index(f))
    np.testing.assert_array_equal(v.reconstruct(17), xb[17])
    assert bytes(voisin.serialize_index(v, checksum=False)) == bytes(faiss.serialize_index(f))
    vv = _ivf_flat(voisin, "l2")
    vv.make_direct_map()
    back = faiss.deserialize_index(voisin.serialize_index(vv))
    np.testing.assert_array_equal(back.reconstruct(17), xb[17])
    # hashtable: arbitrary ids
    quantizer = faiss.IndexFlatL2(xb.shape[1])
    quantizer.add(xb[::100][:12])
    fh = faiss.IndexIVFFlat(quantizer, xb.shape[1], 12)
    fh.set_direct_map_type(faiss.DirectMap.Hashtable)
    fh.add_with_ids(xb, ids)
    vh = voisin.deserialize_index(faiss.serialize_index(fh))
    np.testing.assert_array_equal(vh.reconstruct(int(ids[40])), xb[40])
    # (FAISS writes its hashtable in unordered_map order: compare behaviour, not bytes)
    fb = faiss.deserialize_index(voisin.serialize_index(vh))
    np.testing.assert_array_equal(fb.reconstruct(int(ids[40])), xb[40])
    assert fb.direct_map.type == faiss.DirectMap.Hashtable
    # an array map needs sequential ids, as in FAISS
    bad = voisin.IndexIVFFlat(voisin.IndexFlatL2(xb.shape[1]), xb.shape[1], 12)
    bad.quantizer.add(xb[::100][:12])
    bad.is_trained = True
    bad.add_with_ids(xb[:50], ids[:50])
    bad.make_direct_map()
    with pytest.raises(ValueError, match="sequential ids"):
        voisin.serialize_index(bad)


def test_opq_rotation_serializes_as_faiss_linear_transform():
    """The OPQ rotation inside an IxPT file: voisin reads FAISS's 'LTra' and writes the same bytes."""
    pytest.importorskip("voisin.transforms_opq")
    from voisin.io.formats.transforms import read_transform, write_transform
    from voisin.io.stream import Reader, Writer
    xb, xq, _ = data()
    opq = faiss.OPQMatrix(xb.shape[1], 4)
    opq.niter = 3
    pt = faiss.IndexPreTransform(opq, faiss.IndexFlatL2(xb.shape[1]))
    pt.train(xb)
    raw = bytes(faiss.serialize_index(pt))
    r = Reader(raw)
    r.pos = 4 + 33 + 4  # tag, header, number of transforms
    t = read_transform(r)
    assert raw[r.pos:r.pos + 4] == b"IxF2"
    w = Writer()
    write_transform(w, t)
    assert w.getvalue() == raw[41:r.pos]
    np.testing.assert_allclose(t.apply(xq), opq.apply(xq), rtol=1e-5, atol=1e-5)


def test_refine_flat_over_hnsw_sq_is_written_as_faiss_refine_flat():
    xb, xq, _ = data()
    index = voisin.IndexRefineFlat(voisin.IndexHNSWSQ(xb.shape[1], 0, 12), 3)
    index.train(xb)
    index.add(xb)
    index.base_index.hnsw.efSearch = 64
    f = faiss.deserialize_index(voisin.serialize_index(index))
    assert isinstance(f, (faiss.IndexRefine, faiss.IndexRefineFlat)) and f.k_factor == 3
    back = voisin.deserialize_index(voisin.serialize_index(index))
    assert isinstance(back, voisin.IndexRefineFlat)
    assert isinstance(back.base_index, voisin.IndexHNSWSQ)
    np.testing.assert_array_equal(back.refine_index.xb, xb)
    D1, I1 = index.search(xq, 5)
    D2, I2 = back.search(xq, 5)
    np.testing.assert_array_equal(I1, I2)
    np.testing.assert_allclose(D1, D2, rtol=1e-5, atol=1e-4)
