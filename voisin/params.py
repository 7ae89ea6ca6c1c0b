"""One place sets every knob: FAISS's ``ParameterSpace`` (AutoTune.cpp), by explicit recursion.

``set_index_parameter(index, "nprobe", 16)`` walks down the wrappers the way
FAISS does -- ``IndexIDMap``/``IndexIDMap2`` and ``IndexPreTransform`` pass
every name to the index they wrap, ``IndexRefine`` keeps ``k_factor_rf`` and
passes the rest to its base index, an IVF index sends ``quantizer_<name>``
to its coarse quantizer -- and sets the knob on the structure that owns it.
A name that no index of the composition knows is an error naming it; nothing
is ever silently ignored.

Sharded and replicated indexes (``IndexShards``, ``IndexReplicas``,
``IndexShardsIVF``, and any index with a ``sub_indexes()`` method, which plugs
in without editing this module) receive each knob on every member; one that
also has a ``quantizer`` takes ``quantizer_<name>`` on that shared quantizer,
as FAISS's ``IndexShardsIVF`` does.

Where voisin departs from FAISS (each on purpose, see docs/tune.md):

- values are checked: ``nprobe=2.5`` or ``efSearch=0`` raise instead of truncating;
- ``set_index_parameters`` checks every item before it sets any;
- ``k_factor`` on an ``IndexRefine`` whose base has no ``k_factor`` sets the
  re-rank factor (FAISS only accepts ``k_factor_rf`` there);
- ``initialize`` also looks through ``IndexIDMap`` and sharded indexes.

Example:
    >>> import numpy as np, voisin
    >>> index = voisin.index_factory(16, "IDMap,IVF32,Flat")
    >>> ps = voisin.ParameterSpace()
    >>> ps.set_index_parameters(index, "nprobe=8,max_codes=1000")
    >>> index.index.nprobe, index.index.max_codes
    (8, 1000)
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_QUANTIZER = "quantizer_"


class ParameterError(ValueError, RuntimeError):
    """A knob that no index of the composition has, or a value it cannot take.

    A ValueError (voisin's bad-input type) and a RuntimeError (what FAISS's
    ParameterSpace raises), so code written for either catches it.

    Example:
        >>> import voisin
        >>> try:
        ...     voisin.ParameterSpace().set_index_parameter(voisin.IndexFlatL2(4), "nprobe", 8)
        ... except RuntimeError as exc:
        ...     print(exc)
        nprobe: IndexFlatL2 has no parameter 'nprobe' (it has: none)
    """


class _Unknown(ParameterError):
    """No index of the composition has the name (re-raised naming the whole composition)."""


class _Vector(list):
    """A list that also answers FAISS's SWIG vector calls, ``size()`` and ``at(i)``."""

    def size(self) -> int:
        return len(self)

    def at(self, i: int) -> Any:
        return self[i]


@dataclass
class ParameterRange:
    """The values one knob takes in a ParameterSpace, cheapest (least accurate) first.

    Example:
        >>> ParameterRange("nprobe", [1, 2, 4]).values
        [1.0, 2.0, 4.0]
    """

    name: str
    values: list[float] = field(default_factory=_Vector)

    def __post_init__(self) -> None:
        self.values = _Vector(float(v) for v in self.values)


# --------------------------------------------------------------------------------------
# values
# --------------------------------------------------------------------------------------

def _number(name: str, value: Any) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ParameterError(f"{name}: expected a number, got {value!r}")
    value = float(value)
    if math.isnan(value):
        raise ParameterError(f"{name}: expected a number, got nan")
    return value


def _integer(name: str, value: float, lo: int) -> int:
    if not math.isfinite(value) or value != int(value) or value < lo:
        shown = int(value) if math.isfinite(value) and value == int(value) else value
        raise ParameterError(f"{name}: expected an integer >= {lo}, got {shown}")
    return int(value)


# --------------------------------------------------------------------------------------
# the structure of a composition (FAISS's dynamic_casts, one place)
# --------------------------------------------------------------------------------------

