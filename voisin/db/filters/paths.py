"""Payload key paths (Qdrant's grammar) and the values a path selects.

A path is a chain of keys (``a.b``, ``"quoted.key"``), each optionally followed
by ``[]`` (every element of an array) or ``[N]`` (one element). The values a
path selects follow Qdrant's rules exactly, because filter results must equal
Qdrant's: with ``flat=True`` an array at the end of the path is unwrapped one
level (``{"tags": ["a", "b"]}`` gives ``["a", "b"]`` for ``tags``); with
``flat=False`` it is kept whole (what ``is_empty`` and ``values_count`` see).

Example:
    >>> parse_path("a[].b")
    (('key', 'a'), ('all', None), ('key', 'b'))
    >>> values_at({"a": [{"b": 1}, {"b": [2, 3]}]}, parse_path("a[].b"))
    [1, 2, 3]
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

Path = tuple[tuple[str, Any], ...]

_KEY_CHARS = frozenset("_-")


@lru_cache(maxsize=4096)
def parse_path(key: str) -> Path:
    """Split a key path into steps; ValueError (without a location) when malformed."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"expected a non-empty key path string, got {key!r}")
    steps: list[tuple[str, Any]] = []
    i, n = 0, len(key)
    while True:
        if key[i] == '"':
            end = key.find('"', i + 1)
            if end < 0:
                raise ValueError(f"invalid key path {key!r}: unclosed quote")
            steps.append(("key", key[i + 1:end]))
            i = end + 1
        else:
            j = i
            while j < n and (key[j].isalnum() or key[j] in _KEY_CHARS):
                j += 1
            if j == i:
                raise ValueError(f"invalid key path {key!r} at character {i}")
            steps.append(("key", key[i:j]))
            i = j
        while i < n and key[i] == "[":
            end = key.find("]", i)
            if end < 0:
                raise ValueError(f"invalid key path {key!r}: unclosed '['")
            inner = key[i + 1:end]
            if inner == "":
                steps.append(("all", None))
            elif inner.isascii() and inner.isdigit():
                steps.append(("index", int(inner)))
            else:
                raise ValueError(f"invalid key path {key!r}: array index {inner!r} is not a number")
            i = end + 1
        if i == n:
            return tuple(steps)
        if key[i] != "." or i + 1 == n:
            raise ValueError(f"invalid key path {key!r} at character {i}")
        i += 1


def values_at(payload: Any, path: Path, flat: bool = True) -> list[Any]:
    """Every value ``path`` selects in ``payload`` (an empty list when none)."""
    out: list[Any] = []
    _collect(payload, path, 0, flat, out)
    return out


def _collect(data: Any, path: Path, i: int, flat: bool, out: list[Any]) -> None:
    if i == len(path):
        if flat and isinstance(data, list):
            out.extend(data)
        else:
            out.append(data)
        return
    kind, arg = path[i]
    if kind == "key":
        if isinstance(data, dict) and arg in data:
            _collect(data[arg], path, i + 1, flat, out)
    elif kind == "index":
        if isinstance(data, list) and arg < len(data):
            _collect(data[arg], path, i + 1, flat, out)
    elif isinstance(data, list):
        for item in data:
            _collect(item, path, i + 1, flat, out)


def nested_elements(payload: Any, path: Path) -> list[dict]:
    """The array elements a ``nested`` condition is applied to, one at a time:
    the objects inside the arrays ``path`` selects (``a`` and ``a[]`` alike)."""
    if len(path) > 1 and path[-1] == ("all", None):
        path = path[:-1]
    elements: list[dict] = []
    for value in values_at(payload, path, flat=False):
        if isinstance(value, list):
            elements.extend(e for e in value if isinstance(e, dict))
    return elements
