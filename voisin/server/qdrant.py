"""Qdrant's REST bodies in, collection calls out, Qdrant's JSON shapes back.

This module is the wire contract and nothing else: no HTTP, no threads. Each
function takes the parsed JSON body of one request (and the collection or
database it names), checks every field it reads, calls the collection layer
(which validates vectors, ids, payloads and filters once more, with messages
that name the argument), and returns the ``result`` part of Qdrant's answer.

The subset served is what qdrant-client's common calls send: unnamed dense
vectors, Cosine / Dot / Euclid, points by id or filter, payload operations,
count, scroll, query (nearest vector, or nearest to a stored point's vector)
and search. A field that would change the answer and is not served
(named or sparse vectors, prefetch, order_by, groups, quantization...) gets
an "Unsupported" error naming it; fields that only tune Qdrant's storage
(shard_number, on_disk, optimizers, wal...) are accepted and do nothing here.

Why it is past 500 lines: it is one contract, one function per endpoint and the
field checks they share, read side by side against Qdrant's API reference; the
HTTP side (app.py, snapshots.py) and the collection layer are elsewhere.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from ..db.ids import normalize_id
from .errors import ApiError, bad_request, unsupported

#: the Qdrant REST version whose shapes this module follows (``GET /``; tested with qdrant-client 1.20)
QDRANT_API_VERSION = "1.20.0"

DISTANCES = {"Cosine": "cosine", "Dot": "dot", "Euclid": "euclid"}
DISTANCE_NAMES = {v: k for k, v in DISTANCES.items()}

#: collection-creation fields that tune Qdrant's storage and do not change any answer
_STORAGE_ONLY = {"shard_number", "sharding_method", "replication_factor", "write_consistency_factor",
                 "on_disk_payload", "optimizers_config", "wal_config", "strict_mode_config",
                 "metadata", "timeout"}
_VECTOR_STORAGE_ONLY = {"on_disk", "datatype", "multivector_config_ignored"}


class Limits:
    """What one request may ask for (``voisin serve`` options)."""

    def __init__(self, max_points: int = 10_000, max_limit: int = 10_000, max_filter_depth: int = 16,
                 max_queries: int = 1_000):
        self.max_points = max_points
        self.max_limit = max_limit
        self.max_filter_depth = max_filter_depth
        self.max_queries = max_queries


# --- small checks ---------------------------------------------------------------------------
def obj(v: Any, where: str) -> dict:
    if not isinstance(v, dict):
        raise bad_request(f"{where}: expected a JSON object, got {_kind(v)}")
    return v


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    return {bool: "a boolean", str: "a string", list: "an array", dict: "an object"}.get(
        type(v), "a number" if isinstance(v, numbers.Number) else type(v).__name__)


def _bool(v: Any, where: str, default: bool) -> bool:
    if v is None:
        return default
    if not isinstance(v, bool):
        raise bad_request(f"{where}: expected true or false, got {_kind(v)}")
    return v


def _int(v: Any, where: str, default: int | None, lo: int = 0, hi: int | None = None) -> int | None:
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        raise bad_request(f"{where}: expected an integer, got {_kind(v)}")
    if v < lo or (hi is not None and v > hi):
        raise bad_request(f"{where}: expected an integer in [{lo}, {hi if hi is not None else 'inf'}], got {v}")
    return v


def _number(v: Any, where: str) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise bad_request(f"{where}: expected a finite number, got {_kind(v)}")
    return float(v)


def _point_id(v: Any, where: str) -> int | str:
    try:
        return normalize_id(v)
    except (TypeError, ValueError) as exc:
        raise bad_request(f"{where}: {exc}") from None


def _ids(v: Any, where: str, limits: Limits) -> list:
    if not isinstance(v, list):
        raise bad_request(f"{where}: expected an array of point ids, got {_kind(v)}")
    if len(v) > limits.max_points:
        raise ApiError(413, f"{where}: at most {limits.max_points} points per request, got {len(v)}")
    return [_point_id(x, f"{where}[{i}]") for i, x in enumerate(v)]


def _reject_unknown(body: dict, known: set, where: str) -> None:
    extra = sorted(set(body) - known)
    if extra:
        raise unsupported(f"{where}.{extra[0]}")


def filter_depth(f: Any, depth: int = 0) -> int:
    """How deeply a filter nests (must / should / must_not / min_should / nested)."""
    if isinstance(f, dict):
        return max([depth] + [filter_depth(v, depth + 1) for v in f.values()])
    if isinstance(f, list):
        return max([depth] + [filter_depth(v, depth) for v in f])
    return depth


def _filter(v: Any, where: str, limits: Limits) -> Any:
    if v is None:
        return None
    obj(v, where)
    if filter_depth(v) > 2 * limits.max_filter_depth:
        raise bad_request(f"{where}: nests deeper than {limits.max_filter_depth} levels")
    return v


def _vector(v: Any, where: str, dim: int) -> list:
    """One dense vector; named, sparse and multi vectors are refused by name."""
    if isinstance(v, dict):
        if set(v) == {""}:
            v = v[""]
        elif set(v) <= {"indices", "values"}:
            raise unsupported(f"{where}: sparse vectors")
        else:
            raise unsupported(f"{where}: named vectors ({', '.join(map(repr, sorted(v)))}); "
                              "collections hold one unnamed vector")
    if not isinstance(v, list):
        raise bad_request(f"{where}: expected an array of {dim} numbers, got {_kind(v)}")
    if v and isinstance(v[0], list):
        raise unsupported(f"{where}: multivectors")
    if len(v) != dim:
        raise bad_request(f"{where}: expected a vector of {dim} numbers, got {len(v)}")
    for j, x in enumerate(v):
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise bad_request(f"{where}[{j}]: expected a number, got {_kind(x)}")
    return v


def _selected(body: dict, where: str, limits: Limits) -> tuple[list | None, Any]:
    """(ids, filter) of a PointsSelector: {"points": [...]} or {"filter": {...}}."""
    if body.get("shard_key") is not None:
        raise unsupported(f"{where}.shard_key")
    has_points, has_filter = body.get("points") is not None, body.get("filter") is not None
    if has_points == has_filter:
        raise bad_request(f"{where}: expected either \"points\" (ids) or \"filter\", got "
                          f"{'both' if has_points else 'neither'}")
    if has_points:
        return _ids(body["points"], f"{where}.points", limits), None
    return None, _filter(body["filter"], f"{where}.filter", limits)


def _with_payload(v: Any, where: str) -> tuple[bool, Any]:
    """(fetch payloads?, how to cut them): true / false / [keys] / {include|exclude: [keys]}."""
    if v is None:
        return False, None
    if isinstance(v, bool):
        return v, None
    if isinstance(v, list) and all(isinstance(k, str) for k in v):
        return True, ("include", v)
    if isinstance(v, dict) and len(v) == 1:
        (mode, keys), = v.items()
        if mode in ("include", "exclude") and isinstance(keys, list) and all(isinstance(k, str) for k in keys):
            return True, (mode, keys)
    raise bad_request(f"{where}: expected true, false, an array of keys, or "
                      "{\"include\" | \"exclude\": [keys]}")


def _with_vector(v: Any, where: str) -> bool:
    if v is None:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, list) and all(isinstance(k, str) for k in v):
        if set(v) <= {""}:
            return bool(v)
        raise unsupported(f"{where}: named vectors {v}")
    raise bad_request(f"{where}: expected true or false, got {_kind(v)}")


def _cut(payload: dict | None, how: Any) -> dict | None:
    if payload is None or how is None:
        return payload
    mode, keys = how
    if mode == "include":
        return {k: payload[k] for k in keys if k in payload}
    return {k: v for k, v in payload.items() if k not in set(keys)}


def _vec_out(v: np.ndarray | None) -> list | None:
    return None if v is None else v.tolist()


def record(r: Any, how: Any) -> dict:
    out = {"id": r.id, "payload": _cut(r.payload, how), "vector": _vec_out(r.vector),
           "shard_key": None, "order_value": None}
    if r.document is not None:
        out["document"] = r.document
    return out


def scored(p: Any, how: Any, version: int) -> dict:
    out = {"id": p.id, "version": version, "score": p.score, "payload": _cut(p.payload, how),
           "vector": _vec_out(p.vector), "shard_key": None, "order_value": None}
    if p.document is not None:
        out["document"] = p.document
    return out


def update_result(seq: int | tuple) -> dict:
    # voisin applies every write before it answers: "completed" even with wait=false;
    # a sharded collection answers each shard's sequence, whose sum grows with every write
    op = int(sum(seq)) if isinstance(seq, tuple) else int(seq)
    return {"operation_id": op, "status": "completed"}


# --- collections ----------------------------------------------------------------------------
def create_collection_args(body: Any, limits: Limits) -> dict:
    """create_collection keyword arguments from Qdrant's CreateCollection body."""
    body = obj({} if body is None else body, "body")
    for key in ("sparse_vectors", "quantization_config", "init_from"):
        if body.get(key) is not None:
            raise unsupported(f"body.{key}")
    vectors = body.get("vectors")
    if vectors is None:
        raise bad_request("body.vectors: expected {\"size\": N, \"distance\": \"Cosine\" | \"Dot\" | \"Euclid\"}")
    obj(vectors, "body.vectors")
    if "size" not in vectors:
        if len(vectors) == 1 and isinstance(next(iter(vectors.values())), dict) and next(iter(vectors)) == "":
            vectors = vectors[""]
        else:
            raise unsupported("body.vectors: named vectors (a map of vector names); "
                              "use one unnamed {\"size\", \"distance\"}")
    size = _int(vectors.get("size"), "body.vectors.size", None, lo=1, hi=65536)
    if size is None:
        raise bad_request("body.vectors.size: expected the vector dimension, an integer >= 1")
    distance = vectors.get("distance")
    if distance not in DISTANCES:
        if distance == "Manhattan":
            raise unsupported("body.vectors.distance Manhattan")
        raise bad_request(f"body.vectors.distance: expected one of Cosine, Dot, Euclid, got {distance!r}")
    for key in ("multivector_config", "quantization_config"):
        if vectors.get(key) is not None:
            raise unsupported(f"body.vectors.{key}")
    _reject_unknown(vectors, {"size", "distance", "hnsw_config"} | _VECTOR_STORAGE_ONLY, "body.vectors")
    _reject_unknown(body, {"vectors", "hnsw_config", "voisin_index", "voisin_embedder"} | _STORAGE_ONLY |
                    {"sparse_vectors", "quantization_config", "init_from"}, "body")
    hnsw = {}
    for where, cfg in (("body.hnsw_config", body.get("hnsw_config")),
                       ("body.vectors.hnsw_config", vectors.get("hnsw_config"))):
        if cfg is None:
            continue
        obj(cfg, where)
        if cfg.get("m") is not None:
            hnsw["M"] = _int(cfg["m"], f"{where}.m", None, lo=2, hi=256)
        if cfg.get("ef_construct") is not None:
            hnsw["efConstruction"] = _int(cfg["ef_construct"], f"{where}.ef_construct", None, lo=4, hi=4096)
    embedder = body.get("voisin_embedder")
    if embedder is not None and not isinstance(embedder, str):
        raise bad_request(f"body.voisin_embedder: expected the text encoder's name, got {_kind(embedder)}")
    index = body.get("voisin_index", "auto")
    if not isinstance(index, str):
        raise bad_request(f"body.voisin_index: expected an index_factory string, got {_kind(index)}")
    if hnsw:
        hnsw = {"M": 16, "efConstruction": 100, "efSearch": 128, **hnsw}
    return {"dim": size, "metric": DISTANCES[distance], "index": index, "hnsw": hnsw or None,
            "embedder": embedder}


