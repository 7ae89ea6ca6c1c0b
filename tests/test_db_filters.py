"""Qdrant's filter language: voisin's answers against qdrant-client's in-process
mode (the oracle), over random payloads and random filters (hypothesis).

Each example stores the same points in ``QdrantClient(":memory:")`` and in a
voisin collection, then compares ``count(filter)`` and the ids of a filtered
search with k >= the number of points. The voisin side runs with its column
evaluator forced on (tables of any size), with columns built half-way through
the writes so that later rows go through the re-check of changed rows, and
with the plain per-payload evaluator; all must agree with Qdrant.
"""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import pytest

qdrant_client = pytest.importorskip("qdrant_client", reason="qdrant-client is the filter oracle "
                                    "(pip install voisin[test])")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from qdrant_client import models  # noqa: E402

import voisin  # noqa: E402
from voisin.db import FilterError, payloads as payload_module  # noqa: E402
from voisin.db.filters import StaticTable, evaluate, matches, parse_filter  # noqa: E402
evaluate_module = importlib.import_module("voisin.db.filters.evaluate")  # the module, not the function
from voisin.db.filters.reference import NO_ID  # noqa: E402

DIM = 4
WORDS = ["red", "green", "Apple", "pie", "blue sky", "x"]
DATES = ["2021-01-03", "2021-01-03T10:00:00", "2021-01-05 10:00:00+01:00", "2021-02-01T00:00:00Z",
         "2020-12-31T23:59:59.5", "not a date"]
KEYS = ["a", "b", "n", "obj.x", "arr[].x", "arr", "d", "missing"]

scalars = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, -1.5, 2.0]), st.booleans(),
                    st.sampled_from(WORDS), st.none())
values = st.one_of(scalars, st.lists(scalars, max_size=3))
elements = st.fixed_dictionaries({}, optional={"x": values, "y": values})
payloads = st.fixed_dictionaries({}, optional={
    "a": values, "b": values, "n": st.one_of(st.integers(-5, 5), st.floats(-5, 5, allow_nan=False)),
    "obj": st.fixed_dictionaries({}, optional={"x": values}),
    "arr": st.one_of(st.lists(elements, max_size=3), values),
    "d": st.one_of(st.sampled_from(DATES), st.lists(st.sampled_from(DATES), max_size=2)),
})

operands = st.one_of(st.integers(-3, 3), st.booleans(), st.sampled_from(WORDS))
lists_of_one_kind = st.one_of(st.lists(st.integers(-3, 3), max_size=3),
                              st.lists(st.sampled_from(WORDS), max_size=3))


def _match():
    return st.one_of(
        st.builds(lambda v: {"value": v}, operands),
        st.builds(lambda v: {"any": v}, lists_of_one_kind),
        st.builds(lambda v: {"except": v}, lists_of_one_kind),
        st.builds(lambda v: {"text": v}, st.sampled_from(["red", "apple", "APPLE pie", "sky blue", "zzz"])),
    )


def _bounds(draw_value):
    return st.dictionaries(st.sampled_from(["gt", "gte", "lt", "lte"]), draw_value, min_size=1, max_size=2)


field = st.one_of(
    st.builds(lambda k, m: {"key": k, "match": m}, st.sampled_from(KEYS), _match()),
    st.builds(lambda k, r: {"key": k, "range": r}, st.sampled_from(KEYS),
              _bounds(st.one_of(st.integers(-4, 4), st.sampled_from([-0.5, 1.5])))),
    st.builds(lambda r: {"key": "d", "range": r},
              _bounds(st.sampled_from(["2021-01-03", "2021-01-03T10:00:00Z", "2021-01-05T09:00:00+00:00",
                                       "2021-01-10"]))),
    st.builds(lambda k, r: {"key": k, "values_count": r}, st.sampled_from(KEYS), _bounds(st.integers(0, 3))),
    st.builds(lambda k: {"is_empty": {"key": k}}, st.sampled_from(KEYS)),
    st.builds(lambda k: {"is_null": {"key": k}}, st.sampled_from(KEYS)),
    st.builds(lambda ids: {"has_id": ids}, st.lists(st.integers(0, 40), max_size=5)),
)


