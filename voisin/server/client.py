"""A Python client for ``voisin serve`` with the embedded database's methods,
so the same code runs on a folder or on a server:
``voisin.connect("data/")`` or ``voisin.connect("http://127.0.0.1:6333")``.

It speaks the same Qdrant REST subset as qdrant-client, over the standard
library's ``http.client`` (one kept-alive connection per thread; no extra
dependency), and returns the embedded layer's types (``Hits``, ``Record``,
``ScoredPoint``). Errors come back as the embedded layer raises them:
``ValueError`` for bad input (with the server's message naming the field),
``CollectionNotFoundError``, ``PointNotFoundError``, ``CollectionExistsError``,
``PermissionError`` for a missing or read-only key.

Example:
    >>> db = connect_remote("http://127.0.0.1:6333")          # doctest: +SKIP
    >>> col = db.get_or_create_collection("docs", dim=3)      # doctest: +SKIP
    >>> col.upsert([1], [[1, 0, 0]], payloads=[{"lang": "fr"}])  # doctest: +SKIP
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
from typing import Any, Callable, Sequence

import numpy as np

from ..db.errors import CollectionExistsError, CollectionNotFoundError, PointNotFoundError
from ..db.ids import normalize_ids
from ..db.results import Hits, QueryHits, Record, ScoredPoint

_METRIC_OF = {"Cosine": "cosine", "Dot": "dot", "Euclid": "euclid"}
_DISTANCE_OF = {"cosine": "Cosine", "dot": "Dot", "ip": "Dot", "euclid": "Euclid", "l2": "Euclid",
                "euclidean": "Euclid", "inner_product": "Dot"}


class ServerError(RuntimeError):
    """The server failed to answer (a 5xx, or a connection that broke)."""


def _raise(status: int, message: str) -> None:
    if status in (401, 403):
        raise PermissionError(message)
    if status == 404:
        if "point" in message.lower() and "collection" in message.lower() and "no point" in message.lower():
            raise PointNotFoundError(message)
        raise CollectionNotFoundError(message)
    if status == 409:
        raise CollectionExistsError(message)
    if 400 <= status < 500:
        raise ValueError(message)
    raise ServerError(f"HTTP {status}: {message}")


class _Http:
    """JSON requests to one server, one persistent connection per thread."""

    def __init__(self, url: str, api_key: str | None, timeout: float):
        u = urllib.parse.urlparse(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"url: expected http://host:port or https://host:port, got {url!r}")
        self.scheme, self.host = u.scheme, u.hostname
        self.port = u.port or (443 if u.scheme == "https" else 80)
        self.prefix = u.path.rstrip("/")
        self.headers = {"content-type": "application/json", "accept": "application/json"}
        if api_key is not None:
            self.headers["api-key"] = api_key
        self.timeout = timeout
        self._local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            conn = self._local.conn = cls(self.host, self.port, timeout=self.timeout)
        return conn

    def raw(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        for attempt in (0, 1):
            conn = self._conn()
            try:
                conn.request(method, self.prefix + path, body=data, headers=self.headers)
                resp = conn.getresponse()
                return resp.status, resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # a kept-alive connection the server closed: reconnect once, but
                # never resend a write that may have reached the server
                conn.close()
                self._local.conn = None
                if attempt or method not in ("GET", "HEAD"):
                    raise ServerError(f"{method} {path}: the connection to {self.host}:{self.port} broke") from None
            except OSError as exc:
                conn.close()
                self._local.conn = None
                raise ServerError(f"{method} {path}: cannot reach {self.host}:{self.port} ({exc})") from None
        raise AssertionError("unreachable")

    def call(self, method: str, path: str, body: Any = None) -> Any:
        status, raw = self.raw(method, path, body)
        try:
            doc = json.loads(raw) if raw else {}
        except ValueError:
            doc = {"status": {"error": raw[:200].decode(errors="replace")}}
        if status != 200:
            err = doc.get("status") if isinstance(doc, dict) else None
            message = err.get("error") if isinstance(err, dict) else str(doc)[:500]
            _raise(status, message)
        return doc.get("result") if isinstance(doc, dict) else doc

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _q(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _ids_json(ids: Any) -> list:
    # the embedded layer's normal form: ints and canonical UUID strings, as JSON takes them
    return normalize_ids(ids, "ids")


def _vector(v: Any) -> np.ndarray | None:
    if v is None:
        return None
    if isinstance(v, dict):
        v = v.get("")
    return np.asarray(v, dtype=np.float32)


def _embed(embedder: Any, texts: list[str]) -> np.ndarray:
    encode = getattr(embedder, "encode", None)
    return np.asarray(encode(texts) if callable(encode) else embedder(texts), dtype=np.float32)


def _record(p: dict) -> Record:
    return Record(p["id"], p.get("payload"), _vector(p.get("vector")), p.get("document"))


def _scored(p: dict) -> ScoredPoint:
    return ScoredPoint(p["id"], p["score"], p.get("payload"), _vector(p.get("vector")), p.get("document"))


class RemoteDatabase:
    """The collections of a ``voisin serve`` (or a Qdrant server); the methods of
    :class:`voisin.db.Database`. Use :func:`voisin.connect` with a URL.

    Example:
        >>> db = voisin.connect("http://127.0.0.1:6333", api_key="...")  # doctest: +SKIP
        >>> db.list_collections()                                        # doctest: +SKIP
        ['docs']
    """

    def __init__(self, url: str, *, api_key: str | None = None, timeout: float = 60.0):
        self.url = url
        self._http = _Http(url, api_key, timeout)
        self.read_only = False

    def create_collection(self, name: str, dim: int, metric: str = "cosine", index: str = "auto", *,
                          hnsw: dict | None = None, embedder: Callable | None = None) -> "RemoteCollection":
        distance = _DISTANCE_OF.get(metric.lower()) if isinstance(metric, str) else None
        if distance is None:
            raise ValueError(f"metric: expected one of 'cosine', 'dot', 'euclid' (or 'ip', 'l2'), got {metric!r}")
        body: dict[str, Any] = {"vectors": {"size": dim, "distance": distance}}
        if isinstance(embedder, str):
            # the name of an encoder the server runs (voisin serve --text): the server embeds
            body["voisin_embedder"] = embedder
            embedder = None
        if index != "auto":
            body["voisin_index"] = index
        if hnsw:
            body["hnsw_config"] = {k2: hnsw[k1] for k1, k2 in (("M", "m"), ("efConstruction", "ef_construct"))
                                   if k1 in hnsw}
        self._http.call("PUT", f"/collections/{_q(name)}", body)
        return RemoteCollection(self, name, dim, _METRIC_OF[distance], embedder)

    def get_collection(self, name: str, *, embedder: Callable | None = None) -> "RemoteCollection":
        info = self._http.call("GET", f"/collections/{_q(name)}")
        vectors = info["config"]["params"]["vectors"]
        return RemoteCollection(self, name, vectors["size"], _METRIC_OF[vectors["distance"]], embedder)

    def get_or_create_collection(self, name: str, dim: int, metric: str = "cosine", index: str = "auto",
                                 **kwargs: Any) -> "RemoteCollection":
        if self.has_collection(name):
            return self.get_collection(name, embedder=kwargs.get("embedder"))
        return self.create_collection(name, dim, metric, index, **kwargs)

    def has_collection(self, name: str) -> bool:
        return bool(self._http.call("GET", f"/collections/{_q(name)}/exists")["exists"])

    def list_collections(self) -> list[str]:
        return [c["name"] for c in self._http.call("GET", "/collections")["collections"]]

    def delete_collection(self, name: str) -> None:
        if not self._http.call("DELETE", f"/collections/{_q(name)}"):
            raise CollectionNotFoundError(f"name: no collection {name!r} on {self.url}")

    def snapshot(self, file: str) -> str:
        """A snapshot of the whole database taken by the server, downloaded to ``file``."""
        desc = self._http.call("POST", "/snapshots")
        status, data = self._http.raw("GET", f"/snapshots/{_q(desc['name'])}")
        if status != 200:
            _raise(status, data[:500].decode(errors="replace"))
        with open(file, "wb") as f:
            f.write(data)
        return file

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "RemoteDatabase":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RemoteDatabase({self.url!r})"


class RemoteCollection:
    """A collection on a server; the methods of :class:`voisin.db.Collection`.

    ``upsert`` sends ``batch_size`` points per request: each request is stored
    whole or not at all (the embedded upsert is one transaction for any size).
    """

    batch_size = 1000

    def __init__(self, db: RemoteDatabase, name: str, dim: int, metric: str,
                 embedder: Callable | None = None):
        self._db = db
        self._http = db._http
        self.name = name
        self.dim = dim
        self.metric = metric
        self.embedder = embedder
        self._path = f"/collections/{_q(name)}"

    # --- writes ---------------------------------------------------------------------
    def upsert(self, ids: Any, vectors: Any = None, payloads: Any = None, *,
               documents: Sequence[str] | None = None) -> int:
        pids = _ids_json(ids)
        n = len(pids)
        if vectors is None:
            if documents is None:
                raise TypeError("vectors: expected an array of shape (n, dim), or documents=... "
                                "for a collection with an embedder")
            if self.embedder is not None:
                vectors = _embed(self.embedder, list(documents))
        X = None if vectors is None else np.asarray(vectors, dtype=np.float32)
        if X is not None and (X.ndim != 2 or X.shape != (n, self.dim)):
            raise ValueError(f"vectors: expected shape ({n}, {self.dim}), got {X.shape}")
        if payloads is not None and (not isinstance(payloads, (list, tuple)) or len(payloads) != n):
            raise ValueError(f"payloads: expected a list of {n} JSON objects (one per id)")
        if documents is not None and len(documents) != n:
            raise ValueError(f"documents: expected {n} texts (one per id), got {len(documents)}")
        seq = None
        for s in range(0, max(n, 1), self.batch_size):
            e = min(n, s + self.batch_size)
            batch: dict[str, Any] = {"ids": pids[s:e]}
            if X is not None:  # else the server embeds the documents
                batch["vectors"] = X[s:e].tolist()
            if payloads is not None:
                batch["payloads"] = list(payloads[s:e])
            if documents is not None:
                batch["documents"] = list(documents[s:e])
            seq = self._http.call("PUT", f"{self._path}/points?wait=true", {"batch": batch})["operation_id"]
        return seq

    def _selector(self, ids: Any, filter: Any) -> dict:
        if (ids is None) == (filter is None):
            raise TypeError(f"expected either ids or filter, got {'both' if ids is not None else 'neither'}")
        return {"points": _ids_json(ids)} if ids is not None else {"filter": filter}

    def delete(self, ids: Any = None, *, filter: Any = None) -> int:
        return self._http.call("POST", f"{self._path}/points/delete?wait=true",
                               self._selector(ids, filter))["operation_id"]

    def set_payload(self, ids: Any, payload: dict, *, filter: Any = None) -> int:
        return self._http.call("POST", f"{self._path}/points/payload?wait=true",
                               {"payload": payload, **self._selector(ids, filter)})["operation_id"]

    def overwrite_payload(self, ids: Any, payload: dict, *, filter: Any = None) -> int:
        return self._http.call("PUT", f"{self._path}/points/payload?wait=true",
                               {"payload": payload, **self._selector(ids, filter)})["operation_id"]

    def delete_payload(self, ids: Any, keys: Any, *, filter: Any = None) -> int:
        keys = [keys] if isinstance(keys, str) else list(keys)
        return self._http.call("POST", f"{self._path}/points/payload/delete?wait=true",
                               {"keys": keys, **self._selector(ids, filter)})["operation_id"]

    def clear_payload(self, ids: Any, *, filter: Any = None) -> int:
        return self._http.call("POST", f"{self._path}/points/payload/clear?wait=true",
                               self._selector(ids, filter))["operation_id"]

    def create_payload_index(self, key: str, schema: str = "keyword") -> None:
        self._http.call("PUT", f"{self._path}/index?wait=true", {"field_name": key, "field_schema": schema})

    def delete_payload_index(self, key: str) -> None:
        self._http.call("DELETE", f"{self._path}/index/{_q(key)}?wait=true")

    # --- reads -----------------------------------------------------------------------
    def count(self, filter: Any = None) -> int:
        return int(self._http.call("POST", f"{self._path}/points/count",
                                   {"filter": filter, "exact": True})["count"])

    def __len__(self) -> int:
        return self.count()

    def get(self, ids: Any, *, with_payload: bool = True, with_vectors: bool = False,
            with_documents: bool | None = None) -> list[Record]:
        found = self._http.call("POST", f"{self._path}/points",
                                {"ids": _ids_json(ids), "with_payload": with_payload,
                                 "with_vector": with_vectors})
        return [_record(p) for p in found]

    def scroll(self, filter: Any = None, limit: int = 10, offset: Any = None, *,
               with_payload: bool = True, with_vectors: bool = False,
               with_documents: bool | None = None) -> tuple[list[Record], Any]:
        body = {"filter": filter, "limit": limit, "offset": offset, "with_payload": with_payload,
                "with_vector": with_vectors}
        r = self._http.call("POST", f"{self._path}/points/scroll", body)
        return [_record(p) for p in r["points"]], r.get("next_page_offset")

    def search(self, query: Any = None, k: int = 10, *, filter: Any = None, offset: int = 0,
               score_threshold: float | None = None, with_payload: bool = True,
               with_vectors: bool = False, with_documents: bool | None = None,
               ef: int | None = None, texts: Sequence[str] | None = None) -> Hits:
        common = {"limit": k, "offset": offset, "filter": filter, "score_threshold": score_threshold,
                  "with_payload": with_payload, "with_vector": with_vectors,
                  "params": {} if ef is None else {"hnsw_ef": int(ef)}}
        if texts is not None:
            if query is not None:
                raise TypeError("query: expected either query vectors or texts, got both")
            if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
                raise TypeError("texts: expected a list of strings")
            if self.embedder is None:  # the server embeds them (voisin serve --text)
                return self._queries([{"query": {"text": t}, **common} for t in texts])
            query = _embed(self.embedder, list(texts))
        if query is None:
            raise TypeError("query: expected a vector of shape (dim,) or (n, dim)")
        Q = np.asarray(query, dtype=np.float32)
        if Q.ndim == 1:
            Q = Q[None, :]
        if Q.ndim != 2 or Q.shape[1] != self.dim:
            raise ValueError(f"query: expected shape ({self.dim},) or (n, {self.dim}), got {np.shape(query)}")
        return self._queries([{"query": q.tolist(), **common} for q in Q])

    def _queries(self, searches: list[dict]) -> Hits:
        out = []
        for s in range(0, len(searches), 256):
            r = self._http.call("POST", f"{self._path}/points/query/batch", {"searches": searches[s:s + 256]})
            out += [QueryHits([_scored(p) for p in q["points"]]) for q in r]
        return Hits(out)

    def info(self) -> dict:
        r = self._http.call("GET", self._path)
        v = r.get("voisin", {})
        return {"name": self.name, "points": r["points_count"], "dim": self.dim, "metric": self.metric,
                "index": v.get("index"), "index_in_use": v.get("index_in_use"),
                "indexed_points": r.get("indexed_vectors_count"), "sequence": v.get("sequence"),
                "payload_schema": {k: s["data_type"] for k, s in r["payload_schema"].items()},
                "embedder": v.get("embedder")}

    @property
    def payload_schema(self) -> dict[str, str]:
        return self.info()["payload_schema"]

    def __repr__(self) -> str:
        return f"RemoteCollection({self.name!r}, dim={self.dim}, metric={self.metric!r}, url={self._db.url!r})"


def connect_remote(url: str, *, api_key: str | None = None, timeout: float = 60.0) -> RemoteDatabase:
    """A :class:`RemoteDatabase` for the server at ``url``."""
    return RemoteDatabase(url, api_key=api_key, timeout=timeout)
