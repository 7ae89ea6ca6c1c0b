"""Stateful property test (hypothesis): random upsert / delete / set_payload /
search / count / close-and-reopen / checkpoint / snapshot-and-restore sequences
on a collection, checked after every step against a plain Python model
(dict id -> (vector, payload)), with searches compared to brute force over the
points the filter allows (the reference evaluator decides which)."""

from __future__ import annotations

import shutil
import tempfile
import uuid

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import voisin
from voisin.db import ann as ann_module
from voisin.db.filters import matches, parse_filter

DIM = 6
INT_IDS = list(range(25))
UUID_IDS = [str(uuid.UUID(int=i * 7919 + 1)) for i in range(5)]
FILTERS = [
    None,
    {"must": [{"key": "g", "match": {"value": 1}}]},
    {"must": [{"key": "v", "range": {"gte": 0.0}}], "must_not": [{"key": "tags", "match": {"any": ["b"]}}]},
    {"should": [{"key": "g", "match": {"any": [0, 2]}}, {"has_id": [3, 4, 5, UUID_IDS[0]]}]},
    {"must": [{"key": "tags", "values_count": {"gte": 2}}]},
    {"must": [{"is_empty": {"key": "extra"}}]},
]

payloads = st.fixed_dictionaries({"g": st.integers(0, 2), "v": st.floats(-1, 1, allow_nan=False),
                                  "tags": st.lists(st.sampled_from(["a", "b", "c"]), max_size=3)},
                                 optional={"extra": st.integers(0, 3)})


class CollectionMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.saved_auto = ann_module.AUTO_HNSW_AT
        ann_module.AUTO_HNSW_AT = 12  # move to HNSW within a few steps (exact at this size)
        self.root = tempfile.mkdtemp(prefix="voisin-stateful-")
        self.folder = f"{self.root}/db0"
        self.db = voisin.connect(self.folder, durability="normal")
        self.col = self.db.create_collection("c", dim=DIM, metric="euclid")
        self.model: dict = {}
        self.generation = 0
        self.rng = np.random.default_rng(0)

    def teardown(self):
        ann_module.AUTO_HNSW_AT = self.saved_auto
        self.db.close()
        shutil.rmtree(self.root, ignore_errors=True)

    @rule(ids=st.lists(st.sampled_from(INT_IDS), min_size=1, max_size=8, unique=True),
          data=st.data())
    def upsert_ints(self, ids, data):
        self._upsert(ids, data)

    @rule(ids=st.lists(st.sampled_from(UUID_IDS), min_size=1, max_size=3, unique=True),
          data=st.data())
    def upsert_uuids(self, ids, data):
        self._upsert(ids, data)

    def _upsert(self, ids, data):
        vecs = np.round(self.rng.standard_normal((len(ids), DIM)), 2).astype(np.float32)
        ps = [data.draw(payloads) for _ in ids]
        self.col.upsert(ids, vecs, payloads=ps)
        for i, v, p in zip(ids, vecs, ps):
            self.model[i] = (v, p)

    @rule(ids=st.lists(st.sampled_from(INT_IDS + UUID_IDS[:2]), min_size=1, max_size=6, unique=True))
    def delete(self, ids):
        kinds = {type(i) for i in ids}
        if len(kinds) > 1:
            ids = [i for i in ids if isinstance(i, int)]
        self.col.delete(ids)
        for i in ids:
            self.model.pop(i, None)

    @rule(which=st.sampled_from(FILTERS[1:]))
    def delete_by_filter(self, which):
        node = parse_filter(which)
        self.col.delete(filter=which)
        for i in [i for i, (_, p) in self.model.items() if matches(node, p, i)]:
            del self.model[i]

    @precondition(lambda self: any(isinstance(i, int) for i in self.model))
    @rule(data=st.data(), value=st.integers(0, 3))
    def set_payload(self, data, value):
        live = sorted(i for i in self.model if isinstance(i, int))
        ids = data.draw(st.lists(st.sampled_from(live), min_size=1, max_size=4, unique=True))
        self.col.set_payload(ids, {"extra": value})
        for i in ids:
            self.model[i][1]["extra"] = value

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def delete_payload(self, data):
        ids = data.draw(st.lists(st.sampled_from(sorted(self.model, key=str)), min_size=1, max_size=3,
                                 unique=True))
        if len({type(i) for i in ids}) > 1:
            ids = ids[:1]
        self.col.delete_payload(ids, ["extra"])
        for i in ids:
            self.model[i][1].pop("extra", None)

    @rule(which=st.sampled_from(FILTERS), k=st.integers(1, 8), offset=st.integers(0, 3))
    def search(self, which, k, offset):
        q = self.rng.standard_normal(DIM).astype(np.float32)
        hits = self.col.search(q, k=k, filter=which, offset=offset)[0]
        node = parse_filter(which)
        allowed = [i for i, (_, p) in self.model.items() if node is None or matches(node, p, i)]
        dist = {i: float(np.sqrt(((self.model[i][0].astype(np.float64) - q) ** 2).sum())) for i in allowed}
        want = sorted(dist.values())[offset:offset + k]
        np.testing.assert_allclose(hits.scores, want, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose([dist[i] for i in hits.ids], hits.scores, rtol=1e-4, atol=1e-4)
        for p, i in zip(hits.payloads, hits.ids):
            assert p == self.model[i][1]

    @rule(which=st.sampled_from(FILTERS))
    def count(self, which):
        node = parse_filter(which)
        want = sum(1 for i, (_, p) in self.model.items() if node is None or matches(node, p, i))
        assert self.col.count(which) == want

    @rule()
    def close_and_reopen(self):
        self.db.close()
        self.db = voisin.connect(self.folder, durability="normal")
        self.col = self.db.get_collection("c")

    @rule()
    def checkpoint(self):
        self.col.checkpoint()

    @rule()
    def snapshot_and_restore(self):
        self.generation += 1
        snap = f"{self.root}/snap{self.generation}.voisin"
        self.db.snapshot(snap)
        self.db.close()
        self.folder = f"{self.root}/db{self.generation}"
        self.db = voisin.restore(snap, self.folder, durability="normal")
        self.col = self.db.get_collection("c")

    @invariant()
    def same_points(self):
        assert self.col.count() == len(self.model)
        recs = self.col.get(list(self.model)[:8] if all(isinstance(i, int) for i in list(self.model)[:8])
                            else [i for i in self.model if isinstance(i, int)][:8], with_vectors=True)
        for r in recs:
            v, p = self.model[r.id]
            assert r.payload == p
            np.testing.assert_array_equal(r.vector, v)
        seen, offset = [], None
        while True:
            page, offset = self.col.scroll(limit=7, offset=offset, with_payload=False)
            seen += [r.id for r in page]
            if offset is None:
                break
        ints = sorted(i for i in self.model if isinstance(i, int))
        assert seen == ints + sorted(i for i in self.model if isinstance(i, str))


TestCollectionMachine = CollectionMachine.TestCase
TestCollectionMachine.settings = settings(max_examples=12, stateful_step_count=30, deadline=None,
                                          suppress_health_check=[HealthCheck.too_slow],
                                          derandomize=True)
