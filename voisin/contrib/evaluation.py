"""Comparing search results (``faiss.contrib.evaluation``): k-NN intersection,
precision/recall of range search, checks against a reference with ties, the
Pareto bookkeeping of parameter sweeps, and a repeat timer.

The per-query set operations are vectorised over all queries at once
(FAISS loops in a thread pool).

Example:
    >>> import numpy as np
    >>> from voisin.contrib.evaluation import knn_intersection_measure
    >>> knn_intersection_measure(np.array([[1, 2], [3, 4]]), np.array([[2, 1], [3, 5]]))
    0.75
"""

from __future__ import annotations

import time
from typing import Any, Iterator

import numpy as np

from .._validate import check_int

__all__ = ["knn_intersection_measure", "filter_range_results", "range_PR", "counts_to_PR",
           "sort_range_res_2", "sort_range_res_1", "range_PR_multiple_thresholds",
           "check_ref_knn_with_draws", "check_ref_range_results", "OperatingPoints",
           "OperatingPointsWithRanges", "TimerIter", "RepeatTimer"]


# --------------------------------------------------------------------------
# k-NN and range results
# --------------------------------------------------------------------------

def _pair_keys(qa: np.ndarray, va: np.ndarray, qb: np.ndarray, vb: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """(query, id) pairs of two result sets as comparable int64 keys."""
    values, inverse = np.unique(np.concatenate([va, vb]), return_inverse=True)
    width = max(values.size, 1)
    inverse = inverse.astype(np.int64)
    return (qa.astype(np.int64) * width + inverse[:va.size],
            qb.astype(np.int64) * width + inverse[va.size:])


def _intersections(qa: np.ndarray, va: np.ndarray, qb: np.ndarray, vb: np.ndarray,
                   nq: int) -> np.ndarray:
    """Per query, the number of distinct ids present in both result sets."""
    ka, kb = _pair_keys(qa, va, qb, vb)
    ka, first = np.unique(ka, return_index=True)
    common = np.isin(ka, kb)
    return np.bincount(qa[first][common].astype(np.int64), minlength=nq)


def knn_intersection_measure(I1: Any, I2: Any) -> float:
    """Share of the ids of ``I1`` that ``I2`` also returns for the same query
    (each row compared as a set), over all I1.size slots."""
    I1, I2 = np.asarray(I1), np.asarray(I2)
    if I1.ndim != 2 or I2.shape != I1.shape:
        raise ValueError(f"I2: expected the shape of I1 {I1.shape}, got {I2.shape}")
    nq, rank = I1.shape
    if I1.size == 0:
        return float("nan")
    q = np.repeat(np.arange(nq), rank)
    return float(_intersections(q, I1.ravel(), q, I2.ravel(), nq).sum() / I1.size)


def _query_of(lims: np.ndarray) -> np.ndarray:
    lims = np.asarray(lims).astype(np.int64)
    return np.repeat(np.arange(lims.size - 1), np.diff(lims))


def filter_range_results(lims: Any, D: np.ndarray, I: np.ndarray, thresh: float
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the range results with distance below ``thresh``."""
    lims = np.asarray(lims)
    mask = D < thresh
    new_lims = np.zeros_like(lims)
    new_lims[1:] = np.cumsum(np.bincount(_query_of(lims)[mask], minlength=lims.size - 1))
    return new_lims, D[mask], I[mask]


def counts_to_PR(ngt: Any, nres: Any, ninter: Any, mode: str = "overall") -> tuple[float, float]:
    """Precision and recall from per-query counts of ground-truth results,
    returned results and correct ones; "overall" pools the counts, "average"
    averages the per-query values (a query with nothing to find and nothing
    found counts as recall 1)."""
    ngt = np.asarray(ngt, dtype=np.int64)
    nres = np.asarray(nres, dtype=np.int64)
    ninter = np.asarray(ninter, dtype=np.int64)
    if mode == "overall":
        g, r, i = int(ngt.sum()), int(nres.sum()), int(ninter.sum())
        precision = i / r if r > 0 else 1.0
        recall = i / g if g > 0 else (1.0 if r == 0 else 0.0)
        return precision, recall
    if mode == "average":
        if (ninter[nres == 0] != 0).any():
            raise ValueError("ninter: a query with no results cannot have correct ones")
        recalls = np.where(ngt == 0, (nres == 0).astype(float), ninter / np.maximum(ngt, 1))
        precisions = np.where(nres == 0, 1.0, ninter / np.maximum(nres, 1))
        return float(precisions.mean()), float(recalls.mean())
    raise ValueError(f"mode: expected 'overall' or 'average', got {mode!r}")


def range_PR(lims_ref: Any, Iref: np.ndarray, lims_new: Any, Inew: np.ndarray,
             mode: str = "overall") -> tuple[float, float]:
    """Precision and recall of range results ``(lims_new, Inew)`` against the
    reference ``(lims_ref, Iref)``; distances are not looked at."""
    lims_ref, lims_new = np.asarray(lims_ref), np.asarray(lims_new)
    nq = lims_ref.size - 1
    if lims_new.size - 1 != nq:
        raise ValueError(f"lims_new: {lims_new.size - 1} queries, the reference has {nq}")
    ninter = _intersections(_query_of(lims_ref), np.asarray(Iref), _query_of(lims_new),
                            np.asarray(Inew), nq)
    return counts_to_PR(np.diff(lims_ref.astype(np.int64)), np.diff(lims_new.astype(np.int64)),
                        ninter, mode)


def sort_range_res_2(lims: Any, D: np.ndarray, I: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each query's results sorted by distance: returns ``(I, D)``."""
    order = np.lexsort((D, _query_of(lims)))
    return I[order], D[order]


def sort_range_res_1(lims: Any, I: np.ndarray) -> np.ndarray:
    """Each query's result ids sorted."""
    return I[np.lexsort((I, _query_of(lims)))]


def range_PR_multiple_thresholds(lims_ref: Any, Iref: np.ndarray, lims_new: Any,
                                 Dnew: np.ndarray, Inew: np.ndarray, thresholds: Any,
                                 mode: str = "overall", do_sort: str = "ref,new"
                                 ) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall of the "new" results cut at each threshold (for PR curves)."""
    lims_ref, lims_new = np.asarray(lims_ref), np.asarray(lims_new)
    thresholds = np.asarray(thresholds)
    nq = lims_ref.size - 1
    if lims_new.size - 1 != nq:
        raise ValueError(f"lims_new: {lims_new.size - 1} queries, the reference has {nq}")
    if "new" in do_sort:
        Inew, Dnew = sort_range_res_2(lims_new, Dnew, Inew)
    q_new = _query_of(lims_new)
    correct = np.zeros(Inew.size, dtype=bool)
    if Inew.size:
        k_ref, k_new = _pair_keys(_query_of(lims_ref), np.asarray(Iref), q_new, np.asarray(Inew))
        correct = np.isin(k_new, k_ref)
    nt = thresholds.size
    counts = np.zeros((nq, nt, 3), dtype=np.int64)
    counts[:, :, 0] = np.diff(lims_ref.astype(np.int64))[:, None]
    ok_cum = np.concatenate([[0], np.cumsum(correct)])
    starts = lims_new[:-1].astype(np.int64)
    for q in range(nq):
        s, e = starts[q], int(lims_new[q + 1])
        if e == s:
            continue
        nres = np.searchsorted(Dnew[s:e], thresholds)
        counts[q, :, 1] = nres
        counts[q, :, 2] = ok_cum[s + nres] - ok_cum[s]
    precisions = np.zeros(nt)
    recalls = np.zeros(nt)
    for t in range(nt):
        precisions[t], recalls[t] = counts_to_PR(counts[:, t, 0], counts[:, t, 1],
                                                 counts[:, t, 2], mode)
    return precisions, recalls


# --------------------------------------------------------------------------
# checks against a reference (raise AssertionError)
# --------------------------------------------------------------------------

def _cluster_tables_with_tolerance(tab1: np.ndarray, tab2: np.ndarray, thr: float
                                   ) -> tuple[np.ndarray, np.ndarray]:
    """Group the values of two tables, merging values closer than ``thr``;
    returns the group number of each element."""
    tab = np.sort(np.concatenate([tab1, tab2]))
    gaps = np.ones(tab.size)
    gaps[1:] = np.diff(tab)
    heads = tab[gaps > thr]
    return (np.searchsorted(heads, tab1, side="right") - 1,
            np.searchsorted(heads, tab2, side="right") - 1)


def check_ref_knn_with_draws(Dref: Any, Iref: Any, Dnew: Any, Inew: Any, rtol: float = 1e-5,
                             atol: float = 0) -> None:
    """Assert that k-NN results equal the reference: distances within the
    tolerance, ids equal up to permutations among tied distances (the last
    group of ties may be cut differently)."""
    Dref, Iref, Dnew, Inew = map(np.asarray, (Dref, Iref, Dnew, Inew))
    np.testing.assert_allclose(Dref, Dnew, rtol=rtol, atol=atol)
    for i in np.flatnonzero((Iref != Inew).any(axis=1)):
        r = rtol * Dref[i].max() + atol
        groups, _ = _cluster_tables_with_tolerance(Dref[i], Dnew[i], r)
        for g in np.unique(groups):
            if g == groups[-1]:
                continue
            mask = groups == g
            a, b = set(Iref[i, mask].tolist()), set(Inew[i, mask].tolist())
            if a != b:
                raise AssertionError(f"query {i}: ids {sorted(a)} != {sorted(b)} at tied distance "
                                     f"{Dref[i, mask][0]}")


def check_ref_range_results(Lref: Any, Dref: Any, Iref: Any, Lnew: Any, Dnew: Any, Inew: Any
                            ) -> None:
    """Assert that range results equal the reference, in any order within a query."""
    np.testing.assert_array_equal(Lref, Lnew)
    Iref_s, Dref_s = _by_ids(Lref, np.asarray(Iref), np.asarray(Dref))
    Inew_s, Dnew_s = _by_ids(Lnew, np.asarray(Inew), np.asarray(Dnew))
    np.testing.assert_array_equal(Iref_s, Inew_s)
    np.testing.assert_array_almost_equal(Dref_s, Dnew_s, decimal=5)


def _by_ids(lims: Any, I: np.ndarray, D: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((I, _query_of(lims)))
    return I[order], D[order]


# --------------------------------------------------------------------------
# operating points (the Python counterpart of FAISS's AutoTune bookkeeping)
# --------------------------------------------------------------------------

class OperatingPoints:
    """Experiments as (key, performance, time); keeps the Pareto-optimal ones
    in ``operating_points`` and the others in ``suboptimal_points``."""

    def __init__(self) -> None:
        self.operating_points: list[tuple[Any, float, float]] = []
        self.suboptimal_points: list[tuple[Any, float, float]] = []

    def compare_keys(self, k1: Any, k2: Any) -> int:
        """1 if k1 > k2 (slower, more accurate), -1 if k1 < k2, 0 if unordered."""
        raise NotImplementedError

    def do_nothing_key(self) -> Any:
        raise NotImplementedError

    def is_pareto_optimal(self, perf_new: float, t_new: float) -> bool:
        return not any(perf >= perf_new and t <= t_new for _, perf, t in self.operating_points)

    def predict_bounds(self, key: Any) -> tuple[float, float]:
        """(best performance, least time) the experiment ``key`` can reach,
        bounded by the experiments already run on either side of it."""
        max_perf, min_time = 1.0, 0.0
        for key2, perf, t in self.operating_points + self.suboptimal_points:
            cmp = self.compare_keys(key, key2)
            if cmp > 0:
                min_time = max(min_time, t)
            elif cmp < 0:
                max_perf = min(max_perf, perf)
        return max_perf, min_time

    def should_run_experiment(self, key: Any) -> bool:
        return self.is_pareto_optimal(*self.predict_bounds(key))

    def add_operating_point(self, key: Any, perf: float, t: float) -> bool:
        """Record an experiment; returns whether it is Pareto-optimal."""
        if not self.is_pareto_optimal(perf, t):
            self.suboptimal_points.append((key, perf, t))
            return False
        keep = []
        for op in self.operating_points:
            (self.suboptimal_points if perf >= op[1] and t <= op[2] else keep).append(op)
        self.operating_points = keep + [(key, perf, t)]
        return True


class OperatingPointsWithRanges(OperatingPoints):
    """Parameters each taken from an ordered list of values (larger = slower
    and more accurate); a key is the array of value indices."""

    def __init__(self) -> None:
        super().__init__()
        self.ranges: list[tuple[str, list]] = []

    def add_range(self, name: str, values: list) -> None:
        self.ranges.append((name, values))

    def compare_keys(self, k1: Any, k2: Any) -> int:
        k1, k2 = np.asarray(k1), np.asarray(k2)
        if np.all(k1 >= k2):
            return 1
        if np.all(k2 >= k1):
            return -1
        return 0

    def do_nothing_key(self) -> np.ndarray:
        return np.zeros(len(self.ranges), dtype=int)

    def num_experiments(self) -> int:
        return int(np.prod([len(values) for _, values in self.ranges]))

    def sample_experiments(self, n_autotune: int, rs: Any = None) -> list[int]:
        """Experiment numbers to run: the cheapest and the most expensive
        first, then all others (n_autotune = 0) or a sample, in FAISS's order."""
        n_autotune = check_int(n_autotune, "n_autotune", lo=0)
        if n_autotune == 1:
            raise ValueError("n_autotune: expected 0 (all) or at least 2, got 1")
        totex = self.num_experiments()
        # FAISS ignores rs and draws from a fixed RandomState(123): same order here
        state = np.random.RandomState(123)
        if n_autotune == 0 or totex < n_autotune:
            middle = state.permutation(totex - 2)
        else:
            middle = state.choice(totex - 2, size=n_autotune - 2, replace=False)
        return [0, totex - 1] + [int(c) + 1 for c in middle]

    def cno_to_key(self, cno: int) -> np.ndarray:
        """Experiment number -> key (mixed-radix digits, first range fastest)."""
        key = np.zeros(len(self.ranges), dtype=int)
        for i, (_, values) in enumerate(self.ranges):
            cno, key[i] = divmod(cno, len(values))
        if cno != 0:
            raise ValueError("cno: experiment number out of range")
        return key

    def get_parameters(self, k: Any) -> dict:
        return {name: values[k[i]] for i, (name, values) in enumerate(self.ranges)}

    def restrict_range(self, name: str, max_val: Any) -> None:
        """Drop the values of range ``name`` that are >= ``max_val``."""
        for name2, values in self.ranges:
            if name2 == name:
                values[:] = [v for v in values if v < max_val]
                return
        raise KeyError(f"name: parameter {name!r} not found")


# --------------------------------------------------------------------------
# timer
# --------------------------------------------------------------------------

class TimerIter:
    """The iterator of one :class:`RepeatTimer` loop."""

    def __init__(self, timer: "RepeatTimer"):
        from ..utils import omp_set_num_threads
        self.ts: list[float] = []
        self.runs = timer.runs
        self.timer = timer
        if timer.nt >= 0:
            omp_set_num_threads(timer.nt)

    def __iter__(self) -> Iterator[None]:
        return self

    def __next__(self) -> None:
        from ..utils import omp_set_num_threads
        timer = self.timer
        self.runs -= 1
        self.ts.append(time.time())
        total = self.ts[-1] - self.ts[0]
        if self.runs == -1 or total > timer.max_secs:
            if timer.nt >= 0:
                omp_set_num_threads(timer.remember_nt)
            times = np.diff(np.array(self.ts))
            timer.times = times[timer.warmup:] if len(times) == timer.runs else times
            raise StopIteration


class RepeatTimer:
    """Time a block repeated ``runs`` times (``warmup`` first runs dropped),
    with ``nt`` threads if >= 0, stopping early after ``max_secs``::

        timer = RepeatTimer(warmup=1, runs=6)
        for _ in timer:
            index.search(xq, 10)
        print(f"{timer.ms():.1f} ms")
    """

    def __init__(self, warmup: int = 0, nt: int = -1, runs: int = 1, max_secs: float = np.inf):
        from ..utils import omp_get_max_threads
        self.warmup = check_int(warmup, "warmup", lo=0)
        self.runs = check_int(runs, "runs", lo=1)
        if self.warmup >= self.runs:
            raise ValueError(f"warmup: expected fewer warm-up runs than runs={runs}, got {warmup}")
        self.nt = check_int(nt, "nt", lo=-1)
        self.max_secs = max_secs
        self.remember_nt = omp_get_max_threads()
        self.times = np.zeros(0)

    def __iter__(self) -> TimerIter:
        return TimerIter(self)

    def ms(self) -> float:
        return float(np.mean(self.times) * 1000)

    def ms_std(self) -> float:
        return float(np.std(self.times) * 1000) if len(self.times) > 1 else 0.0

    def nruns(self) -> int:
        return len(self.times)