def _classes() -> Any:
    import voisin  # lazy: `import voisin.params` must not compile kernels
    return voisin


def _label(index: Any) -> str:
    """``IndexIDMap(IndexIVFFlat)``: the composition, outermost first."""
    v = _classes()
    name = type(index).__name__
    if isinstance(index, (v.IndexIDMap, v.IndexPreTransform)):
        return f"{name}({_label(index.index)})"
    if isinstance(index, v.IndexRefine):
        return f"{name}({_label(index.base_index)})"
    if isinstance(index, v.IndexIVF):
        return f"{name}(quantizer={_label(index.quantizer)})"
    subs = _sub_indexes(index)
    if subs:
        return f"{name}[{len(subs)} x {_label(subs[0])}]"
    return name


def _sub_indexes(index: Any) -> list[Any]:
    """The members of a sharded or replicated index: FAISS's ``count()`` / ``at(i)`` of
    IndexShards and IndexReplicas, or any index's ``sub_indexes()``; [] for the rest."""
    hook = getattr(index, "sub_indexes", None)
    if callable(hook):
        return list(hook())
    v = _classes()
    if isinstance(index, (v.IndexShards, v.IndexReplicas)):
        return [index.at(i) for i in range(index.count())]
    return []


def _is_hnsw(index: Any) -> bool:
    return isinstance(index, _classes().IndexHNSW)


def _is_polysemous_pq(index: Any) -> bool:
    """IndexPQ / IndexIVFPQ as FAISS has them (its fast-scan classes derive from neither)."""
    v = _classes()
    if isinstance(index, (v.IndexPQFastScan, v.IndexIVFPQFastScan)):
        return False
    return isinstance(index, (v.IndexPQ, v.IndexIVFPQ))


# A resolved assignment: (object, attribute, value). Resolving everything before
# setting anything lets set_index_parameters refuse a bad item without half-setting
# the rest, and lets a caller save and restore what a knob touches.
Assignment = tuple[Any, str, Any]


def _set_attr(obj: Any, attr: str, value: Any) -> Assignment:
    return (obj, attr, value)


def _resolve(index: Any, name: str, value: float) -> list[Assignment]:
    """The assignments that set ``name=value`` on ``index`` (FAISS's recursion), or raise."""
    v = _classes()
    out: list[Assignment] = []
    if name == "verbose":
        out.append(_set_attr(index, "verbose", int(value)))
    if isinstance(index, (v.IndexIDMap, v.IndexPreTransform)):
        return out + _resolve(index.index, name, value)
    subs = _sub_indexes(index)
    if subs:
        quantizer = getattr(index, "quantizer", None)
        if name.startswith(_QUANTIZER) and quantizer is not None:
            return out + _resolve(quantizer, name[len(_QUANTIZER):], value)
        for sub in subs:
            out += _resolve(sub, name, value)
        return out
    if isinstance(index, v.IndexRefine):
        if name == "k_factor_rf":
            return [_set_attr(index, "k_factor", float(_integer(name, value, 1)))]
        if name == "k_factor" and "k_factor" not in parameter_names(index.base_index):
            if not (value >= 1 and math.isfinite(value)):
                raise ParameterError(f"k_factor: expected a finite number >= 1, got {value:g}")
            return [_set_attr(index, "k_factor", value)]
        return out + _resolve(index.base_index, name, value)
    if name == "verbose":
        return out
    leaf = _leaf(index, name, value)
    if leaf is not None:
        return leaf
    raise _Unknown(name)


def assignments(index: Any, name: str, value: Any) -> list[Assignment]:
    """The ``(object, attribute, value)`` settings that ``name=value`` makes inside ``index``,
    checked but not applied (for callers that set a knob for one call and restore it).

    >>> import voisin
    >>> index = voisin.index_factory(8, "IDMap,IVF16,Flat")
    >>> [(type(o).__name__, a, v) for o, a, v in assignments(index, "nprobe", 4)]
    [('IndexIVFFlat', 'nprobe', 4)]
    """
    if not isinstance(name, str) or not name:
        raise ParameterError(f"name: expected a parameter name such as 'nprobe', got {name!r}")
    try:
        return _resolve(index, name, _number(name, value))
    except _Unknown:
        raise ParameterError(f"{name}: {_label(index)} has no parameter {name!r} "
                             f"(it has: {', '.join(sorted(parameter_names(index))) or 'none'})") from None


