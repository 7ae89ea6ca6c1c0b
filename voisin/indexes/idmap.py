"""IndexIDMap / IndexIDMap2: arbitrary int64 ids on top of a sequential index."""

from __future__ import annotations

import copy
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np

from ..index import Index
from ..selector import IDSelector, SearchParameters


class _MaskSelector(IDSelector):
    """Selector over the wrapped index's positions, already evaluated."""

    def __init__(self, mask: np.ndarray):
        self.mask = mask

    def contains(self, ids: np.ndarray) -> np.ndarray:
        out = np.zeros(len(ids), dtype=bool)
        ok = (ids >= 0) & (ids < self.mask.size)
        out[ok] = self.mask[ids[ok]]
        return out

    def mask_sequential(self, n: int) -> np.ndarray:
        if n == self.mask.size:
            return self.mask
        return self.contains(np.arange(n, dtype=np.int64))


class _ReadWriteGate:
    """Many concurrent readers or one writer, writers first.

    An id map's answer combines two pieces of state, the wrapped index's
    positions and the id of each position, and ``remove_ids`` shifts both: a
    search that ran the wrapped index before a removal but translated with the
    ids after it would return the ids of other vectors. Searches therefore
    hold the gate for reading (they still run in parallel with each other) and
    add/remove/reset hold it for writing.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0
        # odd while a writer holds the gate, bumped at entry and exit: a reader
        # that ran without the gate checks it did not change (see optimistic)
        self.version = 0

    def optimistic(self, read: Callable[[], Any]) -> Any:
        """``read()`` without taking the gate when no writer is active, again under
        the gate when one started meanwhile (a seqlock: the common, uncontended
        single-query search pays two attribute reads instead of two lock round
        trips). ``read`` must only read published snapshots and tolerate a torn
        view without crashing (its result is then discarded)."""
        v = self.version
        if not v & 1 and not self._writers_waiting:
            out = read()
            if self.version == v:
                return out
        with self.reading():
            return read()

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            while self._writing or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writing or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writing = True
            self.version += 1
        try:
            yield
        finally:
            with self._cond:
                self.version += 1
                self._writing = False
                self._cond.notify_all()


class _Gated:
    """Mixin for an index whose searches and writes pass a ``_gate``
    (:class:`_ReadWriteGate`): the gate is not state, so a pickle drops it and
    an unpickled index gets a fresh one."""

    def __getstate__(self) -> dict:
        state = super().__getstate__()  # type: ignore[misc]
        state.pop("_gate", None)
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)  # type: ignore[misc]
        self._gate = _ReadWriteGate()


def _renumbers_on_removal(index: Index) -> bool:
    """Whether ``index`` numbers its vectors 0..ntotal-1 and shifts the later
    ones down on removal (Flat, PQ, SQ, HNSW: what the id map relies on).

    IVF indexes keep the id each vector was added with instead, so after a
    removal the id map's positions no longer match; FAISS's IndexIDMap returns
    other vectors' ids in that case. An index may say so with a class attribute
    ``ids_are_positions``; without one, inverted lists give IVF away.
    """
    flag = getattr(index, "ids_are_positions", None)
    if flag is not None:
        return bool(flag)
    return getattr(index, "invlists", None) is None


class _IdTable:
    """The id bookkeeping of an id map over a position-numbered index, shared by
    :class:`IndexIDMap` and :class:`~voisin.indexes.binary_idmap.IndexBinaryIDMap`:
    ``_ids[p]`` is the user id at position ``p`` of ``self.index``, ``_sorted``
    a lazily rebuilt (sorted ids, positions) pair; writes hold ``self._gate``."""

    _item = "vector"

    def _init_ids(self, index: Any) -> None:
        self.index = index
        self.params_type = index.params_type
        self._ids = np.empty(0, dtype=np.int64)
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None
        self._gate = _ReadWriteGate()

    @property
    def is_trained(self) -> bool:  # type: ignore[override]
        return self.index.is_trained

    @is_trained.setter
    def is_trained(self, value: bool) -> None:
        pass  # follows the wrapped index

    @property
    def id_map(self) -> np.ndarray:
        """External id of each position of the wrapped index (read-only view)."""
        v = self._ids[:self.ntotal]
        v.flags.writeable = False
        return v

    def add(self, x) -> None:
        raise NotImplementedError(f"{type(self).__name__}.add: every {self._item} needs an id, "
                                  "call add_with_ids(x, ids)")

    def _train(self, x: np.ndarray) -> None:
        self.index._train(x)
        self.index.is_trained = True

    def _positions(self, keys: np.ndarray) -> np.ndarray:
        """Position of each key in the wrapped index, -1 when absent."""
        n = self.ntotal
        if self._sorted is None:
            order = np.argsort(self._ids[:n], kind="stable")
            self._sorted = (self._ids[:n][order], order)
        sids, order = self._sorted
        if n == 0:
            return np.full(keys.shape, -1, dtype=np.int64)
        pos = np.searchsorted(sids, keys)
        pos[pos == n] = 0
        found = sids[pos] == keys
        return np.where(found, order[pos], -1)

    def _add_locked(self, x: np.ndarray, ids: np.ndarray) -> None:
        # validation passes int64 arrays through without a copy, so ``ids`` may
        # be a view of our own id array (``add_with_ids(x, index.id_map[:3])``),
        # which the replacement below shifts in place: work on a private copy
        ids = ids.copy()
        existing = self._positions(ids)
        if (existing >= 0).any():
            # x may likewise view the wrapped index's storage that removal rewrites
            x = x.copy()
            self._remove_positions(existing[existing >= 0])
        n0 = self.ntotal
        self.index._add(x, None)
        need = n0 + ids.size
        if need > self._ids.size:
            grown = np.empty(max(need, 2 * self._ids.size, 1024), dtype=np.int64)
            grown[:n0] = self._ids[:n0]
            self._ids = grown
        self._ids[n0:need] = ids
        self.ntotal = need
        self._sorted = None

    def _prepare_add_locked(self, x: np.ndarray, ids: np.ndarray) -> Callable[[], None] | None:
        """The add of new ids prepared without the gate (the wrapped index builds its
        next state while searches read the current one), as the call that publishes
        it with the ids; None when it must run under the gate: an id is already
        present (replacing removes, which renumbers), or the wrapped index cannot
        prepare an add (``_prepare_add``)."""
        prepare = getattr(self.index, "_prepare_add", None)
        if prepare is None or (self._positions(ids) >= 0).any():
            return None
        ids = ids.copy()
        publish_inner = prepare(x)

        def publish() -> None:
            n0 = self.ntotal
            need = n0 + ids.size
            if need > self._ids.size:
                grown = np.empty(max(need, 2 * self._ids.size, 1024), dtype=np.int64)
                grown[:n0] = self._ids[:n0]
                self._ids = grown
            self._ids[n0:need] = ids
            publish_inner()
            self.ntotal = need
            self._sorted = None
        return publish

    @contextmanager
    def staged_add(self, x: Any, ids: Any) -> Iterator[Callable[[], None]]:
        """``add_with_ids(x, ids)`` in two steps, for a caller (a collection) that must
        show the new vectors together with state of its own: entering does the costly
        part (graph insertion) while searches continue, the yielded call makes the
        vectors visible, fast, and the caller makes it under its own lock. Where the
        add cannot be prepared the yielded call does all of it. Other writers of this
        index wait until the block exits; a block left without the call adds nothing."""
        from .._validate import as_ids, as_matrix, check_unique
        x = as_matrix(x, self.d, "x")
        ids = as_ids(ids, x.shape[0], "ids")
        check_unique(ids)
        self._check_trained()
        self._check_writable()
        with self._write_lock:
            publish = self._prepare_add_locked(x, ids) if x.shape[0] else (lambda: None)

            def run() -> None:
                with self._gate.writing():
                    if publish is None:
                        self._add_locked(x, ids)
                    else:
                        publish()
            yield run

    def _translate(self, params: SearchParameters | None) -> SearchParameters | None:
        if params is None or params.sel is None:
            return params
        inner = copy.copy(params)
        inner.sel = _MaskSelector(params.sel.contains(self._ids[:self.ntotal]))
        return inner

    def _range_search(self, x, radius, params):
        with self._gate.reading():
            ids = self._ids
            lims, D, I = self.index._range_search(x, radius, self._translate(params))
        return lims, D, ids[I]

    def _remove_positions(self, pos: np.ndarray) -> int:
        if not _renumbers_on_removal(self.index):
            # refuse before touching anything rather than mistranslate ids later
            name = type(self.index).__name__
            raise NotImplementedError(
                f"{type(self).__name__}: cannot remove or replace vectors of a wrapped {name}, "
                f"which keeps its own ids: call add_with_ids / remove_ids on the {name} "
                "directly, it takes arbitrary int64 ids itself")
        n = self.ntotal
        mask = np.zeros(n, dtype=bool)
        mask[pos] = True
        removed = self.index._remove(_MaskSelector(mask))
        kept = self._ids[:n][~mask]
        self._ids[:kept.size] = kept
        self.ntotal = self.index.ntotal
        self._sorted = None
        return removed

    def _remove(self, sel: IDSelector) -> int:
        mask = sel.contains(self._ids[:self.ntotal])
        if not mask.any():
            return 0
        with self._gate.writing():
            return self._remove_positions(np.flatnonzero(mask))

    def _reconstruct_keys(self, keys: np.ndarray) -> np.ndarray:
        with self._gate.reading():
            pos = self._positions(keys)
            if (pos < 0).any():
                raise ValueError(f"key: id {int(keys[pos < 0][0])} is not in the index")
            return self.index._reconstruct_keys(pos)

    def reconstruct_n(self, i0: int = 0, ni: int | None = None) -> np.ndarray:
        """Vectors (codes) at positions i0 .. i0+ni-1 of the wrapped index (not ids)."""
        with self._gate.reading():
            return self.index.reconstruct_n(i0, ni)

    def _reset(self) -> None:
        with self._gate.writing():
            self.index._reset()
            self.ntotal = 0
            self._ids = np.empty(0, dtype=np.int64)
            self._sorted = None



class IndexIDMap(_Gated, _IdTable, Index):
    """Gives the vectors of ``index`` user-chosen int64 ids.

    The wrapped index must be empty and number its vectors by position (Flat,
    PQ, SQ, HNSW...). Searching translates positions back to ids; filters
    (``SearchParameters(sel=...)``) and ``remove_ids`` speak in user ids.
    Adding an id that is already present replaces its vector.

    Example:
        >>> import numpy as np, voisin
        >>> index = voisin.IndexIDMap(voisin.IndexFlatL2(4))
        >>> index.add_with_ids(np.eye(4), np.array([10, 20, 30, 40]))
        >>> D, I = index.search(np.eye(4)[:1], 1)
        >>> int(I[0, 0])
        10
    """

    _extra_metrics = True  # the metric is the wrapped index's, checked there

    def __init__(self, index: Index):
        if not isinstance(index, Index):
            raise TypeError(f"index: expected a voisin Index to wrap, got {index!r}")
        if index.ntotal != 0:
            raise ValueError(f"index: must be empty when wrapped in {type(self).__name__}, "
                             f"it holds {index.ntotal} vectors")
        super().__init__(index.d, index.metric_type)
        self._init_ids(index)
        self.metric_arg = index.metric_arg  # as FAISS, taken when wrapped

    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        if ids is None:  # pragma: no cover - add() refuses before we get here
            raise NotImplementedError
        # an HNSW inside inserts outside the gate: searches wait only for the publish
        publish = self._prepare_add_locked(x, ids)
        with self._gate.writing():
            if publish is None:
                self._add_locked(x, ids)
            else:
                publish()

    def _search(self, x, k, params, D, I):
        with self._gate.reading():
            ids = self._ids
            D, I = self.index._search(x, k, self._translate(params), D, I)
        valid = I >= 0
        I[valid] = ids[I[valid]]
        return D, I


class IndexIDMap2(IndexIDMap):
    """:class:`IndexIDMap` whose ``reconstruct(id)`` is part of FAISS's contract.

    voisin's IndexIDMap reconstructs by id too; the two differ only in the
    file-format tag, so FAISS files of either kind round-trip.

    Example:
        >>> import numpy as np, voisin
        >>> index = voisin.IndexIDMap2(voisin.IndexFlatL2(2))
        >>> index.add_with_ids(np.array([[1.0, 2.0]]), np.array([7]))
        >>> index.reconstruct(7).tolist()
        [1.0, 2.0]
    """
