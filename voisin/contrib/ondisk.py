"""Merge IVF shards into one index whose lists live in a file (``faiss.contrib.ondisk``).

``merge_ondisk(trained_index, shard_fnames, ivfdata_fname)`` gathers the
inverted lists of the shard files (opened memory-mapped, so their total
may exceed RAM) into ``ivfdata_fname``, list by list, and gives
``trained_index`` those lists as a private (copy-on-write) mapping of that
file. FAISS's ``OnDiskInvertedLists`` keep referring to the file when the
index is written; voisin writes the lists into the index file instead, and
``write_index(index, path, layout="voisin")`` then ``read_index(path,
IO_FLAG_MMAP)`` gives the same out-of-RAM serving.

Example:
    >>> import numpy as np, os, tempfile, voisin
    >>> from voisin.contrib.ondisk import merge_ondisk
    >>> d = tempfile.mkdtemp(); xb = np.random.default_rng(0).random((400, 8), dtype="float32")
    >>> trained = voisin.index_factory(8, "IVF4,Flat"); trained.train(xb)
    >>> names = []
    >>> for i in range(2):
    ...     shard = voisin.clone_index(trained); shard.add_with_ids(xb[i::2], np.arange(i, 400, 2))
    ...     names.append(os.path.join(d, f"shard{i}.index")); voisin.write_index(shard, names[-1])
    >>> merge_ondisk(trained, names, os.path.join(d, "merged.ivfdata"))
    >>> trained.ntotal
    400
"""

from __future__ import annotations

import logging
import mmap
import os
from typing import Any, Sequence

import numpy as np

LOG = logging.getLogger(__name__)

__all__ = ["merge_ondisk"]

_TAG = b"VSlb"  # voisin's mappable slab of inverted lists (io/formats/ivf.py)


def _write_merged(fname: str, ivfs: list, nlist: int, code_size: int, shift_ids: bool) -> int:
    """The shards' lists, list by list and shard by shard, in the slab layout;
    returns the number of entries."""
    from ..io.faiss_format import emit
    from ..io.stream import Writer
    sizes = np.zeros(nlist, dtype=np.int64)
    for ivf in ivfs:
        sizes += np.asarray(ivf.invlists.sizes, dtype=np.int64)
    shifts = np.zeros(len(ivfs), dtype=np.int64)
    if shift_ids:
        shifts[1:] = np.cumsum([ivf.ntotal for ivf in ivfs])[:-1]
    w = Writer("voisin")
    w.tag(_TAG)
    w.u64(nlist)
    w.u64(code_size)
    w.vector(sizes, np.int64)
    w.pad_to(64)
    for l in range(nlist):
        for ivf in ivfs:
            w.array(ivf.invlists.get_codes(l), np.uint8)  # views of the mapped shards
    w.pad_to(64)
    for l in range(nlist):
        for ivf, shift in zip(ivfs, shifts):
            ids = ivf.invlists.get_ids(l)
            if ids.size:
                w.array(ids + shift if shift else ids, np.int64)
    emit(w, fname)
    return int(sizes.sum())


def merge_ondisk(trained_index: Any, shard_fnames: Sequence[str], ivfdata_fname: str,
                 shift_ids: bool = False) -> None:
    """Add the contents of the index files ``shard_fnames`` to the empty,
    trained ``trained_index``; the merged lists are stored in ``ivfdata_fname``.

    With ``shift_ids`` the ids of shard i are shifted by the number of
    vectors in the shards before it (for shards built with sequential ids).
    """
    from ..index_tools import check_compatible_for_merge, extract_index_ivf, mergeable_ivf
    from ..io.faiss_format import IO_FLAG_MMAP, read_index
    from ..io.formats.ivf import read_slab
    from ..io.stream import IndexFileError, Reader
    index_ivf = mergeable_ivf(trained_index, "trained_index")
    if trained_index.ntotal != 0:
        raise ValueError(f"trained_index: must be empty, it holds {trained_index.ntotal} vectors")
    if isinstance(shard_fnames, (str, os.PathLike)):
        raise TypeError("shard_fnames: expected a list of file names, got a single name")
    ivfs = []
    for fname in shard_fnames:
        LOG.info("read %s", fname)
        shard_ivf = extract_index_ivf(read_index(fname, IO_FLAG_MMAP))
        check_compatible_for_merge(index_ivf, shard_ivf)
        ivfs.append(shard_ivf)
    nlist, code_size = index_ivf.nlist, index_ivf.invlists.code_size
    LOG.info("merge %d inverted lists", len(ivfs))
    ntotal = _write_merged(os.fspath(ivfdata_fname), ivfs, nlist, code_size, shift_ids)
    with open(ivfdata_fname, "rb") as fh:
        buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
    r = Reader(buf, mapped=True, source=os.fspath(ivfdata_fname))
    if r.tag("inverted lists tag") != _TAG:
        raise IndexFileError("not a merged inverted lists file", 0, r.source)
    invlists = read_slab(r, nlist, code_size, ntotal, "merged inverted lists")
    index_ivf._check_writable()
    with index_ivf._write_lock:
        index_ivf.invlists = invlists
        index_ivf.direct_map.invalidate()
        index_ivf.ntotal = invlists.ntotal
    trained_index.ntotal = ntotal
