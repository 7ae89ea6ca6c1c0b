"""Index checkpoints: the ANN index in FAISS format with the write sequence it covers.

Files, in ``<folder>/index/``: ``<uid>-<seq>.faiss`` (written by
``voisin.write_index``, atomically, with its checksum trailer) and
``<uid>.json`` naming the current one with its sequence, kind, index spec,
dimension, metric, point count and SHA-256. The JSON is replaced after the
index file is complete, so a crash leaves the old pair or the new one (and
perhaps an orphan ``.faiss`` the next writer removes).

A checkpoint is *used* only when every check passes: the JSON parses, the
collection uid, dimension, metric and spec match, its sequence lies between
the collection's purge horizon and its current sequence, the file's SHA-256
matches and it reads as an index holding the stated count. Anything else
(missing, stale, ahead, torn or corrupted) returns None and the caller
rebuilds from SQLite: a bad checkpoint is never served.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from typing import Any

from ..io.atomic import atomic_write

log = logging.getLogger("voisin.db")


def _meta_path(folder: str, uid: str) -> str:
    return os.path.join(folder, f"{uid}.json")


def save(folder: str, uid: str, seq: int, kind: str, config: dict, index: Any) -> None:
    """Write ``index`` as the checkpoint of collection ``uid`` at sequence ``seq``."""
    meta, data = serialize(uid, seq, kind, config, index)
    save_bytes(folder, uid, meta, data)
    remove_orphans(folder, uid, keep=meta["file"])


def save_bytes(folder: str, uid: str, meta: dict, data: bytes) -> None:
    """Install a checkpoint taken elsewhere (a snapshot being restored)."""
    os.makedirs(folder, exist_ok=True)
    atomic_write(os.path.join(folder, meta["file"]), lambda f: f.write(data))
    atomic_write(_meta_path(folder, uid), lambda f: f.write(json.dumps(meta).encode()))


def serialize(uid: str, seq: int, kind: str, config: dict, index: Any) -> tuple[dict, bytes]:
    """(meta, bytes) of a checkpoint, kept in memory (for snapshots)."""
    from ..io import serialize_index
    data = serialize_index(index).tobytes()
    meta = {"uid": uid, "seq": seq, "kind": kind, "file": f"{uid}-{seq}.faiss",
            "ntotal": int(index.ntotal), "sha256": hashlib.sha256(data).hexdigest(),
            "dim": config["dim"], "metric": config["metric"], "index": config["index"]}
    return meta, data


def read_raw(folder: str, uid: str) -> tuple[dict, bytes] | None:
    """The current checkpoint's (meta, bytes) as stored, unchecked, or None."""
    try:
        with open(_meta_path(folder, uid), "rb") as f:
            meta = json.loads(f.read())
        with open(os.path.join(folder, os.path.basename(meta["file"])), "rb") as f:
            return meta, f.read()
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load(folder: str, uid: str, config: dict, seq: int, purged: int) -> tuple[Any, int, str] | None:
    """(index, sequence covered, kind) of a usable checkpoint, or None (module docstring)."""
    from ..io import read_index
    raw = read_raw(folder, uid)
    if raw is None:
        return None
    meta, data = raw
    why = None
    try:
        if meta.get("uid") != uid or meta.get("dim") != config["dim"] \
                or meta.get("metric") != config["metric"] or meta.get("index") != config["index"]:
            why = "it belongs to another collection configuration"
        elif not isinstance(meta.get("seq"), int) or not purged <= meta["seq"] <= seq:
            why = f"it covers sequence {meta.get('seq')}, outside [{purged}, {seq}]"
        elif hashlib.sha256(data).hexdigest() != meta.get("sha256"):
            why = "its SHA-256 does not match (damaged or torn file)"
        else:
            index = read_index(io.BytesIO(data))
            if index.ntotal != meta.get("ntotal") or index.d != config["dim"]:
                why = "its contents do not match its description"
            else:
                return index, meta["seq"], meta.get("kind", "target")
    except Exception as exc:  # a file that does not parse is simply not used
        why = f"it does not read as an index ({exc})"
    log.warning("collection %s: index checkpoint not used, rebuilding from the records: %s", uid, why)
    return None


def remove_orphans(folder: str, uid: str, keep: str | None) -> None:
    """Delete this collection's checkpoint files other than ``keep``."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        ours = name.startswith(f"{uid}-") and name.endswith(".faiss")
        tmp = name.startswith(f".{uid}-") and name.endswith(".tmp")
        if (ours and name != keep) or tmp:
            try:
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass


def remove_all(folder: str, uid: str) -> None:
    remove_orphans(folder, uid, keep=None)
    try:
        os.unlink(_meta_path(folder, uid))
    except OSError:
        pass
