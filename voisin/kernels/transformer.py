"""The fused element-wise parts of a BERT encoder layer (the matmuls stay in BLAS).

A transformer layer is four matrix products plus the steps between them:
bias + residual + layer norm, bias + GELU, the masked attention softmax, and at
the end the mean over each sentence's tokens. numpy would do each of those in
several passes over arrays of tens of megabytes; each kernel here is one pass.

They are serial (``voisin.embed`` runs one encoder pipeline per core) and few,
so that a first encode compiles quickly. ``error_model="numpy"`` lets LLVM
vectorise loops that divide (Python semantics would test every divisor).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from . import FASTMATH

_KW = dict(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")

# Rational approximation of erf on [-4, 4] (Eigen's float erf; clamped beyond,
# where erf is +-1 to float32 precision). Max abs error 4e-7 against math.erf
# (tested), well inside what the 1e-4 cosine bar can see; math.erf itself is a
# scalar libm call that would cost as much as the matmul it follows.
_A = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
      -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)
_B = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
      -1.42647390514189e-02)
A0, A1, A2, A3, A4, A5, A6 = (np.float32(a) for a in _A)
B0, B1, B2, B3, B4 = (np.float32(b) for b in _B)
_SQRT1_2 = np.float32(1.0 / math.sqrt(2.0))


@njit(**_KW)
def erf32(v):
    v = min(max(v, np.float32(-4.0)), np.float32(4.0))
    x2 = v * v
    p = ((((((A0 * x2 + A1) * x2 + A2) * x2 + A3) * x2 + A4) * x2 + A5) * x2 + A6) * v
    q = (((B0 * x2 + B1) * x2 + B2) * x2 + B3) * x2 + B4
    return p / q


@njit(**_KW)
def bias_gelu(x, bias):
    """x[i, j] = gelu(x[i, j] + bias[j]) in place, GELU the exact (erf) form BERT uses."""
    n, m = x.shape
    half = np.float32(0.5)
    for i in range(n):
        row = x[i]
        for j in range(m):
            v = row[j] + bias[j]
            row[j] = half * v * (np.float32(1.0) + erf32(v * _SQRT1_2))


@njit(**_KW)
def add_layer_norm(x, residual, bias, gamma, beta, eps):
    """x = LayerNorm(x + bias + residual) * gamma + beta, row by row, in place."""
    n, d = x.shape
    inv_d = np.float32(1.0 / d)
    for i in range(n):
        row = x[i]
        res = residual[i]
        s = np.float32(0.0)
        for j in range(d):
            v = row[j] + bias[j] + res[j]
            row[j] = v
            s += v
        mean = s * inv_d
        ss = np.float32(0.0)
        for j in range(d):  # two passes: the one-pass variance cancels badly in float32
            c = row[j] - mean
            ss += c * c
        inv = np.float32(1.0) / np.sqrt(ss * inv_d + eps)
        for j in range(d):
            row[j] = (row[j] - mean) * inv * gamma[j] + beta[j]


@njit(**_KW)
def masked_softmax(scores, lengths, scale):
    """Softmax over keys of (batch, heads, L, L) attention scores, in place.

    Sentence b attends to its first lengths[b] tokens only; the padding keys
    get probability 0 (BERT's additive mask, without the -inf arithmetic).
    Padding query rows are computed too and never read.
    """
    nb, nh, L, _ = scores.shape
    for b in range(nb):
        n = lengths[b]
        for h in range(nh):
            for i in range(L):
                row = scores[b, h, i]
                m = row[0]
                for j in range(1, n):
                    m = max(m, row[j])
                s = np.float32(0.0)
                for j in range(n):
                    e = np.exp((row[j] - m) * scale)
                    row[j] = e
                    s += e
                inv = np.float32(1.0) / s
                for j in range(n):
                    row[j] *= inv
                for j in range(n, L):
                    row[j] = np.float32(0.0)


@njit(**_KW)
def mean_pool(hidden, lengths, normalize, out):
    """out[b] = mean of hidden[b, :lengths[b]] (optionally scaled to unit L2 norm)."""
    nb, _, d = hidden.shape
    for b in range(nb):
        n = lengths[b]
        acc = out[b]
        for j in range(d):
            acc[j] = np.float32(0.0)
        for t in range(n):
            tok = hidden[b, t]
            for j in range(d):
                acc[j] += tok[j]
        inv = np.float32(1.0) / np.float32(max(n, 1))
        for j in range(d):
            acc[j] *= inv
        if normalize:
            ss = np.float32(0.0)
            for j in range(d):
                ss += acc[j] * acc[j]
            # sentence-transformers' Normalize: x / max(||x||, 1e-12)
            inv = np.float32(1.0) / max(np.sqrt(ss), np.float32(1e-12))
            for j in range(d):
                acc[j] *= inv
