"""Threaded stress tests: searcher threads race one writer thread.

The writer adds, replaces and removes vectors and records every operation
between two ticks of a global sequence counter (``start``, ``end``), together
with the full contents the index must hold once the operation is done (a
*version*). Each search records the ticks around its call. A search that ran
between ticks ``s0`` and ``s1`` may legitimately see version ``i`` when
operation ``i`` had started before the search ended and operation ``i + 1`` had
not finished before the search started; the answer must be the exact answer of
one such version (snapshot consistency: no mixture of two states, no garbage
id, no -1 in the middle, distances equal to the vector of the returned id).
Approximate searches (IVF with few probes, HNSW) must return ids and distances
of vectors live in one of those versions.

At the end every acknowledged add that was not removed must be found by
searching its own vector, every removed id must be gone, and ``serialize_index``
taken in the middle of the writes must load as one of the versions.

Each test runs its threads for a bounded time (``DURATION`` seconds) and then
checks everything recorded; an exception in any thread fails the test.
"""

from __future__ import annotations

import itertools
import threading
import time

import numpy as np
import pytest

import voisin
from conftest import distances_f64, tolerance
from test_stateful import check_result

DURATION = 1.0
D_DIM = 16
N_BASE = 64          # never removed: every search has at least K live vectors
K = 10


class Version:
    __slots__ = ("start", "end", "ids", "vecs")

    def __init__(self, start: int, end: int, ids: np.ndarray, vecs: np.ndarray):
        self.start, self.end, self.ids, self.vecs = start, end, ids, vecs


