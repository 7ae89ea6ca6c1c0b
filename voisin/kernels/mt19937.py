"""FAISS's random streams: the Mersenne Twister (``std::mt19937``) and the
per-block generators of ``float_rand`` / ``float_randn`` / ``int64_rand``.

FAISS cuts an output of n >= 1024 values into 1024 blocks and seeds one
generator per block; seeding costs 624 steps, so at a few hundred values per
block the generator set-up is most of the work, which a numpy generator
object per block turned into ~0.3 ms per block. Here a block's seeding and
drawing are a few microseconds. The twister is the reference algorithm
(Matsumoto & Nishimura's init_genrand and genrand_int32).
"""

import numpy as np
from numba import njit

_N = 624
_M = 397
_MATRIX_A = np.uint32(0x9908B0DF)
_UPPER = np.uint32(0x80000000)
_LOWER = np.uint32(0x7FFFFFFF)


@njit(cache=True, nogil=True)
def seed(state, s):
    """Seed ``state`` (uint32[625]: 624 words and the position) like ``mt19937(s)``."""
    state[0] = np.uint32(s & 0xFFFFFFFF)
    for i in range(1, _N):
        prev = np.uint64(state[i - 1])
        state[i] = np.uint32((np.uint64(1812433253) * (prev ^ (prev >> np.uint64(30))) + np.uint64(i))
                             & np.uint64(0xFFFFFFFF))
    state[_N] = _N


@njit(cache=True, nogil=True)
def _twist(state):
    for i in range(_N):
        y = (state[i] & _UPPER) | (state[(i + 1) % _N] & _LOWER)
        v = state[(i + _M) % _N] ^ (y >> np.uint32(1))
        if y & np.uint32(1):
            v ^= _MATRIX_A
        state[i] = v
    state[_N] = 0


@njit(cache=True, nogil=True)
def word(state):
    """The next 32-bit output (``mt()``)."""
    if state[_N] >= _N:
        _twist(state)
    y = state[state[_N]]
    state[_N] += 1
    y ^= y >> np.uint32(11)
    y ^= (y << np.uint32(7)) & np.uint32(0x9D2C5680)
    y ^= (y << np.uint32(15)) & np.uint32(0xEFC60000)
    y ^= y >> np.uint32(18)
    return y


@njit(cache=True, nogil=True, inline="always")
def _block_seed(a0, b0, j):
    return (a0 + j * b0) & 0xFFFFFFFF


@njit(cache=True, nogil=True)
def float_rand_blocks(out, a0, b0, nblock, jlo, jhi, state):
    """Blocks jlo..jhi-1 of ``float_rand``: mt() / float(mt.max()) in float32."""
    n = out.shape[0]
    scale = np.float32(4294967295.0)
    for j in range(jlo, jhi):
        seed(state, _block_seed(a0, b0, j))
        for i in range(j * n // nblock, (j + 1) * n // nblock):
            out[i] = np.float32(word(state)) / scale


@njit(cache=True, nogil=True)
def int64_rand_blocks(out, a0, b0, nblock, jlo, jhi, state, vmax):
    """Blocks of ``int64_rand`` (``vmax`` = 0) or ``int64_rand_max``: two 31-bit
    draws per value, low half first."""
    n = out.shape[0]
    for j in range(jlo, jhi):
        seed(state, _block_seed(a0, b0, j))
        for i in range(j * n // nblock, (j + 1) * n // nblock):
            lo = np.int64(word(state) & _LOWER)
            hi = np.int64(word(state) & _LOWER)
            v = lo | (hi << 31)
            out[i] = v % vmax if vmax > 0 else v


@njit(cache=True, nogil=True)
def float_randn_blocks(out, a0, b0, nblock, jlo, jhi, state):
    """Blocks of ``float_randn``: Marsaglia's polar method on mt() / mt.max() in float64."""
    n = out.shape[0]
    for j in range(jlo, jhi):
        seed(state, _block_seed(a0, b0, j))
        a = b = s = 0.0
        first = True
        for i in range(j * n // nblock, (j + 1) * n // nblock):
            if first:
                while True:
                    a = 2.0 * (np.float64(word(state)) / 4294967295.0) - 1.0
                    b = 2.0 * (np.float64(word(state)) / 4294967295.0) - 1.0
                    s = a * a + b * b
                    if s < 1.0:
                        break
                out[i] = a * np.sqrt(-2.0 * np.log(s) / s)
            else:
                out[i] = b * np.sqrt(-2.0 * np.log(s) / s)
            first = not first


@njit(cache=True, nogil=True)
def fill_words(out, s, state):
    """The first ``len(out)`` outputs of ``mt19937(s)``."""
    seed(state, s)
    for i in range(out.shape[0]):
        out[i] = word(state)
