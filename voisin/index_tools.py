"""FAISS's index helpers: ``clone_index``, ``downcast_index``,
``extract_index_ivf`` / ``try_extract_index_ivf``, ``search_and_reconstruct``
and ``merge_into``.

Example:
    >>> import numpy as np, voisin
    >>> xb = np.random.default_rng(0).random((500, 8), dtype="float32")
    >>> index = voisin.index_factory(8, "PCA8,IVF4,Flat")
    >>> index.train(xb); index.add(xb)
    >>> voisin.extract_index_ivf(index).nprobe = 4
    >>> voisin.clone_index(index).ntotal
    500
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np

from .index import Index


def _check_index(index: Any, name: str = "index") -> Index:
    if not isinstance(index, Index):
        raise TypeError(f"{name}: expected a voisin Index, got {type(index).__name__}")
    return index


def clone_index(index: Any) -> Index:
    """A deep, independent copy of ``index`` (FAISS's ``clone_index``).

    The copy goes through the index's serialized bytes, so it holds its own
    arrays even when ``index`` was memory-mapped or opened read-only, and
    keeps the search knobs the file format cannot hold.
    """
    return pickle.loads(pickle.dumps(_check_index(index), protocol=pickle.HIGHEST_PROTOCOL))


def downcast_index(index: Any) -> Index:
    """FAISS returns the most derived class here; a voisin index already is one."""
    return _check_index(index)


def downcast_VectorTransform(vt: Any) -> Any:
    """As :func:`downcast_index`, for vector transforms (identity in voisin)."""
    for attr in ("d_in", "d_out", "apply"):
        if not hasattr(vt, attr):
            raise TypeError(f"vt: expected a vector transform, got {type(vt).__name__}")
    return vt


def downcast_InvertedLists(invlists: Any) -> Any:
    """As :func:`downcast_index`, for inverted lists (identity in voisin)."""
    from .indexes.invlists import InvertedLists
    if not isinstance(invlists, InvertedLists):
        raise TypeError(f"invlists: expected InvertedLists, got {type(invlists).__name__}")
    return invlists


def downcast_AdditiveQuantizer(aq: Any) -> Any:
    """As :func:`downcast_index`, for additive quantizers (identity in voisin):
    FAISS code reaches a ProductResidualQuantizer's sub-quantizers this way."""
    from .codecs.additive import AdditiveQuantizer
    if not isinstance(aq, AdditiveQuantizer):
        raise TypeError(f"aq: expected an AdditiveQuantizer, got {type(aq).__name__}")
    return aq


downcast_Quantizer = downcast_AdditiveQuantizer


def _inner(index: Index) -> Index | None:
    """The index a wrapper forwards to (pre-transform, id map, refine), or None."""
    from .indexes.idmap import IndexIDMap
    from .indexes.pretransform import IndexPreTransform
    from .indexes.refine import IndexRefine
    if isinstance(index, (IndexPreTransform, IndexIDMap)):
        return index.index
    if isinstance(index, IndexRefine):
        return index.base_index
    return None


def try_extract_index_ivf(index: Any) -> Any:
    """The IVF index inside ``index`` (through IndexPreTransform, IndexIDMap(2)
    and IndexRefine wrappers), or None when there is none."""
    from .indexes.ivf import IndexIVF
    current: Index | None = _check_index(index)
    # FAISS looks through each wrapper kind once; a loop also finds an IVF
    # under a wrapper nested twice, and cannot cycle (wrappers own their index)
    for _ in range(64):
        if current is None or isinstance(current, IndexIVF):
            return current
        current = _inner(current)
    return None


def extract_index_ivf(index: Any) -> Any:
    """As :func:`try_extract_index_ivf`, but raise when ``index`` holds no IVF
    (``faiss.extract_index_ivf(index).nprobe = 16`` is the common use)."""
    ivf = try_extract_index_ivf(index)
    if ivf is None:
        raise TypeError(f"index: {type(index).__name__} is not an IVF index and wraps none "
                        "(expected IndexIVF*, possibly inside IndexPreTransform, IndexIDMap "
                        "or IndexRefine)")
    return ivf


def search_and_reconstruct(index: Any, x: Any, k: int, params: Any = None
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``index.search_and_reconstruct(x, k, params)``: results and their vectors."""
    return _check_index(index).search_and_reconstruct(x, k, params)


# --------------------------------------------------------------------------
# merge_into
# --------------------------------------------------------------------------

def _same_chain(a: Index, b: Index) -> bool:
    """Whether two pre-transform chains transform vectors identically (same bytes on file)."""
    from .indexes.pretransform import IndexPreTransform
    from .io.codec_io import transform_bytes
    if isinstance(a, IndexPreTransform) != isinstance(b, IndexPreTransform):
        return False
    if not isinstance(a, IndexPreTransform):
        return True
    assert isinstance(b, IndexPreTransform)
    return len(a.chain) == len(b.chain) and all(
        transform_bytes(s) == transform_bytes(t) for s, t in zip(a.chain, b.chain))


def check_compatible_for_merge(ivf0: Any, ivf1: Any) -> None:
    """FAISS's ``check_compatible_for_merge``, plus the codec, which FAISS leaves to the caller."""
    if type(ivf0) is not type(ivf1):
        raise TypeError(f"index1: can only merge indexes of the same type, got "
                        f"{type(ivf0).__name__} and {type(ivf1).__name__}")
    for field in ("d", "nlist", "code_size", "metric_type"):
        if getattr(ivf0, field) != getattr(ivf1, field):
            raise ValueError(f"index1: {field}={getattr(ivf1, field)} differs from index0's "
                             f"{getattr(ivf0, field)}")
    if getattr(ivf0, "by_residual", False) != getattr(ivf1, "by_residual", False):
        raise ValueError("index1: by_residual differs from index0's")
    if not (ivf0.is_trained and ivf1.is_trained):
        raise RuntimeError("index0, index1: both indexes must be trained before merging")
    q0 = ivf0.quantizer.reconstruct_n(0, ivf0.quantizer.ntotal)
    q1 = ivf1.quantizer.reconstruct_n(0, ivf1.quantizer.ntotal)
    if q0.shape != q1.shape or not np.array_equal(q0, q1):
        raise ValueError("index1: its coarse quantizer differs from index0's (the lists would "
                         "not mean the same cells)")
    for codec, field in (("pq", "centroids"), ("sq", "trained")):
        c0, c1 = getattr(ivf0, codec, None), getattr(ivf1, codec, None)
        if c0 is not None and not np.array_equal(getattr(c0, field), getattr(c1, field)):
            raise ValueError(f"index1: its {codec} codec differs from index0's (the codes "
                             "would decode to other vectors)")


def mergeable_ivf(index: Any, name: str) -> Any:
    """The IVF index that a merge fills: ``index`` itself or the one inside an
    IndexPreTransform (an id map or a refine index would need their own parts merged)."""
    from .indexes.ivf import IndexIVF
    from .indexes.pretransform import IndexPreTransform
    inner = index.index if isinstance(index, IndexPreTransform) else index
    if not isinstance(inner, IndexIVF):
        raise TypeError(f"{name}: expected an IVF index or an IndexPreTransform around one, "
                        f"got {type(index).__name__}")
    return inner


def merge_into(index0: Any, index1: Any, shift_ids: bool) -> None:
    """Move every vector of ``index1`` into ``index0`` (FAISS's ``merge_into``).

    Both are IVF indexes (or IVF indexes inside an IndexPreTransform) trained
    identically: same coarse centroids and codec. With ``shift_ids`` the ids
    of ``index1`` are shifted by ``index0.ntotal``, as for sequentially built
    shards. ``index1`` is empty afterwards.
    """
    _check_index(index0, "index0")
    _check_index(index1, "index1")
    if index0 is index1:
        raise ValueError("index1: cannot merge an index into itself")
    ivf0, ivf1 = mergeable_ivf(index0, "index0"), mergeable_ivf(index1, "index1")
    from .indexes.ivf_dedup import IndexIVFFlatDedup
    for ivf, name in ((ivf0, "index0"), (ivf1, "index1")):
        if isinstance(ivf, IndexIVFFlatDedup):
            # moving the lists would leave the duplicates (and FAISS's ntotal)
            # behind, and copies of one vector in both indexes stored twice
            raise TypeError(f"{name}: an IndexIVFFlatDedup cannot be merged; add its vectors "
                            "to the other index instead")
    check_compatible_for_merge(ivf0, ivf1)
    if not _same_chain(index0, index1):
        raise ValueError("index1: its pre-transform differs from index0's")
    for ix in (index0, index1, ivf0, ivf1):
        ix._check_writable()
    # the Index contract's writer lock: a merge is a write to both indexes
    with ivf0._write_lock, ivf1._write_lock:
        add_id = ivf0.ntotal if shift_ids else 0
        il = ivf1.invlists
        rows, lists = il.used_rows()
        if rows.size:
            ids = il.ids[rows] + np.int64(add_id)
            ivf0.invlists.add_entries(lists, il.codes[rows], ids)
            ivf0.direct_map.invalidate()
            ivf0.ntotal = ivf0.invlists.ntotal
        ivf1.reset()
    index0.ntotal = ivf0.ntotal
    index1.ntotal = ivf1.ntotal


def _check_binary(index: Any) -> Any:
    from .indexes.binary import check_binary_index
    return check_binary_index(index)


def downcast_IndexBinary(index: Any) -> Any:
    """FAISS's downcast for binary indexes; a voisin binary index already is its class."""
    return _check_binary(index)


def clone_binary_index(index: Any) -> Any:
    """A deep, independent copy of a binary index (FAISS's ``clone_binary_index``)."""
    return pickle.loads(pickle.dumps(_check_binary(index), protocol=pickle.HIGHEST_PROTOCOL))
