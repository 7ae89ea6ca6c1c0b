"""Spotify's voyager (an hnswlib descendant) in the benchmark harness.

Build parameters ``M`` and ``ef_construction`` (``efConstruction`` is accepted
too, as ann-benchmarks writes it), ``random_seed`` and ``storage``
(``float32``, ``float8`` or ``e4m3``); query parameter ``ef``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..metric import METRIC_INNER_PRODUCT
from .adapters import Adapter


class VoyagerAdapter(Adapter):
    """``voyager:M=16 ef_construction=500 ef=10,40,120``.

    Example (``make_adapter`` picks this class for a ``voyager:`` spec)::

        a = make_adapter(parse_spec("voyager:M=8 ef_construction=40"), 16, METRIC_L2)
        a.build(xb); a.set_query_param("ef", 64); ids = a.search_batch(xq, 10)
    """

    library = "voyager"
    _BUILD = {"M": "M", "ef_construction": "ef_construction", "efConstruction": "ef_construction",
              "random_seed": "random_seed", "storage": "storage"}
    _STORAGE = ("float32", "float8", "e4m3")

    def __init__(self, spec, d: int, metric: int):
        super().__init__(spec, d, metric)
        self.ef = 64

    def _options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {"M": 16, "ef_construction": 200, "random_seed": 1, "storage": "float32"}
        for name, value in self.spec.build_params.items():
            if name not in self._BUILD:
                raise ValueError(f"{self.spec.label}: unknown voyager build parameter {name!r} "
                                 f"(known: {', '.join(sorted(self._BUILD))})")
            opts[self._BUILD[name]] = value
        if str(opts["storage"]).lower() not in self._STORAGE:
            raise ValueError(f"{self.spec.label}: storage must be one of {', '.join(self._STORAGE)}, "
                             f"got {opts['storage']!r}")
        return opts

    def build(self, xb: np.ndarray) -> None:
        import voyager
        opts = self._options()
        storage = {"float32": voyager.StorageDataType.Float32, "float8": voyager.StorageDataType.Float8,
                   "e4m3": voyager.StorageDataType.E4M3}[str(opts["storage"]).lower()]
        # angular data arrives unit-normalised, so inner product ranks as cosine does
        # without voyager normalising every query again
        space = voyager.Space.InnerProduct if self.metric == METRIC_INNER_PRODUCT else voyager.Space.Euclidean
        index = voyager.Index(space, num_dimensions=self.d, M=int(opts["M"]),
                              ef_construction=int(opts["ef_construction"]), random_seed=int(opts["random_seed"]),
                              max_elements=xb.shape[0], storage_data_type=storage)
        index.add_items(xb, np.arange(xb.shape[0]), num_threads=max(1, self.threads))
        self.index = index
        self.ntotal = xb.shape[0]

    def set_query_param(self, name: str, value: Any) -> None:
        if name != "ef":
            raise ValueError(f"{self.spec.label}: voyager's query parameter is 'ef', got {name!r}")
        self.ef = int(value)

    def search_batch(self, xq: np.ndarray, k: int) -> np.ndarray:
        ids, _ = self.index.query(xq, k=k, num_threads=max(1, self.threads), query_ef=self.ef)
        return ids.astype(np.int64)

    def search_one(self, q: np.ndarray, k: int) -> np.ndarray:
        ids, _ = self.index.query(q[0], k=k, num_threads=1, query_ef=self.ef)
        return ids.astype(np.int64)

    def memory_bytes(self) -> tuple[int | None, str]:
        return len(self.index.as_bytes()), "voyager as_bytes() length"
