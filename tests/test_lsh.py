"""IndexLSH against faiss-cpu and a numpy reference: codes, search, files, filters, bad input."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import voisin

faiss = pytest.importorskip("faiss")
pytestmark = pytest.mark.usefixtures("faiss_single_thread")

CONFIGS = [  # (d, nbits, rotate_data, train_thresholds)
    (32, 64, True, False),
    (32, 16, False, False),
    (32, 20, True, True),
    (32, 32, False, True),
    (24, 13, True, False),
    (24, 10, False, True),
]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(12)
    xt = rng.normal(size=(1500, 32)).astype("float32")
    xb = rng.normal(size=(2500, 32)).astype("float32")
    xq = rng.normal(size=(40, 32)).astype("float32")
    return xt, xb, xq


def _pair(cfg, data):
    d = cfg[0]
    xt, xb, _ = data
    pair = []
    for lib in (voisin, faiss):
        index = lib.IndexLSH(*cfg)
        if not index.is_trained:
            index.train(xt[:, :d])
        index.add(xb[:, :d])
        pair.append(index)
    return pair


def _faiss_codes(index) -> np.ndarray:
    return faiss.vector_to_array(index.codes).reshape(-1, index.code_size)


def _reference_codes(index, x: np.ndarray) -> np.ndarray:
    """The hash written out from its definition, in float64."""
    y = x.astype(np.float64)
    y = y @ index.rrot.A.astype(np.float64).T if index.rotate_data else y[:, :index.nbits]
    if index.train_thresholds:
        y = y - index.thresholds
    bits = (y >= 0).astype(np.uint8)
    return np.packbits(bits, axis=1, bitorder="little")


def _hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x = np.unpackbits(a[:, None, :] ^ b[None, :, :], axis=2)
    return x.sum(axis=2)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_codes_and_search_match_faiss(cfg, data):
    d = cfg[0]
    xq = data[2][:, :d]
    ours, ref = _pair(cfg, data)
    assert (ours.code_size, ours.is_trained, ours.ntotal) == (ref.code_size, True, ref.ntotal)
    np.testing.assert_array_equal(ours.codes, _faiss_codes(ref))
    if cfg[3]:
        np.testing.assert_allclose(ours.thresholds, faiss.vector_to_array(ref.thresholds),
                                   rtol=0, atol=1e-5)
    if cfg[2]:  # FAISS's rotation, seeded with 5
        A = faiss.vector_to_array(ref.rrot.A).reshape(cfg[1], d)
        np.testing.assert_allclose(ours.rrot.A, A, atol=1e-5)
    D, I = ours.search(xq, 10)
    Df, If = ref.search(xq, 10)
    assert D.dtype == np.float32 and I.dtype == np.int64
    np.testing.assert_array_equal(D, Df)
    np.testing.assert_array_equal(I, If)


@pytest.mark.parametrize("cfg", CONFIGS[:3])
def test_search_is_exact_hamming_on_the_codes(cfg, data):
    d = cfg[0]
    xb, xq = data[1][:, :d], data[2][:, :d]
    index = _pair(cfg, data)[0]
    codes = index.sa_encode(xq)
    far = np.abs(index.apply_preprocess(xq)).min(axis=1) > 1e-5  # no float-rounding doubt
    np.testing.assert_array_equal(codes[far], _reference_codes(index, xq)[far])
    np.testing.assert_array_equal(index.codes, index.sa_encode(xb))
    full = _hamming(codes, index.codes)
    D, I = index.search(xq, 7)
    np.testing.assert_array_equal(D, np.sort(full, axis=1)[:, :7])
    np.testing.assert_array_equal(np.take_along_axis(full, I, 1), D)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_sa_decode_like_faiss(cfg, data):
    d, nbits = cfg[0], cfg[1]
    ours, ref = _pair(cfg, data)
    codes = ours.codes[:20]
    dec = ours.sa_decode(codes)
    fdec = ref.sa_decode(codes)
    assert dec.shape == (20, d)
    # without a rotation FAISS leaves the dimensions past nbits unset; voisin writes 0
    cols = d if cfg[2] else min(d, nbits)
    np.testing.assert_allclose(dec[:, :cols], fdec[:, :cols], atol=1e-5)
    if not cfg[2]:
        assert (dec[:, nbits:] == 0).all()
    if nbits <= d:  # A A^T = I: decoding then encoding gives the codes back
        np.testing.assert_array_equal(ours.sa_encode(dec), codes)
    np.testing.assert_allclose(ours.reconstruct(3), dec[3])
    np.testing.assert_allclose(ours.reconstruct_n(0, 20), dec)


def test_missing_results_and_empty_index_like_faiss(data):
    xb, xq = data[1][:3], data[2][:2]
    for n in (0, 3):
        ours, ref = voisin.IndexLSH(32, 16), faiss.IndexLSH(32, 16)
        if n:
            ours.add(xb)
            ref.add(xb)
        D, I = ours.search(xq, 5)
        Df, If = ref.search(xq, 5)
        np.testing.assert_array_equal(D, Df)
        np.testing.assert_array_equal(I, If)
        assert (D[:, n:] == np.float32(2 ** 31 - 1)).all()


def test_untrained_thresholds_refuse_add_and_search():
    index = voisin.IndexLSH(8, 8, train_thresholds=True)
    assert not index.is_trained
    with pytest.raises(RuntimeError, match="not trained"):
        index.add(np.zeros((2, 8), np.float32))
    with pytest.raises(RuntimeError, match="not trained"):
        index.sa_encode(np.zeros((2, 8), np.float32))


def test_median_thresholds_odd_and_even_counts():
    x = np.array([[1, 5], [3, 2], [2, 9]], np.float32)
    index = voisin.IndexLSH(2, 2, rotate_data=False, train_thresholds=True)
    index.train(x)
    np.testing.assert_array_equal(index.thresholds, [2, 5])
    index.train(np.vstack([x, [[10, 0]]]))
    np.testing.assert_array_equal(index.thresholds, [2.5, 3.5])


def test_remove_reset_and_selector_filter(data):
    xb, xq = data[1][:, :32], data[2][:, :32]
    index = voisin.IndexLSH(32, 48)
    index.add(xb[:500])
    codes = index.codes.copy()
    sel = voisin.IDSelectorRange(100, 300)
    D, I = index.search(xq, 5, params=voisin.SearchParameters(sel=sel))
    full = _hamming(index.sa_encode(xq), codes)
    full[:, :100] = 10 ** 6
    full[:, 300:] = 10 ** 6
    assert ((I >= 100) & (I < 300)).all()
    np.testing.assert_array_equal(D, np.sort(full, axis=1)[:, :5])
    ref = faiss.IndexLSH(32, 48)
    ref.add(xb[:500])
    assert index.remove_ids(np.arange(0, 500, 2)) == ref.remove_ids(np.arange(0, 500, 2)) == 250
    np.testing.assert_array_equal(index.codes, _faiss_codes(ref))
    np.testing.assert_array_equal(index.search(xq, 4)[1], ref.search(xq, 4)[1])
    index.reset()
    assert index.ntotal == 0
    index.add(xb[:10])
    assert index.ntotal == 10


def test_range_search_by_hamming_distance(data):
    xb, xq = data[1][:800, :32], data[2][:5, :32]
    index = voisin.IndexLSH(32, 32)
    index.add(xb)
    full = _hamming(index.sa_encode(xq), index.codes)
    lims, D, I = index.range_search(xq, 9.5)
    assert D.dtype == np.float32
    for i in range(len(xq)):
        want = np.flatnonzero(full[i] < 10)
        np.testing.assert_array_equal(np.sort(I[lims[i]:lims[i + 1]]), want)
        np.testing.assert_array_equal(D[lims[i]:lims[i + 1]], full[i, I[lims[i]:lims[i + 1]]])


@pytest.mark.parametrize("cfg", CONFIGS)
def test_faiss_file_read_by_voisin(cfg, data):
    d = cfg[0]
    xq = data[2][:, :d]
    ref = _pair(cfg, data)[1]
    ours = voisin.deserialize_index(faiss.serialize_index(ref))
    assert type(ours) is voisin.IndexLSH
    assert (ours.nbits, ours.rotate_data, ours.train_thresholds) == cfg[1:]
    D, I = ours.search(xq, 10)
    Df, If = ref.search(xq, 10)
    np.testing.assert_array_equal(D, Df)
    np.testing.assert_array_equal(I, If)
    ours.add(data[1][:5, :d])  # the loaded index keeps working
    ref.add(data[1][:5, :d])
    np.testing.assert_array_equal(ours.codes, _faiss_codes(ref))


@pytest.mark.parametrize("cfg", CONFIGS)
def test_voisin_file_read_by_faiss(cfg, data, tmp_path):
    d = cfg[0]
    xq = data[2][:, :d]
    ours = _pair(cfg, data)[0]
    path = str(tmp_path / "lsh.index")
    voisin.write_index(ours, path)
    ref = faiss.read_index(path)
    assert isinstance(ref, faiss.IndexLSH)
    D, I = ours.search(xq, 10)
    Df, If = ref.search(xq, 10)
    np.testing.assert_array_equal(D, Df)
    np.testing.assert_array_equal(I, If)
    again = voisin.read_index(path)
    np.testing.assert_array_equal(again.codes, ours.codes)
    np.testing.assert_array_equal(again.search(xq, 10)[1], I)


def test_file_bytes_equal_faiss_without_rotation(data):
    ours, ref = _pair((32, 16, False, True), data)
    np.testing.assert_array_equal(voisin.serialize_index(ours, checksum=False),
                                  faiss.serialize_index(ref))


def test_pickle_and_mmap(data, tmp_path):
    index = _pair((32, 20, True, True), data)[0]
    xq = data[2]
    back = pickle.loads(pickle.dumps(index))
    np.testing.assert_array_equal(back.search(xq, 5)[1], index.search(xq, 5)[1])
    path = str(tmp_path / "m.index")
    voisin.write_index(index, path)
    mapped = voisin.read_index(path, voisin.IO_FLAG_MMAP)
    np.testing.assert_array_equal(mapped.search(xq, 5)[1], index.search(xq, 5)[1])
    mapped.add(data[1][:3])  # a mapped index copies on write
    assert mapped.ntotal == index.ntotal + 3


def test_corrupt_file_is_refused(data):
    index = _pair((32, 16, False, False), data)[0]
    buf = voisin.serialize_index(index, checksum=False).copy()
    # code_size lives right after nbits, the two flags and the empty thresholds vector
    at = 4 + 4 + 8 * 3 + 1 + 4 + 4 + 2 + 8
    assert int(buf[at:at + 4].view(np.int32)[0]) == 2
    buf[at:at + 4] = np.array([3], np.int32).view(np.uint8)
    with pytest.raises(voisin.IndexFileError, match="code_size"):
        voisin.deserialize_index(buf)
    with pytest.raises(voisin.IndexFileError):
        voisin.deserialize_index(voisin.serialize_index(index, checksum=False)[:-7])


def test_bad_arguments():
    with pytest.raises(ValueError, match="nbits"):
        voisin.IndexLSH(8, 16, rotate_data=False)
    with pytest.raises(ValueError, match="nbits"):
        voisin.IndexLSH(8, 0)
    with pytest.raises(TypeError, match="rotate_data"):
        voisin.IndexLSH(8, 8, rotate_data="yes")
    index = voisin.IndexLSH(8, 8)
    with pytest.raises(ValueError, match="dimension"):
        index.add(np.zeros((2, 7), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        index.search(np.full((1, 8), np.nan, np.float32), 1)
    with pytest.raises(NotImplementedError, match="IndexIDMap"):
        index.add_with_ids(np.zeros((2, 8), np.float32), [5, 6])
    with pytest.raises(ValueError, match="codes"):
        index.sa_decode(np.zeros((2, 3), np.uint8))
    index.add(np.ones((2, 8), np.float32))
    with pytest.raises(ValueError, match="out of range"):
        index.reconstruct(2)


def test_idmap_wraps_lsh(data):
    xb, xq = data[1][:300], data[2]
    index = voisin.IndexIDMap(voisin.IndexLSH(32, 32))
    index.add_with_ids(xb, np.arange(300) * 10)
    D, I = index.search(xq, 3)
    plain = voisin.IndexLSH(32, 32)
    plain.add(xb)
    np.testing.assert_array_equal(I, plain.search(xq, 3)[1] * 10)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), d=st.integers(1, 20), extra=st.integers(0, 20),
       rotate=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_property_self_match_and_code_size(n, d, extra, rotate, seed):
    nbits = d + extra if rotate else max(1, d - extra % max(1, d))
    x = np.random.default_rng(seed).normal(size=(n, d)).astype("float32")
    index = voisin.IndexLSH(d, nbits, rotate_data=rotate)
    index.add(x)
    assert index.codes.shape == (n, (nbits + 7) // 8)
    D, I = index.search(x, 1)
    assert (D[:, 0] == 0).all()  # every vector hashes to its own code
    assert (np.take_along_axis(_hamming(index.codes, index.codes), I, 1) == 0).all()


@pytest.mark.parametrize("cfg", CONFIGS)
def test_faiss_bytes_survive_a_voisin_round_trip(cfg, data):
    ref = _pair(cfg, data)[1]
    buf = faiss.serialize_index(ref)
    np.testing.assert_array_equal(
        voisin.serialize_index(voisin.deserialize_index(buf), checksum=False), buf)


def test_read_only_and_search_and_reconstruct(data, tmp_path):
    index = _pair((32, 24, True, False), data)[0]
    path = str(tmp_path / "ro.index")
    voisin.write_index(index, path)
    ro = voisin.read_index(path, voisin.IO_FLAG_READ_ONLY | voisin.IO_FLAG_MMAP)
    xq = data[2][:4]
    np.testing.assert_array_equal(ro.search(xq, 3)[1], index.search(xq, 3)[1])
    for change in (lambda: ro.add(xq), lambda: ro.remove_ids([0]), ro.reset,
                   lambda: ro.add_sa_codes(ro.sa_encode(xq))):
        with pytest.raises(RuntimeError, match="READ_ONLY"):
            change()
    D, I, R = index.search_and_reconstruct(xq, 3)
    np.testing.assert_allclose(R, index.sa_decode(index.codes[I.ravel()]).reshape(4, 3, 32))
