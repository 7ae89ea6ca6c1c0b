"""Search-parameter classes under FAISS's names: ``IndexRefineSearchParameters``
and ``SearchParametersPQ``.

``IndexRefineSearchParameters`` *is* :class:`voisin.SearchParametersRefine`
(``k_factor``, ``base_index_params``), so either name passes an index's
parameter check. ``SearchParametersPQ`` carries FAISS's ``search_type`` and
``polysemous_ht`` for IndexPQ, whose six search types voisin implements.

Example:
    >>> import voisin
    >>> p = voisin.IndexRefineSearchParameters(k_factor=3)
    >>> isinstance(p, voisin.SearchParametersRefine), p.k_factor
    (True, 3)
"""

from __future__ import annotations

from typing import Any

from ._validate import check_int
from .selector import SearchParameters


def __getattr__(name: str) -> Any:
    # resolved on use: IndexPQ imports this module, and the refine module
    # (which imports other indexes) must not load with it
    if name == "IndexRefineSearchParameters":
        from .indexes.refine import SearchParametersRefine
        return SearchParametersRefine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

# FAISS's IndexPQ::Search_type_t values
ST_PQ = 0
ST_HE = 1
ST_generalized_hamming = 2
ST_SDC = 3
ST_polysemous = 4
ST_polysemous_generalize = 5

_SUPPORTED = (ST_PQ, ST_HE, ST_generalized_hamming, ST_SDC, ST_polysemous, ST_polysemous_generalize)

_ST_NAMES = {ST_PQ: "ST_PQ", ST_HE: "ST_HE", ST_generalized_hamming: "ST_generalized_hamming",
             ST_SDC: "ST_SDC", ST_polysemous: "ST_polysemous",
             ST_polysemous_generalize: "ST_polysemous_generalize"}


def check_search_type(value: Any, name: str = "search_type", supported_only: bool = True) -> int:
    """A FAISS IndexPQ search type (0..5); one outside _SUPPORTED raises
    NotImplementedError unless ``supported_only`` is False."""
    value = check_int(value, name, lo=0)
    if value not in _ST_NAMES:
        raise ValueError(f"{name}: unknown IndexPQ search type {value}, expected 0..5")
    if supported_only and value not in _SUPPORTED:
        raise NotImplementedError(
            f"{name}: voisin's IndexPQ searches by asymmetric distances (ST_PQ = 0) or polysemous "
            f"filtering (ST_polysemous = 4, ST_polysemous_generalize = 5), got {_ST_NAMES[value]}")
    return value


class SearchParametersPQ(SearchParameters):
    """IndexPQ search options: ``search_type`` (``ST_PQ`` = 0, asymmetric
    distances; ``ST_HE`` = 1, ``ST_generalized_hamming`` = 2, ``ST_SDC`` = 3,
    code to code; ``ST_polysemous`` = 4 / ``ST_polysemous_generalize`` = 5),
    ``polysemous_ht`` (the Hamming threshold of polysemous search, 0 = none;
    unused by ST_PQ, as in FAISS) and ``sel``. As in FAISS, the parameters'
    search type replaces the index's.

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).random((2000, 16), dtype="float32")
        >>> index = voisin.IndexPQ(16, 4, 4); index.train(xb); index.add(xb)
        >>> p = voisin.SearchParametersPQ(search_type=0, sel=voisin.IDSelectorRange(0, 100))
        >>> bool((index.search(xb[:3], 5, params=p)[1] < 100).all())
        True
    """

    search_type: Any = ST_PQ
    polysemous_ht: Any = 0

    def __setattr__(self, name: str, value: Any) -> None:
        # checked when set, so a bad value fails where it is written
        if name == "search_type":
            value = check_search_type(value)
        elif name == "polysemous_ht":
            value = check_int(value, "polysemous_ht", lo=0)
        super().__setattr__(name, value)
