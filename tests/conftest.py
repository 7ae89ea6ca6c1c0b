"""Shared test fixtures and reference implementations.

The reference for every exact search is numpy brute force in float64
(:func:`brute_force`). Exact float32 results can legitimately differ from it in
two ways, and the checks here allow exactly those two and nothing else:

* rounding: distances agree to a small relative tolerance;
* ties: when several stored vectors are (nearly) equally far from the query,
  any of them is a correct answer at the boundary of the top-k. So the checks
  compare distances, and require ids only to be *a valid tie choice*.

Helpers are plain functions (``from conftest import brute_force``) so that
hypothesis tests, which cannot take function-scoped fixtures, can use them.
"""

from __future__ import annotations

import os
from pathlib import Path

# Ray clusters started by the tests listen on 127.0.0.1 only: on Linux Ray turns a
# node address of 127.0.0.1 into the machine's network address unless this is set
# before Ray is imported (voisin.distributed.cluster.keep_on_loopback)
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np
import pytest

import voisin

FLT_MAX = float(np.finfo(np.float32).max)


# --------------------------------------------------------------------------- #
# fixtures
# --------------------------------------------------------------------------- #
@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator: every test run sees the same data."""
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _restore_threads():
    """Tests that change the thread count must not leak it into later tests."""
    n = voisin.omp_get_max_threads()
    yield
    voisin.omp_set_num_threads(n)


@pytest.fixture(scope="module")
def faiss_single_thread():
    """faiss-cpu on one thread for a module: its OpenMP threads spin on a busy
    machine (a 0.6 s PQ training took 30 s on two shared cores)."""
    faiss = pytest.importorskip("faiss")
    n = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(n)


def faiss_twins(key: str, xb: np.ndarray, add: bool = True):
    """The same trained (and filled) index in faiss and, read from its bytes, in
    voisin: both libraries then search identical structures."""
    faiss = pytest.importorskip("faiss")
    f = faiss.index_factory(xb.shape[1], key)
    f.train(xb)
    if add:
        f.add(xb)
    return f, voisin.deserialize_index(faiss.serialize_index(f))


def datasets_dir() -> Path | None:
    """The shared ann-benchmarks datasets, or None when this checkout has none.

    ``VOISIN_SHARED_DATASETS`` overrides the default ``<repo>/../shared/datasets``.
    """
    env = os.environ.get("VOISIN_SHARED_DATASETS")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "datasets"
    return path if path.is_dir() else None


def dataset_path(name: str) -> Path:
    """Path of ``<name>.hdf5`` in the shared datasets, or skip the test saying why."""
    root = datasets_dir()
    if root is None:
        pytest.skip("shared datasets folder not found (../shared/datasets or $VOISIN_SHARED_DATASETS)")
    path = root / f"{name}.hdf5"
    if not path.is_file():
        pytest.skip(f"dataset {path} not found")
    return path


def load_hdf5(name: str, n_test: int | None = None) -> dict:
    """The ann-benchmarks arrays of dataset ``name`` (train/test/neighbors/distances + metric)."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(dataset_path(name), "r") as f:
        sl = slice(None) if n_test is None else slice(0, n_test)
        return {
            "train": np.ascontiguousarray(f["train"][:], dtype=np.float32),
            "test": np.ascontiguousarray(f["test"][sl], dtype=np.float32),
            "neighbors": np.asarray(f["neighbors"][sl], dtype=np.int64),
            "distances": np.asarray(f["distances"][sl], dtype=np.float32),
            "distance": str(f.attrs["distance"]),
        }


# --------------------------------------------------------------------------- #
# reference implementations
# --------------------------------------------------------------------------- #
def distances_f64(xq: np.ndarray, xb: np.ndarray, metric: int) -> np.ndarray:
    """(nq, nb) exact distances in float64: squared L2, or inner products."""
    q = np.asarray(xq, dtype=np.float64)
    b = np.asarray(xb, dtype=np.float64)
    if metric == voisin.METRIC_INNER_PRODUCT:
        return q @ b.T
    # the expansion is exact enough in float64 for float32 inputs
    out = (q * q).sum(1)[:, None] - 2.0 * (q @ b.T) + (b * b).sum(1)[None, :]
    return np.maximum(out, 0.0)