def _filters(children):
    clause = st.lists(children, max_size=3)
    return st.one_of(
        st.fixed_dictionaries({}, optional={"must": clause, "should": clause, "must_not": clause}),
        st.builds(lambda cs, m: {"min_should": {"conditions": cs, "min_count": m}},
                  st.lists(children, min_size=1, max_size=3), st.integers(1, 2)),
    )


def _nested(f):
    return {"nested": {"key": "arr", "filter": f}}


inner = st.one_of(st.builds(lambda k, m: {"key": k, "match": m}, st.sampled_from(["x", "y"]), _match()),
                  st.builds(lambda k, r: {"key": k, "range": r}, st.sampled_from(["x", "y"]),
                            _bounds(st.integers(-3, 3))),
                  st.builds(lambda k: {"is_empty": {"key": k}}, st.sampled_from(["x", "y"])))
conditions = st.recursive(
    st.one_of(field, st.builds(_nested, _filters(inner))),
    lambda children: _filters(children), max_leaves=6)
filters = _filters(conditions)

_client = None


def _qdrant(points):
    global _client
    if _client is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _client = qdrant_client.QdrantClient(":memory:")
    if _client.collection_exists("t"):
        _client.delete_collection("t")
    _client.create_collection("t", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.EUCLID))
    if points:
        _client.upsert("t", [models.PointStruct(id=i, vector=v.tolist(), payload=p) for i, v, p in points])
    return _client


def _voisin(points, mode, monkeypatch):
    monkeypatch.setattr(payload_module, "SMALL_TABLE", 10 ** 9 if mode == "reference" else 0)
    monkeypatch.setattr(payload_module, "REBUILD_ROWS", 10 ** 9)
    # "merged": the columns built after the first write are merged forward with the second's rows
    monkeypatch.setattr(payload_module, "MERGE_ROWS", 0 if mode == "merged" else 10 ** 9)
    db = voisin.connect()
    col = db.create_collection("t", dim=DIM, metric="euclid")
    half = len(points) // 2
    for part in (points[:half], points[half:]):
        if part:
            col.upsert([i for i, _, _ in part], np.array([v for _, v, _ in part]),
                       payloads=[p for _, _, p in part])
        # reading every key builds the columns between the two writes
        col.count({"should": [{"key": k, "is_empty": False} for k in KEYS]
                   + [{"nested": {"key": "arr", "filter": {"must": [{"key": "x", "is_null": True}]}}}]})
    return db, col