def collection_info(col: Any) -> dict:
    info = col.info()
    hnsw = col.config.get("hnsw") or {"M": 16, "efConstruction": 100}
    points = info["points"]
    schema = {key: {"data_type": kind, "params": None,
                    "points": col.count({"must_not": [{"is_empty": {"key": key}}]})}
              for key, kind in info["payload_schema"].items()}
    return {
        "status": "green", "optimizer_status": "ok", "warnings": [],
        "indexed_vectors_count": info["indexed_points"], "points_count": points, "segments_count": 1,
        "config": {
            "params": {"vectors": {"size": col.dim, "distance": DISTANCE_NAMES[col.metric]},
                       "shard_number": 1, "replication_factor": 1, "write_consistency_factor": 1,
                       "on_disk_payload": True},
            "hnsw_config": {"m": hnsw["M"], "ef_construct": hnsw["efConstruction"],
                            "full_scan_threshold": 10_000, "max_indexing_threads": 0, "on_disk": False},
            "optimizer_config": {"deleted_threshold": 0.2, "vacuum_min_vector_number": 1000,
                                 "default_segment_number": 0, "max_segment_size": None,
                                 "memmap_threshold": None, "indexing_threshold": 20_000,
                                 "flush_interval_sec": 5, "max_optimization_threads": None},
            "wal_config": {"wal_capacity_mb": 32, "wal_segments_ahead": 0},
            "quantization_config": None,
        },
        "payload_schema": schema,
        "voisin": {"index": info["index"], "index_in_use": info["index_in_use"],
                   "sequence": info.get("sequence"), "embedder": info.get("embedder"),
                   "shards": info.get("shards", 1)},
    }


