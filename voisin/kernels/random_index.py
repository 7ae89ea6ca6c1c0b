"""IndexRandom's draws: FAISS's per-query generator, value for value.

FAISS seeds one ``std::mt19937`` per query with ``seed + ivec_checksum(x)``
(the query's float bits read as int32 words), draws k distinct ids with
``rand_int64() % ntotal`` (redrawing repeats) and k increasing distances,
partial sums of ``rand_float()``.
"""

import numpy as np
from numba import njit

from .mt19937 import seed as seed_state
from .mt19937 import word

_LOW31 = np.uint32(0x7FFFFFFF)
_SCALE = np.float32(4294967295.0)  # float(mt.max()), rounded to float32 as in C++


@njit(cache=True, nogil=True)
def ivec_checksum(words):
    """FAISS's ``ivec_checksum`` of a row of uint32 words (the product wraps at 32 bits)."""
    cs = np.uint64(112909)
    for i in range(words.shape[0] - 1, -1, -1):
        term = (np.uint64(words[i]) * np.uint64(1686049)) & np.uint64(0xFFFFFFFF)
        cs = cs * np.uint64(65713) + term
    return cs


@njit(cache=True, nogil=True)
def random_search(xw, seed, ntotal, similarity, state, D, I):
    """Fill ``D`` / ``I`` (n, k) for the queries ``xw`` (n, d) uint32."""
    k = I.shape[1]
    for i in range(xw.shape[0]):
        s = (np.uint64(seed) + ivec_checksum(xw[i])) & np.uint64(0xFFFFFFFF)
        seed_state(state, s)
        taken = set()
        taken.add(np.int64(-1))
        for j in range(k):
            while True:
                lo = np.int64(word(state) & _LOW31)
                hi = np.int64(word(state) & _LOW31)
                ii = (lo | (hi << 31)) % ntotal
                if ii not in taken:
                    break
            taken.add(ii)
            I[i, j] = ii
        dprev = np.float32(0)
        for j in range(k):
            step = np.float32(word(state)) / _SCALE
            if similarity:
                step = -step
            dprev = np.float32(dprev + step)
            D[i, j] = dprev


@njit(cache=True, nogil=True)
def random_vector(seed, out, state):
    """``out[:] = rand_float()`` draws of ``mt19937(seed)`` (IndexRandom::reconstruct)."""
    seed_state(state, np.uint64(seed) & np.uint64(0xFFFFFFFF))
    for j in range(out.shape[0]):
        out[j] = np.float32(word(state)) / _SCALE