class Harness:
    """One index, its writer's model and the record of what every thread saw."""

    def __init__(self, index, kind: str, rng: np.random.Generator, codec=None):
        self.index, self.kind, self.rng, self.codec = index, kind, rng, codec
        self._tick = itertools.count(1)
        self._tick_lock = threading.Lock()
        self.model: dict[int, np.ndarray] = {}    # id -> vector (positions for "sequential")
        self.order: list[int] = []                # "sequential": the id at each position
        self.next_id = 0
        self.versions: list[Version] = []
        self.searches: list[tuple] = []
        self.blobs: list[tuple] = []
        self.removed: set[int] = set()
        self.errors: list[BaseException] = []
        self.reconstructs = 0
        self.stop = threading.Event()

    def tick(self) -> int:
        with self._tick_lock:
            return next(self._tick)

    def vectors(self, n: int) -> np.ndarray:
        # unit length: under inner product too a vector is its own nearest neighbour
        x = self.rng.standard_normal((n, D_DIM))
        if self.codec is not None:
            # a codec index stores exactly its decoded vectors: adding those
            # makes the model's vectors the stored ones (distinct codes: the
            # data look like the training data)
            return self.codec(self.index, x.astype(np.float32))
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    # -- the writer's side --------------------------------------------------
    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        if self.kind == "sequential":
            ids = np.arange(len(self.order), dtype=np.int64)
            vecs = np.array([self.model[u] for u in self.order], dtype=np.float32).reshape(-1, D_DIM)
        else:
            ids = np.array(sorted(self.model), dtype=np.int64)
            vecs = np.array([self.model[i] for i in ids.tolist()], dtype=np.float32).reshape(-1, D_DIM)
        return ids, vecs

    def record(self, start: int, end: int) -> None:
        ids, vecs = self.snapshot()
        self.versions.append(Version(start, end, ids, vecs))

    def add(self, n: int) -> None:
        x = self.vectors(n)
        new = list(range(self.next_id, self.next_id + n))
        self.next_id += n
        s = self.tick()
        if self.kind == "sequential":
            self.index.add(x)
            self.order.extend(new)
        else:
            self.index.add_with_ids(x, np.array(new, dtype=np.int64))
        for u, v in zip(new, x):
            self.model[u] = v
        self.record(s, self.tick())

    def replace(self, n: int) -> None:
        """IndexIDMap only: add_with_ids of live ids replaces their vectors."""
        cand = [i for i in self.model if i >= N_BASE]
        if not cand:
            return
        ids = self.rng.choice(np.array(cand), size=min(n, len(cand)), replace=False).astype(np.int64)
        x = self.vectors(ids.size)
        s = self.tick()
        self.index.add_with_ids(x, ids)
        for i, v in zip(ids.tolist(), x):
            self.model[i] = v
        self.record(s, self.tick())

    def remove(self, n: int) -> None:
        if self.kind == "sequential":
            cand = np.arange(N_BASE, len(self.order))
        else:
            cand = np.array([i for i in self.model if i >= N_BASE], dtype=np.int64)
        if cand.size == 0:
            return
        pick = self.rng.choice(cand, size=min(n, cand.size), replace=False).astype(np.int64)
        absent = np.array([self.next_id + 1000], dtype=np.int64)   # never added: not counted
        s = self.tick()
        removed = self.index.remove_ids(np.concatenate([pick, absent]))
        assert removed == pick.size, f"remove_ids returned {removed}, expected {pick.size}"
        if self.kind == "sequential":
            gone = set(pick.tolist())
            for p in sorted(gone, reverse=True):
                self.removed.add(self.order.pop(p))
            self.model = {u: self.model[u] for u in self.order}
        else:
            for i in pick.tolist():
                del self.model[i]
                self.removed.add(i)
        self.record(s, self.tick())

    def writer(self) -> None:
        ops = ["add", "add", "remove"] + (["replace"] if self.kind == "idmap" else [])
        while not self.stop.is_set():
            op = ops[int(self.rng.integers(0, len(ops)))]
            n = int(self.rng.integers(1, 9))
            getattr(self, op)(n)
            # keep the index from growing without bound in a long run
            if len(self.model) > 600:
                self.remove(64)

    # -- readers -------------------------------------------------------------
    def searcher(self, seed: int, params_list: list) -> None:
        rng = np.random.default_rng(seed)
        base = self.versions[0].vecs
        while not self.stop.is_set():
            nq = int(rng.choice([1, 4]))
            q = rng.standard_normal((nq, D_DIM)).astype(np.float32)
            q[0] = base[int(rng.integers(0, N_BASE))]  # an exact hit among the base vectors
            which = int(rng.integers(0, len(params_list)))
            s0 = self.tick()
            D, I = self.index.search(q, K, params_list[which][0])
            s1 = self.tick()
            self.searches.append((s0, s1, q, D, I, params_list[which][1]))

    def reconstructor(self) -> None:
        """reconstruct of base vectors (never removed or replaced) while the
        writer rebuilds storage: always exactly the vector that was added."""
        rng = np.random.default_rng(7)
        base_ids, base = self.versions[0].ids, self.versions[0].vecs
        while not self.stop.is_set():
            rows = rng.choice(N_BASE, size=4, replace=False)
            got = self.index.reconstruct_batch(base_ids[rows])
            if not np.array_equal(got, base[rows]):
                raise AssertionError(f"reconstruct of base ids {base_ids[rows]} returned other vectors")
            self.reconstructs += 1

    def serializer(self) -> None:
        while not self.stop.is_set():
            s0 = self.tick()
            blob = voisin.serialize_index(self.index)
            s1 = self.tick()
            self.blobs.append((s0, s1, blob))
            time.sleep(0.02)

    # -- running and checking -------------------------------------------------
    def _guard(self, fn, *args) -> None:
        try:
            fn(*args)
        except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
            self.errors.append(e)
            self.stop.set()

    def run(self, n_searchers: int, params_list: list, serialize: bool = False,
            reconstruct: bool = False) -> None:
        self.add(N_BASE)
        # compile the search kernels before the clock starts: on a cold numba cache
        # the searchers would otherwise spend the run compiling, holding the writer back
        warm = np.zeros((2, self.index.d), dtype=np.float32)
        for params, _ in params_list:
            self.index.search(warm, K, params)
        threads = [threading.Thread(target=self._guard, args=(self.writer,))]
        threads += [threading.Thread(target=self._guard, args=(self.searcher, 100 + t, params_list))
                    for t in range(n_searchers)]
        if serialize:
            threads.append(threading.Thread(target=self._guard, args=(self.serializer,)))
        if reconstruct:
            threads.append(threading.Thread(target=self._guard, args=(self.reconstructor,)))
        for t in threads:
            t.start()
        self.stop.wait(DURATION)
        self.stop.set()
        for t in threads:
            t.join(timeout=60)
            assert not t.is_alive(), "a thread did not stop"
        if self.errors:
            raise self.errors[0]

    def candidates(self, s0: int, s1: int) -> list[Version]:
        """Versions a call that ran between ticks s0 and s1 may have seen."""
        vs = self.versions
        out = []
        for i, v in enumerate(vs):
            if v.start > s1:
                break
            if i + 1 == len(vs) or vs[i + 1].end > s0:
                out.append(v)
        return out

    def check_searches(self, metric: int, limit: int = 2500) -> int:
        """Check the recorded searches (an even sample of ``limit`` of them:
        a run records more than the test time allows checking)."""
        assert self.searches, "no search completed"
        stride = -(-len(self.searches) // limit)
        for s0, s1, q, D, I, complete in self.searches[::stride]:
            cands = self.candidates(s0, s1)
            errs = []
            for v in cands:
                err = quick_mismatch(D, I, q, v, metric, complete)
                if err is None:
                    break
                errs.append(err)
            else:
                # the vectorised check found no match: the full checker says why
                try:
                    check_result(D, I, q, cands[0].ids, cands[0].vecs, np.ones(cands[0].ids.size, bool),
                                 K, metric, complete=complete)
                except AssertionError as e:
                    errs.insert(0, str(e))
                raise AssertionError(f"search between ticks {s0} and {s1} matches none of the "
                                     f"{len(cands)} versions it may have seen; first mismatch: {errs[0]}")
        return len(self.searches)

    def check_final(self, exhaustive) -> None:
        ids, vecs = self.snapshot()
        index = self.index
        assert index.ntotal == ids.size
        if self.kind != "sequential":
            np.testing.assert_array_equal(stored_ids(index), ids)
        # every acknowledged add that was not removed is found by its own vector
        D, I = index.search(vecs, 1, exhaustive)
        np.testing.assert_array_equal(I[:, 0], ids)
        self_dist = (vecs.astype(np.float64) ** 2).sum(1)   # inner product with itself
        if index.metric_type == voisin.METRIC_L2:
            self_dist[:] = 0.0
        np.testing.assert_allclose(D[:, 0], self_dist, atol=1e-5)
        np.testing.assert_array_equal(index.reconstruct_batch(ids), vecs)
        if self.kind != "sequential" and self.removed:
            gone = np.array(sorted(self.removed), dtype=np.int64)
            assert not np.isin(gone, ids).any()
            with pytest.raises(ValueError, match="key"):
                index.reconstruct(int(gone[0]))
            assert index.remove_ids(gone) == 0

    def check_blobs(self) -> int:
        for s0, s1, blob in self.blobs:
            loaded = voisin.deserialize_index(blob)
            ok = False
            for v in self.candidates(s0, s1):
                if loaded.ntotal != v.ids.size:
                    continue
                if self.kind != "sequential" and not np.array_equal(stored_ids(loaded), v.ids):
                    continue
                if v.ids.size and not np.array_equal(loaded.reconstruct_batch(v.ids), v.vecs):
                    continue
                ok = True
                break
            assert ok, f"serialize_index between ticks {s0} and {s1} saved a state that never existed"
        return len(self.blobs)


def stored_ids(index) -> np.ndarray:
    """The ids an id map or an IVF index holds, sorted (read from its storage)."""
    if isinstance(index, voisin.IndexIDMap):
        return np.sort(index.id_map)
    return np.sort(np.concatenate([index.invlists.get_ids(l) for l in range(index.nlist)]))


def quick_mismatch(D, I, q, v: Version, metric: int, complete: bool) -> str | None:
    """Why (D, I) is not an answer over version ``v`` (None when it is).

    A vectorised form of ``check_result`` (which checks each row in Python
    and is too slow for the thousands of searches a run records); the
    versions here hold distinct ids, sorted.
    """
    ip = metric == voisin.METRIC_INNER_PRODUCT
    n = v.ids.size
    valid = I >= 0
    m = valid.sum(1)
    if (valid != (np.arange(K)[None, :] < m[:, None])).any():
        return "-1 in the middle of a row"
    if complete and (m != min(K, n)).any():
        return f"{m} results where {min(K, n)} were expected"
    rows = np.searchsorted(v.ids, np.where(valid, I, 0))
    rows = np.minimum(rows, n - 1)
    if (valid & (v.ids[rows] != I)).any():
        return "an id that is not live in this version"
    s = np.sort(np.where(valid, I, -1 - np.arange(K)), axis=1)
    if (s[:, 1:] == s[:, :-1]).any():
        return "a duplicate id"
    dist = distances_f64(q, v.vecs, metric)
    tol = tolerance(q, v.vecs, metric)[:, None]
    got = np.take_along_axis(dist, rows, 1)
    Dv = D.astype(np.float64)
    if (valid & (np.abs(got - Dv) > tol)).any():
        return "a distance that is not the distance of its id"
    step = np.diff(np.where(valid, Dv, np.nan), axis=1)
    if ((-step if ip else step) < -tol).any():
        return "a row not sorted"
    if complete:
        cost = -dist if ip else dist
        kk = min(K, n)
        ref = np.sort(np.partition(cost, kk - 1, axis=1)[:, :kk], axis=1)
        ref = -ref if ip else ref
        if (np.abs(ref - Dv[:, :kk]) > tol).any():
            return "distances are not the k best of this version"
    return None


def _trained_ivf(metric=voisin.METRIC_L2):
    xt = np.random.default_rng(3).standard_normal((2000, D_DIM)).astype(np.float32)
    index = voisin.IndexIVFFlat(voisin.IndexFlat(D_DIM, metric), D_DIM, 8, metric)
    index.train(xt)
    return index


def _trained(index):
    index.train(np.random.default_rng(3).standard_normal((3000, D_DIM)).astype(np.float32))
    return index


def _sa_roundtrip(index, x):
    return index.sa_decode(index.sa_encode(x))


CASES = {
    "IDMap2Flat": (lambda: voisin.IndexIDMap2(voisin.IndexFlatL2(D_DIM)), "idmap",
                   lambda ix: [(None, True)], None),
    "IVFFlat": (_trained_ivf, "ivf",
                lambda ix: [(voisin.SearchParametersIVF(nprobe=ix.nlist), True),
                            (voisin.SearchParametersIVF(nprobe=2), False)],
                lambda ix: voisin.SearchParametersIVF(nprobe=ix.nlist)),
    "FlatL2": (lambda: voisin.IndexFlatL2(D_DIM), "sequential", lambda ix: [(None, True)], None),
    "FlatIP": (lambda: voisin.IndexFlatIP(D_DIM), "sequential", lambda ix: [(None, True)], None),
    "PQ": (lambda: _trained(voisin.IndexPQ(D_DIM, 8, 4)), "sequential", lambda ix: [(None, True)], None,
           _sa_roundtrip),
    "SQ8": (lambda: _trained(voisin.IndexScalarQuantizer(D_DIM, voisin.ScalarQuantizer.QT_8bit)),
            "sequential", lambda ix: [(None, True)], None, _sa_roundtrip),
    # k_factor large enough that the base returns every vector: exact re-ranking
    "RefineFlat": (lambda: _trained(voisin.IndexRefineFlat(voisin.IndexPQ(D_DIM, 8, 4), k_factor=100.0)),
                   "sequential", lambda ix: [(None, True)], None),
}


@pytest.mark.parametrize("name", list(CASES))
def test_searches_race_writes(name):
    make, kind, params_of, exhaustive_of, *codec = CASES[name]
    index = make()
    h = Harness(index, kind, np.random.default_rng(11), *codec)
    h.run(n_searchers=2, params_list=params_of(index), reconstruct=True)
    assert len(h.versions) > 20, "the writer barely ran"
    assert h.reconstructs > 0
    h.check_searches(index.metric_type)
    h.check_final(exhaustive_of(index) if exhaustive_of else None)


@pytest.mark.parametrize("name", ["IDMap2Flat", "IVFFlat", "FlatL2"])
def test_serialize_during_writes_loads_a_real_state(name):
    make, kind, params_of, exhaustive_of, *codec = CASES[name]
    index = make()
    h = Harness(index, kind, np.random.default_rng(12), *codec)
    h.run(n_searchers=1, params_list=params_of(index), serialize=True)
    assert h.check_blobs() > 5
    h.check_searches(index.metric_type)
    h.check_final(exhaustive_of(index) if exhaustive_of else None)


def test_hnsw_searches_race_writes():
    """IDMap2 over HNSW: approximate answers, but only live ids with their true distances."""
    index = voisin.IndexIDMap2(voisin.IndexHNSWFlat(D_DIM, 16))
    index.add_with_ids(np.zeros((2, D_DIM), np.float32), np.array([10 ** 9, 10 ** 9 + 1]))
    try:
        index.remove_ids(np.array([10 ** 9, 10 ** 9 + 1]))
    except NotImplementedError:
        pytest.skip("HNSW remove_ids not available")
    h = Harness(index, "idmap", np.random.default_rng(13))
    h.run(n_searchers=2, params_list=[(voisin.SearchParametersHNSW(efSearch=64), False)])
    h.check_searches(index.metric_type)
    ids, vecs = h.snapshot()
    assert index.ntotal == ids.size
    np.testing.assert_array_equal(np.sort(index.id_map), ids)
    np.testing.assert_array_equal(index.reconstruct_batch(ids), vecs)
    D, I = index.search(vecs, 1, voisin.SearchParametersHNSW(efSearch=128))
    # HNSW may miss a vector in principle; on 16-d data of this size it finds them all
    assert (I[:, 0] == ids).mean() >= 0.99
    gone = np.array(sorted(h.removed), dtype=np.int64)
    assert not np.isin(I, gone).any()


def test_harness_catches_a_torn_read():
    """The version check rejects an answer mixing two states (else every test above is void)."""
    index = voisin.IndexIDMap2(voisin.IndexFlatL2(D_DIM))
    h = Harness(index, "idmap", np.random.default_rng(1))
    h.add(N_BASE + 8)
    h.replace(8)
    old, new = h.versions
    # an answer computed on the old vectors but reported after the replacement
    # finished: the replaced ids' old distances match no version the call saw
    changed = np.flatnonzero(np.any(old.vecs != new.vecs, axis=1))
    q = old.vecs[changed[:1]]
    ref = voisin.IndexIDMap2(voisin.IndexFlatL2(D_DIM))
    ref.add_with_ids(old.vecs, old.ids)
    D, I = ref.search(q, K)
    s = h.tick()
    h.searches.append((s, h.tick(), q, D, I, True))
    with pytest.raises(AssertionError, match="matches none"):
        h.check_searches(voisin.METRIC_L2)
