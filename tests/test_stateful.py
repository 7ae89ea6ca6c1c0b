"""Stateful model tests (hypothesis): random add / add_with_ids / remove_ids /
search / reconstruct / reset / serialize / pickle sequences, per index family,
checked after every step against a brute-force model.

The model is a list of entries ``(id, vector)``; ``vector`` is what the index
stores *as decoded by its codec* (the raw vector for exact families), computed
independently of the index under test (``sa_encode``/``sa_decode`` or
``encode_vectors``/``decode_vectors``), so search distances can be checked
against it exactly up to float rounding.

Id semantics verified here, per family kind (all as FAISS):

``sequential`` (IndexFlat, IndexPQ, IndexScalarQuantizer, IndexPQFastScan,
    IndexRefineFlat, IndexPreTransform over Flat): ids are positions
    0..ntotal-1; ``add`` appends; ``add_with_ids`` is refused; ``remove_ids``
    (ids or selectors speak in positions) compacts, so every later vector's id
    shifts down by the number removed before it.
``idmap`` (IndexIDMap / IndexIDMap2 over Flat, PQ, SQ, HNSW): ids are the
    user's and never change; ``add`` is refused; ``add_with_ids`` of an id
    already present replaces its vector (voisin's documented update rule).
``ivf`` (IndexIVFFlat, IndexIVFScalarQuantizer, IndexIVFPQ,
    IndexIVFPQFastScan): each entry keeps the id it was added with; ``add``
    numbers from ``ntotal`` (so after a removal it can repeat a live id, as in
    FAISS); ``add_with_ids`` takes any ids and does not deduplicate;
    ``remove_ids`` removes every entry with a selected id.

What a search must satisfy: returned ids are live and allowed by the filter,
no id comes back more often than it is stored, the distance reported for an id
is the distance to (one of) its stored vectors, rows are sorted, padding is -1
with FAISS's worst distance. Exhaustive families (and IVF at nprobe = nlist)
must also return min(k, allowed) results whose distances are the k smallest of
an exact scan over the decoded vectors (ties: any tied id is accepted). The
fast-scan families quantize their look-up tables to 8 bits; their distances are
checked within the bound that quantization allows (computed from the tables).
"""

from __future__ import annotations

import functools
import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import voisin
from conftest import FLT_MAX, distances_f64, tolerance

D_DIM = 8
NLIST = 4
STATE_SETTINGS = settings(max_examples=8, stateful_step_count=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
                          derandomize=True)


@functools.lru_cache(maxsize=None)
def _train_data() -> np.ndarray:
    return np.random.default_rng(7).standard_normal((1200, D_DIM)).astype(np.float32)


def _hnsw_removable() -> bool:
    """Whether IndexHNSW supports remove_ids yet (engineer A's work in progress)."""
    ix = voisin.IndexHNSWFlat(D_DIM, 8)
    ix.add(np.zeros((2, D_DIM), np.float32))
    try:
        return ix.remove_ids(np.array([0], dtype=np.int64)) == 1
    except NotImplementedError:
        return False


