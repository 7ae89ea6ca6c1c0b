"""Exact k-NN between binary codes by Hamming distance (FAISS's ``knn_hamming``).

Example:
    >>> import numpy as np, voisin
    >>> xb = np.array([[0b1111, 0], [0b0001, 0], [0, 0]], dtype=np.uint8)
    >>> D, I = voisin.knn_hamming(np.zeros((1, 2), np.uint8), xb, 2)
    >>> D.tolist(), I.tolist()
    ([[0, 1]], [[2, 1]])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _blas
from ._validate import as_codes, check_k

# Database rows per block of the scan: ~256 KiB of codes, resident in L2
# while every query of a pipeline's range is compared with them.
_BLOCK_BYTES = 256 << 10
# Queries per pipeline task: enough to amortise reading a block, few enough
# that the two cores share a batch evenly.
_QUERIES_PER_TASK = 64


def as_words(codes: np.ndarray) -> np.ndarray:
    """A zero-copy view of C-contiguous uint8 codes as the widest machine
    words their size allows (what the popcount kernels read)."""
    cs = codes.shape[1]
    for dt in (np.uint64, np.uint32, np.uint16):
        if cs % np.dtype(dt).itemsize == 0:
            return codes.view(dt)
    return codes


def knn_hamming(xq: Any, xb: Any, k: int, variant: str = "hc") -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest codes of ``xb`` (nb, code_size) for each code of ``xq``
    (nq, code_size), both uint8 (``d / 8`` bytes per code).

    Returns ``(D, I)``: int32 Hamming distances and int64 ids, (nq, k), in
    (distance, id) order, as FAISS; missing results are ``(INT_MAX, -1)``.
    ``variant`` is FAISS's choice of algorithm ("hc": heaps, "mc": counting),
    both of which give exactly these results; voisin runs one kernel for both.
    """
    if variant not in ("hc", "mc"):
        raise ValueError(f"variant: expected 'hc' or 'mc', got {variant!r}")
    xq = as_codes(xq, "xq")
    xb = as_codes(xb, "xb", xq.shape[1])
    k = check_k(k)
    return knn_codes(xq, xb, k)


def _pipelines(nq: int) -> int:
    import numba
    return min(numba.get_num_threads(), -(-nq // _QUERIES_PER_TASK))


def knn_codes(xq: np.ndarray, xb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`knn_hamming` on validated C-contiguous uint8 codes of one width."""
    from .kernels.hamming import knn_scan
    nq = xq.shape[0]
    D = np.empty((nq, k), dtype=np.int32)
    I = np.empty((nq, k), dtype=np.int64)
    if nq == 0:
        return D, I
    wq, wb = as_words(xq), as_words(xb)
    block_rows = max(1, _BLOCK_BYTES // max(1, xb.shape[1]))
    if nq <= _QUERIES_PER_TASK:
        # one task: no thread pool to ask about (its query costs microseconds)
        knn_scan(wq, wb, 0, nq, block_rows, D, I)
        return D, I

    def work(p: int, q0: int) -> None:
        knn_scan(wq, wb, q0, min(nq, q0 + _QUERIES_PER_TASK), block_rows, D, I)

    _blas.run_pipelines(range(0, nq, _QUERIES_PER_TASK), work, _pipelines(nq))
    return D, I


def range_codes(xq: np.ndarray, xb: np.ndarray, radius: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of ``xb`` at Hamming distance < ``radius`` of each query: ``(lims, D, I)``
    with int32 distances, each query's results in row order (FAISS's order)."""
    from .kernels.hamming import range_count, range_fill
    nq = xq.shape[0]
    wq, wb = as_words(xq), as_words(xb)
    counts = np.zeros(nq, dtype=np.int64)
    radius = int(min(max(radius, -1), 1 << 30))
    blocks = range(0, nq, _QUERIES_PER_TASK)
    npipe = _pipelines(nq)
    _blas.run_pipelines(blocks, lambda p, q0: range_count(
        wq, wb, q0, min(nq, q0 + _QUERIES_PER_TASK), radius, counts), npipe)
    lims = np.zeros(nq + 1, dtype=np.int64)
    np.cumsum(counts, out=lims[1:])
    D = np.empty(int(lims[-1]), dtype=np.int32)
    I = np.empty(int(lims[-1]), dtype=np.int64)
    _blas.run_pipelines(blocks, lambda p, q0: range_fill(
        wq, wb, q0, min(nq, q0 + _QUERIES_PER_TASK), radius, lims, D, I), npipe)
    return lims, D, I
