"""ID selectors and search parameters (FAISS semantics).

A selector answers "may this id be returned?". Indexes never call it per id
inside a kernel: they ask for a boolean mask over the ids they hold
(:meth:`IDSelector.contains`), once per search, and pass that array down.

Example:
    >>> import numpy as np, voisin
    >>> index = voisin.IndexFlatL2(4)
    >>> index.add(np.random.rand(100, 4).astype("float32"))
    >>> params = voisin.SearchParameters(sel=voisin.IDSelectorRange(10, 20))
    >>> D, I = index.search(np.random.rand(2, 4), 3, params=params)
    >>> bool(((I >= 10) & (I < 20)).all())
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validate import as_ids, check_int


class IDSelector:
    """Base class: subclasses implement :meth:`contains` on an int64 array."""

    def contains(self, ids: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def is_member(self, id: int) -> bool:
        return bool(self.contains(np.array([id], dtype=np.int64))[0])

    def mask_sequential(self, n: int) -> np.ndarray:
        """Mask over the ids 0..n-1 (what a plain sequential index holds)."""
        return self.contains(np.arange(n, dtype=np.int64))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class IDSelectorAll(IDSelector):
    def contains(self, ids: np.ndarray) -> np.ndarray:
        return np.ones(len(ids), dtype=bool)


class IDSelectorRange(IDSelector):
    """Ids in the half-open interval ``[imin, imax)``."""

    def __init__(self, imin: int, imax: int, assume_sorted: bool = False):
        self.imin = check_int(imin, "imin")
        self.imax = check_int(imax, "imax")
        self.assume_sorted = bool(assume_sorted)

    def contains(self, ids: np.ndarray) -> np.ndarray:
        return (ids >= self.imin) & (ids < self.imax)

    def mask_sequential(self, n: int) -> np.ndarray:
        mask = np.zeros(n, dtype=bool)
        mask[max(self.imin, 0):max(min(self.imax, n), 0)] = True
        return mask

    def __repr__(self) -> str:
        return f"IDSelectorRange({self.imin}, {self.imax})"


class IDSelectorBatch(IDSelector):
    """Ids in a given set. Accepts ``IDSelectorBatch(ids)`` or FAISS's ``(n, ids)``."""

    def __init__(self, *args: Any):
        ids = _ids_from_args(args, type(self).__name__)
        self.ids = np.unique(ids)

    def contains(self, ids: np.ndarray) -> np.ndarray:
        if self.ids.size == 0:
            return np.zeros(len(ids), dtype=bool)
        pos = np.searchsorted(self.ids, ids)
        pos[pos == self.ids.size] = 0
        return self.ids[pos] == ids

    def mask_sequential(self, n: int) -> np.ndarray:
        mask = np.zeros(n, dtype=bool)
        inside = self.ids[(self.ids >= 0) & (self.ids < n)]
        mask[inside] = True
        return mask

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.ids.size} ids)"


class IDSelectorArray(IDSelectorBatch):
    """Same membership as :class:`IDSelectorBatch` (FAISS scans the array linearly)."""


class IDSelectorBitmap(IDSelector):
    """Id ``i`` is selected when bit ``i & 7`` of byte ``i >> 3`` is set.

    Accepts ``IDSelectorBitmap(bitmap)`` or FAISS's ``(n_bytes, bitmap)``;
    a boolean array is packed for you.
    """

    def __init__(self, *args: Any):
        if len(args) == 2:
            n = check_int(args[0], "n", lo=0)
            bitmap = args[1]
        elif len(args) == 1:
            n, bitmap = None, args[0]
        else:
            raise TypeError("IDSelectorBitmap: expected (bitmap) or (n, bitmap)")
        arr = np.asarray(bitmap)
        if arr.dtype == np.bool_:
            arr = np.packbits(arr, bitorder="little")
        if arr.dtype != np.uint8 or arr.ndim != 1:
            raise TypeError(f"bitmap: expected a 1-D uint8 (or bool) array, got {arr.dtype} {arr.shape}")
        if n is not None:
            if n > arr.size:
                raise ValueError(f"n: bitmap holds {arr.size} bytes, n={n} is larger")
            arr = arr[:n]
        self.bitmap = np.ascontiguousarray(arr)

    def contains(self, ids: np.ndarray) -> np.ndarray:
        byte = ids >> 3
        ok = (ids >= 0) & (byte < self.bitmap.size)
        out = np.zeros(len(ids), dtype=bool)
        sel = ids[ok]
        out[ok] = (self.bitmap[sel >> 3] >> (sel & 7)) & 1 == 1
        return out

    def mask_sequential(self, n: int) -> np.ndarray:
        bits = np.unpackbits(self.bitmap, bitorder="little").astype(bool)
        if bits.size >= n:
            return bits[:n].copy()
        return np.concatenate([bits, np.zeros(n - bits.size, dtype=bool)])


