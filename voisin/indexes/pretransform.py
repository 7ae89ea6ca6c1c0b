"""IndexPreTransform: a chain of vector transforms in front of any index."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..index import Index, Refinement
from ..selector import IDSelector


def _check_transform(t: Any, name: str) -> Any:
    for attr in ("d_in", "d_out", "is_trained", "train", "apply", "reverse_transform"):
        if not hasattr(t, attr):
            raise TypeError(f"{name}: expected a vector transform (PCAMatrix, OPQMatrix, "
                            f"NormalizationTransform...) with {attr!r}, got {t!r}")
    return t


class IndexPreTransform(Index):
    """Transforms vectors (PCA, OPQ, L2 normalisation...) before the wrapped index sees them.

    Accepts ``IndexPreTransform(transform, index)``, ``IndexPreTransform([t1, t2], index)``
    or FAISS's ``IndexPreTransform(index)`` followed by ``prepend_transform(t)``.
    Training trains each untrained transform on the output of the previous
    one, then the index. ``reconstruct`` maps back through ``reverse_transform``.
    Any object with ``d_in``, ``d_out``, ``is_trained``, ``train``, ``apply``
    and ``reverse_transform`` can be a transform.

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).normal(size=(2000, 32)).astype("float32")
        >>> index = voisin.IndexPreTransform(voisin.PCAMatrix(32, 16), voisin.IndexFlatL2(16))
        >>> index.train(xb); index.add(xb)
        >>> D, I = index.search(xb[:2], 1)
        >>> I.ravel().tolist()
        [0, 1]
    """

    _extra_metrics = True  # the metric is the wrapped index's, checked there

    def __init__(self, transform: Any, index: Index | None = None):
        if index is None and isinstance(transform, Index):
            chain, index = [], transform
        else:
            chain = list(transform) if isinstance(transform, (list, tuple)) else [transform]
        if not isinstance(index, Index):
            raise TypeError(f"index: expected a voisin Index to wrap, got {index!r}")
        for i, t in enumerate(chain):
            _check_transform(t, f"transform[{i}]")
        for a, b in zip(chain, chain[1:]):
            if a.d_out != b.d_in:
                raise ValueError(f"transforms: {a!r} outputs d={a.d_out} but {b!r} expects d={b.d_in}")
        if chain and chain[-1].d_out != index.d:
            raise ValueError(f"index: dimension {index.d} differs from the transform output d={chain[-1].d_out}")
        super().__init__(chain[0].d_in if chain else index.d, index.metric_type)
        self.chain = chain
        self.index = index
        self.params_type = index.params_type
        self.ntotal = index.ntotal

    def prepend_transform(self, t: Any) -> None:
        """Put ``t`` in front of the chain (its output must match the current input)."""
        _check_transform(t, "t")
        if t.d_out != self.d:
            raise ValueError(f"t: outputs d={t.d_out}, the chain expects d={self.d}")
        self.chain.insert(0, t)
        self.d = t.d_in

    @property
    def is_trained(self) -> bool:  # type: ignore[override]
        return all(t.is_trained for t in getattr(self, "chain", [])) and \
            (not hasattr(self, "index") or self.index.is_trained)

    @is_trained.setter
    def is_trained(self, value: bool) -> None:
        pass  # derived from the transforms and the wrapped index

    def __repr__(self) -> str:
        return f"IndexPreTransform({' -> '.join(map(repr, self.chain))} -> {self.index!r})"

    def apply_chain(self, x: np.ndarray) -> np.ndarray:
        for t in self.chain:
            x = np.ascontiguousarray(t.apply(x), dtype=np.float32)
        return x

    def reverse_chain(self, y: np.ndarray) -> np.ndarray:
        for t in reversed(self.chain):
            y = np.ascontiguousarray(t.reverse_transform(y), dtype=np.float32)
        return y

    def _train(self, x: np.ndarray) -> None:
        for t in self.chain:
            if not t.is_trained:
                t.train(x)
            x = np.ascontiguousarray(t.apply(x), dtype=np.float32)
        if not self.index.is_trained or self._index_wants_training():
            self.index.train(x)

    def _index_wants_training(self) -> bool:
        return False

    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        y = self.apply_chain(x)
        if ids is None:
            self.index.add(y)
        else:
            self.index.add_with_ids(y, ids)
        self.ntotal = self.index.ntotal

    def _search(self, x, k, params, D, I):
        return self.index._search(self.apply_chain(x), k, params, D, I)

    def _search_fast(self, x, k):
        return self.index._search_fast(self.apply_chain(x), k)

    def _linear_map(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(A, b) when the chain is one trained linear map y = A x + b, else None."""
        from ..transforms import LinearTransform
        if len(self.chain) != 1 or not isinstance(self.chain[0], LinearTransform) \
                or not self.chain[0].is_trained:
            return None
        t = self.chain[0]
        b = t.b if t.have_bias else np.zeros(t.d_out, dtype=np.float32)
        return (np.ascontiguousarray(t.A, dtype=np.float32),
                np.ascontiguousarray(b, dtype=np.float32))

    def _walk_refinement(self, xe: np.ndarray, ref: Refinement) -> Refinement:
        """``ref`` with this chain between the exact space and the wrapped index: a
        single linear map is handed down for the index to apply in its kernel,
        anything else is applied here to the walk-space rows."""
        lin = self._linear_map() if ref.xw is None and ref.A is None else None
        if lin is not None:
            return ref._replace(A=lin[0], b=lin[1])
        if ref.xw is not None:
            xw = ref.xw
        elif ref.A is not None:
            xw = xe @ ref.A.T + ref.b
        else:
            xw = xe
        return ref._replace(xw=self.apply_chain(xw), A=None, b=None)

    def _search_refined(self, xe, k, params, ref, D, I, fast=False):
        return self.index._search_refined(xe, k, params, self._walk_refinement(xe, ref), D, I,
                                          fast)

    def _add_refined(self, x, ref):
        with self._write_lock:
            done = self.index._add_refined(self.apply_chain(x), ref)
            self.ntotal = self.index.ntotal
        return done

    def _range_search(self, x, radius, params):
        return self.index._range_search(self.apply_chain(x), radius, params)

    def _remove(self, sel: IDSelector) -> int:
        removed = self.index._remove(sel)
        self.ntotal = self.index.ntotal
        return removed

    def _reconstruct_keys(self, keys: np.ndarray) -> np.ndarray:
        return self.reverse_chain(self.index._reconstruct_keys(keys))

    def _reset(self) -> None:
        self.index._reset()
        self.ntotal = 0
