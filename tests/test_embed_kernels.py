"""The fused transformer kernels against float64 numpy (voisin/kernels/transformer.py)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from voisin.kernels.transformer import add_layer_norm, bias_gelu, masked_softmax, mean_pool

SETTINGS = settings(max_examples=30, deadline=None)
_erf = np.vectorize(math.erf)


def test_gelu_matches_exact_erf_form():
    x = np.linspace(-12, 12, 200_001, dtype=np.float32).reshape(1, -1)
    bias = np.zeros(x.shape[1], np.float32)
    got = x.copy()
    bias_gelu(got, bias)
    xd = x.astype(np.float64)
    ref = 0.5 * xd * (1 + _erf(xd / math.sqrt(2)))
    # the erf approximation is good to 4e-7 absolute; the product scales it by |x|/2
    assert np.all(np.abs(got - ref) <= 4e-7 * np.maximum(1, np.abs(xd)) + 1e-6 * np.abs(ref))


@SETTINGS
@given(n=st.integers(1, 6), m=st.integers(1, 70), seed=st.integers(0, 2**16))
def test_bias_gelu_adds_the_bias_per_column(n, m, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, m)) * 3).astype(np.float32)
    b = rng.standard_normal(m).astype(np.float32)
    got = x.copy()
    bias_gelu(got, b)
    v = x.astype(np.float64) + b
    np.testing.assert_allclose(got, 0.5 * v * (1 + _erf(v / math.sqrt(2))), atol=5e-6, rtol=1e-5)


@SETTINGS
@given(n=st.integers(1, 5), d=st.integers(2, 80), seed=st.integers(0, 2**16), offset=st.sampled_from([0, 1e3]))
def test_add_layer_norm(n, d, seed, offset):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, d)) + offset).astype(np.float32)
    res = rng.standard_normal((n, d)).astype(np.float32)
    b, g, beta = (rng.standard_normal(d).astype(np.float32) for _ in range(3))
    got = x.copy()
    add_layer_norm(got, res, b, g, beta, np.float32(1e-12))
    v = x.astype(np.float64) + res + b
    mu = v.mean(1, keepdims=True)
    std = np.sqrt(((v - mu) ** 2).mean(1, keepdims=True) + 1e-12)
    ref = (v - mu) / std * g + beta
    # float32 rounding of x + residual + bias (ulp of |v|, ~6e-5 at 1000), amplified by gamma / std
    tol = 4 * np.finfo(np.float32).eps * np.abs(v).max(1, keepdims=True) * np.abs(g) / std + 2e-5
    assert (np.abs(got - ref) <= tol + 1e-4 * np.abs(ref)).all()


@SETTINGS
@given(nb=st.integers(1, 3), heads=st.integers(1, 3), L=st.integers(1, 40), seed=st.integers(0, 2**16),
       spread=st.sampled_from([1.0, 30.0, 500.0]))
def test_masked_softmax(nb, heads, L, seed, spread):
    rng = np.random.default_rng(seed)
    scores = (rng.standard_normal((nb, heads, L, L)) * spread).astype(np.float32)
    lengths = rng.integers(1, L + 1, nb).astype(np.int64)
    scale = np.float32(0.17677669)
    got = scores.copy()
    masked_softmax(got, lengths, scale)
    for b in range(nb):
        n = lengths[b]
        s = scores[b, :, :, :n].astype(np.float64) * float(scale)
        e = np.exp(s - s.max(-1, keepdims=True))
        ref = e / e.sum(-1, keepdims=True)
        np.testing.assert_allclose(got[b, :, :, :n], ref, atol=1e-6, rtol=1e-5)
        assert (got[b, :, :, n:] == 0).all(), "padding keys must get probability 0"
    tiny = (got != 0) & (np.abs(got) < np.finfo(np.float32).tiny)
    assert not tiny.any(), "denormal probabilities slow the next matmul"


def test_masked_softmax_extreme_scores():
    row = np.array([0.0, -1e4, -500.0, -69.0 / 0.5, -60.0, 1e4, np.float32(3e38)], np.float32)
    scores = np.tile(row, (1, 1, 7, 1)).reshape(1, 1, 7, 7)
    got = scores.copy()
    masked_softmax(got, np.array([7]), np.float32(0.5))
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got[0, 0].sum(1), 1.0, rtol=1e-6)
    assert got[0, 0, 0, 6] == np.float32(1.0)  # the huge score takes everything


@SETTINGS
@given(nb=st.integers(1, 5), L=st.integers(1, 20), d=st.integers(1, 50), seed=st.integers(0, 2**16),
       normalize=st.booleans())
def test_mean_pool(nb, L, d, seed, normalize):
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((nb, L, d)).astype(np.float32)
    lengths = rng.integers(1, L + 1, nb).astype(np.int64)
    out = np.full((nb, d), np.nan, np.float32)
    mean_pool(h, lengths, normalize, out)
    for b in range(nb):
        ref = h[b, :lengths[b]].astype(np.float64).mean(0)
        if normalize:
            ref /= max(np.linalg.norm(ref), 1e-12)
        np.testing.assert_allclose(out[b], ref, atol=1e-6, rtol=1e-5)


def test_mean_pool_of_zero_vector_stays_zero_when_normalised():
    out = np.empty((1, 4), np.float32)
    mean_pool(np.zeros((1, 3, 4), np.float32), np.array([3]), True, out)
    assert (out == 0).all()
