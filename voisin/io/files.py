"""An index file chosen by its name: ``.pkl`` is a Python pickle, anything else FAISS's format.

Both are written through :func:`voisin.io.atomic.atomic_write` (temporary
file, fsync, rename), so a crash never leaves a torn index behind. A pickle
works for every voisin index but only voisin reads it, and unpickling runs
code: load only pickles you trust.

>>> import numpy as np, os, tempfile, voisin
>>> from voisin.io.files import load_index, save_index
>>> index = voisin.IndexFlatL2(4); index.add(np.eye(4, dtype="float32"))
>>> path = os.path.join(tempfile.mkdtemp(), "flat.pkl")
>>> save_index(index, path); load_index(path).ntotal
4
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

from .atomic import atomic_write

PICKLE_SUFFIX = ".pkl"


def is_pickle(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() == PICKLE_SUFFIX


def save_index(index: Any, path: str | os.PathLike) -> None:
    """Write ``index`` to ``path`` atomically: pickle for ``.pkl``, else ``write_index``.

    Raises ValueError naming the path when the index has no FAISS format
    (a ``.pkl`` name saves any index).
    """
    if is_pickle(path):
        atomic_write(path, lambda f: pickle.dump(index, f, protocol=pickle.HIGHEST_PROTOCOL))
        return
    from .faiss_format import write_index
    try:
        write_index(index, os.fspath(path))
    except (ValueError, TypeError, NotImplementedError) as exc:
        raise ValueError(f"{path}: cannot write {type(index).__name__} in FAISS format ({exc}); "
                         f"a name ending in {PICKLE_SUFFIX} saves it with Python pickle") from None


def load_index(path: str | os.PathLike, mmap: bool = False) -> Any:
    """An index from a FAISS-format file (``mmap``: map it instead of reading it) or a ``.pkl``.

    Raises FileNotFoundError, or ValueError saying why the file is not an index.
    """
    from ..index import Index
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    if is_pickle(p):
        if mmap:
            raise ValueError(f"{p} is a pickle; only FAISS-format files can be memory-mapped")
        with open(p, "rb") as f:
            try:
                index = pickle.load(f)
            except Exception as exc:  # any unpickling failure means "not our file"
                raise ValueError(f"{p}: not a voisin pickle file ({exc})") from None
        if not isinstance(index, Index):
            raise ValueError(f"{p}: holds a {type(index).__name__}, not a voisin index")
        return index
    from .faiss_format import read_index
    try:
        return read_index(str(p), mmap=True) if mmap else read_index(str(p))
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{p}: cannot read index: {exc}") from None