class IDSelectorNot(IDSelector):
    def __init__(self, sel: IDSelector):
        self.sel = check_selector(sel, "sel")

    def contains(self, ids: np.ndarray) -> np.ndarray:
        return ~self.sel.contains(ids)

    def mask_sequential(self, n: int) -> np.ndarray:
        return ~self.sel.mask_sequential(n)


class _Binary(IDSelector):
    _op: Any = None

    def __init__(self, lhs: IDSelector, rhs: IDSelector):
        self.lhs = check_selector(lhs, "lhs")
        self.rhs = check_selector(rhs, "rhs")

    def contains(self, ids: np.ndarray) -> np.ndarray:
        return type(self)._op(self.lhs.contains(ids), self.rhs.contains(ids))

    def mask_sequential(self, n: int) -> np.ndarray:
        return type(self)._op(self.lhs.mask_sequential(n), self.rhs.mask_sequential(n))


class IDSelectorAnd(_Binary):
    _op = np.logical_and


class IDSelectorOr(_Binary):
    _op = np.logical_or


class IDSelectorXOr(_Binary):
    _op = np.logical_xor


class IDSelectorFunction(IDSelector):
    """Wrap a Python predicate ``f(ids: int64 array) -> bool array`` (vectorised)."""

    def __init__(self, fn: Any):
        if not callable(fn):
            raise TypeError(f"fn: expected a callable taking an int64 array, got {fn!r}")
        self.fn = fn

    def contains(self, ids: np.ndarray) -> np.ndarray:
        out = np.asarray(self.fn(ids))
        if out.shape != ids.shape:
            raise ValueError(f"IDSelectorFunction: predicate returned shape {out.shape}, expected {ids.shape}")
        return out.astype(bool, copy=False)


def _ids_from_args(args: tuple, who: str) -> np.ndarray:
    if len(args) == 1:
        return as_ids(args[0], name="ids", allow_minus_one=True) if np.size(args[0]) else np.zeros(0, np.int64)
    if len(args) == 2:
        n = check_int(args[0], "n", lo=0)
        ids = np.asarray(args[1])
        if ids.size < n:
            raise ValueError(f"n: {who} got n={n} but only {ids.size} ids")
        return as_ids(ids[:n], name="ids", allow_minus_one=True) if n else np.zeros(0, np.int64)
    raise TypeError(f"{who}: expected (ids) or (n, ids)")


def check_selector(sel: Any, name: str = "sel") -> IDSelector:
    if not isinstance(sel, IDSelector):
        raise TypeError(f"{name}: expected an IDSelector (IDSelectorRange, IDSelectorBatch, ...), got {sel!r}")
    return sel


class SearchParameters:
    """Per-call search options. ``sel`` restricts results to the selected ids.

    Example:
        >>> p = SearchParameters(sel=IDSelectorBatch([1, 5, 7]))
    """

    def __init__(self, sel: IDSelector | None = None, **kwargs: Any):
        self.sel = None if sel is None else check_selector(sel)
        for key, value in kwargs.items():
            # only declared knobs (public, non-callable class attributes): a name
            # such as 'contains' or '__init__' must not shadow a method
            if key.startswith("_") or not hasattr(type(self), key) or callable(getattr(type(self), key)):
                raise TypeError(f"{type(self).__name__}: unknown parameter {key!r}")
            setattr(self, key, value)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if v is not None)
        return f"{type(self).__name__}({fields})"


def selector_from_ids_or_sel(x: Any, name: str = "x") -> IDSelector:
    """``remove_ids`` takes an IDSelector or an array of ids, as FAISS's Python API does."""
    if isinstance(x, IDSelector):
        return x
    try:
        ids = as_ids(x, name=name, allow_minus_one=True)
    except TypeError:
        raise TypeError(f"{name}: expected an IDSelector or an array of integer ids, got {x!r}") from None
    return IDSelectorBatch(ids)
