"""voisin.bench: the stronger peers (scann, ngt, voyager), paired sweeps and the ann-benchmarks presets.

Each adapter is built on a tiny random set and judged against brute force;
a test whose library is missing skips, naming the package.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import voisin
from voisin import datasets
from voisin.bench import adapters, run
from voisin.bench.ngt_adapter import qbg_command, set_properties
from voisin.bench.presets import PRESETS, preset_specs
from voisin.bench.scann_adapter import ScannAdapter
from voisin.bench.spec import IndexSpec, default_sweep, knob_applies, parse_spec, resolve_sweeps

N, D, NQ = 2000, 16, 40


def needs_library(library: str) -> None:
    if not adapters.is_installed(library):
        pytest.skip(f"{adapters.MODULES[library][1]} is not installed (bench extra)")


@pytest.fixture(scope="module")
def tiny():
    rng = np.random.default_rng(11)
    xb = datasets.normalized(rng.standard_normal((N, D)))
    xq = datasets.normalized(rng.standard_normal((NQ, D)))
    ref, _ = datasets.ground_truth(xb, xq, 10, "euclidean")  # unit vectors: L2 order == IP order
    return xb, xq, ref


def recall(ids: np.ndarray, ref: np.ndarray) -> float:
    return float(np.mean([len(set(ids[i]) & set(ref[i])) / ref.shape[1] for i in range(ref.shape[0])]))


# generous settings: each should find nearly every true neighbour
GENEROUS = [
    ("scann:num_leaves=40 dims_per_block=2", {"leaves_to_search": 20, "reorder": 200}),
    ("ngt:ONNG edge_size_for_creation=20 outdegree=10 indegree=30", {"epsilon": 0.1}),
    ("ngt:ANNG edge_size_for_creation=20", {"epsilon": 0.1, "edge_size": 0}),
    ("voyager:M=12 ef_construction=100", {"ef": 100}),
]


@pytest.mark.parametrize("text, point", GENEROUS)
@pytest.mark.parametrize("metric", [voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT])
def test_peer_answers_like_brute_force(tiny, text, point, metric):
    xb, xq, ref = tiny
    spec = parse_spec(text)
    needs_library(spec.library)
    a = adapters.make_adapter(spec, D, metric)
    a.set_threads(2)
    a.build(xb)
    for name, value in point.items():
        a.set_query_param(name, value)
    I = a.search_batch(xq, 10)
    assert I.shape == (NQ, 10) and I.dtype == np.int64
    one = np.stack([a.search_one(xq[i:i + 1], 10) for i in range(NQ)])
    assert one.shape == (NQ, 10) and one.dtype == np.int64
    assert recall(I, ref) >= 0.9 and recall(one, ref) >= 0.9
    assert np.mean(I == one) >= 0.9
    assert ((I >= 0) & (I < N)).all()
    nbytes, how = a.memory_bytes()
    # every one keeps the float vectors (for re-ranking or the walk) next to its graph or codes
    assert nbytes >= N * D * 4 and how
    assert a.version


@pytest.mark.parametrize("text, knob, low, high", [
    ("scann:num_leaves=40 dims_per_block=2 reorder=100", "leaves_to_search", 1, 40),
    ("ngt:ONNG edge_size_for_creation=20 outdegree=10 indegree=30", "epsilon", -0.5, 0.2),
    ("voyager:M=8 ef_construction=60", "ef", 10, 200),
])
def test_query_knob_trades_speed_for_recall(tiny, text, knob, low, high):
    # the knob reaches the library: a wider search finds at least as many neighbours
    xb, xq, ref = tiny
    spec = parse_spec(text)
    needs_library(spec.library)
    a = adapters.make_adapter(spec, D, voisin.METRIC_INNER_PRODUCT)
    a.build(xb)
    if spec.library == "scann":
        a.set_query_param("reorder", 100)
    a.set_query_param(knob, low)
    r_low = recall(a.search_batch(xq, 10), ref)
    a.set_query_param(knob, high)
    r_high = recall(a.search_batch(xq, 10), ref)
    assert r_high >= 0.9 and r_high > r_low


@pytest.mark.parametrize("text, match", [
    ("scann:num_leaves=40 bogus=3", "unknown scann build parameter 'bogus'"),
    ("scann:num_leaves=5000", "num_leaves must be between 1 and the 2000 vectors"),
    ("scann:spherical=3", "spherical: expected true or false"),
    ("ngt:ONNG bogus=3", "unknown ngt build parameter 'bogus'"),
    ("ngt:ONNG outdegree=0", "outdegree must be >= 1"),
    ("ngt:ANNG tree=7", "tree: expected true or false"),
    ("voyager:bogus=3", "unknown voyager build parameter 'bogus'"),
    ("voyager:storage=int4", "storage must be one of"),
])
def test_bad_build_parameter_is_a_value_error(tiny, text, match):
    spec = parse_spec(text)
    needs_library(spec.library)
    with pytest.raises(ValueError, match=match):
        a = adapters.make_adapter(spec, D, voisin.METRIC_L2)
        a.build(tiny[0])


@pytest.mark.parametrize("text, name", [
    ("scann:num_leaves=40", "efSearch"), ("ngt:ONNG edge_size_for_creation=10", "result_expansion"),
    ("voyager:M=8", "expansion_search"),
])
def test_bad_query_parameter_is_a_value_error(text, name):
    spec = parse_spec(text)
    needs_library(spec.library)
    a = adapters.make_adapter(spec, D, voisin.METRIC_L2)
    with pytest.raises(ValueError, match=f"got '{name}'"):
        a.set_query_param(name, 4)


def test_scann_rejects_a_nonpositive_knob():
    needs_library("scann")
    a = adapters.make_adapter(parse_spec("scann:num_leaves=4"), D, voisin.METRIC_L2)
    with pytest.raises(ValueError, match="leaves_to_search must be >= 1"):
        a.set_query_param("leaves_to_search", 0)


def test_scann_short_answers_become_minus_one():
    # ScaNN pads an answer shorter than k with NaN distances; the harness's convention is id -1
    a = ScannAdapter.__new__(ScannAdapter)
    ids = np.array([[4, 7, 0, 0]], dtype=np.uint32)
    dist = np.array([[0.1, 0.2, np.nan, np.nan]], dtype=np.float32)
    assert a._ids(ids, dist, 5).tolist() == [[4, 7, -1, -1, -1]]


@pytest.mark.parametrize("library", ["scann", "ngt", "voyager"])
def test_missing_library_is_skipped_with_its_package_name(monkeypatch, library):
    monkeypatch.setattr(adapters, "is_installed", lambda lib: False)
    spec = parse_spec(f"{library}:" if library != "ngt" else "ngt:ONNG")
    with pytest.raises(adapters.LibraryMissing, match=f"pip install {adapters.MODULES[library][1]}"):
        adapters.make_adapter(spec, D, voisin.METRIC_L2)


def test_ngt_qg_without_qbg_is_skipped_saying_why(monkeypatch, tmp_path):
    needs_library("ngt")
    monkeypatch.setenv("VOISIN_QBG", str(tmp_path / "no-such-qbg"))
    assert qbg_command() is None
    with pytest.raises(adapters.LibraryMissing, match="NGT-QG needs NGT's qbg command"):
        adapters.make_adapter(parse_spec("ngt:QG"), D, voisin.METRIC_L2)
    fake = tmp_path / "qbg"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("VOISIN_QBG", str(fake))
    assert qbg_command() == str(fake)


def test_run_skips_qg_and_benchmarks_the_rest(monkeypatch, tmp_path):
    needs_library("voyager")
    monkeypatch.setenv("VOISIN_QBG", str(tmp_path / "none"))
    ds = datasets.synthetic(n=1500, nq=20, d=8, k=10, metric="angular", seed=3)
    result = run(ds, ["ngt:QG", *preset_specs("voyager-glove/M-8")], modes=["batch"], repeat=1, min_time=0.0)
    reasons = {s["spec"]: s["reason"] for s in result["skipped"]}
    assert "qbg" in reasons["ngt:QG"] or "not installed" in reasons["ngt:QG"]
    (rec,) = result["indexes"]
    assert rec["spec"] == "voyager:M=8 ef_construction=500 [ann-benchmarks M-8]"
    pts = rec["modes"]["batch"]["points"]
    assert [p["params"]["ef"] for p in pts] == [10, 20, 40, 80, 120, 200, 400, 600, 800]
    assert pts[-1]["recall"] >= 0.99 and rec["memory"]["bytes_per_vector"] >= 8 * 4


def test_run_paired_sweep_end_to_end():
    needs_library("scann")
    ds = datasets.synthetic(n=2000, nq=20, d=8, k=10, seed=4)
    result = run(ds, ["scann:num_leaves=30 leaves_to_search+reorder=2:20,30:100"], modes=["single"], repeat=1,
                 min_time=0.0)
    (rec,) = result["indexes"]
    assert rec["sweep"] == {"leaves_to_search+reorder": [[2, 20], [30, 100]]}
    pts = rec["modes"]["single"]["points"]
    assert [p["params"] for p in pts] == [{"leaves_to_search": 2, "reorder": 20},
                                          {"leaves_to_search": 30, "reorder": 100}]
    assert pts[1]["recall"] >= 0.95 and pts[1]["recall"] >= pts[0]["recall"]
    json.dumps(result)  # the record stays JSON-ready


def test_cli_preset_option(tmp_path):
    needs_library("voyager")
    click_testing = pytest.importorskip("click.testing")
    pytest.importorskip("rich")
    pytest.importorskip("h5py")
    from voisin.bench.command import bench
    ds = datasets.synthetic(n=1200, nq=20, d=8, k=10, seed=5, metric="angular", name="tiny-8-angular")
    datasets.save(tmp_path / "tiny-8-angular.hdf5", ds)
    out = tmp_path / "res.json"
    res = click_testing.CliRunner().invoke(
        bench, ["--dataset", str(tmp_path / "tiny-8-angular.hdf5"), "--preset", "voyager-glove/M-4",
                "--mode", "batch", "--repeat", "1", "--min-time", "0", "--out", str(out), "--no-plot", "--quiet"])
    assert res.exit_code == 0, res.output
    saved = json.loads(out.read_text())
    assert [r["spec"] for r in saved["indexes"]] == ["voyager:M=4 ef_construction=500 [ann-benchmarks M-4]"]
    bad = click_testing.CliRunner().invoke(bench, ["--dataset", str(tmp_path / "tiny-8-angular.hdf5"),
                                                   "--preset", "scann-glove/scann9"])
    assert bad.exit_code != 0 and "no group 'scann9'" in bad.output
    none = click_testing.CliRunner().invoke(bench, ["--dataset", str(tmp_path / "tiny-8-angular.hdf5")])
    assert none.exit_code != 0 and "--preset" in none.output


# --------------------------------------------------------------------------- #
# specs: the new libraries and paired sweeps
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("text, lib, desc, build, sweep", [
    ("scann:num_leaves=2000 dims_per_block=2", "scann", "", {"num_leaves": 2000, "dims_per_block": 2}, {}),
    ("scann:leaves_to_search=10,20", "scann", "", {}, {"leaves_to_search": [10, 20]}),
    ("ngt:qg max_edge=96", "ngt", "QG", {"max_edge": 96}, {}),
    ("ngt:outdegree=10", "ngt", "ONNG", {"outdegree": 10}, {}),
    ("ngt:ONNG epsilon+edge_size=0.0:-2,0.1:-2", "ngt", "ONNG", {}, {"epsilon+edge_size": [(0.0, -2), (0.1, -2)]}),
    ("voyager:M=16 ef=10", "voyager", "", {"M": 16}, {"ef": [10]}),
])
def test_parse_new_library_specs(text, lib, desc, build, sweep):
    s = parse_spec(text)
    assert (s.library, s.description, s.build_params, s.sweep) == (lib, desc, build, sweep)


@pytest.mark.parametrize("text, match", [
    ("ngt:HNSW", "NGT graph must be one of ANNG, ONNG, QG"),
    ("voyager:HNSW16 M=8", "takes only key=value"),
    ("scann:leaves_to_search+reorder=1:2:3", "should give 2 values joined by ':'"),
    ("scann:leaves_to_search+reorder=1", "should give 2 values"),
    ("scann:num_leaves+reorder=1:2", "must join query knobs of scann"),
    ("scann:reorder+reorder=1:2", "not a valid parameter name"),
    ("scann:reorder=10 leaves_to_search+reorder=1:2", "given twice"),
])
def test_parse_errors_of_new_specs(text, match):
    with pytest.raises(ValueError, match=match):
        parse_spec(text)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5000), st.integers(1, 5000)), min_size=1, max_size=12))
def test_paired_sweep_keeps_the_pairs_in_order(pairs):
    text = "scann:num_leaves=10 leaves_to_search+reorder=" + ",".join(f"{a}:{b}" for a, b in pairs)
    points = parse_spec(text).sweep_points()
    assert points == [{"leaves_to_search": a, "reorder": b} for a, b in pairs]


def test_paired_and_plain_sweeps_combine_as_a_product():
    s = parse_spec("ngt:QG result_expansion+epsilon=2:0.0,3:0.02 edge_size=5")
    assert s.build_params == {} and len(s.sweep_points()) == 2
    assert s.sweep_points()[1] == {"result_expansion": 3, "epsilon": 0.02, "edge_size": 5}


def test_knobs_apply_by_graph_kind_and_resolve():
    qg, onng = parse_spec("ngt:QG"), parse_spec("ngt:ONNG")
    assert knob_applies(qg, "result_expansion") and not knob_applies(onng, "result_expansion")
    assert knob_applies(onng, "edge_size") and not knob_applies(qg, "edge_size")
    assert knob_applies(qg, "result_expansion+epsilon") and not knob_applies(onng, "result_expansion+epsilon")
    out = resolve_sweeps([qg, onng, parse_spec("voyager:M=8")], {"result_expansion+epsilon": [(2, 0.0)],
                                                                   "ef": [10, 20]})
    assert out[0].sweep == {"result_expansion+epsilon": [(2, 0.0)]}
    assert out[1].sweep == default_sweep(onng)
    assert out[2].sweep == {"ef": [10, 20]}
    # a spec's own knob wins over a global pair that names it
    own = resolve_sweeps([parse_spec("ngt:QG epsilon=0.1"), parse_spec("ngt:QG sample=100")],
                         {"result_expansion+epsilon": [(2, 0.0)]})
    assert own[0].sweep == {"epsilon": [0.1]} and own[1].sweep == {"result_expansion+epsilon": [(2, 0.0)]}
    with pytest.raises(ValueError, match="no index spec uses this knob"):
        resolve_sweeps([onng], {"result_expansion+epsilon": [(2, 0.0)]})


@pytest.mark.parametrize("library", ["scann", "ngt", "voyager"])
def test_default_sweeps_of_new_libraries(library):
    spec = parse_spec(f"{library}:" if library != "ngt" else "ngt:QG")
    sweep = default_sweep(spec)
    assert sweep and all(knob_applies(spec, k) for k in sweep)


# --------------------------------------------------------------------------- #
# presets
# --------------------------------------------------------------------------- #
def test_presets_parse_with_unique_labels():
    labels = []
    for name, groups in PRESETS.items():
        specs = preset_specs(name)
        assert len(specs) == len(groups)
        for spec in specs:
            assert isinstance(spec, IndexSpec) and spec.sweep and spec.text.startswith(spec.library + ":")
            assert "[ann-benchmarks " in spec.label
            labels.append(spec.label)
    assert len(labels) == len(set(labels))


def test_preset_grids_match_ann_benchmarks():
    (s1,) = preset_specs("scann-glove/scann1")
    assert s1.build_params["num_leaves"] == 2000 and s1.build_params["anisotropic_quantization_threshold"] == 0.2
    assert s1.build_params["dims_per_block"] == 2 and len(s1.sweep_points()) == 25
    assert s1.sweep_points()[-1] == {"leaves_to_search": 800, "reorder": 1000}
    qg = preset_specs("ngt-qg-glove/s4000-e0.04")[0]
    assert qg.description == "QG" and qg.build_params["sample"] == 4000
    assert qg.build_params["epsilon_for_creation"] == 0.04 and qg.build_params["max_edge"] == 96
    # ann-benchmarks' [result_expansion, 1 + epsilon] -> NGT's epsilon
    assert qg.sweep_points()[0] == {"result_expansion": 0.0, "epsilon": -0.1}
    assert qg.sweep_points()[-1] == {"result_expansion": 8, "epsilon": 0.04}
    onng = preset_specs("ngt-onng-glove/e0.1-with-refinement")[0]
    assert onng.build_params["refine"] is True and onng.build_params["tree"] is False
    assert onng.sweep_points()[-1] == {"epsilon": 0.02, "edge_size": 40}
    assert [s.build_params["M"] for s in preset_specs("voyager-glove")] == [4, 8, 12, 16, 24, 36, 48, 64, 96]


@pytest.mark.parametrize("name, match", [("scann-sift", "unknown; known presets"),
                                         ("voyager-glove/M-5", "no group 'M-5'")])
def test_unknown_presets_are_errors(name, match):
    with pytest.raises(ValueError, match=match):
        preset_specs(name)
    with pytest.raises(TypeError, match="preset"):
        preset_specs(3)


# --------------------------------------------------------------------------- #
# NGT property file
# --------------------------------------------------------------------------- #
def test_set_properties_rewrites_and_adds(tmp_path):
    (tmp_path / "prf").write_text("Dimension\t16\nEpsilonForCreation\t0.1\nBatchSizeForCreation\t200\n")
    set_properties(str(tmp_path), {"EpsilonForCreation": 0.02, "BatchSizeForCreation": 500, "BuildTimeLimit": 4.0})
    lines = (tmp_path / "prf").read_text().splitlines()
    assert lines == ["Dimension\t16", "EpsilonForCreation\t0.02", "BatchSizeForCreation\t500", "BuildTimeLimit\t4.0"]


def test_ngt_build_epsilon_reaches_the_index(tiny):
    needs_library("ngt")
    a = adapters.make_adapter(parse_spec("ngt:ANNG edge_size_for_creation=12 epsilon_for_creation=0.05"), D,
                              voisin.METRIC_L2)
    a.build(tiny[0])
    prf = dict(line.split("\t", 1) for line in open(os.path.join(a.path, "prf")).read().splitlines())
    assert float(prf["EpsilonForCreation"]) == 0.05 and prf["EdgeSizeForCreation"] == "12"
    assert prf["BatchSizeForCreation"] == "500"