# --------------------------------------------------------------------------- #
# families
# --------------------------------------------------------------------------- #
class Family:
    """How to build one index family and what its codec stores.

    ``make`` builds an untrained index; it is trained once per test session
    and cloned through the FAISS-format bytes for every example.
    """

    def __init__(self, name: str, kind: str, make, *, metric: int = voisin.METRIC_L2,
                 complete: bool = True, ivf: bool = False, fastscan: bool = False,
                 hnsw: bool = False, setup=None, refine: bool = False):
        self.name, self.kind, self.make, self.metric = name, kind, make, metric
        # knobs FAISS's bytes do not carry, set again on every fresh or loaded copy
        self.setup = setup or (lambda index: index)
        self.complete = complete      # exhaustive: min(k, allowed) results, exact k smallest
        self.ivf = ivf                # full-probe search is exhaustive
        self.fastscan = fastscan      # distances within the LUT quantization bound
        self.hnsw = hnsw
        self.refine = refine          # an IndexRefineFlat over the HNSW: knobs of its base

    def hnsw_params(self, ef: int, sel):
        if self.refine:
            return voisin.SearchParametersRefine(
                sel=sel, base_index_params=voisin.SearchParametersHNSW(efSearch=ef))
        return voisin.SearchParametersHNSW(efSearch=ef, sel=sel)

    @functools.cached_property
    def template(self) -> bytes:
        index = self.make()
        if not index.is_trained:
            index.train(_train_data())
        return voisin.serialize_index(index).tobytes()

    def fresh(self) -> voisin.Index:
        return self.setup(voisin.deserialize_index(np.frombuffer(self.template, dtype=np.uint8)))

    # -- the codec, computed independently of the index's add path ---------
    def decode(self, index, x: np.ndarray) -> np.ndarray:
        """What ``index`` stores for ``x``, in the space searches measure in."""
        inner = index.index if isinstance(index, voisin.IndexIDMap) else index
        if isinstance(inner, voisin.IndexPreTransform):
            return inner.apply_chain(x)
        if isinstance(inner, voisin.IndexIVF):
            lists = inner.quantizer.assign(x, 1)[:, 0]
            return inner.decode_vectors(inner.encode_vectors(x, lists), lists)
        if isinstance(inner, (voisin.IndexPQ, voisin.IndexScalarQuantizer)):
            return inner.sa_decode(inner.sa_encode(x))
        if isinstance(inner, voisin.IndexHNSWSQ):
            return inner.sq.decode(inner.sq.encode(x))
        return x.copy()  # Flat, HNSWFlat, RefineFlat (re-ranks on raw vectors)

    def query_space(self, index, q: np.ndarray) -> np.ndarray:
        if isinstance(index, voisin.IndexPreTransform):
            return index.apply_chain(q)
        return q

    def stored_to_user(self, index, v: np.ndarray) -> np.ndarray:
        """What ``reconstruct`` returns for a stored (search-space) vector."""
        if isinstance(index, voisin.IndexPreTransform):
            return index.reverse_chain(v)
        return v

    def lut_error(self, index, q: np.ndarray) -> np.ndarray:
        """Per-query bound on |fast-scan distance - ADC distance| (0 elsewhere).

        Tables are quantized to uint8 with one scale a per query and list:
        each of the M entries summed is off by at most 0.5 / a.
        """
        if not self.fastscan:
            return np.zeros(q.shape[0])
        pq = index.pq
        cent = pq.centroids.astype(np.float64)               # (M, ksub, dsub)
        M, dsub = cent.shape[0], cent.shape[2]
        M2 = M + (M & 1)
        if isinstance(index, voisin.IndexIVF):
            c = index.quantizer.reconstruct_n(0, index.nlist).astype(np.float64)
            res = q[:, None, :].astype(np.float64) - c[None]   # (nq, nlist, d)
        else:
            res = q[:, None, :].astype(np.float64)
        r = res.reshape(res.shape[0], res.shape[1], M, 1, dsub)
        lut = ((r - cent[None, None]) ** 2).sum(-1)          # (nq, L, M, ksub)
        span = lut.max(-1) - lut.min(-1)                     # (nq, L, M)
        inv_a = np.maximum(span.max(-1) / 255.0, span.sum(-1) / (65535 - M2))
        return (0.5 * M * inv_a + 1e-5 * lut.max(-1).sum(-1)).max(-1) * 1.01


def _ivf(cls, **kw):
    return lambda: cls(voisin.IndexFlatL2(D_DIM), D_DIM, NLIST, **kw)