def payload_index_args(body: Any) -> tuple[str, str]:
    body = obj(body, "body")
    key = body.get("field_name")
    if not isinstance(key, str) or not key:
        raise bad_request("body.field_name: expected the payload key to index, a non-empty string")
    schema = body.get("field_schema", "keyword")
    if isinstance(schema, dict):
        schema = schema.get("type")
    if schema not in ("keyword", "integer", "float", "bool", "datetime"):
        if schema in ("geo", "text", "uuid"):
            raise unsupported(f"body.field_schema {schema!r} payload indexes")
        raise bad_request("body.field_schema: expected keyword, integer, float, bool or datetime, "
                          f"got {schema!r}")
    return key, schema


# --- points: writes --------------------------------------------------------------------------
def upsert(col: Any, body: Any, limits: Limits) -> int:
    """PUT /points: {"points": [{"id", "vector", "payload"}]} or {"batch": {"ids", "vectors", "payloads"}}."""
    body = obj(body, "body")
    _reject_unknown(body, {"points", "batch", "shard_key", "update_filter"}, "body")
    if body.get("shard_key") is not None:
        raise unsupported("body.shard_key")
    if body.get("update_filter") is not None:
        raise unsupported("body.update_filter")
    documents = None
    if body.get("points") is not None:
        points = body["points"]
        if not isinstance(points, list):
            raise bad_request(f"body.points: expected an array of points, got {_kind(points)}")
        if len(points) > limits.max_points:
            raise ApiError(413, f"body.points: at most {limits.max_points} points per request, got {len(points)}")
        ids, vectors, payloads, docs = [], [], [], []
        for i, p in enumerate(points):
            where = f"body.points[{i}]"
            obj(p, where)
            _reject_unknown(p, {"id", "vector", "payload", "document"}, where)
            ids.append(_point_id(p.get("id"), f"{where}.id"))
            vec = p.get("vector")
            if isinstance(vec, dict) and "text" in vec:
                # qdrant-client's models.Document: embedded here by the collection's encoder
                if p.get("document") is not None:
                    raise bad_request(f"{where}: expected a document in vector or in document, not both")
                p = {**p, "vector": None, "document": document_text(col, vec, f"{where}.vector")}
            docs.append(p.get("document"))
            if p.get("vector") is None:
                if p.get("document") is None:
                    raise bad_request(f"{where}.vector: expected an array of {col.dim} numbers")
                vectors.append(None)
            else:
                vectors.append(_vector(p["vector"], f"{where}.vector", col.dim))
            payload = p.get("payload")
            payloads.append({} if payload is None else payload)
        documents = _documents(docs, vectors)
    elif body.get("batch") is not None:
        batch = obj(body["batch"], "body.batch")
        _reject_unknown(batch, {"ids", "vectors", "payloads", "documents"}, "body.batch")
        ids = _ids(batch.get("ids"), "body.batch.ids", limits)
        n = len(ids)
        raw = batch.get("vectors")
        docs = batch.get("documents")
        if raw is None and docs is None:
            raise bad_request("body.batch.vectors: expected an array of vectors, one per id")
        if raw is not None:
            if isinstance(raw, dict):
                raw = raw.get("") if set(raw) == {""} else _vector(raw, "body.batch.vectors", col.dim)
            if not isinstance(raw, list) or len(raw) != n:
                raise bad_request(f"body.batch.vectors: expected {n} vectors (one per id), got "
                                  f"{len(raw) if isinstance(raw, list) else _kind(raw)}")
            vectors = [_vector(v, f"body.batch.vectors[{i}]", col.dim) for i, v in enumerate(raw)]
        else:
            vectors = [None] * n
        payloads = batch.get("payloads")
        if payloads is None:
            payloads = [{}] * n
        elif not isinstance(payloads, list) or len(payloads) != n:
            raise bad_request(f"body.batch.payloads: expected {n} payloads (one per id)")
        payloads = [{} if p is None else p for p in payloads]
        if docs is not None:
            if not isinstance(docs, list) or len(docs) != n:
                raise bad_request(f"body.batch.documents: expected {n} documents (one per id)")
            documents = _documents(docs, vectors)
    else:
        raise bad_request("body: expected \"points\" (an array of points) or \"batch\"")
    if not ids:
        return col.seq
    if all(v is None for v in vectors):
        X = None
    elif any(v is None for v in vectors):
        raise bad_request("body: give every point a vector, or every point a document "
                          "(for a collection with an embedder), not a mix")
    else:
        X = np.asarray(vectors, dtype=np.float32)
    return col.upsert(ids, X, payloads, documents=documents)


