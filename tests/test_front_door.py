"""The front door: `python -m voisin`, the installed command, `voisin tune`, --param through
ParameterSpace, and index files saved atomically (fsync, rename, never torn)."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import voisin
import voisin.cli as app
from conftest import brute_force
from voisin.io import files

ROOT = Path(__file__).resolve().parents[1]


def invoke(*args: str):
    return CliRunner().invoke(app.cli, list(args), catch_exceptions=False)


def run(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


@pytest.fixture
def vectors(tmp_path):
    rng = np.random.default_rng(9)
    centres = rng.standard_normal((20, 16)).astype(np.float32) * 3
    xb = (centres[rng.integers(0, 20, 4000)] + rng.standard_normal((4000, 16))).astype(np.float32)
    xq = (centres[rng.integers(0, 20, 200)] + rng.standard_normal((200, 16))).astype(np.float32)
    np.save(tmp_path / "xb.npy", xb)
    np.save(tmp_path / "xq.npy", xq)
    return xb, xq


def built_file(tmp_path, desc: str, name: str) -> Path:
    """`voisin build` over the fixture's base vectors; the index file's path."""
    out = tmp_path / name
    res = invoke("build", "--data", str(tmp_path / "xb.npy"), "--index", desc, "--out", str(out))
    assert res.exit_code == 0, res.output
    return out


# --- the command exists however voisin is started -----------------------------------

def test_python_dash_m_voisin_runs_the_cli():
    res = run(sys.executable, "-m", "voisin", "--help")
    assert res.returncode == 0, res.stderr
    for name in app.COMMANDS:
        assert name in res.stdout
    assert "python -m voisin" in res.stdout
    res = run(sys.executable, "-m", "voisin", "info", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["voisin"] == voisin.__version__


def test_installed_console_script():
    exe = shutil.which("voisin", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the voisin console script is not installed in this environment (pip install -e .)")
    res = run(exe, "--version")
    assert res.returncode == 0 and voisin.__version__ in res.stdout


def test_click_and_rich_are_core_dependencies():
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = " ".join(project["dependencies"])
    assert "click" in deps and "rich" in deps
    assert project["optional-dependencies"]["cli"] == []          # ".[cli]" still resolves
    assert project["scripts"]["voisin"] == "voisin.cli:main"


def test_every_command_is_one_module_registered_by_name():
    import importlib
    for name in app.COMMANDS:
        module = importlib.import_module(f"voisin.cli.{name}")
        assert app.cli.commands[name] is module.command


def test_the_demo_and_the_library_do_not_import_the_cli():
    res = run(sys.executable, "-c", "import sys, voisin.demo, voisin.building, voisin.tuning; "
                                    "print(any(m.startswith('voisin.cli') for m in sys.modules))")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


# --- --param goes through ParameterSpace ----------------------------------------------

def test_search_param_takes_faiss_parameter_strings(vectors, tmp_path):
    xb, xq = vectors
    out = built_file(tmp_path, "IVF16,PQ4x4fs,RFlat", "rf.index")
    res = invoke("search", "--index", str(out), "--queries", str(tmp_path / "xq.npy"), "-k", "5",
                 "--param", "nprobe=16,k_factor_rf=40", "--out", str(tmp_path / "r.npz"))
    assert res.exit_code == 0, res.output
    # every list visited and 200 candidates re-ranked exactly: the exact answer
    _, ref = brute_force(xq, xb, 5, voisin.METRIC_L2)
    assert np.mean(np.load(tmp_path / "r.npz")["I"] == ref) > 0.99
    res = invoke("search", "--index", str(out), "--queries", str(tmp_path / "xq.npy"), "--param", "nprobe=0")
    assert res.exit_code == 1 and "nprobe: expected an integer >= 1, got 0" in res.output
    res = invoke("search", "--index", str(out), "--queries", str(tmp_path / "xq.npy"), "--param", "bogus=1")
    assert res.exit_code == 1 and "no parameter 'bogus'" in res.output and "k_factor_rf" in res.output


# --- voisin tune ---------------------------------------------------------------------------

def test_tune_command_sets_and_saves_the_setting(vectors, tmp_path):
    xb, xq = vectors
    built = built_file(tmp_path, "IVF32,Flat", "ivf.index")
    tuned = tmp_path / "tuned.index"
    res = invoke("tune", "--index", str(built), "--queries", str(tmp_path / "xq.npy"), "--target", "0.9",
                 "--min-time", "0", "--out", str(tuned), "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["met"] and report["chosen"]["recall_low"] >= 0.9
    index = voisin.read_index(str(tuned))
    assert index.nprobe == report["chosen"]["setting"]["nprobe"]       # FAISS files keep nprobe
    _, ref = brute_force(xq, xb, 10, voisin.METRIC_L2)
    I = index.search(xq, 10)[1]
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(I, ref)]) >= 0.9
    res = invoke("tune", "--index", str(built), "--queries", str(tmp_path / "xq.npy"), "--target", "0.9",
                 "--min-time", "0")
    assert res.exit_code == 0 and "meets" in res.output and "--param nprobe=" in res.output


def test_tune_command_with_gt_or_data_for_lossy_indexes(vectors, tmp_path):
    xb, xq = vectors
    built = built_file(tmp_path, "IVF32,PQ4x4", "pq.index")
    args = ["tune", "--index", str(built), "--queries", str(tmp_path / "xq.npy"), "--target", "0.3",
            "--min-time", "0"]
    res = invoke(*args)
    assert res.exit_code == 1 and "--gt FILE or --data FILE" in res.output and "Traceback" not in res.output
    assert invoke(*args, "--data", str(tmp_path / "xb.npy")).exit_code == 0
    np.save(tmp_path / "gt.npy", brute_force(xq, xb, 10, voisin.METRIC_L2)[1])
    assert invoke(*args, "--gt", str(tmp_path / "gt.npy")).exit_code == 0
    np.save(tmp_path / "bad.npy", np.zeros((200, 10), np.float32))
    res = invoke(*args, "--gt", str(tmp_path / "bad.npy"))
    assert res.exit_code == 1 and "integer neighbour ids" in res.output
    res = invoke("tune", "--index", str(built), "--queries", str(tmp_path / "xq.npy"), "--target", "0.999",
                 "--min-time", "0", "--data", str(tmp_path / "xb.npy"))
    assert res.exit_code == 3 and "does not reach" in res.output     # scriptable: not met
    res = invoke("tune", "--index", str(built), "--queries", str(tmp_path / "xq.npy"), "--target", "1.5")
    assert res.exit_code == 2 and "--target" in res.output


def test_tune_command_plot(vectors, tmp_path):
    pytest.importorskip("matplotlib", reason="the plot needs matplotlib (bench extra)")
    built = built_file(tmp_path, "HNSW8", "hnsw.index")
    res = invoke("tune", "--index", str(built), "--queries", str(tmp_path / "xq.npy"), "--target", "0.9",
                 "--min-time", "0", "--plot", str(tmp_path / "t.png"))
    assert res.exit_code == 0, res.output
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"


# --- pickle saves: atomic and durable ---------------------------------------------------------

def test_pickle_save_is_fsynced_and_renamed(tmp_path, monkeypatch):
    import voisin.io.atomic as atomic
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    index = voisin.IndexFlatL2(4)
    index.add(np.eye(4, dtype=np.float32))
    files.save_index(index, tmp_path / "i.pkl")
    assert len(synced) == 2                       # the data, then the directory entry
    assert files.load_index(tmp_path / "i.pkl").ntotal == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["i.pkl"]


def test_a_crash_while_pickling_leaves_the_old_file_whole(tmp_path, monkeypatch):
    old = voisin.IndexFlatL2(4)
    old.add(np.eye(4, dtype=np.float32))
    path = tmp_path / "i.pkl"
    files.save_index(old, path)
    before = path.read_bytes()

    def torn_dump(obj, f, protocol=None):
        f.write(b"\x80\x05partial")
        raise KeyboardInterrupt                       # killed half-way through the write

    monkeypatch.setattr(files.pickle, "dump", torn_dump)
    new = voisin.IndexFlatL2(4)
    new.add(np.ones((9, 4), np.float32))
    with pytest.raises(KeyboardInterrupt):
        files.save_index(new, path)
    assert path.read_bytes() == before and files.load_index(path).ntotal == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["i.pkl"]   # no temporary file left behind


def test_cli_pickle_build_goes_through_the_atomic_writer(vectors, tmp_path, monkeypatch):
    import voisin.io.atomic as atomic
    calls = []
    real = atomic.atomic_write
    monkeypatch.setattr(files, "atomic_write", lambda p, w: calls.append(Path(p).name) or real(p, w))
    res = invoke("build", "--data", str(tmp_path / "xb.npy"), "--out", str(tmp_path / "b.pkl"))
    assert res.exit_code == 0, res.output
    assert calls == ["b.pkl"]
    with open(tmp_path / "b.pkl", "rb") as f:
        assert pickle.load(f).ntotal == 4000
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "b.pkl").stat().st_mode & 0o777 == 0o666 & ~mask   # as open() would have made it
