"""A collection whose points are hash-sharded over Ray actors, with the embedded API.

Each shard is one Ray actor that owns one embedded database folder
(``<path>/shard-<i>``, :func:`voisin.connect`): its SQLite records are the
source of truth, so a write the actor acknowledged survives the actor's death,
and Ray restarts a dead actor (``max_restarts``), which reopens its folder (the
index is a checkpoint plus the rows after it, as in one process). Every call is
idempotent (upserts replace, deletes and payload edits converge), so Ray may
retry a call that in fact ran.

Points go to shard ``hash(id) % shards`` (the integer itself, or the UUID's 128
bits). Reads by id go to their shard; search, count, scroll and writes by filter go
to every shard and are merged: the top ``k + offset`` of each shard merged by score
(then ``offset`` applied), counts summed, scroll pages merged in Qdrant's id order.
The merged search equals one collection's for an exact index; with HNSW, each
shard walks its own graph with the same efSearch.

Example:
    >>> import voisin.distributed as vd                      # doctest: +SKIP
    >>> vd.init()                                            # doctest: +SKIP
    >>> db = vd.connect_sharded("data/", shards=2)           # doctest: +SKIP
    >>> col = db.create_collection("docs", dim=384)          # doctest: +SKIP
    >>> col.upsert([1, 2], vectors, payloads=[{"a": 1}, {"a": 2}])  # doctest: +SKIP
    >>> col.search(q, k=5, filter={"must": [{"key": "a", "match": {"value": 1}}]})  # doctest: +SKIP
"""

from __future__ import annotations

import heapq
import json
import os
import uuid
import zipfile
from typing import Any

import numpy as np

from .cluster import import_ray, is_actor_failure, unwrap

_META = "sharded.json"
_FORMAT = "voisin-sharded-db-1"
# how long a call waits for a restarting actor before it gives up, seconds
CALL_TIMEOUT = 120.0


class ShardedCollectionError(RuntimeError):
    """A shard could not answer (its actor is down and did not come back in time)."""


def shard_of(pid: int | str, shards: int) -> int:
    """The shard of a normalised point id (stable across processes and machines)."""
    n = pid if isinstance(pid, int) else uuid.UUID(pid).int
    return n % shards


def _shard_actor_class():
    ray = import_ray()

    @ray.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0)
    class ShardDatabase:
        """One shard: an embedded voisin database in its own folder."""

        def __init__(self, folder: str, durability: str) -> None:
            from ..db import connect
            self.db = connect(folder, durability=durability)

        def db_call(self, method: str, args: tuple, kwargs: dict) -> Any:
            out = getattr(self.db, method)(*args, **kwargs)
            return None if method in ("create_collection", "get_collection") else out

        def call(self, name: str, method: str, args: tuple, kwargs: dict) -> Any:
            return getattr(self.db.get_collection(name), method)(*args, **kwargs)

        def attribute(self, name: str, attribute: str) -> Any:
            return getattr(self.db.get_collection(name), attribute)

        def close(self) -> None:
            self.db.close()

    return ShardDatabase


