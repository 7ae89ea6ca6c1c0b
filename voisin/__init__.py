"""voisin: vector similarity search with FAISS's API, in Python and numba.

>>> import numpy as np, voisin
>>> xb = np.random.rand(1000, 16).astype("float32")
>>> index = voisin.IndexFlatL2(16)
>>> index.add(xb)
>>> D, I = index.search(xb[:2], 3)
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__
from .index import Index
from .metric import METRIC_INNER_PRODUCT, METRIC_L2
from .selector import (IDSelector, IDSelectorAll, IDSelectorAnd, IDSelectorArray, IDSelectorBatch,
                       IDSelectorBitmap, IDSelectorFunction, IDSelectorNot, IDSelectorOr,
                       IDSelectorRange, IDSelectorXOr, SearchParameters)

# Everything below compiles or imports numba kernels: load it on first use,
# so that `import voisin` stays fast (numba alone takes ~0.4 s to import).
_LAZY = {
    "ClusteringParameters": ".clustering",
    "Kmeans": ".clustering",
    "kmeans_clustering": ".clustering",
    "ProductQuantizer": ".codecs.pq",
    "ScalarQuantizer": ".codecs.sq",
    "knn": ".exact",
    "pairwise_distances": ".exact",
    "FactoryError": ".factory",
    "index_factory": ".factory",
    "IndexIVFPQFastScan": ".indexes.fastscan",
    "IndexPQFastScan": ".indexes.fastscan",
    "IndexFlat": ".indexes.flat",
    "IndexFlatIP": ".indexes.flat",
    "IndexFlatL2": ".indexes.flat",
    "HNSW": ".indexes.hnsw",
    "IndexHNSW": ".indexes.hnsw",
    "IndexHNSWFlat": ".indexes.hnsw",
    "IndexHNSWSQ": ".indexes.hnsw",
    "SearchParametersHNSW": ".indexes.hnsw",
    "IndexIDMap": ".indexes.idmap",
    "IndexIDMap2": ".indexes.idmap",
    "IndexIVF": ".indexes.ivf",
    "IndexIVFFlat": ".indexes.ivf",
    "InvertedLists": ".indexes.ivf",
    "SearchParametersIVF": ".indexes.ivf",
    "IndexIVFScalarQuantizer": ".indexes.ivf_sq",
    "IndexIVFPQ": ".indexes.ivfpq",
    "IndexPQ": ".indexes.pq",
    "IndexPreTransform": ".indexes.pretransform",
    "IndexRefine": ".indexes.refine",
    "IndexRefineFlat": ".indexes.refine",
    "SearchParametersRefine": ".indexes.refine",
    "IndexScalarQuantizer": ".indexes.sq",
    "IO_FLAG_MMAP": ".io",
    "IO_FLAG_READ_ONLY": ".io",
    "IndexFileError": ".io",
    "deserialize_index": ".io",
    "read_index": ".io",
    "serialize_index": ".io",
    "write_index": ".io",
    "LinearTransform": ".transforms",
    "NormalizationTransform": ".transforms",
    "PCAMatrix": ".transforms",
    "RandomRotationMatrix": ".transforms",
    "VectorTransform": ".transforms",
    "OPQMatrix": ".transforms_opq",
    "TextEncoder": ".embed",
    "normalize_L2": ".utils",
    "omp_get_max_threads": ".utils",
    "omp_set_num_threads": ".utils",
}



# submodules reachable as attributes (voisin.io, voisin.datasets, ...)
_SUBMODULES = {"bench", "clustering", "codecs", "datasets", "embed", "evaluate", "exact", "factory",
               "indexes", "io", "kernels", "transforms", "transforms_opq", "utils"}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'voisin' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "write_index",
    "read_index",
    "serialize_index",
    "deserialize_index",
    "IO_FLAG_MMAP",
    "IO_FLAG_READ_ONLY",
    "IndexFileError",
    "ProductQuantizer",
    "IndexPQ",
    "IndexIVFPQ",
    "IndexPQFastScan",
    "IndexIVFPQFastScan",
    "OPQMatrix",
    "HNSW",
    "IndexHNSW",
    "IndexHNSWFlat",
    "IndexHNSWSQ",
    "SearchParametersHNSW",
    "__version__",
    "Index",
    "IndexFlat",
    "IndexFlatL2",
    "IndexFlatIP",
    "IndexIDMap",
    "IndexIDMap2",
    "METRIC_L2",
    "METRIC_INNER_PRODUCT",
    "SearchParameters",
    "IDSelector",
    "IDSelectorAll",
    "IDSelectorRange",
    "IDSelectorBatch",
    "IDSelectorArray",
    "IDSelectorBitmap",
    "IDSelectorNot",
    "IDSelectorAnd",
    "IDSelectorOr",
    "IDSelectorXOr",
    "IDSelectorFunction",
    "knn",
    "pairwise_distances",
    "Kmeans",
    "ClusteringParameters",
    "kmeans_clustering",
    "IndexIVF",
    "IndexIVFFlat",
    "InvertedLists",
    "SearchParametersIVF",
    "ScalarQuantizer",
    "IndexScalarQuantizer",
    "IndexIVFScalarQuantizer",
    "IndexPreTransform",
    "IndexRefine",
    "IndexRefineFlat",
    "SearchParametersRefine",
    "VectorTransform",
    "LinearTransform",
    "PCAMatrix",
    "NormalizationTransform",
    "RandomRotationMatrix",
    "index_factory",
    "FactoryError",
    "normalize_L2",
    "omp_set_num_threads",
    "omp_get_max_threads",
]
