"""voisin.kernels.simd: the explicit 8-lane distance loops against numpy, every tail length."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from numba import njit

from voisin.kernels.simd import dot_qrow, dot_rows, sqdist_qrow, sqdist_rows


@njit(cache=True)
def _qrow(q, X, j, l2):
    return sqdist_qrow(q, X, j) if l2 else dot_qrow(q, X, j)


@njit(cache=True)
def _rows(X, i, j, l2):
    return sqdist_rows(X, i, j) if l2 else dot_rows(X, i, j)


def _want(a, b, l2):
    a, b = a.astype(np.float64), b.astype(np.float64)
    return ((a - b) ** 2).sum() if l2 else (a * b).sum()


@pytest.mark.parametrize("d", list(range(0, 70)) + [100, 127, 128, 129, 784, 960])
@pytest.mark.parametrize("l2", [True, False])
def test_every_length_matches_numpy(d, l2):
    rng = np.random.default_rng(d)
    X = rng.standard_normal((5, d)).astype(np.float32)
    q = rng.standard_normal(d).astype(np.float32)
    tol = 1e-5 * max(1.0, d)
    for j in range(5):
        assert _qrow(q, X, j, l2) == pytest.approx(_want(q, X[j], l2), rel=1e-5, abs=tol)
        assert _rows(X, 1, j, l2) == pytest.approx(_want(X[1], X[j], l2), rel=1e-5, abs=tol)


def test_tail_reads_nothing_past_the_row():
    """The masked tail must not read past the end: the last row of an array that
    ends exactly at a page boundary would fault otherwise."""
    import mmap
    d = 13
    page = mmap.PAGESIZE
    buf = mmap.mmap(-1, 2 * page)
    # make the second page inaccessible so a stray read past the row faults
    import ctypes
    libc = ctypes.CDLL(None)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    assert libc.mprotect(ctypes.c_void_p(addr + page), page, 0) == 0
    try:
        nrows = page // (4 * d)
        start = page - nrows * 4 * d
        X = np.frombuffer(buf, dtype=np.float32, count=nrows * d, offset=start).reshape(nrows, d)
        q = np.ones(d, np.float32)
        want = float(((q - X[-1]) ** 2).sum())
        assert _qrow(q, X, nrows - 1, True) == pytest.approx(want)
        assert _rows(X, nrows - 1, nrows - 1, True) == 0.0
    finally:
        libc.mprotect(ctypes.c_void_p(addr + page), page, 3)
        del X
        buf.close()


@given(st.integers(1, 300), st.integers(0, 2 ** 32 - 1), st.booleans())
@settings(max_examples=50, deadline=None)
def test_fallbacks_agree_with_the_vector_loop(d, seed, l2):
    """Non-contiguous and uint8 arrays take the plain loop; same values."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((3, 2 * d)).astype(np.float32)
    strided = X[:, ::2]
    dense = np.ascontiguousarray(strided)
    q = rng.standard_normal(d).astype(np.float32)
    assert _qrow(q, strided, 2, l2) == pytest.approx(_qrow(q, dense, 2, l2), rel=1e-5, abs=1e-4)
    codes = rng.integers(0, 256, (3, d)).astype(np.uint8)
    assert _rows(codes, 0, 2, l2) == pytest.approx(_want(codes[0], codes[2], l2), rel=1e-5)
