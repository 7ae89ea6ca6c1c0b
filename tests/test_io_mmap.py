"""Memory-mapped loading: large arrays stay in the file's pages, searches are unchanged.

A mapped index is copy-on-write: it can be modified like any index, the
changes stay in the process and the file never changes. With
IO_FLAG_READ_ONLY every modification is refused instead.
"""

from __future__ import annotations

import mmap
import pickle

import numpy as np
import pytest

import voisin
from io_cases import CASE_IDS, CASES, data


def _buffer_owner(arr: np.ndarray):
    base = arr
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    return base


def _mapped_arrays(index) -> list[np.ndarray]:
    """The numpy arrays of ``index`` (and sub-indexes) that live in a file mapping."""
    found = []
    seen = set()

    def walk(obj):
        if id(obj) in seen:
            return
        seen.add(id(obj))
        for v in vars(obj).values():
            items = v if isinstance(v, (list, tuple)) else [v]
            for item in items:
                if isinstance(item, np.ndarray) and isinstance(_buffer_owner(item), mmap.mmap):
                    found.append(item)
                elif isinstance(item, voisin.Index) or (hasattr(item, "__dict__")
                                                        and type(item).__module__.startswith("voisin")):
                    walk(item)

    walk(index)
    return found


@pytest.fixture(params=CASES, ids=CASE_IDS)
def case(request):
    return request.param


def test_mapped_index_searches_the_same(case, tmp_path):
    index = case.voisin()
    case.tune(index)
    path = tmp_path / "index.bin"
    voisin.write_index(index, path)
    mapped = voisin.read_index(path, voisin.IO_FLAG_MMAP)
    case.tune(mapped)
    big = _mapped_arrays(mapped)
    assert big, "expected the large arrays to be views of the file mapping"
    assert sum(a.nbytes for a in big) > case.mapped_fraction * path.stat().st_size
    _, xq, _ = data()
    D1, I1 = index.search(xq, 8)
    D2, I2 = mapped.search(xq, 8)
    np.testing.assert_array_equal(I1, I2)
    np.testing.assert_array_equal(D1, D2)
    # the mmap keyword means the same
    assert _mapped_arrays(voisin.read_index(path, mmap=True))


def test_mapped_index_is_copy_on_write(tmp_path):
    xb, xq, ids = data()
    index = voisin.IndexIDMap2(voisin.IndexFlatL2(xb.shape[1]))
    index.add_with_ids(xb[:800], ids[:800])
    path = tmp_path / "index.bin"
    voisin.write_index(index, path)
    before = path.read_bytes()
    mapped = voisin.read_index(path, voisin.IO_FLAG_MMAP)
    # in-place writes (remove_ids compacts the id array in place) and growth both work
    assert mapped.remove_ids(ids[:5]) == 5
    mapped.add_with_ids(xb[800:], ids[800:])
    index.remove_ids(ids[:5])
    index.add_with_ids(xb[800:], ids[800:])
    D1, I1 = index.search(xq, 5)
    D2, I2 = mapped.search(xq, 5)
    np.testing.assert_array_equal(I1, I2)
    np.testing.assert_array_equal(D1, D2)
    assert path.read_bytes() == before, "a change to a mapped index reached the file"
    # saving over the mapped file is safe: the rename leaves the mapping on the old inode
    voisin.write_index(mapped, path)
    assert mapped.search(xq, 5)[1].tolist() == I1.tolist()
    assert voisin.read_index(path).ntotal == mapped.ntotal


