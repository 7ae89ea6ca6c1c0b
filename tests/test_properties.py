"""Property tests (hypothesis): for random shapes, metrics, k, ids, selectors and
add/remove sequences, voisin agrees with simple pure-Python / numpy models.

Data are drawn as a seed plus shape parameters and generated with numpy, which
keeps each example cheap; max_examples stays modest so the file runs in seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import voisin
from conftest import assert_knn_valid, assert_same_results, brute_force, distances_f64, tolerance

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                    derandomize=True)
metrics = st.sampled_from([voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT])


def _vectors(seed: int, n: int, d: int, kind: str) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "grid":  # small integers: many exact ties
        return rng.integers(-2, 3, size=(n, d)).astype(np.float32)
    if kind == "dups":  # repeated rows: identical distances
        base = rng.standard_normal((max(1, n // 3), d)).astype(np.float32)
        return base[rng.integers(0, base.shape[0], n)]
    return (rng.standard_normal((n, d)) * rng.uniform(0.01, 100)).astype(np.float32)


@SETTINGS
@given(seed=st.integers(0, 2 ** 32 - 1), nb=st.integers(1, 600), nq=st.sampled_from([1, 2, 7, 19, 20, 21, 45]),
       d=st.integers(1, 40), k=st.integers(1, 80), metric=metrics, kind=st.sampled_from(["normal", "grid", "dups"]))
def test_flat_search_matches_brute_force(seed, nb, nq, d, k, metric, kind):
    xb = _vectors(seed, nb, d, kind)
    xq = _vectors(seed + 1, nq, d, kind)
    index = voisin.IndexFlat(d, metric)
    index.add(xb)
    D, I = index.search(xq, k)
    assert_knn_valid(D, I, xq, xb, k, metric)


@SETTINGS
@given(seed=st.integers(0, 2 ** 32 - 1), nb=st.integers(1, 400), nq=st.sampled_from([3, 25]),
       k=st.integers(1, 30), metric=metrics, density=st.floats(0.0, 1.0))
def test_filtered_search_matches_brute_force_on_allowed_subset(seed, nb, nq, k, metric, density):
    rng = np.random.default_rng(seed)
    xb = rng.standard_normal((nb, 6)).astype(np.float32)
    xq = rng.standard_normal((nq, 6)).astype(np.float32)
    allowed = rng.random(nb) < density
    index = voisin.IndexFlat(6, metric)
    index.add(xb)
    sel = voisin.IDSelectorBatch(np.flatnonzero(allowed).astype(np.int64))
    D, I = index.search(xq, k, params=voisin.SearchParameters(sel=sel))
    assert_knn_valid(D, I, xq, xb, k, metric, allowed=allowed)


# --------------------------------------------------------------------------- #
# IndexIDMap under random add / replace / remove sequences
# --------------------------------------------------------------------------- #
id_values = st.integers(-(2 ** 62), 2 ** 62).filter(lambda v: v != -1)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.lists(st.one_of(id_values, st.integers(0, 30)), min_size=1, max_size=25,
                                           unique=True)),
        st.tuples(st.just("remove"), st.lists(st.one_of(id_values, st.integers(0, 30)), max_size=10)),
        st.tuples(st.just("remove_range"), st.tuples(st.integers(-5, 35), st.integers(-5, 35))),
    ),
    min_size=1, max_size=12)


@SETTINGS
@given(ops=operations, seed=st.integers(0, 2 ** 32 - 1), metric=metrics)
def test_idmap_matches_a_dict_model(ops, seed, metric):
    rng = np.random.default_rng(seed)
    index = voisin.IndexIDMap2(voisin.IndexFlat(4, metric))
    model: dict[int, np.ndarray] = {}
    for op, arg in ops:
        if op == "add":
            x = rng.standard_normal((len(arg), 4)).astype(np.float32)
            index.add_with_ids(x, np.array(arg, np.int64))
            model.update({i: v for i, v in zip(arg, x)})  # an existing id is replaced
        elif op == "remove":
            gone = set(arg) & model.keys()
            assert index.remove_ids(np.array(arg, np.int64)) == len(gone)
            for i in gone:
                del model[i]
        else:
            lo, hi = arg
            gone = {i for i in model if lo <= i < hi}
            assert index.remove_ids(voisin.IDSelectorRange(lo, hi)) == len(gone)
            for i in gone:
                del model[i]
        assert index.ntotal == len(model) == index.index.ntotal
        assert sorted(index.id_map.tolist()) == sorted(model)
    if not model:
        assert (index.search(np.zeros((1, 4)), 3)[1] == -1).all()
        return
    keys = np.array(list(model), np.int64)
    vecs = np.array([model[i] for i in keys], np.float32)
    np.testing.assert_array_equal(index.reconstruct_batch(keys), vecs)
    xq = rng.standard_normal((5, 4)).astype(np.float32)
    k = min(len(model) + 2, 10)
    D, I = index.search(xq, k)
    assert set(I[I != -1].tolist()) <= set(model)  # only ids that were added and not removed
    assert_knn_valid(D, I, xq, vecs, k, metric, ids=keys)


# --------------------------------------------------------------------------- #
# selectors vs a pure-Python membership model
# --------------------------------------------------------------------------- #
def _leaf():
    small_ids = st.lists(st.integers(-3, 70), max_size=20)
    return st.one_of(
        st.tuples(st.integers(-5, 70), st.integers(-5, 70)).map(
            lambda r: (voisin.IDSelectorRange(*r), lambda i, r=r: r[0] <= i < r[1])),
        small_ids.map(lambda ids: (voisin.IDSelectorBatch(np.array(ids, np.int64)) if ids else
                                   voisin.IDSelectorBatch([]), lambda i, s=frozenset(ids): i in s)),
        small_ids.map(lambda ids: (voisin.IDSelectorArray(np.array(ids, np.int64)),
                                   lambda i, s=frozenset(ids): i in s)),
        st.lists(st.integers(0, 255), max_size=8).map(
            lambda b: (voisin.IDSelectorBitmap(np.array(b, np.uint8)),
                       lambda i, b=tuple(b): 0 <= i < 8 * len(b) and (b[i >> 3] >> (i & 7)) & 1 == 1)),
        st.just((voisin.IDSelectorAll(), lambda i: True)),
    )


def _extend(children):
    def combine(pair, cls, op):
        (a, fa), (b, fb) = pair
        return cls(a, b), (lambda i: op(fa(i), fb(i)))
    return st.one_of(
        children.map(lambda c: (voisin.IDSelectorNot(c[0]), lambda i, f=c[1]: not f(i))),
        st.tuples(children, children).map(lambda p: combine(p, voisin.IDSelectorAnd, lambda x, y: x and y)),
        st.tuples(children, children).map(lambda p: combine(p, voisin.IDSelectorOr, lambda x, y: x or y)),
        st.tuples(children, children).map(lambda p: combine(p, voisin.IDSelectorXOr, lambda x, y: x != y)),
    )


selectors = st.recursive(_leaf(), _extend, max_leaves=6)


@settings(max_examples=150, deadline=None)
@given(pair=selectors, n=st.integers(0, 80))
def test_selector_contains_agrees_with_python_model(pair, n):
    sel, model = pair
    probe = np.arange(-6, 90, dtype=np.int64)
    expect = [bool(model(int(i))) for i in probe]
    assert sel.contains(probe).tolist() == expect
    assert sel.mask_sequential(n).tolist() == expect[6:6 + n]
    assert all(sel.is_member(int(i)) == e for i, e in zip(probe[::7], expect[::7]))


@settings(max_examples=60, deadline=None)
@given(pair=selectors, seed=st.integers(0, 2 ** 32 - 1))
def test_search_with_random_selector_tree(pair, seed):
    sel, model = pair
    rng = np.random.default_rng(seed)
    xb = rng.standard_normal((75, 3)).astype(np.float32)
    xq = rng.standard_normal((4, 3)).astype(np.float32)
    allowed = np.array([bool(model(i)) for i in range(75)])
    index = voisin.IndexFlatL2(3)
    index.add(xb)
    D, I = index.search(xq, 9, params=voisin.SearchParameters(sel=sel))
    assert_knn_valid(D, I, xq, xb, 9, voisin.METRIC_L2, allowed=allowed)
    lims, Dr, Ir = index.range_search(xq, 1e30, params=voisin.SearchParameters(sel=sel))
    for i in range(4):
        assert sorted(Ir[lims[i]:lims[i + 1]].tolist()) == np.flatnonzero(allowed).tolist()


# --------------------------------------------------------------------------- #
# IndexFlat add/remove sequences (FAISS shift semantics) vs a list model
# --------------------------------------------------------------------------- #
flat_ops = st.lists(
    st.one_of(st.tuples(st.just("add"), st.integers(0, 40)),
              st.tuples(st.just("remove"), st.lists(st.integers(-3, 60), max_size=8)),
              st.tuples(st.just("range"), st.tuples(st.integers(-3, 60), st.integers(-3, 60))),
              st.tuples(st.just("reset"), st.none())),
    min_size=1, max_size=15)


@SETTINGS
@given(ops=flat_ops, seed=st.integers(0, 2 ** 32 - 1))
def test_flat_add_remove_sequence_matches_list_model(ops, seed):
    rng = np.random.default_rng(seed)
    index = voisin.IndexFlatL2(3)
    rows: list[np.ndarray] = []
    for op, arg in ops:
        if op == "add":
            x = rng.standard_normal((arg, 3)).astype(np.float32)
            index.add(x)
            rows.extend(x)
        elif op == "reset":
            index.reset()
            rows = []
        else:
            gone = ({i for i in arg if 0 <= i < len(rows)} if op == "remove"
                    else {i for i in range(len(rows)) if arg[0] <= i < arg[1]})
            assume(op != "remove" or -1 not in arg)
            sel = np.array(arg, np.int64) if op == "remove" else voisin.IDSelectorRange(*arg)
            assert index.remove_ids(sel) == len(gone)
            rows = [r for i, r in enumerate(rows) if i not in gone]  # later vectors shift down
        assert index.ntotal == len(rows)
    expect = np.array(rows, np.float32).reshape(-1, 3)
    np.testing.assert_array_equal(index.reconstruct_n(0, index.ntotal), expect)
    if rows:
        xq = rng.standard_normal((3, 3)).astype(np.float32)
        D, I = index.search(xq, 4)
        Dr, Ir = brute_force(xq, expect, 4, voisin.METRIC_L2)
        np.testing.assert_allclose(D, Dr, rtol=1e-4, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), n=st.integers(1, 5), bad=st.sampled_from([np.nan, np.inf, -np.inf]),
       where=st.integers(0, 10 ** 6))
def test_non_finite_input_never_reaches_the_index(seed, n, bad, where):
    rng = np.random.default_rng(seed)
    index = voisin.IndexFlatL2(4)
    index.add(rng.standard_normal((10, 4)))
    x = rng.standard_normal((n, 4))
    x.flat[where % x.size] = bad
    with pytest.raises(ValueError, match=r"^x: contains NaN or inf"):
        index.add(x)
    with pytest.raises(ValueError, match=r"^x: contains NaN or inf"):
        index.search(x, 2)
    assert index.ntotal == 10
    assert np.isfinite(index.reconstruct_n(0, 10)).all()


@SETTINGS
@given(seed=st.integers(0, 2 ** 32 - 1), nb=st.integers(1, 500), nq=st.sampled_from([1, 4, 25]),
       d=st.integers(1, 24), metric=metrics, quantile=st.floats(0.0, 1.0), density=st.floats(0.0, 1.0),
       kind=st.sampled_from(["normal", "grid"]))
def test_range_search_matches_brute_force(seed, nb, nq, d, metric, quantile, density, kind):
    xb = _vectors(seed, nb, d, kind)
    xq = _vectors(seed + 1, nq, d, kind)
    rng = np.random.default_rng(seed)
    allowed = rng.random(nb) < density
    dist = distances_f64(xq, xb, metric)
    radius = float(np.quantile(dist, quantile))
    if kind == "grid":
        radius += 0.5  # integer distances: keep the radius off the ties
    index = voisin.IndexFlat(d, metric)
    index.add(xb)
    sel = voisin.IDSelectorBatch(np.flatnonzero(allowed).astype(np.int64))
    lims, D, I = index.range_search(xq, radius, params=voisin.SearchParameters(sel=sel))
    assert lims.dtype == np.uint64 and lims[0] == 0 and (np.diff(lims.astype(np.int64)) >= 0).all()
    tol = tolerance(xq, xb, metric)
    for i in range(nq):
        got = I[lims[i]:lims[i + 1]]
        assert len(set(got.tolist())) == got.size and allowed[got].all()
        np.testing.assert_allclose(D[lims[i]:lims[i + 1]], dist[i, got], rtol=0, atol=tol[i])
        inside = dist[i] > radius if metric == voisin.METRIC_INNER_PRODUCT else dist[i] < radius
        near = np.abs(dist[i] - radius) <= tol[i]
        expect = inside & allowed
        # only results within rounding of the radius may differ
        assert set(got.tolist()) ^ set(np.flatnonzero(expect).tolist()) <= set(np.flatnonzero(near).tolist())


@SETTINGS
@given(seed=st.integers(0, 2 ** 32 - 1), nb=st.integers(1, 3000), d=st.integers(1, 70), k=st.integers(1, 50),
       metric=metrics)
def test_batch_and_one_by_one_search_agree(seed, nb, d, k, metric):
    # 25 queries take the BLAS path together and the scan path one at a time
    xb = _vectors(seed, nb, d, "normal")
    xq = _vectors(seed + 1, 25, d, "normal")
    index = voisin.IndexFlat(d, metric)
    index.add(xb)
    D, I = index.search(xq, k)
    singles = [index.search(xq[i:i + 1], k) for i in range(25)]
    D1 = np.vstack([s[0] for s in singles])
    I1 = np.vstack([s[1] for s in singles])
    assert_same_results(D, I, D1, I1, tolerance(xq, xb, metric))
