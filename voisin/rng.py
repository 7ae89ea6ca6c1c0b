"""FAISS's random generators, value for value: ``rand``, ``randn``, ``randint``,
``float_rand``, ``float_randn``, ``int64_rand``, ``int64_rand_max``,
``byte_rand``, ``rand_perm`` and ``rand_smooth_vectors``.

FAISS draws from ``std::mt19937``. A generator seeded with ``seed`` gives two
31-bit integers a0, b0; the output is cut into 1024 blocks (one block below
1024 values) and block j is drawn from a generator seeded with
``a0 + j * b0`` truncated to 32 bits. numpy's legacy ``RandomState(seed)``
seeds the same Mersenne Twister the same way, and ``randint(0, 2**32,
dtype=uint32)`` returns its raw 32-bit words, so every value here is the one
faiss returns for the same seed (tests compare them bit for bit).
``rand_smooth_vectors`` goes through a matrix product, so it agrees with
FAISS's up to float32 rounding.

Example:
    >>> import voisin
    >>> x = voisin.rand(5, 123)
    >>> x.shape, x.dtype.name
    ((5,), 'float32')
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from ._validate import check_buffer, check_int

_U32 = 1 << 32
_MASK31 = np.uint64(0x7FFFFFFF)


def _shape(n) -> tuple[tuple[int, ...], int]:
    """FAISS's ``rand(n)`` passes ``n`` to ``np.empty``: an int or a shape."""
    shape = (n,) if not isinstance(n, (tuple, list)) else tuple(n)
    dims = tuple(check_int(s, "n", lo=0) for s in shape)
    return dims, int(np.prod(dims, dtype=np.int64))


def _words(seed: int, n: int) -> np.ndarray:
    """The first ``n`` raw outputs of ``std::mt19937((unsigned) seed)``, as uint64."""
    state = np.random.RandomState(seed % _U32)
    return state.randint(0, _U32, size=n, dtype=np.uint32).astype(np.uint64)


def _blocks(n: int, seed: int) -> Iterator[tuple[int, int, np.random.RandomState]]:
    """(start, end, generator) of each block FAISS splits ``n`` outputs into.

    One generator is re-seeded per block (100x cheaper than a new
    RandomState): each block must be drawn before the next is yielded.
    """
    nblock = 1 if n < 1024 else 1024
    a0, b0 = (_words(seed, 2) & _MASK31).tolist()
    state = np.random.RandomState()
    for j in range(nblock):
        state.seed((a0 + j * b0) % _U32)
        yield j * n // nblock, (j + 1) * n // nblock, state


def _raw(state: np.random.RandomState, n: int) -> np.ndarray:
    return state.randint(0, _U32, size=n, dtype=np.uint32).astype(np.uint64)


def _int64_words(state: np.random.RandomState, n: int) -> np.ndarray:
    """``RandomGenerator::rand_int64``: two 31-bit draws, low one first."""
    w = _raw(state, 2 * n) & _MASK31
    return (w[0::2] | (w[1::2] << np.uint64(31))).astype(np.int64)


def float_rand(x: np.ndarray, n: int, seed: int) -> None:
    """Fill ``x[:n]`` (float32) with uniform values in [0, 1] (FAISS's ``float_rand``)."""
    out = check_buffer(x, np.float32, check_int(n, "n", lo=0), "x")
    seed = check_int(seed, "seed")
    for i0, i1, state in _blocks(out.size, seed):
        # mt() / float(mt.max()): the word rounded to float32, then a float32 division
        out[i0:i1] = _raw(state, i1 - i0).astype(np.float32) / np.float32(_U32 - 1)


def float_randn(x: np.ndarray, n: int, seed: int) -> None:
    """Fill ``x[:n]`` (float32) with standard normal values (Marsaglia's polar
    method on FAISS's streams, as ``float_randn``)."""
    out = check_buffer(x, np.float32, check_int(n, "n", lo=0), "x")
    seed = check_int(seed, "seed")
    for i0, i1, state in _blocks(out.size, seed):
        need = (i1 - i0 + 1) // 2  # each accepted pair gives two values
        if need == 0:
            continue
        pairs: list[np.ndarray] = []
        got = 0
        while got < need:
            # the acceptance rate is pi/4: draw a few more pairs than needed
            m = int((need - got) * 1.35) + 16
            u = 2.0 * (_raw(state, 2 * m).astype(np.float64) / float(_U32 - 1)) - 1.0
            a, b = u[0::2], u[1::2]
            s = a * a + b * b
            keep = s < 1.0
            pairs.append(np.stack([a[keep], b[keep], s[keep]], axis=1))
            got += int(keep.sum())
        ab = np.concatenate(pairs)[:need]
        f = np.sqrt(-2.0 * np.log(ab[:, 2]) / ab[:, 2])
        vals = (ab[:, :2] * f[:, None]).reshape(-1)
        out[i0:i1] = vals[:i1 - i0]


