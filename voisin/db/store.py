"""The source of truth: one SQLite database (WAL mode) per folder.

Tables: ``meta`` (format marker), ``collections`` (name, config, the last
write sequence ``seq`` and the ``purged`` horizon), ``payload_indexes`` and
one ``points_<cid>`` table per collection: internal id, point id (text),
vector (float32 bytes; NULL once deleted), payload (JSON), document, and the
sequence number of the write that last touched the row. A deleted point stays
as a tombstone row until an index checkpoint covers its deletion, so that a
checkpoint can be brought up to date by replaying the rows with ``seq``
above its own.

Durability: ``synchronous=FULL`` (default) fsyncs the WAL at every commit, so
a committed write survives power loss; ``NORMAL`` survives a killed process
but may lose the last commits on power loss (docs/collections.md).

One writer connection (guarded by a lock) serves all writes; every reading
thread gets its own connection, which WAL lets run beside the writer.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from .errors import NotADatabaseError

FILE_NAME = "voisin.sqlite3"
FORMAT = "voisin-db"
FORMAT_VERSION = "1"
SYNC_MODES = {"full": "FULL", "normal": "NORMAL"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS collections(
    cid INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, uid TEXT NOT NULL,
    config TEXT NOT NULL, seq INTEGER NOT NULL DEFAULT 0, purged INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS payload_indexes(
    cid INTEGER NOT NULL, key TEXT NOT NULL, schema TEXT NOT NULL, PRIMARY KEY(cid, key));
"""

#: SQLite's default limit of host parameters per statement is 32766; stay well below
_CHUNK = 900


def _chunks(seq: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), _CHUNK):
        yield seq[i:i + _CHUNK]


