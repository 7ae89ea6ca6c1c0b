"""``voisin.tune``: the fastest setting of an index's knobs that reaches a target recall.

The knobs and their candidate values come from :class:`~voisin.ParameterSpace`
(``nprobe``, ``efSearch``, ``k_factor_rf``, ``quantizer_efSearch`` ...; for IVF
the exhaustive ``nprobe = nlist`` is added so a reachable target is always
found). Each setting is measured on the queries: recall@k counting ties
(docs/benchmarking.md; against the exact neighbours, computed when not given)
and queries per second.

A setting *meets* the target when a one-sided ``confidence`` bound on its mean
recall (mean - z * standard error over the queries) is at least the target,
so the choice holds on fresh queries from the same distribution, not only on
the ones it was tuned with. Recall and time are assumed to grow with every
knob: a setting no cheaper than one that already met the target, or no
dearer than one that missed it, is not measured. After the grid, an integer
knob is bisected between the chosen value and the grid value below it.

Example:
    >>> import numpy as np, voisin
    >>> rng = np.random.default_rng(0)
    >>> xb, xq = rng.random((5000, 16), dtype="float32"), rng.random((200, 16), dtype="float32")
    >>> index = voisin.index_factory(16, "IVF64,Flat"); index.train(xb); index.add(xb)
    >>> report = voisin.tune(index, xq, target_recall=0.9, k=10, min_time=0)
    >>> report.met and report.recall >= 0.9 and index.nprobe == report.setting["nprobe"]
    True
"""

from __future__ import annotations

import math
import statistics
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ._validate import as_matrix, check_float, check_int, check_k
from .autotune import OperatingPoints
from .evaluate import TIE_TOLERANCE, _first_occurrence
from .metric import METRIC_INNER_PRODUCT
from .params import ParameterError, ParameterSpace, _classes, _label

MODES = ("batch", "single")


@dataclass
class TunePoint:
    """One measured setting: its knob values, recall (and its low confidence bound), queries/s.

    Example:
        >>> TunePoint({"nprobe": 16.0, "k_factor_rf": 2.0}, 0.95, 0.94, 1e4).key
        'nprobe=16,k_factor_rf=2'
    """

    setting: dict[str, float]
    recall: float
    #: one-sided confidence bound on the mean recall (equal to ``recall`` without a confidence)
    recall_low: float
    qps: float

    @property
    def key(self) -> str:
        return ",".join(f"{n}={v:g}" for n, v in self.setting.items())


@dataclass
class TuneReport:
    """What :func:`tune` measured and chose; the chosen setting is already set on the index.

    Example:
        >>> r = TuneReport(0.9, 10, 100, "batch", 0.95, True, TunePoint({"nprobe": 8.0}, 0.93, 0.91, 5e3))
        >>> r.key, r.recall
        ('nprobe=8', 0.93)
    """

    target_recall: float
    k: int
    nq: int
    mode: str
    confidence: float | None
    met: bool
    chosen: TunePoint
    points: list[TunePoint] = field(default_factory=list)
    frontier: list[TunePoint] = field(default_factory=list)
    skipped: int = 0
    recall_definition: str = ""
    index: str = ""

    @property
    def setting(self) -> dict[str, float]:
        return self.chosen.setting

    @property
    def key(self) -> str:
        """The chosen setting as ``ParameterSpace.set_index_parameters`` takes it."""
        return self.chosen.key

    @property
    def recall(self) -> float:
        return self.chosen.recall

    @property
    def qps(self) -> float:
        return self.chosen.qps

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        out = asdict(self)
        for p in [out["chosen"], *out["points"], *out["frontier"]]:
            p["key"] = ",".join(f"{n}={v:g}" for n, v in p["setting"].items())
        return out

    def __str__(self) -> str:
        verdict = "meets" if self.met else "does NOT reach"
        return (f"{self.index}: {self.key or '(no knob)'} {verdict} recall@{self.k} >= {self.target_recall:g} "
                f"(recall {self.recall:.4f}, {self.qps:,.0f} queries/s, {self.mode}; "
                f"{len(self.points)} settings measured, {self.skipped} skipped)")

    def plot(self, path: str | None = None) -> Any:
        """Recall/QPS of every measured setting, the frontier and the choice (needs matplotlib);
        saved as an image at ``path`` when given. Returns the matplotlib Figure."""
        try:
            import matplotlib
            if path is not None:
                matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("plot: needs matplotlib (pip install matplotlib)") from None
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        ax.scatter([p.recall for p in self.points], [p.qps for p in self.points], s=14, c="0.6",
                   label="measured")
        front = sorted(self.frontier, key=lambda p: p.recall)
        ax.plot([p.recall for p in front], [p.qps for p in front], "-o", ms=4, label="Pareto frontier")
        ax.scatter([self.recall], [self.qps], s=80, marker="*", c="C3", zorder=3, label=f"chosen: {self.key}")
        ax.axvline(self.target_recall, ls="--", c="C3", lw=0.8)
        ax.set_xlabel(f"recall@{self.k}")
        ax.set_ylabel(f"queries/s ({self.mode})")
        ax.set_yscale("log")
        ax.set_title(self.index, fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=120)
            plt.close(fig)
        return fig


