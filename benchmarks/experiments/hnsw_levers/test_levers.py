"""Checks that the prototype kernels search exactly what voisin searches.

    python -m pytest benchmarks/experiments/hnsw_levers/test_levers.py -q

Small random data (no dataset needed): the verbatim copy and every exact
lever (layouts, prefetch, visited sets, reorderings) must return voisin's ids;
SQ8 traversal + re-rank must reach brute-force recall close to the float graph's.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import voisin  # noqa: E402

import kernels as P  # noqa: E402
import run_levers as R  # noqa: E402

N, D, NQ, EF = 3000, 20, 60, 40


@pytest.fixture(scope="module", params=[voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT])
def setup(request):
    rng = np.random.default_rng(7)
    xb = rng.standard_normal((N, D)).astype(np.float32)
    xq = rng.standard_normal((NQ, D)).astype(np.float32)
    if request.param == voisin.METRIC_INNER_PRODUCT:
        xb /= np.linalg.norm(xb, axis=1, keepdims=True)
        xq /= np.linalg.norm(xq, axis=1, keepdims=True)
    voisin.omp_set_num_threads(1)
    index = voisin.IndexHNSWFlat(D, 16, request.param)
    index.hnsw.efConstruction = 80
    index.add(xb)
    index.hnsw.efSearch = EF
    Iv = np.vstack([index.search(xq[i:i + 1], 10)[1] for i in range(NQ)])
    return index, xb, xq, Iv


def test_copy_kernel_matches_voisin(setup):
    index, _, xq, Iv = setup
    c = R.CopyKernel(index)
    np.testing.assert_array_equal(c.kernel(xq, EF), Iv)
    np.testing.assert_array_equal(c.python(xq, EF), Iv)


def test_exact_levers_return_voisins_ids(setup):
    index, _, xq, Iv = setup
    variants = R.build_variants(index, "levers", lambda msg: None)
    exact = [v for v in variants.values() if v.exact]
    assert len(exact) >= 14
    for v in exact:
        np.testing.assert_array_equal(v.kernel(xq, EF), Iv, err_msg=v.name)
        np.testing.assert_array_equal(v.python(xq, EF), Iv, err_msg=v.name)


def test_inexact_levers_keep_recall(setup):
    index, xb, xq, Iv = setup
    metric = index.metric_type
    _, Igt = voisin.knn(xq, xb, 10, metric)

    def rec(I):
        return np.mean([len(set(a) & set(b)) / 10 for a, b in zip(I, Igt)])

    base = rec(Iv)
    variants = R.build_variants(index, "levers", lambda msg: None)
    for v in variants.values():
        if not v.exact:
            assert rec(v.kernel(xq, EF)) >= base - 0.03, v.name


def test_batch_kernel_matches_serial(setup):
    index, _, xq, Iv = setup
    v = R.build_variants(index, "ref", lambda msg: None)["ref (split, uint32 epoch, pf 4 lines)"]
    a = v.args
    Dp = np.empty((NQ, 10), np.float32)
    Ip = np.empty((NQ, 10), np.int64)
    P.lever_search_parallel(xq, 10, EF, *a[:13], np.zeros(1, np.uint32), a[16], *a[26:31], 2, Dp, Ip)
    np.testing.assert_array_equal(Ip, Iv)


def test_reorder_is_a_permutation_and_keeps_edges(setup):
    index = setup[0]
    nb0, upper, upper_off, levels, state = index.hnsw._g
    for how in ("bfs", "rcm", "degree", "level"):
        nb0r, _, _, entr, Xr, perm = R.reorder(nb0, upper, upper_off, levels, int(state[0]),
                                                index._X, how)
        assert perm[entr] == state[0]
        np.testing.assert_array_equal(Xr, index._X[perm])
        back = np.where(nb0r >= 0, perm[np.maximum(nb0r, 0)], -1)
        np.testing.assert_array_equal(back, nb0[perm])


def test_colocated_rows_hold_links_and_vectors(setup):
    index = setup[0]
    nb0 = index.hnsw._g[0]
    X = index._X
    Gi, Gv, voff = R.colocate(nb0, X, align_rows=True)
    assert Gi.ctypes.data % 64 == 0 and (Gi.shape[1] * 4) % 64 == 0
    np.testing.assert_array_equal(Gi[:, :nb0.shape[1]], nb0)
    np.testing.assert_array_equal(Gv[:, voff:voff + X.shape[1]], X)


def test_hnswlib_graph_reader_reproduces_hnswlib_search(tmp_path):
    hnswlib = pytest.importorskip("hnswlib")
    from hnswlib_graph import read_hnswlib
    rng = np.random.default_rng(3)
    xb = rng.standard_normal((N, D)).astype(np.float32)
    xq = rng.standard_normal((NQ, D)).astype(np.float32)
    h = hnswlib.Index(space="l2", dim=D)
    h.init_index(max_elements=N, M=16, ef_construction=80, random_seed=5)
    h.add_items(xb, np.arange(N) * 3 + 1, num_threads=2)  # labels != node numbers
    path = tmp_path / "h.bin"
    h.save_index(str(path))
    g = read_hnswlib(str(path), D)
    np.testing.assert_array_equal(g["X"], xb[(g["labels"] - 1) // 3])
    assert ((g["nb0"] >= 0).sum(1) > 0).all()
    v = R.Variant("hnswlib graph", L=g["nb0"], V=g["X"], voff=0, dv=D, upper=g["upper"],
                  upper_off=g["upper_off"], entry=g["entry"], max_level=g["max_level"],
                  metric=voisin.METRIC_L2, labels=g["labels"])
    h.set_ef(EF)
    Ih = h.knn_query(xq, k=10, num_threads=1)[0].astype(np.int64)
    same = (v.kernel(xq, EF) == Ih).all(1).mean()
    print("identical rows", same)
    assert same >= 0.95  # same graph, same algorithm: only float rounding on near-ties may differ


def test_interleaved_loop_returns_voisins_ids(setup):
    index, _, xq, Iv = setup
    for pf in (1, 4):
        v = R.InterleavedVariant("one-pass", index, pf)
        np.testing.assert_array_equal(v.kernel(xq, EF), Iv)


def test_interleaved_sq8_keeps_recall(setup):
    index, xb, xq, Iv = setup
    _, Igt = voisin.knn(xq, xb, 10, index.metric_type)

    def rec(I):
        return np.mean([len(set(a) & set(b)) / 10 for a, b in zip(I, Igt)])

    v = R.InterleavedVariant("one-pass sq8", index, 1, sq=True)
    assert rec(v.kernel(xq, EF)) >= rec(Iv) - 0.03
    np.testing.assert_array_equal(v.python(xq, EF), v.kernel(xq, EF))


def test_interleaved_variant_wrapper(setup):
    index, _, xq, Iv = setup
    v = R.InterleavedVariant("one-pass", index, 1)
    np.testing.assert_array_equal(v.kernel(xq, EF), Iv)
    np.testing.assert_array_equal(v.python(xq, EF), Iv)
