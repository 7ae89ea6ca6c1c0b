"""The Embedder protocol, its adapters, and how a collection will recognise its encoder."""

from __future__ import annotations

import numpy as np
import pytest

from voisin.embed import (CallableEmbedder, Embedder, SentenceTransformerEmbedder, as_embedder, check_compatible,
                          signature)
from voisin.embed.protocol import PROBE_TEXTS


def hashing_encoder(dim=8, seed=0):
    """A deterministic toy encoder: each text's vector from a seeded generator on its hash-free bytes."""
    def encode(texts):
        out = np.empty((len(texts), dim))
        for i, t in enumerate(texts):
            g = np.random.default_rng([seed, *t.encode("utf-8")] if t else [seed])
            out[i] = g.standard_normal(dim)
        return out / np.linalg.norm(out, axis=1, keepdims=True)
    return encode


class FakeSentenceTransformer:
    """The part of sentence_transformers.SentenceTransformer that the adapter uses (no torch here)."""

    def __init__(self, dim=6):
        self.dim_ = dim
        self.calls = []

    def get_embedding_dimension(self):
        return self.dim_

    def encode(self, texts, convert_to_numpy=False, show_progress_bar=None, **kw):
        self.calls.append(dict(convert_to_numpy=convert_to_numpy, show_progress_bar=show_progress_bar, **kw))
        v = hashing_encoder(self.dim_)(list(texts)).astype(np.float32)
        return v[0] if isinstance(texts, str) else v


def test_callable_embedder():
    e = as_embedder(hashing_encoder(), name="hash8")
    assert isinstance(e, Embedder) and isinstance(e, CallableEmbedder)
    assert e.name == "hash8" and e.dim == 8
    v = e.encode(["a", "b", "a"])
    assert v.dtype == np.float32 and v.shape == (3, 8)
    np.testing.assert_array_equal(v[0], v[2])
    assert e.encode([]).shape == (0, 8)


def test_dim_is_learnt_from_one_call_and_then_enforced():
    widths = iter([5, 5, 7])
    e = CallableEmbedder(lambda texts: np.ones((len(texts), next(widths))), name="shifty")
    assert e.dim == 5
    assert e.encode(["x"]).shape == (1, 5)
    with pytest.raises(ValueError, match="shifty output: expected vectors of dimension d=5"):
        e.encode(["x"])


def test_default_name_is_the_qualified_name():
    assert as_embedder(hashing_encoder()).name.endswith("hashing_encoder.<locals>.encode")


@pytest.mark.parametrize("fn, match", [
    (lambda t: np.ones((len(t) + 1, 3)), "bad output: expected 2 vectors \\(one per text\\), got 3"),
    (lambda t: np.full((len(t), 3), np.nan), "bad output: contains NaN or inf"),
    (lambda t: None, "bad output: expected a numeric array of vectors"),
    (lambda t: [["x"] * 3] * len(t), "bad output: expected a numeric array of vectors"),
])
def test_bad_callable_output_is_refused(fn, match):
    e = CallableEmbedder(fn, name="bad", dim=3)
    with pytest.raises((ValueError, TypeError), match=match):
        e.encode(["a", "b"])


def test_bad_adapter_arguments():
    with pytest.raises(TypeError, match="embedder: expected an Embedder, a sentence-transformers model"):
        as_embedder(42)
    with pytest.raises(TypeError, match="fn: expected a callable"):
        CallableEmbedder("not callable")
    with pytest.raises(TypeError, match="name: expected a non-empty string"):
        CallableEmbedder(len, name="")
    with pytest.raises(ValueError, match="dim: expected a positive integer dimension"):
        CallableEmbedder(len, dim=0)
    e = as_embedder(hashing_encoder(), name="x", dim=8)
    assert as_embedder(e) is e
    with pytest.raises(ValueError, match="is an Embedder already"):
        as_embedder(e, name="other")


def test_texts_are_validated_before_the_callable_sees_them():
    seen = []
    e = CallableEmbedder(lambda t: seen.append(t) or np.ones((len(t), 2)), name="spy", dim=2)
    with pytest.raises(TypeError, match=r"texts\[1\]: expected a string, got None"):
        e.encode(["a", None])
    assert seen == []


def test_sentence_transformer_adapter():
    model = FakeSentenceTransformer()
    e = as_embedder(model)
    assert isinstance(e, SentenceTransformerEmbedder) and e.model is model
    assert e.dim == 6 and e.name.startswith("sentence-transformers:")
    v = e.encode(["a", "b"])
    assert v.shape == (2, 6) and v.dtype == np.float32
    assert model.calls[-1]["convert_to_numpy"] is True and model.calls[-1]["show_progress_bar"] is False
    e2 = SentenceTransformerEmbedder(model, name="st", normalize_embeddings=True)
    e2.encode(["z"])
    assert model.calls[-1]["normalize_embeddings"] is True and e2.name == "st"


def test_signature_and_compatibility():
    a = as_embedder(hashing_encoder(seed=1), name="a", dim=8)
    sig = signature(a)
    assert sig["name"] == "a" and sig["dim"] == 8 and len(sig["probe"]) == len(PROBE_TEXTS)
    import json
    sig = json.loads(json.dumps(sig))  # what a collection stores survives JSON
    check_compatible(sig, a)
    # another object computing the same vectors under another name is the same encoder
    check_compatible(sig, as_embedder(hashing_encoder(seed=1), name="renamed", dim=8))
    with pytest.raises(ValueError, match="embedder: expected the encoder that made these vectors \\('a'\\), "
                                         "got 'b', whose vectors differ"):
        check_compatible(sig, as_embedder(hashing_encoder(seed=2), name="b", dim=8))
    with pytest.raises(ValueError, match="embedder: expected an encoder of dimension 8 like 'a', got 'c' of "
                                         "dimension 6"):
        check_compatible(sig, as_embedder(FakeSentenceTransformer(), name="c"))


def test_normalisation_makes_a_different_encoder():
    base = hashing_encoder(seed=3)
    a = as_embedder(base, name="unit", dim=8)
    b = as_embedder(lambda t: 2.0 * base(t), name="scaled", dim=8)
    check_compatible(signature(a), a)
    # same directions, other lengths: inner products differ, so the vectors are not interchangeable
    with pytest.raises(ValueError, match="whose vectors differ .*norm ratio 2.0"):
        check_compatible(signature(a), b)


pytest.importorskip("tokenizers", reason="the `text` extra (tokenizers) is not installed")


def test_text_encoder_is_an_embedder(tmp_path):
    import embed_tiny
    from voisin.embed import TextEncoder
    enc = TextEncoder(embed_tiny.make_model(tmp_path / "m"))
    assert isinstance(enc, Embedder)
    assert as_embedder(enc) is enc
    sig = signature(enc)
    check_compatible(sig, enc)
    check_compatible(sig, as_embedder(enc.encode, name="wrapped", dim=enc.dim))
    other = TextEncoder(embed_tiny.make_model(tmp_path / "other", seed=1))
    with pytest.raises(ValueError, match="whose vectors differ"):
        check_compatible(sig, other)


def test_importing_voisin_embed_loads_neither_numba_nor_tokenizers():
    import subprocess
    import sys
    code = ("import sys, voisin.embed, voisin\n"
            "assert voisin.embed.as_embedder\n"
            "print(sorted(m for m in ('numba', 'tokenizers', 'safetensors', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
