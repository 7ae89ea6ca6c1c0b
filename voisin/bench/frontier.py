"""Pareto frontier of (recall, QPS) points and QPS at a target recall.

>>> pts = [(0.80, 1000.0), (0.90, 600.0), (0.85, 500.0), (1.00, 100.0)]
>>> pareto_frontier(pts)
[(0.8, 1000.0), (0.9, 600.0), (1.0, 100.0)]
>>> qps_at_recall(pts, 0.95)["qps"]
350.0
"""

from __future__ import annotations

from collections.abc import Sequence

INTERPOLATION = ("QPS at a recall target is read off the Pareto frontier of (recall@k, median QPS): "
                 "linear interpolation in QPS between the two frontier points whose recalls bracket the "
                 "target; when every frontier point is at or above the target, the fastest one's QPS; "
                 "null when no point reaches the target (never extrapolated)")


def pareto_frontier(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (recall, qps) points no other point beats on both, sorted by recall ascending.

    A point is dropped when another has recall >= and qps >= with one of them strictly greater.
    """
    pts = sorted(((float(r), float(q)) for r, q in points), key=lambda p: (-p[0], -p[1]))
    front: list[tuple[float, float]] = []
    best_qps = float("-inf")
    for r, q in pts:
        if q > best_qps:
            front.append((r, q))
            best_qps = q
    return front[::-1]


def qps_at_recall(points: Sequence[tuple[float, float]], target: float) -> dict:
    """QPS reachable at recall >= ``target`` (see :data:`INTERPOLATION`).

    Returns ``{"qps", "method", "between"}`` where ``method`` is
    ``"interpolated"``, ``"frontier point"`` or ``"not reached"``.
    """
    front = pareto_frontier(points)
    above = [p for p in front if p[0] >= target]
    if not above:
        best = max((p[0] for p in front), default=None)
        return {"qps": None, "method": "not reached", "between": None, "max_recall": best}
    hi = above[0]  # lowest recall that still reaches the target: the fastest such point
    below = [p for p in front if p[0] < target]
    if not below or hi[0] == target:
        return {"qps": hi[1], "method": "frontier point", "between": [list(hi)]}
    lo = below[-1]
    t = (target - lo[0]) / (hi[0] - lo[0])
    qps = lo[1] + t * (hi[1] - lo[1])
    return {"qps": qps, "method": "interpolated", "between": [list(lo), list(hi)]}
