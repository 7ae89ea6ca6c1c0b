"""Google's ScaNN in the benchmark harness, built as ann-benchmarks builds it.

The searcher is ``builder(xb, num_neighbors, distance).tree(num_leaves,
num_leaves_to_search, training_sample_size, spherical, quantize_centroids)
.score_ah(dims_per_block, anisotropic_quantization_threshold).reorder(reorder_k)``:
a k-means tree of partitions, anisotropic 4-bit PQ scoring inside the
partitions, then an exact re-rank of the best ``reorder`` candidates. Query
knobs: ``leaves_to_search`` (partitions probed) and ``reorder`` (candidates
re-ranked exactly); ann-benchmarks sweeps them in pairs
(``leaves_to_search+reorder=1:30,8:30,...``).
"""

from __future__ import annotations

import math
import os
import tempfile
from typing import Any

import numpy as np

from ..metric import METRIC_INNER_PRODUCT
from .adapters import Adapter


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError(f"{name}: expected true or false, got {value!r}")


class ScannAdapter(Adapter):
    """``scann:num_leaves=2000 anisotropic_quantization_threshold=0.2 dims_per_block=2``.

    Example (``make_adapter`` picks this class for a ``scann:`` spec)::

        a = make_adapter(parse_spec("scann:num_leaves=40 dims_per_block=2"), 16, METRIC_INNER_PRODUCT)
        a.build(xb); a.set_query_param("leaves_to_search", 8); ids = a.search_batch(xq, 10)
    """

    library = "scann"
    #: build parameters and their defaults (None: worked out from the data)
    _BUILD: dict[str, Any] = {
        "num_leaves": None, "num_leaves_to_search": None, "training_sample_size": None,
        "spherical": None, "quantize_centroids": True, "dims_per_block": 2,
        "anisotropic_quantization_threshold": 0.2, "reorder_k": 100, "num_neighbors": 10,
    }
    _ALIASES = {"avq_threshold": "anisotropic_quantization_threshold", "n_leaves": "num_leaves"}

    def __init__(self, spec, d: int, metric: int):
        super().__init__(spec, d, metric)
        self.leaves_to_search: int | None = None
        self.reorder: int | None = None

    def _options(self, n: int) -> dict[str, Any]:
        opts = dict(self._BUILD)
        for name, value in self.spec.build_params.items():
            key = self._ALIASES.get(name, name)
            if key not in opts:
                raise ValueError(f"{self.spec.label}: unknown scann build parameter {name!r} "
                                 f"(known: {', '.join(sorted(self._BUILD))})")
            opts[key] = value
        if opts["num_leaves"] is None:
            opts["num_leaves"] = max(1, int(round(math.sqrt(n))))
        opts["num_leaves"] = int(opts["num_leaves"])
        if not 1 <= opts["num_leaves"] <= n:
            raise ValueError(f"{self.spec.label}: num_leaves must be between 1 and the {n} vectors, "
                             f"got {opts['num_leaves']}")
        if opts["num_leaves_to_search"] is None:
            opts["num_leaves_to_search"] = min(opts["num_leaves"], 32)
        if opts["training_sample_size"] is None:
            opts["training_sample_size"] = n  # ann-benchmarks trains the tree on every vector
        if opts["spherical"] is None:
            opts["spherical"] = self.metric == METRIC_INNER_PRODUCT
        for flag in ("spherical", "quantize_centroids"):
            opts[flag] = _as_bool(f"{self.spec.label}: {flag}", opts[flag])
        return opts

    def build(self, xb: np.ndarray) -> None:
        import scann
        opts = self._options(xb.shape[0])
        distance = "dot_product" if self.metric == METRIC_INNER_PRODUCT else "squared_l2"
        builder = scann.scann_ops_pybind.builder(xb, int(opts["num_neighbors"]), distance)
        builder.set_n_training_threads(max(1, self.threads))
        searcher = (builder.tree(opts["num_leaves"], int(opts["num_leaves_to_search"]),
                                 training_sample_size=int(opts["training_sample_size"]),
                                 spherical=opts["spherical"], quantize_centroids=opts["quantize_centroids"])
                    .score_ah(int(opts["dims_per_block"]),
                              anisotropic_quantization_threshold=float(opts["anisotropic_quantization_threshold"]))
                    .reorder(int(opts["reorder_k"]))
                    .build())
        self.index = searcher
        self.ntotal = xb.shape[0]

    def set_query_param(self, name: str, value: Any) -> None:
        if name not in ("leaves_to_search", "reorder"):
            raise ValueError(f"{self.spec.label}: scann's query parameters are 'leaves_to_search' and "
                             f"'reorder', got {name!r}")
        if int(value) < 1:
            raise ValueError(f"{self.spec.label}: {name} must be >= 1, got {value!r}")
        setattr(self, name, int(value))

    def _ids(self, ids: np.ndarray, dist: np.ndarray, k: int) -> np.ndarray:
        # ScaNN pads a short answer (fewer candidates than k in the leaves searched) with NaN distances
        out = np.full((ids.shape[0], k), -1, dtype=np.int64)
        width = min(k, ids.shape[1])
        out[:, :width] = np.where(np.isnan(dist[:, :width]), -1, ids[:, :width].astype(np.int64))
        return out

    def search_batch(self, xq: np.ndarray, k: int) -> np.ndarray:
        self.index.set_num_threads(max(1, self.threads))
        ids, dist = self.index.search_batched_parallel(xq, final_num_neighbors=k,
                                                       pre_reorder_num_neighbors=self.reorder,
                                                       leaves_to_search=self.leaves_to_search)
        return self._ids(np.asarray(ids), np.asarray(dist), k)

    def search_one(self, q: np.ndarray, k: int) -> np.ndarray:
        ids, dist = self.index.search(q[0], final_num_neighbors=k,
                                      pre_reorder_num_neighbors=-1 if self.reorder is None else self.reorder,
                                      leaves_to_search=-1 if self.leaves_to_search is None else self.leaves_to_search)
        return self._ids(np.asarray(ids)[None, :], np.asarray(dist)[None, :], k)[0]

    def memory_bytes(self) -> tuple[int | None, str]:
        with tempfile.TemporaryDirectory(prefix="voisin-scann-") as tmp:
            self.index.serialize(tmp)
            total = sum(os.path.getsize(os.path.join(tmp, f)) for f in os.listdir(tmp))
        return total, "scann serialize() size on disk"
