"""Qdrant's JSON filter language, checked field by field into :mod:`.ast` nodes.

Every error is a :class:`~voisin.db.errors.FilterError` naming the JSON path
of the bad field and what was expected, e.g.
``filter.must[1].range.gte: expected a number or an ISO 8601 datetime string, got 'soon'``.

Accepted (as Qdrant's REST API): a filter ``{"must": ..., "should": ...,
"must_not": ..., "min_should": {"conditions": [...], "min_count": n}}`` (each
clause one condition or a list); conditions ``{"key": k, "match": {"value" |
"any" | "except" | "text": ...}}``, ``{"key": k, "range": {"gt" | "gte" |
"lt" | "lte": number or datetime}}``, ``{"key": k, "values_count": {...}}``,
``{"key": k, "is_empty": bool}``, ``{"key": k, "is_null": bool}``,
``{"is_empty": {"key": k}}``, ``{"is_null": {"key": k}}``, ``{"has_id": [...]}``,
``{"nested": {"key": k, "filter": {...}}}`` and a filter itself. Pydantic
models (qdrant-client's ``models.Filter``) are accepted too, through their
JSON form. Geo conditions and ``has_vector`` are refused as not supported.

Example:
    >>> f = parse_filter({"must": [{"key": "year", "range": {"gte": 2020}}]})
    >>> f.must[0].gte
    2020
"""

from __future__ import annotations

import numbers
import re
from typing import Any

from ..errors import FilterError
from ..ids import normalize_id
from . import ast as A
from .datetimes import bound_micros
from .paths import parse_path

#: deepest nesting of filters a request may use (a guard for servers)
MAX_DEPTH = 32

_INT64 = (-(2 ** 63), 2 ** 63 - 1)
_FILTER_KEYS = ("must", "should", "must_not", "min_should")
_UNSUPPORTED = ("geo_bounding_box", "geo_radius", "geo_polygon", "has_vector", "slice")
_FIELD_OPS = ("match", "range", "values_count", "is_empty", "is_null") + _UNSUPPORTED[:3]
_TOKEN = re.compile(r"[^\W_]+")


def text_tokens(text: str) -> list[str]:
    """Qdrant's default word tokenizer (fields without a text index)."""
    return [t.lower() for t in _TOKEN.findall(text)]


def _fail(where: str, what: str, got: Any = None, show: bool = True) -> FilterError:
    tail = f", got {got!r}" if show else ""
    return FilterError(f"{where}: {what}{tail}")


def _to_json(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)
    if callable(dump):  # qdrant-client / pydantic models
        return dump(mode="json", exclude_none=True, by_alias=True)
    return obj


def parse_filter(obj: Any, where: str = "filter", max_depth: int = MAX_DEPTH) -> A.Bool | None:
    """Check and compile a filter; ``None`` (no filter) stays ``None``."""
    if obj is None:
        return None
    return _filter(_to_json(obj), where, 0, max_depth)


def _filter(obj: Any, where: str, depth: int, max_depth: int) -> A.Bool:
    if depth > max_depth:
        raise _fail(where, f"filters nest deeper than {max_depth} levels", show=False)
    if not isinstance(obj, dict):
        raise _fail(where, "expected a filter object with must / should / must_not / min_should", obj)
    for k in obj:
        if k not in _FILTER_KEYS:
            raise _fail(f"{where}.{k}", "unknown filter clause; expected one of must, should, "
                        "must_not, min_should", show=False)
    parts: dict[str, tuple] = {}
    for clause in ("must", "should", "must_not"):
        if obj.get(clause) is not None:
            parts[clause] = _clause(obj[clause], f"{where}.{clause}", depth, max_depth)
    min_should, min_count = (), 0
    ms = obj.get("min_should")
    if ms is not None:
        w = f"{where}.min_should"
        if not isinstance(ms, dict) or set(ms) - {"conditions", "min_count"} or "conditions" not in ms:
            raise _fail(w, "expected {\"conditions\": [...], \"min_count\": n}", ms)
        min_should = _clause(ms["conditions"], f"{w}.conditions", depth, max_depth)
        min_count = _int(ms.get("min_count"), f"{w}.min_count", lo=1)
    return A.Bool(parts.get("must", ()), parts.get("should", ()), parts.get("must_not", ()),
                  min_should, min_count)


