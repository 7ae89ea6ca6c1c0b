"""A database: a folder holding collections (``voisin.connect(path)``).

Folder layout: ``voisin.sqlite3`` (+ its ``-wal`` / ``-shm``: the records,
the source of truth), ``index/`` (index checkpoints, derived, rebuilt when
missing or damaged) and ``LOCK``. The process that opens the folder for
writing holds an exclusive ``flock`` on ``LOCK`` until it closes; a second
writer (another process, or a second ``connect`` in the same one) gets
:class:`DatabaseLockedError` at once. ``read_only=True`` takes no lock: it
reads the records as they are at open (SQLite's WAL lets it read beside the
writer) and never writes anything.

``connect()`` without a path keeps the database in a fresh temporary folder
that is deleted on ``close()`` (or at interpreter exit), without an fsync per commit.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import threading
import uuid
import weakref
import zipfile
from typing import Any, Callable

import numpy as np

from ..io.atomic import atomic_write
from . import checkpoint
from .ann import AnnIndex
from .collection import Collection
from .errors import (CollectionExistsError, CollectionNotFoundError, DatabaseLockedError,
                     NotADatabaseError, ReadOnlyError)
from .store import FILE_NAME, SYNC_MODES, Store
from .validate import check_metric, check_name

SNAPSHOT_FORMAT = "voisin-snapshot"
_MANIFEST = "MANIFEST.json"


def _embedder_name(fn: Any) -> str | None:
    """The name a collection records for its embedder: a callable texts -> vectors, or an
    object with ``encode(texts)`` (voisin.embed.TextEncoder, a sentence-transformers model)."""
    if fn is None:
        return None
    if not callable(fn) and not callable(getattr(fn, "encode", None)):
        raise TypeError(f"embedder: expected a callable texts -> vectors or an encoder with "
                        f"encode(texts) (voisin.embed.TextEncoder), got {fn!r}")
    name = getattr(fn, "name", None)
    return name if isinstance(name, str) else getattr(fn, "__qualname__", type(fn).__qualname__)


def _check_embedder_dim(fn: Any, dim: int) -> None:
    own = getattr(fn, "dim", None)
    if isinstance(own, int) and not isinstance(own, bool) and own != dim:
        raise ValueError(f"embedder: {_embedder_name(fn)!r} makes vectors of dimension {own}, "
                         f"the collection holds dim={dim}")


class Database:
    """Collections in one folder (or in memory). Use :func:`connect`.

    Example:
        >>> import voisin
        >>> db = voisin.connect()
        >>> col = db.create_collection("docs", dim=4)
        >>> db.list_collections()
        ['docs']
        >>> db.close()
    """

    def __init__(self, path: str | os.PathLike | None = None, *, read_only: bool = False,
                 durability: str = "full"):
        if durability not in SYNC_MODES:
            raise ValueError(f"durability: expected one of {', '.join(SYNC_MODES)}, got {durability!r}")
        self._tmp = None
        if path is None:
            if read_only:
                raise ValueError("read_only: an in-memory database (path=None) cannot be read-only")
            path = self._tmp = tempfile.mkdtemp(prefix="voisin-db-")
            weakref.finalize(self, shutil.rmtree, self._tmp, True)
            durability = "normal"  # nothing outlives the process: no fsync per commit
        self.path = os.fspath(path)
        self.read_only = bool(read_only)
        self._lock = threading.RLock()
        self._open: dict[str, Collection] = {}
        self._lock_fd: int | None = None
        create = self._check_folder()
        if not read_only:
            self._take_lock()
        try:
            self._store = Store(os.path.join(self.path, FILE_NAME), read_only=read_only,
                                durability=durability, create=create)
        except BaseException:
            self._release_lock()
            raise
        self._index_dir = os.path.join(self.path, "index")
        self._closed = False

    # --- the folder -------------------------------------------------------------------
    def _check_folder(self) -> bool:
        """Whether a new database is to be created in the folder."""
        p = self.path
        if os.path.exists(p) and not os.path.isdir(p):
            raise NotADatabaseError(f"path: {p!r} is a file, not a voisin database folder")
        if os.path.isfile(os.path.join(p, FILE_NAME)):
            return False
        if self.read_only:
            raise NotADatabaseError(f"path: {p!r} holds no voisin database ({FILE_NAME} is missing)")
        if os.path.isdir(p) and os.listdir(p):
            raise NotADatabaseError(f"path: {p!r} is not empty and holds no voisin database "
                                    f"({FILE_NAME} is missing); refusing to create one among other files")
        os.makedirs(p, exist_ok=True)
        return True

    def _take_lock(self) -> None:
        fd = os.open(os.path.join(self.path, "LOCK"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DatabaseLockedError(
                f"path: {self.path!r} is open for writing elsewhere (pid {holder}); close it there "
                "first, or connect(path, read_only=True) for a read-only view") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"database {self.path!r} is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self.read_only:
            raise ReadOnlyError(f"database {self.path!r} was opened with read_only=True; "
                                "connect without it to write")

    # --- collections ------------------------------------------------------------------
    def create_collection(self, name: str, dim: int, metric: str = "cosine", index: str = "auto", *,
                          hnsw: dict | None = None, embedder: Callable | None = None) -> Collection:
        """A new, empty collection of ``dim``-dimensional vectors.

        ``metric``: "cosine" (vectors are normalised), "dot" or "euclid";
        ``index``: "auto" (exact while small, HNSW from a few thousand points)
        or any ``voisin.index_factory`` string; ``hnsw``: M / efConstruction /
        efSearch for "auto"; ``embedder``: a callable texts -> vectors for
        ``upsert(documents=...)`` and ``search(texts=...)``.
        """
        from .._validate import check_dimension
        self._check_writable()
        name = check_name(name)
        dim = check_dimension(dim, "dim")
        metric = check_metric(metric)
        if not isinstance(index, str):
            raise TypeError(f"index: expected 'auto' or an index_factory string, got {index!r}")
        if hnsw is not None:
            if not isinstance(hnsw, dict) or set(hnsw) - {"M", "efConstruction", "efSearch"}:
                raise ValueError(f"hnsw: expected a dict with M, efConstruction, efSearch, got {hnsw!r}")
        AnnIndex(dim, metric, index, hnsw)  # a bad factory string fails before anything is stored
        _check_embedder_dim(embedder, dim)
        config = {"dim": dim, "metric": metric, "index": index, "hnsw": hnsw,
                  "embedder": _embedder_name(embedder)}
        with self._lock:
            if self._store.collection(name) is not None:
                raise CollectionExistsError(f"name: collection {name!r} already exists")
            uid = uuid.uuid4().hex
            cid = self._store.create_collection(name, uid, config)
            col = Collection(self, name, cid, uid, config, 0, 0, embedder)
            self._open[name] = col
            return col

    def get_collection(self, name: str, *, embedder: Callable | None = None) -> Collection:
        """The collection ``name`` (loaded from disk on first use)."""
        self._check_open()
        with self._lock:
            col = self._open.get(name)
            if col is None:
                # one moment of the records, even if another process writes meanwhile
                with self._store.read_snapshot():
                    row = self._store.collection(name) if isinstance(name, str) else None
                    if row is None:
                        raise CollectionNotFoundError(f"name: no collection {name!r} in {self.path!r} "
                                                      f"(it has {self.list_collections()})")
                    cid, uid, config, seq, purged = row
                    col = self._open[name] = Collection(self, name, cid, uid, config, seq, purged)
            if embedder is not None:
                want, got = col.config.get("embedder"), _embedder_name(embedder)
                if want is not None and want != got:
                    raise ValueError(f"embedder: collection {name!r} was embedded with {want!r}, "
                                     f"got {got!r}")
                _check_embedder_dim(embedder, col.dim)
                col.embedder = embedder
            return col

    def get_or_create_collection(self, name: str, dim: int, metric: str = "cosine",
                                 index: str = "auto", **kwargs: Any) -> Collection:
        with self._lock:
            if self.has_collection(name):
                return self.get_collection(name, embedder=kwargs.get("embedder"))
            return self.create_collection(name, dim, metric, index, **kwargs)

    def has_collection(self, name: str) -> bool:
        self._check_open()
        return isinstance(name, str) and self._store.collection(name) is not None

    def list_collections(self) -> list[str]:
        self._check_open()
        # a name starting with '.' is a collection being recovered, never a user's
        return [row[1] for row in self._store.collections() if not row[1].startswith(".")]

    def delete_collection(self, name: str) -> None:
        """Delete the collection and all its points."""
        self._check_writable()
        with self._lock:
            row = self._store.collection(name) if isinstance(name, str) else None
            if row is None:
                raise CollectionNotFoundError(f"name: no collection {name!r} in {self.path!r}")
            col = self._open.pop(name, None)
            if col is not None:
                col._closed = "was deleted"
            self._store.drop_collection(row[0])
            checkpoint.remove_all(self._index_dir, row[1])

    # --- snapshots --------------------------------------------------------------------
    def snapshot(self, file: str | os.PathLike, *, collections: list[str] | None = None) -> str:
        """Write the whole database (or only ``collections``) to one file,
        consistent as of one moment; writes go on meanwhile (each collection
        pauses only while its index is copied). Restore it with :func:`restore`,
        or one collection of it with :meth:`recover_collection`."""
        self._check_open()
        file = os.fspath(file)
        with self._lock:
            rows = [r for r in self._store.collections() if not r[1].startswith(".")]
            if collections is not None:
                names = {r[1] for r in rows}
                for i, name in enumerate(collections):
                    if name not in names:
                        raise CollectionNotFoundError(f"collections[{i}]: no collection {name!r} "
                                                      f"in {self.path!r}")
                rows = [r for r in rows if r[1] in set(collections)]
            indexes: dict[str, tuple[dict, bytes]] = {}
            for _, name, uid, _, _, _ in rows:
                col = self._open.get(name)
                if col is not None and col._closed is None:
                    indexes[uid] = col._snapshot_checkpoint()
                else:
                    raw = checkpoint.read_raw(self._index_dir, uid)
                    if raw is not None:
                        indexes[uid] = raw
            with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(file))) as tmp:
                records = os.path.join(tmp, FILE_NAME)
                # after the indexes: records are never older
                self._store.backup(records, [r[0] for r in rows])

                def write(f: Any) -> None:
                    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
                        manifest = {"format": SNAPSHOT_FORMAT, "version": 1,
                                    "collections": [r[1] for r in rows],
                                    "indexes": {uid: meta for uid, (meta, _) in indexes.items()}}
                        z.writestr(_MANIFEST, json.dumps(manifest))
                        z.write(records, FILE_NAME)
                        for uid, (meta, data) in indexes.items():
                            z.writestr(f"index/{meta['file']}", data)
                atomic_write(file, write)
        return file

    def recover_collection(self, file: str | os.PathLike, name: str, *,
                           source: str | None = None, batch: int = 2048) -> Collection:
        """Load collection ``source`` (default: the snapshot's only collection, or
        ``name``) from snapshot ``file`` into this database as ``name``,
        replacing a collection of that name once the copy is complete: until
        then the old one serves reads and writes, and a failure leaves it as it was."""
        self._check_writable()
        name = check_name(name)
        with tempfile.TemporaryDirectory(dir=self.path, prefix=".recover-") as tmp:
            src_db = restore(file, os.path.join(tmp, "db"), durability="normal")
            try:
                available = src_db.list_collections()
                if source is None:
                    source = available[0] if len(available) == 1 else name
                if source not in available:
                    raise CollectionNotFoundError(f"source: the snapshot {os.fspath(file)!r} holds no "
                                                  f"collection {source!r} (it has {available})")
                src = src_db.get_collection(source)
                config = dict(src.config)
                with self._lock:
                    uid = uuid.uuid4().hex
                    cid = self._store.create_collection(f".recover-{uid}", uid, config)
                    col = Collection(self, f".recover-{uid}", cid, uid, config, 0, 0)
                try:
                    for key, schema in src.payload_schema.items():
                        col.create_payload_index(key, schema)
                    self._copy_points(src, col, batch)
                    col.checkpoint()
                except BaseException:
                    col._closed = "was abandoned"
                    self._store.drop_collection(cid)
                    checkpoint.remove_all(self._index_dir, uid)
                    raise
            finally:
                src_db.close()
        with self._lock:
            old = self._open.pop(name, None)
            row = self._store.collection(name)
            self._store.replace_collection(cid, name)
            if old is not None:
                old._closed = "was replaced by a recovered snapshot"
            if row is not None:
                checkpoint.remove_all(self._index_dir, row[1])
            col.name = name
            self._open[name] = col
        return col

    @staticmethod
    def _copy_points(src: Collection, dst: Collection, batch: int) -> None:
        from .ids import id_from_key
        for rows in src._store.live_rows(src._cid, batch):
            pids = [id_from_key(r[0]) for r in rows]
            X = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), src.dim)
            payloads = [json.loads(r[2]) if r[2] else {} for r in rows]
            docs = [r[3] for r in rows]
            # one kind of id per upsert call
            start = 0
            for i in range(1, len(pids) + 1):
                if i == len(pids) or isinstance(pids[i], int) != isinstance(pids[start], int):
                    part = slice(start, i)
                    has_docs = all(d is not None for d in docs[part])
                    dst.upsert(pids[part], X[part], payloads[part],
                               documents=docs[part] if has_docs else None)
                    start = i

    # --- lifetime -----------------------------------------------------------------------
    def close(self) -> None:
        """Checkpoint the indexes, close the records and release the folder."""
        with self._lock:
            if self._closed:
                return
            try:
                for col in self._open.values():
                    col._close("belongs to a closed database")
            finally:
                self._open.clear()
                self._store.close()
                self._release_lock()
                self._closed = True
                if self._tmp is not None:
                    shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "memory" if self._tmp else repr(self.path)
        return f"Database({where}{', read_only' if self.read_only else ''})"


def connect(path: str | os.PathLike | None = None, *, read_only: bool = False,
            durability: str = "full", api_key: str | None = None, timeout: float = 60.0) -> Any:
    """Open (or create) the database in folder ``path``; ``None`` keeps it in memory;
    a URL (``http://host:port``) connects to a ``voisin serve`` instead, with
    the same methods (:class:`voisin.server.client.RemoteDatabase`).

    ``durability="full"`` (default): a write that returned survives a killed
    process and a power loss; ``"normal"``: it survives a killed process, a
    power loss may undo the last writes (never corrupting the rest).
    """
    if isinstance(path, str) and path.startswith(("http://", "https://")):
        from ..server.client import RemoteDatabase
        if read_only:
            raise ValueError("read_only: for a server, connect with its read-only API key instead")
        return RemoteDatabase(path, api_key=api_key, timeout=timeout)
    if api_key is not None:
        raise ValueError("api_key: only for a server URL (http://...), not for a folder")
    return Database(path, read_only=read_only, durability=durability)


def restore(file: str | os.PathLike, folder: str | os.PathLike, **kwargs: Any) -> Database:
    """Unpack a snapshot written by :meth:`Database.snapshot` into a new (or
    empty) ``folder`` and open it."""
    file, folder = os.fspath(file), os.fspath(folder)
    if os.path.exists(folder) and (not os.path.isdir(folder) or os.listdir(folder)):
        raise ValueError(f"folder: expected a new or empty folder to restore into, got {folder!r}")
    try:
        with zipfile.ZipFile(file) as z:
            manifest = json.loads(z.read(_MANIFEST))
            if manifest.get("format") != SNAPSHOT_FORMAT:
                raise NotADatabaseError(f"file: {file!r} is not a voisin snapshot")
            records = z.read(FILE_NAME)
            indexes = {uid: (meta, z.read(f"index/{meta['file']}"))
                       for uid, meta in manifest.get("indexes", {}).items()}
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        if isinstance(exc, NotADatabaseError):
            raise
        raise NotADatabaseError(f"file: {file!r} is not a readable voisin snapshot ({exc})") from None
    os.makedirs(folder, exist_ok=True)
    atomic_write(os.path.join(folder, FILE_NAME), lambda f: f.write(records))
    for uid, (meta, data) in indexes.items():
        checkpoint.save_bytes(os.path.join(folder, "index"), uid, meta, data)
    return Database(folder, **kwargs)
