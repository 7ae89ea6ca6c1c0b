"""IVF operations with the coarse assignment in the caller's hands
(``faiss.contrib.ivf_tools``): add and search with given lists, swap the
coarse quantizer, renumber the lists.

Example:
    >>> import numpy as np, voisin
    >>> from voisin.contrib.ivf_tools import add_preassigned, search_preassigned
    >>> index = voisin.index_factory(4, "IVF2,Flat")
    >>> xb = np.random.default_rng(0).random((100, 4), dtype="float32")
    >>> index.train(xb)
    >>> add_preassigned(index, xb, np.zeros(100, dtype=np.int64))   # everything in list 0
    >>> D, I = search_preassigned(index, xb[:1], 1, np.array([[0]]))
    >>> I.tolist()
    [[0]]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import as_ids, as_matrix
from .inspect_tools import get_invlist_sizes

__all__ = ["add_preassigned", "search_preassigned", "range_search_preassigned",
           "replace_ivf_quantizer", "permute_invlists", "sort_invlists_by_size"]


def _ivf(index: Any, name: str = "index_ivf") -> Any:
    from ..indexes.ivf import IndexIVF
    if not isinstance(index, IndexIVF):
        raise TypeError(f"{name}: expected an IVF index, got {type(index).__name__}")
    return index


def _lists(a: Any, n: int, nlist: int, name: str, ndim: int) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer list numbers, got dtype {arr.dtype}")
    if arr.ndim != ndim or arr.shape[0] != n:
        want = f"({n},)" if ndim == 1 else f"({n}, nprobe)"
        raise ValueError(f"{name}: expected shape {want}, got {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= nlist):
        raise ValueError(f"{name}: list numbers must lie in [0, {nlist})")
    return arr


def add_preassigned(index_ivf: Any, x: Any, a: Any, ids: Any = None) -> None:
    """Add ``x`` (n, d) to the lists ``a`` (n,) chosen by the caller; ids
    default to ntotal, ntotal + 1, ..."""
    index = _ivf(index_ivf)
    x = as_matrix(x, index.d, "x")
    a = _lists(a, x.shape[0], index.nlist, "a", 1)
    if ids is None:
        ids = np.arange(index.ntotal, index.ntotal + x.shape[0], dtype=np.int64)
    else:
        ids = as_ids(ids, x.shape[0], "ids")
    index._check_trained()
    index._check_writable()
    with index._write_lock:  # the Index contract's writer lock, as add() takes it
        index.add_preassigned(x, ids, a)


def _unwrap_transform(index: Any, x: Any) -> tuple[Any, Any]:
    from ..indexes.pretransform import IndexPreTransform
    if isinstance(index, IndexPreTransform):
        x = index.apply_chain(as_matrix(x, index.d, "xq"))
        index = index.index
    return _ivf(index), x


def search_preassigned(index_ivf: Any, xq: Any, k: int, list_nos: Any, coarse_dis: Any = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Search only the lists ``list_nos`` (n, nprobe) of each query; an
    IndexPreTransform around the IVF applies its transforms first.
    ``coarse_dis`` (the query-to-centroid distances) matters only to codecs
    that use them (IVFPQ by residual, L2); zeros otherwise."""
    index, xq = _unwrap_transform(index_ivf, xq)
    xq = as_matrix(xq, index.d, "xq")
    list_nos = _lists(list_nos, xq.shape[0], index.nlist, "list_nos", 2)
    return index.search_preassigned(xq, k, list_nos, _coarse(coarse_dis, list_nos))


def range_search_preassigned(index_ivf: Any, x: Any, radius: float, list_nos: Any,
                             coarse_dis: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Range search in the lists ``list_nos`` (n, nprobe): ``(lims, D, I)``."""
    index, x = _unwrap_transform(index_ivf, x)
    x = as_matrix(x, index.d, "x")
    list_nos = _lists(list_nos, x.shape[0], index.nlist, "list_nos", 2)
    return index.range_search_preassigned(x, radius, list_nos, _coarse(coarse_dis, list_nos))


def _coarse(coarse_dis: Any, list_nos: np.ndarray) -> np.ndarray:
    if coarse_dis is None:
        return np.zeros(list_nos.shape, dtype=np.float32)
    cd = np.ascontiguousarray(coarse_dis, dtype=np.float32)
    if cd.shape != list_nos.shape:
        raise ValueError(f"coarse_dis: expected shape {list_nos.shape}, got {cd.shape}")
    return cd


def _refresh(index: Any) -> None:
    """Drop what an index derived from its quantizer (IVFPQ's per-list tables)."""
    if hasattr(index, "precompute_table"):
        index.precompute_table()


def replace_ivf_quantizer(index_ivf: Any, new_quantizer: Any) -> Any:
    """Give the IVF index ``new_quantizer`` (filled with the current centroids
    when empty) and return the old quantizer."""
    from ..index import Index
    index = _ivf(index_ivf)
    if not isinstance(new_quantizer, Index):
        raise TypeError(f"new_quantizer: expected an Index, got {type(new_quantizer).__name__}")
    if new_quantizer.d != index.d:
        raise ValueError(f"new_quantizer: dimension {new_quantizer.d} differs from {index.d}")
    if new_quantizer.ntotal == 0:
        centroids = index.quantizer.reconstruct_n(0, index.quantizer.ntotal)
        new_quantizer.train(centroids)
        new_quantizer.add(centroids)
    elif new_quantizer.ntotal != index.nlist:
        raise ValueError(f"new_quantizer: holds {new_quantizer.ntotal} centroids for "
                         f"nlist={index.nlist}")
    old = index.quantizer
    with index._write_lock:
        index.quantizer = new_quantizer
        _refresh(index)
    return old


def permute_invlists(index_ivf: Any, perm: Any) -> None:
    """Renumber the lists: new list i is old list ``perm[i]`` (codes, ids and
    the quantizer's centroid move together)."""
    from ..indexes.flat import IndexFlat
    from ..indexes.invlists import InvertedLists
    index = _ivf(index_ivf)
    perm = np.asarray(perm)
    if perm.dtype.kind not in "iu" or perm.shape != (index.nlist,):
        raise ValueError(f"perm: expected {index.nlist} integer list numbers, got "
                         f"{perm.dtype} {perm.shape}")
    perm = perm.astype(np.int64)
    if not np.array_equal(np.sort(perm), np.arange(index.nlist)):
        raise ValueError("perm: expected a permutation of 0 .. nlist-1")
    quantizer = index.quantizer
    if not isinstance(quantizer, IndexFlat) or quantizer.ntotal != index.nlist:
        raise TypeError(f"index_ivf: permuting needs a flat quantizer holding the {index.nlist} "
                        f"centroids, got {type(quantizer).__name__}")
    index._check_writable()
    with index._write_lock:
        centroids = quantizer.reconstruct_n(0, index.nlist)
        quantizer.reset()
        quantizer.add(centroids[perm])
        old = index.invlists
        rows, lists = old.used_rows()
        new_of_old = np.empty(index.nlist, dtype=np.int64)
        new_of_old[perm] = np.arange(index.nlist)
        fresh = InvertedLists(index.nlist, old.code_size)
        if rows.size:
            fresh.add_entries(new_of_old[lists], old.codes[rows], old.ids[rows])
        index.invlists = fresh
        index.direct_map.invalidate()
        _refresh(index)


def sort_invlists_by_size(index_ivf: Any) -> None:
    """Renumber the lists from the smallest to the largest."""
    index = _ivf(index_ivf)
    permute_invlists(index, np.argsort(get_invlist_sizes(index.invlists), kind="stable"))