FAMILIES = {
    "FlatL2": Family("FlatL2", "sequential", lambda: voisin.IndexFlatL2(D_DIM)),
    "FlatIP": Family("FlatIP", "sequential", lambda: voisin.IndexFlatIP(D_DIM),
                     metric=voisin.METRIC_INNER_PRODUCT),
    "IDMapFlat": Family("IDMapFlat", "idmap", lambda: voisin.IndexIDMap(voisin.IndexFlatL2(D_DIM))),
    "IDMap2FlatIP": Family("IDMap2FlatIP", "idmap", lambda: voisin.IndexIDMap2(voisin.IndexFlatIP(D_DIM)),
                           metric=voisin.METRIC_INNER_PRODUCT),
    "IVFFlat": Family("IVFFlat", "ivf", _ivf(voisin.IndexIVFFlat), complete=False, ivf=True),
    "IVFSQ8": Family("IVFSQ8", "ivf", _ivf(voisin.IndexIVFScalarQuantizer,
                                          qtype=voisin.ScalarQuantizer.QT_8bit),
                     complete=False, ivf=True),
    "IVFPQ": Family("IVFPQ", "ivf", lambda: voisin.IndexIVFPQ(voisin.IndexFlatL2(D_DIM), D_DIM, NLIST, 4, 4),
                    complete=False, ivf=True),
    "IVFPQFastScan": Family("IVFPQFastScan", "ivf",
                            lambda: voisin.IndexIVFPQFastScan(voisin.IndexFlatL2(D_DIM), D_DIM, NLIST, 4, 4),
                            complete=False, ivf=True, fastscan=True),
    "PQ": Family("PQ", "sequential", lambda: voisin.IndexPQ(D_DIM, 4, 4)),
    "PQFastScan": Family("PQFastScan", "sequential", lambda: voisin.IndexPQFastScan(D_DIM, 4, 4),
                         fastscan=True),
    "SQ8": Family("SQ8", "sequential",
                  lambda: voisin.IndexScalarQuantizer(D_DIM, voisin.ScalarQuantizer.QT_8bit)),
    "SQ4": Family("SQ4", "sequential",
                  lambda: voisin.IndexScalarQuantizer(D_DIM, voisin.ScalarQuantizer.QT_4bit)),
    # k_factor so large that the PQ base returns every vector: the re-ranking
    # on raw vectors then makes the answer exact
    "RefineFlat": Family("RefineFlat", "sequential",
                         lambda: voisin.IndexRefineFlat(voisin.IndexPQ(D_DIM, 4, 4), k_factor=1000.0)),
    "PreTransformFlat": Family("PreTransformFlat", "sequential",
                               lambda: voisin.IndexPreTransform(voisin.RandomRotationMatrix(D_DIM, D_DIM),
                                                                voisin.IndexFlatL2(D_DIM))),
    "IDMap2PQ": Family("IDMap2PQ", "idmap", lambda: voisin.IndexIDMap2(voisin.IndexPQ(D_DIM, 4, 4))),
    "IDMap2SQ8": Family("IDMap2SQ8", "idmap", lambda: voisin.IndexIDMap2(
        voisin.IndexScalarQuantizer(D_DIM, voisin.ScalarQuantizer.QT_8bit))),
    "HNSWFlat": Family("HNSWFlat", "sequential", lambda: voisin.IndexHNSWFlat(D_DIM, 8),
                       complete=False, hnsw=True),
    "IDMap2HNSW": Family("IDMap2HNSW", "idmap", lambda: voisin.IndexIDMap2(voisin.IndexHNSWFlat(D_DIM, 8)),
                         complete=False, hnsw=True),
    "HNSWSQ8": Family("HNSWSQ8", "sequential",
                      lambda: voisin.IndexHNSWSQ(D_DIM, voisin.ScalarQuantizer.QT_8bit, 8),
                      complete=False, hnsw=True),
    # walks on SQ8 codes (of a 4-d PCA projection) with the exact re-rank fused in
    "HNSWSQ8RFlat": Family("HNSWSQ8RFlat", "sequential",
                           lambda: voisin.IndexRefineFlat(
                               voisin.IndexHNSWSQ(D_DIM, voisin.ScalarQuantizer.QT_8bit, 8), 2.0),
                           complete=False, hnsw=True, refine=True),
    "PCAHNSWSQ8RFlat": Family("PCAHNSWSQ8RFlat", "sequential",
                              lambda: voisin.IndexRefineFlat(voisin.IndexPreTransform(
                                  voisin.PCAMatrix(D_DIM, 4),
                                  voisin.IndexHNSWSQ(4, voisin.ScalarQuantizer.QT_8bit, 8)), 4.0),
                              complete=False, hnsw=True, refine=True),
}