class ShardedDatabase:
    """The sharded counterpart of :class:`voisin.db.Database`: same collection methods.

    Open with :func:`connect_sharded`. ``path`` must be reachable by every Ray
    node that hosts a shard (one machine, or a shared file system).
    """

    def __init__(self, path: str | os.PathLike, shards: int | None = None, *,
                 durability: str = "full") -> None:
        from .._validate import check_int
        self.path = os.path.abspath(os.fspath(path))
        meta_path = os.path.join(self.path, _META)
        if os.path.exists(meta_path):
            with open(meta_path) as f:
                meta = json.load(f)
            if meta.get("format") != _FORMAT:
                raise ValueError(f"path: {self.path!r} is not a sharded voisin database")
            if shards is not None and check_int(shards, "shards", lo=1) != meta["shards"]:
                raise ValueError(f"shards: {self.path!r} holds {meta['shards']} shards, got "
                                 f"shards={shards} (resharding is not supported)")
            shards = meta["shards"]
        else:
            shards = check_int(1 if shards is None else shards, "shards", lo=1, hi=4096)
            os.makedirs(self.path, exist_ok=True)
            from ..io.atomic import atomic_write
            atomic_write(meta_path, lambda f: f.write(
                json.dumps({"format": _FORMAT, "shards": shards}).encode()))
        self.shards = shards
        actor = _shard_actor_class()
        self._actors = [actor.remote(os.path.join(self.path, f"shard-{i}"), durability)
                        for i in range(shards)]
        self._collections: dict[str, ShardedCollection] = {}

    # --- calls to shards --------------------------------------------------------------
    def _wait(self, refs: list) -> list:
        ray = import_ray()
        try:
            return ray.get(refs, timeout=CALL_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - sorted below
            if is_actor_failure(exc) or isinstance(exc, ray.exceptions.GetTimeoutError):
                raise ShardedCollectionError(f"a shard of {self.path!r} did not answer: {exc}") \
                    from None
            raise unwrap(exc) from None

    def _all(self, method: str, *args: Any, **kwargs: Any) -> list:
        return self._wait([a.db_call.remote(method, args, kwargs) for a in self._actors])

    # --- the Database methods ----------------------------------------------------------
    def create_collection(self, name: str, dim: int, metric: str = "cosine", index: str = "auto",
                          **kwargs: Any) -> "ShardedCollection":
        """A new collection on every shard (same arguments as the embedded one)."""
        if kwargs.get("embedder") is not None:
            raise NotImplementedError("embedder: a sharded collection takes vectors; embed the "
                                      "texts first (voisin.TextEncoder().encode)")
        self._all("create_collection", name, dim, metric, index, **kwargs)
        return self.get_collection(name)

    def get_collection(self, name: str) -> "ShardedCollection":
        if name not in self._collections:
            self._all("get_collection", name)  # raises the embedded error when unknown
            self._collections[name] = ShardedCollection(self, name)
        return self._collections[name]

    def has_collection(self, name: str) -> bool:
        return all(self._all("has_collection", name))

    def list_collections(self) -> list[str]:
        return self._all("list_collections")[0]

    def delete_collection(self, name: str) -> None:
        self._all("delete_collection", name)
        self._collections.pop(name, None)

    def snapshot(self, file: str | os.PathLike) -> str:
        """One zip holding a snapshot of every shard (each consistent; shards are
        snapshotted in parallel, not at one instant across shards)."""
        file = os.fspath(file)
        parts = [os.path.join(self.path, f".snapshot-{i}.voisin") for i in range(self.shards)]
        self._wait([a.db_call.remote("snapshot", (p,), {}) for a, p in zip(self._actors, parts)])
        from ..io.atomic import atomic_write

        def write(f: Any) -> None:
            with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
                z.writestr(_META, json.dumps({"format": _FORMAT, "shards": self.shards}))
                for i, p in enumerate(parts):
                    z.write(p, f"shard-{i}.voisin")
        try:
            atomic_write(file, write)
        finally:
            for p in parts:
                if os.path.exists(p):
                    os.remove(p)
        return file

    def close(self) -> None:
        ray = import_ray()
        self._wait([a.close.remote() for a in self._actors])
        for a in self._actors:
            ray.kill(a, no_restart=True)
        self._actors = []

    def __enter__(self) -> "ShardedDatabase":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def connect_sharded(path: str | os.PathLike, shards: int | None = None, **kwargs: Any) -> ShardedDatabase:
    """Open (or create, with ``shards`` shards) a sharded database at ``path``."""
    return ShardedDatabase(path, shards, **kwargs)


def restore_sharded(file: str | os.PathLike, folder: str | os.PathLike, **kwargs: Any) -> ShardedDatabase:
    """Unpack a :meth:`ShardedDatabase.snapshot` into a new folder and open it."""
    from ..db import restore
    folder = os.path.abspath(os.fspath(folder))
    if os.path.exists(folder) and os.listdir(folder):
        raise ValueError(f"folder: expected a new or empty folder to restore into, got {folder!r}")
    with zipfile.ZipFile(os.fspath(file)) as z:
        meta = json.loads(z.read(_META))
        if meta.get("format") != _FORMAT:
            raise ValueError(f"file: {os.fspath(file)!r} is not a sharded voisin snapshot")
        os.makedirs(folder, exist_ok=True)
        for i in range(meta["shards"]):
            part = os.path.join(folder, f".restore-{i}.voisin")
            with open(part, "wb") as f:
                f.write(z.read(f"shard-{i}.voisin"))
            restore(part, os.path.join(folder, f"shard-{i}")).close()
            os.remove(part)
    with open(os.path.join(folder, _META), "w") as f:
        json.dump(meta, f)
    return ShardedDatabase(folder, **kwargs)


class ShardedCollection:
    """A collection spread over the shards of a :class:`ShardedDatabase`; the
    methods of :class:`voisin.db.Collection` (vectors; texts are embedded by the caller)."""

    def __init__(self, db: ShardedDatabase, name: str) -> None:
        self.db = db
        self.name = name
        info = db._wait([db._actors[0].call.remote(name, "info", (), {})])[0]
        self.dim = info.get("dim")
        self.metric = info.get("metric")
        #: the collection's configuration (the same on every shard)
        self.config = db._wait([db._actors[0].attribute.remote(name, "config")])[0]
        self.embedder = None

    @property
    def seq(self) -> int:
        """The sum of the shards' write sequence numbers: it grows with every write."""
        return int(sum(self._attr_all("seq")))

    @property
    def payload_schema(self) -> dict[str, str]:
        return dict(self._attr_all("payload_schema")[0])

    def _attr_all(self, attribute: str) -> list:
        return self.db._wait([a.attribute.remote(self.name, attribute) for a in self.db._actors])

    def _one(self, shard: int, method: str, *args: Any, **kwargs: Any):
        return self.db._actors[shard].call.remote(self.name, method, args, kwargs)

    def _all(self, method: str, *args: Any, **kwargs: Any) -> list:
        return self.db._wait([self._one(s, method, *args, **kwargs) for s in range(self.db.shards)])

    def _split(self, ids: Any) -> dict[int, list[int]]:
        """Positions of ``ids`` per shard."""
        from ..db.ids import normalize_ids
        pids = normalize_ids(ids, "ids")
        out: dict[int, list[int]] = {}
        for pos, pid in enumerate(pids):
            out.setdefault(shard_of(pid, self.db.shards), []).append(pos)
        return out

    @staticmethod
    def _take(seq: Any, pos: list[int]) -> Any:
        if seq is None:
            return None
        if isinstance(seq, np.ndarray):
            return seq[pos]
        return [seq[p] for p in pos]

    # --- writes ---------------------------------------------------------------------------
    def upsert(self, ids: Any, vectors: Any = None, payloads: Any = None, **kwargs: Any) -> tuple:
        """Store points on their shards (each shard's part is one transaction there:
        after a crash a batch may be on some shards and not others; repeating the
        call converges). Returns each touched shard's write sequence number."""
        if kwargs.get("documents") is not None:
            raise NotImplementedError("documents: a sharded collection takes vectors; embed the "
                                      "texts first (voisin.TextEncoder().encode)")
        from ..db.ids import normalize_ids
        pids = normalize_ids(ids, "ids")
        if vectors is not None and not isinstance(vectors, np.ndarray):
            vectors = np.asarray(vectors, dtype=np.float32)
        if vectors is not None and vectors.ndim == 1 and len(pids) == 1:
            vectors = vectors[None]
        if payloads is not None and not isinstance(payloads, (list, tuple)):
            raise TypeError(f"payloads: expected a list of dicts (one per id), got {payloads!r}")
        parts = self._split(pids)
        refs = [self._one(s, "upsert", self._take(pids, pos), self._take(vectors, pos),
                          self._take(payloads, pos), **kwargs) for s, pos in parts.items()]
        return tuple(self.db._wait(refs))

    def _by_ids_or_filter(self, method: str, ids: Any, filter: Any, *args: Any) -> tuple:
        """Run a write on the shards that hold ``ids`` (or on all, for a filter);
        returns each shard's write sequence number (the embedded write returns its one)."""
        if ids is None:
            return tuple(self._all(method, None, *args, filter=filter))
        from ..db.errors import PointNotFoundError
        from ..db.ids import normalize_ids
        pids = normalize_ids(ids, "ids")
        if method != "delete":
            # all or nothing, as the embedded collection: every id must exist on its
            # shard before any shard changes (a concurrent delete can still race this)
            found = {r.id for r in self.get(pids, with_payload=False)}
            for i, p in enumerate(pids):
                if p not in found:
                    raise PointNotFoundError(f"ids[{i}]: no point with id {p!r} in collection "
                                             f"{self.name!r}; nothing was changed")
        parts = self._split(pids)
        refs = [self._one(s, method, self._take(pids, pos), *args, filter=filter)
                for s, pos in parts.items()]
        return tuple(self.db._wait(refs))

    def delete(self, ids: Any = None, *, filter: Any = None) -> tuple:
        return self._by_ids_or_filter("delete", ids, filter)

    def set_payload(self, ids: Any, payload: dict, *, filter: Any = None) -> tuple:
        return self._by_ids_or_filter("set_payload", ids, filter, payload)

    def overwrite_payload(self, ids: Any, payload: dict, *, filter: Any = None) -> tuple:
        return self._by_ids_or_filter("overwrite_payload", ids, filter, payload)

    def delete_payload(self, ids: Any, keys: Any, *, filter: Any = None) -> tuple:
        return self._by_ids_or_filter("delete_payload", ids, filter, keys)

    def clear_payload(self, ids: Any, *, filter: Any = None) -> tuple:
        return self._by_ids_or_filter("clear_payload", ids, filter)

    def create_payload_index(self, key: str, schema: str = "keyword") -> None:
        self._all("create_payload_index", key, schema)

    def delete_payload_index(self, key: str) -> None:
        self._all("delete_payload_index", key)

    def checkpoint(self) -> None:
        self._all("checkpoint")

    # --- reads ----------------------------------------------------------------------------
    def count(self, filter: Any = None) -> int:
        return int(sum(self._all("count", filter)))

    def get(self, ids: Any, **kwargs: Any) -> list:
        """The points with these ids, in that order; ids not stored are left out."""
        from ..db.ids import normalize_ids
        pids = normalize_ids(ids, "ids")
        parts = self._split(pids)
        shards = list(parts)
        found = self.db._wait([self._one(s, "get", self._take(pids, parts[s]), **kwargs)
                               for s in shards])
        by_id = {r.id: r for recs in found for r in recs}
        seen, out = set(), []
        for p in pids:
            if p in by_id and p not in seen:
                seen.add(p)
                out.append(by_id[p])
        return out

    def search(self, query: Any = None, k: int = 10, *, offset: int = 0, **kwargs: Any):
        """Each shard's ``k + offset`` best, merged by score, then ``offset`` skipped."""
        from .._validate import check_k
        from ..db.results import Hits, QueryHits
        from ..db.validate import check_limit
        k = check_k(k)
        offset = check_limit(offset, "offset")
        per_shard = self._all("search", query, k + offset, **kwargs)
        larger = self.metric != "euclid"
        merged = []
        for q in range(len(per_shard[0])):
            points = heapq.merge(*(list(h[q]) for h in per_shard),
                                 key=lambda p: -p.score if larger else p.score)
            merged.append(QueryHits(list(points)[offset:offset + k]))
        return Hits(merged)

    def scroll(self, filter: Any = None, limit: int = 10, offset: Any = None,
               **kwargs: Any) -> tuple[list, Any]:
        """Points in id order from ``offset`` on, merged over the shards: ``(records,
        next_offset)``, as the embedded scroll."""
        from ..db.ids import sort_key
        from ..db.validate import check_limit
        limit = check_limit(limit, "limit", lo=1)
        pages = self._all("scroll", filter, limit, offset, **kwargs)
        records = sorted((r for recs, _ in pages for r in recs), key=lambda r: sort_key(r.id))
        if len(records) > limit:
            return records[:limit], records[limit].id
        nexts = [nxt for _, nxt in pages if nxt is not None]
        return records, (min(nexts, key=sort_key) if nexts else None)

    def info(self) -> dict:
        infos = self._all("info")
        out = dict(infos[0])
        for key in ("points", "indexed_points"):
            out[key] = int(sum(i.get(key, 0) for i in infos))
        out["index_in_use"] = sorted({i.get("index_in_use") for i in infos})
        out["sequence"] = int(sum(i.get("sequence", 0) for i in infos))
        out["shards"] = self.db.shards
        return out

    def __len__(self) -> int:
        return self.count()

    def __repr__(self) -> str:
        return f"ShardedCollection({self.name!r}, shards={self.db.shards})"
