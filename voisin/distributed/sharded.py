"""ShardedIndex: one voisin index spread over Ray actors, shards x replicas.

The driver (this object) owns the write path: it validates, picks each
vector's shard, logs the write per shard (store.py) and then sends it to the
shard's replicas; a write returns once logged and sent, so an acknowledged
vector survives any replica. Searches go to one replica per shard and are
merged exactly (the merge of voisin.IndexShards); every search names the
newest logged write of each shard, so it sees every acknowledged write even on
a replica that restarted a moment ago.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from typing import Any, Iterable

import numpy as np

from .._validate import as_ids, as_matrix, check_dimension, check_float, check_int, check_k, check_unique
from ..indexes.threaded import merge_knn_results
from ..range_results import concat_range_results
from ..io import write_index
from ..metric import check_metric, worst_distance
from ..selector import IDSelector, check_selector, selector_from_ids_or_sel
from . import store as S
from .cluster import import_ray
from .feed import iterate_batches
from .gather import Replicas, ShardUnavailableError, scatter, wait_all
from .knobs import check_knobs
from .replica import ShardReplica, find_ivf, make_shard_index

PLACEMENTS = ("hash", "ivf")
#: seconds the actors of a new or loaded index get to start
STARTUP_TIMEOUT = 180.0


def hash_shards(ids: np.ndarray, nshard: int) -> np.ndarray:
    """Shard of each id: splitmix64 of the id, modulo the shard count (ids that
    are consecutive, or multiples of the shard count, still spread evenly)."""
    z = ids.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return (z % np.uint64(nshard)).astype(np.int64)


class SearchResult(tuple):
    """``(D, I)`` as every search returns, plus ``missing_shards``: the shards
    left out of an ``allow_partial=True`` answer (empty when complete)."""

    missing_shards: list[int]

    def __new__(cls, D: np.ndarray, I: np.ndarray, missing: list[int]):
        self = super().__new__(cls, (D, I))
        self.missing_shards = missing
        return self


class ShardedIndex:
    """A voisin index sharded (and replicated) over Ray actors.

    ``factory_string`` is an :func:`voisin.index_factory` description of each
    shard ("Flat", "HNSW32", "IVF1024,PQ16", ...); indexes that do not take ids
    themselves get an IDMap2. ``placement`` picks each vector's shard: "hash"
    of its id (even shards; every query visits every shard) or "ivf", the shard
    owning its IVF list (a query visits only the shards of its ``nprobe``
    lists, at the price of uneven, hotter shards). ``path`` is the working
    directory (checkpoints and write log; a temporary one by default), which
    every node must reach.

    Example:
        >>> import numpy as np, voisin.distributed as vd
        >>> vd.init(num_cpus=2)                                        # doctest: +SKIP
        >>> ix = vd.ShardedIndex("Flat", d=16, shards=2, replicas=2)   # doctest: +SKIP
        >>> ix.add(np.random.rand(1000, 16))                           # doctest: +SKIP
        >>> D, I = ix.search(np.random.rand(5, 16), 10)                # doctest: +SKIP
    """

    def __init__(self, factory_string: str, d: int, shards: int = 1, replicas: int = 1,
                 metric: Any = "l2", *, placement: str = "hash", path: str | None = None,
                 query_batch: int = 4096, timeout: float = 60.0, max_restarts: int = 5,
                 num_cpus_per_actor: float = 1.0, threads_per_actor: int | None = None,
                 checkpoint_every: int = 64):
        if not isinstance(factory_string, str):
            raise TypeError(f"factory_string: expected an index_factory string such as 'Flat', "
                            f"got {factory_string!r}")
        if placement not in PLACEMENTS:
            raise ValueError(f"placement: expected one of {PLACEMENTS}, got {placement!r}")
        config = {"format": S.FORMAT, "factory": factory_string, "d": check_dimension(d),
                  "shards": check_int(shards, "shards", lo=1), "metric": check_metric(metric),
                  "replicas": check_int(replicas, "replicas", lo=1), "placement": placement, "next_id": 0}
        self._options(query_batch, timeout, max_restarts, num_cpus_per_actor, threads_per_actor,
                      checkpoint_every)
        owns = path is None
        home = tempfile.mkdtemp(prefix="voisin-sharded-") if owns else os.path.abspath(os.fspath(path))
        if not owns:
            os.makedirs(home, exist_ok=True)
            if os.path.exists(os.path.join(home, S.MANIFEST)):
                raise FileExistsError(f"path: {home} already holds a sharded index: "
                                      "open it with ShardedIndex.load(path)")
        self._setup(config, home, owns)
        S.write_json(os.path.join(home, S.MANIFEST), self._manifest())

    @classmethod
    def load(cls, path: str, **options: Any) -> "ShardedIndex":
        """Open the sharded index saved in ``path`` (which becomes its working
        directory); ``replicas=`` and the other keyword options may differ."""
        home = os.path.abspath(os.fspath(path))
        config = S.read_manifest(home)
        if "replicas" in options:
            config["replicas"] = check_int(options.pop("replicas"), "replicas", lo=1)
        self = cls.__new__(cls)
        self._options(**{**_DEFAULTS, **options})
        self._setup(config, home, False)
        return self

    # --- set-up ------------------------------------------------------------------------
    def _options(self, query_batch, timeout, max_restarts, num_cpus_per_actor, threads_per_actor,
                 checkpoint_every) -> None:
        self.query_batch = check_int(query_batch, "query_batch", lo=1)
        self.timeout = check_float(timeout, "timeout")
        if self.timeout <= 0:
            raise ValueError(f"timeout: expected a positive number of seconds, got {timeout}")
        self.max_restarts = check_int(max_restarts, "max_restarts", lo=-1)
        self.num_cpus_per_actor = check_float(num_cpus_per_actor, "num_cpus_per_actor")
        self.threads_per_actor = None if threads_per_actor is None else \
            check_int(threads_per_actor, "threads_per_actor", lo=1)
        self.checkpoint_every = check_int(checkpoint_every, "checkpoint_every", lo=1)

    def _setup(self, config: dict, home: str, owns: bool) -> None:
        self.factory_string, self.d = config["factory"], config["d"]
        self.nshard, self.nreplica = config["shards"], config["replicas"]
        self.metric_type, self.placement = config["metric"], config["placement"]
        self.path, self._owns_path = home, owns
        trained = os.path.join(home, S.TRAINED)
        if os.path.exists(trained):
            from ..io import read_index
            self._template = read_index(trained)
        else:
            self._template = make_shard_index(self.factory_string, self.d, self.metric_type)
        if self.placement == "ivf" and find_ivf(self._template) is None:
            raise ValueError(f"placement: 'ivf' needs an IVF index, {self.factory_string!r} has none")
        stores = [S.ShardStore(home, s) for s in range(self.nshard)]
        self._committed = [st.last_lsn() for st in stores]
        self._stores = stores
        top = max([st.max_added_id() for st in stores] + [-1])
        self._next_id = max(int(config.get("next_id", 0)), top + 1)
        self._since_ckpt = [0] * self.nshard
        self._lock = threading.RLock()
        self._replicas = Replicas(self._start_actors())
        # a worker process imports numpy, numba and voisin before it answers:
        # on a loaded machine that takes far longer than one search may
        up = wait_all([a.stats.remote() for row in self._replicas.actors for a in row],
                      max(self.timeout, STARTUP_TIMEOUT))
        down = [s for s in range(self.nshard)
                if all(r is None for r in up[s * self.nreplica:(s + 1) * self.nreplica])]
        if down:
            self.close()
            raise ShardUnavailableError(down, f"ShardedIndex start-up ({STARTUP_TIMEOUT:.0f} s)")

    def _start_actors(self) -> list[list[Any]]:
        ray = import_ray()
        actor = ray.remote(ShardReplica).options(
            max_restarts=self.max_restarts, max_task_retries=0, num_cpus=self.num_cpus_per_actor,
            scheduling_strategy="SPREAD")
        return [[actor.remote(self.path, s, r, self.factory_string, self.d, self.metric_type,
                              self.threads_per_actor)
                 for r in range(self.nreplica)] for s in range(self.nshard)]

    def _manifest(self) -> dict:
        return {"format": S.FORMAT, "factory": self.factory_string, "d": self.d, "shards": self.nshard,
                "replicas": self.nreplica, "metric": self.metric_type, "placement": self.placement,
                "next_id": self._next_id}

    # --- state ---------------------------------------------------------------------------
    @property
    def is_trained(self) -> bool:
        return bool(self._template.is_trained)

    @property
    def ntotal(self) -> int:
        """Vectors stored, summed over the shards (asks one replica of each)."""
        return sum(s["ntotal"] for s in self._shard_stats())

    def __len__(self) -> int:
        return self.ntotal

    def _shard_stats(self) -> list[dict]:
        committed = list(self._committed)
        res, missing = scatter(self._replicas, [(s, s, lambda a, s=s: a.stats.remote(committed[s]))
                                                for s in range(self.nshard)], self.timeout)
        if missing:
            raise ShardUnavailableError(missing, "ntotal")
        return [res[s] for s in range(self.nshard)]

    def replica_stats(self) -> list[dict]:
        """ntotal, applied LSN and process id of every replica that answers (for monitoring)."""
        refs = [a.stats.remote() for row in self._replicas.actors for a in row]
        return [r for r in wait_all(refs, self.timeout) if r is not None]

    def replica_handle(self, shard: int, replica: int) -> Any:
        """The Ray actor of one replica (to inspect it, or to kill it in a fault test)."""
        shard = check_int(shard, "shard", lo=0, hi=self.nshard - 1)
        replica = check_int(replica, "replica", lo=0, hi=self.nreplica - 1)
        return self._replicas.actors[shard][replica]

    # --- training -------------------------------------------------------------------------
    def train(self, x: Any) -> None:
        """Train one index on the sample ``x`` here, then ship it, empty, to every shard."""
        x = as_matrix(x, self.d, "x")
        if x.shape[0] == 0:
            raise ValueError("x: training needs at least one vector, got 0")
        with self._lock:
            if any(self._committed):
                raise RuntimeError("train: the index already holds writes; train before adding")
            template = make_shard_index(self.factory_string, self.d, self.metric_type)
            template.train(x)
            write_index(template, os.path.join(self.path, S.TRAINED))
            self._template = template
            wait_all([a.reload.remote() for row in self._replicas.actors for a in row], self.timeout)

    def _check_trained(self) -> None:
        if not self.is_trained:
            raise RuntimeError(f"ShardedIndex({self.factory_string!r}) is not trained: call train(x) "
                               "with representative vectors before adding")

    # --- writes ---------------------------------------------------------------------------
    def _owners(self, ids: np.ndarray, x: np.ndarray) -> np.ndarray:
        if self.placement == "hash":
            return hash_shards(ids, self.nshard)
        ivf = find_ivf(self._template)
        return ivf.quantizer.assign(x, 1)[:, 0] % self.nshard

    def _log(self, shard: int, op: str, ids: np.ndarray, x: np.ndarray | None = None, sel: Any = None) -> int:
        lsn = self._committed[shard] + 1
        self._stores[shard].append(lsn, op, ids, x, sel)
        self._committed[shard] = lsn
        self._since_ckpt[shard] += 1
        return lsn

    def add(self, x: Any, ids: Any = None) -> None:
        """Add vectors ``x`` (n, d) with int64 ``ids`` (default: the next unused ids).

        Returns once each shard's part is logged and its replicas have applied it
        or are known to be down (they catch up from the log)."""
        x = as_matrix(x, self.d, "x")
        if ids is not None:
            ids = as_ids(ids, x.shape[0], "ids")
            check_unique(ids)
        self._check_trained()
        ray = import_ray()
        with self._lock:
            n = x.shape[0]
            if n == 0:
                return
            if ids is None:
                ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
            owners = self._owners(ids, x)
            refs, touched = [], []
            for s in np.unique(owners).tolist():
                rows = np.flatnonzero(owners == s)
                xs, ids_s = np.ascontiguousarray(x[rows]), ids[rows]
                lsn = self._log(s, "add", ids_s, xs)
                xr, ir = ray.put(xs), ray.put(ids_s)
                refs += [a.apply.remote(lsn, "add", ir, xr) for a in self._replicas.actors[s]]
                touched.append(s)
            self._next_id = max(self._next_id, int(ids.max()) + 1)
            wait_all(refs, self.timeout)
            self._checkpoint_due(touched)

    def add_with_ids(self, x: Any, ids: Any) -> None:
        """FAISS's name for :meth:`add` with ids."""
        if ids is None:
            raise TypeError("ids: expected int64 ids, got None (use add(x) for automatic ids)")
        self.add(x, ids)

    def add_from(self, source: Any, *, vector_column: str | None = None, id_column: str | None = None,
                 batch_size: int = 10_000, progress: bool = False) -> int:
        """Add every batch of ``source``: an iterable of arrays or ``(x, ids)``
        pairs, or a Ray Dataset (columns ``vector_column`` and ``id_column``).
        Shows a progress bar when ``progress``; returns the number of vectors."""
        batch_size = check_int(batch_size, "batch_size", lo=1)
        total = 0
        for x, ids in iterate_batches(source, vector_column, id_column, batch_size, progress):
            self.add(x, ids)
            total += len(x)
        return total

    def remove_ids(self, x: Any) -> int:
        """Remove the selected ids (an array of ids or an IDSelector); returns how many went."""
        sel = selector_from_ids_or_sel(x, "x")
        with self._lock:
            if self.placement == "hash" and not isinstance(x, IDSelector):
                ids = as_ids(x, name="x", allow_minus_one=True)
                owners = hash_shards(ids, self.nshard)
                parts = {s: (ids[owners == s], None) for s in np.unique(owners).tolist()}
            else:  # the shard of an id is not known: every shard looks
                _check_picklable(sel)
                parts = {s: (np.zeros(0, np.int64), sel) for s in range(self.nshard)}
            lsns = {s: self._log(s, "remove", ids_s, None, sel_s) for s, (ids_s, sel_s) in parts.items()}
            per_shard = {s: [a.apply.remote(lsns[s], "remove", parts[s][0], None, parts[s][1])
                             for a in self._replicas.actors[s]] for s in parts}
            counts = {s: wait_all(refs, self.timeout) for s, refs in per_shard.items()}
            self._checkpoint_due(list(parts))
        gone = [s for s, c in counts.items() if all(v is None for v in c)]
        if gone:
            raise ShardUnavailableError(gone, "remove_ids (the removal is logged and the shard "
                                        "applies it when it is back; the count is unknown)")
        return int(sum(next(v for v in c if v is not None) for c in counts.values()))

    # --- search ----------------------------------------------------------------------------
    def _check_search(self, x: Any, params: Any, sel: Any) -> tuple[np.ndarray, dict, Any]:
        x = as_matrix(x, self.d, "x")
        knobs = check_knobs(self._template, params)
        if sel is not None:
            check_selector(sel, "sel")
        return x, knobs, sel

    def _routes(self, x: np.ndarray, knobs: dict, sel: Any) -> list[np.ndarray | None]:
        """Per shard, the query rows it must see (None: all of them)."""
        if self.placement != "ivf" or sel is not None:
            return [None] * self.nshard
        ivf = find_ivf(self._template)
        nprobe = min(knobs.get("nprobe", ivf.nprobe), ivf.nlist)
        owners = ivf.quantizer.search(x, nprobe)[1] % self.nshard
        return [np.flatnonzero((owners == s).any(axis=1)) for s in range(self.nshard)]

    def search(self, x: Any, k: int, params: dict | None = None, *, sel: IDSelector | None = None,
               allow_partial: bool = False) -> SearchResult:
        """The ``k`` nearest vectors of each query: ``(D, I)`` as voisin indexes return.

        ``params`` sets FAISS knobs per call ({"nprobe": 32, "efSearch": 64,
        "k_factor": 4}); ``sel`` filters ids. When no replica of a shard answers
        in time the search raises :class:`ShardUnavailableError`, or with
        ``allow_partial=True`` returns the merge of the others and names the
        missing shards in ``result.missing_shards``."""
        x, knobs, sel = self._check_search(x, params, sel)
        k = check_k(k)
        nq = x.shape[0]
        committed = list(self._committed)
        batches = [(b, min(b + self.query_batch, nq)) for b in range(0, nq, self.query_batch)]
        calls, rows = [], {}
        for bi, (b0, b1) in enumerate(batches):
            xb = x[b0:b1]
            for s, route in enumerate(self._routes(xb, knobs, sel)):
                if route is not None and route.size == 0:
                    continue
                xs = xb if route is None else np.ascontiguousarray(xb[route])
                rows[(bi, s)] = route
                calls.append(((bi, s), s, lambda a, xs=xs, s=s: a.search.remote(xs, k, knobs, sel, committed[s])))
        results, missing = scatter(self._replicas, calls, self.timeout)
        if missing and not allow_partial:
            raise ShardUnavailableError(missing, "search")
        worst = worst_distance(self.metric_type)
        D = np.empty((nq, k), dtype=np.float32)
        I = np.empty((nq, k), dtype=np.int64)
        for bi, (b0, b1) in enumerate(batches):
            Dall = np.full((self.nshard, b1 - b0, k), worst, dtype=np.float32)
            Iall = np.full((self.nshard, b1 - b0, k), -1, dtype=np.int64)
            for s in range(self.nshard):
                got = results.get((bi, s))
                if got is None:
                    continue
                route = rows[(bi, s)]
                target = slice(None) if route is None else route
                Dall[s, target], Iall[s, target] = got
            merge_knn_results(Dall, Iall, self.metric_type, D[b0:b1], I[b0:b1], k)
        return SearchResult(D, I, sorted(missing))

    def range_search(self, x: Any, radius: float, params: dict | None = None, *,
                     sel: IDSelector | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All vectors within ``radius`` of each query, as ``Index.range_search``."""
        x, knobs, sel = self._check_search(x, params, sel)
        radius = check_float(radius, "radius")
        committed = list(self._committed)
        calls = [(s, s, lambda a, s=s: a.range_search.remote(x, radius, knobs, sel, committed[s]))
                 for s in range(self.nshard)]
        results, missing = scatter(self._replicas, calls, self.timeout)
        if missing:
            raise ShardUnavailableError(missing, "range_search")
        lims, D, I = concat_range_results([results[s] for s in range(self.nshard)], x.shape[0])
        return lims.astype(np.uint64), D, I

    # --- persistence -------------------------------------------------------------------------
    def _checkpoint_due(self, shards: Iterable[int]) -> None:
        due = [s for s in shards if self._since_ckpt[s] >= self.checkpoint_every]
        if due:
            try:
                self._checkpoint(self.path, due)
            except ShardUnavailableError:
                pass  # the write is logged and acknowledged; the next write tries again

    def _checkpoint(self, dest: str, shards: list[int]) -> None:
        committed = list(self._committed)
        calls = [(s, s, lambda a, s=s: a.checkpoint.remote(dest, committed[s])) for s in shards]
        _, missing = scatter(self._replicas, calls, self.timeout)
        if dest == self.path:
            for s in shards:
                if s not in missing:
                    self._since_ckpt[s] = 0
        if missing:
            raise ShardUnavailableError(missing, "save")

    def save(self, path: str | None = None) -> str:
        """Checkpoint every shard into ``path`` (default: the working directory),
        with a manifest; :meth:`load` opens it. Returns the directory."""
        dest = self.path if path is None else os.path.abspath(os.fspath(path))
        os.makedirs(dest, exist_ok=True)
        with self._lock:
            self._checkpoint(dest, list(range(self.nshard)))
            trained = os.path.join(self.path, S.TRAINED)
            if dest != self.path and os.path.exists(trained):
                shutil.copyfile(trained, os.path.join(dest, S.TRAINED))
            S.write_json(os.path.join(dest, S.MANIFEST), self._manifest())
        return dest

    def close(self) -> None:
        """Stop the actors (and remove the temporary working directory, if any)."""
        ray = import_ray()
        for row in getattr(self, "_replicas", Replicas([])).actors:
            for a in row:
                ray.kill(a, no_restart=True)
        self._replicas = Replicas([])
        if self._owns_path:
            shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> "ShardedIndex":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"ShardedIndex({self.factory_string!r}, d={self.d}, shards={self.nshard}, "
                f"replicas={self.nreplica}, placement={self.placement!r}, path={self.path!r})")


_DEFAULTS = {"query_batch": 4096, "timeout": 60.0, "max_restarts": 5, "num_cpus_per_actor": 1.0,
             "threads_per_actor": None, "checkpoint_every": 64}


def _check_picklable(sel: IDSelector) -> None:
    import pickle
    try:
        pickle.dumps(sel)
    except Exception as exc:  # noqa: BLE001 - any pickling failure means the same to the user
        raise TypeError(f"x: a selector removed from a sharded index is logged and must pickle "
                        f"(use IDSelectorBatch/IDSelectorRange, not a lambda): {exc}") from None
