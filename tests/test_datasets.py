"""voisin.datasets: TEXMEX vector files, ann-benchmarks HDF5 files, exact ground truth."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import dataset_path
from voisin import datasets
from voisin.datasets import (Dataset, ground_truth, query_subset, read_bvecs, read_fvecs, read_ivecs,
                             synthetic, write_bvecs, write_fvecs, write_ivecs)



def h5py():
    return pytest.importorskip("h5py", reason="h5py is not installed (bench/test extra)")


# --------------------------------------------------------------------------- #
# .fvecs / .ivecs / .bvecs
# --------------------------------------------------------------------------- #
@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 20), d=st.integers(1, 17), seed=st.integers(0, 2**31 - 1))
def test_vecs_round_trip(tmp_path_factory, n, d, seed):
    rng = np.random.default_rng(seed)
    tmp = tmp_path_factory.mktemp("vecs")
    f = rng.standard_normal((n, d)).astype(np.float32)
    i = rng.integers(-2**31, 2**31 - 1, size=(n, d), dtype=np.int64).astype(np.int32)
    b = rng.integers(0, 256, size=(n, d)).astype(np.uint8)
    write_fvecs(tmp / "a.fvecs", f)
    write_ivecs(tmp / "a.ivecs", i)
    write_bvecs(tmp / "a.bvecs", b)
    for path, ref, reader, dtype in ((tmp / "a.fvecs", f, read_fvecs, np.float32),
                                     (tmp / "a.ivecs", i, read_ivecs, np.int32),
                                     (tmp / "a.bvecs", b, read_bvecs, np.uint8)):
        assert path.stat().st_size == n * (4 + d * np.dtype(dtype).itemsize)
        got = reader(path)
        if n == 0:
            assert got.shape[0] == 0
            continue
        assert got.dtype == dtype and got.shape == (n, d) and got.flags.c_contiguous
        np.testing.assert_array_equal(got, ref)
        np.testing.assert_array_equal(reader(path, mmap=True), ref)


def test_fvecs_layout_is_texmex(tmp_path):
    # header int32 d, then d little-endian float32 per row: the format SIFT1M is shipped in
    x = np.array([[1.5, -2.0, 3.25]], dtype=np.float32)
    write_fvecs(tmp_path / "x.fvecs", x)
    raw = (tmp_path / "x.fvecs").read_bytes()
    assert raw[:4] == (3).to_bytes(4, "little")
    np.testing.assert_array_equal(np.frombuffer(raw[4:], dtype="<f4"), x[0])


def test_truncated_file_is_a_clear_error(tmp_path):
    p = tmp_path / "x.fvecs"
    write_fvecs(p, np.ones((4, 8), dtype=np.float32))
    data = p.read_bytes()
    p.write_bytes(data[:-5])
    with pytest.raises(ValueError, match="truncated"):
        read_fvecs(p)
    p.write_bytes(data[:2])
    with pytest.raises(ValueError, match="truncated"):
        read_fvecs(p)


def test_inconsistent_dimensions_rejected(tmp_path):
    p = tmp_path / "x.ivecs"
    write_ivecs(p, np.arange(12, dtype=np.int32).reshape(3, 4))
    raw = bytearray(p.read_bytes())
    raw[2 * 20:2 * 20 + 4] = (5).to_bytes(4, "little")  # third row claims d=5
    p.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="row 2 has d=5"):
        read_ivecs(p)


def test_bad_header_and_bad_values(tmp_path):
    p = tmp_path / "x.fvecs"
    p.write_bytes((0).to_bytes(4, "little") + b"\0" * 8)
    with pytest.raises(ValueError, match="invalid dimension 0"):
        read_fvecs(p)
    with pytest.raises(TypeError, match="truncate"):
        write_ivecs(tmp_path / "y.ivecs", np.ones((2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="0..255"):
        write_bvecs(tmp_path / "y.bvecs", np.array([[0, 256]]))
    with pytest.raises(ValueError, match="2-D"):
        write_fvecs(tmp_path / "y.fvecs", np.ones(3))
    assert read_fvecs(_empty(tmp_path)).shape == (0, 0)


def _empty(tmp_path):
    p = tmp_path / "empty.fvecs"
    p.write_bytes(b"")
    return p


# --------------------------------------------------------------------------- #
# ann-benchmarks HDF5
# --------------------------------------------------------------------------- #
def test_save_load_round_trip_by_path_and_name(tmp_path, monkeypatch):
    h5py()
    ds = synthetic(n=300, nq=7, d=5, k=20, metric="angular", seed=3, name="toy-5-angular")
    path = tmp_path / "toy-5-angular.hdf5"
    datasets.save(path, ds)
    got = datasets.load(path)
    assert got.metric == "angular" and got.name == "toy-5-angular" and got.d == 5
    np.testing.assert_array_equal(got.train, ds.train)
    np.testing.assert_array_equal(got.test, ds.test)
    np.testing.assert_array_equal(got.neighbors, ds.neighbors)
    assert got.neighbors.dtype == np.int64 and got.train.dtype == np.float32
    monkeypatch.setenv("VOISIN_DATA", str(tmp_path))
    assert datasets.data_dirs()[0] == tmp_path
    by_name = datasets.load("toy-5-angular")
    assert by_name.path == str(path)
    assert "toy-5-angular" in datasets.available()


def test_missing_dataset_lists_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("VOISIN_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError) as err:
        datasets.load("no-such-set-12-euclidean")
    msg = str(err.value)
    assert str(tmp_path / "nowhere" / "no-such-set-12-euclidean.hdf5") in msg
    assert "ann-benchmarks.com/no-such-set-12-euclidean.hdf5" in msg
    assert ".cache" in msg


def test_foreign_hdf5_rejected(tmp_path):
    h5 = h5py()
    p = tmp_path / "x.hdf5"
    with h5.File(p, "w") as f:
        f.create_dataset("train", data=np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match="missing dataset"):
        datasets.load(p)
    with h5.File(p, "w") as f:
        for key in ("train", "test"):
            f.create_dataset(key, data=np.ones((3, 2), np.float32))
        for key in ("neighbors", "distances"):
            f.create_dataset(key, data=np.ones((3, 2), np.float32))
        f.attrs["distance"] = "hamming"
    with pytest.raises(ValueError, match="hamming"):
        datasets.load(p)


def test_query_subset_is_seeded_random_not_a_prefix():
    a = query_subset(10_000, 1000, seed=0)
    assert a.shape == (1000,) and len(np.unique(a)) == 1000 and (np.diff(a) > 0).all()
    np.testing.assert_array_equal(a, query_subset(10_000, 1000, seed=0))
    assert not np.array_equal(a, query_subset(10_000, 1000, seed=1))
    assert a.max() > 5000  # a prefix would stop at 999
    assert query_subset(50, None) is None and query_subset(50, 50) is None
    with pytest.raises(ValueError):
        query_subset(50, 0)
    ds = synthetic(n=200, nq=40, d=4, k=10)
    sub = ds.subset(10, seed=5)
    idx = query_subset(40, 10, seed=5)
    np.testing.assert_array_equal(sub.test, ds.test[idx])
    np.testing.assert_array_equal(sub.neighbors, ds.neighbors[idx])


# --------------------------------------------------------------------------- #
# ground truth
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("metric", ["euclidean", "angular"])
def test_ground_truth_matches_numpy(metric):
    rng = np.random.default_rng(11)
    xb = rng.standard_normal((700, 12)).astype(np.float32)
    xq = rng.standard_normal((25, 12)).astype(np.float32)
    ids, dist = ground_truth(xb, xq, 15, metric)
    q, b = xq.astype(np.float64), xb.astype(np.float64)
    if metric == "euclidean":
        full = np.sqrt(((q[:, None, :] - b[None]) ** 2).sum(-1))
    else:
        full = 1 - (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (b / np.linalg.norm(b, axis=1, keepdims=True)).T
    ref = np.argsort(full, axis=1, kind="stable")[:, :15]
    np.testing.assert_array_equal(ids, ref)
    np.testing.assert_allclose(dist, np.take_along_axis(full, ref, 1), rtol=1e-6, atol=1e-6)
    assert ids.dtype == np.int64 and dist.dtype == np.float32


def test_ground_truth_orders_ties_by_id():
    xb = np.array([[2, 0], [0, 1], [1, 0], [0, -1], [-1, 0]], dtype=np.float32)
    ids, dist = ground_truth(xb, np.zeros((1, 2), np.float32), 5)
    assert ids.tolist() == [[1, 2, 3, 4, 0]]
    assert dist.tolist() == [[1, 1, 1, 1, 2]]


def test_ground_truth_bad_input():
    xb = np.ones((3, 2), np.float32)
    with pytest.raises(ValueError, match="metric"):
        ground_truth(xb, xb, 1, "manhattan")
    with pytest.raises(ValueError, match="only 3"):
        ground_truth(xb, xb, 4)
    with pytest.raises(ValueError, match="dimension"):
        ground_truth(xb, np.ones((1, 3)), 1)


def test_search_arrays_normalise_angular():
    ds = synthetic(n=100, nq=5, d=6, k=10, metric="angular")
    xb, xq, metric = ds.search_arrays()
    import voisin
    assert metric == voisin.METRIC_INNER_PRODUCT
    np.testing.assert_allclose(np.linalg.norm(xb, axis=1), 1, rtol=1e-5)
    assert not np.shares_memory(xb, ds.train)
    assert synthetic(n=50, nq=2, d=3, k=5).search_arrays()[2] == voisin.METRIC_L2


def test_siftsmall_ground_truth_agrees_with_the_file():
    h5py()
    ds = datasets.load(dataset_path("siftsmall-128-euclidean"))
    assert ds.train.shape == (10_000, 128) and ds.test.shape == (100, 128) and ds.metric == "euclidean"
    ids, dist = ground_truth(ds.train, ds.test[:20], 10, ds.metric)
    np.testing.assert_allclose(dist, ds.distances[:20, :10], rtol=1e-5)
    from voisin.evaluate import recall_at_k
    assert recall_at_k(ids, ds.distances[:20], 10, xq=ds.test[:20], xb=ds.train, metric=ds.metric) == 1.0


def test_dataset_dataclass_fields():
    ds = Dataset("x", np.zeros((2, 3), np.float32), np.zeros((1, 3), np.float32),
                 np.zeros((1, 2), np.int64), np.zeros((1, 2), np.float32), "euclidean")
    assert ds.d == 3 and ds.path is None