# --------------------------------------------------------------------------------------
# ground truth and recall
# --------------------------------------------------------------------------------------

class _Truth:
    """The exact neighbours of the queries, and how to judge a returned id (ties counted
    when the vectors are known, plain id overlap otherwise)."""

    def __init__(self, xq: np.ndarray, k: int, metric: int, gt_ids: np.ndarray,
                 vectors: np.ndarray | None, row_ids: np.ndarray | None):
        self.xq, self.k, self.metric = xq, k, metric
        self.gt_ids = gt_ids[:, :k]
        self.vectors = vectors
        self.row_ids = row_ids  # id of each row of ``vectors`` (None: the row number)
        if vectors is not None:
            self.threshold = self._dist(self.gt_ids[:, k - 1:k])[:, 0]

    def _rows(self, I: np.ndarray) -> np.ndarray:
        if self.row_ids is None:
            ok = (I >= 0) & (I < self.vectors.shape[0])
            return np.where(ok, I, -1)
        order = np.argsort(self.row_ids, kind="stable")
        sorted_ids = self.row_ids[order]
        pos = np.clip(np.searchsorted(sorted_ids, I), 0, sorted_ids.size - 1)
        return np.where((sorted_ids[pos] == I) & (I >= 0), order[pos], -1)

    def _dist(self, I: np.ndarray) -> np.ndarray:
        """Exact float64 distances in the index's metric (-inner product, so smaller is nearer)."""
        rows = self._rows(I)
        out = np.full(I.shape, np.inf)
        step = max(1, (1 << 22) // max(1, I.shape[1] * self.vectors.shape[1]))  # ~32 MB of float64
        for q0 in range(0, I.shape[0], step):
            r = rows[q0:q0 + step]
            v = self.vectors[np.maximum(r, 0)].astype(np.float64)          # (b, m, d)
            q = self.xq[q0:q0 + step].astype(np.float64)
            if self.metric == METRIC_INNER_PRODUCT:
                dist = -np.einsum("bmd,bd->bm", v, q)
            else:
                diff = v - q[:, None, :]
                dist = np.einsum("bmd,bmd->bm", diff, diff)
            out[q0:q0 + step] = np.where(r >= 0, dist, np.inf)
        return out

    def per_query(self, I: np.ndarray) -> np.ndarray:
        """recall@k of each query."""
        I = I[:, :self.k]
        if self.vectors is None:
            match = (I[:, :, None] == self.gt_ids[:, None, :]) & (I[:, :, None] >= 0)
            return match.any(axis=1).sum(axis=1) / self.k
        dist = self._dist(I)
        dist[~_first_occurrence(I)] = np.inf  # an id returned twice is one neighbour
        limit = self.threshold + TIE_TOLERANCE * np.abs(self.threshold)
        return (dist <= limit[:, None]).sum(axis=1) / self.k

    @property
    def definition(self) -> str:
        if self.vectors is None:
            return (f"recall@{self.k}: share of the true {self.k} nearest ids among the first {self.k} "
                    "returned (id overlap: no vectors were given to judge ties)")
        return (f"recall@{self.k}: share of the first {self.k} returned ids whose exact distance is within "
                f"the {self.k}-th true distance (1 + {TIE_TOLERANCE:g}), ties counted")


def _stored_vectors(index: Any) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Exact vectors an index holds (rows, id of each row or None for row = id), when it keeps them."""
    v = _classes()
    if isinstance(index, v.IndexRefine):
        return _stored_vectors(index.refine_index)
    if isinstance(index, v.IndexIDMap):
        inner = _stored_vectors(index.index)
        if inner is None or inner[1] is not None:
            return None
        return inner[0], np.asarray(index.id_map, dtype=np.int64)
    if index.ntotal == 0:
        return None
    if isinstance(index, (v.IndexFlat, v.IndexHNSWFlat)):
        return index.reconstruct_n(0, index.ntotal), None
    if type(index) is v.IndexIVFFlat:  # FAISS's InvertedLists API: the ids list by list
        ids = np.concatenate([np.asarray(index.invlists.get_ids(i), dtype=np.int64)
                              for i in range(index.nlist)])
        return index.reconstruct_batch(ids), ids
    return None


def _ground_truth(index: Any, xq: np.ndarray, k: int, gt: Any, xb: Any) -> _Truth:
    metric = index.metric_type
    vectors = row_ids = None
    if xb is not None:
        vectors = as_matrix(xb, index.d, "xb")
    if gt is None:
        if vectors is None:
            stored = _stored_vectors(index)
            if stored is None:
                raise ValueError(f"gt: {_label(index)} does not keep exact vectors, so the true neighbours "
                                 "cannot be computed; pass gt= (the true neighbour ids, nq x k) or xb= "
                                 "(the indexed vectors, row i = id i)")
            vectors, row_ids = stored
        from .exact import knn
        _, gt_ids = knn(xq, vectors, k, metric)
        if row_ids is not None:
            gt_ids = np.where(gt_ids >= 0, row_ids[np.maximum(gt_ids, 0)], -1)
        return _Truth(xq, k, metric, gt_ids, vectors, row_ids)
    gt_ids = gt[1] if isinstance(gt, tuple) and len(gt) == 2 else gt
    gt_ids = np.asarray(gt_ids)
    if gt_ids.ndim != 2 or gt_ids.dtype.kind not in "iu" or gt_ids.shape[0] != xq.shape[0] \
            or gt_ids.shape[1] < k:
        raise ValueError(f"gt: expected integer ids of shape ({xq.shape[0]}, >= {k}) (or a (D, I) pair), "
                         f"got shape {gt_ids.shape} and dtype {gt_ids.dtype}")
    return _Truth(xq, k, metric, gt_ids.astype(np.int64), vectors, None)


# --------------------------------------------------------------------------------------
# measuring one setting
# --------------------------------------------------------------------------------------

def _seconds(index: Any, xq: np.ndarray, k: int, mode: str, min_time: float) -> tuple[np.ndarray, float]:
    """ids of the first pass, mean seconds of a pass over all queries (passes repeat until min_time)."""
    rows = [xq[i:i + 1] for i in range(xq.shape[0])] if mode == "single" else None
    total, passes, first = 0.0, 0, None
    while True:
        t0 = time.perf_counter()
        if rows is None:
            I = index.search(xq, k)[1]
        else:
            I = np.concatenate([index.search(r, k)[1] for r in rows])
        total += time.perf_counter() - t0
        passes += 1
        first = I if first is None else first
        if total >= min_time:
            return first, total / passes


class _Tuner:
    def __init__(self, index, xq, truth, ps, target, z, k, mode, min_time):
        self.index, self.xq, self.truth, self.ps = index, xq, truth, ps
        self.target, self.z, self.k, self.mode, self.min_time = target, z, k, mode, min_time
        self.points: list[TunePoint] = []
        self.by_cno: dict[int, TunePoint] = {}

    def measure(self, setting: dict[str, float]) -> TunePoint:
        self.ps.set_index_parameters(self.index, setting)
        I, seconds = _seconds(self.index, self.xq, self.k, self.mode, self.min_time)
        r = self.truth.per_query(I)
        mean = float(r.mean())
        se = float(r.std(ddof=1) / math.sqrt(r.size)) if r.size > 1 else 0.0
        point = TunePoint(dict(setting), mean, mean - self.z * se, self.xq.shape[0] / max(seconds, 1e-12))
        self.points.append(point)
        return point

    def meets(self, p: TunePoint) -> bool:
        return p.recall_low >= self.target

    def warm_up(self) -> None:
        """First calls compile kernels (or load them from numba's cache): keep that out of the timings."""
        n = self.ps.n_combinations()
        for cno, queries in ((0, self.xq), (n - 1, self.xq[:16])):   # batch paths at both ends
            self.ps.set_index_parameters(self.index, cno)
            self.index.search(queries, self.k)
            self.index.search(queries[:1], self.k)                     # the single-query path

    def grid(self, budget: int) -> int:
        """Measure the grid with monotone pruning; returns how many settings were skipped."""
        ps = self.ps
        n = ps.n_combinations()
        rest = np.random.default_rng(1234).permutation(n - 2) + 1 if n > 2 else []
        order = ([n - 1, 0] if n > 1 else [0]) + [int(c) for c in rest]
        skipped = 0
        for cno in order:
            if len(self.by_cno) >= budget:
                skipped += 1
                continue
            if self._pruned(cno):
                skipped += 1
                continue
            self.by_cno[cno] = self.measure(ps.combination(cno))
        return skipped

    def _pruned(self, cno: int) -> bool:
        ps = self.ps
        best = self.best()
        for c, p in self.by_cno.items():
            if self.meets(p) and ps.combination_ge(cno, c):
                return True    # no cheaper than a setting that already meets the target
            if not self.meets(p) and ps.combination_ge(c, cno):
                return True    # no dearer than a setting that misses it
            if best is not None and ps.combination_ge(cno, c) and p.qps <= best.qps:
                return True    # no cheaper than a setting already no faster than the best
        return False

    def best(self) -> TunePoint | None:
        ok = [p for p in self.points if self.meets(p)]
        return max(ok, key=lambda p: p.qps) if ok else None

    def bisect(self, chosen: TunePoint) -> TunePoint:
        """Lower each integer knob of ``chosen`` to the least value that still meets the target,
        between its grid value and the grid value below it (recall grows with the knob)."""
        for pr in self.ps.parameter_ranges:
            values = list(pr.values)
            value = chosen.setting[pr.name]
            j = values.index(value)
            if j == 0 or not all(float(x).is_integer() for x in (values[j - 1], value)):
                continue
            lo, hi = int(values[j - 1]), int(value)   # lo misses (or was pruned as missing), hi meets
            while hi - lo > 1:
                mid = (lo + hi) // 2
                p = self.measure({**chosen.setting, pr.name: float(mid)})
                if self.meets(p):
                    hi, chosen = mid, p
                else:
                    lo = mid
        return chosen


def _add_exhaustive_nprobe(ps: ParameterSpace, index: Any) -> None:
    """FAISS's nprobe range stops below nlist; the exhaustive value makes any target reachable."""
    v = _classes()
    ivf = ps._unwrap(index)
    if isinstance(ivf, v.IndexRefine):
        ivf = ps._unwrap(ivf.base_index)
    for pr in ps.parameter_ranges:
        if pr.name == "nprobe" and isinstance(ivf, v.IndexIVF) and pr.values[-1] < ivf.nlist:
            pr.values.append(float(ivf.nlist))


def tune(index: Any, xq: Any, target_recall: float = 0.95, k: int = 10, gt: Any = None, *,
         xb: Any = None, confidence: float | None = 0.95, mode: str = "batch", min_time: float = 0.05,
         max_experiments: int = 200, ranges: dict[str, list[float]] | None = None,
         refine: bool = True) -> TuneReport:
    """Find and set the fastest knob setting of ``index`` whose recall@k reaches ``target_recall``.

    ``xq``: queries held out of the index (an indexed vector would find itself
    first and flatter the recall). ``gt``: their true neighbour ids (nq, >= k),
    or a (D, I) pair; computed exactly when omitted, from ``xb`` (the indexed
    vectors, row i = id i) or from the exact vectors the index keeps (Flat,
    IVF-Flat, HNSW-Flat, a refine index on raw vectors, through IDMap). ``confidence``:
    the chosen setting's mean recall minus z standard errors must reach the
    target (None: the mean itself). ``mode``: ``batch`` (all queries in one
    call) or ``single`` (one call per query) sets what "fastest" means.
    ``ranges``: ``{knob: [values]}`` instead of ParameterSpace's defaults.
    ``refine``: bisect integer knobs between grid values.

    When no setting reaches the target, the one with the highest recall is
    set, ``report.met`` is False and a RuntimeWarning says so.
    """
    xq = as_matrix(xq, index.d, "xq")
    if xq.shape[0] < 2:
        raise ValueError(f"xq: expected at least 2 queries to measure recall, got {xq.shape[0]}")
    k = check_k(k)
    if index.ntotal < k:
        raise ValueError(f"k: expected at most index.ntotal = {index.ntotal} neighbours, got {k}")
    target = check_float(target_recall, "target_recall")
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target_recall: expected a recall in (0, 1], got {target}")
    if confidence is None:
        z = 0.0
    else:
        confidence = check_float(confidence, "confidence")
        if not 0.5 <= confidence < 1.0:
            raise ValueError(f"confidence: expected a probability in [0.5, 1) or None, got {confidence}")
        z = statistics.NormalDist().inv_cdf(confidence)
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
    min_time = max(0.0, check_float(min_time, "min_time"))
    max_experiments = check_int(max_experiments, "max_experiments", lo=1)

    ps = ParameterSpace()
    ps.verbose = 0
    if ranges is None:
        ps.initialize(index)
        _add_exhaustive_nprobe(ps, index)
    else:
        for name, values in dict(ranges).items():
            vals = sorted({float(check_float(x, f"ranges[{name!r}]")) for x in values})
            if not vals:
                raise ValueError(f"ranges[{name!r}]: expected at least one value, got none")
            ps.add_range(name).values[:] = vals
        ps.set_index_parameters(index, ps.combination(0))  # every name is checked once, up front
    truth = _ground_truth(index, xq, k, gt, xb)

    tuner = _Tuner(index, xq, truth, ps, target, z, k, mode, min_time)
    tuner.warm_up()
    skipped = tuner.grid(max_experiments)
    chosen = tuner.best()
    met = chosen is not None
    if met and refine:
        chosen = tuner.bisect(chosen)
    if not met:
        chosen = max(tuner.points, key=lambda p: (p.recall, p.qps))
        warnings.warn(f"tune: no setting of {_label(index)} reaches recall@{k} >= {target:g} "
                      f"(best {chosen.recall:.4f} at {chosen.key or 'its only setting'}); that one is set",
                      RuntimeWarning, stacklevel=2)
    ps.set_index_parameters(index, chosen.setting)

    ops = OperatingPoints()
    for i, p in enumerate(tuner.points):
        ops.add(p.recall, 1.0 / p.qps, p.key, i)
    frontier = [tuner.points[op.cno] for op in ops.optimal_pts if op.cno >= 0]
    return TuneReport(target, k, xq.shape[0], mode, confidence, met, chosen, list(tuner.points), frontier,
                      skipped, truth.definition, _label(index))


__all__ = ["tune", "TuneReport", "TunePoint", "ParameterError"]
