"""One switch for every thread pool a benchmark touches.

Single-query mode runs every library on one thread, batch mode on all cores;
numba, FAISS's OpenMP and the BLAS behind numpy each keep their own pool, so a
limit must reach all of them (hnswlib and usearch take a thread count per
call, which their adapters pass).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from ..machine import available_cores, blas_info  # noqa: F401  (re-exported: scripts import them here)


def _set_numba(n: int) -> None:
    import numba
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))


def _set_faiss(n: int) -> None:
    faiss = sys.modules.get("faiss")
    if faiss is not None:
        faiss.omp_set_num_threads(n)


@contextlib.contextmanager
def thread_limit(n: int) -> Iterator[None]:
    """Run the block with numba, FAISS (OpenMP) and BLAS limited to ``n`` threads.

    threadpoolctl is optional: without it BLAS keeps its own setting (the
    default for single-query searches, which do not call BLAS, is harmless).
    """
    import numba
    old_numba = numba.get_num_threads()
    faiss = sys.modules.get("faiss")
    old_faiss = faiss.omp_get_max_threads() if faiss is not None else None
    limiter = None
    try:
        from threadpoolctl import threadpool_limits
        limiter = threadpool_limits(limits=n)
    except ImportError:
        pass
    _set_numba(n)
    _set_faiss(n)
    try:
        yield
    finally:
        if limiter is not None:
            limiter.restore_original_limits()
        _set_numba(old_numba)
        if old_faiss is not None:
            sys.modules["faiss"].omp_set_num_threads(old_faiss)
