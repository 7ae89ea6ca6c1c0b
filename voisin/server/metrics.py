"""Request counters and latency histograms, rendered in Prometheus' text format
(``GET /metrics``), with the collections' sizes read at scrape time.

Example:
    >>> m = Metrics()
    >>> m.observe("GET", "/collections", 200, 0.002)
    >>> 'voisin_requests_total{method="GET",route="/collections",status="200"} 1' in m.render([])
    True
"""

from __future__ import annotations

import bisect
import threading
from typing import Iterable

#: latency buckets (seconds): 0.5 ms to 10 s
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _label(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """Thread-safe counters of the requests served."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = {}
        self._latency: dict[str, list] = {}   # route -> [bucket counts..., sum, count]

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (method, route, status)
            self._requests[key] = self._requests.get(key, 0) + 1
            h = self._latency.get(route)
            if h is None:
                h = self._latency[route] = [0] * len(BUCKETS) + [0.0, 0]
            i = bisect.bisect_left(BUCKETS, seconds)
            if i < len(BUCKETS):
                h[i] += 1
            h[-2] += seconds
            h[-1] += 1

    def render(self, collections: Iterable[tuple[str, int, int]]) -> str:
        """The exposition text; ``collections``: (name, points, indexed points)."""
        out = ["# HELP voisin_requests_total HTTP requests answered, by route and status.",
               "# TYPE voisin_requests_total counter"]
        with self._lock:
            requests = sorted(self._requests.items())
            latency = sorted((r, list(h)) for r, h in self._latency.items())
        for (method, route, status), n in requests:
            out.append(f'voisin_requests_total{{method="{method}",route="{_label(route)}",'
                       f'status="{status}"}} {n}')
        out += ["# HELP voisin_request_duration_seconds Time to answer a request, by route.",
                "# TYPE voisin_request_duration_seconds histogram"]
        for route, h in latency:
            cum = 0
            r = _label(route)
            for le, n in zip(BUCKETS, h):
                cum += n
                out.append(f'voisin_request_duration_seconds_bucket{{route="{r}",le="{le}"}} {cum}')
            out.append(f'voisin_request_duration_seconds_bucket{{route="{r}",le="+Inf"}} {h[-1]}')
            out.append(f'voisin_request_duration_seconds_sum{{route="{r}"}} {h[-2]:.6f}')
            out.append(f'voisin_request_duration_seconds_count{{route="{r}"}} {h[-1]}')
        cols = list(collections)
        out += ["# HELP voisin_collections Collections in the database.",
                "# TYPE voisin_collections gauge", f"voisin_collections {len(cols)}",
                "# HELP voisin_collection_points Points stored in a collection.",
                "# TYPE voisin_collection_points gauge"]
        out += [f'voisin_collection_points{{collection="{_label(n)}"}} {p}' for n, p, _ in cols]
        out += ["# HELP voisin_index_points Points held by a collection's ANN index.",
                "# TYPE voisin_index_points gauge"]
        out += [f'voisin_index_points{{collection="{_label(n)}"}} {i}' for n, _, i in cols]
        return "\n".join(out) + "\n"
