"""What a collection needs from a text encoder, and adapters that give it any encoder.

An :class:`Embedder` has a ``name`` (shown to people), a ``dim`` and an
``encode(texts) -> float32 (n, dim)``. :class:`voisin.embed.TextEncoder`
is one; :func:`as_embedder` turns a plain callable ``texts -> array`` or a
sentence-transformers model object into one, checking every output.

A collection records its encoder's :func:`signature` and, before it embeds a
query, asks :func:`check_compatible`. Two encoders are compatible when they
give the same vectors for a few fixed probe texts (cosine within 1e-4, lengths
within 0.1%), not
when their names match: voisin's TextEncoder and sentence-transformers'
all-MiniLM-L6-v2 are interchangeable, while the same model with and without
normalisation is not.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from .validation import check_embeddings, check_name, check_texts

#: texts whose vectors identify an encoder (short, long, non-ASCII, empty)
PROBE_TEXTS = ("The quick brown fox jumps over the lazy dog.",
               "Vector search finds the nearest neighbours of a query among millions of embeddings.",
               "Größenordnung, naïve café, 東京, emoji 🚀",
               "")
#: two encoders are the same when every probe vector agrees in direction (cosine) and length
COMPATIBLE_COSINE = 1.0 - 1e-4
COMPATIBLE_NORM = 1e-3


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into vectors of a fixed dimension.

    >>> import numpy as np
    >>> from voisin.embed import Embedder, as_embedder
    >>> e = as_embedder(lambda texts: np.ones((len(texts), 3)), name="ones", dim=3)
    >>> isinstance(e, Embedder), e.encode(["a", "b"]).shape
    (True, (2, 3))
    """

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class CallableEmbedder:
    """A function ``texts -> array (n, dim)`` as an :class:`Embedder`.

    >>> import numpy as np
    >>> e = CallableEmbedder(lambda t: np.eye(4)[[len(s) % 4 for s in t]], name="toy")
    >>> e.dim, e.encode(["ab", "abc"]).dtype
    (4, dtype('float32'))
    """

    def __init__(self, fn: Callable[[list[str]], Any], name: str | None = None, dim: int | None = None):
        if not callable(fn):
            raise TypeError(f"fn: expected a callable texts -> array, got {type(fn).__name__}")
        self._fn = fn
        self._name = check_name(name) if name is not None else _callable_name(fn)
        self._dim = None if dim is None else _check_dim(dim)

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        if self._dim is None:  # learnt from one probe call, then fixed: later outputs must match it
            self._dim = int(self._call(list(PROBE_TEXTS[:1])).shape[1])
        return self._dim

    def _call(self, texts: list[str]) -> np.ndarray:
        return check_embeddings(self._fn(texts), len(texts), self._dim, f"{self._name} output")

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = check_texts(texts)
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        return self._call(texts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self._name!r}, dim={self._dim})"


class SentenceTransformerEmbedder(CallableEmbedder):
    """A sentence-transformers ``SentenceTransformer`` as an :class:`Embedder` (torch stays the user's).

    ``model.encode`` runs with its own defaults plus ``convert_to_numpy=True``;
    pass ``normalize_embeddings`` and the like through ``encode_kwargs``.
    """

    def __init__(self, model: Any, name: str | None = None, **encode_kwargs: Any):
        def run(texts: list[str]) -> np.ndarray:
            return model.encode(texts, convert_to_numpy=True, show_progress_bar=False, **encode_kwargs)
        getdim = getattr(model, "get_embedding_dimension", None) or getattr(model, "get_sentence_embedding_dimension")
        dim = getdim()
        super().__init__(run, name=name if name is not None else _st_name(model), dim=dim)
        self.model = model


def _check_dim(dim: Any) -> int:
    from .._validate import check_dimension
    return check_dimension(dim, "dim")


def _callable_name(fn: Any) -> str:
    mod = getattr(fn, "__module__", None) or type(fn).__module__
    qual = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{mod}.{qual}"


