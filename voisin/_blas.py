"""Switch numpy's OpenBLAS to one thread for the duration of a batch search.

The batch search runs one pipeline per core (BLAS product, then top-k, both on
that core) instead of alternating between BLAS's thread pool and numba's:
on two cores the hand-offs and the spinning idle workers of two pools cost
more than the products themselves (glove-50, 10,000 queries: 600 vs 2,200
QPS). That needs BLAS single-threaded inside each pipeline. numpy exposes no
switch, so we find OpenBLAS's own ``*_set_num_threads`` in the loaded library
(as threadpoolctl does); with another BLAS, ``limit_to_one()`` reports False
and the caller keeps the shared-pool path.
"""

from __future__ import annotations

import ctypes
import os
import threading
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

_lock = threading.Lock()
_users = 0
_saved = 1
_api: tuple | None = None
_probed = False

_SUFFIXES = ("", "64_", "_64")
_PREFIXES = ("openblas", "scipy_openblas")


def _probe() -> tuple | None:
    import numpy  # noqa: F401  (loads the BLAS numpy links against)
    try:
        with open("/proc/self/maps") as fh:
            paths = {line.split()[-1] for line in fh if "openblas" in line.lower() and "/" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in _PREFIXES:
            for suffix in _SUFFIXES:
                setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                if setter is not None and getter is not None:
                    getter.restype = ctypes.c_int
                    setter.argtypes = [ctypes.c_int]
                    if "numpy" in path or "scipy_openblas" in path:
                        return setter, getter
    return None


def available() -> bool:
    global _api, _probed
    if not _probed:
        _api = _probe()
        _probed = True
    return _api is not None


@contextmanager
def single_threaded() -> Iterator[None]:
    """numpy's OpenBLAS on one thread inside the block (nested and concurrent
    uses share one saved setting, restored by the last one out)."""
    global _users, _saved
    if not available():
        yield
        return
    setter, getter = _api  # type: ignore[misc]
    with _lock:
        if _users == 0:
            _saved = getter()
            setter(1)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                setter(_saved)


def run_pipelines(blocks: Iterable[int], work: Callable[[int, int], None], npipe: int) -> None:
    """Call ``work(p, block)`` for every block, from ``npipe`` pipelines (threads).

    Pipeline ``p`` takes the next block, runs its BLAS product and the numba
    kernel that consumes it on its own core, and repeats: BLAS and numba both
    run single-threaded inside a pipeline (numba's setting is thread-local),
    so the cores are never handed between two spinning thread pools. The first
    exception in any pipeline stops the others and is re-raised here. With one
    pipeline the blocks run in the calling thread, settings untouched.
    """
    blocks = iter(blocks)
    if npipe <= 1:
        for b in blocks:
            work(0, b)
        return
    import numba  # the callers have loaded it; kept out of this module's import

    take = threading.Lock()
    errors: list[BaseException] = []

    def pipeline(p: int) -> None:
        numba.set_num_threads(1)
        try:
            while not errors:
                with take:
                    b = next(blocks, None)
                if b is None:
                    return
                work(p, b)
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    caller_threads = numba.get_num_threads()
    with single_threaded():
        helpers = [_helper_pool(npipe - 1).submit(pipeline, p) for p in range(1, npipe)]
        pipeline(0)
        numba.set_num_threads(caller_threads)
        for f in helpers:
            # a helper that has not started finds no block left: drop it rather
            # than wait for a pool thread (which may be this very thread, when a
            # pipeline's work runs pipelines itself)
            if not f.cancel():
                f.result()
    if errors:
        raise errors[0]


# Pipelines run on long-lived pool threads: HNSW insertion runs two pipeline
# rounds per batch, hundreds of batches per build, and starting fresh threads
# each time cost ~12% of a 100k-vector build.
_pool = None
_pool_size = 0
_pool_lock = threading.Lock()


def _helper_pool(n: int):
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < n:
            from concurrent.futures import ThreadPoolExecutor
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="voisin-pipeline")
            _pool_size = n
        return _pool


def _forget_pool_in_child() -> None:
    # a forked child has none of the parent's threads: start a pool of its own
    global _pool, _pool_size, _pool_lock
    _pool, _pool_size, _pool_lock = None, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)
