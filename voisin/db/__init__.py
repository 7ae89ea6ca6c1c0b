"""Collections: an embedded vector database over voisin's indexes.

Points (id + vector + JSON payload) live in SQLite, the source of truth; the
ANN index is derived state, checkpointed and rebuilt as needed; filters are
Qdrant's JSON language. See docs/collections.md.

Example:
    >>> import numpy as np, voisin
    >>> db = voisin.connect()                       # or voisin.connect("data/")
    >>> col = db.create_collection("docs", dim=2, metric="euclid")
    >>> col.upsert([10, 11], [[0, 0], [1, 1]], payloads=[{"year": 2020}, {"year": 2024}])
    1
    >>> col.search([0.9, 0.9], k=1, filter={"must": [{"key": "year", "range": {"gte": 2021}}]}).ids
    [[11]]
    >>> db.close()
"""

from .collection import Collection
from .database import Database, connect, restore
from .errors import (CollectionExistsError, CollectionNotFoundError, DatabaseError,
                     DatabaseLockedError, FilterError, NotADatabaseError, PointNotFoundError,
                     ReadOnlyError)
from .results import Hits, QueryHits, Record, ScoredPoint

__all__ = ["connect", "restore", "Database", "Collection", "Hits", "QueryHits", "Record",
           "ScoredPoint", "DatabaseError", "NotADatabaseError", "DatabaseLockedError",
           "ReadOnlyError", "CollectionNotFoundError", "CollectionExistsError", "FilterError",
           "PointNotFoundError"]
