"""CenteringTransform (FAISS's VCnt): mean, outputs and files against faiss-cpu."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import voisin

faiss = pytest.importorskip("faiss")


def _data(n, d, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, d)) * 3 + np.arange(d)).astype("float32")


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 200), d=st.integers(1, 40), seed=st.integers(0, 2 ** 16))
def test_mean_apply_reverse_match_faiss(n, d, seed):
    x = _data(n, d, seed)
    ours = voisin.CenteringTransform(d)
    theirs = faiss.CenteringTransform(d)
    assert not ours.is_trained and not theirs.is_trained
    ours.train(x)
    theirs.train(x)
    np.testing.assert_allclose(ours.mean, faiss.vector_to_array(theirs.mean), rtol=1e-5, atol=1e-5)
    y = ours.apply(x)
    np.testing.assert_allclose(y, theirs.apply(x), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ours.reverse_transform(y), theirs.reverse_transform(y),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ours.reverse_transform(y), x, rtol=1e-5, atol=1e-4)


def test_faiss_file_read_and_searched_by_voisin():
    xb, xq = _data(2000, 16), _data(20, 16, seed=1)
    f = faiss.IndexPreTransform(faiss.CenteringTransform(16), faiss.IndexFlatIP(16))
    f.train(xb)
    f.add(xb)
    buf = faiss.serialize_index(f)
    ours = voisin.deserialize_index(buf)
    assert isinstance(ours.chain[0], voisin.CenteringTransform)
    np.testing.assert_array_equal(ours.chain[0].mean,
                                  faiss.vector_to_array(faiss.downcast_VectorTransform(f.chain.at(0)).mean))
    D1, I1 = ours.search(xq, 10)
    D2, I2 = f.search(xq, 10)
    np.testing.assert_array_equal(I1, I2)
    np.testing.assert_allclose(D1, D2, rtol=1e-4, atol=1e-3)
    # and written back byte for byte
    assert bytes(voisin.serialize_index(ours, checksum=False)) == bytes(buf)


def test_voisin_file_read_and_searched_by_faiss():
    xb, xq = _data(2000, 16), _data(20, 16, seed=1)
    index = voisin.IndexPreTransform(voisin.CenteringTransform(16), voisin.IndexFlatIP(16))
    index.train(xb)
    index.add(xb)
    assert index.is_trained
    ref = faiss.deserialize_index(voisin.serialize_index(index))
    vt = faiss.downcast_VectorTransform(ref.chain.at(0))
    assert isinstance(vt, faiss.CenteringTransform)
    np.testing.assert_array_equal(faiss.vector_to_array(vt.mean), index.chain[0].mean)
    D1, I1 = index.search(xq, 10)
    D2, I2 = ref.search(xq, 10)
    np.testing.assert_array_equal(I1, I2)
    np.testing.assert_allclose(D1, D2, rtol=1e-4, atol=1e-3)
    # centering changes inner-product results (it is not the identity)
    plain = voisin.IndexFlatIP(16)
    plain.add(xb)
    assert not np.array_equal(plain.search(xq, 10)[1], I1)


def test_untrained_files():
    # faiss 1.15.1 refuses to read an untrained CenteringTransform, even its own file
    # (empty mean); voisin writes the same bytes and reads them back untrained
    f = faiss.IndexPreTransform(faiss.CenteringTransform(8), faiss.IndexFlatL2(8))
    buf = bytes(faiss.serialize_index(f))
    with pytest.raises(RuntimeError, match="mean size"):
        faiss.deserialize_index(np.frombuffer(buf, dtype=np.uint8))
    ours = voisin.IndexPreTransform(voisin.CenteringTransform(8), voisin.IndexFlatL2(8))
    assert bytes(voisin.serialize_index(ours, checksum=False)) == buf
    back = voisin.deserialize_index(buf)
    assert not back.chain[0].is_trained and back.chain[0].mean.size == 0
    back.train(_data(50, 8))
    assert back.chain[0].is_trained and back.chain[0].mean.shape == (8,)


def test_bad_input():
    ct = voisin.CenteringTransform(4)
    with pytest.raises(RuntimeError, match="not trained"):
        ct.apply(np.zeros((2, 4), "float32"))
    with pytest.raises(ValueError, match="x"):
        ct.train(np.zeros((3, 5), "float32"))
    with pytest.raises(ValueError, match="x"):
        ct.train(np.zeros((0, 4), "float32"))
    with pytest.raises(ValueError, match="d_in"):
        voisin.CenteringTransform(0)
    with pytest.raises(TypeError, match="d_in"):
        voisin.CenteringTransform("4")
    with pytest.raises(ValueError, match="mean"):
        ct.set_mean(np.zeros(3, "float32"))
    ct.train(np.ones((3, 4), "float32"))
    with pytest.raises(ValueError, match="x"):
        ct.apply(np.zeros((2, 3), "float32"))


def test_damaged_file_names_the_mean():
    f = faiss.IndexPreTransform(faiss.CenteringTransform(8), faiss.IndexFlatL2(8))
    f.train(_data(50, 8))
    buf = bytearray(faiss.serialize_index(f))
    at = bytes(buf).index(b"VCnt") + 4
    buf[at:at + 8] = (7).to_bytes(8, "little")  # 7 floats for d = 8
    with pytest.raises(ValueError, match="CenteringTransform"):
        voisin.deserialize_index(bytes(buf))