def _model_matches(model: str, name: str) -> bool:
    """"sentence-transformers/all-MiniLM-L6-v2", "all-minilm-l6-v2": one model."""
    return model.lower() == name.lower() or model.lower() == name.lower().rsplit("/", 1)[-1]


def document_text(col: Any, doc: dict, where: str) -> str:
    """The text of a Qdrant ``Document`` ({"text", "model"}), checked against the
    encoder that embeds the collection."""
    _reject_unknown(doc, {"text", "model", "options"}, where)
    text = doc.get("text")
    if not isinstance(text, str):
        raise bad_request(f"{where}.text: expected a string, got {_kind(text)}")
    name = col.config.get("embedder")
    if name is None or col.embedder is None:
        raise bad_request(f"{where}: collection {col.name!r} has no text encoder on this server "
                          "(create it with \"voisin_embedder\" on a server started with --text)")
    model = doc.get("model")
    if model is not None and (not isinstance(model, str) or not _model_matches(model, name)):
        raise bad_request(f"{where}.model: collection {col.name!r} embeds with {name!r}, got {model!r}")
    return text


def _documents(docs: list, vectors: list) -> list | None:
    if all(d is None for d in docs):
        return None
    for i, d in enumerate(docs):
        if not isinstance(d, str):
            raise bad_request(f"body.points[{i}].document: expected a string for every point, got {_kind(d)}")
    return docs


