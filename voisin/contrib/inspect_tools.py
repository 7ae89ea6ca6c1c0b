"""Look inside indexes and codecs (``faiss.contrib.inspect_tools``): inverted
lists, PQ centroids, linear-transform matrices, flat data and codes.

Everything returned is a copy, safe to modify.

Example:
    >>> import numpy as np, voisin
    >>> from voisin.contrib.inspect_tools import get_invlist_sizes
    >>> index = voisin.index_factory(4, "IVF2,Flat")
    >>> xb = np.random.default_rng(0).random((100, 4), dtype="float32")
    >>> index.train(xb); index.add(xb)
    >>> int(get_invlist_sizes(index.invlists).sum())
    100
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import check_int

__all__ = ["get_invlist", "get_invlist_sizes", "print_object_fields", "get_pq_centroids",
           "get_LinearTransform_matrix", "make_LinearTransform_matrix",
           "get_additive_quantizer_codebooks", "get_flat_data", "get_flat_codes",
           "get_NSG_neighbors"]


def _invlists(invlists: Any) -> Any:
    from ..index_tools import downcast_InvertedLists
    return downcast_InvertedLists(getattr(invlists, "invlists", invlists))


def get_invlist(invlists: Any, l: int) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, codes)`` of list ``l``: int64 (size,) and uint8 (size, code_size).

    voisin's fast-scan IVF keeps one code per vector too (it packs blocks at
    search time), so its codes also come out as (size, code_size), where
    FAISS returns its packed blocks.
    """
    il = _invlists(invlists)
    l = check_int(l, "l", lo=0, hi=il.nlist - 1)
    return il.get_ids(l).copy(), il.get_codes(l).copy()


def get_invlist_sizes(invlists: Any) -> np.ndarray:
    """Size of every inverted list, int64 (nlist,)."""
    return np.asarray(_invlists(invlists).sizes, dtype=np.int64).copy()


def print_object_fields(obj: Any) -> None:
    """Print ``name = value`` for each public field of ``obj``."""
    names = sorted({n for n in vars(obj) if not n.startswith("_")} |
                   {n for n, v in vars(type(obj)).items()
                    if isinstance(v, property) and not n.startswith("_")})
    for name in names:
        print(f"{name} = {getattr(obj, name)!r}")


def get_pq_centroids(pq: Any) -> np.ndarray:
    """The centroids of a ProductQuantizer as an (M, ksub, dsub) array."""
    return np.asarray(pq.centroids, dtype=np.float32).reshape(pq.M, pq.ksub, pq.dsub).copy()


def get_LinearTransform_matrix(pca: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(A, b)`` of a linear transform (PCA, OPQ, random rotation...): y = A x + b."""
    A = np.asarray(pca.A, dtype=np.float32).reshape(pca.d_out, pca.d_in).copy()
    b = np.asarray(pca.b, dtype=np.float32).copy() if getattr(pca, "have_bias", True) \
        else np.zeros(0, dtype=np.float32)
    return A, b


def make_LinearTransform_matrix(A: Any, b: Any = None) -> Any:
    """A trained LinearTransform computing ``A x (+ b)``."""
    from ..transforms import LinearTransform
    A = np.ascontiguousarray(A, dtype=np.float32)
    if A.ndim != 2:
        raise ValueError(f"A: expected a 2-D (d_out, d_in) matrix, got shape {A.shape}")
    d_out, d_in = A.shape
    lt = LinearTransform(d_in, d_out, b is not None)
    lt.A = A.copy()
    if b is not None:
        b = np.ascontiguousarray(b, dtype=np.float32)
        if b.shape != (d_out,):
            raise ValueError(f"b: expected shape ({d_out},), got {b.shape}")
        lt.b = b.copy()
    lt.is_trained = True
    lt.check_orthonormal()  # FAISS's set_is_orthonormal: enables the exact reverse transform
    return lt


def get_additive_quantizer_codebooks(aq: Any) -> list[np.ndarray]:
    """The M codebooks of an additive quantizer (residual, local search...)."""
    for attr in ("codebooks", "codebook_offsets", "M", "d"):
        if not hasattr(aq, attr):
            raise TypeError(f"aq: expected an additive quantizer with {attr!r}, "
                            f"got {type(aq).__name__}")
    books = np.asarray(aq.codebooks, dtype=np.float32).reshape(-1, aq.d)
    offsets = np.asarray(aq.codebook_offsets, dtype=np.int64)
    return [books[offsets[i]:offsets[i + 1]].copy() for i in range(aq.M)]


def get_flat_data(index: Any) -> np.ndarray:
    """The (ntotal, d) float32 vectors of an IndexFlat."""
    from ..indexes.flat import IndexFlat
    if not isinstance(index, IndexFlat):
        raise TypeError(f"index: expected an IndexFlat, got {type(index).__name__}")
    return index.reconstruct_n(0, index.ntotal)


def get_flat_codes(index_flat: Any) -> np.ndarray:
    """The (ntotal, code_size) uint8 codes of a flat-codes index (Flat, PQ, SQ)."""
    from ..indexes.flat import IndexFlat
    if isinstance(index_flat, IndexFlat):
        return np.ascontiguousarray(get_flat_data(index_flat)).view(np.uint8)
    codes = getattr(index_flat, "codes", None)
    if codes is None or not hasattr(index_flat, "code_size"):
        raise TypeError(f"index_flat: expected a flat-codes index (IndexFlat, IndexPQ, "
                        f"IndexScalarQuantizer), got {type(index_flat).__name__}")
    n = index_flat.ntotal
    return np.array(np.asarray(codes)[:n], dtype=np.uint8).reshape(n, index_flat.code_size)


def get_NSG_neighbors(nsg: Any) -> np.ndarray:
    """The (N, K) neighbour table of an NSG graph (``get_final_graph()``)."""
    getter = getattr(nsg, "get_final_graph", None)
    if getter is None:
        raise TypeError(f"nsg: expected an NSG graph with get_final_graph(), got {type(nsg).__name__}")
    graph = getter()
    return np.array(np.asarray(graph.data).reshape(graph.N, graph.K), dtype=np.int32)
