"""voisin.bench: spec parsing, sweeps, frontier maths, adapters, and small end-to-end runs."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

import voisin
from conftest import dataset_path
from voisin import datasets
from voisin.bench import adapters, run
from voisin.bench.frontier import pareto_frontier, qps_at_recall
from voisin.bench.spec import IndexSpec, default_sweep, parse_spec, parse_value, resolve_sweeps



def needs(*modules: str) -> None:
    for m in modules:
        pytest.importorskip(m, reason=f"{m} is not installed (bench extra)")


# --------------------------------------------------------------------------- #
# specs and sweeps
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("text, lib, desc, build, sweep", [
    ("voisin:Flat", "voisin", "Flat", {}, {}),
    ("faiss:Flat", "faiss", "Flat", {}, {}),
    ("faiss:HNSW32 efConstruction=200", "faiss", "HNSW32", {"efConstruction": 200}, {}),
    ("voisin:HNSW32 efConstruction=200", "voisin", "HNSW32", {"efConstruction": 200}, {}),
    ("faiss:IVF1024,Flat", "faiss", "IVF1024,Flat", {}, {}),
    ("hnswlib:M=16 efConstruction=200", "hnswlib", "", {"M": 16, "efConstruction": 200}, {}),
    ("pynndescent:n_neighbors=30", "pynndescent", "", {"n_neighbors": 30}, {}),
    ("usearch:connectivity=16 expansion_add=200", "usearch", "", {"connectivity": 16, "expansion_add": 200}, {}),
    ("  FAISS:IVF256,PQ16x4fs   nprobe=4,8 ", "faiss", "IVF256,PQ16x4fs", {}, {"nprobe": [4, 8]}),
    ("hnswlib:M=8 ef=50", "hnswlib", "", {"M": 8}, {"ef": [50]}),
    ("pynndescent:epsilon=0.1,0.2", "pynndescent", "", {}, {"epsilon": [0.1, 0.2]}),
])
def test_parse_spec(text, lib, desc, build, sweep):
    s = parse_spec(text)
    assert (s.library, s.description, s.build_params, s.sweep) == (lib, desc, build, sweep)


@pytest.mark.parametrize("text, match", [
    ("Flat", "LIB:DESCRIPTION"),
    ("annoy:n_trees=10", "LIB:DESCRIPTION"),
    ("faiss:", "factory description"),
    ("faiss:efSearch=10", "factory description"),
    ("hnswlib:HNSW32", "only key=value"),
    ("faiss:HNSW32 Flat", "neither the description"),
    ("faiss:HNSW32 efSearch=", "key=value"),
    ("faiss:HNSW32 efSearch=1,,2", "empty value"),
    ("faiss:HNSW32 2x=3", "not a valid parameter name"),
    ("faiss:HNSW32 efSearch=1 efSearch=2", "given twice"),
])
def test_parse_spec_errors(text, match):
    with pytest.raises(ValueError, match=match):
        parse_spec(text)
    with pytest.raises(TypeError):
        parse_spec(3)


def test_parse_value():
    assert [parse_value(v) for v in ("12", "0.5", "True", "fp16")] == [12, 0.5, True, "fp16"]


def test_default_sweeps():
    assert default_sweep(parse_spec("voisin:Flat")) == {}
    assert default_sweep(parse_spec("faiss:HNSW32"))["efSearch"][0] == 16
    assert default_sweep(parse_spec("faiss:IVF16,Flat")) == {"nprobe": [1, 2, 4, 8, 16]}
    assert "ef" in default_sweep(parse_spec("hnswlib:M=16"))
    assert "epsilon" in default_sweep(parse_spec("pynndescent:n_neighbors=10"))
    assert "expansion_search" in default_sweep(parse_spec("usearch:connectivity=8"))


def test_resolve_sweeps_applies_global_knobs_where_they_mean_something():
    specs = [parse_spec(t) for t in ("voisin:Flat", "faiss:HNSW32", "voisin:HNSW32 efSearch=8",
                                     "faiss:IVF64,Flat", "hnswlib:M=8")]
    out = resolve_sweeps(specs, ["efSearch=10,20", "ef=5"])
    assert out[0].sweep == {}                           # Flat has no knob
    assert out[1].sweep == {"efSearch": [10, 20]}       # the global sweep
    assert out[2].sweep == {"efSearch": [8]}            # the spec's own knob wins
    assert out[3].sweep == {"nprobe": [1, 2, 4, 8, 16, 32, 64]}  # default, efSearch is not an IVF knob
    assert out[4].sweep == {"ef": [5]}
    with pytest.raises(ValueError, match="no index spec uses"):
        resolve_sweeps(specs[:1], ["nprobe=1,2"])
    assert resolve_sweeps(specs[3:4], {"nprobe": [3]})[0].sweep == {"nprobe": [3]}


def test_sweep_points_cartesian_product():
    s = IndexSpec("x", "faiss", "IVF4_HNSW8,Flat", {}, {"nprobe": [1, 2], "quantizer_efSearch": [8, 16, 32]})
    pts = s.sweep_points()
    assert len(pts) == 6 and pts[0] == {"nprobe": 1, "quantizer_efSearch": 8}
    assert parse_spec("voisin:Flat").sweep_points() == [{}]


# --------------------------------------------------------------------------- #
# frontier
# --------------------------------------------------------------------------- #
def test_pareto_frontier_drops_dominated_points():
    pts = [(0.5, 100), (0.6, 90), (0.55, 80), (0.6, 95), (0.9, 10), (0.9, 10), (0.4, 50)]
    assert pareto_frontier(pts) == [(0.5, 100.0), (0.6, 95.0), (0.9, 10.0)]
    assert pareto_frontier([]) == []


def test_qps_at_recall_interpolates_on_the_frontier():
    pts = [(0.80, 1000.0), (0.92, 400.0), (0.85, 300.0), (0.99, 50.0)]
    r = qps_at_recall(pts, 0.90)
    assert r["method"] == "interpolated" and r["between"] == [[0.8, 1000.0], [0.92, 400.0]]
    assert r["qps"] == pytest.approx(1000 + (0.10 / 0.12) * (400 - 1000))
    assert qps_at_recall(pts, 0.92) == {"qps": 400.0, "method": "frontier point", "between": [[0.92, 400.0]]}
    # every point above the target: the fastest of them, no extrapolation
    assert qps_at_recall([(0.97, 30.0), (0.99, 20.0)], 0.9)["qps"] == 30.0
    miss = qps_at_recall(pts, 0.995)
    assert miss["qps"] is None and miss["method"] == "not reached" and miss["max_recall"] == 0.99


# --------------------------------------------------------------------------- #
# adapters
# --------------------------------------------------------------------------- #
def test_set_index_param_walks_the_wrapper_chain():
    # the harness sets knobs through voisin.ParameterSpace, which recurses as FAISS does
    outer = voisin.IndexIDMap(voisin.IndexHNSWFlat(8, 8))
    adapters.set_index_param(outer, "efSearch", 64)
    adapters.set_index_param(outer, "efConstruction", 200)
    assert (outer.index.hnsw.efSearch, outer.index.hnsw.efConstruction) == (64, 200)
    refine = voisin.index_factory(8, "IVF16,Flat,RFlat")
    adapters.set_index_param(refine, "nprobe", 8)
    adapters.set_index_param(refine, "k_factor", 4)
    assert (refine.base_index.nprobe, refine.k_factor) == (8, 4)
    with pytest.raises(ValueError, match="no parameter 'ef'"):
        adapters.set_index_param(outer, "ef", 10)


def test_numpy_nbytes_counts_shared_buffers_once():
    a = np.zeros(1000, np.float32)
    obj = SimpleNamespace(a=a, view=a[10:], more=[np.zeros(10, np.int64), {"x": a}], s="text")
    assert adapters.numpy_nbytes(obj) == 4000 + 80
    flat = voisin.IndexFlatL2(8)
    flat.add(np.zeros((2000, 8), np.float32))
    assert adapters.numpy_nbytes(flat) >= 2000 * 8 * 4


@pytest.mark.parametrize("text", ["voisin:Flat", "voisin:HNSW16 efConstruction=40", "voisin:IVF16,Flat",
                                  "faiss:Flat", "faiss:HNSW16 efConstruction=40",
                                  "faiss:IVF16,Flat", "hnswlib:M=8 efConstruction=40",
                                  "usearch:connectivity=8 expansion_add=40"])
@pytest.mark.parametrize("metric", [voisin.METRIC_L2, voisin.METRIC_INNER_PRODUCT])
def test_adapters_answer_like_brute_force(text, metric):
    spec = parse_spec(text)
    if not adapters.is_installed(spec.library):
        pytest.skip(f"{spec.library} not installed")
    if spec.library == "voisin" and spec.description != "Flat" and not hasattr(voisin, "index_factory"):
        pytest.skip("voisin.index_factory not in this build")
    rng = np.random.default_rng(5)
    xb = datasets.normalized(rng.standard_normal((1500, 16)))
    xq = datasets.normalized(rng.standard_normal((30, 16)))
    a = adapters.make_adapter(spec, 16, metric)
    a.set_threads(2)
    a.build(xb)
    for name, values in default_sweep(spec).items():
        a.set_query_param(name, values[-1])  # the most accurate setting
    I = a.search_batch(xq, 10)
    assert I.shape == (30, 10) and I.dtype == np.int64
    one = np.stack([a.search_one(xq[i:i + 1], 10) for i in range(30)])
    assert one.shape == (30, 10) and one.dtype == np.int64
    ref, _ = datasets.ground_truth(xb, xq, 10, "euclidean")  # unit vectors: L2 order == IP order
    overlap = np.mean([len(set(I[i]) & set(ref[i])) / 10 for i in range(30)])
    assert overlap >= 0.95
    assert np.mean(I == one) >= 0.95
    nbytes, how = a.memory_bytes()
    assert nbytes >= 1500 * 16 * 4 * 0.9 and how
    assert a.version


def test_unknown_build_parameters_are_errors():
    needs("faiss", "hnswlib")  # hnswlib has no wheels, so CI (test extra) goes without it
    with pytest.raises(ValueError, match="unknown hnswlib build parameter"):
        adapters.make_adapter(parse_spec("hnswlib:M=8 bogus=3"), 4, voisin.METRIC_L2).build(np.ones((10, 4), np.float32))
    a = adapters.make_adapter(parse_spec("faiss:Flat"), 4, voisin.METRIC_L2)
    a.build(np.ones((10, 4), np.float32))
    with pytest.raises(ValueError, match="efSearch"):
        a.set_query_param("efSearch", 10)
    with pytest.raises(ValueError, match="metric"):
        adapters.make_adapter(parse_spec("faiss:Flat"), 4, 7)


def test_k_factor_reaches_the_refine_wrapper_on_both_sides():
    # faiss's ParameterSpace calls IndexRefine's factor "k_factor_rf"; the
    # adapter maps the harness's k_factor so both libraries re-rank alike
    needs("faiss")
    rng = np.random.default_rng(6)
    xb = rng.random((3000, 16), dtype=np.float32)
    for text in ("faiss:IVF16,PQ8x4fs,RFlat", "voisin:IVF16,PQ8x4fs,RFlat"):
        a = adapters.make_adapter(parse_spec(text), 16, voisin.METRIC_L2)
        a.build(xb)
        a.set_query_param("nprobe", 4)
        a.set_query_param("k_factor", 6)
        if text.startswith("faiss"):
            import faiss
            assert faiss.downcast_index(a.index).k_factor == 6
            assert faiss.extract_index_ivf(a.index).nprobe == 4
        else:
            assert a.index.k_factor == 6 and a.index.base_index.nprobe == 4
        assert a.search_batch(xb[:5], 3)[:, 0].tolist() == list(range(5))


# --------------------------------------------------------------------------- #
# end to end
# --------------------------------------------------------------------------- #
TOP_KEYS = {"schema", "created", "machine", "dataset", "settings", "recall_definition", "qps_definition",
            "interpolation", "targets", "indexes", "skipped", "ratios", "best_ratios", "files"}


def test_run_flat_vs_faiss_flat(tmp_path):
    needs("faiss")
    ds = datasets.synthetic(n=3000, nq=60, d=24, k=20, seed=1)
    result = run(ds, ["voisin:Flat", "faiss:Flat"], modes=("single", "batch"), k=10, queries=40,
                 repeat=2, min_time=0.0, out_dir=tmp_path)
    assert TOP_KEYS <= set(result)
    assert result["dataset"]["queries"] == 40 and "seeded random subset" in result["dataset"]["query_selection"]
    m = result["machine"]
    assert m["cores"] >= 1 and m["versions"]["numpy"] and m["versions"]["faiss-cpu"]
    assert [r["spec"] for r in result["indexes"]] == ["voisin:Flat", "faiss:Flat"]
    for rec in result["indexes"]:
        assert rec["build_s"] > 0 and rec["jit_s"] >= 0 and rec["memory"]["bytes_per_vector"] >= 24 * 4
        for mode, threads in (("single", 1), ("batch", result["settings"]["batch_threads"])):
            mm = rec["modes"][mode]
            assert mm["threads"] == threads
            (p,) = mm["points"]
            assert p["recall"] == 1.0 and p["recall_ids"] == 1.0
            assert len(p["seconds_runs"]) == 2 and p["qps_min"] <= p["qps"] <= p["qps_max"]
            assert p["cpu_utilisation"] > 0 and p["passes_runs"] == [1, 1]
            assert mm["qps_at_recall"]["0.95"]["qps"] == p["qps"]
            assert mm["frontier"] == [{"recall": 1.0, "qps": p["qps"]}]
    (best,) = result["best_ratios"]["batch"]["0.95"]
    assert best["peer_library"] == "faiss" and best["voisin"] == "voisin:Flat"
    (pair,) = result["ratios"]["single"]["0.90"]
    assert pair["voisin"] == "voisin:Flat" and pair["peer"] == "faiss:Flat"
    assert pair["ratio"] == pytest.approx(pair["voisin_qps"] / pair["peer_qps"])
    saved = json.loads(open(result["files"]["json"]).read())
    assert saved["indexes"][0]["modes"]["batch"]["points"][0]["recall"] == 1.0
    assert saved["files"]["json"].startswith(str(tmp_path))
    if result["files"]["png"]:
        assert open(result["files"]["png"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    # the saved JSON is enough to redraw tables and plot without re-running
    from voisin.bench import report
    assert report.main([result["files"]["json"], str(tmp_path / "again.png")]) in (0, 1)
    assert report.main([]) == 2


def test_run_angular_graph_sweep_and_skips(tmp_path, monkeypatch):
    needs("faiss")
    ds = datasets.synthetic(n=2000, nq=30, d=12, k=10, metric="angular", seed=2)
    real = adapters.is_installed
    monkeypatch.setattr(adapters, "is_installed", lambda lib: lib != "pynndescent" and real(lib))
    result = run(ds, ["faiss:HNSW16 efConstruction=40", "pynndescent:n_neighbors=10", "voisin:NoSuchIndex7"],
                 modes=["batch"], repeat=1, sweep=["efSearch=4,64"], min_time=0.0)
    assert "files" not in result  # nothing written without out/out_dir
    reasons = {s["spec"]: s["reason"] for s in result["skipped"]}
    assert "not installed" in reasons["pynndescent:n_neighbors=10"]
    assert "build failed" in reasons["voisin:NoSuchIndex7"]
    (rec,) = result["indexes"]
    pts = rec["modes"]["batch"]["points"]
    assert [p["params"] for p in pts] == [{"efSearch": 4}, {"efSearch": 64}]
    assert pts[1]["recall"] >= 0.95 and pts[1]["recall"] >= pts[0]["recall"]
    assert result["ratios"]["batch"]["0.90"] == []


def test_run_argument_errors():
    ds = datasets.synthetic(n=100, nq=5, d=4, k=10)
    with pytest.raises(ValueError, match="modes"):
        run(ds, ["voisin:Flat"], modes=["offline"])
    with pytest.raises(ValueError, match="twice"):
        run(ds, ["voisin:Flat", "voisin:Flat "])
    with pytest.raises(ValueError, match="lists only 10"):
        run(ds, ["voisin:Flat"], k=20)
    with pytest.raises(ValueError, match="at least one"):
        run(ds, [])


def test_cli_bench_command(tmp_path):
    needs("faiss", "h5py")
    click_testing = pytest.importorskip("click.testing")
    pytest.importorskip("rich")
    from voisin.bench.command import bench
    ds = datasets.synthetic(n=1500, nq=20, d=8, k=10, seed=4, name="tiny-8-euclidean")
    datasets.save(tmp_path / "tiny-8-euclidean.hdf5", ds)
    out = tmp_path / "res.json"
    res = click_testing.CliRunner().invoke(
        bench, ["--dataset", str(tmp_path / "tiny-8-euclidean.hdf5"), "-i", "voisin:Flat", "-i", "faiss:Flat",
                "--mode", "batch", "--repeat", "1", "--min-time", "0", "--out", str(out), "--no-plot", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "QPS" in res.output and "voisin:Flat" in res.output
    saved = json.loads(out.read_text())
    assert saved["settings"]["modes"] == ["batch"] and saved["files"]["png"] is None
    assert all(r["modes"]["batch"]["points"][0]["recall"] == 1.0 for r in saved["indexes"])
    bad = click_testing.CliRunner().invoke(bench, ["--dataset", "no-such-dataset-3", "-i", "voisin:Flat"])
    assert bad.exit_code != 0 and "not found" in bad.output
    bad = click_testing.CliRunner().invoke(bench, ["--dataset", str(tmp_path / "tiny-8-euclidean.hdf5"),
                                                   "-i", "voisin:Flat", "--sweep", "nprobe=1"])
    assert bad.exit_code != 0 and "no index spec uses" in bad.output


def test_siftsmall_flat_recall_is_one():
    needs("faiss", "h5py")
    path = dataset_path("siftsmall-128-euclidean")
    result = run(path, ["voisin:Flat", "faiss:Flat"], modes=["batch"], queries=25, repeat=1, min_time=0.0)
    assert result["dataset"]["name"] == "siftsmall-128-euclidean"
    for rec in result["indexes"]:
        assert rec["modes"]["batch"]["points"][0]["recall"] == 1.0
