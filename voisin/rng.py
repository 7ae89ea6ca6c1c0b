"""FAISS's random generators, value for value: ``rand``, ``randn``, ``randint``,
``float_rand``, ``float_randn``, ``int64_rand``, ``int64_rand_max``,
``byte_rand``, ``rand_perm`` and ``rand_smooth_vectors``.

FAISS draws from ``std::mt19937``. A generator seeded with ``seed`` gives two
31-bit integers a0, b0; the output is cut into 1024 blocks (one block below
1024 values) and block j is drawn from a generator seeded with
``a0 + j * b0`` truncated to 32 bits. kernels/mt19937.py runs the same
twister and the same per-block recipes, so every value here is the one faiss
returns for the same seed (tests compare them bit for bit). Blocks are
independent: large outputs are drawn on all cores, as FAISS does.
``rand_smooth_vectors`` goes through a matrix product, so it agrees with
FAISS's up to float32 rounding.

Example:
    >>> import voisin
    >>> x = voisin.rand(5, 123)
    >>> x.shape, x.dtype.name
    ((5,), 'float32')
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from . import _blas
from ._validate import check_buffer, check_int

# Values per call below which the blocks are drawn on the calling thread.
_PARALLEL_MIN_VALUES = 1 << 16


def _shape(n) -> tuple[tuple[int, ...], int]:
    """FAISS's ``rand(n)`` passes ``n`` to ``np.empty``: an int or a shape."""
    shape = (n,) if not isinstance(n, (tuple, list)) else tuple(n)
    dims = tuple(check_int(s, "n", lo=0) for s in shape)
    return dims, int(np.prod(dims, dtype=np.int64))


def _state() -> np.ndarray:
    return np.empty(625, dtype=np.uint32)


def _words(seed: int, n: int) -> np.ndarray:
    """The first ``n`` raw outputs of ``std::mt19937((unsigned) seed)``, as uint64."""
    from .kernels.mt19937 import fill_words
    out = np.empty(n, dtype=np.uint32)
    fill_words(out, seed % (1 << 32), _state())
    return out.astype(np.uint64)


def _draw_blocks(out: np.ndarray, seed: int, kernel: Callable, *extra: int) -> None:
    """Run ``kernel(out, a0, b0, nblock, jlo, jhi, state, *extra)`` over FAISS's blocks."""
    n = out.shape[0]
    nblock = 1 if n < 1024 else 1024
    a0, b0 = (_words(seed, 2) & np.uint64(0x7FFFFFFF)).tolist()
    npipe = 1
    if n >= _PARALLEL_MIN_VALUES:
        import numba
        npipe = numba.get_num_threads()
    step = -(-nblock // npipe)
    states = [_state() for _ in range(npipe)]

    def work(p: int, jlo: int) -> None:
        kernel(out, a0, b0, nblock, jlo, min(nblock, jlo + step), states[p], *extra)

    _blas.run_pipelines(range(0, nblock, step), work, npipe)


def float_rand(x: np.ndarray, n: int, seed: int) -> None:
    """Fill ``x[:n]`` (float32) with uniform values in [0, 1] (FAISS's ``float_rand``)."""
    from .kernels.mt19937 import float_rand_blocks
    out = check_buffer(x, np.float32, check_int(n, "n", lo=0), "x")
    _draw_blocks(out, check_int(seed, "seed"), float_rand_blocks)


def float_randn(x: np.ndarray, n: int, seed: int) -> None:
    """Fill ``x[:n]`` (float32) with standard normal values (Marsaglia's polar
    method on FAISS's streams, as ``float_randn``)."""
    from .kernels.mt19937 import float_randn_blocks
    out = check_buffer(x, np.float32, check_int(n, "n", lo=0), "x")
    _draw_blocks(out, check_int(seed, "seed"), float_randn_blocks)


def int64_rand(x: np.ndarray, n: int, seed: int) -> None:
    """Fill ``x[:n]`` (int64) with non-negative 62-bit integers (FAISS's ``int64_rand``)."""
    from .kernels.mt19937 import int64_rand_blocks
    out = check_buffer(x, np.int64, check_int(n, "n", lo=0), "x")
    _draw_blocks(out, check_int(seed, "seed"), int64_rand_blocks, 0)


def int64_rand_max(x: np.ndarray, n: int, max: int, seed: int) -> None:
    """Fill ``x[:n]`` (int64) with integers in [0, max) (FAISS's ``int64_rand_max``)."""
    from .kernels.mt19937 import int64_rand_blocks
    out = check_buffer(x, np.int64, check_int(n, "n", lo=0), "x")
    vmax = check_int(max, "max", lo=1)
    _draw_blocks(out, check_int(seed, "seed"), int64_rand_blocks, vmax)


def byte_rand(x: np.ndarray, n: int, seed: int) -> None:
    """Fill ``x[:n]`` (uint8) with random bytes (FAISS's ``byte_rand``: the low
    byte of each ``rand_int64``)."""
    from .kernels.mt19937 import int64_rand_blocks
    out = check_buffer(x, np.uint8, check_int(n, "n", lo=0), "x")
    wide = np.empty(out.size, dtype=np.int64)
    _draw_blocks(wide, check_int(seed, "seed"), int64_rand_blocks, 0)
    out[:] = (wide & 0xFF).astype(np.uint8)


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
