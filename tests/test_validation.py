"""Bad input: every case raises the documented exception type with the name of
the offending argument in the message, and leaves the index exactly as it was
(same ntotal, bit-identical search results). Good-but-unusual input (float64,
lists, non-contiguous views) is converted once and accepted."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import voisin
from voisin import _validate
from conftest import assert_unchanged, index_state

D_ = 8


@pytest.fixture
def xq():
    return np.random.default_rng(3).standard_normal((6, D_)).astype(np.float32)


@pytest.fixture(params=["flat", "idmap"])
def index(request):
    rng = np.random.default_rng(5)
    xb = rng.standard_normal((60, D_)).astype(np.float32)
    if request.param == "flat":
        idx = voisin.IndexFlatL2(D_)
        idx.add(xb)
    else:
        idx = voisin.IndexIDMap2(voisin.IndexFlatIP(D_))
        idx.add_with_ids(xb, np.arange(1000, 1060, dtype=np.int64))
    return idx


def _nan_at(shape, pos, value):
    a = np.ones(shape, np.float32)
    a[pos] = value
    return a


# (bad x, exception type, message pattern); the pattern always names the argument
BAD_VECTORS = [
    pytest.param(np.zeros((2, 3, D_)), ValueError, r"x: expected a 2-D array", id="3-D"),
    pytest.param("abcdefgh", TypeError, r"x: expected a numeric array", id="string"),
    pytest.param([["a"] * D_], TypeError, r"x: expected a numeric array", id="list-of-strings"),
    pytest.param(np.array([[1.0] * D_], dtype=object), TypeError, r"x: .*dtype object", id="object"),
    pytest.param([[1.0] * D_, [1.0] * 3], ValueError, r"x: .*could not convert", id="ragged"),
    pytest.param(np.zeros((2, D_), np.complex64), TypeError, r"x: .*complex64", id="complex"),
    pytest.param(np.zeros((2, D_ + 1), np.float32), ValueError, rf"x: .*d={D_}", id="wrong-d"),
    pytest.param(np.zeros((2, D_ - 1)), ValueError, rf"x: .*d={D_}", id="wrong-d-f64"),
    pytest.param(np.zeros(D_ + 2, np.float32), ValueError, r"x: expected a 2-D array", id="1-D-wrong-length"),
    pytest.param(np.float32(1.0), ValueError, r"x: expected a 2-D array", id="scalar"),
    pytest.param(None, TypeError, r"x: expected a numeric array", id="None"),
    pytest.param(_nan_at((3, D_), (2, 5), np.nan), ValueError, r"x: contains NaN or inf .*\(2, 5\)", id="nan"),
    pytest.param(_nan_at((3, D_), (0, 0), np.inf), ValueError, r"x: contains NaN or inf", id="inf"),
    pytest.param(_nan_at((3, D_), (1, 1), -np.inf), ValueError, r"x: contains NaN or inf", id="-inf"),
    pytest.param(np.full((2, D_), 1e300), ValueError, r"x: contains NaN or inf", id="overflows-float32"),
]


@pytest.mark.parametrize("bad, exc, match", BAD_VECTORS)
def test_bad_vectors_in_add_search_train_range(index, xq, bad, exc, match):
    before = index_state(index, xq)
    calls = [lambda: index.search(bad, 3), lambda: index.range_search(bad, 1.0), lambda: index.train(bad)]
    if isinstance(index, voisin.IndexIDMap):
        calls.append(lambda: index.add_with_ids(bad, np.array([1, 2, 3], np.int64)))
    else:
        calls.append(lambda: index.add(bad))
    for call in calls:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a cast overflow must not escape as a warning
            with pytest.raises(exc, match=match):
                call()
        assert_unchanged(index, before, xq)


@pytest.mark.parametrize("k, exc", [(0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError),
                                    (np.bool_(True), TypeError), ("3", TypeError), (None, TypeError),
                                    (2.0, TypeError)])
def test_bad_k(index, xq, k, exc):
    before = index_state(index, xq)
    with pytest.raises(exc, match=r"^k: expected a positive integer"):
        index.search(xq, k)
    with pytest.raises(exc, match=r"^k: "):
        voisin.knn(xq, xq, k)
    assert_unchanged(index, before, xq)


def test_integer_like_k_accepted(index, xq):
    for k in (np.int32(3), np.int64(3), np.uint8(3)):
        D, I = index.search(xq, k)
        assert D.shape == (6, 3)


BAD_IDS = [
    pytest.param(np.array([1.0, 2.0, 3.0]), TypeError, r"ids: expected integer ids", id="float"),
    pytest.param(np.array([True, False, True]), TypeError, r"ids: expected integer ids", id="bool"),
    pytest.param(["a", "b", "c"], TypeError, r"ids: expected integer ids", id="strings"),
    pytest.param(None, TypeError, r"ids: expected integer ids", id="None"),
    pytest.param(np.array([1, 2], np.int64), ValueError, r"ids: expected 3 ids", id="too-few"),
    pytest.param(np.array([1, 2, 3, 4], np.int64), ValueError, r"ids: expected 3 ids", id="too-many"),
    pytest.param(np.array([[1, 2, 3]], np.int64), ValueError, r"ids: expected a 1-D array", id="2-D"),
    pytest.param(np.array([5, -1, 6], np.int64), ValueError, r"ids: -1 is reserved", id="minus-one"),
    pytest.param(np.array([5, 7, 5], np.int64), ValueError, r"ids: duplicate id 5", id="duplicates"),
    # duplicates in one call where the id also exists already: the replace path must not start
    pytest.param(np.array([1000, 7, 1000], np.int64), ValueError, r"ids: duplicate id 1000", id="dup-existing"),
    pytest.param(np.array([2 ** 63, 1, 2], np.uint64), ValueError, r"ids: .*int64", id="uint64-overflow"),
    pytest.param([[1], [2, 3], [4]], ValueError, r"ids: .*could not convert", id="ragged"),
]


@pytest.mark.parametrize("ids, exc, match", BAD_IDS)
def test_bad_ids(xq, ids, exc, match):
    rng = np.random.default_rng(1)
    index = voisin.IndexIDMap(voisin.IndexFlatL2(D_))
    index.add_with_ids(rng.standard_normal((60, D_)), np.arange(1000, 1060, dtype=np.int64))
    before = index_state(index, xq)
    with pytest.raises(exc, match=match):
        index.add_with_ids(rng.standard_normal((3, D_)), ids)
    assert_unchanged(index, before, xq)
    assert index.id_map.tolist() == list(range(1000, 1060))


def test_idmap_add_without_ids_and_flat_add_with_ids(index, xq):
    before = index_state(index, xq)
    x = np.ones((2, D_), np.float32)
    with pytest.raises(RuntimeError, match="add_with_ids" if isinstance(index, voisin.IndexIDMap) else "IDMap"):
        if isinstance(index, voisin.IndexIDMap):
            index.add(x)
        else:
            index.add_with_ids(x, np.array([1, 2]))
    assert_unchanged(index, before, xq)


@pytest.mark.parametrize("which, arr, match", [
    ("D", np.empty((6, 2), np.float32), r"^D: .*shape \(6, 3\)"),
    ("D", np.empty((6, 3), np.float64), r"^D: .*float32"),
    ("D", np.empty((6, 6), np.float32)[:, ::2], r"^D: .*C-contiguous"),
    ("D", np.empty((3, 6), np.float32).T, r"^D: .*C-contiguous"),
    ("D", [[0.0] * 3] * 6, r"^D: "),
    ("I", np.empty((6, 3), np.int32), r"^I: .*int64"),
    ("I", np.empty((7, 3), np.int64), r"^I: .*shape \(6, 3\)"),
])
def test_bad_output_arrays(index, xq, which, arr, match):
    before = index_state(index, xq)
    with pytest.raises(ValueError, match=match):
        index.search(xq, 3, **{which: arr})
    readonly = np.empty((6, 3), np.float32 if which == "D" else np.int64)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match=rf"^{which}: .*writeable"):
        index.search(xq, 3, **{which: readonly})
    assert_unchanged(index, before, xq)


def test_bad_search_parameters(index, xq):
    before = index_state(index, xq)
    with pytest.raises(TypeError, match=r"unknown parameter 'nprobe'"):
        voisin.SearchParameters(nprobe=4)
    with pytest.raises(TypeError, match=r"unknown parameter 'efSearch'"):
        voisin.SearchParameters(sel=voisin.IDSelectorAll(), efSearch=4)
    for name in ("__init__", "__class__", "_private"):  # no kwarg may overwrite internals
        with pytest.raises(TypeError, match="unknown parameter"):
            voisin.SearchParameters(**{name: 1})
    with pytest.raises(TypeError, match=r"^sel: expected an IDSelector"):
        voisin.SearchParameters(sel=[1, 2, 3])
    for params in ({"sel": None}, voisin.IDSelectorAll(), "fast", 3):
        with pytest.raises(TypeError, match=r"^params: expected a SearchParameters"):
            index.search(xq, 3, params=params)
        with pytest.raises(TypeError, match=r"^params: "):
            index.range_search(xq, 1.0, params=params)

    class OtherParams(voisin.SearchParameters):  # an index-specific type this index does not take
        nprobe = None

    with pytest.raises(TypeError, match=r"^params: .*takes SearchParameters, got OtherParams"):
        index.search(xq, 3, params=OtherParams(nprobe=2))
    assert_unchanged(index, before, xq)


@pytest.mark.parametrize("radius, exc", [(float("nan"), ValueError), (float("inf"), ValueError),
                                         ("1.0", TypeError), (None, TypeError), (True, TypeError),
                                         (np.array([1.0, 2.0]), TypeError)])
def test_bad_radius(index, xq, radius, exc):
    before = index_state(index, xq)
    with pytest.raises(exc, match=r"^radius: "):
        index.range_search(xq, radius)
    assert_unchanged(index, before, xq)


@pytest.mark.parametrize("x, exc, match", [
    (np.array([1.5]), TypeError, r"^x: expected an IDSelector or an array of integer ids"),
    ("abc", TypeError, r"^x: expected an IDSelector"),
    (None, TypeError, r"^x: expected an IDSelector"),
    (np.array([[1, 2]]), ValueError, r"^x: expected a 1-D array"),
])
def test_bad_remove_ids(index, xq, x, exc, match):
    before = index_state(index, xq)
    with pytest.raises(exc, match=match):
        index.remove_ids(x)
    assert_unchanged(index, before, xq)


def test_remove_padding_ids_removes_nothing(index, xq):
    # FAISS's -1 padding may be fed back to remove_ids: it matches no stored id
    before = index_state(index, xq)
    assert index.remove_ids(np.array([-1, -1], np.int64)) == 0
    assert not voisin.IDSelectorBatch([-1]).contains(np.arange(5)).any()
    assert_unchanged(index, before, xq)


def test_failing_selector_does_not_damage(index, xq):
    before = index_state(index, xq)

    def boom(ids):
        raise RuntimeError("predicate failed")

    with pytest.raises(RuntimeError, match="predicate failed"):
        index.remove_ids(voisin.IDSelectorFunction(boom))
    with pytest.raises(ValueError, match="shape"):
        index.remove_ids(voisin.IDSelectorFunction(lambda ids: np.ones(2, bool)))
    with pytest.raises(RuntimeError, match="predicate failed"):
        index.search(xq, 3, params=voisin.SearchParameters(sel=voisin.IDSelectorFunction(boom)))
    assert_unchanged(index, before, xq)


def test_bad_reconstruct_keys(index, xq):
    before = index_state(index, xq)
    with pytest.raises(TypeError, match=r"^key: expected an integer"):
        index.reconstruct(1.0)
    with pytest.raises(TypeError, match=r"^key: "):
        index.reconstruct("3")
    with pytest.raises(ValueError, match=r"^key: "):
        index.reconstruct(10 ** 9)
    with pytest.raises(ValueError, match=r"^key: .*int64"):
        index.reconstruct(2 ** 70)  # not an OverflowError from deep inside numpy
    with pytest.raises(TypeError, match=r"^keys: expected integer ids"):
        index.reconstruct_batch([1.0, 2.0])
    with pytest.raises(ValueError, match=r"^i0: "):
        index.reconstruct_n(-1, 2)
    with pytest.raises(ValueError, match=r"^ni: "):
        index.reconstruct_n(0, -2)
    with pytest.raises(ValueError, match=r"i0, ni: .*exceeds ntotal=60"):
        index.reconstruct_n(50, 11)
    with pytest.raises(ValueError, match=r"^i0: expected an integer <= 60"):
        index.reconstruct_n(61)  # not a confusing complaint about the ni it was not given
    assert_unchanged(index, before, xq)


def test_bad_constructor_arguments():
    for d, exc in ((0, ValueError), (-3, ValueError), (4.0, TypeError), ("8", TypeError), (True, TypeError)):
        with pytest.raises(exc, match=r"^d: expected a positive integer dimension"):
            voisin.IndexFlatL2(d)
    with pytest.raises(ValueError, match=r"^metric: only METRIC_L2"):
        voisin.IndexFlat(4, 7)
    with pytest.raises(ValueError, match=r"^metric: .*cosine.*normalize_L2"):
        voisin.IndexFlat(4, "cosine")
    with pytest.raises(TypeError, match=r"^metric: "):
        voisin.IndexFlat(4, 1.0)
    with pytest.raises(TypeError, match=r"^metric: "):
        voisin.IndexFlat(4, True)
    assert voisin.IndexFlat(4, np.int64(0)).metric_type == voisin.METRIC_INNER_PRODUCT


def test_bad_selector_arguments():
    with pytest.raises(TypeError, match=r"^imin: "):
        voisin.IDSelectorRange(1.5, 3)
    with pytest.raises(TypeError, match=r"^imax: "):
        voisin.IDSelectorRange(1, None)
    with pytest.raises(ValueError, match=r"^imax: .*int64"):
        voisin.IDSelectorRange(0, 2 ** 63)
    with pytest.raises(TypeError, match=r"^ids: expected integer ids"):
        voisin.IDSelectorBatch([1.5, 2.0])
    with pytest.raises(ValueError, match=r"^n: "):
        voisin.IDSelectorBatch(5, np.arange(3))
    with pytest.raises(ValueError, match=r"^n: "):
        voisin.IDSelectorBatch(-1, np.arange(3))
    with pytest.raises(TypeError, match=r"^bitmap: expected a 1-D uint8"):
        voisin.IDSelectorBitmap(np.zeros(3, np.int32))
    with pytest.raises(TypeError, match=r"^bitmap: "):
        voisin.IDSelectorBitmap(np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match=r"^n: "):
        voisin.IDSelectorBitmap(9, np.zeros(8, np.uint8))
    for cls in (voisin.IDSelectorNot,):
        with pytest.raises(TypeError, match=r"^sel: expected an IDSelector"):
            cls([1, 2])
    with pytest.raises(TypeError, match=r"^lhs: "):
        voisin.IDSelectorAnd(None, voisin.IDSelectorAll())
    with pytest.raises(TypeError, match=r"^rhs: "):
        voisin.IDSelectorOr(voisin.IDSelectorAll(), "x")
    with pytest.raises(TypeError, match=r"^fn: expected a callable"):
        voisin.IDSelectorFunction(3)


def test_bad_free_function_arguments():
    xb = np.random.default_rng(0).standard_normal((20, 4)).astype(np.float32)
    with pytest.raises(ValueError, match=r"^xq: .*d=4"):
        voisin.knn(np.zeros((2, 3), np.float32), xb, 1)
    with pytest.raises(ValueError, match=r"^xb: contains NaN"):
        voisin.knn(xb, _nan_at((20, 4), (3, 3), np.nan), 1)
    with pytest.raises(ValueError, match=r"^metric: "):
        voisin.knn(xb, xb, 1, metric=5)
    with pytest.raises(ValueError, match=r"^xq: .*d=4"):
        voisin.pairwise_distances(np.zeros((2, 5)), xb)
    with pytest.raises(TypeError, match=r"^xb: "):
        voisin.pairwise_distances(xb, "xb")
    with pytest.raises(TypeError, match=r"^x: normalize_L2 works in place"):
        voisin.normalize_L2(np.ones((2, 3)))  # float64: converting would not be in place
    with pytest.raises(TypeError, match=r"^x: "):
        voisin.normalize_L2(np.ones((3, 2), np.float32).T)  # not C-contiguous
    with pytest.raises(TypeError, match=r"^x: "):
        voisin.normalize_L2([[1.0, 2.0]])
    with pytest.raises(ValueError, match=r"^x: contains NaN"):
        voisin.normalize_L2(_nan_at((2, 3), (1, 2), np.nan))
    with pytest.raises(ValueError, match=r"^x: expected a 1-D or 2-D array"):
        voisin.normalize_L2(np.ones((2, 3, 4), np.float32))
    n = voisin.omp_get_max_threads()
    for bad, exc in ((0, ValueError), (-2, ValueError), (1.5, TypeError)):
        with pytest.raises(exc, match=r"^n: "):
            voisin.omp_set_num_threads(bad)
    assert voisin.omp_get_max_threads() == n


def test_unusual_but_valid_inputs_are_converted_once(xq):
    # float32 C-contiguous passes through without a copy
    assert _validate.as_matrix(xq, D_, "x") is xq
    for good in (xq.astype(np.float64), xq.tolist(), np.asfortranarray(xq), xq.astype(np.float16),
                 np.repeat(xq, 2, axis=1)[:, ::2], (xq * 100).astype(np.int32)):
        out = _validate.as_matrix(good, D_, "x")
        assert out.dtype == np.float32 and out.flags.c_contiguous and out.shape == (6, D_)
        np.testing.assert_array_equal(out, np.asarray(good, dtype=np.float32))
    # byte-swapped and unaligned float32 buffers (file formats, network) search like native ones
    index = voisin.IndexFlatL2(D_)
    index.add(np.random.default_rng(2).standard_normal((50, D_)))
    ref = index.search(xq, 3)[1]
    np.testing.assert_array_equal(index.search(xq.astype(">f4"), 3)[1], ref)
    raw = np.zeros(xq.nbytes + 1, np.uint8)
    raw[1:] = xq.view(np.uint8).ravel()
    unaligned = np.frombuffer(raw.data, dtype=np.float32, offset=1).reshape(xq.shape)
    np.testing.assert_array_equal(index.search(unaligned, 3)[1], ref)
    ids = np.arange(5, dtype=np.int64)
    assert _validate.as_ids(ids, 5) is ids
    assert _validate.as_ids(np.arange(5, dtype=np.int32)).dtype == np.int64


def test_empty_inputs(index, xq):
    before = index_state(index, xq)
    if isinstance(index, voisin.IndexIDMap):
        index.add_with_ids(np.zeros((0, D_), np.float32), np.zeros(0, np.int64))
    else:
        index.add(np.zeros((0, D_), np.float32))  # adding nothing is allowed and changes nothing
    assert_unchanged(index, before, xq)
    D, I = index.search(np.zeros((0, D_)), 4)
    assert D.shape == (0, 4) and I.shape == (0, 4)
    with pytest.raises(ValueError, match=r"^x: training needs at least one vector"):
        index.train(np.zeros((0, D_), np.float32))
    with pytest.raises(ValueError, match=r"^x: .*dimension"):
        index.search(np.zeros((0, 0)), 1)
    assert_unchanged(index, before, xq)


def test_search_empty_index_with_every_metric():
    for metric, worst in ((voisin.METRIC_L2, np.finfo(np.float32).max),
                          (voisin.METRIC_INNER_PRODUCT, -np.finfo(np.float32).max)):
        for index in (voisin.IndexFlat(3, metric), voisin.IndexIDMap(voisin.IndexFlat(3, metric))):
            D, I = index.search(np.ones((2, 3)), 3)
            assert (I == -1).all() and (D == worst).all()
            D, I = voisin.knn(np.ones((2, 3)), np.zeros((0, 3)), 3, metric)
            assert (I == -1).all() and (D == worst).all()