# --------------------------------------------------------------------------- #
# the result checker
# --------------------------------------------------------------------------- #
def check_result(D, I, xq, ids, vecs, allowed, k, metric, *, complete: bool, extra_tol=None) -> None:
    """(D, I) is a consistent answer over entries (ids, vecs), ``allowed`` a
    mask over the entries; ``complete``: it must also be the exact top-k."""
    nq = xq.shape[0]
    assert D.shape == (nq, k) and I.shape == (nq, k)
    assert D.dtype == np.float32 and I.dtype == np.int64
    ip = metric == voisin.METRIC_INNER_PRODUCT
    worst = -FLT_MAX if ip else FLT_MAX
    ids_a, vecs_a = ids[allowed], vecs[allowed]
    n_allowed = ids_a.size
    if n_allowed:
        dist = distances_f64(xq, vecs_a, metric)
        tol = tolerance(xq, vecs_a, metric)
    else:
        dist, tol = np.zeros((nq, 0)), np.zeros(nq)
    if extra_tol is not None:
        tol = tol + extra_tol
    live_count: dict[int, int] = {}
    for i in ids_a.tolist():
        live_count[i] = live_count.get(i, 0) + 1
    for q in range(nq):
        row_i, row_d = I[q], D[q].astype(np.float64)
        m = int((row_i >= 0).sum())
        assert (row_i[:m] >= 0).all() and (row_i[m:] == -1).all(), f"-1 in the middle of a row: {row_i}"
        assert (D[q, m:] == worst).all(), f"padding distances must be {worst}: {D[q]}"
        assert m <= min(k, n_allowed)
        if complete:
            assert m == min(k, n_allowed), f"{m} results, expected {min(k, n_allowed)}: {row_i}"
        seen: dict[int, int] = {}
        for j in range(m):
            i = int(row_i[j])
            assert i in live_count, f"id {i} is not live (or not allowed): live {sorted(live_count)}"
            seen[i] = seen.get(i, 0) + 1
            assert seen[i] <= live_count[i], f"id {i} returned {seen[i]} times, stored {live_count[i]}"
            gap = np.abs(dist[q, ids_a == i] - row_d[j]).min()
            assert gap <= tol[q], f"D={row_d[j]} is not the distance of id {i} (off by {gap})"
        step = np.diff(row_d[:m])
        assert ((-step if ip else step) >= -1e-6 * np.abs(row_d[:m]).max(initial=1.0)).all(), \
            f"row not sorted: {row_d[:m]}"
        if complete and m:
            ref = np.sort(-dist[q] if ip else dist[q])[:m]
            ref = -ref if ip else ref
            bad = np.abs(ref - row_d[:m]) > tol[q]
            assert not bad.any(), f"distances {row_d[:m]} are not the {m} best {ref}"


