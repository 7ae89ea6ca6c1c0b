"""Replicated indexes in one process: FAISS's IndexReplicas.

Every replica holds the same vectors; writes go to all of them and a batch of
queries is split into one contiguous slice per replica, searched in parallel.
The answer is the answer of any one replica; the gain is throughput when the
replicas sit on different devices or when one index does not use every core
by itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..index import Index
from ..selector import IDSelector
from ..range_results import concat_range_results
from .threaded import ThreadedIndex


class IndexReplicas(ThreadedIndex):
    """The same index several times; queries are split across the replicas.

    A new replica must hold as many vectors as those already in (FAISS's
    rule): build replicas as copies, e.g. ``voisin.deserialize_index(voisin.serialize_index(ix))``.

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).random((1000, 16), dtype="float32")
        >>> rep = voisin.IndexReplicas(16)
        >>> for _ in range(2):
        ...     rep.add_replica(voisin.IndexFlatL2(16))
        >>> rep.add(xb)
        >>> D, I = rep.search(xb[:10], 5)
        >>> rep.ntotal, [rep.at(i).ntotal for i in range(rep.count())]
        (1000, [1000, 1000])
    """

    _member = "replica"

    def add_replica(self, index: Index) -> None:
        """Append a replica: same dimension, metric and ntotal as the others."""
        self._add_member(index)

    def remove_replica(self, index: Index) -> None:
        self._remove_member(index)

    addIndex = add_replica
    removeIndex = remove_replica

    def _check_new_member(self, index: Index) -> None:
        if self._subs and index.ntotal != self._subs[0].ntotal:
            raise ValueError(f"index: a new replica must hold the {self._subs[0].ntotal} vectors "
                             f"the others hold, it holds {index.ntotal}")

    @property
    def ntotal(self) -> int:  # type: ignore[override]
        subs = getattr(self, "_subs", None)
        return subs[0].ntotal if subs else 0

    @ntotal.setter
    def ntotal(self, value: int) -> None:
        pass  # the first replica's

    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        self._require_members()
        if ids is None:
            self._run(lambda i, s: s.add(x))
        else:
            self._run(lambda i, s: s.add_with_ids(x, ids))

    def _slices(self, n: int) -> list[tuple[int, int]]:
        # FAISS: ceil(n / nreplica) queries each, the last replicas may get none
        per = -(-n // len(self._subs))
        return [(min(i * per, n), min((i + 1) * per, n)) for i in range(len(self._subs))]

    def _search(self, x, k, params, D, I):
        self._require_members()
        nq = x.shape[0]
        D = np.empty((nq, k), dtype=np.float32) if D is None else D
        I = np.empty((nq, k), dtype=np.int64) if I is None else I
        slices = self._slices(nq)
        busy = [i for i, (a, b) in enumerate(slices) if b > a]

        def search(i: int, rep: Index) -> None:
            a, b = slices[i]
            D[a:b], I[a:b] = rep.search(x[a:b], k, params)
        self._run(search, busy)
        return D, I

    def _range_search(self, x, radius, params):
        self._require_members()
        nq = x.shape[0]
        slices = self._slices(nq)
        busy = [i for i, (a, b) in enumerate(slices) if b > a]
        parts = self._run(lambda i, rep: rep.range_search(x[slices[i][0]:slices[i][1]], radius, params), busy)
        # each part covers its own slice of queries: pad it to all nq queries
        padded = []
        for i, (lims, d, ids) in zip(busy, parts):
            a, b = slices[i]
            full = np.zeros(nq + 1, dtype=np.int64)
            full[a + 1:b + 1] = lims[1:].astype(np.int64)
            full[b + 1:] = int(lims[-1])
            padded.append((full, d, ids))
        return concat_range_results(padded, nq)

    def _remove(self, sel: IDSelector) -> int:
        self._require_members()
        return int(self._run(lambda i, s: s.remove_ids(sel))[0])

    def _reconstruct_keys(self, keys: np.ndarray) -> np.ndarray:
        self._require_members()
        return self._subs[0].reconstruct_batch(keys)

    def reconstruct_n(self, i0: int = 0, ni: int | None = None) -> Any:
        self._require_members()
        return self._subs[0].reconstruct_n(i0, ni)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(d={self.d}, replicas={len(self._subs)}, ntotal={self.ntotal})"
