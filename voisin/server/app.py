"""The HTTP server: Qdrant's REST API over a voisin database folder (FastAPI).

One process owns the folder (the database's write lock). Each request's body
is read asynchronously (a slow client holds only its own connection), then
its work runs on a bounded thread pool (``workers``): searches in parallel
with each other, writes serialised per collection by the collection layer,
which applies a batch to the in-memory index under its gate only after the
batch has committed, so a search waits at most for one batch.

Every answer has Qdrant's envelope: ``{"result": ..., "status": "ok",
"time": seconds}``, or ``{"status": {"error": message}, "time": ...}`` with a
4xx status (5xx only for a bug, whose traceback goes to the log, never to the
client). See docs/server.md.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from starlette.exceptions import HTTPException

from .. import _version
from ..db import Database, connect
from . import qdrant
from .auth import Keys
from .errors import ApiError, status_of, unsupported
from .metrics import Metrics
from .snapshots import Routes, add_snapshot_routes

log = logging.getLogger("voisin.server")

_PROBES = {"/healthz", "/livez", "/readyz"}


@dataclass
class ServerConfig:
    """What ``voisin serve`` was asked for."""

    path: str
    api_key: str | None = None
    read_only_key: str | None = None
    max_body_bytes: int = 64 << 20
    limits: qdrant.Limits = field(default_factory=qdrant.Limits)
    workers: int = 8
    snapshots_path: str | None = None
    durability: str = "full"
    #: serve collections embedded by voisin.embed.TextEncoder (documents in, text queries)
    text: bool = False
    #: hash-shard every collection over this many Ray actors (voisin.distributed); 0: one process
    ray_shards: int = 0
    #: the Ray cluster to join (None: a local cluster on loopback)
    ray_address: str | None = None

    def open(self) -> Any:
        """The database this configuration serves."""
        if self.ray_shards:
            from ..distributed import cluster
            from ..distributed.collection import connect_sharded
            cluster.init(self.ray_address)
            return connect_sharded(self.path, self.ray_shards, durability=self.durability)
        return connect(self.path, durability=self.durability)

    @property
    def snapshots(self) -> str:
        return self.snapshots_path or os.path.join(self.path, "snapshots")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (use a finite number)")


def _dumps(result: Any, t0: float) -> bytes:
    return json.dumps({"result": result, "status": "ok", "time": time.perf_counter() - t0},
                      ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _error_body(message: str, t0: float) -> bytes:
    return json.dumps({"status": {"error": message}, "time": time.perf_counter() - t0},
                      ensure_ascii=False).encode()


class _Gate:
    """Keys, the body-size limit and the metrics, before any routing: a plain
    ASGI middleware (Starlette's BaseHTTPMiddleware costs a task and a stream
    per request, a third of a small query's time)."""

    def __init__(self, app: Any, keys: Keys, metrics: Metrics, max_body: int):
        self.app, self.keys, self.metrics, self.max_body = app, keys, metrics, max_body

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        method, path = scope["method"], scope["path"]
        headers = {}
        for k, v in scope["headers"]:
            if k in (b"api-key", b"authorization", b"content-length"):
                headers[k.decode()] = v.decode("latin-1")
        status, message = 0, ""
        if path not in _PROBES:
            status, message = self.keys.check(headers, method, path)
        length = headers.get("content-length")
        if not status and length is not None and (not length.isdigit() or int(length) > self.max_body):
            status, message = 413, f"body: larger than the server's limit of {self.max_body} bytes"
        if status:
            if status == 413:
                # read (and drop) what the client is sending, within bounds, so that it
                # gets the 413 rather than a connection reset in the middle of its upload
                left = 4 * self.max_body
                while left > 0:
                    msg = await receive()
                    left -= len(msg.get("body", b""))
                    if msg["type"] != "http.request" or not msg.get("more_body"):
                        break
            await _send_error(send, status, message, t0)
            self.metrics.observe(method, "(refused)", status, time.perf_counter() - t0)
            return
        sent = [500]

        async def tap(msg: dict) -> None:
            if msg["type"] == "http.response.start":
                sent[0] = msg["status"]
            await send(msg)
        try:
            await self.app(scope, receive, tap)
        finally:
            route = scope.get("route")
            self.metrics.observe(method, getattr(route, "path", "(no route)"), sent[0],
                                 time.perf_counter() - t0)


async def _send_error(send: Any, status: int, message: str, t0: float) -> None:
    body = _error_body(message, t0)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_app(config: ServerConfig, db: Database | None = None) -> FastAPI:
    """The ASGI application (FastAPI) serving ``config.path`` (or ``db``)."""
    keys = Keys(config.api_key, config.read_only_key)
    metrics = Metrics()
    limits = config.limits
    state: dict[str, Any] = {"db": db}

    @contextlib.asynccontextmanager
    async def lifespan(app: Any):
        anyio.to_thread.current_default_thread_limiter().total_tokens = config.workers
        own = state["db"] is None
        if own and config.ray_shards:
            # Ray's core worker installs its own SIGTERM handler, which kills the
            # process at once (no checkpoint, a Ray cluster left running): open on
            # this (the main) thread and give uvicorn's handlers back afterwards
            saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
            state["db"] = config.open()
            for sig, handler in saved.items():
                if handler is not None:
                    signal.signal(sig, handler)
        elif own:
            state["db"] = await anyio.to_thread.run_sync(config.open)
        log.info("voisin serve: %s, %d collections", config.path, len(state["db"].list_collections()))
        try:
            yield
        finally:
            if own:
                await anyio.to_thread.run_sync(state["db"].close)
                if config.ray_shards and config.ray_address is None:
                    from ..distributed import cluster
                    cluster.shutdown()

    app = FastAPI(title="voisin", version=_version.__version__, lifespan=lifespan,
                  description="Qdrant's REST API (a subset) over voisin collections. See docs/server.md.")

    def _db() -> Database:
        d = state["db"]
        if d is None:
            raise ApiError(503, "Service unavailable: the database is not open yet")
        return d

    encoders: dict[str, Any] = {}
    encoder_lock = threading.Lock()

    def encoder(name: str) -> Any:
        """The server's text encoder if it is ``name`` (loaded once, on first use)."""
        from ..embed.weights import MINILM_NAME
        if not config.text or not qdrant._model_matches(name, MINILM_NAME):
            raise ApiError(400, f"embedder {name!r}: this server embeds no text with it (start "
                           f"voisin serve --text for {MINILM_NAME!r})")
        with encoder_lock:
            if "minilm" not in encoders:
                from ..embed import TextEncoder
                encoders["minilm"] = TextEncoder()
            return encoders["minilm"]

    def _col(name: str) -> Any:
        col = _db().get_collection(name)
        wanted = col.config.get("embedder")
        if col.embedder is None and wanted is not None and config.text:
            try:
                col = _db().get_collection(name, embedder=encoder(wanted))
            except ApiError:
                pass  # embedded by another encoder: vectors still work, documents say why not
        return col

    def create(name: str, body: Any) -> bool:
        args = qdrant.create_collection_args(body, limits)
        wanted = args.pop("embedder")
        _db().create_collection(name, **args, embedder=None if wanted is None else encoder(wanted))
        return True

    def _error(status: int, message: str, t0: float) -> Response:
        return Response(_error_body(message, t0), status_code=status, media_type="application/json")

    async def body_of(request: Request) -> Any:
        size = 0
        chunks = []
        async for chunk in request.stream():
            size += len(chunk)
            if size > config.max_body_bytes:
                raise ApiError(413, f"body: larger than the server's limit of {config.max_body_bytes} bytes")
            chunks.append(chunk)
        raw = b"".join(chunks)
        if not raw.strip():
            return None
        try:
            return json.loads(raw, parse_constant=_reject_constant)
        except RecursionError:
            raise ApiError(400, "body: nests too deeply") from None
        except ValueError as exc:
            raise ApiError(400, f"body: not valid JSON ({exc})") from None

    async def respond(work: Callable[[], Any], t0: float, raw: bool = False) -> Response:
        try:
            result = await anyio.to_thread.run_sync(work)
            if raw:
                return result
            return Response(_dumps(result, t0), media_type="application/json")
        except Exception as exc:  # every error leaves as Qdrant's JSON, never as a traceback
            known = status_of(exc)
            if known is None:
                log.exception("voisin serve: internal error")
                return _error(500, "Internal error: logged by the server", t0)
            return _error(known[0], known[1], t0)

    async def with_body(request: Request, work: Callable[[Any], Any]) -> Response:
        t0 = time.perf_counter()
        try:
            body = await body_of(request)
        except ApiError as exc:
            return _error(exc.status, exc.message, t0)
        return await respond(lambda: work(body), t0)

    app.add_middleware(_Gate, keys=keys, metrics=metrics, max_body=config.max_body_bytes)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        t0 = time.perf_counter()
        if exc.status_code == 404:
            return _error(404, f"Not found: {request.method} {request.url.path} is not an endpoint "
                          "of voisin serve", t0)
        if exc.status_code == 405:
            return _error(405, f"Method not allowed: {request.method} {request.url.path}", t0)
        return _error(exc.status_code, str(exc.detail), t0)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return _error(400, f"Wrong input: {where}: {first.get('msg', 'invalid')}", time.perf_counter())

    # --- service ---------------------------------------------------------------------------
    @app.get("/")
    async def root() -> Response:
        # qdrant-client reads title and version from the top level, not from "result"
        return Response(json.dumps({"title": "voisin - vector similarity search (Qdrant REST API)",
                                    "version": qdrant.QDRANT_API_VERSION,
                                    "voisin_version": _version.__version__, "commit": None}),
                        media_type="application/json")

    @app.get("/healthz")
    @app.get("/livez")
    async def healthz() -> Response:
        return PlainTextResponse("healthz check passed")

    @app.get("/readyz")
    async def readyz() -> Response:
        if state["db"] is None:
            return PlainTextResponse("not ready", status_code=503)
        return PlainTextResponse("all shards are ready")

    @app.get("/metrics")
    async def prometheus() -> Response:
        def scrape() -> Response:
            d = _db()
            cols = []
            for name in d.list_collections():
                info = d.get_collection(name).info()
                cols.append((name, info["points"], info["indexed_points"]))
            return PlainTextResponse(metrics.render(cols), media_type="text/plain; version=0.0.4")
        return await respond(scrape, time.perf_counter(), raw=True)

    # --- collections -------------------------------------------------------------------------
    @app.get("/collections")
    async def list_collections() -> Response:
        return await respond(lambda: {"collections": [{"name": n} for n in _db().list_collections()]},
                             time.perf_counter())

    @app.get("/collections/{collection_name}")
    async def get_collection(collection_name: str) -> Response:
        return await respond(lambda: qdrant.collection_info(_col(collection_name)), time.perf_counter())

    @app.get("/collections/{collection_name}/exists")
    async def collection_exists(collection_name: str) -> Response:
        return await respond(lambda: {"exists": _db().has_collection(collection_name)},
                             time.perf_counter())

    @app.put("/collections/{collection_name}")
    async def create_collection(collection_name: str, request: Request) -> Response:
        return await with_body(request, lambda body: create(collection_name, body))

    @app.patch("/collections/{collection_name}")
    async def update_collection(collection_name: str, request: Request) -> Response:
        def work(body: Any) -> bool:
            _col(collection_name)
            raise unsupported("PATCH /collections/{collection_name} (updating a collection's parameters)")
        return await with_body(request, work)

    @app.delete("/collections/{collection_name}")
    async def delete_collection(collection_name: str) -> Response:
        def work() -> bool:
            d = _db()
            if not d.has_collection(collection_name):
                return False
            d.delete_collection(collection_name)
            return True
        return await respond(work, time.perf_counter())

    @app.put("/collections/{collection_name}/index")
    async def create_field_index(collection_name: str, request: Request) -> Response:
        def work(body: Any) -> dict:
            col = _col(collection_name)
            col.create_payload_index(*qdrant.payload_index_args(body))
            return qdrant.update_result(col.seq)
        return await with_body(request, work)

    @app.delete("/collections/{collection_name}/index/{field_name:path}")
    async def delete_field_index(collection_name: str, field_name: str) -> Response:
        def work() -> dict:
            col = _col(collection_name)
            col.delete_payload_index(field_name)
            return qdrant.update_result(col.seq)
        return await respond(work, time.perf_counter())

    # --- points ----------------------------------------------------------------------------------
    def points_route(method: str, suffix: str, fn: Callable[[Any, Any], Any]) -> None:
        async def handler(collection_name: str, request: Request) -> Response:
            return await with_body(request, lambda body: fn(_col(collection_name), body))
        handler.__name__ = f"{method.lower()}_points{suffix.replace('/', '_')}"
        app.add_api_route(f"/collections/{{collection_name}}/points{suffix}", handler, methods=[method])

    points_route("PUT", "", lambda col, b: qdrant.update_result(qdrant.upsert(col, b, limits)))
    points_route("POST", "", lambda col, b: qdrant.retrieve(col, b, limits))
    points_route("POST", "/delete", lambda col, b: qdrant.update_result(qdrant.delete(col, b, limits)))
    for method, suffix, op in (("POST", "/payload", "set"), ("PUT", "/payload", "overwrite"),
                               ("POST", "/payload/delete", "delete"), ("POST", "/payload/clear", "clear")):
        points_route(method, suffix, lambda col, b, op=op: qdrant.update_result(
            qdrant.payload_write(col, b, limits, op)))
    points_route("POST", "/count", lambda col, b: qdrant.count(col, b, limits))
    points_route("POST", "/scroll", lambda col, b: qdrant.scroll(col, b, limits))
    points_route("POST", "/query", lambda col, b: {"points": qdrant.query(col, b, limits)})
    points_route("POST", "/query/batch", lambda col, b: qdrant.batch(col, b, limits))
    points_route("POST", "/search", lambda col, b: qdrant.query(col, b, limits, legacy=True))
    points_route("POST", "/search/batch", lambda col, b: qdrant.batch(col, b, limits, legacy=True))

    @app.get("/collections/{collection_name}/points/{point_id}")
    async def get_point(collection_name: str, point_id: str) -> Response:
        return await respond(lambda: qdrant.point(_col(collection_name), point_id), time.perf_counter())

    add_snapshot_routes(app, config, Routes(respond, with_body, _error, _db, _col))

    return app
