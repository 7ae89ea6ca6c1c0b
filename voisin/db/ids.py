"""Point ids as Qdrant has them: unsigned 64-bit integers or UUIDs.

An id is kept in its normal form: a Python int in [0, 2**64) or the canonical
lowercase hyphenated UUID string. In SQLite it is stored as text (``"42"``,
``"6f1c...-..."``), which never mixes the two kinds up.

Example:
    >>> normalize_id("6F1C2B3A4D5E4F60A1B2C3D4E5F60718")
    '6f1c2b3a-4d5e-4f60-a1b2-c3d4e5f60718'
    >>> normalize_ids([3, 1, 2], "ids")
    [3, 1, 2]
"""

from __future__ import annotations

import numbers
import re
import uuid
from typing import Any

import numpy as np

_U64 = 2 ** 64
_HYPHENATED = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_UUID_FORMS = re.compile(rf"(?:[0-9a-fA-F]{{32}}|{_HYPHENATED}|\{{{_HYPHENATED}\}}|urn:uuid:{_HYPHENATED})")

PointId = "int | str"


def normalize_id(v: Any) -> int | str:
    """One id in normal form; TypeError / ValueError saying what was expected."""
    if isinstance(v, (bool, np.bool_)):
        raise TypeError(f"expected an unsigned 64-bit integer or a UUID string as point id, got {v!r}")
    if isinstance(v, numbers.Integral):
        v = int(v)
        if not 0 <= v < _U64:
            raise ValueError(f"expected a point id in [0, 2**64), got {v}")
        return v
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, str):
        if _UUID_FORMS.fullmatch(v) is None:
            raise ValueError(f"expected an unsigned integer or a UUID string as point id, got {v!r}")
        return str(uuid.UUID(v))
    raise TypeError(f"expected an unsigned 64-bit integer or a UUID string as point id, got {v!r}")


def normalize_ids(ids: Any, name: str = "ids", n: int | None = None) -> list:
    """A batch of ids in normal form: all integers or all UUIDs (a batch that
    mixes the two is refused), ``n`` of them when given."""
    if isinstance(ids, np.ndarray) and ids.dtype.kind in "iu" and ids.ndim == 1:
        if ids.size and ids.dtype.kind == "i" and ids.min() < 0:
            bad = int(ids[np.argmax(ids < 0)])
            raise ValueError(f"{name}: expected point ids in [0, 2**64), got {bad}")
        out = ids.tolist()
    else:
        if isinstance(ids, (str, bytes, uuid.UUID)) or isinstance(ids, numbers.Integral):
            ids = [ids]
        try:
            seq = list(ids)
        except TypeError:
            raise TypeError(f"{name}: expected a list of point ids, got {type(ids).__name__}") from None
        out = []
        for i, v in enumerate(seq):
            try:
                out.append(normalize_id(v))
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"{name}[{i}]: {exc}") from None
        kinds = {type(v) for v in out}
        if len(kinds) > 1:
            first = next(i for i, v in enumerate(out) if type(v) is not type(out[0]))
            raise TypeError(f"{name}: expected ids of one kind (all integers or all UUID strings) "
                            f"in one call, got {out[0]!r} and {out[first]!r} at {name}[{first}]")
    if n is not None and len(out) != n:
        raise ValueError(f"{name}: expected {n} ids (one per vector), got {len(out)}")
    return out


def id_key(v: int | str) -> str:
    """The text stored in SQLite for a normalised id."""
    return str(v)


def id_from_key(key: str) -> int | str:
    return key if "-" in key else int(key)


def sort_key(v: int | str) -> tuple:
    """Qdrant's scroll order: integers ascending, then UUIDs as strings."""
    return ("", v) if isinstance(v, int) else (v, 0)