def delete(col: Any, body: Any, limits: Limits) -> int:
    ids, flt = _selected(obj(body, "body"), "body", limits)
    if ids is not None:
        return col.delete(ids)
    return col.delete(filter=flt)


def payload_write(col: Any, body: Any, limits: Limits, op: str) -> int:
    """set (POST /points/payload), overwrite (PUT), delete (POST .../delete), clear (POST .../clear)."""
    body = obj(body, "body")
    if body.get("key") is not None:
        raise unsupported("body.key (setting a payload under a nested key)")
    ids, flt = _selected(body, "body", limits)
    if op == "clear":
        return col.clear_payload(ids, filter=flt)
    if op == "delete":
        keys = body.get("keys")
        if not isinstance(keys, list):
            raise bad_request("body.keys: expected an array of payload keys to delete")
        return col.delete_payload(ids, keys, filter=flt)
    payload = obj(body.get("payload"), "body.payload")
    if op == "set":
        return col.set_payload(ids, payload, filter=flt)
    return col.overwrite_payload(ids, payload, filter=flt)


# --- points: reads ---------------------------------------------------------------------------
def retrieve(col: Any, body: Any, limits: Limits) -> list:
    body = obj(body, "body")
    _reject_unknown(body, {"ids", "with_payload", "with_vector", "with_vectors", "shard_key"}, "body")
    ids = _ids(body.get("ids"), "body.ids", limits)
    fetch, how = _with_payload(body.get("with_payload", True), "body.with_payload")
    vectors = _with_vector(body.get("with_vector", body.get("with_vectors")), "body.with_vector")
    return [record(r, how) for r in col.get(ids, with_payload=fetch, with_vectors=vectors)]


