"""Yahoo Japan's NGT in the benchmark harness: ANNG, ONNG and QG, built as ann-benchmarks builds them.

``ngt:ANNG``, ``ngt:ONNG`` (the default) and ``ngt:QG`` name the graph. Every
one starts as an ANNG (``edge_size_for_creation`` edges per node,
``epsilon_for_creation`` widening the insertion searches); ONNG and QG then
adjust its degrees to ``outdegree`` / ``indegree`` (NGT's optimizer, the
``ngt reconstruct-graph -mS`` step; ``refine=true`` first refines the ANNG,
as ann-benchmarks' "with-refinement" groups do); QG finally quantizes the graph
(``max_edge`` edges kept per node, its codebooks trained on ``sample``
vectors). Query knobs: ``epsilon`` (NGT's own value: ann-benchmarks writes
it as 1 + epsilon), ``edge_size`` (ANNG/ONNG) and ``result_expansion`` (QG).

The ``ngt`` wheel has no API that quantizes a graph: QG needs NGT's ``qbg``
command (``$VOISIN_QBG`` or on the PATH, from an NGT source build); without it
an ``ngt:QG`` spec is skipped, saying so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from typing import Any

import numpy as np

from ..metric import METRIC_INNER_PRODUCT
from .adapters import Adapter, LibraryMissing

#: build parameters, with ann-benchmarks' values as defaults (QG overrides some, below)
_BUILD: dict[str, Any] = {"edge_size_for_creation": 100, "edge_size_for_search": 0, "epsilon_for_creation": 0.1,
                          "outdegree": 10, "indegree": 120, "max_edge": 96, "sample": 20000,
                          "build_time_limit": 4.0, "tree": True, "refine": False}
_QG_DEFAULTS = {"outdegree": 64, "edge_size_for_search": 40}
#: ann-benchmarks' names for the same parameters
_ALIASES = {"edge": "edge_size_for_creation", "search_edge": "edge_size_for_search", "timeout": "build_time_limit"}
#: property-file settings that ann-benchmarks' ``ngt create -b500 -P0 -B30`` makes
_ANN_BENCHMARKS_PROPERTIES = {"BatchSizeForCreation": 500, "PathAdjustmentInterval": 0, "DynamicEdgeSizeBase": 30}


def qbg_command() -> str | None:
    """Path of NGT's ``qbg`` tool ($VOISIN_QBG, else the PATH), or None."""
    env = os.environ.get("VOISIN_QBG")
    if env:
        return env if os.access(env, os.X_OK) else None
    return shutil.which("qbg")


def set_properties(index_dir: str, values: dict[str, Any]) -> None:
    """Rewrite entries of an NGT index's property file (``prf``: one ``name<TAB>value`` a line).

    ``ngtpy.create`` exposes only some of what ``ngt create`` sets; the rest
    (the insertion epsilon, batch size...) is read from this file when the
    index is opened for the inserts.
    """
    path = os.path.join(index_dir, "prf")
    with open(path) as f:
        lines = f.read().splitlines()
    seen = set()
    for i, line in enumerate(lines):
        name = line.split("\t", 1)[0]
        if name in values:
            lines[i] = f"{name}\t{values[name]}"
            seen.add(name)
    lines += [f"{name}\t{v}" for name, v in values.items() if name not in seen]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _dir_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


