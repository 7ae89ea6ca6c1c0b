"""Search-time knobs by FAISS's names (nprobe, efSearch, k_factor, max_codes...),
set on an index and every index it wraps, for one call.

This is where ``voisin.distributed`` turns ``params={"nprobe": 32}`` into
settings; what a name sets inside an index is :mod:`voisin.params`'s (the one
place that knows how knobs travel through IDMap, PreTransform, Refine, IVF
quantizers and shards), so a knob means the same here as in ParameterSpace.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from ..params import assignments, parameter_names

KNOBS = ("nprobe", "max_codes", "efSearch", "k_factor", "k_factor_rf", "quantizer_efSearch")


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
        if name not in parameter_names(index):
            raise ValueError(f"params: {name!r} does not apply to a {type(index).__name__}")
        settings = assignments(index, name, value)   # raises naming the knob on a bad value
        out[name] = settings[0][2] if settings else value
    return out


@contextmanager
def knobs_set(index: Any, knobs: dict[str, Any]) -> Iterator[None]:
    """Set ``knobs`` inside ``index`` for the duration of the block, then restore."""
    saved: list[tuple[Any, str, Any]] = []
    try:
        for name, value in knobs.items():
            for obj, attr, setting in assignments(index, name, value):
                saved.append((obj, attr, getattr(obj, attr)))
                setattr(obj, attr, setting)
        yield
    finally:
        for obj, attr, value in reversed(saved):
            setattr(obj, attr, value)
