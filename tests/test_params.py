"""voisin.ParameterSpace against faiss's: the same knob set on the same composition sets the same
values, the same names fail, and the ranges, combinations, operating points and criteria agree."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import voisin
from voisin.params import ParameterError, parameter_names

faiss = pytest.importorskip("faiss", reason="faiss-cpu is the oracle (test extra)")

D = 16
DESCRIPTIONS = ["Flat", "IVF16,Flat", "IVF16,PQ4", "IVF16,SQ8", "HNSW8", "PQ4", "SQ8", "HNSW8_SQ8", "PQ4x4fs",
                "HNSW8_SQ8,RFlat", "PCA8,HNSW8_SQ8,RFlat",
                "PCA8,IVF16,Flat", "IDMap,IVF16,Flat", "IDMap2,HNSW8", "IVF16,Flat,RFlat", "HNSW8,RFlat",
                "PCA8,HNSW8,RFlat", "IVF16,PQ4x4fs", "IVF16,PQ4x4fs,RFlat", "IDMap,IVF16,PQ4,RFlat",
                "PCA8,IVF16,Flat,RFlat", "IVF16,Flat,Refine(SQ8)", "IVF16_HNSW8,Flat"]
# (name, value) pairs tried on every composition; both libraries must accept or refuse alike
KNOBS = [("nprobe", 1), ("nprobe", 5), ("nprobe", 40), ("max_codes", 0), ("max_codes", 1000),
         ("max_codes", math.inf), ("efSearch", 7), ("efSearch", 64), ("efConstruction", 33),
         ("k_factor_rf", 1), ("k_factor_rf", 3), ("quantizer_efSearch", 48), ("quantizer_efConstruction", 21),
         ("quantizer_nprobe", 2), ("verbose", 1), ("ht", 64), ("bogus", 3)]


def build(desc: str, lib: str):
    """The same composition in voisin or faiss (voisin's factory has no IVF{n}_HNSW{M} token yet)."""
    if lib == "faiss":
        return faiss.index_factory(D, desc)
    if desc == "IVF16_HNSW8,Flat":
        return voisin.IndexIVFFlat(voisin.IndexHNSWFlat(D, 8), D, 16)
    return voisin.index_factory(D, desc)


def state(index, lib: str, prefix: str = "", out: dict | None = None) -> dict:
    """Every knob of a composition, read by walking its wrappers the same way in both libraries."""
    out = {} if out is None else out
    ix = faiss.downcast_index(index) if lib == "faiss" else index
    out[prefix + "verbose"] = bool(ix.verbose)
    if hasattr(ix, "count") and hasattr(ix, "at"):                  # IndexShards, IndexReplicas
        for i in range(ix.count()):
            state(ix.at(i), lib, f"{prefix}{i}:", out)
        if hasattr(ix, "quantizer"):                                # IndexShardsIVF
            state(ix.quantizer, lib, prefix + "quantizer_", out)
        return out
    if hasattr(ix, "id_map") or hasattr(ix, "chain"):              # IDMap, PreTransform
        return state(ix.index, lib, prefix, out)
    if hasattr(ix, "base_index"):                                   # Refine
        out[prefix + "k_factor"] = float(ix.k_factor)
        return state(ix.base_index, lib, prefix, out)
    if hasattr(ix, "nprobe"):                                       # IVF
        out[prefix + "nprobe"] = int(ix.nprobe)
        out[prefix + "max_codes"] = int(ix.max_codes)
        if hasattr(ix, "polysemous_ht") and "FastScan" not in type(ix).__name__:
            out[prefix + "polysemous_ht"] = int(ix.polysemous_ht)
        state(ix.quantizer, lib, prefix + "quantizer_", out)
    if hasattr(ix, "hnsw"):
        out[prefix + "efSearch"] = int(ix.hnsw.efSearch)
        out[prefix + "efConstruction"] = int(ix.hnsw.efConstruction)
    return out


def try_set(ps, index, name, value) -> bool:
    try:
        ps.set_index_parameter(index, name, value)
        return True
    except RuntimeError:   # faiss's error, and voisin's ParameterError is one too
        return False


def faiss_ps():
    ps = faiss.ParameterSpace()
    ps.verbose = 0
    return ps


# --------------------------------------------------------------------------------------
# setting knobs: the same values as faiss, through every wrapper
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("desc", DESCRIPTIONS)
def test_every_knob_through_every_wrapper_sets_what_faiss_sets(desc):
    fi, vi = build(desc, "faiss"), build(desc, "voisin")
    fps, vps = faiss_ps(), voisin.ParameterSpace()
    assert state(vi, "voisin") == state(fi, "faiss")          # same defaults to start from
    for name, value in KNOBS:
        f_ok = try_set(fps, fi, name, value)
        v_ok = try_set(vps, vi, name, value)
        assert v_ok == f_ok, (desc, name, value, f_ok)
        assert state(vi, "voisin") == state(fi, "faiss"), (desc, name, value)


@pytest.mark.parametrize("desc", ["IDMap,IVF16,PQ4,RFlat", "PCA8,IVF16,Flat,RFlat", "IVF16_HNSW8,Flat",
                                  "IDMap2,HNSW8"])
def test_a_parameter_string_sets_what_faiss_sets(desc):
    text = {"IDMap2,HNSW8": "efSearch=40 efConstruction=80",
            "IVF16_HNSW8,Flat": "nprobe=6,quantizer_efSearch=24,efConstruction=50,max_codes=inf"
            }.get(desc, "nprobe=9,k_factor_rf=5,max_codes=300")
    fi, vi = build(desc, "faiss"), build(desc, "voisin")
    faiss_ps().set_index_parameters(fi, text)
    voisin.ParameterSpace().set_index_parameters(vi, text)
    assert state(vi, "voisin") == state(fi, "faiss")


def test_documented_departures_from_faiss():
    # k_factor on a refine whose base has no k_factor: faiss refuses, voisin sets the re-rank factor
    fi, vi = build("IVF16,Flat,RFlat", "faiss"), build("IVF16,Flat,RFlat", "voisin")
    assert not try_set(faiss_ps(), fi, "k_factor", 4)
    voisin.ParameterSpace().set_index_parameter(vi, "k_factor", 2.5)
    assert vi.k_factor == 2.5
    # ht below the code size turns polysemous filtering on, as in faiss
    vi, fi = build("IVF16,PQ4", "voisin"), build("IVF16,PQ4", "faiss")
    for ht in (10, 40):
        voisin.ParameterSpace().set_index_parameter(vi, "ht", ht)
        faiss_ps().set_index_parameter(fi, "ht", ht)
        assert vi.polysemous_ht == fi.polysemous_ht
    # faiss's HNSW build knob prune_headroom has no counterpart in voisin's graph build
    assert try_set(faiss_ps(), build("HNSW8", "faiss"), "prune_headroom", 1)
    with pytest.raises(ParameterError, match="no parameter 'prune_headroom'"):
        voisin.ParameterSpace().set_index_parameter(build("HNSW8", "voisin"), "prune_headroom", 1)
    # faiss truncates a fractional nprobe; voisin refuses it
    with pytest.raises(ParameterError, match=r"nprobe: expected an integer >= 1, got 2.5"):
        voisin.ParameterSpace().set_index_parameter(vi, "nprobe", 2.5)


# --------------------------------------------------------------------------------------
# ranges and combinations
# --------------------------------------------------------------------------------------

def ranges(ps) -> list[tuple[str, list[float]]]:
    out = []
    for i in range(ps.parameter_ranges.size()):
        pr = ps.parameter_ranges.at(i)
        values = faiss.vector_to_array(pr.values).tolist() if hasattr(pr.values, "this") else list(pr.values)
        out.append((pr.name, values))
    return out


@pytest.mark.parametrize("desc", DESCRIPTIONS)
def test_initialize_gives_faiss_ranges(desc):
    # faiss's initialize does not look through IDMap (voisin does: compare with the wrapped index)
    inner = desc.replace("IDMap2,", "").replace("IDMap,", "")
    fps, vps = faiss_ps(), voisin.ParameterSpace()
    fps.initialize(build(inner, "faiss"))
    vps.initialize(build(desc, "voisin"))
    assert ranges(vps) == ranges(fps)


def test_combinations_match_faiss():
    desc = "IVF16_HNSW8,Flat"
    fps, vps = faiss_ps(), voisin.ParameterSpace()
    fi, vi = build(desc, "faiss"), build(desc, "voisin")
    fps.initialize(fi)
    vps.initialize(vi)
    n = vps.n_combinations()
    assert n == fps.n_combinations() == 4 * 8
    for cno in range(n):
        assert vps.combination_name(cno) == fps.combination_name(cno)
        vps.set_index_parameters(vi, cno)
        fps.set_index_parameters(fi, cno)
        assert state(vi, "voisin") == state(fi, "faiss")
        for other in range(0, n, 3):
            assert vps.combination_ge(cno, other) == fps.combination_ge(cno, other)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_any_combination_sets_exactly_its_values(data):
    index = voisin.IndexRefineFlat(voisin.IndexIVFFlat(voisin.IndexHNSWFlat(D, 8), D, 64))
    ps = voisin.ParameterSpace()
    ps.initialize(index)
    cno = data.draw(st.integers(0, ps.n_combinations() - 1))
    ps.set_index_parameters(index, cno)
    want = ps.combination(cno)
    got = {"k_factor_rf": index.k_factor, "nprobe": index.base_index.nprobe,
           "quantizer_efSearch": index.base_index.quantizer.hnsw.efSearch}
    assert got == want
    assert ps.combination_name(cno) == ",".join(f"{k}={v:g}" for k, v in want.items())


def build_sharded(kind: str, lib: str):
    """Two IVF members in IndexShards / IndexReplicas, or IndexShardsIVF over an HNSW quantizer."""
    m = faiss if lib == "faiss" else voisin
    members = [m.IndexIVFFlat(m.IndexFlatL2(D), D, 16) for _ in range(2)]
    if kind == "shards":
        outer = m.IndexShards(D)
        for x in members:
            outer.add_shard(x)
    elif kind == "replicas":
        outer = m.IndexReplicas(D)
        for x in members:
            outer.add_replica(x)
    else:
        members.append(m.IndexHNSWFlat(D, 8))
        outer = m.IndexShardsIVF(members[-1], 16)
        for x in members[:2]:
            outer.add_shard(x)
    return outer, members             # faiss's Python members must outlive their C++ owner


@pytest.mark.parametrize("kind", ["shards", "replicas", "shards_ivf"])
def test_shards_and_replicas_take_every_knob_as_faiss(kind):
    (fi, _keep), (vi, _) = build_sharded(kind, "faiss"), build_sharded(kind, "voisin")
    fps, vps = faiss_ps(), voisin.ParameterSpace()
    assert state(vi, "voisin") == state(fi, "faiss")
    for name, value in KNOBS:
        f_ok = try_set(fps, fi, name, value)
        v_ok = try_set(vps, vi, name, value)
        assert v_ok == f_ok, (kind, name, value, f_ok)
        assert state(vi, "voisin") == state(fi, "faiss"), (kind, name, value)


# --------------------------------------------------------------------------------------
# any index plugs in through sub_indexes()
# --------------------------------------------------------------------------------------

class Shards(voisin.Index):
    """The duck-typed shape a sharded index takes: sub-indexes and, for IVF shards, one quantizer."""

    def __init__(self, subs, quantizer=None):
        super().__init__(subs[0].d, subs[0].metric_type)
        self.subs = subs
        if quantizer is not None:
            self.quantizer = quantizer

    def sub_indexes(self):
        return list(self.subs)


def test_shards_receive_every_knob():
    q = voisin.IndexHNSWFlat(D, 8)
    subs = [voisin.IndexIVFFlat(q, D, 16) for _ in range(3)]
    index = voisin.IndexIDMap(Shards(subs, quantizer=q))
    ps = voisin.ParameterSpace()
    ps.set_index_parameters(index, "nprobe=7,quantizer_efSearch=30,max_codes=50")
    assert [s.nprobe for s in subs] == [7, 7, 7] and [s.max_codes for s in subs] == [50, 50, 50]
    assert q.hnsw.efSearch == 30
    assert {"nprobe", "quantizer_efSearch", "efSearch"} <= parameter_names(index)
    with pytest.raises(ParameterError, match="no parameter 'k_factor_rf'"):
        ps.set_index_parameter(index, "k_factor_rf", 2)
    ps.initialize(index)
    assert [r[0] for r in ranges(ps)] == ["nprobe", "quantizer_efSearch"]


# --------------------------------------------------------------------------------------
# bad input: one clear error, nothing half set
# --------------------------------------------------------------------------------------

def test_unknown_name_is_an_error_naming_it_and_what_exists():
    index = voisin.index_factory(D, "IDMap,IVF16,Flat")
    with pytest.raises(ParameterError) as exc:
        voisin.ParameterSpace().set_index_parameter(index, "efSearch", 10)
    msg = str(exc.value)
    assert "no parameter 'efSearch'" in msg and "IndexIVFFlat" in msg and "nprobe" in msg
    assert isinstance(exc.value, ValueError) and isinstance(exc.value, RuntimeError)


@pytest.mark.parametrize("name, value, match", [
    ("nprobe", 0, "nprobe: expected an integer >= 1, got 0"),
    ("nprobe", float("nan"), "nprobe: expected a number, got nan"),
    ("nprobe", "16", "nprobe: expected a number, got '16'"),
    ("nprobe", True, "nprobe: expected a number, got True"),
    ("max_codes", -5, "max_codes: expected an integer >= 0, got -5"),
    ("k_factor_rf", 0, "k_factor_rf: expected an integer >= 1, got 0"),
    ("k_factor", 0.5, "k_factor: expected a finite number >= 1, got 0.5"),
    ("quantizer_efSearch", 0, "efSearch: expected an integer >= 1, got 0"),
    ("", 1, "name: expected a parameter name"),
    (3, 1, "name: expected a parameter name"),
])
def test_bad_values_are_refused(name, value, match):
    index = voisin.IndexRefineFlat(voisin.IndexIVFFlat(voisin.IndexHNSWFlat(D, 8), D, 16))
    before = state(index, "voisin")
    with pytest.raises(ParameterError, match=match):
        voisin.ParameterSpace().set_index_parameter(index, name, value)
    assert state(index, "voisin") == before


def test_max_codes_inf_means_no_cap_and_ht_off_is_accepted():
    index = voisin.index_factory(D, "IVF16,PQ4")
    ps = voisin.ParameterSpace()
    ps.set_index_parameters(index, "max_codes=100")
    ps.set_index_parameter(index, "max_codes", float("inf"))
    ps.set_index_parameter(index, "ht", 32)   # = 4 bytes of code: filtering off
    assert index.max_codes == 0 and index.polysemous_ht == 0


def test_parameter_strings_are_checked_before_anything_is_set():
    index = voisin.index_factory(D, "IVF16,Flat,RFlat")
    ps = voisin.ParameterSpace()
    for text, match in [("nprobe=4,bogus=3", "no parameter 'bogus'"), ("nprobe=4 efSearch", "'efSearch'"),
                        ("nprobe=4,nprobe=x", "could not interpret 'nprobe=x'"),
                        ("nprobe=4,k_factor_rf=0.5", "k_factor_rf: expected an integer")]:
        with pytest.raises(ParameterError, match=match):
            ps.set_index_parameters(index, text)
        assert index.base_index.nprobe == 1 and index.k_factor == 1.0
    ps.set_index_parameters(index, "")          # nothing to set is not an error (as faiss)
    ps.set_index_parameters(index, {"nprobe": 3, "k_factor_rf": 2})
    assert (index.base_index.nprobe, index.k_factor) == (3, 2.0)
    with pytest.raises(ParameterError, match="description: expected"):
        ps.set_index_parameters(index, ["nprobe=3"])


def test_combination_numbers_are_checked():
    ps = voisin.ParameterSpace()
    ps.initialize(voisin.index_factory(D, "IVF16,Flat"))
    for cno in (-1, 4, True, 1.0):
        with pytest.raises(ParameterError, match=r"cno: expected a combination number in \[0, 4\)"):
            ps.combination_name(cno)


# --------------------------------------------------------------------------------------
# operating points and criteria, against faiss's
# --------------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.0, 0.2, 0.5, 0.5, 0.7, 0.9, 1.0]),
                          st.integers(1, 50).map(lambda t: t / 10)), max_size=25))
