"""``index_binary_factory``: FAISS's description strings for binary indexes.

Grammar (d in bits)::

    description := [IDMap|IDMap2 ,] core [, IDMap|IDMap2]
    core        := BFlat | BIVF{n} | BIVF{n}_HNSW{M} | BHNSW{M} | BHash{b} | BHash{nh}x{b}

``BIVF{n}_HNSW{M}`` uses an IndexBinaryHNSW as the coarse quantizer. Unlike
FAISS, which reads the string with ``sscanf`` and ignores what follows a
match (``"BIVF16,junk"``), anything else is an error naming the string.

Example:
    >>> import voisin
    >>> type(voisin.index_binary_factory(256, "IDMap2,BHNSW32")).__name__
    'IndexBinaryIDMap2'
"""

from __future__ import annotations

import re

from .factory import FactoryError

_CORES = [
    (re.compile(r"BFlat"), "flat"),
    (re.compile(r"BIVF(\d+)_HNSW(\d+)"), "ivf_hnsw"),
    (re.compile(r"BIVF(\d+)"), "ivf"),
    (re.compile(r"BHNSW(\d+)"), "hnsw"),
    (re.compile(r"BHash(\d+)x(\d+)"), "multihash"),
    (re.compile(r"BHash(\d+)"), "hash"),
]

_GRAMMAR = ("BFlat, BIVF{n}, BIVF{n}_HNSW{M}, BHNSW{M}, BHash{b}, BHash{nh}x{b}, "
            "optionally with an IDMap, / IDMap2, prefix")


def _core(d: int, text: str, description: str):
    from .indexes.binary_flat import IndexBinaryFlat
    from .indexes.binary_hash import IndexBinaryHash, IndexBinaryMultiHash
    from .indexes.binary_hnsw import IndexBinaryHNSW
    from .indexes.binary_ivf import IndexBinaryIVF
    for pattern, kind in _CORES:
        m = pattern.fullmatch(text)
        if m is None:
            continue
        args = [int(g) for g in m.groups()]
        try:
            if kind == "flat":
                return IndexBinaryFlat(d)
            if kind == "ivf":
                return IndexBinaryIVF(IndexBinaryFlat(d), d, args[0])
            if kind == "ivf_hnsw":
                return IndexBinaryIVF(IndexBinaryHNSW(d, args[1]), d, args[0])
            if kind == "hnsw":
                return IndexBinaryHNSW(d, args[0])
            if kind == "multihash":
                return IndexBinaryMultiHash(d, args[0], args[1])
            return IndexBinaryHash(d, args[0])
        except (ValueError, TypeError) as exc:
            raise FactoryError(f"index_binary_factory({d}, {description!r}): {exc}") from None
    raise FactoryError(f"index_binary_factory({d}, {description!r}): cannot build {text!r}; "
                       f"expected {_GRAMMAR}")


def index_binary_factory(d: int, description: str, own_invlists: bool = True):
    """Build a binary index of ``d`` bits from a FAISS description string."""
    from .indexes.binary import check_binary_dimension
    from .indexes.binary_idmap import IndexBinaryIDMap, IndexBinaryIDMap2
    if not isinstance(description, str):
        raise TypeError(f"description: expected a string such as 'BIVF1024', got "
                        f"{type(description).__name__}")
    d = check_binary_dimension(d)
    parts = [p.strip() for p in description.split(",")]
    wrap = None
    if len(parts) == 2 and parts[0] in ("IDMap", "IDMap2"):
        wrap, parts = parts[0], parts[1:]
    elif len(parts) == 2 and parts[1] in ("IDMap", "IDMap2"):
        wrap, parts = parts[1], parts[:1]
    if len(parts) != 1 or not parts[0]:
        raise FactoryError(f"index_binary_factory({d}, {description!r}): expected one binary "
                           f"index ({_GRAMMAR})")
    index = _core(d, parts[0], description)
    if wrap is not None:
        index = (IndexBinaryIDMap2 if wrap == "IDMap2" else IndexBinaryIDMap)(index)
    return index
