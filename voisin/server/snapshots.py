"""The snapshot endpoints of ``voisin serve`` (Qdrant's): take, list, download,
delete and recover collection and full snapshots, in the server's snapshots
folder. A recover request may name a file under that folder or this server's own
download URL of one; nothing is ever fetched from another address.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import time
import urllib.parse
from typing import Any, Callable, NamedTuple

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response

from ..db.errors import CollectionNotFoundError, NotADatabaseError
from . import qdrant
from .errors import ApiError, status_of, unsupported

_SNAPSHOT_NAME = re.compile(r"[A-Za-z0-9._-]+\.snapshot")


class Routes(NamedTuple):
    """What the snapshot routes use of the app: its answer helpers and its database."""

    respond: Callable[..., Any]
    with_body: Callable[..., Any]
    error: Callable[[int, str, float], Response]
    db: Callable[[], Any]
    col: Callable[[str], Any]


def add_snapshot_routes(app: FastAPI, config: Any, routes: Routes) -> None:
    def snapshot_dir(collection: str | None) -> str:
        d = os.path.join(config.snapshots, collection or "_full")
        os.makedirs(d, exist_ok=True)
        return d

    def describe(file: str) -> dict:
        st = os.stat(file)
        with open(file, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        return {"name": os.path.basename(file), "size": st.st_size, "checksum": digest,
                "creation_time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(st.st_mtime))}

    def listing(collection: str | None) -> list:
        d = snapshot_dir(collection)
        return [describe(os.path.join(d, n)) for n in sorted(os.listdir(d)) if _SNAPSHOT_NAME.fullmatch(n)]

    def snapshot_file(collection: str | None, name: str) -> str:
        if not _SNAPSHOT_NAME.fullmatch(name):
            raise ApiError(400, f"snapshot_name: expected a name like x.snapshot, got {name!r}")
        file = os.path.join(snapshot_dir(collection), name)
        if not os.path.isfile(file):
            raise ApiError(404, f"Not found: snapshot {name!r}"
                           + (f" of collection {collection!r}" if collection else ""))
        return file

    def take_snapshot(collection: str | None) -> dict:
        d = routes.db()
        if collection is not None and config.ray_shards:
            raise unsupported("collection snapshots of a sharded (--ray) server; take a full snapshot")
        if collection is not None and not d.has_collection(collection):
            raise CollectionNotFoundError(f"Collection `{collection}` doesn't exist!")
        stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime())
        base = f"{collection or 'full'}-{stamp}-{time.time_ns() % 10**9:09d}.snapshot"
        file = os.path.join(snapshot_dir(collection), base)
        if collection is None:
            d.snapshot(file)
        else:
            d.snapshot(file, collections=[collection])
        return describe(file)

    @app.post("/collections/{collection_name}/snapshots")
    async def create_snapshot(collection_name: str) -> Response:
        return await routes.respond(lambda: take_snapshot(collection_name), time.perf_counter())

    @app.get("/collections/{collection_name}/snapshots")
    async def list_snapshots(collection_name: str) -> Response:
        def work() -> list:
            routes.col(collection_name)
            return listing(collection_name)
        return await routes.respond(work, time.perf_counter())

    @app.get("/collections/{collection_name}/snapshots/{snapshot_name}")
    async def get_snapshot(collection_name: str, snapshot_name: str) -> Response:
        return await routes.respond(lambda: FileResponse(snapshot_file(collection_name, snapshot_name),
                                                  media_type="application/octet-stream"),
                             time.perf_counter(), raw=True)

    @app.delete("/collections/{collection_name}/snapshots/{snapshot_name}")
    async def delete_snapshot(collection_name: str, snapshot_name: str) -> Response:
        def work() -> bool:
            os.remove(snapshot_file(collection_name, snapshot_name))
            return True
        return await routes.respond(work, time.perf_counter())

    def local_snapshot(location: Any, collection: str) -> str:
        """The file a recover request names: a file:// path under the snapshots
        folder, or this server's own download URL of one. Nothing is fetched
        from another address."""
        if not isinstance(location, str) or not location:
            raise ApiError(400, "body.location: expected the snapshot's URL (file:///... or "
                                "http://this-server/collections/{name}/snapshots/{file})")
        url = urllib.parse.urlparse(location)
        if url.scheme == "file":
            file = os.path.realpath(urllib.parse.unquote(url.path))
            root = os.path.realpath(config.snapshots)
            if not file.startswith(root + os.sep):
                raise ApiError(403, f"body.location: {location!r} is outside the server's snapshots "
                               f"folder {root!r}")
            if not os.path.isfile(file):
                raise ApiError(404, f"Not found: body.location: no file {file!r}")
            return file
        m = re.fullmatch(r"/collections/([^/]+)/snapshots/([^/]+)", url.path or "")
        if url.scheme in ("http", "https") and m:
            return snapshot_file(urllib.parse.unquote(m.group(1)), urllib.parse.unquote(m.group(2)))
        raise unsupported(f"body.location {location!r} (voisin serve recovers only its own snapshots; "
                          "it never downloads from another address)")

    @app.put("/collections/{collection_name}/snapshots/recover")
    async def recover_snapshot(collection_name: str, request: Request) -> Response:
        def work(body: Any) -> bool:
            body = qdrant.obj(body, "body")
            file = local_snapshot(body.get("location"), collection_name)
            checksum = body.get("checksum")
            if checksum is not None and describe(file)["checksum"] != checksum:
                raise ApiError(400, "body.checksum: the snapshot's SHA-256 does not match")
            if config.ray_shards:
                raise unsupported("snapshot recovery on a sharded (--ray) server; use "
                                  "voisin.distributed.restore_sharded on a stopped server")
            routes.db().recover_collection(file, collection_name)
            return True
        return await routes.with_body(request, work)

    @app.post("/collections/{collection_name}/snapshots/upload")
    async def upload_snapshot(collection_name: str, request: Request, checksum: str | None = None,
                              priority: str | None = None) -> Response:
        """Qdrant's recover-from-upload: a multipart form whose ``snapshot`` field is a
        snapshot file (as ``GET .../snapshots/{name}`` returns one), within the body limit."""
        t0 = time.perf_counter()
        if priority not in (None, "snapshot", "no_sync", "replica"):
            return routes.error(400, f"priority: expected snapshot, no_sync or replica, got {priority!r}", t0)
        if config.ray_shards:
            return routes.error(*status_of(unsupported(
                "snapshot recovery on a sharded (--ray) server; use voisin.distributed.restore_sharded "
                "on a stopped server")), t0)
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return routes.error(400, "body: expected multipart/form-data with the file in field 'snapshot'", t0)
        root = snapshot_dir(None)
        fd, file = tempfile.mkstemp(dir=root, prefix=".upload-", suffix=".snapshot")
        try:
            try:
                form = await request.form(max_files=1, max_fields=8)
            except Exception as exc:  # a malformed multipart body
                return routes.error(400, f"body: not a valid multipart form ({exc})", t0)
            up = form.get("snapshot")
            if not hasattr(up, "read"):
                return routes.error(400, "body.snapshot: expected a file field named 'snapshot'", t0)
            with os.fdopen(fd, "wb") as out:
                fd = -1
                while chunk := await up.read(1 << 20):
                    out.write(chunk)
            await form.close()

            def work() -> bool:
                if checksum is not None and describe(file)["checksum"] != checksum:
                    raise ApiError(400, "checksum: the uploaded snapshot's SHA-256 does not match")
                try:
                    routes.db().recover_collection(file, collection_name)
                except NotADatabaseError:  # its message names the server's temporary file
                    raise ApiError(400, "body.snapshot: not a readable voisin snapshot") from None
                return True
            return await routes.respond(work, t0)
        finally:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.remove(file)

    @app.post("/snapshots")
    async def create_full_snapshot() -> Response:
        return await routes.respond(lambda: take_snapshot(None), time.perf_counter())

    @app.get("/snapshots")
    async def list_full_snapshots() -> Response:
        return await routes.respond(lambda: listing(None), time.perf_counter())

    @app.get("/snapshots/{snapshot_name}")
    async def get_full_snapshot(snapshot_name: str) -> Response:
        return await routes.respond(lambda: FileResponse(snapshot_file(None, snapshot_name),
                                                  media_type="application/octet-stream"),
                             time.perf_counter(), raw=True)

    @app.delete("/snapshots/{snapshot_name}")
    async def delete_full_snapshot(snapshot_name: str) -> Response:
        def work() -> bool:
            os.remove(snapshot_file(None, snapshot_name))
            return True
        return await routes.respond(work, time.perf_counter())