def brute_force(xq, xb, k: int, metric: int, allowed: np.ndarray | None = None,
                ids: np.ndarray | None = None, dist: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Reference k-NN with FAISS's conventions (padding -1 / +-FLT_MAX).

    ``allowed`` is a boolean mask over the rows of ``xb``; ``ids`` maps rows to
    the ids to report (IndexIDMap). Ties are broken on the row number.
    ``dist`` may pass in :func:`distances_f64` already computed.
    """
    if dist is None:
        dist = distances_f64(xq, xb, metric)
    nq, nb = dist.shape
    ids = np.arange(nb, dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
    cost = -dist if metric == voisin.METRIC_INNER_PRODUCT else dist.copy()
    if allowed is not None:
        cost[:, ~np.asarray(allowed, dtype=bool)] = np.inf
    kk = min(k, nb)
    if kk < nb:  # partition first: a full sort of (nq, nb) dominates test time otherwise
        part = np.argpartition(cost, kk - 1, axis=1)[:, :kk]
        part.sort(axis=1)  # row order, so the stable sort below breaks ties on the row number
    else:
        part = np.broadcast_to(np.arange(nb), (nq, nb))
    sub = np.take_along_axis(cost, part, 1)
    order = np.take_along_axis(part, np.argsort(sub, axis=1, kind="stable"), 1)
    D = np.take_along_axis(dist, order, 1).astype(np.float32)
    I = ids[order]
    missing = np.take_along_axis(cost, order, 1) == np.inf
    worst = -FLT_MAX if metric == voisin.METRIC_INNER_PRODUCT else FLT_MAX
    D[missing] = worst
    I[missing] = -1
    if k > nb:
        D = np.hstack([D, np.full((nq, k - nb), worst, np.float32)])
        I = np.hstack([I, np.full((nq, k - nb), -1, np.int64)])
    return D, I


def tolerance(xq, xb, metric: int) -> np.ndarray:
    """Per-query absolute tolerance on a float32 distance.

    float32 rounding of a d-term sum is bounded by about d * eps * (the sum of
    the magnitudes); in practice the error grows like sqrt(d), so this scale
    with a generous constant catches real errors (wrong vector, wrong metric,
    missing norm term) without flagging rounding.
    """
    q = np.asarray(xq, dtype=np.float64)
    b = np.asarray(xb, dtype=np.float64)
    d = q.shape[1]
    qn = (q * q).sum(1)
    bn = (b * b).sum(1).max() if b.shape[0] else 0.0
    scale = qn + bn if metric == voisin.METRIC_L2 else np.sqrt(qn * bn)
    return 1e-6 * (1.0 + np.sqrt(d)) * (scale + 1e-6) + 1e-6


def assert_knn_valid(D, I, xq, xb, k: int, metric: int, allowed: np.ndarray | None = None,
                     ids: np.ndarray | None = None) -> None:
    """Check (D, I) is *a* correct exact k-NN answer, tie-aware.

    For every query: shapes and dtypes as FAISS; the returned ids are distinct,
    allowed, and as many as min(k, allowed); missing slots are -1 with the
    FAISS worst distance; D is sorted, equals the true distance of the returned
    id, and equals the reference k-th distances (so the ids are a valid choice
    among ties); no allowed vector strictly better than the k-th is left out.
    """
    xq = np.atleast_2d(np.asarray(xq, dtype=np.float32))
    xb = np.asarray(xb, dtype=np.float32)
    nq, nb = xq.shape[0], xb.shape[0]
    assert D.shape == (nq, k) and I.shape == (nq, k), (D.shape, I.shape)
    assert D.dtype == np.float32 and I.dtype == np.int64
    ip = metric == voisin.METRIC_INNER_PRODUCT
    row_ids = np.arange(nb, dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
    allowed = np.ones(nb, bool) if allowed is None else np.asarray(allowed, dtype=bool)
    dist = distances_f64(xq, xb, metric)
    Dref, _ = brute_force(xq, xb, k, metric, allowed, row_ids, dist)
    tol = tolerance(xq, xb, metric)[:, None]
    m = min(k, int(allowed.sum()))
    worst = -FLT_MAX if ip else FLT_MAX
    assert (I[:, m:] == -1).all(), f"expected -1 padding after {m} results: {I[:, m:]}"
    assert (D[:, m:] == worst).all(), f"padding distances must be {worst}: {D[:, m:]}"
    if m == 0:
        return
    real, Dr = I[:, :m], D[:, :m].astype(np.float64)
    assert (real != -1).all(), f"missing results where {m} were expected"
    s = np.sort(real, axis=1)
    assert (s[:, 1:] != s[:, :-1]).all(), "duplicate ids in a result row"
    order = np.argsort(row_ids, kind="stable")
    where = np.searchsorted(row_ids, real, sorter=order).clip(0, nb - 1)
    pos = order[where]
    assert (row_ids[pos] == real).all(), f"unknown ids {real[row_ids[pos] != real]}"
    assert allowed[pos].all(), f"ids not allowed by the filter: {real[~allowed[pos]]}"
    true_d = np.take_along_axis(dist, pos, 1)
    bad = np.abs(Dr - true_d) > tol
    assert not bad.any(), f"D is not the distance of the returned id: {Dr[bad][:5]} vs {true_d[bad][:5]}"
    bad = np.abs(Dr - Dref[:, :m]) > tol
    assert not bad.any(), f"distances differ from brute force: {Dr[bad][:5]} vs {Dref[:, :m][bad][:5]}"
    step = np.diff(Dr, axis=1)
    assert ((-step if ip else step) >= 0).all(), "D rows are not sorted"
    kth = Dref[:, m - 1:m].astype(np.float64)
    cand = (dist > kth + tol) if ip else (dist < kth - tol)
    cand &= allowed[None, :]
    got = np.take_along_axis(cand, pos, 1).sum(1)
    assert (got == cand.sum(1)).all(), "left out an allowed vector strictly better than the k-th result"


def assert_same_results(D1, I1, D2, I2, tol) -> None:
    """Two exact engines agree: same distances, ids equal except among ties.

    Used against faiss: any id difference must sit at a position where the two
    distances are tied with a neighbour (so both choices are correct).
    """
    assert D1.shape == D2.shape and I1.shape == I2.shape
    tol = np.broadcast_to(np.asarray(tol, dtype=np.float64).reshape(-1, 1), D1.shape)
    both_missing = (I1 == -1) & (I2 == -1)
    assert ((I1 == -1) == (I2 == -1)).all(), "different numbers of results"
    assert (D1[both_missing] == D2[both_missing]).all(), "different padding distances"
    ok = ~both_missing
    np.testing.assert_allclose(D1[ok], D2[ok], rtol=0, atol=float(tol[ok].max()) if ok.any() else 0)
    diff = (I1 != I2)
    for i, j in zip(*np.nonzero(diff)):
        row = D1[i].astype(np.float64)
        near = np.abs(row - row[j]) <= 2 * tol[i, j]
        # the other engine's id must appear among this engine's ties, or at the k-th boundary
        tied = set(I1[i][near].tolist())
        boundary = abs(row[j] - row[~both_missing[i]][-1]) <= 2 * tol[i, j]
        assert I2[i, j] in tied or boundary, f"query {i} rank {j}: id {I2[i, j]} vs {I1[i, j]} not a tie"


def index_state(index, xq: np.ndarray, k: int = 5) -> tuple:
    """What a user can observe of an index: ntotal and search results."""
    D, I = index.search(xq, k)
    return index.ntotal, D.copy(), I.copy()


def assert_unchanged(index, before: tuple, xq: np.ndarray, k: int = 5) -> None:
    n, D, I = index_state(index, xq, k)
    assert n == before[0], f"ntotal changed {before[0]} -> {n}"
    np.testing.assert_array_equal(I, before[2])
    np.testing.assert_array_equal(D, before[1])
