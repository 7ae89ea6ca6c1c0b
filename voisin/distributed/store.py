"""The durable state of a sharded index: one directory, no Ray.

Each shard is a checkpoint (a FAISS-format index file) plus a write-ahead log
of the writes after it, one file per write, named by its log sequence number
(LSN, counted per shard from 1)::

    home/manifest.json                      configuration, next id
    home/trained.faiss                      the trained empty index (LSN 0 of every shard)
    home/shard-0003/ckpt-000000000042.faiss  shard 3 as of its write 42
    home/shard-0003/wal-000000000043.npz     shard 3's write 43

The driver writes a log record (atomically, fsynced) *before* it sends the
write to the shard's replicas and acknowledges the write after that, so a
replica that dies, or misses a write, rebuilds its shard from the newest
checkpoint plus the records after it. Every file appears by an atomic rename:
a reader sees a whole record or none. On a cluster the directory must be
reachable from every node (a shared file system).
"""

from __future__ import annotations

import json
import os
import pickle
import re
from typing import Any, Iterator, NamedTuple

import numpy as np

from ..io.atomic import atomic_write

MANIFEST = "manifest.json"
TRAINED = "trained.faiss"
FORMAT = "voisin-sharded/1"
_CKPT = re.compile(r"^ckpt-(\d{12})\.faiss$")
_WAL = re.compile(r"^wal-(\d{12})\.npz$")


class Record(NamedTuple):
    """One logged write: ``op`` is "add" (ids, x) or "remove" (ids or a selector)."""
    lsn: int
    op: str
    ids: np.ndarray
    x: np.ndarray | None
    sel: Any


class MissingRecordError(RuntimeError):
    """A log record between a checkpoint and a later record is gone (pruned by a
    newer checkpoint): the reader starts again from the newest checkpoint."""


def shard_dir(home: str, shard: int) -> str:
    return os.path.join(home, f"shard-{shard:04d}")


def write_json(path: str, obj: dict) -> None:
    data = json.dumps(obj, indent=1, sort_keys=True).encode()
    atomic_write(path, lambda f: f.write(data))


def read_manifest(home: str) -> dict:
    path = os.path.join(home, MANIFEST)
    try:
        with open(path, "rb") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"path: no sharded index in {home!r} (expected {MANIFEST})") from None
    except ValueError as exc:
        raise ValueError(f"path: {path} is not a sharded-index manifest: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise ValueError(f"path: {path} has format {manifest.get('format')!r}, expected {FORMAT!r}")
    return manifest


class ShardStore:
    """Checkpoints and log of one shard (see the module docstring)."""

    def __init__(self, home: str, shard: int):
        self.home = home
        self.shard = shard
        self.dir = shard_dir(home, shard)
        os.makedirs(self.dir, exist_ok=True)

    def _scan(self, pattern: re.Pattern) -> list[tuple[int, str]]:
        found = []
        for name in os.listdir(self.dir):
            m = pattern.match(name)
            if m:
                found.append((int(m.group(1)), os.path.join(self.dir, name)))
        return sorted(found)

    # --- the log --------------------------------------------------------------------
    def append(self, lsn: int, op: str, ids: np.ndarray, x: np.ndarray | None = None,
               sel: Any = None) -> None:
        sel_bytes = np.frombuffer(pickle.dumps(sel), dtype=np.uint8) if sel is not None else np.zeros(0, np.uint8)
        arrays = {"lsn": np.int64(lsn), "op": np.array(op), "ids": ids, "sel": sel_bytes,
                  "x": x if x is not None else np.zeros((0, 0), np.float32)}
        atomic_write(os.path.join(self.dir, f"wal-{lsn:012d}.npz"), lambda f: np.savez(f, **arrays))

    def records(self, after: int, upto: int | None = None) -> Iterator[Record]:
        """Records after LSN ``after`` (up to ``upto``), in order, without gaps."""
        expect = after + 1
        for lsn, path in self._scan(_WAL):
            if lsn <= after:
                continue
            if upto is not None and lsn > upto:
                break
            if lsn != expect:
                raise MissingRecordError(f"shard {self.shard}: log record {expect} is missing")
            try:
                with np.load(path, allow_pickle=False) as z:
                    sel = pickle.loads(z["sel"].tobytes()) if z["sel"].size else None
                    x = z["x"] if str(z["op"]) == "add" else None
                    yield Record(lsn, str(z["op"]), z["ids"], x, sel)
            except FileNotFoundError:
                raise MissingRecordError(f"shard {self.shard}: log record {lsn} was pruned") from None
            expect += 1
        if upto is not None and expect <= upto:
            raise MissingRecordError(f"shard {self.shard}: log records {expect}..{upto} are missing")

    def last_lsn(self) -> int:
        """The newest LSN on disk (log or checkpoint)."""
        wal = self._scan(_WAL)
        ckpt = self._scan(_CKPT)
        return max([w[0] for w in wal[-1:]] + [c[0] for c in ckpt[-1:]] + [0])

    def max_added_id(self) -> int:
        """The largest id in the log's add records (-1 when none)."""
        top = -1
        for lsn, path in self._scan(_WAL):
            with np.load(path, allow_pickle=False) as z:
                if str(z["op"]) == "add" and z["ids"].size:
                    top = max(top, int(z["ids"].max()))
        return top

    # --- checkpoints -------------------------------------------------------------------
    def latest_checkpoint(self) -> tuple[int, str | None]:
        ckpt = self._scan(_CKPT)
        return ckpt[-1] if ckpt else (0, None)

    def checkpoint_path(self, lsn: int) -> str:
        return os.path.join(self.dir, f"ckpt-{lsn:012d}.faiss")

    def prune(self) -> None:
        """Keep the two newest checkpoints and the log after the older of them,
        so a replica that is reading the previous checkpoint still finds its log."""
        ckpt = self._scan(_CKPT)
        if len(ckpt) < 2:
            return
        keep_from = ckpt[-2][0]
        for lsn, path in ckpt[:-2]:
            _unlink(path)
        for lsn, path in self._scan(_WAL):
            if lsn <= keep_from:
                _unlink(path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
