"""Index specifications for the benchmark: ``LIB:DESCRIPTION[ key=value ...]``.

``DESCRIPTION`` is the library's own name for the structure (a FAISS factory
string for voisin and faiss; empty for hnswlib, pynndescent and usearch, whose
specs are only ``key=value`` pairs). A ``key=value`` is a build parameter,
unless the key is a known query-time knob of that library or the value is a
comma-separated list: those are swept at query time.

>>> s = parse_spec("faiss:HNSW32 efConstruction=200 efSearch=16,64")
>>> s.library, s.description, s.build_params, s.sweep
('faiss', 'HNSW32', {'efConstruction': 200}, {'efSearch': [16, 64]})
>>> parse_spec("hnswlib:M=16 efConstruction=200").build_params
{'M': 16, 'efConstruction': 200}

Knobs that ann-benchmarks sweeps in pairs (ScaNN's leaves and re-rank depth,
NGT-QG's result expansion and epsilon) are written ``a+b=x1:y1,x2:y2``: the
pairs are swept as given, not as a cartesian product.

>>> parse_spec("scann:num_leaves=100 leaves_to_search+reorder=1:30,8:60").sweep_points()
[{'leaves_to_search': 1, 'reorder': 30}, {'leaves_to_search': 8, 'reorder': 60}]
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

LIBRARIES = ("voisin", "faiss", "hnswlib", "pynndescent", "usearch", "scann", "ngt", "voyager")

#: libraries whose spec names a structure before its key=value pairs
DESCRIBED = ("voisin", "faiss", "ngt")
#: NGT graph kinds (the description of an ``ngt:`` spec)
NGT_GRAPHS = ("ANNG", "ONNG", "QG")

#: query-time knobs each library understands (anything else in a spec is a build parameter)
QUERY_KNOBS: dict[str, frozenset[str]] = {
    "voisin": frozenset({"efSearch", "nprobe", "k_factor", "k_factor_rf", "max_codes", "quantizer_efSearch",
                         "search_L"}),
    "faiss": frozenset({"efSearch", "nprobe", "k_factor", "k_factor_rf", "max_codes", "quantizer_efSearch",
                        "ht", "search_L"}),
    "hnswlib": frozenset({"ef"}),
    "pynndescent": frozenset({"epsilon"}),
    "usearch": frozenset({"expansion_search"}),
    "scann": frozenset({"leaves_to_search", "reorder"}),
    "ngt": frozenset({"epsilon", "edge_size", "result_expansion"}),
    "voyager": frozenset({"ef"}),
}

_GRAPH_SWEEP = [16, 32, 64, 128, 256]
_NPROBE_SWEEP = [1, 2, 4, 8, 16, 32, 64, 128, 256]


@dataclass(frozen=True)
class IndexSpec:
    """One index to benchmark, parsed from ``LIB:DESCRIPTION[ key=value ...]``.

    Example:
        >>> parse_spec("voisin:Flat").label
        'voisin:Flat'
    """

    text: str
    library: str
    description: str
    build_params: dict[str, Any] = field(default_factory=dict)
    sweep: dict[str, list[Any]] = field(default_factory=dict)
    #: short name for tables and JSON (presets set it: their grids make the text long)
    name: str = ""

    @property
    def label(self) -> str:
        """The spec's name, else the spec as typed, whitespace normalised: names the index in tables and JSON."""
        return self.name or " ".join(self.text.split())

    def sweep_points(self) -> list[dict[str, Any]]:
        """Every combination of the swept knobs (one empty point when nothing is swept)."""
        if not self.sweep:
            return [{}]
        keys = list(self.sweep)
        points = []
        for combo in itertools.product(*(self.sweep[k] for k in keys)):
            point: dict[str, Any] = {}
            for key, value in zip(keys, combo):
                names = knob_names(key)
                point.update(zip(names, value) if len(names) > 1 else [(key, value)])
            points.append(point)
        return points


def parse_value(text: str) -> Any:
    """``"200"`` -> 200, ``"0.1"`` -> 0.1, ``"true"`` -> True, anything else stays a string."""
    t = text.strip()
    low = t.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(t)
    except ValueError:
        pass
    try:
        return float(t)
    except ValueError:
        return t


