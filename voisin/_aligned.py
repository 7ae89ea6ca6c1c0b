"""Cache-line aligned arrays for the structures a kernel reads one row at a time.

numpy leaves large allocations where the C allocator puts them: 16 bytes past a
page boundary with glibc. A 64-byte row (HNSW's SQ8 traversal codes on 50-d
data, a 2M = 32 neighbour list) then straddles two cache lines, so every random
row read costs two misses and a one-line prefetch covers only part of it.
Aligning the SQ8 codes alone made single-query HNSW search on glove-50
1.16-1.44x faster (docs/hnsw-levers.md, "Alignment").
"""

from __future__ import annotations

from typing import Any

import numpy as np

CACHE_LINE = 64


def empty(shape: Any, dtype: Any, align: int = CACHE_LINE) -> np.ndarray:
    """``np.empty(shape, dtype)`` whose first byte sits on an ``align``-byte boundary."""
    dt = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    raw = np.empty(nbytes + align, dtype=np.uint8)
    start = (-raw.ctypes.data) % align
    return raw[start:start + nbytes].view(dt).reshape(shape)


def full(shape: Any, value: Any, dtype: Any, align: int = CACHE_LINE) -> np.ndarray:
    out = empty(shape, dtype, align)
    out.fill(value)
    return out


def zeros(shape: Any, dtype: Any, align: int = CACHE_LINE) -> np.ndarray:
    return full(shape, 0, dtype, align)


def is_aligned(a: np.ndarray, align: int = CACHE_LINE) -> bool:
    return a.size == 0 or a.ctypes.data % align == 0


def realigned(a: np.ndarray, align: int = CACHE_LINE) -> np.ndarray:
    """``a`` itself when it is aligned or lives in borrowed memory (a file
    mapping, a caller's buffer: copying would unshare it); otherwise an aligned
    C-contiguous copy."""
    if is_aligned(a, align):
        return a
    root = a
    while isinstance(root.base, np.ndarray):
        root = root.base
    if root.base is not None or not root.flags.owndata:
        return a
    return copy(a, align)


def copy(a: np.ndarray, align: int = CACHE_LINE) -> np.ndarray:
    """An aligned C-contiguous copy of ``a``."""
    out = empty(a.shape, a.dtype, align)
    out[...] = a
    return out
