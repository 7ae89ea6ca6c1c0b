"""Cache-line alignment of the arrays HNSW kernels read row by row (voisin._aligned)."""

import mmap

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import voisin
from voisin import _aligned


@given(shape=st.lists(st.integers(0, 40), min_size=1, max_size=3),
       dtype=st.sampled_from([np.uint8, np.int32, np.float32, np.int64]),
       fill=st.integers(0, 100))
@settings(max_examples=60, deadline=None)
def test_allocations_start_on_a_cache_line_and_hold_what_numpy_would(shape, dtype, fill):
    a = _aligned.full(shape, fill, dtype)
    assert a.shape == tuple(shape) and a.dtype == dtype and a.flags.c_contiguous
    assert _aligned.is_aligned(a)
    np.testing.assert_array_equal(a, np.full(shape, fill, dtype))
    assert _aligned.is_aligned(_aligned.copy(a)) and np.array_equal(_aligned.copy(a), a)


def test_realigned_copies_owned_memory_and_leaves_mapped_memory_in_place(tmp_path):
    raw = np.arange(1000, dtype=np.float32)
    off = raw[1:801].reshape(100, 8)           # 4 bytes past an owned allocation
    assert not _aligned.is_aligned(off)
    fixed = _aligned.realigned(off)
    assert _aligned.is_aligned(fixed) and np.array_equal(fixed, off)
    path = tmp_path / "m.bin"
    path.write_bytes(np.arange(1000, dtype=np.float32).tobytes())
    with open(path, "rb") as fh:
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        view = np.frombuffer(mm, dtype=np.float32, count=800, offset=4).reshape(100, 8)
        assert _aligned.realigned(view) is view  # copying would unshare the mapping
        del view
        mm.close()


def _hnsw_arrays(index):
    X, g, _, _, _ = index._snap
    return {"storage": X, "level-0 links": g[0], "upper links": g[1]}


@pytest.mark.parametrize("sq8", [False, True])
def test_hnsw_keeps_its_rows_aligned_through_add_remove_compact_and_read(tmp_path, sq8):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3000, 50)).astype(np.float32)
    index = voisin.IndexHNSWSQ(50, 0, 16) if sq8 else voisin.IndexHNSWFlat(50, 16)
    index.train(x)
    index.add(x[:2000])
    index.add(x[2000:])
    states = {"add": _hnsw_arrays(index)}
    index.remove_ids(np.arange(0, 3000, 7))
    states["remove"] = _hnsw_arrays(index)
    index.compact()
    states["compact"] = _hnsw_arrays(index)
    path = str(tmp_path / "h.index")
    voisin.write_index(index, path)
    states["read"] = _hnsw_arrays(voisin.read_index(path))
    for step, arrays in states.items():
        for name, a in arrays.items():
            assert _aligned.is_aligned(a), f"{name} not 64-byte aligned after {step}"
