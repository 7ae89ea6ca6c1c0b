"""One interface over voisin and its peers, so the runner times them all the same way.

An adapter builds its index from float32 vectors (already L2-normalised for
angular data, and then searched by inner product), sets query knobs by name,
and answers ``search_batch(xq, k)`` (all queries, one call) and
``search_one(q, k)`` (one (1, d) query through the library's Python API).
Ids come back as int64 with -1 for a missing result.

A peer library is imported only when an adapter for it is created, so a
missing one is skipped with a message instead of breaking the run.
"""

from __future__ import annotations

import importlib.util
import sys
from importlib import metadata
from typing import Any

import numpy as np

from ..metric import METRIC_INNER_PRODUCT, METRIC_L2
from .spec import IndexSpec

#: import name of each library (the spec's LIB) and its distribution name
MODULES = {"voisin": ("voisin", "voisin"), "faiss": ("faiss", "faiss-cpu"), "hnswlib": ("hnswlib", "hnswlib"),
           "pynndescent": ("pynndescent", "pynndescent"), "usearch": ("usearch", "usearch"),
           "scann": ("scann", "scann"), "ngt": ("ngtpy", "ngt"), "voyager": ("voyager", "voyager")}


class LibraryMissing(RuntimeError):
    """The library a spec names is not installed."""


def is_installed(library: str) -> bool:
    return importlib.util.find_spec(MODULES[library][0]) is not None


def library_version(library: str) -> str | None:
    try:
        return metadata.version(MODULES[library][1])
    except metadata.PackageNotFoundError:
        return None


