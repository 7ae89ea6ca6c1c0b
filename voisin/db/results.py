"""What reads return: Qdrant's shapes in Python.

``Record`` (get / scroll) and ``ScoredPoint`` (search) are a point id with its
payload, and optionally its vector and stored document. A search returns
``Hits``: one ``QueryHits`` per query, each with ``ids``, ``scores``,
``payloads``, ``vectors`` and ``documents`` in rank order; ``Hits`` also
exposes those attributes as lists with one entry per query.

Example:
    >>> h = QueryHits([ScoredPoint(3, 0.5, {"a": 1})])
    >>> h.ids, h.scores.tolist(), h.payloads
    ([3], [0.5], [{'a': 1}])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np


@dataclass
class Record:
    """A stored point: ``id``, ``payload``, and ``vector`` / ``document`` when asked for."""

    id: Any
    payload: dict | None = None
    vector: np.ndarray | None = None
    document: str | None = None


@dataclass
class ScoredPoint(Record):
    """A search result: a point and its ``score`` (cosine / dot: similarity,
    higher first; euclid: distance, lower first)."""

    score: float = 0.0

    def __init__(self, id: Any, score: float, payload: dict | None = None,
                 vector: np.ndarray | None = None, document: str | None = None):
        super().__init__(id, payload, vector, document)
        self.score = float(score)


class QueryHits:
    """The results of one query, best first."""

    def __init__(self, points: list[ScoredPoint]):
        self.points = points

    def __len__(self) -> int:
        return len(self.points)

    def __iter__(self) -> Iterator[ScoredPoint]:
        return iter(self.points)

    def __getitem__(self, i: int) -> ScoredPoint:
        return self.points[i]

    @property
    def ids(self) -> list:
        return [p.id for p in self.points]

    @property
    def scores(self) -> np.ndarray:
        return np.array([p.score for p in self.points], dtype=np.float32)

    @property
    def payloads(self) -> list:
        return [p.payload for p in self.points]

    @property
    def vectors(self) -> list:
        return [p.vector for p in self.points]

    @property
    def documents(self) -> list:
        return [p.document for p in self.points]

    def __repr__(self) -> str:
        return f"QueryHits(ids={self.ids}, scores={self.scores.round(4).tolist()})"


class Hits:
    """The results of a search call: one :class:`QueryHits` per query."""

    def __init__(self, queries: list[QueryHits]):
        self.queries = queries

    def __len__(self) -> int:
        return len(self.queries)

    def __iter__(self) -> Iterator[QueryHits]:
        return iter(self.queries)

    def __getitem__(self, i: int) -> QueryHits:
        return self.queries[i]

    @property
    def ids(self) -> list[list]:
        return [q.ids for q in self.queries]

    @property
    def scores(self) -> list[np.ndarray]:
        return [q.scores for q in self.queries]

    @property
    def payloads(self) -> list[list]:
        return [q.payloads for q in self.queries]

    @property
    def vectors(self) -> list[list]:
        return [q.vectors for q in self.queries]

    @property
    def documents(self) -> list[list]:
        return [q.documents for q in self.queries]

    def __repr__(self) -> str:
        return f"Hits({len(self.queries)} queries: {self.queries!r})"