def _leaf(index: Any, name: str, value: float) -> list[Assignment] | None:
    """Knobs owned by a structure itself (not a wrapper); None when it has none of that name."""
    v = _classes()
    is_ivf = isinstance(index, v.IndexIVF)
    if name == "nprobe" and is_ivf:
        return [_set_attr(index, "nprobe", _integer(name, value, 1))]
    if name == "max_codes" and is_ivf:
        # FAISS: an infinite cap means no cap, stored as 0
        codes = 0 if value == math.inf else _integer(name, value, 0)
        return [_set_attr(index, "max_codes", codes)]
    if name == "ht" and _is_polysemous_pq(index) and isinstance(index, v.IndexPQ):
        # FAISS: below the code's bits polysemous search with that threshold,
        # otherwise plain ADC
        bits = index.pq.code_size * 8
        if value >= bits:
            return [_set_attr(index, "search_type", index.ST_PQ)]
        return [_set_attr(index, "search_type", index.ST_polysemous),
                _set_attr(index, "polysemous_ht", _integer(name, value, 0))]
    if name == "ht" and _is_polysemous_pq(index):
        # IndexIVFPQ (FAISS): below the code's bits the polysemous threshold, else off
        bits = index.pq.code_size * 8
        return [_set_attr(index, "polysemous_ht", 0 if value >= bits else _integer(name, value, 0))]
    if name in ("efSearch", "efConstruction"):
        if _is_hnsw(index):
            return [_set_attr(index.hnsw, name, _integer(name, value, 1))]
        if is_ivf and _is_hnsw(index.quantizer):
            return [_set_attr(index.quantizer.hnsw, name, _integer(name, value, 1))]
    if name.startswith(_QUANTIZER) and is_ivf:
        return _resolve(index.quantizer, name[len(_QUANTIZER):], value)
    knobs = _graph_knobs(index)
    if name == "search_L" and knobs is not None:
        # a voisin extension: faiss's ParameterSpace knows no NSG / NN-Descent knob
        return [_set_attr(knobs, "search_L", _integer(name, value, 0))]
    return None


def _graph_knobs(index: Any) -> Any:
    """The ``nsg`` / ``nndescent`` knob holder of a flat graph index, else None."""
    v = _classes()
    if isinstance(index, v.IndexNSGFlat):
        return index.nsg
    if isinstance(index, v.IndexNNDescentFlat):
        return index.nndescent
    return None


def parameter_names(index: Any) -> set[str]:
    """Every name ``set_index_parameter`` accepts on ``index`` (besides ``verbose``).

    >>> import voisin
    >>> sorted(parameter_names(voisin.index_factory(8, "IVF16,Flat,RFlat")))
    ['k_factor', 'k_factor_rf', 'max_codes', 'nprobe']
    """
    v = _classes()
    if isinstance(index, (v.IndexIDMap, v.IndexPreTransform)):
        return parameter_names(index.index)
    subs = _sub_indexes(index)
    if subs:
        names = set().union(*(parameter_names(s) for s in subs))
        quantizer = getattr(index, "quantizer", None)
        if quantizer is not None:
            names |= {_QUANTIZER + n for n in parameter_names(quantizer)}
        return names
    if isinstance(index, v.IndexRefine):
        return parameter_names(index.base_index) | {"k_factor_rf", "k_factor"}
    names: set[str] = set()
    if isinstance(index, v.IndexIVF):
        names |= {"nprobe", "max_codes"} | {_QUANTIZER + n for n in parameter_names(index.quantizer)}
        if _is_hnsw(index.quantizer):
            names |= {"efSearch", "efConstruction"}
    if _is_polysemous_pq(index):
        names.add("ht")
    if _is_hnsw(index):
        names |= {"efSearch", "efConstruction"}
    if _graph_knobs(index) is not None:
        names.add("search_L")
    return names