# --------------------------------------------------------------------------- #
# the state machine
# --------------------------------------------------------------------------- #
class IndexMachine(RuleBasedStateMachine):
    """Random operation sequences on one index against a list-of-entries model."""

    family: Family

    def __init__(self) -> None:
        super().__init__()
        fam = self.family
        self.index = fam.fresh()
        self.ids = np.empty(0, dtype=np.int64)
        self.vecs = np.empty((0, D_DIM), dtype=np.float32)    # decoded, search space
        self.raw = np.empty((0, D_DIM), dtype=np.float32)     # what the user added

    # -- model helpers --------------------------------------------------------
    def _vectors(self, seed: int, n: int, dup: bool) -> np.ndarray:
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((n, D_DIM)).astype(np.float32)
        if dup and self.raw.shape[0]:
            # exact copies of stored vectors: distance ties, identical codes
            rows = rng.integers(0, self.raw.shape[0], n)
            take = rng.random(n) < 0.5
            x[take] = self.raw[rows[take]]
        return x

    def _append(self, ids: np.ndarray, x: np.ndarray) -> None:
        self.ids = np.concatenate([self.ids, ids])
        self.vecs = np.concatenate([self.vecs, self.family.decode(self.index, x)])
        self.raw = np.concatenate([self.raw, x])

    def _keep(self, keep: np.ndarray) -> None:
        self.ids, self.vecs, self.raw = self.ids[keep], self.vecs[keep], self.raw[keep]
        if self.family.kind == "sequential":
            self.ids = np.arange(self.ids.size, dtype=np.int64)

    def _pick_ids(self, rng: np.random.Generator, frac_live: float, n: int) -> np.ndarray:
        """Distinct ids, about ``frac_live`` of them live, the rest absent."""
        live = np.unique(self.ids)
        out = set()
        if live.size:
            out.update(rng.choice(live, size=min(live.size, max(0, int(round(n * frac_live)))),
                                  replace=False).tolist())
        while len(out) < n:
            out.add(int(rng.integers(0, 300)) if rng.random() < 0.8 else int(rng.integers(2 ** 40, 2 ** 41)))
        return np.array(sorted(out), dtype=np.int64)

    # -- rules ----------------------------------------------------------------
    @rule(seed=st.integers(0, 2 ** 32 - 1), n=st.integers(1, 12), dup=st.booleans())
    def add(self, seed, n, dup):
        x = self._vectors(seed, n, dup)
        if self.family.kind == "idmap":
            with pytest.raises(NotImplementedError, match="add_with_ids"):
                self.index.add(x)
            return
        n0 = self.index.ntotal
        self.index.add(x)
        self._append(np.arange(n0, n0 + n, dtype=np.int64), x)

    @rule(seed=st.integers(0, 2 ** 32 - 1), n=st.integers(1, 10), frac_live=st.sampled_from([0.0, 0.3, 1.0]),
          dup=st.booleans())
    def add_with_ids(self, seed, n, frac_live, dup):
        rng = np.random.default_rng(seed)
        x = self._vectors(seed + 1, n, dup)
        ids = rng.permutation(self._pick_ids(rng, frac_live, n))
        if self.family.kind == "sequential":
            with pytest.raises(NotImplementedError, match="IndexIDMap"):
                self.index.add_with_ids(x, ids)
            return
        self.index.add_with_ids(x, ids)
        if self.family.kind == "idmap":  # an existing id is replaced
            self._keep(~np.isin(self.ids, ids))
        self._append(ids, x)

    @rule(seed=st.integers(0, 2 ** 32 - 1), n=st.integers(1, 8), frac_live=st.sampled_from([0.0, 0.5, 1.0]),
          how=st.sampled_from(["array", "batch", "range", "not", "bitmap"]))
    def remove_ids(self, seed, n, frac_live, how):
        rng = np.random.default_rng(seed)
        if how == "range":
            lo = int(rng.integers(0, 60))
            sel = voisin.IDSelectorRange(lo, lo + int(rng.integers(0, 20)))
            gone = (self.ids >= sel.imin) & (self.ids < sel.imax)
        elif how == "bitmap":
            bits = rng.random(64) < 0.2
            sel = voisin.IDSelectorBitmap(np.packbits(bits, bitorder="little"))
            gone = (self.ids < 64) & bits[np.clip(self.ids, 0, 63)]
        else:
            picked = self._pick_ids(rng, frac_live, n)
            if how == "not":  # remove everything except the picked ids
                sel = voisin.IDSelectorNot(voisin.IDSelectorBatch(picked))
                gone = ~np.isin(self.ids, picked)
            else:
                sel = picked if how == "array" else voisin.IDSelectorBatch(picked)
                gone = np.isin(self.ids, picked)
        removed = self.index.remove_ids(sel)
        assert removed == int(gone.sum()), f"remove_ids returned {removed}, expected {int(gone.sum())}"
        self._keep(~gone)

    @rule(seed=st.integers(0, 2 ** 32 - 1), k=st.integers(1, 12), nq=st.sampled_from([1, 3, 7]),
          filtered=st.booleans())
    def search(self, seed, k, nq, filtered):
        rng = np.random.default_rng(seed)
        fam, index = self.family, self.index
        q = rng.standard_normal((nq, D_DIM)).astype(np.float32)
        if self.raw.shape[0]:  # stored vectors as queries: exact hits and ties
            rows = rng.integers(0, self.raw.shape[0], nq)
            take = rng.random(nq) < 0.5
            q[take] = self.raw[rows[take]]
        sel, allowed = None, np.ones(self.ids.size, dtype=bool)
        if filtered:
            picked = self._pick_ids(rng, 0.6, int(rng.integers(1, 12)))
            sel = voisin.IDSelectorBatch(picked)
            allowed = np.isin(self.ids, picked)
        qs = fam.query_space(index, q)
        extra = fam.lut_error(index, qs)
        kw = dict(complete=fam.complete, extra_tol=extra)
        if fam.hnsw:
            params = fam.hnsw_params(max(16, k), sel)
        elif fam.ivf:
            params = voisin.SearchParametersIVF(sel=sel)
        else:
            params = voisin.SearchParameters(sel=sel) if filtered else None
        D, I = index.search(q, k, params)
        check_result(D, I, qs, self.ids, self.vecs, allowed, k, fam.metric, **kw)
        if fam.ivf:  # every list probed: an exhaustive scan of the decoded vectors
            D, I = index.search(q, k, voisin.SearchParametersIVF(nprobe=NLIST, sel=sel))
            check_result(D, I, qs, self.ids, self.vecs, allowed, k, fam.metric, complete=True, extra_tol=extra)
        if fam.hnsw and self.ids.size:  # efSearch >= ntotal: HNSW finds every reachable vector
            D, I = index.search(q, k, fam.hnsw_params(max(k, 256), sel))
            check_result(D, I, qs, self.ids, self.vecs, allowed, k, fam.metric, complete=False)

    @precondition(lambda self: self.ids.size > 0)
    @rule(seed=st.integers(0, 2 ** 32 - 1))
    def reconstruct(self, seed):
        rng = np.random.default_rng(seed)
        e = int(rng.integers(0, self.ids.size))
        key = int(self.ids[e])
        got = self.index.reconstruct(key)
        want = self.family.stored_to_user(self.index, self.vecs[self.ids == key])
        # an IVF id added twice reconstructs one of its entries
        err = np.abs(want - got[None]).max(axis=1).min()
        assert err <= 1e-5 * (1 + np.abs(want).max()), f"reconstruct({key}) off by {err}"
        keys = rng.choice(np.unique(self.ids), size=min(3, np.unique(self.ids).size), replace=False)
        batch = self.index.reconstruct_batch(keys)
        assert batch.shape == (keys.size, D_DIM)
        absent = int(self.ids.max()) + 1 if self.family.kind != "sequential" else self.ids.size
        with pytest.raises(ValueError, match="key"):
            self.index.reconstruct(absent)

    @rule()
    def reset(self):
        self.index.reset()
        self._keep(np.zeros(self.ids.size, dtype=bool))

    @rule()
    def serialize_roundtrip(self):
        blob = voisin.serialize_index(self.index)
        loaded = voisin.deserialize_index(blob)
        assert type(loaded) is type(self.index)
        self._same_contents(loaded)
        self.index = self.family.setup(loaded)  # later rules keep working on the loaded copy

    @rule()
    def pickle_roundtrip(self):
        loaded = pickle.loads(pickle.dumps(self.index))
        self._same_contents(loaded)
        self.index = loaded

    def _same_contents(self, other) -> None:
        assert other.ntotal == self.index.ntotal
        if self.ids.size:
            keys = np.unique(self.ids)
            np.testing.assert_array_equal(other.reconstruct_batch(keys), self.index.reconstruct_batch(keys))
        if isinstance(self.index, voisin.IndexIDMap):
            np.testing.assert_array_equal(other.id_map, self.index.id_map)

    # -- invariants -------------------------------------------------------------
    @invariant()
    def counts_match(self):
        assert self.index.ntotal == self.ids.size, (self.index.ntotal, self.ids.size)
        if isinstance(self.index, voisin.IndexIDMap):
            np.testing.assert_array_equal(np.sort(self.index.id_map), np.sort(self.ids))
        if isinstance(self.index, voisin.IndexIVF):
            got = np.sort(np.concatenate([self.index.invlists.get_ids(l) for l in range(NLIST)]))
            np.testing.assert_array_equal(got, np.sort(self.ids))


