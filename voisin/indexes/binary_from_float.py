"""IndexBinaryFromFloat: a binary index answered by a float index on ±1 vectors.

Codes become ±1 float vectors (:func:`binary_to_real`: bit set -> +1), which the
wrapped float index stores and searches; between ±1 vectors the squared L2
distance is 4 x the Hamming distance, so distances come back as
``round(D / 4)`` (FAISS's conversion, whatever the float metric).
"""

from __future__ import annotations

import numpy as np

from ..index import Index
from ..selector import IDSelector
from .binary import IndexBinary
from .binary_ivf import binary_to_real, real_to_binary


class IndexBinaryFromFloat(IndexBinary):
    """Wraps a float ``index`` of dimension d as a binary index of d bits.

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).integers(0, 256, (200, 4), dtype=np.uint8)
        >>> index = voisin.IndexBinaryFromFloat(voisin.IndexFlatL2(32))
        >>> index.add(xb)
        >>> index.search(xb[:2], 1)[1].ravel().tolist()
        [0, 1]
    """

    def __init__(self, index: Index):
        if not isinstance(index, Index):
            raise TypeError(f"index: expected a float voisin Index to wrap, got "
                            f"{type(index).__name__}")
        super().__init__(index.d)
        self.index = index
        self.params_type = index.params_type
        self.own_fields = True

    @property  # type: ignore[override]
    def ntotal(self) -> int:
        inner = self.__dict__.get("index")
        return 0 if inner is None else inner.ntotal

    @ntotal.setter
    def ntotal(self, n: int) -> None:
        pass  # the float index counts

    @property  # type: ignore[override]
    def is_trained(self) -> bool:
        inner = self.__dict__.get("index")
        return True if inner is None else inner.is_trained

    @is_trained.setter
    def is_trained(self, value: bool) -> None:
        pass  # follows the float index

    def _train(self, x: np.ndarray) -> None:
        self.index.train(binary_to_real(x))

    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        xf = binary_to_real(x)
        if ids is None:
            self.index.add(xf)
        else:
            self.index.add_with_ids(xf, ids)

    def _search(self, x, k, params):
        D, I = self.index.search(binary_to_real(x), k, params)
        out = np.rint(D.astype(np.float64) / 4.0)
        out = np.where(I >= 0, out, np.iinfo(np.int32).max)
        return np.clip(out, -(1 << 31), (1 << 31) - 1).astype(np.int32), I

    def _range_search(self, x, radius, params):
        # Hamming < r  <=>  L2 = 4 * Hamming < 4 r (both are integers on ±1 vectors)
        lims, D, I = self.index.range_search(binary_to_real(x), 4.0 * radius, params)
        return lims, np.rint(D.astype(np.float64) / 4.0).astype(np.int32), I

    def _remove(self, sel: IDSelector) -> int:
        return self.index.remove_ids(sel)

    def _reconstruct_keys(self, keys: np.ndarray) -> np.ndarray:
        return real_to_binary(self.index.reconstruct_batch(keys))

    def _reset(self) -> None:
        self.index.reset()
