"""A collection: points (id + vector + payload [+ document]) kept in SQLite,
searched through a derived voisin index, filtered with Qdrant's filter language.

Writes are serialised per collection: each call validates everything first,
commits one SQLite transaction (all of the batch or none of it), and only then
applies the change to the in-memory state (payloads, filter columns, ANN index)
under the collection's gate, so a concurrent search sees the state before the
batch or after it, never half of it. Reads hold the gate for reading and run
in parallel with each other.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Callable, Sequence

import numpy as np

from ..indexes.idmap import _ReadWriteGate as ReadWriteGate
from . import checkpoint
from .ann import AnnIndex
from .errors import PointNotFoundError, ReadOnlyError
from .filters.parse import parse_filter
from .filters.paths import parse_path
from .ids import id_from_key, id_key, normalize_ids
from .payloads import PayloadStore
from .reads import CollectionReads, copy_json
from .validate import (check_keys, check_schema, check_unique_ids, check_vectors,
                       clean_documents, clean_payload, clean_payloads)

#: an index checkpoint is written after this many rows changed since the last
#: one (or a quarter of the collection, whichever is larger), and on close
CHECKPOINT_ROWS = 20_000
CHECKPOINT_FRACTION = 0.25


def _dumps(p: dict) -> str:
    return json.dumps(p, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class Collection(CollectionReads):
    """Points with vectors and JSON payloads; search filtered like Qdrant.

    Get one from :meth:`voisin.db.Database.create_collection` or
    ``get_collection``.

    Example:
        >>> import numpy as np, voisin
        >>> db = voisin.connect()
        >>> col = db.create_collection("docs", dim=3, metric="cosine")
        >>> col.upsert([1, 2], np.eye(3)[:2], payloads=[{"lang": "fr"}, {"lang": "en"}])
        1
        >>> hits = col.search(np.eye(3)[0], k=2, filter={"must": [{"key": "lang", "match": {"value": "fr"}}]})
        >>> hits[0].ids, hits[0].payloads
        ([1], [{'lang': 'fr'}])
        >>> db.close()
    """

    def __init__(self, db: Any, name: str, cid: int, uid: str, config: dict, seq: int,
                 purged: int, embedder: Callable | None = None):
        self._db = db
        self._store = db._store
        self.name = name
        self._cid = cid
        self._uid = uid
        self.config = config
        self.dim: int = config["dim"]
        self.metric: str = config["metric"]
        self.seq = seq
        self._purged = purged
        self.embedder = embedder
        self._iid_of: dict[Any, int] = {}   # point id -> internal id (tombstones included)
        self._next_iid = 0
        self._payloads = PayloadStore(self._iids_for_ids)
        self._ann = AnnIndex(self.dim, self.metric, config["index"], config.get("hnsw"))
        self._gate = ReadWriteGate()
        self._write_lock = threading.Lock()
        self._rows_since_checkpoint = 0
        self._order: tuple[int, np.ndarray, list] | None = None
        self._closed: str | None = None
        self._load()

    # --- opening ----------------------------------------------------------------------
    def _load(self) -> None:
        live, texts, pids = [], [], []
        for iid, key, payload, alive in self._store.all_points(self._cid):
            pid = id_from_key(key)
            self._iid_of[pid] = iid
            if alive:
                live.append(iid)
                texts.append(payload or "{}")
                pids.append(pid)
        self._next_iid = max(self._iid_of.values(), default=-1) + 1
        # one parse of a JSON array is several times faster than a parse per row
        docs = json.loads("[" + ",".join(texts) + "]")
        self._payloads.put(live, docs, pids)
        self._load_index(len(live))
        for key, schema in self._store.payload_indexes(self._cid).items():
            self._payloads.declare(key, schema)

    def _load_index(self, count: int) -> None:
        ck = checkpoint.load(self._db._index_dir, self._uid, self.config, self.seq, self._purged)
        if ck is not None:
            index, covered, kind = ck
            self._ann.adopt(index, kind)
            iids, X, dead = self._store.live_vectors(self._cid, self.dim, since=covered)
            self._ann.remove(np.concatenate([iids, dead]))
            self._ann.add(iids, X)
            self._rows_since_checkpoint = len(iids) + len(dead)
            if self._ann.count == count:
                return
            checkpoint.log.warning("collection %s: checkpoint replay gave %d points, the records "
                                   "hold %d; rebuilding", self.name, self._ann.count, count)
        self._ann = self._built_index()
        self._rows_since_checkpoint = count

    def _built_index(self) -> AnnIndex:
        ann = AnnIndex(self.dim, self.metric, self.config["index"], self.config.get("hnsw"))
        iids, X, _ = self._store.live_vectors(self._cid, self.dim)
        ann.build(iids, X)
        return ann

    # --- small helpers ----------------------------------------------------------------
    def _iids_for_ids(self, ids: frozenset) -> list[int]:
        live = self._payloads.is_live
        return [i for i in (self._iid_of.get(p) for p in ids) if i is not None and live(i)]

    def _check_open(self) -> None:
        if self._closed is not None:
            raise RuntimeError(f"collection {self.name!r} {self._closed}")

    def _check_writable(self) -> None:
        self._check_open()
        if self._db.read_only:
            raise ReadOnlyError(f"collection {self.name!r}: the database was opened with "
                                "read_only=True; connect without it to write")

    def _embed(self, texts: list[str], name: str) -> np.ndarray:
        if self.embedder is None:
            raise ValueError(f"{name}: collection {self.name!r} has no embedder to turn texts into "
                             "vectors; pass vectors, or open it with embedder=...")
        encode = getattr(self.embedder, "encode", None)  # an encoder object, else a plain callable
        out = encode(texts) if callable(encode) else self.embedder(texts)
        return check_vectors(out, self.dim, len(texts), self.metric, name="embedder output")

    def _existing(self, ids: Any, name: str = "ids") -> tuple[list, list[int]]:
        """Normalised ids and their internal ids; every one must be a live point."""
        pids = normalize_ids(ids, name)
        iids = []
        for i, p in enumerate(pids):
            iid = self._iid_of.get(p)
            if iid is None or not self._payloads.is_live(iid):
                raise PointNotFoundError(f"{name}[{i}]: no point with id {p!r} in collection "
                                         f"{self.name!r}; nothing was changed")
            iids.append(iid)
        return pids, iids

    def _select(self, ids: Any, filter: Any, what: str) -> list[int]:
        """Internal ids named by ``ids`` or matched by ``filter`` (exactly one given)."""
        if (ids is None) == (filter is None):
            raise TypeError(f"{what}: expected either ids or filter, got "
                            f"{'both' if ids is not None else 'neither'}")
        if ids is not None:
            return self._existing(ids)[1]
        node = parse_filter(filter)
        with self._gate.reading():
            return np.flatnonzero(self._payloads.mask(node)).tolist()

    # --- writes ---------------------------------------------------------------------------
    def upsert(self, ids: Any, vectors: Any = None, payloads: Any = None, *,
               documents: Sequence[str] | None = None) -> int:
        """Insert or replace points; returns the write's sequence number.

        ``ids``: unsigned integers or UUID strings (one kind per call, no
        duplicates); ``vectors``: (n, dim), or ``documents`` to embed with the
        collection's embedder; ``payloads``: one JSON object per point. The
        whole batch is stored or none of it.
        """
        self._check_writable()
        pids = normalize_ids(ids, "ids")
        n = len(pids)
        check_unique_ids(pids)
        texts = None if documents is None else clean_documents(documents, n)
        # everything the caller gave is checked before the documents are embedded (the costly part)
        docs = clean_payloads(payloads, n)
        if vectors is None:
            if texts is None:
                raise TypeError("vectors: expected an array of shape (n, dim), or documents=... "
                                "for a collection with an embedder")
            if n == 0:
                return self.seq
            vectors = self._embed(texts, "documents")
        X = check_vectors(vectors, self.dim, n, self.metric)
        if n == 0:
            return self.seq
        with self._write_lock:
            self._check_writable()
            fresh: dict[Any, int] = {}
            iids = []
            for p in pids:
                iid = self._iid_of.get(p)
                if iid is None:
                    iid = fresh[p] = self._next_iid + len(fresh)
                iids.append(iid)
            seq = self.seq + 1
            rows = [(iid, id_key(p), X[i].tobytes(), _dumps(docs[i]),
                     None if texts is None else texts[i], seq) for i, (iid, p) in enumerate(zip(iids, pids))]
            with self._store.write() as c:
                self._store.upsert_rows(c, self._cid, rows)
                self._store.set_seq(c, self._cid, seq)
            # the graph insertion runs while searches go on; they wait only while
            # the new vectors and their payloads become visible together
            with self._ann.staged_add(np.asarray(iids, dtype=np.int64), X) as publish_vectors:
                with self._gate.writing():
                    self._iid_of.update(fresh)
                    self._next_iid += len(fresh)
                    self._payloads.put(iids, docs, pids)
                    publish_vectors()
                    self.seq = seq
            self._after_write(n)
            return seq

    def delete(self, ids: Any = None, *, filter: Any = None) -> int:
        """Delete points by id (missing ones are ignored) or by filter; returns the sequence."""
        self._check_writable()
        with self._write_lock:
            self._check_writable()
            if ids is not None and filter is None:
                pids = normalize_ids(ids, "ids")
                iids = sorted({i for i in (self._iid_of.get(p) for p in pids)
                               if i is not None and self._payloads.is_live(i)})
            else:
                iids = self._select(ids, filter, "delete")
            if not iids:
                return self.seq
            seq = self.seq + 1
            with self._store.write() as c:
                self._store.delete_rows(c, self._cid, iids, seq)
                self._store.set_seq(c, self._cid, seq)
            with self._gate.writing():
                self._payloads.remove(iids)
                self._ann.remove(np.asarray(iids, dtype=np.int64))
                self.seq = seq
            self._after_write(len(iids))
            return seq

    def _write_payloads(self, ids: Any, filter: Any, what: str,
                        change: Callable[[dict], dict]) -> int:
        self._check_writable()
        with self._write_lock:
            self._check_writable()
            iids = self._select(ids, filter, what)
            if not iids:
                return self.seq
            docs = [change(copy_json(self._payloads.docs[i])) for i in iids]
            seq = self.seq + 1
            with self._store.write() as c:
                self._store.set_payload_rows(c, self._cid, [(_dumps(d), seq, i) for d, i in zip(docs, iids)])
                self._store.set_seq(c, self._cid, seq)
            with self._gate.writing():
                self._payloads.put(iids, docs, [self._payloads.ids[i] for i in iids])
                self.seq = seq
            self._after_write(len(iids))
            return seq

    def set_payload(self, ids: Any, payload: dict, *, filter: Any = None) -> int:
        """Set these keys (others are kept) on the points named by ``ids`` or ``filter``."""
        new = clean_payload(payload, "payload")
        return self._write_payloads(ids, filter, "set_payload", lambda d: {**d, **copy_json(new)})

    def overwrite_payload(self, ids: Any, payload: dict, *, filter: Any = None) -> int:
        """Replace the whole payload of the points named by ``ids`` or ``filter``."""
        new = clean_payload(payload, "payload")
        return self._write_payloads(ids, filter, "overwrite_payload", lambda d: copy_json(new))

    def delete_payload(self, ids: Any, keys: Any, *, filter: Any = None) -> int:
        """Remove these keys (top-level, or dotted paths into objects) from the payloads."""
        paths = []
        for i, k in enumerate(check_keys(keys)):
            try:
                path = parse_path(k)
            except ValueError as exc:
                raise ValueError(f"keys[{i}]: {exc}") from None
            if any(kind != "key" for kind, _ in path):
                raise ValueError(f"keys[{i}]: expected a key path of object keys only (a.b), got {k!r}")
            paths.append([arg for _, arg in path])

        def drop(d: dict) -> dict:
            for path in paths:
                node = d
                for part in path[:-1]:
                    node = node.get(part) if isinstance(node, dict) else None
                if isinstance(node, dict):
                    node.pop(path[-1], None)
            return d
        return self._write_payloads(ids, filter, "delete_payload", drop)

    def clear_payload(self, ids: Any, *, filter: Any = None) -> int:
        """Remove every payload key of the points named by ``ids`` or ``filter``."""
        return self._write_payloads(ids, filter, "clear_payload", lambda d: {})

    def _after_write(self, rows: int) -> None:
        self._rows_since_checkpoint += rows
        count = self._payloads.count
        if self._ann.wants_target(count):
            ann = self._built_index()
            with self._gate.writing():
                self._ann = ann
        if self._rows_since_checkpoint >= max(CHECKPOINT_ROWS, CHECKPOINT_FRACTION * count):
            self._checkpoint_locked()

    # --- checkpoints ------------------------------------------------------------------------
    def checkpoint(self) -> None:
        """Write the index checkpoint now (reopening then replays nothing)."""
        self._check_writable()
        with self._write_lock:
            self._checkpoint_locked()

    def _checkpoint_locked(self) -> None:
        checkpoint.save(self._db._index_dir, self._uid, self.seq, self._ann.kind, self.config,
                        self._ann.index)
        self._store.purge(self._cid, self.seq)
        self._purged = self.seq
        live = self._payloads.is_live
        self._iid_of = {p: i for p, i in self._iid_of.items() if live(i)}
        self._rows_since_checkpoint = 0

    def _snapshot_checkpoint(self) -> tuple[dict, bytes]:
        """The index as of the current sequence, in memory (for Database.snapshot)."""
        with self._write_lock:
            return checkpoint.serialize(self._uid, self.seq, self._ann.kind, self.config,
                                        self._ann.index)

    # --- payload indexes -------------------------------------------------------------------
    def create_payload_index(self, key: str, schema: str = "keyword") -> None:
        """Keep a column for ``key`` ready (and say what type it holds); filters
        give the same answers with or without one."""
        self._check_writable()
        schema = check_schema(schema)
        try:
            parse_path(key)
        except ValueError as exc:
            raise ValueError(f"key: {exc}") from None
        with self._write_lock:
            self._store.set_payload_index(self._cid, key, schema)
            with self._gate.reading():
                self._payloads.declare(key, schema)

    def delete_payload_index(self, key: str) -> None:
        self._check_writable()
        with self._write_lock:
            self._store.set_payload_index(self._cid, key, None)
            self._payloads.undeclare(key)

    @property
    def payload_schema(self) -> dict[str, str]:
        return dict(self._payloads.declared)

    @property
    def index_description(self) -> str:
        """What ``index`` resolved to (``index="auto"`` says what it picked)."""
        return self._ann.description

    def _close(self, why: str) -> None:
        """Checkpoint (when writable) and refuse further use."""
        if self._closed is not None:
            return
        if not self._db.read_only and self._rows_since_checkpoint:
            with self._write_lock:
                self._checkpoint_locked()
        self._closed = why

    def __repr__(self) -> str:
        return (f"Collection({self.name!r}, dim={self.dim}, metric={self.metric!r}, "
                f"points={self._payloads.count}, index={self._ann.description!r})")
