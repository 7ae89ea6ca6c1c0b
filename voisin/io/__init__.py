"""Persistence: FAISS-compatible files, atomic writes, memory mapping, checksums.

>>> import numpy as np, voisin
>>> index = voisin.IndexFlatL2(4); index.add(np.eye(4))
>>> voisin.deserialize_index(voisin.serialize_index(index)).ntotal
4
"""

from .faiss_format import (IO_FLAG_MMAP, IO_FLAG_MMAP_IFC, IO_FLAG_READ_ONLY, deserialize_index,
                           read_index, register_reader, register_writer, serialize_index,
                           supported_tags, write_index)
from .stream import IndexFileError

__all__ = ["write_index", "read_index", "serialize_index", "deserialize_index", "IO_FLAG_MMAP",
           "IO_FLAG_MMAP_IFC", "IO_FLAG_READ_ONLY", "IndexFileError", "register_reader",
           "register_writer", "supported_tags"]
