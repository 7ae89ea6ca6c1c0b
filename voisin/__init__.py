"""voisin: vector similarity search with FAISS's API, in Python and numba.

>>> import numpy as np, voisin
>>> xb = np.random.rand(1000, 16).astype("float32")
>>> index = voisin.IndexFlatL2(16)
>>> index.add(xb)
>>> D, I = index.search(xb[:2], 3)
"""

from ._version import __version__
from .clustering import ClusteringParameters, Kmeans, kmeans_clustering
from .exact import knn, pairwise_distances
from .factory import FactoryError, index_factory
from .index import Index
from .io import (IO_FLAG_MMAP, IO_FLAG_READ_ONLY, IndexFileError, deserialize_index, read_index,
                 serialize_index, write_index)
from .indexes.flat import IndexFlat, IndexFlatIP, IndexFlatL2
from .indexes.idmap import IndexIDMap, IndexIDMap2
from .indexes.hnsw import HNSW, IndexHNSW, IndexHNSWFlat, IndexHNSWSQ, SearchParametersHNSW
from .codecs.pq import ProductQuantizer
from .indexes.pq import IndexPQ
from .indexes.ivfpq import IndexIVFPQ
from .indexes.fastscan import IndexIVFPQFastScan, IndexPQFastScan
from .transforms_opq import OPQMatrix
from .codecs.sq import ScalarQuantizer
from .indexes.ivf import IndexIVF, IndexIVFFlat, InvertedLists, SearchParametersIVF
from .indexes.ivf_sq import IndexIVFScalarQuantizer
from .indexes.pretransform import IndexPreTransform
from .indexes.refine import IndexRefine, IndexRefineFlat, SearchParametersRefine
from .indexes.sq import IndexScalarQuantizer
from .metric import METRIC_INNER_PRODUCT, METRIC_L2
from .transforms import (LinearTransform, NormalizationTransform, PCAMatrix, RandomRotationMatrix,
                         VectorTransform)
from .selector import (IDSelector, IDSelectorAll, IDSelectorAnd, IDSelectorArray, IDSelectorBatch,
                       IDSelectorBitmap, IDSelectorFunction, IDSelectorNot, IDSelectorOr,
                       IDSelectorRange, IDSelectorXOr, SearchParameters)
from .utils import normalize_L2, omp_get_max_threads, omp_set_num_threads

__all__ = [
    "write_index", "read_index", "serialize_index", "deserialize_index", "IO_FLAG_MMAP",
    "IO_FLAG_READ_ONLY", "IndexFileError",
    "ProductQuantizer", "IndexPQ", "IndexIVFPQ", "IndexPQFastScan", "IndexIVFPQFastScan", "OPQMatrix",
    "HNSW", "IndexHNSW", "IndexHNSWFlat", "IndexHNSWSQ", "SearchParametersHNSW",
    "__version__", "Index", "IndexFlat", "IndexFlatL2", "IndexFlatIP", "IndexIDMap", "IndexIDMap2",
    "METRIC_L2", "METRIC_INNER_PRODUCT", "SearchParameters", "IDSelector", "IDSelectorAll",
    "IDSelectorRange", "IDSelectorBatch", "IDSelectorArray", "IDSelectorBitmap", "IDSelectorNot",
    "IDSelectorAnd", "IDSelectorOr", "IDSelectorXOr", "IDSelectorFunction", "knn",
    "pairwise_distances", "Kmeans", "ClusteringParameters", "kmeans_clustering", "IndexIVF", "IndexIVFFlat", "InvertedLists", "SearchParametersIVF", "ScalarQuantizer", "IndexScalarQuantizer", "IndexIVFScalarQuantizer", "IndexPreTransform", "IndexRefine", "IndexRefineFlat", "SearchParametersRefine", "VectorTransform", "LinearTransform", "PCAMatrix", "NormalizationTransform", "RandomRotationMatrix", "index_factory", "FactoryError", "normalize_L2", "omp_set_num_threads", "omp_get_max_threads",
]