def test_operating_points_keep_faiss_pareto_front(points):
    f, v = faiss.OperatingPoints(), voisin.OperatingPoints()
    for i, (perf, t) in enumerate(points):
        assert v.add(perf, t, f"p{i}", i) == f.add(perf, t, f"p{i}", i)
    fopt = [(f.optimal_pts.at(i).perf, f.optimal_pts.at(i).t, f.optimal_pts.at(i).key, f.optimal_pts.at(i).cno)
            for i in range(f.optimal_pts.size())]
    vopt = [(p.perf, p.t, p.key, p.cno) for p in v.optimal_pts]
    assert vopt == fopt
    assert v.all_pts.size() == f.all_pts.size()
    for perf in (0.0, 0.3, 0.5, 0.95, 1.0, 1.5):
        assert v.t_for_perf(perf) == pytest.approx(f.t_for_perf(perf))


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_criteria_score_as_faiss(data):
    nq, R = data.draw(st.integers(1, 12)), data.draw(st.integers(1, 6))
    ids = st.integers(-1, 8)
    gt = np.array(data.draw(st.lists(st.lists(ids, min_size=R, max_size=R), min_size=nq, max_size=nq)), np.int64)
    I = np.array(data.draw(st.lists(st.lists(ids, min_size=R, max_size=R), min_size=nq, max_size=nq)), np.int64)
    Dz = np.zeros(I.shape, np.float32)
    for name in ("OneRecallAtRCriterion", "IntersectionCriterion"):
        fc, vc = getattr(faiss, name)(nq, R), getattr(voisin, name)(nq, R)
        fc.set_groundtruth(None, gt)
        vc.set_groundtruth(None, gt)
        # faiss's Python layer wraps set_groundtruth but not the subclasses' evaluate
        want = fc.evaluate(faiss.swig_ptr(Dz), faiss.swig_ptr(I))
        assert vc.evaluate(Dz, I) == pytest.approx(want), name


