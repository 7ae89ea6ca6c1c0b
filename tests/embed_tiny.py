"""A tiny random BERT sentence-transformers folder, and a float64 numpy reference encoder for it.

The tests of voisin.embed that must run without the 90 MB weights package
(batching, padding, masking, truncation, loading from a folder or a zip) use
this model, made on the spot with ``tokenizers`` and ``safetensors``. The
reference encodes one sentence at a time with no padding, in float64, with the
exact erf GELU and numpy's exp: nothing of it is shared with voisin's kernels.
"""

from __future__ import annotations

import json
import math
import string
from pathlib import Path

import numpy as np

D, HEADS, LAYERS, UP, POSITIONS, MAX_SEQ = 16, 4, 2, 32, 40, 12
WORDS = ["the", "cat", "sat", "on", "mat", "dog", "vector", "search", "fast", "slow", "café", "東", "京"]


def vocab() -> list[str]:
    letters = list(string.ascii_lowercase + string.digits)
    return (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + letters
            + ["##" + c for c in letters] + list(".,!?'"))


def make_tokenizer():
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    v = {t: i for i, t in enumerate(vocab())}
    tok = Tokenizer(WordPiece(v, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", v["[CLS]"]), ("[SEP]", v["[SEP]"])])
    # what the real MiniLM tokenizer.json carries (fixed padding, truncation at 128):
    # TextEncoder must override both
    tok.enable_padding(length=30, pad_id=0, pad_token="[PAD]")
    tok.enable_truncation(30)
    return tok


def make_weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def r(*shape, scale=0.5):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    nv = len(vocab())
    w = {"embeddings.word_embeddings.weight": r(nv, D),
         "embeddings.position_embeddings.weight": r(POSITIONS, D),
         "embeddings.token_type_embeddings.weight": r(2, D),
         "embeddings.LayerNorm.weight": 1 + r(D, scale=0.1), "embeddings.LayerNorm.bias": r(D, scale=0.1),
         "embeddings.position_ids": np.arange(POSITIONS, dtype=np.int64)[None]}
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        for name, (o, n) in {"attention.self.query": (D, D), "attention.self.key": (D, D),
                             "attention.self.value": (D, D), "attention.output.dense": (D, D),
                             "intermediate.dense": (UP, D), "output.dense": (D, UP)}.items():
            w[p + name + ".weight"] = r(o, n)
            w[p + name + ".bias"] = r(o, scale=0.1)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[p + ln + ".weight"] = 1 + r(D, scale=0.1)
            w[p + ln + ".bias"] = r(D, scale=0.1)
    return w


def config() -> dict:
    return {"model_type": "bert", "architectures": ["BertModel"], "hidden_size": D, "num_attention_heads": HEADS,
            "num_hidden_layers": LAYERS, "intermediate_size": UP, "max_position_embeddings": POSITIONS,
            "hidden_act": "gelu", "layer_norm_eps": 1e-12, "vocab_size": len(vocab()), "type_vocab_size": 2,
            "position_embedding_type": "absolute"}


def make_model(folder: Path, seed: int = 0) -> Path:
    """Write the tiny model as a sentence-transformers folder; returns ``folder``."""
    from safetensors.numpy import save_file
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config()))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": MAX_SEQ,
                                                                  "do_lower_case": False}))
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": D,
                                                                   "pooling_mode_mean_tokens": True}))
    (folder / "tokenizer.json").write_text(make_tokenizer().to_str())
    save_file(make_weights(seed), str(folder / "model.safetensors"))
    return folder


# --------------------------------------------------------------------------- reference
def _ln(x, g, b, eps=1e-12):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


_erf = np.vectorize(math.erf)


def reference_encode(weights: dict[str, np.ndarray], ids: np.ndarray, normalize: bool = True) -> np.ndarray:
    """One sentence's vector, float64, no padding, straight from the BERT equations."""
    w = {k: v.astype(np.float64) for k, v in weights.items() if v.dtype != np.int64}
    n = ids.shape[0]
    x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n]
         + w["embeddings.token_type_embeddings.weight"][0])
    x = _ln(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    hd = D // HEADS

    def lin(name, v):
        return v @ w[name + ".weight"].T + w[name + ".bias"]

    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        q, k, v = (lin(p + "attention.self." + t, x).reshape(n, HEADS, hd).transpose(1, 0, 2)
                   for t in ("query", "key", "value"))
        s = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(1, 0, 2).reshape(n, D)
        a = _ln(lin(p + "attention.output.dense", ctx) + x, w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"])
        up = lin(p + "intermediate.dense", a)
        up = 0.5 * up * (1 + _erf(up / math.sqrt(2)))
        x = _ln(lin(p + "output.dense", up) + a, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
    out = x.mean(0)
    return out / max(np.linalg.norm(out), 1e-12) if normalize else out