def _machine_test(name: str):
    fam = FAMILIES[name]
    machine = type(f"{name}Machine", (IndexMachine,), {"family": fam})

    def test():
        if fam.hnsw and not _hnsw_removable():
            pytest.skip("HNSW remove_ids not available")
        machine.TestCase.settings = STATE_SETTINGS
        machine.TestCase("runTest").runTest()

    test.__name__ = f"test_stateful_{name}"
    test.__doc__ = f"{name}: random add/remove/update/search/save/load sequences vs the brute-force model."
    return test


for _name in FAMILIES:
    globals()[f"test_stateful_{_name}"] = _machine_test(_name)
del _name


# --------------------------------------------------------------------------- #
# the checker itself must catch wrong answers (a checker that accepts
# everything would make every machine above pass)
# --------------------------------------------------------------------------- #
def test_checker_rejects_wrong_answers():
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((20, D_DIM)).astype(np.float32)
    ids = np.arange(100, 120, dtype=np.int64)
    q = rng.standard_normal((2, D_DIM)).astype(np.float32)
    index = voisin.IndexIDMap(voisin.IndexFlatL2(D_DIM))
    index.add_with_ids(vecs, ids)
    D, I = index.search(q, 5)
    allowed = np.ones(20, bool)
    check_result(D, I, q, ids, vecs, allowed, 5, voisin.METRIC_L2, complete=True)
    bad = [(D, np.where(I == I[0, 0], 7, I)),                       # an id that is not live
           (D, np.concatenate([I[:, :1], I[:, :1], I[:, 2:]], 1)),  # a duplicate
           (D[:, ::-1].copy(), I[:, ::-1].copy()),                  # not sorted
           (D + 0.5, I)]                                            # wrong distances
    D2, I2 = D.copy(), I.copy()
    D2[:, 2], I2[:, 2] = FLT_MAX, -1                                # -1 in the middle
    bad.append((D2, I2))
    for Db, Ib in bad:
        with pytest.raises(AssertionError):
            check_result(Db, Ib, q, ids, vecs, allowed, 5, voisin.METRIC_L2, complete=True)
    # a valid but incomplete answer passes only when completeness is not required
    D3, I3 = D.copy(), I.copy()
    D3[:, 4], I3[:, 4] = FLT_MAX, -1
    check_result(D3, I3, q, ids, vecs, allowed, 5, voisin.METRIC_L2, complete=False)
    with pytest.raises(AssertionError):
        check_result(D3, I3, q, ids, vecs, allowed, 5, voisin.METRIC_L2, complete=True)
