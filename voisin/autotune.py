"""FAISS's auto-tuning pieces: criteria, operating points and ``ParameterSpace.explore``.

A criterion scores one search result against a ground truth (FAISS's
``OneRecallAtRCriterion``, ``IntersectionCriterion``); ``OperatingPoints``
keeps every (score, seconds) measured and the Pareto-optimal ones;
:func:`explore` runs combinations of a :class:`~voisin.params.ParameterSpace`
the way FAISS does, skipping those the points already seen prove
sub-optimal (scores and times are assumed to grow with every knob).

Example:
    >>> import numpy as np, voisin
    >>> rng = np.random.default_rng(0)
    >>> xb, xq = rng.random((2000, 8), dtype="float32"), rng.random((50, 8), dtype="float32")
    >>> _, gt = voisin.knn(xq, xb, 1)
    >>> index = voisin.index_factory(8, "IVF32,Flat"); index.train(xb); index.add(xb)
    >>> crit = voisin.OneRecallAtRCriterion(50, 1); crit.set_groundtruth(None, gt)
    >>> ps = voisin.ParameterSpace(); ps.verbose = 0; ps.initialize(index)
    >>> ops = ps.explore(index, xq, crit)
    >>> ops.optimal_pts[-1].perf > 0.9
    True
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._validate import as_matrix, check_int
from .evaluate import _first_occurrence
from .params import ParameterError, _Vector


# --------------------------------------------------------------------------------------
# criteria
# --------------------------------------------------------------------------------------

class AutoTuneCriterion:
    """Scores the ids a search returned for ``nq`` queries asked for ``nnn`` neighbours.

    Example:
        >>> import numpy as np
        >>> crit = IntersectionCriterion(2, 2)
        >>> crit.set_groundtruth(None, np.array([[1, 2], [3, 4]]))
        >>> crit.evaluate(None, np.array([[2, 9], [3, 4]]))
        0.75
    """

    def __init__(self, nq: int, nnn: int):
        self.nq = check_int(nq, "nq", lo=1)
        self.nnn = check_int(nnn, "nnn", lo=1)
        self.gt_nnn = 0
        self.gt_D: np.ndarray | None = None
        self.gt_I: np.ndarray | None = None

    def set_groundtruth(self, D: Any, I: Any) -> None:
        """The true neighbours: ``I`` (nq, gt_nnn) int64 ids, ``D`` their distances or None."""
        I = np.asarray(I)
        if I.ndim != 2 or I.dtype.kind not in "iu":
            raise ValueError(f"I: expected a 2-D integer array of ground-truth ids, got shape {I.shape} "
                             f"and dtype {I.dtype}")
        if D is not None and np.shape(D) != I.shape:
            raise ValueError(f"D: expected the shape of I {I.shape}, got {np.shape(D)}")
        self.nq, self.gt_nnn = I.shape
        self.gt_I = np.ascontiguousarray(I, dtype=np.int64)
        self.gt_D = None if D is None else np.ascontiguousarray(D, dtype=np.float32)

    def _check(self, I: Any, need_gt: int) -> np.ndarray:
        if self.gt_I is None or self.gt_nnn < need_gt:
            raise ValueError(f"{type(self).__name__}: ground truth not initialized with at least "
                             f"{need_gt} neighbours per query; call set_groundtruth(D, I) first")
        I = np.asarray(I)
        if I.shape != (self.nq, self.nnn):
            raise ValueError(f"I: expected shape (nq, nnn) = {(self.nq, self.nnn)}, got {I.shape}")
        return I

    def evaluate(self, D: Any, I: Any) -> float:
        raise NotImplementedError


class OneRecallAtRCriterion(AutoTuneCriterion):
    """Share of queries whose true nearest neighbour is among the first ``R`` results (1-recall@R).

    Example:
        >>> import numpy as np
        >>> crit = OneRecallAtRCriterion(2, 2)
        >>> crit.set_groundtruth(None, np.array([[1], [3]]))
        >>> crit.evaluate(None, np.array([[2, 1], [4, 5]]))
        0.5
    """

    def __init__(self, nq: int, R: int):
        super().__init__(nq, R)
        self.R = self.nnn

    def evaluate(self, D: Any, I: Any) -> float:
        I = self._check(I, 1)
        hit = (I[:, :self.R] == self.gt_I[:, :1]).any(axis=1)
        return float(hit.mean())


class IntersectionCriterion(AutoTuneCriterion):
    """Mean share of the true first ``R`` ids found among the first ``R`` results (R-recall@R).

    Example:
        >>> import numpy as np
        >>> crit = IntersectionCriterion(1, 3)
        >>> crit.set_groundtruth(None, np.array([[1, 2, 3]]))
        >>> round(crit.evaluate(None, np.array([[3, 9, 1]])), 3)
        0.667
    """

    def __init__(self, nq: int, R: int):
        super().__init__(nq, R)
        self.R = self.nnn

    def evaluate(self, D: Any, I: Any) -> float:
        I = self._check(I, self.R)
        R = self.R
        truth, got = self.gt_I[:, :R], I[:, :R]
        # as FAISS's ranklist_intersection_size: distinct common ids, -1 never counts
        match = (got[:, :, None] == truth[:, None, :]) & (truth[:, None, :] >= 0)
        found = match.any(axis=1) & _first_occurrence(truth)
        return float(found.sum() / (self.nq * R))


# --------------------------------------------------------------------------------------
# operating points
# --------------------------------------------------------------------------------------

@dataclass
class OperatingPoint:
    """One measured combination: score ``perf``, search seconds ``t``, its ``key`` and number ``cno``.

    Example:
        >>> OperatingPoint(0.9, 0.01, "nprobe=16", 4).key
        'nprobe=16'
    """

    perf: float
    t: float
    key: str
    cno: int


class OperatingPoints:
    """Every measured point (``all_pts``) and the Pareto-optimal ones (``optimal_pts``, by perf).

    ``optimal_pts`` starts with FAISS's "do nothing" point (perf 0, t 0, cno -1).

    Example:
        >>> ops = OperatingPoints()
        >>> ops.add(0.5, 1.0, "a", 0), ops.add(0.4, 2.0, "b", 1), ops.add(0.9, 3.0, "c", 2)
        (True, False, True)
        >>> [p.key for p in ops.optimal_pts], ops.t_for_perf(0.7)
        (['', 'a', 'c'], 3.0)
    """

    def __init__(self) -> None:
        self.all_pts: _Vector = _Vector()
        self.optimal_pts: _Vector = _Vector()
        self.clear()

    def clear(self) -> None:
        self.all_pts.clear()
        self.optimal_pts[:] = [OperatingPoint(0.0, 0.0, "", -1)]

    def add(self, perf: float, t: float, key: str, cno: int = 0) -> bool:
        """Record a point; True when it is Pareto-optimal among those seen (FAISS's rule)."""
        op = OperatingPoint(float(perf), float(t), str(key), int(cno))
        self.all_pts.append(op)
        if op.perf == 0:
            return False  # nothing at zero accuracy beats doing nothing
        a = self.optimal_pts
        if op.perf > a[-1].perf:
            a.append(op)
        elif op.perf == a[-1].perf:
            if op.t >= a[-1].t:
                return False
            a[-1] = op
        else:
            i = next(i for i, p in enumerate(a) if p.perf >= op.perf)
            if op.t >= a[i].t:
                return False
            if a[i].perf == op.perf:
                a[i] = op
            else:
                a.insert(i, op)
        for i in range(len(a) - 1, 0, -1):  # a better point no slower retires worse ones (as faiss 1.15)
            if a[i].t <= a[i - 1].t:
                del a[i - 1]
        return True

    def merge_with(self, other: OperatingPoints, prefix: str = "") -> int:
        """Add ``other``'s points (keys prefixed); returns how many were optimal."""
        return sum(self.add(op.perf, op.t, prefix + op.key, op.cno) for op in other.all_pts)

    def t_for_perf(self, perf: float) -> float:
        """Least time of an optimal point with score >= ``perf`` (1e50 when none reaches it)."""
        a = self.optimal_pts
        if perf > a[-1].perf:
            return 1e50
        i0, i1 = -1, len(a) - 1
        while i0 + 1 < i1:
            imed = (i0 + i1 + 1) // 2
            if a[imed].perf < perf:
                i0 = imed
            else:
                i1 = imed
        return a[i1].t

    def display(self, only_optimal: bool = True) -> None:
        pts = self.optimal_pts if only_optimal else self.all_pts
        print(f"Tested {len(self.all_pts)} operating points, {len(self.optimal_pts)} ones are Pareto-optimal:")
        best = {p.cno for p in self.optimal_pts}
        for op in pts:
            star = "*" if not only_optimal and op.cno in best else ""
            print(f"cno={op.cno} key={op.key} perf={op.perf:.4f} t={op.t:.3f} {star}")

    def all_to_gnuplot(self, fname: str) -> None:
        with open(fname, "w") as f:
            for op in self.all_pts:
                f.write(f"{op.perf:g} {op.t:g} {op.key}\n")

    def optimal_to_gnuplot(self, fname: str) -> None:
        with open(fname, "w") as f:
            prev = 0.0
            for op in self.optimal_pts:
                f.write(f"{prev:g} {op.t:g}\n{op.perf:g} {op.t:g} {op.key}\n")
                prev = op.perf


# --------------------------------------------------------------------------------------
# explore
# --------------------------------------------------------------------------------------

def timed_search(ps: Any, index: Any, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Search ``xq`` in ``ps.batchsize`` blocks, repeated until ``ps.min_test_duration``;
    returns the results and the mean seconds of one pass."""
    nq = xq.shape[0]
    step = max(1, int(ps.batchsize))
    t0 = time.perf_counter()
    runs = 0
    while True:
        parts = [index.search(xq[q0:q0 + step], k) for q0 in range(0, nq, step)]
        runs += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= ps.min_test_duration:
            break
    D = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    I = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
    return D, I, elapsed / runs


def _bounds(ps: Any, cno: int, pts: list[OperatingPoint]) -> tuple[float, float]:
    """(upper bound on the score, lower bound on the time) of ``cno`` from measured points."""
    upper_perf, lower_t = 1.0, 0.0
    for op in pts:
        if ps.combination_ge(cno, op.cno):
            lower_t = max(lower_t, op.t)
        if ps.combination_ge(op.cno, cno):
            upper_perf = min(upper_perf, op.perf)
    return upper_perf, lower_t


def explore(ps: Any, index: Any, xq: Any, crit: AutoTuneCriterion) -> OperatingPoints:
    """FAISS's ``ParameterSpace::explore`` (see :meth:`voisin.ParameterSpace.explore`)."""
    xq = as_matrix(xq, index.d, "xq")
    if xq.shape[0] != crit.nq:
        raise ValueError(f"xq: expected crit.nq = {crit.nq} queries, got {xq.shape[0]}")
    n_comb = ps.n_combinations()
    if n_comb == 0:
        raise ParameterError("parameter_ranges: a range has no values; call initialize(index) or "
                             "fill each range's values")
    ops = OperatingPoints()
    n_exp = int(ps.n_experiments)
    if n_exp == 0:
        order, prune = list(range(n_comb)), False
    else:
        if n_comb > 1 and n_exp <= 2:
            raise ParameterError(f"n_experiments: expected 0 (all) or more than 2, got {n_exp}")
        rest = np.random.default_rng(1234).permutation(n_comb - 2) + 1 if n_comb > 2 else []
        order = ([0, n_comb - 1] if n_comb > 1 else [0]) + [int(c) for c in rest]
        order, prune = order[:min(n_exp, n_comb)], True
    for xp, cno in enumerate(order):
        name = ps.combination_name(cno)
        if prune:
            upper_perf, lower_t = _bounds(ps, cno, ops.all_pts)
            if ops.t_for_perf(upper_perf) <= lower_t:
                if ps.verbose:
                    print(f"  {xp}/{len(order)}: cno={cno} {name} skip (bounds perf<={upper_perf:.3f} "
                          f"t>={lower_t:.3f})")
                continue
        ps.set_index_parameters(index, cno)
        D, I, t = timed_search(ps, index, xq, crit.nnn)
        perf = crit.evaluate(D, I)
        keep = ops.add(perf, t, name, cno)
        if ps.verbose:
            print(f"  {xp}/{len(order)}: cno={cno} {name} perf={perf:.3f} t={t:.3f} s {'*' if keep else ''}")
    return ops
