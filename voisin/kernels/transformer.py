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


@njit(inline="always", **_KW)
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


# exp for the softmax: Cephes' expf (x = k ln2 + r, |r| <= ln2/2, degree-5
# polynomial; relative error 1e-7), with 2^k added straight into the exponent
# bits, so that the loop vectorises (numba's exp is a scalar libm call, and it
# was 60% of the attention time on 256-token texts)
_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)
_LN2_LO = np.float32(-2.12194440e-4)
P0, P1, P2, P3, P4, P5 = (np.float32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                                                   4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))
#: floor of the exponent, so that 2^k stays a normal float
_EXP_FLOOR = np.float32(-80.0)


@njit(inline="always", **_KW)
def _exp_shifted(row, n, m, scale, kbits):
    """row[:n] = exp((row[:n] - m) * scale), returning their sum (all arguments <= 0)."""
    for j in range(n):
        t = max((row[j] - m) * scale, _EXP_FLOOR)
        k = np.floor(t * _LOG2E + np.float32(0.5))
        r = t - k * _LN2_HI - k * _LN2_LO
        p = ((((P0 * r + P1) * r + P2) * r + P3) * r + P4) * r + P5
        row[j] = p * r * r + r + np.float32(1.0)
        kbits[j] = np.int32(k) << np.int32(23)
    bits = row.view(np.int32)
    s = np.float32(0.0)
    for j in range(n):
        # k <= -100 (below e^-69) becomes exactly 0 (int bits 0), so that no
        # denormal reaches the next matmul
        b = bits[j] + kbits[j]
        bits[j] = b if kbits[j] > np.int32(-100 << 23) else np.int32(0)
        s += row[j]
    return s


@njit(**_KW)
def masked_softmax(scores, lengths, scale):
    """Softmax over keys of (batch, heads, L, L) attention scores times ``scale``, in place.

    Sentence b attends to its first lengths[b] tokens only; the padding keys
    get probability 0 (BERT's additive mask, without the -inf arithmetic).
    Padding query rows are computed too and never read.
    """
    nb, nh, L, _ = scores.shape
    kbits = np.empty(L, dtype=np.int32)
    for b in range(nb):
        n = lengths[b]
        for h in range(nh):
            for i in range(L):
                row = scores[b, h, i]
                m = row[0]
                for j in range(1, n):
                    m = max(m, row[j])
                inv = np.float32(1.0) / _exp_shifted(row, n, m, scale, kbits)
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
