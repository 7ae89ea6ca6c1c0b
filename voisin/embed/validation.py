"""The one gate for text input and for what an embedder returns.

Errors follow voisin's form "name: expected X, got Y" and name the position of
the first bad document, so a caller with ten thousand documents finds it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from .._validate import _describe, as_matrix, check_int


def _kind(x: Any) -> str:
    return "None" if x is None else type(x).__name__


def check_texts(texts: Any, name: str = "texts") -> list[str]:
    """``texts`` as a list of str: a sequence (list, tuple, numpy array, iterable) of strings.

    A single string is one text. Refused: None, bytes, numbers, mappings, and
    any element that is not a str (None included), or that holds a lone
    surrogate (it cannot be encoded as UTF-8, so no tokenizer can read it).
    """
    if isinstance(texts, str):
        out = [texts]
    elif texts is None or isinstance(texts, (bytes, bytearray, Mapping)) or not isinstance(texts, Iterable):
        raise TypeError(f"{name}: expected a string or a sequence of strings, got {_kind(texts)}")
    elif isinstance(texts, np.ndarray):
        if texts.ndim != 1 or texts.dtype.kind not in "UO":
            raise TypeError(f"{name}: expected a 1-D array of strings, got {_describe(texts)}")
        out = texts.tolist()
    else:
        out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            hint = " (decode bytes to str first)" if isinstance(t, (bytes, bytearray)) else ""
            raise TypeError(f"{name}[{i}]: expected a string, got {_kind(t)}{hint}")
        if not t.isascii():
            try:
                t.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError(f"{name}[{i}]: expected text encodable as UTF-8, got a lone surrogate "
                                 f"{t[exc.start]!r} at position {exc.start}") from None
    return [str(t) for t in out]  # str subclasses (numpy.str_) become plain str for the tokenizer


def check_batch_size(batch_size: Any) -> int:
    return check_int(batch_size, "batch_size", lo=1)


def check_flag(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def check_embeddings(vectors: Any, n: int, dim: int | None, name: str) -> np.ndarray:
    """An embedder's output as float32 (n, dim): one finite vector per text."""
    if n == 0:
        if vectors is None or np.size(vectors) == 0:
            return np.empty((0, dim or 0), dtype=np.float32)
    arr = as_matrix(vectors, dim, name, allow_1d=n == 1)
    if arr.shape[0] != n:
        raise ValueError(f"{name}: expected {n} vectors (one per text), got {arr.shape[0]}")
    return arr


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise TypeError(f"name: expected a non-empty string, got {name!r}")
    return name


def check_model_path(model: Any) -> str | os.PathLike:
    if not isinstance(model, (str, os.PathLike)) or not str(model):
        raise TypeError(f"model: expected None (the bundled all-MiniLM-L6-v2) or the path of a "
                        f"sentence-transformers folder or zip, got {model!r}")
    return model