def point(col: Any, point_id: str) -> dict:
    pid = _point_id(int(point_id) if point_id.isdigit() else point_id, "id")
    found = col.get([pid], with_payload=True, with_vectors=True)
    if not found:
        raise ApiError(404, f"Not found: no point with id {pid!r} in collection {col.name!r}")
    return record(found[0], None)


def count(col: Any, body: Any, limits: Limits) -> dict:
    body = obj({} if body is None else body, "body")
    _reject_unknown(body, {"filter", "exact", "shard_key"}, "body")
    return {"count": col.count(_filter(body.get("filter"), "body.filter", limits))}


def scroll(col: Any, body: Any, limits: Limits) -> dict:
    body = obj({} if body is None else body, "body")
    _reject_unknown(body, {"filter", "limit", "offset", "with_payload", "with_vector", "order_by",
                           "shard_key"}, "body")
    if body.get("order_by") is not None:
        raise unsupported("body.order_by (scroll is in id order)")
    limit = _int(body.get("limit"), "body.limit", 10, lo=1, hi=limits.max_limit)
    offset = body.get("offset")
    offset = None if offset is None else _point_id(offset, "body.offset")
    fetch, how = _with_payload(body.get("with_payload", True), "body.with_payload")
    vectors = _with_vector(body.get("with_vector"), "body.with_vector")
    records, nxt = col.scroll(_filter(body.get("filter"), "body.filter", limits), limit, offset,
                              with_payload=fetch, with_vectors=vectors)
    return {"points": [record(r, how) for r in records], "next_page_offset": nxt}


_QUERY_FIELDS = {"query", "vector", "filter", "limit", "offset", "score_threshold", "with_payload",
                 "with_vector", "params", "using", "prefetch", "lookup_from", "shard_key", "top"}