class NgtAdapter(Adapter):
    """``ngt:ONNG edge_size_for_creation=100 outdegree=10 indegree=120 epsilon=0.0,0.02,0.05``.

    Example (``make_adapter`` picks this class for an ``ngt:`` spec)::

        a = make_adapter(parse_spec("ngt:ONNG edge_size_for_creation=20"), 16, METRIC_L2)
        a.build(xb); a.set_query_param("epsilon", 0.1); ids = a.search_batch(xq, 10)
    """

    library = "ngt"

    def __init__(self, spec, d: int, metric: int):
        super().__init__(spec, d, metric)
        self.graph = spec.description or "ONNG"
        self.opts = self._options()
        self.qbg = qbg_command() if self.graph == "QG" else None
        if self.graph == "QG" and self.qbg is None:
            raise LibraryMissing(f"{spec.label}: skipped, NGT-QG needs NGT's qbg command (set $VOISIN_QBG or put "
                                 "it on the PATH; the ngt wheel cannot quantize a graph)")
        self.query: dict[str, Any] = {}
        self._tmp: tempfile.TemporaryDirectory | None = None

    def _options(self) -> dict[str, Any]:
        opts = dict(_BUILD)
        if self.graph == "QG":
            opts.update(_QG_DEFAULTS)
        for name, value in self.spec.build_params.items():
            key = _ALIASES.get(name, name)
            if key not in opts:
                raise ValueError(f"{self.spec.label}: unknown ngt build parameter {name!r} "
                                 f"(known: {', '.join(sorted(_BUILD))})")
            opts[key] = value
        for flag in ("tree", "refine"):
            if not isinstance(opts[flag], bool):
                raise ValueError(f"{self.spec.label}: {flag}: expected true or false, got {opts[flag]!r}")
        for key in ("edge_size_for_creation", "outdegree", "indegree", "max_edge", "sample"):
            if int(opts[key]) < 1:
                raise ValueError(f"{self.spec.label}: {key} must be >= 1, got {opts[key]!r}")
        return opts

    def _run_qbg(self, *args: str) -> None:
        done = subprocess.run([self.qbg, *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"qbg {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-400:]}")

    def build(self, xb: np.ndarray) -> None:
        import ngtpy
        o = self.opts
        self._tmp = tempfile.TemporaryDirectory(prefix="voisin-ngt-")
        anng = os.path.join(self._tmp.name, "anng")
        # ann-benchmarks' angular setting ("-DE"): the vectors arrive unit-normalised
        distance = "Normalized L2" if self.metric == METRIC_INNER_PRODUCT else "L2"
        ngtpy.create(anng, self.d, edge_size_for_creation=int(o["edge_size_for_creation"]),
                     edge_size_for_search=int(o["edge_size_for_search"]), distance_type=distance,
                     object_type="Float", graph_type="ANNG")
        set_properties(anng, {"EpsilonForCreation": float(o["epsilon_for_creation"]),
                              "BuildTimeLimit": float(o["build_time_limit"]), **_ANN_BENCHMARKS_PROPERTIES})
        index = ngtpy.Index(anng, log_disabled=True)
        index.batch_insert(xb, num_threads=max(1, self.threads))
        if o["refine"]:
            # ann-benchmarks' "with-refinement" ONNG groups: the ANNG's edges re-searched before degree adjustment
            index.refine_anng(epsilon=float(o["epsilon_for_creation"]), num_of_edges=int(o["edge_size_for_creation"]),
                              num_of_explored_edges=int(o["edge_size_for_search"]))
        index.save()
        index.close()
        path = anng
        if self.graph in ("ONNG", "QG"):
            path = os.path.join(self._tmp.name, "onng")
            opt = ngtpy.Optimizer(num_of_outgoings=int(o["outdegree"]), num_of_incomings=int(o["indegree"]),
                                  log_disabled=True)
            # degree adjustment and shortcut reduction only: ann-benchmarks tunes no search coefficients
            opt.set_processing_modes(shortcut_reduction=True, search_parameter_optimization=False,
                                     prefetch_parameter_optimization=False, accuracy_table_generation=False)
            opt.execute(anng, path)
            shutil.rmtree(anng)
        if self.graph == "QG":
            self._run_qbg("create-qg", path)
            self._run_qbg("build-qg", f"-o{int(o['sample'])}", "-M6", "-ib", "-I400", "-Gz", "-Pn",
                          f"-E{int(o['max_edge'])}", path)
            self.index = ngtpy.QuantizedIndex(path, int(o["max_edge"]), tree_disabled=not o["tree"],
                                              log_disabled=True)
            self.index.set_with_distance(False)
        else:
            self.index = ngtpy.Index(path, read_only=True, tree_disabled=not o["tree"], log_disabled=True)
        self.path = path
        self.ntotal = xb.shape[0]
        if self.query:
            self.index.set(**self.query)

    def set_query_param(self, name: str, value: Any) -> None:
        allowed = ("epsilon", "result_expansion") if self.graph == "QG" else ("epsilon", "edge_size")
        if name not in allowed:
            raise ValueError(f"{self.spec.label}: NGT {self.graph}'s query parameters are "
                             f"{' and '.join(repr(a) for a in allowed)}, got {name!r}")
        self.query[name] = int(value) if name == "edge_size" else float(value)
        if hasattr(self, "index"):
            self.index.set(**{name: self.query[name]})

    def search_batch(self, xq: np.ndarray, k: int) -> np.ndarray:
        if self.graph == "QG":
            # QuantizedIndex has no batch call: the batch is a loop on one thread
            return np.stack([self.search_one(xq[i:i + 1], k) for i in range(xq.shape[0])])
        import ngtpy
        results = ngtpy.BatchResults()
        self.index.batch_search(xq, results, k, with_distance=False)
        flat = np.asarray(results.get_indexed_ids())
        offsets = np.asarray(results.get_index())
        out = np.full((xq.shape[0], k), -1, dtype=np.int64)
        for i in range(xq.shape[0]):
            row = flat[offsets[i]:offsets[i + 1]][:k]
            out[i, :len(row)] = row
        return out

    def search_one(self, q: np.ndarray, k: int) -> np.ndarray:
        ids = np.asarray(self.index.search(q[0], k, with_distance=False), dtype=np.int64)
        out = np.full(k, -1, dtype=np.int64)
        out[:len(ids)] = ids[:k]
        return out

    def memory_bytes(self) -> tuple[int | None, str]:
        return _dir_bytes(self.path), "NGT index folder size on disk"
