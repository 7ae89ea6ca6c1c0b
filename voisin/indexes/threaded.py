"""What IndexShards and IndexReplicas share: a list of sub-indexes run side by side.

FAISS's ``ThreadedIndex``: sub-indexes of one dimension and metric, an
operation applied to all of them (in parallel threads when ``threaded``; every
voisin kernel releases the GIL, so the threads use the cores), the first
failure re-raised as it was. The exact merge of per-shard results
(:func:`merge_knn_results`) also serves ``voisin.distributed``.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..index import Index
from ..kernels.merge import merge_topk
from ..metric import METRIC_L2, worst_distance
from ..selector import SearchParameters


class _SharedExclusive:
    """Searches share, writes exclude: a write that renumbers a shard (remove_ids,
    reset) must not interleave with a search translating that shard's ids."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._writer:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            while self._writer:
                self._cond.wait()
            self._writer = True  # from here new searches wait behind this write
            while self._readers:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class ThreadedIndex(Index):
    """Base of :class:`IndexShards` and :class:`IndexReplicas` (not used directly)."""

    #: what one sub-index is called in messages ("shard", "replica")
    _member = "index"

    def __init__(self, d: int, threaded: bool = True):
        super().__init__(d, METRIC_L2)
        self.threaded = bool(threaded)
        self._subs: list[Index] = []
        self._pool: ThreadPoolExecutor | None = None
        self._pool_size = 0
        self._gate = _SharedExclusive()

    # --- pickling: no thread pool, no lock -------------------------------------
    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_pool", None)
        state.pop("_gate", None)
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self._pool = None
        self._pool_size = 0
        self._gate = _SharedExclusive()

    # --- derived state: always read from the sub-indexes -------------------------
    @property
    def is_trained(self) -> bool:  # type: ignore[override]
        return all(s.is_trained for s in self._subs)

    @is_trained.setter
    def is_trained(self, value: bool) -> None:
        pass  # follows the sub-indexes

    def count(self) -> int:
        """Number of sub-indexes."""
        return len(self._subs)

    def at(self, i: int) -> Index:
        """The i-th sub-index."""
        if not isinstance(i, (int, np.integer)) or not 0 <= i < len(self._subs):
            raise IndexError(f"i: expected an integer in [0, {len(self._subs)}), got {i!r}")
        return self._subs[int(i)]

    # --- membership -------------------------------------------------------------
    def _add_member(self, index: Any) -> None:
        name = self._member
        if not isinstance(index, Index):
            raise TypeError(f"index: expected a voisin Index to use as a {name}, got {index!r}")
        if index is self:
            raise ValueError(f"index: a {type(self).__name__} cannot be its own {name}")
        if index.d != self.d:
            raise ValueError(f"index: expected a {name} of dimension d={self.d}, got d={index.d}")
        if self._subs and index.metric_type != self.metric_type:
            raise ValueError(f"index: expected a {name} with metric {self.metric_type} like the "
                             f"others, got metric {index.metric_type}")
        if any(s is index for s in self._subs):
            raise ValueError(f"index: this {name} is already in the {type(self).__name__}")
        with self._write_lock, self._gate.exclusive():
            self._check_new_member(index)
            if not self._subs:
                self.metric_type = index.metric_type
            self._subs.append(index)

    def _check_new_member(self, index: Index) -> None:
        """Further conditions of a subclass (same ntotal for replicas, IVF for IndexShardsIVF)."""

    def _remove_member(self, index: Any) -> None:
        with self._write_lock, self._gate.exclusive():
            for i, s in enumerate(self._subs):
                if s is index:
                    del self._subs[i]
                    return
        raise ValueError(f"index: not a {self._member} of this {type(self).__name__}")

    def _require_members(self) -> None:
        if not self._subs:
            raise RuntimeError(f"{type(self).__name__} has no {self._member}s: "
                               f"call add_{self._member}(index) first")

    # --- running an operation on every sub-index -----------------------------------
    def _run(self, fn: Callable[[int, Index], Any], which: Sequence[int] | None = None) -> list:
        """``fn(i, sub)`` for each chosen sub-index, in threads when ``threaded``;
        all of them run to the end, then the first failure is re-raised."""
        which = range(len(self._subs)) if which is None else which
        subs = [(i, self._subs[i]) for i in which]
        if not self.threaded or len(subs) <= 1:
            return [fn(i, s) for i, s in subs]
        pool = self._pool
        if pool is None or self._pool_size < len(subs):
            pool = self._pool = ThreadPoolExecutor(max_workers=len(subs),
                                                   thread_name_prefix=type(self).__name__)
            self._pool_size = len(subs)
        futures = [pool.submit(fn, i, s) for i, s in subs]
        errors = [f.exception() for f in futures]
        for err in errors:
            if err is not None:
                raise err
        return [f.result() for f in futures]

    def _check_params(self, params: Any) -> SearchParameters | None:
        # the sub-indexes check knobs of their own family (nprobe, efSearch)
        if params is not None and not isinstance(params, SearchParameters):
            raise TypeError(f"params: expected a SearchParameters instance, got {params!r}")
        return params

    def train(self, x: Any) -> None:
        """Train every sub-index on ``x`` (FAISS's ThreadedIndex semantics)."""
        self._require_members()
        super().train(x)

    def _train(self, x: np.ndarray) -> None:
        self._run(lambda i, s: s.train(x))

    def _reset(self) -> None:
        with self._gate.exclusive():
            self._run(lambda i, s: s.reset())


def merge_knn_results(Dall: np.ndarray, Iall: np.ndarray, metric: int,
                      D: np.ndarray | None = None, I: np.ndarray | None = None,
                      k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The exact top-k of the union of per-shard top-k results.

    ``Dall``, ``Iall``: (nshard, nq, kin) results of each shard, each sorted as
    a search returns them; returns (nq, k) arrays (k defaults to kin). Ties
    break on the smaller id, as in a single index.

    Example:
        >>> import numpy as np, voisin
        >>> D = np.array([[[0.1, 0.5]], [[0.2, 9.0]]], dtype="float32")
        >>> I = np.array([[[3, 4]], [[7, -1]]])
        >>> merge_knn_results(D, I, voisin.METRIC_L2)[1].tolist()
        [[3, 7]]
    """
    Dall = np.ascontiguousarray(Dall, dtype=np.float32)
    Iall = np.ascontiguousarray(Iall, dtype=np.int64)
    if Dall.ndim != 3 or Dall.shape != Iall.shape:
        raise ValueError(f"Dall, Iall: expected two arrays of one shape (nshard, nq, k), "
                         f"got {Dall.shape} and {Iall.shape}")
    nq = Dall.shape[1]
    k = Dall.shape[2] if k is None else k
    D = np.empty((nq, k), dtype=np.float32) if D is None else D
    I = np.empty((nq, k), dtype=np.int64) if I is None else I
    merge_topk(Dall, Iall, int(metric), np.float32(worst_distance(metric)), D, I)
    return D, I
