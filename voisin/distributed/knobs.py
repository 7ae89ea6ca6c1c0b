"""Search-time knobs by FAISS's names (nprobe, efSearch, k_factor, max_codes),
set on an index and every index it wraps.

This is the one place ``voisin.distributed`` turns ``params={"nprobe": 32}``
into attributes; it recurses explicitly through the wrappers as FAISS's
``ParameterSpace.set_index_parameter`` does, and can later be replaced by
voisin's ParameterSpace without touching its callers.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from .._validate import check_float, check_int

KNOBS = ("nprobe", "max_codes", "efSearch", "k_factor")


def _targets(index: Any, name: str) -> list[tuple[Any, str]]:
    """(object, attribute) pairs that knob ``name`` sets inside ``index``."""
    found: list[tuple[Any, str]] = []
    if hasattr(index, "count") and hasattr(index, "at") and hasattr(index, "_subs"):
        for i in range(index.count()):  # IndexShards / IndexReplicas
            found += _targets(index.at(i), name)
        return found
    if hasattr(index, "base_index") and hasattr(index, "refine_index"):  # IndexRefine
        if name == "k_factor":
            return [(index, "k_factor")]
        return _targets(index.base_index, name)
    if hasattr(index, "index") and not hasattr(index, "invlists"):  # IDMap, PreTransform
        return _targets(index.index, name)
    if name in ("nprobe", "max_codes") and hasattr(index, "invlists"):
        return [(index, name)]
    if name == "efSearch" and hasattr(index, "hnsw"):
        return [(index.hnsw, "efSearch")]
    return found


def check_knobs(index: Any, params: Any) -> dict[str, Any]:
    """``params`` as a checked dict of knobs that apply somewhere in ``index``."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise TypeError(f"params: expected a dict of FAISS knob names such as {{'nprobe': 16}}, got {params!r}")
    out: dict[str, Any] = {}
    for name, value in params.items():
        if name not in KNOBS:
            raise ValueError(f"params: expected knobs among {', '.join(KNOBS)}, got {name!r}")
        if not _targets(index, name):
            raise ValueError(f"params: {name!r} does not apply to a {type(index).__name__}")
        out[name] = check_float(value, name) if name == "k_factor" else \
            check_int(value, name, lo=0 if name == "max_codes" else 1)
    return out


@contextmanager
def knobs_set(index: Any, knobs: dict[str, Any]) -> Iterator[None]:
    """Set ``knobs`` inside ``index`` for the duration of the block, then restore."""
    saved: list[tuple[Any, str, Any]] = []
    try:
        for name, value in knobs.items():
            for obj, attr in _targets(index, name):
                saved.append((obj, attr, getattr(obj, attr)))
                setattr(obj, attr, value)
        yield
    finally:
        for obj, attr, value in reversed(saved):
            setattr(obj, attr, value)