_ITEM = re.compile(r"^([^=]+)=(.+)$")


def parse_parameters(description: str) -> list[tuple[str, float]]:
    """``"nprobe=16,efSearch=64"`` -> ``[("nprobe", 16.0), ("efSearch", 64.0)]`` (FAISS's syntax:
    items separated by commas or spaces, each ``name=number``; ``inf`` is a number)."""
    if not isinstance(description, str):
        raise ParameterError(f"description: expected a string such as 'nprobe=16,efSearch=64', "
                             f"got {description!r}")
    out = []
    for tok in re.split(r"[ ,]+", description.strip()):
        if not tok:
            continue
        m = _ITEM.match(tok)
        try:
            if m is None:
                raise ValueError
            value = float(m.group(2))
        except ValueError:
            raise ParameterError(f"description: expected NAME=NUMBER items such as 'nprobe=16,efSearch=64', "
                                 f"could not interpret {tok!r}") from None
        out.append((m.group(1), value))
    return out


# --------------------------------------------------------------------------------------
# the space of settings
# --------------------------------------------------------------------------------------

class ParameterSpace:
    """Sets knobs on any index composition and enumerates their combinations (FAISS's AutoTune).

    ``initialize(index)`` fills ``parameter_ranges`` with FAISS's default
    ranges; a combination number ``cno`` picks one value of each range (the
    first range varies fastest), from 0 (cheapest) to ``n_combinations() - 1``.
    ``explore(index, xq, crit)`` measures combinations and returns their
    :class:`~voisin.autotune.OperatingPoints`; :func:`voisin.tune` builds on it
    to reach a target recall.

    Example:
        >>> import numpy as np, voisin
        >>> index = voisin.index_factory(8, "IVF64,Flat")
        >>> ps = voisin.ParameterSpace()
        >>> ps.initialize(index)
        >>> ps.n_combinations(), ps.combination_name(3)
        (6, 'nprobe=8')
        >>> ps.set_index_parameters(index, 3)
        >>> index.nprobe
        8
    """

    def __init__(self) -> None:
        self.parameter_ranges: _Vector = _Vector()
        #: FAISS's defaults: explore prints one line per experiment (0 = silent)
        self.verbose = 1
        #: at most this many combinations are run by explore (0 = all, without pruning)
        self.n_experiments = 500
        #: queries per search call in explore
        self.batchsize = 1 << 30
        self.thread_over_batches = False
        #: explore repeats a search until it has run this long (seconds), then averages
        self.min_test_duration = 0.0

    # --- ranges --------------------------------------------------------------------
    def add_range(self, name: str) -> ParameterRange:
        """The range called ``name``, appended empty when there is none yet."""
        for pr in self.parameter_ranges:
            if pr.name == name:
                return pr
        pr = ParameterRange(str(name))
        self.parameter_ranges.append(pr)
        return pr

    def initialize(self, index: Any) -> None:
        """Add FAISS's default ranges for ``index``: k_factor_rf 1..64, nprobe 1..nlist/2 (powers
        of two below nlist), efSearch 4..512, and the quantizer's as ``quantizer_*``."""
        v = _classes()
        index = self._unwrap(index)
        if isinstance(index, v.IndexRefine):
            self.add_range("k_factor_rf").values[:] = [float(1 << i) for i in range(7)]
            index = self._unwrap(index.base_index)
        if isinstance(index, v.IndexIVF):
            pr = self.add_range("nprobe")
            pr.values[:] = [float(1 << i) for i in range(13) if (1 << i) < index.nlist] or [1.0]
            inner = ParameterSpace()
            inner.initialize(index.quantizer)
            for sub in inner.parameter_ranges:
                self.add_range(_QUANTIZER + sub.name).values[:] = list(sub.values)
        if _is_polysemous_pq(index):
            # FAISS's polysemous thresholds: even values up to half the code's
            # bits (code sizes a multiple of 4 bytes), then the bits (= off)
            bits = index.pq.code_size * 8
            values = [float(i) for i in range(2, bits // 2 + 1, 2)] if index.pq.code_size % 4 == 0 else []
            self.add_range("ht").values[:] = values + [float(bits)]
        if _is_hnsw(index):
            self.add_range("efSearch").values[:] = [float(1 << i) for i in range(2, 10)]

    @staticmethod
    def _unwrap(index: Any) -> Any:
        v = _classes()
        while True:
            if isinstance(index, (v.IndexIDMap, v.IndexPreTransform)):
                index = index.index
                continue
            subs = _sub_indexes(index)
            if subs:
                index = subs[0]
                continue
            return index

    def n_combinations(self) -> int:
        n = 1
        for pr in self.parameter_ranges:
            n *= len(pr.values)
        return n

    def _check_cno(self, cno: Any) -> int:
        n = self.n_combinations()
        if isinstance(cno, (bool, np.bool_)) or not isinstance(cno, numbers.Integral) or not 0 <= cno < n:
            raise ParameterError(f"cno: expected a combination number in [0, {n}), got {cno!r}")
        return int(cno)

    def combination(self, cno: int) -> dict[str, float]:
        """``{name: value}`` of combination ``cno`` (voisin's; FAISS has only the name string)."""
        cno = self._check_cno(cno)
        out = {}
        for pr in self.parameter_ranges:
            cno, j = divmod(cno, len(pr.values))
            out[pr.name] = pr.values[j]
        return out

    def combination_name(self, cno: int) -> str:
        """``"nprobe=16,quantizer_efSearch=64"`` for combination ``cno``."""
        return ",".join(f"{n}={val:g}" for n, val in self.combination(cno).items())

    def combination_ge(self, c1: int, c2: int) -> bool:
        """True when every knob of ``c1`` is at least that of ``c2`` (so ``c1`` is no cheaper)."""
        c1, c2 = self._check_cno(c1), self._check_cno(c2)
        for pr in self.parameter_ranges:
            n = len(pr.values)
            if c1 % n < c2 % n:
                return False
            c1 //= n
            c2 //= n
        return True

    def display(self) -> None:
        print(f"ParameterSpace, {len(self.parameter_ranges)} parameters, "
              f"{self.n_combinations()} combinations:")
        for pr in self.parameter_ranges:
            print(f"   {pr.name}: [" + ", ".join(f"{x:g}" for x in pr.values) + "]")

    # --- setting -------------------------------------------------------------------
    def set_index_parameter(self, index: Any, name: str, val: Any) -> None:
        """Set knob ``name`` to ``val`` wherever it lives in ``index`` (see the module docstring)."""
        if self.verbose > 1:
            print(f"    set_index_parameter {name}={val}")
        for obj, attr, value in assignments(index, name, val):
            setattr(obj, attr, value)

    def set_index_parameters(self, index: Any,
                             description: str | int | Mapping[str, Any]) -> None:
        """Set several knobs: ``"nprobe=16,efSearch=64"``, a combination number, or a dict.

        Every item is checked before any is set, so a bad one leaves the index as it was.
        """
        if isinstance(description, str):
            items: Iterable[tuple[str, Any]] = parse_parameters(description)
        elif isinstance(description, Mapping):
            items = list(description.items())
        elif isinstance(description, numbers.Integral) and not isinstance(description, (bool, np.bool_)):
            items = list(self.combination(description).items())
        else:
            raise ParameterError(f"description: expected 'name=value,...', a combination number or a "
                                 f"dict, got {description!r}")
        plan: list[Assignment] = []
        for name, val in items:
            plan += assignments(index, name, val)
        for obj, attr, value in plan:
            setattr(obj, attr, value)

    # --- measuring -----------------------------------------------------------------
    def explore(self, index: Any, xq: Any, crit: Any) -> Any:
        """Measure the combinations on queries ``xq`` and return their OperatingPoints (FAISS's
        explore: the cheapest and the dearest first, then a seeded random order, skipping a
        combination that the points seen so far prove cannot be Pareto-optimal)."""
        from .autotune import explore
        return explore(self, index, xq, crit)