def _query_vector(col: Any, q: Any, where: str) -> tuple[list | None, str | None, Any]:
    """(vector, text, point id to exclude) of a query: a vector, {"nearest": ...},
    a stored point's id (its vector; the point itself is left out, as Qdrant does),
    or {"text": ...} / {"document": ...} for a collection with an embedder."""
    if isinstance(q, dict):
        if "nearest" in q:
            _reject_unknown(q, {"nearest", "mmr"}, where)
            if q.get("mmr") is not None:
                raise unsupported(f"{where}.mmr")
            return _query_vector(col, q["nearest"], f"{where}.nearest")
        if "text" in q:
            return None, document_text(col, q, where), None
        if set(q) - {""}:
            kinds = ", ".join(sorted(q))
            raise unsupported(f"{where}: the query {kinds!r} (voisin serves nearest-vector queries)")
    if isinstance(q, (int, str)) and not isinstance(q, bool):
        pid = _point_id(q, where)
        found = col.get([pid], with_payload=False, with_vectors=True)
        if not found:
            raise ApiError(404, f"Not found: {where}: no point with id {pid!r} in collection {col.name!r}")
        return found[0].vector.tolist(), None, pid
    return _vector(q, where, col.dim), None, None


def query(col: Any, body: Any, limits: Limits, legacy: bool = False) -> list:
    """POST /points/query ({"query": ...}) or the older /points/search ({"vector": ...});
    returns the scored points."""
    body = obj(body, "body")
    _reject_unknown(body, _QUERY_FIELDS, "body")
    for key in ("prefetch", "lookup_from", "shard_key"):
        if body.get(key) is not None:
            raise unsupported(f"body.{key}")
    if body.get("using") not in (None, ""):
        raise unsupported(f"body.using {body['using']!r}: named vectors")
    q = body.get("vector") if legacy else body.get("query")
    if q is None:
        if legacy:
            raise bad_request("body.vector: expected the query vector")
        raise unsupported("body.query absent (a query without a vector returns points in id order: use scroll)")
    vector, text, exclude = _query_vector(col, q, "body.vector" if legacy else "body.query")
    limit = _int(body.get("limit", body.get("top")), "body.limit", 10, lo=1 if legacy else 0,
                 hi=limits.max_limit)
    offset = _int(body.get("offset"), "body.offset", 0, hi=limits.max_limit)
    threshold = _number(body.get("score_threshold"), "body.score_threshold")
    fetch, how = _with_payload(body.get("with_payload", False), "body.with_payload")
    vectors = _with_vector(body.get("with_vector"), "body.with_vector")
    params = obj(body.get("params") or {}, "body.params")
    _reject_unknown(params, {"hnsw_ef", "exact", "quantization", "indexed_only", "acorn"}, "body.params")
    ef = _int(params.get("hnsw_ef"), "body.params.hnsw_ef", None, lo=1, hi=65536)
    if _bool(params.get("exact"), "body.params.exact", False):
        raise unsupported("body.params.exact=true (searches use the collection's index; "
                          "raise params.hnsw_ef for more recall)")
    for key in ("quantization", "acorn"):
        if params.get(key) is not None:
            raise unsupported(f"body.params.{key}")
    if limit == 0:
        return []
    flt = _filter(body.get("filter"), "body.filter", limits)
    extra = 1 if exclude is not None else 0
    kw = dict(k=limit + extra, filter=flt, offset=offset, score_threshold=threshold,
              with_payload=fetch, with_vectors=vectors, ef=ef)
    if text is not None:
        hits = col.search(texts=[text], **kw)[0]
    else:
        hits = col.search(np.asarray(vector, dtype=np.float32), **kw)[0]
    points = [p for p in hits if exclude is None or p.id != exclude][:limit]
    return [scored(p, how, col.seq) for p in points]


def batch(col: Any, body: Any, limits: Limits, legacy: bool = False) -> list:
    body = obj(body, "body")
    searches = body.get("searches")
    if not isinstance(searches, list):
        raise bad_request("body.searches: expected an array of query requests")
    if len(searches) > limits.max_queries:
        raise ApiError(413, f"body.searches: at most {limits.max_queries} queries per request")
    out = []
    for i, s in enumerate(searches):
        try:
            points = query(col, s, limits, legacy)
        except ApiError as exc:
            raise ApiError(exc.status, exc.message.replace("body", f"body.searches[{i}]", 1)) from None
        out.append(points if legacy else {"points": points})
    return out