class Store:
    """SQLite access for one database folder (see the module docstring)."""

    def __init__(self, file: str, *, read_only: bool = False, durability: str = "full",
                 create: bool = False):
        self.file = file
        self.read_only = read_only
        self.sync = SYNC_MODES[durability]
        self._local = threading.local()
        self._lock = threading.RLock()
        self._all_readers: list[sqlite3.Connection] = []
        try:
            self._w = None if read_only else self._connect(writer=True)
            conn = self._w if self._w is not None else self.reader()
            if create and not read_only:
                conn.executescript(_SCHEMA)
                conn.execute("INSERT OR IGNORE INTO meta VALUES('format', ?)", (FORMAT,))
                conn.execute("INSERT OR IGNORE INTO meta VALUES('version', ?)", (FORMAT_VERSION,))
            row = conn.execute("SELECT value FROM meta WHERE key='format'").fetchone()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise NotADatabaseError(f"{file}: not a voisin database ({exc})") from None
        if row is None or row[0] != FORMAT:
            self.close()
            raise NotADatabaseError(f"{file}: not a voisin database (no voisin format marker)")

    def _connect(self, writer: bool) -> sqlite3.Connection:
        if self.read_only:
            conn = sqlite3.connect(f"file:{self.file}?mode=ro", uri=True, isolation_level=None,
                                   check_same_thread=False)
        else:
            conn = sqlite3.connect(self.file, isolation_level=None, check_same_thread=False,
                                   timeout=30.0)
            if writer:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if mode.lower() != "wal":  # pragma: no cover - filesystems without shared memory
                    raise NotADatabaseError(f"{self.file}: SQLite refused WAL mode ({mode})")
        conn.execute(f"PRAGMA synchronous={self.sync}")
        return conn

    def reader(self) -> sqlite3.Connection:
        """This thread's read connection."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect(writer=False)
            with self._lock:
                self._all_readers.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for c in self._all_readers:
                c.close()
            self._all_readers.clear()
            if getattr(self, "_w", None) is not None:
                self._w.close()
                self._w = None
        self._local = threading.local()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One transaction on the writer connection: all of it commits or none."""
        with self._lock:
            conn = self._w
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def read_snapshot(self) -> Iterator[None]:
        """Reads of this thread inside the block see one moment of the records
        (a WAL read transaction), even while another process writes."""
        conn = self.reader()
        if conn.in_transaction:
            yield
            return
        conn.execute("BEGIN")
        try:
            yield
        finally:
            conn.execute("COMMIT")

    # --- collections ---------------------------------------------------------------
    def collections(self) -> list[tuple[int, str, str, dict, int, int]]:
        rows = self.reader().execute(
            "SELECT cid, name, uid, config, seq, purged FROM collections ORDER BY name").fetchall()
        return [(c, n, u, json.loads(cfg), s, p) for c, n, u, cfg, s, p in rows]

    def collection(self, name: str) -> tuple[int, str, dict, int, int] | None:
        row = self.reader().execute("SELECT cid, uid, config, seq, purged FROM collections "
                                    "WHERE name=?", (name,)).fetchone()
        if row is None:
            return None
        return row[0], row[1], json.loads(row[2]), row[3], row[4]

    def create_collection(self, name: str, uid: str, config: dict) -> int:
        with self.write() as c:
            cur = c.execute("INSERT INTO collections(name, uid, config) VALUES(?, ?, ?)",
                            (name, uid, json.dumps(config)))
            cid = cur.lastrowid
            c.execute(f"CREATE TABLE points_{cid}(iid INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL, "
                      "vec BLOB, payload TEXT, document TEXT, seq INTEGER NOT NULL)")
            c.execute(f"CREATE INDEX points_{cid}_seq ON points_{cid}(seq)")
        return cid

    def drop_collection(self, cid: int) -> None:
        with self.write() as c:
            c.execute("DELETE FROM collections WHERE cid=?", (cid,))
            c.execute("DELETE FROM payload_indexes WHERE cid=?", (cid,))
            c.execute(f"DROP TABLE IF EXISTS points_{cid}")

    def replace_collection(self, cid: int, name: str) -> None:
        """Give collection ``cid`` the name ``name``, dropping the collection that
        held it (if any), in one transaction: a reader sees the old or the new."""
        with self.write() as c:
            row = c.execute("SELECT cid FROM collections WHERE name=?", (name,)).fetchone()
            if row is not None and row[0] != cid:
                c.execute("DELETE FROM collections WHERE cid=?", (row[0],))
                c.execute("DELETE FROM payload_indexes WHERE cid=?", (row[0],))
                c.execute(f"DROP TABLE IF EXISTS points_{row[0]}")
            c.execute("UPDATE collections SET name=? WHERE cid=?", (name, cid))

    def live_rows(self, cid: int, batch: int) -> Iterator[list[tuple[str, bytes, str, str | None]]]:
        """(key, vector bytes, payload json, document) of the live rows, in
        batches, in internal id order, as of one moment."""
        conn = self._connect(writer=False)
        try:
            conn.execute("BEGIN")
            cur = conn.execute(f"SELECT key, vec, payload, document FROM points_{cid} "
                               "WHERE vec IS NOT NULL ORDER BY iid")
            while rows := cur.fetchmany(batch):
                yield rows
            conn.execute("COMMIT")
        finally:
            conn.close()

    # --- points -----------------------------------------------------------------------
    @staticmethod
    def upsert_rows(c: sqlite3.Connection, cid: int, rows: Iterable[tuple]) -> None:
        """rows: (iid, key, vector bytes, payload json, document, seq)."""
        c.executemany(f"INSERT INTO points_{cid}(iid, key, vec, payload, document, seq) "
                      "VALUES(?, ?, ?, ?, ?, ?) ON CONFLICT(iid) DO UPDATE SET vec=excluded.vec, "
                      "payload=excluded.payload, document=excluded.document, seq=excluded.seq",
                      rows)

    @staticmethod
    def set_payload_rows(c: sqlite3.Connection, cid: int, rows: Iterable[tuple]) -> None:
        """rows: (payload json, seq, iid)."""
        c.executemany(f"UPDATE points_{cid} SET payload=?, seq=? WHERE iid=?", rows)

    @staticmethod
    def delete_rows(c: sqlite3.Connection, cid: int, iids: Sequence[int], seq: int) -> None:
        c.executemany(f"UPDATE points_{cid} SET vec=NULL, payload=NULL, document=NULL, seq=? "
                      "WHERE iid=?", [(seq, i) for i in iids])

    @staticmethod
    def set_seq(c: sqlite3.Connection, cid: int, seq: int) -> None:
        c.execute("UPDATE collections SET seq=? WHERE cid=?", (seq, cid))

    def purge(self, cid: int, upto: int) -> None:
        """Forget tombstones whose deletion a checkpoint at ``upto`` covers."""
        with self.write() as c:
            c.execute(f"DELETE FROM points_{cid} WHERE vec IS NULL AND seq <= ?", (upto,))
            c.execute("UPDATE collections SET purged=MAX(purged, ?) WHERE cid=?", (upto, cid))

    def all_points(self, cid: int) -> list[tuple[int, str, str | None, bool]]:
        """(iid, key, payload json, alive) of every row, tombstones included."""
        return self.reader().execute(
            f"SELECT iid, key, payload, vec IS NOT NULL FROM points_{cid}").fetchall()

    def vectors(self, cid: int, iids: Sequence[int], dim: int) -> dict[int, np.ndarray]:
        out: dict[int, np.ndarray] = {}
        conn = self.reader()
        for part in _chunks(list(iids)):
            q = f"SELECT iid, vec FROM points_{cid} WHERE vec IS NOT NULL AND iid IN ({','.join('?' * len(part))})"
            for iid, blob in conn.execute(q, part):
                out[iid] = np.frombuffer(blob, dtype=np.float32, count=dim)
        return out

    def documents(self, cid: int, iids: Sequence[int]) -> dict[int, str | None]:
        out: dict[int, str | None] = {}
        conn = self.reader()
        for part in _chunks(list(iids)):
            q = f"SELECT iid, document FROM points_{cid} WHERE iid IN ({','.join('?' * len(part))})"
            out.update(conn.execute(q, part).fetchall())
        return out

    def live_vectors(self, cid: int, dim: int, since: int = -1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(iids, vectors, dead iids) of the rows written after sequence ``since``:
        live rows with their vectors, deleted rows apart."""
        rows = self.reader().execute(f"SELECT iid, vec FROM points_{cid} WHERE seq > ? ORDER BY iid",
                                     (since,)).fetchall()
        live = [(i, v) for i, v in rows if v is not None]
        dead = np.array([i for i, v in rows if v is None], dtype=np.int64)
        iids = np.array([i for i, _ in live], dtype=np.int64)
        X = np.frombuffer(b"".join(v for _, v in live), dtype=np.float32).reshape(len(live), dim)
        return iids, X.copy(), dead

    # --- payload indexes -------------------------------------------------------------
    def payload_indexes(self, cid: int) -> dict[str, str]:
        return dict(self.reader().execute("SELECT key, schema FROM payload_indexes WHERE cid=?",
                                          (cid,)).fetchall())

    def set_payload_index(self, cid: int, key: str, schema: str | None) -> None:
        with self.write() as c:
            if schema is None:
                c.execute("DELETE FROM payload_indexes WHERE cid=? AND key=?", (cid, key))
            else:
                c.execute("INSERT OR REPLACE INTO payload_indexes VALUES(?, ?, ?)", (cid, key, schema))

    def backup(self, target_file: str, keep: Sequence[int] | None = None) -> None:
        """A consistent copy of the database as of one moment; writers go on meanwhile
        (WAL readers do not block the writer, and one backup step is one read).
        ``keep``: only these collections (by cid) stay in the copy."""
        src = self._connect(writer=False)
        dst = sqlite3.connect(target_file, isolation_level=None)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
            if keep is not None:
                gone = [c for (c,) in dst.execute("SELECT cid FROM collections") if c not in set(keep)]
                for c in gone:
                    dst.execute("DELETE FROM collections WHERE cid=?", (c,))
                    dst.execute("DELETE FROM payload_indexes WHERE cid=?", (c,))
                    dst.execute(f"DROP TABLE IF EXISTS points_{c}")
                if gone:
                    dst.execute("VACUUM")
        finally:
            dst.close()
            src.close()