def _st_name(model: Any) -> str:
    card = getattr(model, "model_card_data", None)
    for attr in ("model_id", "base_model", "model_name"):
        value = getattr(card, attr, None)
        if isinstance(value, str) and value:
            return f"sentence-transformers:{value}"
    return f"sentence-transformers:{type(model).__name__}"


def _is_embedder(obj: Any) -> bool:
    # getattr_static: on Python 3.11 isinstance(obj, Embedder) evaluates the
    # properties, and a CallableEmbedder's dim may call the user's function
    return all(_has_static(obj, a) for a in ("name", "dim", "encode")) and callable(getattr(obj, "encode"))


def _has_static(obj: Any, attr: str) -> bool:
    import inspect
    try:
        inspect.getattr_static(obj, attr)
    except AttributeError:
        return False
    return True


def _is_sentence_transformer(obj: Any) -> bool:
    return callable(getattr(obj, "encode", None)) and (
        hasattr(obj, "get_embedding_dimension") or hasattr(obj, "get_sentence_embedding_dimension"))


def as_embedder(obj: Any, name: str | None = None, dim: int | None = None) -> Embedder:
    """``obj`` as an :class:`Embedder`: itself if it is one, else an adapter around it.

    Accepts an Embedder (returned as is), a sentence-transformers model, or a
    callable ``texts -> array``. ``name`` and ``dim`` override what the adapter
    would find (a callable's qualified name; its output width on a probe text).
    """
    if _is_embedder(obj) and not _is_sentence_transformer(obj):
        if name is not None or dim is not None:
            raise ValueError(f"name, dim: {type(obj).__name__} is an Embedder already and sets its own")
        return obj
    if _is_sentence_transformer(obj):
        return SentenceTransformerEmbedder(obj, name=name)
    if callable(obj):
        return CallableEmbedder(obj, name=name, dim=dim)
    raise TypeError(f"embedder: expected an Embedder, a sentence-transformers model or a callable "
                    f"texts -> array, got {type(obj).__name__}")


def signature(embedder: Embedder) -> dict:
    """What a collection stores to recognise its encoder later (JSON-serialisable)."""
    vectors = embedder.encode(list(PROBE_TEXTS))
    return {"name": embedder.name, "dim": int(embedder.dim), "probe": vectors.astype(np.float32).tolist()}


def check_compatible(recorded: dict, embedder: Embedder) -> None:
    """Raise ValueError unless ``embedder`` makes the vectors the recorded one made."""
    want = recorded.get("name", "?")
    if int(recorded["dim"]) != embedder.dim:
        raise ValueError(f"embedder: expected an encoder of dimension {recorded['dim']} like {want!r}, "
                         f"got {embedder.name!r} of dimension {embedder.dim}")
    a = np.asarray(recorded["probe"], dtype=np.float64)
    b = np.asarray(embedder.encode(list(PROBE_TEXTS)), dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"embedder: expected the encoder that made these vectors ({want!r}), got "
                         f"{embedder.name!r}, whose probe vectors have shape {b.shape}, not {a.shape}")
    cos, ratio = _cosines(a, b), _norm_ratios(a, b)
    if cos.min() < COMPATIBLE_COSINE or np.abs(ratio - 1).max() > COMPATIBLE_NORM:
        raise ValueError(f"embedder: expected the encoder that made these vectors ({want!r}), got "
                         f"{embedder.name!r}, whose vectors differ (probe cosine {cos.min():.6f}, "
                         f"norm ratio {ratio[np.argmax(np.abs(ratio - 1))]:.6f})")


def _norm_ratios(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    return np.where((na == 0) & (nb == 0), 1.0, nb / np.maximum(na, 1e-30))


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    both_zero = (na == 0) & (nb == 0)
    cos = (a * b).sum(1) / np.maximum(na * nb, 1e-30)
    return np.where(both_zero, 1.0, cos)
