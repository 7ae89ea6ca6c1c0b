"""Persistence: FAISS-compatible files, atomic writes, memory mapping, checksums.

>>> import numpy as np, voisin
>>> index = voisin.IndexFlatL2(4); index.add(np.eye(4))
>>> voisin.deserialize_index(voisin.serialize_index(index)).ntotal
4
"""

from .binary import (deserialize_index_binary, read_index_binary, serialize_index_binary,
                     write_index_binary)
from .codec_io import (read_InvertedLists, read_ProductQuantizer, read_ScalarQuantizer,
                       read_VectorTransform, write_InvertedLists, write_ProductQuantizer,
                       write_ScalarQuantizer, write_VectorTransform)
from .faiss_format import (IO_FLAG_MMAP, IO_FLAG_MMAP_IFC, IO_FLAG_READ_ONLY, IO_FLAG_SKIP_STORAGE,
                           deserialize_index, read_index, register_reader, register_writer,
                           serialize_index, supported_tags, write_index)
from .ioreaders import (BufferedIOReader, BufferedIOWriter, FileIOReader, FileIOWriter, IOReader,
                        IOWriter, PyCallbackIOReader, PyCallbackIOWriter, VectorIOReader,
                        VectorIOWriter)
from .stream import IndexFileError

__all__ = ["write_index", "read_index", "serialize_index", "deserialize_index", "IO_FLAG_MMAP",
           "IO_FLAG_MMAP_IFC", "IO_FLAG_READ_ONLY", "IO_FLAG_SKIP_STORAGE", "IndexFileError",
           "register_reader", "register_writer", "supported_tags",
           "IOReader", "IOWriter", "VectorIOReader", "VectorIOWriter", "PyCallbackIOReader",
           "PyCallbackIOWriter", "BufferedIOReader", "BufferedIOWriter", "FileIOReader",
           "FileIOWriter", "write_ProductQuantizer", "read_ProductQuantizer",
           "write_ScalarQuantizer", "read_ScalarQuantizer", "write_VectorTransform",
           "read_VectorTransform", "write_InvertedLists", "read_InvertedLists",
           "write_index_binary", "read_index_binary", "serialize_index_binary",
           "deserialize_index_binary"]
