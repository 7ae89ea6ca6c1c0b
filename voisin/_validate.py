"""The one place where user input becomes the arrays the kernels expect.

Every public entry point funnels its arguments through these helpers, so each
error message is written once and names the argument and what was expected.
Conversion happens at most once: float32 C-contiguous input passes through
without a copy.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np


def _describe(x: Any) -> str:
    if isinstance(x, np.ndarray):
        return f"array of shape {x.shape} and dtype {x.dtype}"
    return f"{type(x).__name__}"


def as_matrix(x: Any, d: int | None = None, name: str = "x", *,
              allow_1d: bool = True, check_finite: bool = True) -> np.ndarray:
    """Return ``x`` as a float32 C-contiguous (n, d) array.

    Accepts lists, float64, integer arrays and non-contiguous views. A 1-D
    array of length ``d`` is taken as a single row. Raises TypeError for
    non-numeric input and ValueError for a wrong shape or NaN/inf values.
    """
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError) as exc:  # ragged lists
            raise ValueError(f"{name}: expected a 2-D array of floats, could not convert: {exc}") from None
    if arr.dtype == np.float32:
        pass
    elif arr.dtype.kind in "fiub":
        # values beyond float32's range become inf and are reported by the
        # finiteness check below, as a ValueError rather than a RuntimeWarning
        with np.errstate(over="ignore"):
            arr = arr.astype(np.float32)
    else:
        raise TypeError(f"{name}: expected a numeric array of vectors, got {_describe(x)}")
    if arr.ndim == 1 and allow_1d and (d is None or arr.shape[0] == d) and arr.shape[0] > 0:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        want = f"(n, {d})" if d is not None else "(n, d)"
        raise ValueError(f"{name}: expected a 2-D array of shape {want}, got {_describe(arr)}")
    if d is not None and arr.shape[1] != d:
        raise ValueError(f"{name}: expected vectors of dimension d={d}, got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError(f"{name}: vectors must have dimension >= 1, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr)
    if check_finite and arr.size:
        check_all_finite(arr, name)
    return arr


_F32 = np.dtype(np.float32)


def is_clean_batch(x: Any, d: int, k: Any) -> bool:
    """True when ``x`` is already what :func:`as_matrix` returns for a search
    (float32, C-contiguous, shape (n, d), n >= 1) and ``k`` a positive int.

    The single-query fast paths of the indexes ask this (about 100 ns) instead
    of converting; finiteness is left to the kernel, which checks it in the
    same pass that reads the query and refuses the call when a value is NaN or
    inf, so the caller then takes the validated path and its error message.
    """
    return (type(x) is np.ndarray and x.dtype == _F32 and x.ndim == 2 and x.shape[1] == d
            and x.shape[0] > 0 and x.flags.c_contiguous and type(k) is int and k > 0)


def check_bool(v: Any, name: str) -> bool:
    """A flag: a bool, or the integers 0 and 1."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, numbers.Integral) and int(v) in (0, 1):
        return bool(v)
    raise TypeError(f"{name}: expected a bool (or 0/1), got {v!r}")


def check_all_finite(arr: np.ndarray, name: str) -> None:
    # min/max propagate NaN and expose inf without allocating a mask, so the
    # common (clean) case costs two vectorised passes.
    lo = arr.min()
    hi = arr.max()
    if np.isfinite(lo) and np.isfinite(hi):
        return
    bad = np.argwhere(~np.isfinite(arr))[0]
    where = tuple(int(i) for i in bad)
    raise ValueError(f"{name}: contains NaN or inf (first at index {where}, value {arr[where]})")


def check_dimension(d: Any, name: str = "d") -> int:
    if isinstance(d, (bool, np.bool_)) or not isinstance(d, numbers.Integral):
        raise TypeError(f"{name}: expected a positive integer dimension, got {d!r}")
    if d <= 0:
        raise ValueError(f"{name}: expected a positive integer dimension, got {d}")
    return int(d)


def check_k(k: Any, name: str = "k") -> int:
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Integral):
        raise TypeError(f"{name}: expected a positive integer, got {k!r}")
    if k <= 0:
        raise ValueError(f"{name}: expected a positive integer, got {k}")
    return int(k)


_INT64_MIN = int(np.iinfo(np.int64).min)
_INT64_MAX = int(np.iinfo(np.int64).max)


def check_int(v: Any, name: str, lo: int | None = None, hi: int | None = None) -> int:
    """An integer argument with optional inclusive bounds."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {v!r}")
    v = int(v)
    if not _INT64_MIN <= v <= _INT64_MAX:  # ids, counts and offsets are int64 everywhere
        raise ValueError(f"{name}: expected an integer that fits in int64, got {v}")
    if lo is not None and v < lo:
        raise ValueError(f"{name}: expected an integer >= {lo}, got {v}")
    if hi is not None and v > hi:
        raise ValueError(f"{name}: expected an integer <= {hi}, got {v}")
    return v


def check_float(v: Any, name: str) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {v!r}")
    v = float(v)
    if not np.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {v}")
    return v


def as_ids(ids: Any, n: int | None = None, name: str = "ids", *, allow_minus_one: bool = False) -> np.ndarray:
    """Return ``ids`` as a C-contiguous int64 vector of length ``n``.

    Integer dtypes that fit in int64 are accepted; floats, bools and strings
    are refused rather than truncated. -1 is reserved for "no result", so it
    cannot be stored; ``allow_minus_one`` lets it through where ids are only
    looked up (selectors, remove_ids), where it simply matches nothing, as in
    FAISS, so ``remove_ids(I.ravel())`` on padded results works.
    """
    try:
        arr = np.asarray(ids)
    except (ValueError, TypeError) as exc:  # ragged lists
        raise ValueError(f"{name}: expected a 1-D array of integer ids, could not convert: {exc}") from None
    if arr.dtype.kind not in "iu" or arr.dtype == np.bool_:
        raise TypeError(f"{name}: expected integer ids (int64), got {_describe(arr)}")
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of ids, got shape {arr.shape}")
    if arr.dtype == np.uint64 and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name}: ids must fit in int64, got {arr.max()}")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name}: expected {n} ids (one per vector), got {arr.shape[0]}")
    if not allow_minus_one and arr.size and (arr == -1).any():
        raise ValueError(f"{name}: -1 is reserved to mark missing results and cannot be used as an id")
    return arr


def check_unique(ids: np.ndarray, name: str = "ids") -> None:
    if ids.size > 1:
        s = np.sort(ids)
        dup = s[1:][s[1:] == s[:-1]]
        if dup.size:
            raise ValueError(f"{name}: duplicate id {int(dup[0])} in one call")


def check_out(arr: Any, shape: tuple[int, int], dtype: type, name: str) -> np.ndarray:
    """Validate a caller-provided output array (FAISS's ``D=`` / ``I=`` arguments)."""
    if not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.shape != shape \
            or not arr.flags.c_contiguous or not arr.flags.writeable:
        raise ValueError(f"{name}: expected a writeable C-contiguous {np.dtype(dtype).name} "
                         f"array of shape {shape}, got {_describe(arr)}")
    return arr
