"""FAISS's C++-vector idioms, for code written against faiss's SWIG layer.

FAISS hands out ``std::vector`` objects (``clus.centroids``,
``VectorIOWriter.data``, ``index.id_map``) that Python code turns into arrays
with ``faiss.vector_to_array`` and fills with ``faiss.copy_array_to_vector``,
and passes raw pointers with ``faiss.swig_ptr(x)``. voisin's vectors are
small growable numpy buffers with the same methods (``size``, ``at``,
``resize``, ``push_back``), ``vector_to_array`` accepts them and plain numpy
arrays alike, and ``swig_ptr`` returns the (checked) array itself, which is
what voisin's ``fn(x, n, ...)`` helpers take.

Example:
    >>> import numpy as np, voisin
    >>> v = voisin.Float32Vector()
    >>> voisin.copy_array_to_vector(np.arange(3, dtype="float32"), v)
    >>> v.size(), voisin.vector_to_array(v).tolist()
    (3, [0.0, 1.0, 2.0])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validate import check_int


class _Vector:
    """A growable 1-D buffer of one dtype (FAISS's ``std::vector<T>``)."""

    dtype: np.dtype = np.dtype(np.float32)

    def __init__(self, values: Any = None):
        self._buf = np.empty(0, dtype=self.dtype)
        self._n = 0
        if values is not None:
            self.assign(values)

    # --- std::vector surface -----------------------------------------------
    def size(self) -> int:
        return self._n

    def empty(self) -> bool:
        return self._n == 0

    def at(self, i: int) -> Any:
        i = check_int(i, "i", lo=0)
        if i >= self._n:
            raise IndexError(f"i: index {i} out of range for a vector of size {self._n}")
        return self._buf[i].item()

    def data(self) -> np.ndarray:
        """The elements as an array view (valid until the next resize)."""
        return self._buf[:self._n]

    def resize(self, n: int) -> None:
        n = check_int(n, "n", lo=0)
        if n > self._buf.size:
            grown = np.zeros(max(n, 2 * self._buf.size), dtype=self.dtype)
            grown[:self._n] = self._buf[:self._n]
            self._buf = grown
        elif n > self._n:
            self._buf[self._n:n] = 0
        self._n = n

    def clear(self) -> None:
        self._n = 0

    def push_back(self, v: Any) -> None:
        self.resize(self._n + 1)
        self._buf[self._n - 1] = v

    def assign(self, values: Any) -> None:
        """Replace the content with ``values`` (converted to this dtype)."""
        arr = np.asarray(values)
        if arr.dtype != self.dtype and not np.can_cast(arr.dtype, self.dtype, "same_kind"):
            raise TypeError(f"values: expected {self.dtype.name}-compatible values, got {arr.dtype}")
        arr = arr.reshape(-1)
        self.resize(arr.size)
        self._buf[:arr.size] = arr

    # --- Python conveniences -----------------------------------------------
    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: Any) -> Any:
        return self.data()[i]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        a = self.data()
        return a.astype(dtype) if dtype is not None else a.copy()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self._n})"


class Float32Vector(_Vector):
    dtype = np.dtype(np.float32)


class Float64Vector(_Vector):
    dtype = np.dtype(np.float64)


class Int32Vector(_Vector):
    dtype = np.dtype(np.int32)


class Int64Vector(_Vector):
    dtype = np.dtype(np.int64)


class UInt8Vector(_Vector):
    dtype = np.dtype(np.uint8)


class ObjectVector(list):
    """A vector of structs (e.g. ``Clustering.iteration_stats``) with ``size()`` / ``at(i)``."""

    def size(self) -> int:
        return len(self)

    def at(self, i: int) -> Any:
        return self[check_int(i, "i", lo=0, hi=len(self) - 1)]


def vector_to_array(v: Any) -> np.ndarray:
    """A numpy copy of a vector (voisin vector, numpy array, bytes or list)."""
    if isinstance(v, _Vector):
        return v.data().copy()
    if isinstance(v, np.ndarray):
        return v.copy()
    if isinstance(v, (bytes, bytearray, memoryview)):
        return np.frombuffer(bytes(v), dtype=np.uint8).copy()
    if isinstance(v, (list, tuple)):
        return np.array(v)
    raise TypeError(f"v: expected a vector (Float32Vector, UInt8Vector, ...) or an array, "
                    f"got {type(v).__name__}")


vector_float_to_array = vector_to_array


def copy_array_to_vector(a: Any, v: Any) -> None:
    """Replace the content of vector ``v`` with the elements of array ``a``."""
    arr = np.asarray(a)
    if isinstance(v, _Vector):
        v.assign(arr)
    elif isinstance(v, bytearray):
        if arr.dtype != np.uint8:
            raise TypeError(f"a: a byte vector takes uint8 values, got {arr.dtype}")
        v[:] = arr.tobytes()
    else:
        raise TypeError(f"v: expected a voisin vector (Float32Vector, UInt8Vector, ...), "
                        f"got {type(v).__name__}")


def swig_ptr(a: Any) -> np.ndarray:
    """What FAISS code passes as a pointer: voisin takes the array itself
    (it must be C-contiguous, as FAISS requires)."""
    if isinstance(a, _Vector):
        return a.data()
    if not isinstance(a, np.ndarray) or not a.flags.c_contiguous:
        raise TypeError(f"a: expected a C-contiguous numpy array, got "
                        f"{type(a).__name__ if not isinstance(a, np.ndarray) else 'a strided view'}")
    return a


def rev_swig_ptr(ptr: Any, n: int) -> np.ndarray:
    """The first ``n`` elements behind a "pointer" (an array), as a view."""
    arr = swig_ptr(ptr).reshape(-1)
    n = check_int(n, "n", lo=0, hi=arr.size)
    return arr[:n]