@pytest.mark.parametrize("mode", ["columns", "merged", "reference"])
@settings(max_examples=70, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(ps=st.lists(payloads, min_size=0, max_size=25), f=filters, data=st.data())
def test_filters_match_qdrant(mode, ps, f, data, monkeypatch):
    rng = np.random.default_rng(len(ps))
    points = [(i, rng.standard_normal(DIM).astype(np.float32), p) for i, p in enumerate(ps)]
    client = _qdrant(points)
    qf = models.Filter.model_validate(f)
    want_count = client.count("t", count_filter=qf, exact=True).count
    db, col = _voisin(points, mode, monkeypatch)
    try:
        assert col.count(f) == want_count, f
        q = rng.standard_normal(DIM).astype(np.float32)
        want = {p.id for p in client.query_points("t", query=q.tolist(), query_filter=qf,
                                                   limit=len(ps) + 5).points}
        got = col.search(q, k=len(ps) + 5, filter=f)
        assert set(got.ids[0]) == want, f
        # a model object is the same filter as its JSON
        assert col.count(qf) == want_count
    finally:
        db.close()


@settings(max_examples=40, deadline=None)
@given(ps=st.lists(payloads, min_size=1, max_size=40), f=filters)
def test_columns_equal_reference(ps, f):
    """Without Qdrant: the column evaluator and the per-payload one agree."""
    node = parse_filter(f)
    table = StaticTable(ps, small=0)
    # rows of a static table have no point id, so has_id matches none of them
    want = [matches(node, p, NO_ID) for p in ps]
    assert evaluate(node, table).tolist() == want


def test_filter_errors_name_the_json_path():
    cases = [
        ({"must": [{"key": "a", "match": {"value": 1}}, {"key": "y", "range": {"gte": "soon"}}]},
         "filter.must[1].range.gte: expected a number or an ISO 8601 datetime string, got 'soon'"),
        ({"must": [{"key": "a", "match": {"value": 1.5}}]}, "filter.must[0].match.value: expected a string"),
        ({"should": {"key": "a", "match": {"nope": 1}}}, "filter.should.match.nope: unknown match"),
        ({"must": [{"key": "a"}]}, "filter.must[0]: a field condition needs exactly one of"),
        ({"must": [{"key": "a", "range": {"gt": 1}, "match": {"value": 1}}]}, "exactly one"),
        ({"must_not": [{"key": "a..b", "is_empty": True}]}, "filter.must_not[0].key: invalid key path"),
        ({"min_should": {"conditions": [], "min_count": 0}}, "filter.min_should.min_count: expected an integer >= 1"),
        ({"must": [{"has_id": [1, -2]}]}, "filter.must[0].has_id[1]"),
        ({"must": [{"nested": {"key": "arr", "filter": {"must": [{"key": "x", "match": {"any": "a"}}]}}}]},
         "filter.must[0].nested.filter.must[0].match.any: expected a list"),
        ({"must": [{"key": "g", "geo_radius": {}}]}, "filter.must[0].geo_radius: this condition is not supported"),
        ({"oops": []}, "filter.oops: unknown filter clause"),
        ({"must": [{"key": "a", "match": {"any": [1, "x"]}}]}, "match.any: expected a list of all strings or all integers"),
        ([1, 2], "filter: expected a filter object"),
        ({"must": [{"key": "a", "range": {"gt": 1, "lt": "2021-01-01"}}]}, "all numbers or all datetimes"),
        ({"must": [{"key": "a", "values_count": {"gt": -1}}]}, "filter.must[0].values_count.gt: expected an integer >= 0"),
    ]
    for f, message in cases:
        with pytest.raises(FilterError) as err:
            parse_filter(f)
        assert message in str(err.value), (f, str(err.value))


def test_deep_filters_are_refused():
    f = {"must": [{"key": "a", "is_empty": True}]}
    for _ in range(40):
        f = {"must": [f]}
    with pytest.raises(FilterError, match="deeper than"):
        parse_filter(f)


def test_large_collection_filters_through_columns(tmp_path):
    """10k points: the columns answer (no per-point pass), and equal the reference."""
    rng = np.random.default_rng(7)
    n = 10_000
    docs = [{"year": int(y), "lang": ["fr", "en", "de"][int(l)], "tags": [f"t{t}" for t in range(int(l) + 1)],
             "when": f"2021-{1 + int(m):02d}-01"} for y, l, m in zip(rng.integers(2000, 2025, n),
                                                                   rng.integers(0, 3, n), rng.integers(0, 12, n))]
    with voisin.connect(tmp_path / "db") as db:
        col = db.create_collection("c", dim=2, metric="euclid")
        col.upsert(np.arange(n), rng.standard_normal((n, 2)), payloads=docs)
        col.create_payload_index("year", "integer")
        f = {"must": [{"key": "year", "range": {"gte": 2010, "lt": 2015}}, {"key": "tags", "match": {"value": "t1"}}],
             "must_not": [{"key": "when", "range": {"gt": "2021-06-01T00:00:00Z"}}]}
        node = parse_filter(f)
        want = sum(matches(node, d, i) for i, d in enumerate(docs))
        assert col.count(f) == want > 0
        # a change after the columns were built is seen (re-checked row), then after a rebuild
        col.set_payload([0], {"year": 2012, "tags": ["t1"], "when": "2021-01-01"})
        docs[0].update({"year": 2012, "tags": ["t1"], "when": "2021-01-01"})
        want = sum(matches(node, d, i) for i, d in enumerate(docs))
        assert col.count(f) == want
        assert col.payload_schema == {"year": "integer"}


def test_columns_merge_forward_the_rows_written_after_them(tmp_path, monkeypatch):
    """Hundreds of writes after the columns were built (fewer than a rebuild takes):
    counts equal the reference, each write is seen, and no payload is re-tested
    one by one per query (the reference evaluator is never called)."""
    rng = np.random.default_rng(3)
    n = 6_000
    docs = {i: {"cat": int(i % 10), "year": int(2000 + i % 25)} for i in range(n)}
    with voisin.connect(tmp_path / "db") as db:
        col = db.create_collection("c", dim=2, metric="euclid")
        col.upsert(np.arange(n), rng.standard_normal((n, 2)), payloads=[docs[i] for i in range(n)])
        f = {"must": [{"key": "cat", "match": {"any": [3, 99]}}, {"key": "year", "range": {"gte": 2010}}],
             "must_not": [{"key": "cat", "is_null": True}]}
        node = parse_filter(f)

        def want():
            return sum(matches(node, d, i) for i, d in docs.items())
        assert col.count(f) == want() > 0  # builds the columns

        def refuse(*a, **k):
            raise AssertionError("a payload was re-tested one by one")
        for step in range(6):
            new = np.arange(n + 100 * step, n + 100 * (step + 1))
            col.upsert(new, rng.standard_normal((100, 2)), payloads=[{"cat": 99, "year": 2020}] * 100)
            docs.update({int(i): {"cat": 99, "year": 2020} for i in new})
            old = rng.choice([i for i in docs if i < n], 40, replace=False)
            col.set_payload(old[:20].tolist(), {"cat": 3, "year": 2011})
            for i in old[:20]:
                docs[int(i)] = {**docs[int(i)], "cat": 3, "year": 2011}
            col.delete(old[20:].tolist())
            for i in old[20:]:
                docs.pop(int(i), None)
            with monkeypatch.context() as m:
                m.setattr(evaluate_module, "matches", refuse)
                assert col.count(f) == want()
                got = col.search(np.zeros(2, np.float32), k=50, filter=f)
                assert all(matches(node, docs[int(i)], i) for i in got.ids[0])


@settings(max_examples=60, deadline=None)
@given(old=st.lists(payloads, min_size=0, max_size=30), f=filters, data=st.data())
def test_merged_columns_equal_columns_built_afresh(old, f, data):
    """Column.merged (rows rewritten, deleted or appended since the column was
    built, its string caches already filled) answers as a column built from the
    new payloads, and as the per-payload evaluator."""
    from voisin.db.filters.columns import Column
    new = list(old)
    changed = set()
    for i in data.draw(st.lists(st.integers(0, max(0, len(old) - 1)), max_size=10)) if old else []:
        new[i] = data.draw(st.one_of(payloads, st.none()))
        changed.add(i)
    appended = data.draw(st.lists(payloads, max_size=8))
    changed |= set(range(len(old), len(old) + len(appended)))
    new += appended
    rows = np.array(sorted(changed), dtype=np.int64)

    class Merged(StaticTable):
        def column(self, key, path):
            col = Column.build(old, path)
            col.datetimes()
            col.rows_text(("red",))
            return col.merged(self.docs, rows, path), np.zeros(0, dtype=np.int64)

    node = parse_filter(f)
    want = [d is not None and matches(node, d, NO_ID) for d in new]
    assert evaluate(node, Merged(new, small=0)).tolist() == want
