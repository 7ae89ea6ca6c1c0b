"""Small public helpers with FAISS names: normalisation and thread control."""

from __future__ import annotations

import numpy as np
import numba

from ._validate import check_all_finite, check_int


def normalize_L2(x: np.ndarray) -> np.ndarray:
    """Scale each row of ``x`` to unit L2 norm, in place (rows of zeros stay zero).

    As in FAISS, ``x`` must be a writeable C-contiguous float32 array; it is
    also returned for convenience. Inner product on normalised vectors is
    cosine similarity.

    >>> import numpy as np, voisin
    >>> x = np.array([[3.0, 4.0]], dtype="float32")
    >>> voisin.normalize_L2(x).tolist()
    [[0.6000000238418579, 0.800000011920929]]
    """
    if not isinstance(x, np.ndarray) or x.dtype != np.float32 or not x.flags.c_contiguous \
            or not x.flags.writeable:
        got = f"{x.dtype} array" if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(f"x: normalize_L2 works in place and needs a writeable C-contiguous float32 "
                        f"array, got {got}; use x = np.ascontiguousarray(x, dtype='float32') first")
    rows = x.reshape(1, -1) if x.ndim == 1 else x
    if rows.ndim != 2:
        raise ValueError(f"x: expected a 1-D or 2-D array, got shape {x.shape}")
    if rows.size:
        check_all_finite(rows, "x")
    norms = np.sqrt(np.einsum("ij,ij->i", rows, rows, dtype=np.float64))
    norms[norms == 0] = 1.0
    rows /= norms[:, None].astype(np.float32)
    return x


def omp_set_num_threads(n: int) -> None:
    """Threads used by voisin's parallel kernels (numba), as FAISS's function of that name.

    numba's setting applies to the calling thread; BLAS keeps its own pool
    (set OPENBLAS_NUM_THREADS / use threadpoolctl to change it).
    """
    n = check_int(n, "n", lo=1)
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


def omp_get_max_threads() -> int:
    return numba.get_num_threads()