def test_criterion_refuses_wrong_shapes_and_missing_truth():
    crit = voisin.IntersectionCriterion(3, 2)
    with pytest.raises(ValueError, match="ground truth not initialized"):
        crit.evaluate(None, np.zeros((3, 2), np.int64))
    crit.set_groundtruth(None, np.zeros((3, 2), np.int64))
    with pytest.raises(ValueError, match=r"I: expected shape \(nq, nnn\) = \(3, 2\)"):
        crit.evaluate(None, np.zeros((3, 5), np.int64))
    with pytest.raises(ValueError, match="I: expected a 2-D integer array"):
        crit.set_groundtruth(None, np.zeros(3))


def test_explore_measures_what_a_direct_search_scores():
    rng = np.random.default_rng(1)
    xb = rng.standard_normal((3000, D)).astype(np.float32)
    xq = rng.standard_normal((60, D)).astype(np.float32)
    index = voisin.IndexRefineFlat(voisin.index_factory(D, "IVF32,SQ4"))
    index.train(xb)
    index.add(xb)
    _, gt = voisin.knn(xq, xb, 10)
    crit = voisin.IntersectionCriterion(60, 10)
    crit.set_groundtruth(None, gt)
    ps = voisin.ParameterSpace()
    ps.verbose = 0
    ps.initialize(index)
    ps.n_experiments = 0                      # every combination, no pruning
    full = ps.explore(index, xq, crit)
    assert full.all_pts.size() == ps.n_combinations() == 7 * 5
    ps.n_experiments = 500                    # faiss's default: prune with the points seen
    ops = ps.explore(index, xq, crit)
    assert 2 <= ops.all_pts.size() <= ps.n_combinations()
    for op in ops.all_pts:
        ps.set_index_parameters(index, op.cno)
        assert op.key == ps.combination_name(op.cno)
        assert op.perf == crit.evaluate(*index.search(xq, 10))
    perfs = [p.perf for p in ops.optimal_pts]
    assert perfs == sorted(perfs) and perfs[-1] == max(p.perf for p in ops.all_pts)
    with pytest.raises(ValueError, match="xq: expected crit.nq = 60 queries, got 10"):
        ps.explore(index, xq[:10], crit)
    ps.n_experiments = 2
    with pytest.raises(ParameterError, match="n_experiments"):
        ps.explore(index, xq, crit)