def _clause(obj: Any, where: str, depth: int, max_depth: int) -> tuple:
    if isinstance(obj, dict):
        return (_condition(obj, where, depth, max_depth),)
    if not isinstance(obj, (list, tuple)):
        raise _fail(where, "expected a condition or a list of conditions", obj)
    return tuple(_condition(c, f"{where}[{i}]", depth, max_depth) for i, c in enumerate(obj))


def _key(obj: dict, where: str) -> tuple[str, Any]:
    key = obj.get("key")
    if not isinstance(key, str):
        raise _fail(f"{where}.key", "expected a payload key string", key)
    try:
        return key, parse_path(key)
    except ValueError as exc:
        raise _fail(f"{where}.key", str(exc), show=False) from None


def _condition(obj: Any, where: str, depth: int, max_depth: int) -> A.Node:
    if not isinstance(obj, dict):
        raise _fail(where, "expected a condition object", obj)
    for bad in _UNSUPPORTED:
        if bad in obj:
            raise _fail(f"{where}.{bad}", "this condition is not supported by voisin", show=False)
    if "key" in obj:
        return _field(obj, where)
    if not obj or any(k in obj for k in _FILTER_KEYS):  # {} is an empty filter: always true
        return _filter(obj, where, depth + 1, max_depth)
    if len(obj) != 1:
        raise _fail(where, "expected a field condition (with \"key\"), is_empty, is_null, has_id, "
                    "nested or a filter", obj)
    (kind, body), = obj.items()
    w = f"{where}.{kind}"
    if kind in ("is_empty", "is_null"):
        if not isinstance(body, dict) or set(body) != {"key"}:
            raise _fail(w, "expected {\"key\": ...}", body)
        key, path = _key(body, w)
        return A.IsEmpty(key, path) if kind == "is_empty" else A.IsNull(key, path)
    if kind == "has_id":
        if not isinstance(body, (list, tuple)):
            raise _fail(w, "expected a list of point ids", body)
        ids = set()
        for i, v in enumerate(body):
            try:
                ids.add(normalize_id(v))
            except (TypeError, ValueError) as exc:
                raise _fail(f"{w}[{i}]", str(exc), show=False) from None
        return A.HasId(frozenset(ids))
    if kind == "nested":
        if not isinstance(body, dict) or set(body) != {"key", "filter"}:
            raise _fail(w, "expected {\"key\": ..., \"filter\": {...}}", body)
        key, path = _key(body, w)
        return A.Nested(key, path, _filter(body["filter"], f"{w}.filter", depth + 1, max_depth))
    raise _fail(w, "unknown condition; expected a field condition (with \"key\"), is_empty, "
                "is_null, has_id, nested or a filter", show=False)


def _field(obj: dict, where: str) -> A.Node:
    key, path = _key(obj, where)
    ops = [k for k in obj if k != "key"]
    for k in ops:
        if k not in _FIELD_OPS:
            raise _fail(f"{where}.{k}", "unknown field condition; expected one of match, range, "
                        "values_count, is_empty, is_null", show=False)
    ops = [k for k in ops if obj[k] is not None]
    if len(ops) != 1:
        raise _fail(where, "a field condition needs exactly one of match, range, values_count, "
                    f"is_empty, is_null; got {ops or 'none'}", show=False)
    op = ops[0]
    body, w = obj[op], f"{where}.{op}"
    if op == "match":
        return _match(key, path, body, w)
    if op == "range":
        return _range(key, path, body, w)
    if op == "values_count":
        if not isinstance(body, dict):
            raise _fail(w, "expected an object with gt / gte / lt / lte", body)
        bounds = {}
        for b, v in body.items():
            if b not in ("gt", "gte", "lt", "lte"):
                raise _fail(f"{w}.{b}", "unknown bound; expected gt, gte, lt or lte", show=False)
            if v is not None:
                bounds[b] = _int(v, f"{w}.{b}", lo=0)
        return A.ValuesCount(key, path, **bounds)
    if not isinstance(body, bool):
        raise _fail(w, "expected true or false", body)
    node = A.IsEmpty(key, path) if op == "is_empty" else A.IsNull(key, path)
    return node if body else A.Not(node)