def parse_assignment(text: str, what: str = "parameter") -> tuple[str, list[Any]]:
    """``"efSearch=16,32"`` -> ``("efSearch", [16, 32])``."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or not value.strip():
        raise ValueError(f"{what} {text!r}: expected key=value (or key=v1,v2,... to sweep)")
    names = knob_names(key)
    if not all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n) for n in names) or len(set(names)) != len(names):
        raise ValueError(f"{what} {text!r}: {key!r} is not a valid parameter name (or a+b pair of names)")
    parts = [p for p in value.split(",")]
    if any(not p.strip() for p in parts):
        raise ValueError(f"{what} {text!r}: empty value in the list")
    if len(names) == 1:
        return key, [parse_value(p) for p in parts]
    values = []
    for p in parts:
        items = p.split(":")
        if len(items) != len(names) or any(not i.strip() for i in items):
            raise ValueError(f"{what} {text!r}: {p!r} should give {len(names)} values joined by ':' "
                             f"(one for each of {', '.join(names)})")
        values.append(tuple(parse_value(i) for i in items))
    return key, values


def knob_names(key: str) -> list[str]:
    """``"leaves_to_search+reorder"`` -> ``["leaves_to_search", "reorder"]`` (a plain key -> ``[key]``)."""
    return [n.strip() for n in key.split("+")]


def parse_spec(text: str) -> IndexSpec:
    """Parse ``LIB:DESCRIPTION[ key=value ...]`` (see the module docstring)."""
    if not isinstance(text, str):
        raise TypeError(f"index spec: expected a string like 'faiss:HNSW32', got {text!r}")
    lib, sep, rest = text.strip().partition(":")
    lib = lib.strip().lower()
    if not sep or lib not in LIBRARIES:
        raise ValueError(f"index spec {text!r}: expected LIB:DESCRIPTION with LIB one of "
                         f"{', '.join(LIBRARIES)} (e.g. 'voisin:Flat', 'hnswlib:M=16 efConstruction=200')")
    description = ""
    build: dict[str, Any] = {}
    sweep: dict[str, list[Any]] = {}
    for i, tok in enumerate(rest.split()):
        if "=" not in tok:
            if i != 0:
                raise ValueError(f"index spec {text!r}: {tok!r} is neither the description (which "
                                 "comes first) nor a key=value parameter")
            description = tok
            continue
        key, values = parse_assignment(tok, f"index spec {text!r}:")
        given = set(build).union(*(knob_names(k) for k in sweep))
        if given & set(knob_names(key)):
            raise ValueError(f"index spec {text!r}: parameter {key!r} given twice")
        paired = len(knob_names(key)) > 1
        if paired and not set(knob_names(key)) <= QUERY_KNOBS[lib]:
            raise ValueError(f"index spec {text!r}: a paired sweep {key!r} must join query knobs of {lib} "
                             f"({', '.join(sorted(QUERY_KNOBS[lib]))})")
        if len(values) > 1 or paired or key in QUERY_KNOBS[lib]:
            sweep[key] = values
        else:
            build[key] = values[0]
    if lib in ("voisin", "faiss") and not description:
        raise ValueError(f"index spec {text!r}: {lib} needs a factory description, e.g. '{lib}:Flat' "
                         f"or '{lib}:HNSW32'")
    if lib == "ngt":
        description = description.upper() or "ONNG"
        if description not in NGT_GRAPHS:
            raise ValueError(f"index spec {text!r}: the NGT graph must be one of {', '.join(NGT_GRAPHS)}, "
                             f"got {description!r}")
    if lib not in DESCRIBED and description:
        raise ValueError(f"index spec {text!r}: {lib} takes only key=value parameters, "
                         f"e.g. 'hnswlib:M=16 efConstruction=200'")
    return IndexSpec(text, lib, description, build, sweep)


def default_sweep(spec: IndexSpec) -> dict[str, list[Any]]:
    """The query-time knob swept when the spec and ``--sweep`` name none."""
    if spec.library in ("voisin", "faiss"):
        desc = spec.description.upper()
        m = re.search(r"IVF(\d+)", desc)
        if m:
            nlist = int(m.group(1))
            return {"nprobe": [p for p in _NPROBE_SWEEP if p <= nlist] or [1]}
        if "NSG" in desc:  # IndexNSGFlat's pool (nsg.search_L); NSG has no efSearch
            return {"search_L": list(_GRAPH_SWEEP)}
        if "HNSW" in desc:
            return {"efSearch": list(_GRAPH_SWEEP)}
        return {}
    if spec.library == "hnswlib":
        return {"ef": list(_GRAPH_SWEEP)}
    if spec.library == "usearch":
        return {"expansion_search": list(_GRAPH_SWEEP)}
    if spec.library == "pynndescent":
        return {"epsilon": [0.0, 0.05, 0.1, 0.2, 0.3]}
    if spec.library == "voyager":
        return {"ef": list(_GRAPH_SWEEP)}
    if spec.library == "scann":
        return {"leaves_to_search": [1, 2, 4, 8, 16, 32, 64]}
    if spec.library == "ngt":
        # NGT's epsilon widens the search radius (ann-benchmarks writes it as 1 + epsilon)
        if spec.description == "QG":
            return {"result_expansion+epsilon": [(0.0, -0.05), (2.0, 0.0), (3.0, 0.02), (5.0, 0.04)]}
        return {"epsilon": [0.0, 0.02, 0.05, 0.1, 0.2]}
    return {}


def knob_applies(spec: IndexSpec, key: str) -> bool:
    """Whether the query knob ``key`` means something for this spec's structure
    (no ``nprobe`` on an HNSW index, no ``efSearch`` on a Flat one)."""
    names = knob_names(key)
    if len(names) > 1:
        return all(knob_applies(spec, n) for n in names)
    if key not in QUERY_KNOBS[spec.library]:
        return False
    if spec.library == "ngt":
        # result expansion re-ranks the quantized graph's candidates; edge_size is the plain graph's
        return (key != "result_expansion" or spec.description == "QG") and \
            (key != "edge_size" or spec.description != "QG")
    if spec.library not in ("voisin", "faiss"):
        return True
    desc = spec.description.upper()
    if key == "efSearch":
        return "HNSW" in desc and "IVF" not in desc
    if key == "quantizer_efSearch":
        return "HNSW" in desc and "IVF" in desc
    if key in ("nprobe", "max_codes", "ht"):
        return "IVF" in desc
    if key in ("k_factor", "k_factor_rf"):
        return "REFINE" in desc or "RFLAT" in desc
    if key == "search_L":
        return "NSG" in desc
    return True


def resolve_sweeps(specs: list[IndexSpec], sweeps: list[str] | dict[str, list[Any]] | None = None
                   ) -> list[IndexSpec]:
    """Give every spec its final sweep: its own knobs, else matching ``--sweep`` options, else the default.

    A global sweep ``knob=v1,v2`` applies to each spec whose library knows that
    query knob (or whose default knob it is); one that applies to no spec is an error.
    """
    glob: dict[str, list[Any]] = {}
    if isinstance(sweeps, dict):
        glob = {k: list(v) for k, v in sweeps.items()}
    elif sweeps:
        for s in sweeps:
            key, values = parse_assignment(s, "--sweep")
            glob[key] = values
    used: set[str] = set()
    out = []
    for spec in specs:
        default = default_sweep(spec)
        sweep = dict(spec.sweep)
        taken = set().union(*(knob_names(k) for k in sweep)) if sweep else set()
        for key, values in glob.items():
            if taken & set(knob_names(key)):
                continue
            if knob_applies(spec, key):
                sweep[key] = values
                used.add(key)
        if not sweep:
            sweep = default
        out.append(IndexSpec(spec.text, spec.library, spec.description, dict(spec.build_params), sweep, spec.name))
    unused = set(glob) - used
    if unused:
        raise ValueError(f"--sweep {', '.join(sorted(unused))}: no index spec uses this knob "
                         f"(known knobs: {', '.join(sorted(set().union(*QUERY_KNOBS.values())))})")
    return out
