"""The read side of a collection: count, search, get, scroll, info.

Every read holds the collection's gate for reading, so it sees the state
between two writes, and runs in parallel with other reads. Payloads handed
out are copies; vectors and documents are read from SQLite.
"""

from __future__ import annotations

import bisect
from typing import Any, Sequence

import numpy as np

from .._validate import as_matrix, check_k
from .filters.parse import parse_filter
from .ids import normalize_id, normalize_ids, sort_key
from .results import Hits, QueryHits, Record, ScoredPoint
from .validate import check_limit, check_threshold, check_vectors, clean_documents


def copy_json(v: Any) -> Any:
    """A private copy of a payload (callers may modify what they get)."""
    if isinstance(v, dict):
        return {k: copy_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [copy_json(x) for x in v]
    return v


class CollectionReads:
    """Mixin of :class:`~voisin.db.collection.Collection` (reads only)."""

    def count(self, filter: Any = None) -> int:
        """Points (matching ``filter``)."""
        self._check_open()
        node = parse_filter(filter)
        with self._gate.reading():
            if node is None:
                return self._payloads.count
            return self._payloads.masked(node)[1]

    def __len__(self) -> int:
        return self.count()

    def search(self, query: Any = None, k: int = 10, *, filter: Any = None, offset: int = 0,
               score_threshold: float | None = None, with_payload: bool = True,
               with_vectors: bool = False, with_documents: bool | None = None,
               ef: int | None = None, texts: Sequence[str] | None = None) -> Hits:
        """The ``k`` best points for each query vector (or each of ``texts``).

        ``query``: one vector (dim,) or several (n, dim); ``filter``: Qdrant's
        filter JSON; ``offset``: skip that many results first (paging);
        ``score_threshold``: keep scores above it (euclid: distances below
        it); ``ef``: HNSW search breadth. Returns :class:`Hits`, one entry per query.
        """
        self._check_open()
        # every argument is checked before the texts are embedded (the costly part)
        k = check_k(k)
        offset = check_limit(offset, "offset")
        threshold = check_threshold(score_threshold)
        if ef is not None:
            ef = check_limit(ef, "ef", lo=1)
        node = parse_filter(filter)
        if texts is not None:
            if query is not None:
                raise TypeError("query: expected either query vectors or texts, got both")
            X = self._embed(clean_documents(texts, None, "texts"), "texts")
        else:
            if query is None:
                raise TypeError("query: expected a vector of shape (dim,) or (n, dim)")
            X = check_vectors(as_matrix(query, self.dim, "query"), self.dim, None, self.metric, "query")
        with self._gate.reading():
            if node is None:
                mask, allowed = None, self._payloads.count
            else:
                mask, allowed = self._payloads.masked(node)
            if allowed == 0 or X.shape[0] == 0:
                return Hits([QueryHits([]) for _ in range(X.shape[0])])
            D, I = self._ann.search(X, k + offset, mask, allowed, ef)
            S = self._ann.scores(D)
            larger = self.metric != "euclid"
            picked = []
            for q in range(X.shape[0]):
                keep = np.flatnonzero(I[q] >= 0)[offset:offset + k]
                if threshold is not None:
                    s = S[q, keep]
                    keep = keep[s > threshold] if larger else keep[s < threshold]
                picked.append((I[q, keep], S[q, keep]))
            return Hits([QueryHits(self._points(iids.tolist(), scores.tolist(), with_payload,
                                                with_vectors, with_documents))
                         for iids, scores in picked])

    def _points(self, iids: list[int], scores: list[float] | None, with_payload: bool,
                with_vectors: bool, with_documents: bool | None) -> list:
        docs, ids = self._payloads.docs, self._payloads.ids
        vecs = self._store.vectors(self._cid, iids, self.dim) if with_vectors and iids else {}
        want_docs = self.embedder is not None if with_documents is None else with_documents
        texts = self._store.documents(self._cid, iids) if want_docs and iids else {}
        out = []
        for j, iid in enumerate(iids):
            payload = copy_json(docs[iid]) if with_payload else None
            vector = vecs[iid].copy() if iid in vecs else None
            if scores is None:
                out.append(Record(ids[iid], payload, vector, texts.get(iid)))
            else:
                out.append(ScoredPoint(ids[iid], scores[j], payload, vector, texts.get(iid)))
        return out

    def get(self, ids: Any, *, with_payload: bool = True, with_vectors: bool = False,
            with_documents: bool | None = None) -> list[Record]:
        """The points with these ids, in that order; ids not stored are left out."""
        self._check_open()
        pids = normalize_ids(ids, "ids")
        with self._gate.reading():
            seen, iids = set(), []
            for p in pids:
                iid = self._iid_of.get(p)
                if iid is not None and self._payloads.is_live(iid) and iid not in seen:
                    seen.add(iid)
                    iids.append(iid)
            return self._points(iids, None, with_payload, with_vectors, with_documents)

    def scroll(self, filter: Any = None, limit: int = 10, offset: Any = None, *,
               with_payload: bool = True, with_vectors: bool = False,
               with_documents: bool | None = None) -> tuple[list[Record], Any]:
        """Points in id order (integers, then UUIDs), from id ``offset`` on:
        ``(records, next_offset)``, next_offset None at the end (Qdrant's scroll)."""
        self._check_open()
        limit = check_limit(limit, "limit", lo=1)
        start = None if offset is None else normalize_id(offset)
        node = parse_filter(filter)
        with self._gate.reading():
            order, keys = self._id_order()
            mask = self._payloads.mask(node)
            ids = self._payloads.ids
            if start is not None:
                order = order[bisect.bisect_left(keys, sort_key(start)):]
            picked = order[mask[order]][:limit + 1].tolist()
            nxt = ids[picked[limit]] if len(picked) > limit else None
            return self._points(picked[:limit], None, with_payload, with_vectors, with_documents), nxt

    def _id_order(self) -> tuple[np.ndarray, list]:
        """Internal ids of the live points in scroll order and their sort keys
        (cached until the next write)."""
        version = self._payloads.version
        cached = self._order
        if cached is None or cached[0] != version:
            ids = self._payloads.ids
            live = np.flatnonzero(self._payloads.live()).tolist()
            keyed = sorted((sort_key(ids[i]), i) for i in live)
            cached = self._order = (version, np.array([i for _, i in keyed], dtype=np.int64),
                                    [key for key, _ in keyed])
        return cached[1], cached[2]

    def info(self) -> dict:
        """Size, configuration and what index serves searches."""
        self._check_open()
        with self._gate.reading():
            return {"name": self.name, "points": self._payloads.count, "dim": self.dim,
                    "metric": self.metric, "index": self.config["index"],
                    "index_in_use": self._ann.description, "indexed_points": self._ann.count,
                    "sequence": self.seq, "payload_schema": dict(self._payloads.declared),
                    "embedder": self.config.get("embedder")}
