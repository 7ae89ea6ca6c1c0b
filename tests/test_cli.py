"""The `voisin` command line: info, build -> search round trips, and clear errors."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

click = pytest.importorskip("click", reason="the CLI needs the cli extra (click, rich)")
pytest.importorskip("rich", reason="the CLI needs the cli extra (click, rich)")
from click.testing import CliRunner  # noqa: E402

import voisin  # noqa: E402
from voisin.cli import cli, load_vectors  # noqa: E402

HAS_WRITER = hasattr(voisin, "write_index") and hasattr(voisin, "read_index")


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def brute_force(xq: np.ndarray, xb: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """numpy reference: squared L2 ascending or inner product descending."""
    xq64, xb64 = xq.astype(np.float64), xb.astype(np.float64)
    if metric == "cosine":
        xq64 /= np.linalg.norm(xq64, axis=1, keepdims=True)
        xb64 /= np.linalg.norm(xb64, axis=1, keepdims=True)
    if metric == "l2":
        dist = ((xq64[:, None, :] - xb64[None, :, :]) ** 2).sum(-1)
        order = np.argsort(dist, axis=1, kind="stable")[:, :k]
    else:
        dist = xq64 @ xb64.T
        order = np.argsort(-dist, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(dist, order, 1), order


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    xb = rng.standard_normal((3000, 24)).astype(np.float32)
    xq = rng.standard_normal((40, 24)).astype(np.float32)
    np.save(tmp_path / "xb.npy", xb)
    np.save(tmp_path / "xq.npy", xq)
    return tmp_path / "xb.npy", tmp_path / "xq.npy", xb, xq


def write_fvecs(path: Path, x: np.ndarray) -> None:
    n, d = x.shape
    rows = np.empty((n, d + 1), dtype=np.float32)
    rows[:, 0] = np.array([d], dtype=np.int32).view(np.float32)[0]
    rows[:, 1:] = x
    rows.tofile(path)


# --- info -------------------------------------------------------------------

def test_info_lists_versions_and_families():
    res = invoke("info")
    assert res.exit_code == 0, res.output
    assert voisin.__version__ in res.output
    assert np.__version__ in res.output
    assert "numba" in res.output and "Flat" in res.output and "faiss-cpu" in res.output
    cpu = json.loads(invoke("info", "--json").output)["cpu"]
    if "[llvm target:" in cpu:  # bracketed text must not be eaten as rich markup
        assert "[llvm target:" in res.output


def test_info_json_matches_what_is_exported():
    from importlib.metadata import version

    import numba
    res = invoke("info", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["voisin"] == voisin.__version__
    assert report["numba"] == numba.__version__
    assert report["numba_threads"] == numba.get_num_threads()
    for entry in report["families"].values():
        assert entry["available"] == all(hasattr(voisin, n) for n in entry["names"])
    assert report["families"]["Flat"]["available"] is True
    assert report["optional"]["click"]["version"] == version("click")


def test_version_option():
    res = invoke("--version")
    assert res.exit_code == 0 and voisin.__version__ in res.output


# --- build + search round trips ----------------------------------------------

@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_build_then_search_matches_brute_force(data, tmp_path, metric):
    xb_path, xq_path, xb, xq = data
    out = tmp_path / "index.pkl"
    res = invoke("build", "--data", str(xb_path), "--index", "Flat", "--metric", metric, "--out", str(out))
    assert res.exit_code == 0, res.output
    assert out.is_file()
    args = ["search", "--index", str(out), "--queries", str(xq_path), "-k", "7",
            "--out", str(tmp_path / "res.npz")]
    if metric == "cosine":
        args.append("--normalize")
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    got = np.load(tmp_path / "res.npz")
    ref_d, ref_i = brute_force(xq, xb, 7, metric)
    assert got["I"].shape == (40, 7) and got["I"].dtype == np.int64
    np.testing.assert_array_equal(got["I"], ref_i)
    np.testing.assert_allclose(got["D"], ref_d, rtol=1e-4, atol=1e-3)


def test_build_idmap_and_limit(data, tmp_path):
    xb_path, xq_path, xb, xq = data
    out = tmp_path / "idmap.pkl"
    res = invoke("build", "--data", str(xb_path), "--index", "IDMap,Flat", "--limit", "500",
                 "--out", str(out))
    assert res.exit_code == 0, res.output
    with open(out, "rb") as f:
        index = pickle.load(f)
    assert isinstance(index, voisin.IndexIDMap) and index.ntotal == 500
    D, I = index.search(xq, 5)
    np.testing.assert_array_equal(I, brute_force(xq, xb[:500], 5, "l2")[1])


def test_build_adds_in_chunks_behind_a_progress_bar(data, tmp_path, monkeypatch):
    import voisin.cli as cli_mod
    monkeypatch.setattr(cli_mod, "ADD_CHUNK", 700)  # 3000 vectors -> 5 add() calls
    calls = []
    real_add = voisin.IndexFlat.add

    def counting_add(self, x):
        calls.append(len(x))
        return real_add(self, x)

    monkeypatch.setattr(voisin.IndexFlat, "add", counting_add)
    xb_path, xq_path, xb, xq = data
    res = invoke("build", "--data", str(xb_path), "--out", str(tmp_path / "i.pkl"))
    assert res.exit_code == 0, res.output
    assert calls == [700, 700, 700, 700, 200]
    with open(tmp_path / "i.pkl", "rb") as f:
        np.testing.assert_array_equal(pickle.load(f).reconstruct_n(0, 3000), xb)


def test_fvecs_and_hdf5_inputs(data, tmp_path):
    h5py = pytest.importorskip("h5py")
    xb_path, xq_path, xb, xq = data
    write_fvecs(tmp_path / "xb.fvecs", xb)
    np.testing.assert_array_equal(load_vectors(tmp_path / "xb.fvecs"), xb)
    with h5py.File(tmp_path / "ds.hdf5", "w") as f:
        f["train"] = xb
        f["test"] = xq
    res = invoke("build", "--data", str(tmp_path / "xb.fvecs"), "--out", str(tmp_path / "f.pkl"))
    assert res.exit_code == 0, res.output
    res = invoke("search", "--index", str(tmp_path / "f.pkl"), "--queries", str(tmp_path / "ds.hdf5"),
                 "-k", "3", "--out", str(tmp_path / "r.npz"), "--show", "2")
    assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(np.load(tmp_path / "r.npz")["I"], brute_force(xq, xb, 3, "l2")[1])
    assert "first 2 queries" in res.output


@pytest.mark.skipif(not HAS_WRITER, reason="voisin.write_index/read_index not available yet")
def test_faiss_format_round_trip(data, tmp_path):
    xb_path, xq_path, xb, xq = data
    out = tmp_path / "index.faiss"
    res = invoke("build", "--data", str(xb_path), "--index", "Flat", "--out", str(out))
    assert res.exit_code == 0, res.output
    ref = brute_force(xq, xb, 4, "l2")[1]
    for extra in ([], ["--mmap"]):
        res = invoke("search", "--index", str(out), "--queries", str(xq_path), "-k", "4",
                     "--out", str(tmp_path / "r.npz"), *extra)
        assert res.exit_code == 0, res.output
        np.testing.assert_array_equal(np.load(tmp_path / "r.npz")["I"], ref)
    res = invoke("search", "--index", str(tmp_path / "pk.pkl"), "--queries", str(xq_path), "--mmap")
    assert res.exit_code == 1
    assert invoke("build", "--data", str(xb_path), "--out", str(tmp_path / "pk.pkl")).exit_code == 0
    res = invoke("search", "--index", str(tmp_path / "pk.pkl"), "--queries", str(xq_path), "--mmap")
    assert res.exit_code == 1 and "pickle" in res.output


@pytest.mark.skipif(not HAS_WRITER, reason="voisin.read_index not available yet")
def test_search_refuses_a_corrupt_faiss_file(tmp_path):
    (tmp_path / "junk.faiss").write_bytes(b"IxF2" + b"\x00" * 7)
    np.save(tmp_path / "q.npy", np.ones((2, 4), dtype=np.float32))
    res = invoke("search", "--index", str(tmp_path / "junk.faiss"), "--queries", str(tmp_path / "q.npy"))
    assert res.exit_code == 1 and "junk.faiss" in res.output and "Traceback" not in res.output


@pytest.mark.skipif(not hasattr(voisin, "IndexIVFFlat"), reason="IVF not available yet")
def test_search_param_sets_nprobe(data, tmp_path):
    xb_path, xq_path, xb, xq = data
    out = tmp_path / "ivf.pkl"
    res = invoke("build", "--data", str(xb_path), "--index", "IVF16,Flat", "--out", str(out))
    assert res.exit_code == 0, res.output
    res = invoke("search", "--index", str(out), "--queries", str(xq_path), "-k", "5",
                 "--param", "nprobe=16", "--out", str(tmp_path / "r.npz"))
    assert res.exit_code == 0, res.output
    # nprobe = nlist visits every list: exact results
    np.testing.assert_array_equal(np.load(tmp_path / "r.npz")["I"], brute_force(xq, xb, 5, "l2")[1])


def test_search_params_reach_the_base_of_a_refined_sq8_walk(data, tmp_path):
    """--param sets efSearch on the HNSW inside IndexRefineFlat and k_factor on the wrapper."""
    xb_path, xq_path, xb, xq = data
    out = tmp_path / "hnsw.index"
    res = invoke("build", "--data", str(xb_path), "--index", "HNSW16_SQ8,RFlat", "--out", str(out))
    assert res.exit_code == 0, res.output
    res = invoke("search", "--index", str(out), "--queries", str(xq_path), "-k", "5",
                 "--param", "efSearch=400", "--param", "k_factor=8", "--out", str(tmp_path / "r.npz"))
    assert res.exit_code == 0, res.output
    got = np.load(tmp_path / "r.npz")
    _, I = brute_force(xq, xb, 5, "l2")
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(got["I"], I)])
    assert recall >= 0.97, recall
    # what is returned carries its exact distance (the fused re-rank)
    exact = ((xq[:, None, :].astype(np.float64) - xb[got["I"]]) ** 2).sum(-1)
    np.testing.assert_allclose(got["D"], exact, rtol=1e-4, atol=1e-4)


# --- bad input: one clear line, non-zero exit ----------------------------------

def test_missing_data_file(tmp_path):
    res = invoke("build", "--data", str(tmp_path / "nope.npy"), "--out", str(tmp_path / "i.pkl"))
    assert res.exit_code != 0
    assert "no such file" in res.output and "Traceback" not in res.output


def test_unknown_file_type(tmp_path):
    (tmp_path / "x.csv").write_text("1,2,3\n")
    res = invoke("build", "--data", str(tmp_path / "x.csv"), "--out", str(tmp_path / "i.pkl"))
    assert res.exit_code != 0 and "unknown vector file type" in res.output


def test_bad_metric_is_a_usage_error(data, tmp_path):
    res = invoke("build", "--data", str(data[0]), "--metric", "hamming", "--out", str(tmp_path / "i.pkl"))
    assert res.exit_code == 2 and "hamming" in res.output


def test_bad_factory_string(data, tmp_path):
    res = invoke("build", "--data", str(data[0]), "--index", "Flop", "--out", str(tmp_path / "i.pkl"))
    assert res.exit_code == 1 and "Flop" in res.output


def test_nan_in_data_names_the_problem(tmp_path):
    x = np.ones((10, 4), dtype=np.float32)
    x[3, 2] = np.nan
    np.save(tmp_path / "bad.npy", x)
    res = invoke("build", "--data", str(tmp_path / "bad.npy"), "--out", str(tmp_path / "i.pkl"))
    assert res.exit_code == 1 and "NaN" in res.output
    assert not (tmp_path / "i.pkl").exists()


def test_1d_array_is_refused(tmp_path):
    np.save(tmp_path / "v.npy", np.ones(5, dtype=np.float32))
    res = invoke("build", "--data", str(tmp_path / "v.npy"), "--out", str(tmp_path / "i.pkl"))
    assert res.exit_code == 1 and "2-D" in res.output


def test_truncated_fvecs(tmp_path):
    (tmp_path / "t.fvecs").write_bytes(np.array([4, 0, 0], dtype=np.int32).tobytes())
    res = invoke("build", "--data", str(tmp_path / "t.fvecs"), "--out", str(tmp_path / "i.pkl"))
    assert res.exit_code == 1 and "t.fvecs" in res.output


def test_query_dimension_mismatch(data, tmp_path):
    xb_path, _, _, _ = data
    np.save(tmp_path / "q8.npy", np.ones((3, 8), dtype=np.float32))
    assert invoke("build", "--data", str(xb_path), "--out", str(tmp_path / "i.pkl")).exit_code == 0
    res = invoke("search", "--index", str(tmp_path / "i.pkl"), "--queries", str(tmp_path / "q8.npy"))
    assert res.exit_code == 1 and "d=8" in res.output and "d=24" in res.output


def test_bad_k_and_param(data, tmp_path):
    xb_path, xq_path, _, _ = data
    assert invoke("build", "--data", str(xb_path), "--out", str(tmp_path / "i.pkl")).exit_code == 0
    res = invoke("search", "--index", str(tmp_path / "i.pkl"), "--queries", str(xq_path), "-k", "0")
    assert res.exit_code == 2 and "-k" in res.output
    res = invoke("search", "--index", str(tmp_path / "i.pkl"), "--queries", str(xq_path),
                 "--param", "efSearch")
    assert res.exit_code == 2 and "NAME=NUMBER" in res.output
    res = invoke("search", "--index", str(tmp_path / "i.pkl"), "--queries", str(xq_path),
                 "--param", "efSearch=32")
    assert res.exit_code == 1 and "no parameter 'efSearch'" in res.output


def test_search_refuses_a_file_that_is_not_an_index(tmp_path):
    with open(tmp_path / "junk.pkl", "wb") as f:
        pickle.dump({"not": "an index"}, f)
    (tmp_path / "garbage.pkl").write_bytes(b"\x00\x01garbage")
    np.save(tmp_path / "q.npy", np.ones((2, 4), dtype=np.float32))
    for name in ("junk.pkl", "garbage.pkl", "missing.pkl"):
        res = invoke("search", "--index", str(tmp_path / name), "--queries", str(tmp_path / "q.npy"))
        assert res.exit_code == 1 and name in res.output and "Traceback" not in res.output


@pytest.mark.skipif(HAS_WRITER, reason="voisin.write_index exists: FAISS-format output works")
def test_faiss_output_without_writer_says_use_pkl(data, tmp_path):
    res = invoke("build", "--data", str(data[0]), "--out", str(tmp_path / "i.faiss"))
    assert res.exit_code == 1 and ".pkl" in res.output


@pytest.mark.skipif(not HAS_WRITER, reason="the README's quick start uses voisin.write_index")
def test_readme_quick_start_runs(tmp_path, monkeypatch):
    readme = Path(__file__).resolve().parents[1] / "README.md"
    if not readme.is_file():
        pytest.skip("README.md not found beside tests/")
    text = readme.read_text()
    snippet = text.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)  # the snippet writes example.index in the current folder
    scope: dict = {}
    exec(compile(snippet, str(readme), "exec"), scope)
    xb, xq, I = scope["xb"], scope["xq"], scope["I"]
    # the last search in the snippet is the cosine one: check it against numpy
    xb_n = xb / np.linalg.norm(xb, axis=1, keepdims=True)
    xq_n = xq / np.linalg.norm(xq, axis=1, keepdims=True)
    np.testing.assert_array_equal(I, np.argsort(-(xq_n @ xb_n.T), axis=1, kind="stable")[:, :10])
    assert scope["same"].ntotal == 10_000 and (tmp_path / "example.index").is_file()


def test_bench_is_registered():
    res = invoke("--help")
    assert res.exit_code == 0 and "bench" in res.output and "demo" in res.output


def test_bench_without_its_module_explains(monkeypatch):
    import sys

    import voisin.cli as cli_mod
    monkeypatch.setitem(cli_mod.cli.commands, "bench", cli_mod.cli.commands.get("bench"))  # restored after
    monkeypatch.setitem(sys.modules, "voisin.bench.command", None)  # the import now fails
    cli_mod._register_bench()
    res = invoke("bench", "--dataset", "x")
    assert res.exit_code == 1 and "voisin.bench.command" in res.output


def test_main_entry_point_runs_info(capsys):
    from voisin.cli import main
    with pytest.raises(SystemExit) as exc:
        main(["info", "--json"])
    assert exc.value.code == 0
    assert json.loads(capsys.readouterr().out)["voisin"] == voisin.__version__


def test_readme_deletes_snippet_runs(tmp_path, monkeypatch):
    """The README's "Deletes, updates, filters, threads" example, run after the quick start."""
    readme = Path(__file__).resolve().parents[1] / "README.md"
    if not readme.is_file():
        pytest.skip("README.md not found beside tests/")
    blocks = [b.split("```", 1)[0] for b in readme.read_text().split("```python\n")[1:]]
    quick = blocks[0]
    deletes = next(b for b in blocks if "remove_ids" in b and "compact()" in b)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(quick, str(readme), "exec"), scope)
    exec(compile(deletes, str(readme), "exec"), scope)
    index, xb, xq, I, D = scope["index"], scope["xb"], scope["xq"], scope["I"], scope["D"]
    base = 10**12
    assert index.ntotal == 10_000 - 3_000 and index.index.ntombstones == 0   # 5 updates replace
    allowed = np.arange(base + 3_000, base + 10_000, 100)   # the filter minus the deleted ids
    assert (I >= 0).all() and np.isin(I, allowed).all()
    # with so few allowed ids the answer is exact: compare with numpy over the allowed vectors
    vecs = xb[allowed - base].copy()
    vecs[allowed == base + 5_000] = xb[0] + 0.5        # the update replaced that vector
    d2 = ((xq[:, None, :] - vecs[None, :, :]) ** 2).sum(-1)
    np.testing.assert_array_equal(I, allowed[np.argsort(d2, axis=1, kind="stable")[:, :10]])
    np.testing.assert_allclose(D, np.sort(d2, axis=1)[:, :10], rtol=1e-4)
    np.testing.assert_allclose(index.reconstruct(base + 5_000), xb[0] + 0.5, rtol=1e-6)