def test_read_only_flag_refuses_changes(tmp_path):
    xb, xq, ids = data()
    index = voisin.IndexIDMap(voisin.IndexFlatIP(xb.shape[1]))
    index.add_with_ids(xb, ids)
    path = tmp_path / "index.bin"
    voisin.write_index(index, path)
    for flags in (voisin.IO_FLAG_MMAP | voisin.IO_FLAG_READ_ONLY, voisin.IO_FLAG_READ_ONLY):
        ro = voisin.read_index(path, flags)
        for change in (lambda: ro.add_with_ids(xb[:1], [1]), lambda: ro.remove_ids(ids[:1]),
                       lambda: ro.reset(), lambda: ro.train(xb)):
            with pytest.raises(RuntimeError, match="IO_FLAG_READ_ONLY"):
                change()
        assert ro.ntotal == index.ntotal
        np.testing.assert_array_equal(ro.search(xq, 4)[1], index.search(xq, 4)[1])
        with pytest.raises(ValueError, match="read-only"):
            ro.index._xb[0, 0] = 1.0
        # a pickled copy is an ordinary, writable index
        copy = pickle.loads(pickle.dumps(ro))
        copy.remove_ids(ids[:3])
        assert copy.ntotal == index.ntotal - 3


def test_mapping_skips_checksum_unless_asked(tmp_path):
    index = voisin.IndexFlatL2(4)
    index.add(np.arange(40, dtype=np.float32).reshape(10, 4))
    path = tmp_path / "index.bin"
    voisin.write_index(index, path)
    raw = bytearray(path.read_bytes())
    raw[60] ^= 1  # a float inside the payload
    path.write_bytes(bytes(raw))
    with pytest.raises(voisin.IndexFileError, match="checksum mismatch"):
        voisin.read_index(path)
    with pytest.raises(voisin.IndexFileError, match="checksum mismatch"):
        voisin.read_index(path, voisin.IO_FLAG_MMAP, verify_checksum=True)
    # opening a mapping in O(1) means not reading the data, hence no verification
    assert voisin.read_index(path, voisin.IO_FLAG_MMAP).ntotal == 10


def test_faiss_mmap_flag_values():
    faiss = pytest.importorskip("faiss")
    assert voisin.IO_FLAG_MMAP == faiss.IO_FLAG_MMAP
    assert voisin.IO_FLAG_READ_ONLY == faiss.IO_FLAG_READ_ONLY
    from voisin.io import IO_FLAG_MMAP_IFC
    assert IO_FLAG_MMAP_IFC == faiss.IO_FLAG_MMAP_IFC


VOISIN_LAYOUT = [c for c in CASES if c.name.startswith(("ivf", "hnsw_flat"))]


@pytest.mark.parametrize("case", VOISIN_LAYOUT, ids=[c.name for c in VOISIN_LAYOUT])
def test_voisin_layout_maps_lists_and_graphs(case, tmp_path):
    """FAISS interleaves codes and ids per list (and per-node graph levels);
    voisin's layout stores the arrays voisin scans as they are, 64-byte aligned."""
    index = case.voisin()
    case.tune(index)
    path = tmp_path / "index.voisin-layout"
    voisin.write_index(index, path, layout="voisin")
    mapped = voisin.read_index(path, voisin.IO_FLAG_MMAP)
    case.tune(mapped)
    aligned = [a for a in _mapped_arrays(mapped) if a.ctypes.data % 64 == 0]
    assert sum(a.nbytes for a in aligned) > 0.4 * path.stat().st_size
    _, xq, _ = data()
    D1, I1 = index.search(xq, 8)
    D2, I2 = mapped.search(xq, 8)
    np.testing.assert_array_equal(I1, I2)
    np.testing.assert_array_equal(D1, D2)
    # converting back to FAISS's layout is lossless
    np.testing.assert_array_equal(voisin.serialize_index(mapped),
                                  voisin.serialize_index(index))
    # and the mapped index takes changes copy-on-write
    before = path.read_bytes()
    xb, _, _ = data()
    mapped.add(xb[:7])
    assert mapped.ntotal == index.ntotal + 7 and path.read_bytes() == before


def test_voisin_layout_is_refused_by_faiss_with_a_clear_error(tmp_path):
    faiss = pytest.importorskip("faiss")
    case = next((c for c in CASES if c.name == "ivf_flat_given"), None)
    index = case.voisin()
    path = tmp_path / "index.voisin-layout"
    voisin.write_index(index, path, layout="voisin")
    with pytest.raises(RuntimeError, match="could not load"):
        faiss.read_index(str(path))
    with pytest.raises(ValueError, match="layout"):
        voisin.write_index(index, path, layout="hdf5")
