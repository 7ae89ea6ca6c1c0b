"""One replica of one shard: the state a Ray actor holds (plain Python, no Ray).

A replica rebuilds itself from its shard's store (checkpoint + log, see
store.py) whenever it starts, including when Ray restarts it after a crash,
and then applies writes in log order. It is the driver that logs every write
before sending it, so a replica that finds a write it has not seen (a gap in
the LSNs, or a search that asks for a newer state) reads the missing records
from the log: a write is never lost with a replica, and a write applied twice
(Ray retrying a call that in fact ran) is recognised by its LSN and skipped.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..factory import index_factory
from ..index import Index
from ..io import read_index, write_index
from ..selector import SearchParameters
from .knobs import knobs_set
from .store import TRAINED, MissingRecordError, Record, ShardStore

_RELOAD_ATTEMPTS = 5


def find_ivf(index: Index) -> Index | None:
    """The IVF index inside ``index`` (through IDMap / Refine wrappers), if any."""
    seen = 0
    while index is not None and seen < 16:
        if hasattr(index, "invlists") and hasattr(index, "quantizer"):
            return index
        index = getattr(index, "base_index", None) or getattr(index, "index", None)
        seen += 1
    return None


def make_shard_index(factory: str, d: int, metric: int) -> Index:
    """The index a shard holds: ``factory`` built for ``d`` and ``metric``, given
    an id map unless it takes arbitrary ids itself (IVF keeps the ids it is given)."""
    index = index_factory(d, factory, metric)
    if find_ivf(index) is None and not hasattr(index, "id_map"):
        from ..indexes.idmap import IndexIDMap2
        index = IndexIDMap2(index)
    return index


class ShardReplica:
    """Holds a voisin index for one shard; Ray runs it as an actor."""

    def __init__(self, home: str, shard: int, replica: int, factory: str, d: int, metric: int,
                 threads: int | None = None):
        if threads:
            from ..utils import omp_set_num_threads
            omp_set_num_threads(threads)
        self.home, self.shard, self.replica = home, shard, replica
        self.factory, self.d, self.metric = factory, d, metric
        self.store = ShardStore(home, shard)
        self._load()

    # --- state from the store -----------------------------------------------------------
    def _load(self) -> None:
        for _ in range(_RELOAD_ATTEMPTS):
            lsn, path = self.store.latest_checkpoint()
            trained = os.path.join(self.home, TRAINED)
            if path is not None:
                index = read_index(path)
            elif os.path.exists(trained):
                index = read_index(trained)
            else:
                index = make_shard_index(self.factory, self.d, self.metric)
            self.index, self.lsn = index, lsn
            try:
                self._replay(None)
                return
            except MissingRecordError:
                continue  # a newer checkpoint pruned the log under us: start from it
        raise RuntimeError(f"shard {self.shard}: could not rebuild from {self.store.dir} "
                           f"in {_RELOAD_ATTEMPTS} attempts")

    def _replay(self, upto: int | None) -> None:
        for record in self.store.records(self.lsn, upto):
            self._apply(record)

    def _apply(self, record: Record) -> int:
        if record.op == "add":
            self.index.add_with_ids(record.x, record.ids)
            out = int(record.ids.size)
        elif record.op == "remove":
            out = self.index.remove_ids(record.sel if record.sel is not None else record.ids)
        else:  # pragma: no cover - written only by this package
            raise ValueError(f"shard {self.shard}: unknown log operation {record.op!r}")
        self.lsn = record.lsn
        return out

    def _catch_up(self, min_lsn: int) -> None:
        if self.lsn >= min_lsn:
            return
        try:
            self._replay(min_lsn)
        except MissingRecordError:
            self._load()
            self._replay(min_lsn)

    # --- the actor's methods ----------------------------------------------------------------
    def reload(self) -> int:
        """Start again from the store (after train wrote a new trained index)."""
        self._load()
        return self.lsn

    def apply(self, lsn: int, op: str, ids: np.ndarray, x: np.ndarray | None, sel: Any = None) -> int | None:
        """Apply logged write ``lsn``; None when it was applied already."""
        if lsn <= self.lsn:
            return None
        self._catch_up(lsn - 1)
        if lsn <= self.lsn:  # the catch-up read it from the log
            return None
        return self._apply(Record(lsn, op, ids, x, sel))

    def search(self, x: np.ndarray, k: int, knobs: dict, sel: Any, min_lsn: int) -> tuple:
        self._catch_up(min_lsn)
        params = SearchParameters(sel=sel) if sel is not None else None
        with knobs_set(self.index, knobs):
            return self.index.search(x, k, params)

    def range_search(self, x: np.ndarray, radius: float, knobs: dict, sel: Any, min_lsn: int) -> tuple:
        self._catch_up(min_lsn)
        params = SearchParameters(sel=sel) if sel is not None else None
        with knobs_set(self.index, knobs):
            return self.index.range_search(x, radius, params)

    def checkpoint(self, dest_home: str, min_lsn: int) -> int:
        """Write the shard as of (at least) ``min_lsn`` into ``dest_home``; returns its LSN."""
        self._catch_up(min_lsn)
        dest = ShardStore(dest_home, self.shard)
        write_index(self.index, dest.checkpoint_path(self.lsn))
        if os.path.realpath(dest_home) == os.path.realpath(self.home):
            self.store.prune()
        return self.lsn

    def stats(self, min_lsn: int = 0) -> dict:
        self._catch_up(min_lsn)
        return {"shard": self.shard, "replica": self.replica, "ntotal": int(self.index.ntotal),
                "lsn": self.lsn, "pid": os.getpid()}
