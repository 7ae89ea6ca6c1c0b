"""FAISS's ``rand_perm`` shuffle: a sequential Fisher-Yates walk, so a kernel.

Each swap depends on the previous ones, which numpy cannot vectorise; a
Python loop costs ~0.5 s per million elements, this loop ~5 ms.
"""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def fisher_yates_mod(perm, words):
    """Shuffle ``perm`` in place: step i swaps with i + words[i] % (n - i)
    (FAISS's ``RandomGenerator::rand_int(max)`` is ``mt() % max``)."""
    n = perm.shape[0]
    for i in range(n - 1):
        j = i + np.int64(words[i] % np.uint64(n - i))
        t = perm[i]
        perm[i] = perm[j]
        perm[j] = t
