"""The one gate of the collection layer: arguments become clean values here,
and every error says which argument (or which element of it) is wrong and
what was expected, in the form ``name: expected X, got Y``.

Example:
    >>> clean_payload({"year": 2021, "tags": ("a", "b")}, "payloads[0]")
    {'year': 2021, 'tags': ['a', 'b']}
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any, Sequence

import numpy as np

from .._validate import as_matrix, check_int
from .ann import METRIC_ALIASES

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,254}")
_INT64 = (-(2 ** 63), 2 ** 63 - 1)
#: deepest payload nesting accepted (JSON of any sane document is far shallower)
MAX_PAYLOAD_DEPTH = 64
PAYLOAD_SCHEMAS = ("keyword", "integer", "float", "bool", "datetime")


def check_name(name: Any, what: str = "name") -> str:
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise ValueError(f"{what}: expected a collection name of 1 to 255 letters, digits, "
                         f"'_', '-' or '.' (not starting with '.' or '-'), got {name!r}")
    return name


def check_metric(metric: Any) -> str:
    m = METRIC_ALIASES.get(metric.lower()) if isinstance(metric, str) else None
    if m is None:
        raise ValueError(f"metric: expected one of 'cosine', 'dot', 'euclid' (or 'ip', 'l2'), "
                         f"got {metric!r}")
    return m


def check_vectors(x: Any, dim: int, n: int | None, metric: str, name: str = "vectors") -> np.ndarray:
    """float32 (n, dim) rows, finite; unit length for cosine (a zero vector is refused)."""
    X = as_matrix(x, dim, name)
    if n is not None and X.shape[0] != n:
        raise ValueError(f"{name}: expected {n} vectors (one per id), got {X.shape[0]}")
    if metric == "cosine" and X.shape[0]:
        norms = np.sqrt(np.einsum("ij,ij->i", X, X, dtype=np.float64))
        if (norms == 0).any():
            i = int(np.argmax(norms == 0))
            raise ValueError(f"{name}[{i}]: expected a non-zero vector (metric cosine normalises "
                             "vectors), got all zeros")
        X = (X / norms[:, None]).astype(np.float32)
    return np.ascontiguousarray(X)


def clean_payload(p: Any, where: str) -> dict:
    """A JSON object: a fresh copy in plain Python types (tuples become lists,
    numpy scalars Python numbers). Refused: non-string keys, NaN / inf,
    integers outside int64, objects JSON cannot hold."""
    if p is None:
        return {}
    if not isinstance(p, dict):
        raise TypeError(f"{where}: expected a JSON object (dict with string keys), got "
                        f"{type(p).__name__}")
    return _clean(p, where, 0)


def _is_plain(x: Any) -> bool:
    """A JSON scalar that needs no conversion (exact types: the abstract-class
    checks of the general path cost about a microsecond each)."""
    t = type(x)
    return (x is None or t is str or t is bool or (t is int and _INT64[0] <= x <= _INT64[1])
            or (t is float and math.isfinite(x)))


def _clean(v: Any, where: str, depth: int) -> Any:
    if depth > MAX_PAYLOAD_DEPTH:
        raise ValueError(f"{where}: expected JSON nested at most {MAX_PAYLOAD_DEPTH} levels deep")
    if _is_plain(v):
        return v
    if type(v) is dict and all(type(k) is str and _is_plain(x) for k, x in v.items()):
        return dict(v)
    if isinstance(v, str):
        return str(v)
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, numbers.Integral):
        if not _INT64[0] <= v <= _INT64[1]:
            raise ValueError(f"{where}: expected an integer that fits in int64, got {v}")
        return int(v)
    if isinstance(v, numbers.Real):
        f = float(v)
        if not math.isfinite(f):
            raise ValueError(f"{where}: expected a finite number (JSON has no NaN or inf), got {v}")
        return f
    if isinstance(v, dict):
        out = {}
        for k, item in v.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: expected string keys (JSON objects), got key {k!r}")
            out[k] = _clean(item, f"{where}[{k!r}]", depth + 1)
        return out
    if isinstance(v, (list, tuple)):
        return [_clean(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(v)]
    raise TypeError(f"{where}: expected a JSON value (None, bool, number, str, list, dict), "
                    f"got {type(v).__name__}")


def clean_payloads(payloads: Any, n: int, name: str = "payloads") -> list[dict]:
    if payloads is None:
        return [{} for _ in range(n)]
    if isinstance(payloads, dict):
        raise TypeError(f"{name}: expected a list of {n} payload dicts (one per id), got one dict")
    try:
        seq = list(payloads)
    except TypeError:
        raise TypeError(f"{name}: expected a list of payload dicts, got {type(payloads).__name__}") from None
    if len(seq) != n:
        raise ValueError(f"{name}: expected {n} payloads (one per id), got {len(seq)}")
    return [clean_payload(p, f"{name}[{i}]") for i, p in enumerate(seq)]


def clean_documents(documents: Any, n: int | None, name: str = "documents") -> list[str]:
    if (isinstance(documents, (str, bytes, bytearray, dict)) or documents is None
            or not hasattr(documents, "__iter__")):
        raise TypeError(f"{name}: expected a list of strings, got {documents!r:.80}")
    if isinstance(documents, np.ndarray) and documents.ndim != 1:
        raise TypeError(f"{name}: expected a list of strings, got an array of shape {documents.shape}")
    seq = list(documents)
    if n is not None and len(seq) != n:
        raise ValueError(f"{name}: expected {n} documents (one per id), got {len(seq)}")
    for i, d in enumerate(seq):
        if not isinstance(d, str):
            hint = " (decode bytes to str first)" if isinstance(d, (bytes, bytearray)) else ""
            raise TypeError(f"{name}[{i}]: expected a string, got {type(d).__name__}{hint}")
        if not d.isascii():
            try:
                d.encode("utf-8")
            except UnicodeEncodeError as exc:  # SQLite (and any tokenizer) stores UTF-8 only
                raise ValueError(f"{name}[{i}]: expected text encodable as UTF-8, got a lone surrogate "
                                 f"{d[exc.start]!r} at position {exc.start}") from None
    return [str(d) for d in seq]  # numpy.str_ and other subclasses stored as plain str


def check_unique_ids(ids: Sequence[Any], name: str = "ids") -> None:
    if len(set(ids)) != len(ids):
        seen: set = set()
        for i, v in enumerate(ids):
            if v in seen:
                raise ValueError(f"{name}: duplicate id {v!r} in one call (at {name}[{i}])")
            seen.add(v)


def check_keys(keys: Any, name: str = "keys") -> list[str]:
    if isinstance(keys, str):
        keys = [keys]
    out = list(keys)
    for i, k in enumerate(out):
        if not isinstance(k, str) or not k:
            raise TypeError(f"{name}[{i}]: expected a payload key string, got {k!r}")
    return out


def check_schema(schema: Any) -> str:
    if schema not in PAYLOAD_SCHEMAS:
        raise ValueError(f"schema: expected one of {', '.join(PAYLOAD_SCHEMAS)}, got {schema!r}")
    return schema


def check_limit(v: Any, name: str, lo: int = 0) -> int:
    return check_int(v, name, lo=lo)


def check_threshold(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
        raise TypeError(f"score_threshold: expected a finite number or None, got {v!r}")
    return float(v)