def numpy_nbytes(obj: Any, _seen: set | None = None, _depth: int = 0) -> int:
    """Bytes held by the numpy arrays reachable from ``obj`` (attributes, lists, dicts).

    Arrays sharing a buffer count once. Used for indexes without their own
    size report (voisin, pynndescent): the arrays are where the memory is.
    """
    seen = set() if _seen is None else _seen
    if _depth > 12 or id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        base = obj
        while isinstance(base.base, np.ndarray):
            base = base.base
        key = ("buf", base.__array_interface__["data"][0], base.nbytes)
        if key in seen:
            return 0
        seen.add(key)
        return int(base.nbytes)
    if isinstance(obj, (str, bytes, int, float, bool, type(None), type)) or callable(obj) and not hasattr(obj, "__dict__"):
        return 0
    if isinstance(obj, dict):
        return sum(numpy_nbytes(v, seen, _depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return sum(numpy_nbytes(v, seen, _depth + 1) for v in obj)
    total = 0
    d = getattr(obj, "__dict__", None)
    if isinstance(d, dict) and type(obj).__module__.split(".")[0] not in ("builtins", "numba", "threading"):
        total += numpy_nbytes(d, seen, _depth + 1)
    for slot in getattr(type(obj), "__slots__", ()):
        if hasattr(obj, slot):
            total += numpy_nbytes(getattr(obj, slot), seen, _depth + 1)
    return total


class Adapter:
    """Common interface; subclasses wrap one library.

    Example:
        >>> import numpy as np
        >>> from voisin.bench.spec import parse_spec
        >>> a = make_adapter(parse_spec("voisin:Flat"), 8, METRIC_L2)
        >>> a.build(np.random.rand(100, 8).astype("float32"))
        >>> a.search_batch(np.random.rand(3, 8).astype("float32"), 5).shape
        (3, 5)
    """

    library = ""

    def __init__(self, spec: IndexSpec, d: int, metric: int):
        if metric not in (METRIC_L2, METRIC_INNER_PRODUCT):
            raise ValueError(f"metric: expected METRIC_L2 or METRIC_INNER_PRODUCT, got {metric!r}")
        self.spec = spec
        self.d = int(d)
        self.metric = metric
        self.threads = 1
        self.ntotal = 0

    @property
    def version(self) -> str | None:
        return library_version(self.library)

    def set_threads(self, n: int) -> None:
        """Threads for the next calls (pool-wide limits are set by :func:`thread_limit`)."""
        self.threads = int(n)

    def build(self, xb: np.ndarray) -> None:
        raise NotImplementedError

    def set_query_param(self, name: str, value: Any) -> None:
        raise ValueError(f"{self.spec.label}: no query parameter {name!r}")

    def search_batch(self, xq: np.ndarray, k: int) -> np.ndarray:
        raise NotImplementedError

    def search_one(self, q: np.ndarray, k: int) -> np.ndarray:
        """Ids of the ``k`` neighbours of one query ``q`` of shape (1, d), as a (k,) array."""
        return self.search_batch(q, k)[0]

    def memory_bytes(self) -> tuple[int | None, str]:
        """``(bytes, how they were measured)`` for the built index."""
        return None, "unknown"


# --- voisin ------------------------------------------------------------------------

def set_index_param(index: Any, name: str, value: Any) -> None:
    """Set a build or query parameter on a voisin index: :class:`voisin.ParameterSpace`, which
    walks IDMap, PreTransform, Refine and IVF quantizers as FAISS does."""
    from ..params import ParameterError, ParameterSpace
    try:
        ParameterSpace().set_index_parameter(index, name, value)
    except ParameterError as exc:
        raise ValueError(f"parameter {name!r}: {exc}") from None


class VoisinAdapter(Adapter):
    library = "voisin"

    def _make(self):
        import voisin
        factory = getattr(voisin, "index_factory", None)
        if factory is not None:
            return factory(self.d, self.spec.description, self.metric)
        if self.spec.description == "Flat":
            return voisin.IndexFlat(self.d, self.metric)
        raise ValueError(f"{self.spec.label}: voisin.index_factory is not available in this build; "
                         "only 'voisin:Flat' can be benchmarked")

    @property
    def version(self) -> str | None:
        import voisin
        return voisin.__version__

    def build(self, xb: np.ndarray) -> None:
        index = self._make()
        for name, value in self.spec.build_params.items():
            set_index_param(index, name, value)
        if not index.is_trained:
            index.train(xb)
        index.add(xb)
        self.index = index
        self.ntotal = xb.shape[0]

    def set_query_param(self, name: str, value: Any) -> None:
        set_index_param(self.index, name, value)

    def search_batch(self, xq: np.ndarray, k: int) -> np.ndarray:
        return self.index.search(xq, k)[1]

    def search_one(self, q: np.ndarray, k: int) -> np.ndarray:
        return self.index.search(q, k)[1][0]

    def memory_bytes(self) -> tuple[int | None, str]:
        return numpy_nbytes(self.index), "numpy arrays held by the index"


# --- faiss -------------------------------------------------------------------------

class FaissAdapter(Adapter):
    library = "faiss"

    def __init__(self, spec: IndexSpec, d: int, metric: int):
        super().__init__(spec, d, metric)
        import faiss
        self.faiss = faiss

    def _set_build_param(self, index, name: str, value: Any) -> None:
        faiss = self.faiss
        obj = faiss.downcast_index(index)
        seen = 0
        while obj is not None and seen < 8:
            seen += 1
            hnsw = getattr(obj, "hnsw", None)
            if hnsw is not None and hasattr(hnsw, name):
                setattr(hnsw, name, value)
                return
            if hasattr(obj, name) and not callable(getattr(obj, name)):
                setattr(obj, name, value)
                return
            inner = getattr(obj, "index", None) or getattr(obj, "base_index", None)
            obj = faiss.downcast_index(inner) if inner is not None else None
        try:
            faiss.ParameterSpace().set_index_parameter(index, name, float(value))
        except RuntimeError as exc:
            raise ValueError(f"{self.spec.label}: cannot set build parameter {name}={value}: {exc}") from None

    def build(self, xb: np.ndarray) -> None:
        faiss = self.faiss
        metric = faiss.METRIC_INNER_PRODUCT if self.metric == METRIC_INNER_PRODUCT else faiss.METRIC_L2
        index = faiss.index_factory(self.d, self.spec.description, metric)
        for name, value in self.spec.build_params.items():
            self._set_build_param(index, name, value)
        if not index.is_trained:
            index.train(xb)
        index.add(xb)
        self.index = index
        self.ntotal = xb.shape[0]

    def set_query_param(self, name: str, value: Any) -> None:
        # ParameterSpace's "k_factor" is IndexIVFPQR's; an IndexRefine (RFlat,
        # Refine(...)) takes its re-rank factor as "k_factor_rf"
        if name == "k_factor" and isinstance(self.faiss.downcast_index(self.index), self.faiss.IndexRefine):
            name = "k_factor_rf"
        if name == "search_L":
            # faiss's ParameterSpace has no knob for its NSG / NN-Descent indexes
            inner = self.faiss.downcast_index(self.index)
            knobs = getattr(inner, "nsg", None) or getattr(inner, "nndescent", None)
            if knobs is None:
                raise ValueError(f"{self.spec.label}: search_L is a knob of NSG / NN-Descent indexes")
            knobs.search_L = int(value)
            return
        try:
            self.faiss.ParameterSpace().set_index_parameter(self.index, name, float(value))
        except RuntimeError as exc:
            raise ValueError(f"{self.spec.label}: cannot set query parameter {name}={value}: {exc}") from None

    def search_batch(self, xq: np.ndarray, k: int) -> np.ndarray:
        return self.index.search(xq, k)[1]

    def search_one(self, q: np.ndarray, k: int) -> np.ndarray:
        return self.index.search(q, k)[1][0]

    def memory_bytes(self) -> tuple[int | None, str]:
        return int(self.faiss.serialize_index(self.index).nbytes), "faiss.serialize_index size"


# --- hnswlib -----------------------------------------------------------------------

class HnswlibAdapter(Adapter):
    library = "hnswlib"
    _BUILD = {"M": "M", "efConstruction": "ef_construction", "ef_construction": "ef_construction",
              "random_seed": "random_seed", "allow_replace_deleted": "allow_replace_deleted"}

    def build(self, xb: np.ndarray) -> None:
        import hnswlib
        kwargs: dict[str, Any] = {"M": 16, "ef_construction": 200, "random_seed": 100}
        for name, value in self.spec.build_params.items():
            if name not in self._BUILD:
                raise ValueError(f"{self.spec.label}: unknown hnswlib build parameter {name!r} "
                                 f"(known: {', '.join(sorted(self._BUILD))})")
            kwargs[self._BUILD[name]] = value
        index = hnswlib.Index(space="ip" if self.metric == METRIC_INNER_PRODUCT else "l2", dim=self.d)
        index.init_index(max_elements=xb.shape[0], **kwargs)
        index.add_items(xb, np.arange(xb.shape[0]), num_threads=max(1, self.threads))
        self.index = index
        self.ntotal = xb.shape[0]

    def set_query_param(self, name: str, value: Any) -> None:
        if name != "ef":
            raise ValueError(f"{self.spec.label}: hnswlib's only query parameter is 'ef', got {name!r}")
        self.index.set_ef(int(value))

    def search_batch(self, xq: np.ndarray, k: int) -> np.ndarray:
        labels, _ = self.index.knn_query(xq, k=k, num_threads=self.threads)
        return labels.astype(np.int64)

    def search_one(self, q: np.ndarray, k: int) -> np.ndarray:
        labels, _ = self.index.knn_query(q, k=k, num_threads=1)
        return labels[0].astype(np.int64)

    def memory_bytes(self) -> tuple[int | None, str]:
        return int(self.index.index_file_size()), "hnswlib index_file_size()"


# --- usearch -----------------------------------------------------------------------

class UsearchAdapter(Adapter):
    library = "usearch"
    _BUILD = ("connectivity", "expansion_add", "dtype", "multi")

    def build(self, xb: np.ndarray) -> None:
        from usearch.index import Index
        kwargs: dict[str, Any] = {"dtype": "f32"}
        for name, value in self.spec.build_params.items():
            if name not in self._BUILD:
                raise ValueError(f"{self.spec.label}: unknown usearch build parameter {name!r} "
                                 f"(known: {', '.join(self._BUILD)})")
            kwargs[name] = value
        index = Index(ndim=self.d, metric="ip" if self.metric == METRIC_INNER_PRODUCT else "l2sq", **kwargs)
        index.add(np.arange(xb.shape[0]), xb, threads=max(1, self.threads))
        self.index = index
        self.ntotal = xb.shape[0]

    def set_query_param(self, name: str, value: Any) -> None:
        if name != "expansion_search":
            raise ValueError(f"{self.spec.label}: usearch's query parameter is 'expansion_search', got {name!r}")
        self.index.expansion_search = int(value)

    def search_batch(self, xq: np.ndarray, k: int) -> np.ndarray:
        m = self.index.search(xq, k, threads=self.threads)
        ids = m.keys.astype(np.int64)
        ids[np.arange(k)[None, :] >= np.asarray(m.counts)[:, None]] = -1
        return ids

    def search_one(self, q: np.ndarray, k: int) -> np.ndarray:
        m = self.index.search(q[0], k, threads=1)
        ids = np.full(k, -1, dtype=np.int64)
        keys = m.keys
        ids[:len(keys)] = keys
        return ids

    def memory_bytes(self) -> tuple[int | None, str]:
        return int(self.index.serialized_length), "usearch serialized_length"


# --- pynndescent -------------------------------------------------------------------

class PynndescentAdapter(Adapter):
    library = "pynndescent"

    def __init__(self, spec: IndexSpec, d: int, metric: int):
        super().__init__(spec, d, metric)
        self.epsilon = 0.1

    def build(self, xb: np.ndarray) -> None:
        from pynndescent import NNDescent
        kwargs: dict[str, Any] = {"n_neighbors": 30, "random_state": 0, "parallel_batch_queries": True}
        kwargs.update(self.spec.build_params)
        index = NNDescent(xb, metric="dot" if self.metric == METRIC_INNER_PRODUCT else "euclidean", **kwargs)
        index.prepare()  # builds the search graph now, so the first query does not pay for it
        self.index = index
        self.ntotal = xb.shape[0]

    def set_query_param(self, name: str, value: Any) -> None:
        if name != "epsilon":
            raise ValueError(f"{self.spec.label}: pynndescent's query parameter is 'epsilon', got {name!r}")
        self.epsilon = float(value)

    def search_batch(self, xq: np.ndarray, k: int) -> np.ndarray:
        ids, _ = self.index.query(xq, k=k, epsilon=self.epsilon)
        return ids.astype(np.int64)

    def memory_bytes(self) -> tuple[int | None, str]:
        return numpy_nbytes(self.index), "numpy arrays held by the index"


# The stronger peers live in their own modules, which import Adapter from here.
from .ngt_adapter import NgtAdapter  # noqa: E402
from .scann_adapter import ScannAdapter  # noqa: E402
from .voyager_adapter import VoyagerAdapter  # noqa: E402

ADAPTERS: dict[str, type[Adapter]] = {"voisin": VoisinAdapter, "faiss": FaissAdapter, "hnswlib": HnswlibAdapter,
                                      "usearch": UsearchAdapter, "pynndescent": PynndescentAdapter,
                                      "scann": ScannAdapter, "ngt": NgtAdapter, "voyager": VoyagerAdapter}


def make_adapter(spec: IndexSpec, d: int, metric: int) -> Adapter:
    """The adapter for ``spec``; raises :class:`LibraryMissing` when its library is not installed."""
    if not is_installed(spec.library):
        raise LibraryMissing(f"{spec.label}: skipped, {MODULES[spec.library][1]} is not installed "
                             f"(pip install {MODULES[spec.library][1]})")
    return ADAPTERS[spec.library](spec, d, metric)


def uses_numba(library: str) -> bool:
    """Libraries whose first calls compile code (their JIT time is reported apart)."""
    return library in ("voisin", "pynndescent")


def loaded(library: str) -> bool:
    return MODULES[library][0] in sys.modules