def _int(v: Any, where: str, lo: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise _fail(where, "expected an integer", v)
    if lo is not None and v < lo:
        raise _fail(where, f"expected an integer >= {lo}", v)
    return int(v)


def _operand(v: Any, where: str) -> tuple[str, Any]:
    if isinstance(v, bool):
        return "bools", v
    if isinstance(v, numbers.Integral):
        if not _INT64[0] <= v <= _INT64[1]:
            raise _fail(where, "expected an integer that fits in int64", v)
        return "ints", int(v)
    if isinstance(v, str):
        return "strs", v
    raise _fail(where, "expected a string, an integer or a boolean", v)


def _match(key: str, path: Any, body: Any, where: str) -> A.Match:
    if not isinstance(body, dict) or len(body) != 1:
        raise _fail(where, "expected one of {\"value\": v}, {\"any\": [...]}, {\"except\": [...]}, "
                    "{\"text\": \"...\"}", body)
    (kind, arg), = body.items()
    w = f"{where}.{kind}"
    if kind == "text":
        if not isinstance(arg, str):
            raise _fail(w, "expected a string", arg)
        return A.Match(key, path, "text", tokens=tuple(text_tokens(arg)))
    if kind == "value":
        values = [(w, arg)]
    elif kind in ("any", "except"):
        if not isinstance(arg, (list, tuple)):
            raise _fail(w, "expected a list of strings, integers or booleans", arg)
        values = [(f"{w}[{i}]", v) for i, v in enumerate(arg)]
    else:
        raise _fail(w, "unknown match; expected value, any, except or text", show=False)
    sets: dict[str, set] = {"strs": set(), "ints": set(), "bools": set()}
    for wi, v in values:
        kind_of, v = _operand(v, wi)
        sets[kind_of].add(v)
    if kind != "value" and (sets["bools"] or (sets["strs"] and sets["ints"])):
        # as Qdrant: a list of strings or a list of integers, booleans only in match value
        raise _fail(w, "expected a list of all strings or all integers", arg)
    return A.Match(key, path, "any" if kind == "value" else kind, frozenset(sets["strs"]),
                   frozenset(sets["ints"]), frozenset(sets["bools"]))


def _range(key: str, path: Any, body: Any, where: str) -> A.Range:
    if not isinstance(body, dict):
        raise _fail(where, "expected an object with gt / gte / lt / lte", body)
    bounds: dict[str, Any] = {}
    kinds = set()
    for b, v in body.items():
        wb = f"{where}.{b}"
        if b not in ("gt", "gte", "lt", "lte"):
            raise _fail(wb, "unknown bound; expected gt, gte, lt or lte", show=False)
        if v is None:
            continue
        if isinstance(v, numbers.Real) and not isinstance(v, bool):
            if v != v or v in (float("inf"), float("-inf")):
                raise _fail(wb, "expected a finite number", v)
            kinds.add("number")
            bounds[b] = v
        elif isinstance(v, str) and bound_micros(v) is not None:
            kinds.add("datetime")
            bounds[b] = bound_micros(v)
        else:
            raise _fail(wb, "expected a number or an ISO 8601 datetime string", v)
    if len(kinds) > 1:
        raise _fail(where, "expected bounds that are all numbers or all datetimes", body)
    return A.Range(key, path, "datetime" in kinds, **bounds)