def int64_rand(x: np.ndarray, n: int, seed: int) -> None:
    """Fill ``x[:n]`` (int64) with non-negative 62-bit integers (FAISS's ``int64_rand``)."""
    out = check_buffer(x, np.int64, check_int(n, "n", lo=0), "x")
    seed = check_int(seed, "seed")
    for i0, i1, state in _blocks(out.size, seed):
        out[i0:i1] = _int64_words(state, i1 - i0)


def int64_rand_max(x: np.ndarray, n: int, max: int, seed: int) -> None:
    """Fill ``x[:n]`` (int64) with integers in [0, max) (FAISS's ``int64_rand_max``)."""
    out = check_buffer(x, np.int64, check_int(n, "n", lo=0), "x")
    vmax = check_int(max, "max", lo=1)
    seed = check_int(seed, "seed")
    for i0, i1, state in _blocks(out.size, seed):
        out[i0:i1] = _int64_words(state, i1 - i0) % vmax


def byte_rand(x: np.ndarray, n: int, seed: int) -> None:
    """Fill ``x[:n]`` (uint8) with random bytes (FAISS's ``byte_rand``)."""
    out = check_buffer(x, np.uint8, check_int(n, "n", lo=0), "x")
    seed = check_int(seed, "seed")
    for i0, i1, state in _blocks(out.size, seed):
        out[i0:i1] = (_int64_words(state, i1 - i0) & 0xFF).astype(np.uint8)


def rand_perm(perm: np.ndarray, n: int, seed: int) -> None:
    """Fill ``perm[:n]`` (int32) with a random permutation of 0..n-1 (FAISS's
    ``rand_perm``, the shuffle k-means subsampling uses)."""
    from .kernels.shuffle import fisher_yates_mod
    out = check_buffer(perm, np.int32, check_int(n, "n", lo=0), "perm")
    out[:] = np.arange(out.size, dtype=np.int32)
    if out.size > 1:
        fisher_yates_mod(out, _words(check_int(seed, "seed"), out.size - 1))


def permutation(n: int, seed: int) -> np.ndarray:
    """``rand_perm`` into a new int64 array (what subsampling code indexes with)."""
    n = check_int(n, "n", lo=0)
    perm = np.empty(n, dtype=np.int32)
    rand_perm(perm, n, seed)
    return perm.astype(np.int64)


def rand(n, seed: int = 12345) -> np.ndarray:
    """Uniform float32 values in [0, 1]; ``n`` is a count or a shape (``faiss.rand``)."""
    shape, size = _shape(n)
    out = np.empty(size, dtype=np.float32)
    float_rand(out, size, seed)
    return out.reshape(shape)


def randn(n, seed: int = 12345) -> np.ndarray:
    """Standard normal float32 values; ``n`` is a count or a shape (``faiss.randn``)."""
    shape, size = _shape(n)
    out = np.empty(size, dtype=np.float32)
    float_randn(out, size, seed)
    return out.reshape(shape)


def randint(n, seed: int = 12345, vmax: int | None = None) -> np.ndarray:
    """Random int64 values, in [0, vmax) when ``vmax`` is given (``faiss.randint``)."""
    shape, size = _shape(n)
    out = np.empty(size, dtype=np.int64)
    if vmax is None:
        int64_rand(out, size, seed)
    else:
        int64_rand_max(out, size, vmax, seed)
    return out.reshape(shape)


lrand = randint


def rand_smooth_vectors(n: int, d: int, seed: int = 1234) -> np.ndarray:
    """(n, d) float32 vectors on a smooth 10-dimensional manifold (FAISS's
    ``rand_smooth_vectors``: normal draws, a random linear map, a sine)."""
    n = check_int(n, "n", lo=0)
    d = check_int(d, "d", lo=1)
    seed = check_int(seed, "seed")
    d1 = 10
    x1 = randn(n * d1, seed).reshape(n, d1)
    rot = rand(d1 * d, seed + 1).reshape(d1, d)
    scales = rand(d, seed + 2)
    return np.sin((x1 @ rot) * (scales * np.float32(4) + np.float32(0.1))).astype(np.float32)
