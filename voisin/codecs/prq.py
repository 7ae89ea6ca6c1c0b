"""Product additive quantizers (FAISS's ``ProductResidualQuantizer`` and
``ProductLocalSearchQuantizer``).

The d dimensions are cut into ``nsplits`` sub-spaces of d / nsplits; each is
encoded by its own ResidualQuantizer (or LocalSearchQuantizer) of ``Msub``
codebooks (ST_decompress), and
the M = nsplits * Msub indices share one code, sub-space after sub-space.
``codebooks`` is FAISS's table (total_codebook_size, d / nsplits); the
kernels see every codeword zero-padded to d (:meth:`full_codebooks`), so the
look-up tables and decoding are those of any additive quantizer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import as_matrix, check_int
from .additive import ST_decompress, AdditiveQuantizer
from .rq import ResidualQuantizer


class ProductAdditiveQuantizer(AdditiveQuantizer):
    """``nsplits`` additive quantizers of ``Msub`` x ``nbits`` bits on sub-spaces
    (``quantizers``, or ``subquantizer(s)``); subclasses choose their kind."""

    def _make_sub(self, dsub: int, Msub: int, nbits: int) -> AdditiveQuantizer:
        raise NotImplementedError

    def __init__(self, d: int, nsplits: int, Msub: int, nbits: int,
                 search_type: int = ST_decompress):
        nsplits = check_int(nsplits, "nsplits", lo=1)
        Msub = check_int(Msub, "Msub", lo=1)
        if check_int(d, "d", lo=1) % nsplits:
            raise ValueError(f"nsplits: the dimension d={d} must be a multiple of nsplits={nsplits}")
        self.nsplits = nsplits
        self.quantizers = [self._make_sub(d // nsplits, Msub, nbits) for _ in range(nsplits)]
        self._full: np.ndarray | None = None
        super().__init__(d, [b for q in self.quantizers for b in q.nbits], search_type)

    @property
    def codebook_dim(self) -> int:
        return self.d // self.nsplits

    def subquantizer(self, s: int) -> AdditiveQuantizer:
        return self.quantizers[check_int(s, "s", lo=0, hi=self.nsplits - 1)]

    def _split_ranges(self):
        """(sub-quantizer, its dimensions, its codebook rows, its stages) per split."""
        ds, m0 = self.codebook_dim, 0
        for s, q in enumerate(self.quantizers):
            rows = slice(int(self.codebook_offsets[m0]), int(self.codebook_offsets[m0 + q.M]))
            yield q, slice(s * ds, (s + 1) * ds), rows, slice(m0, m0 + q.M)
            m0 += q.M

    def _codebooks_changed(self) -> None:
        self._full = None
        for q, _, rows, _ in self._split_ranges():
            q.set_codebooks(self.codebooks[rows])

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_full"] = None
        return state

    def full_codebooks(self) -> np.ndarray:
        if self._full is None or self._full.shape[0] != self.total_codebook_size:
            full = np.zeros((self.total_codebook_size, self.d), dtype=np.float32)
            for _, dims, rows, _ in self._split_ranges():
                full[rows, dims] = self.codebooks[rows]
            self._full = full
        return self._full

    def train(self, x: Any) -> None:
        """Train each sub-space's residual quantizer, then the norm encoding."""
        self.train_validated(as_matrix(x, self.d, "x"))

    def train_validated(self, x: np.ndarray) -> None:
        parts = []
        for q, dims, _, _ in self._split_ranges():
            q.train_validated(np.ascontiguousarray(x[:, dims]))
            parts.append(q.codebooks)
        self.codebooks = np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
        self._full = None
        self.is_trained = True
        y = self.decode_unpacked(self._encode_idx(x))
        self.train_norm(np.einsum("ij,ij->i", y, y))
        self.compute_codebook_tables()

    def _encode_idx(self, x: np.ndarray) -> np.ndarray:
        out = np.empty((x.shape[0], self.M), dtype=np.int32)
        for q, dims, _, stages in self._split_ranges():
            out[:, stages] = q._encode_idx(np.ascontiguousarray(x[:, dims]))
        return out


class ProductResidualQuantizer(ProductAdditiveQuantizer):
    """``nsplits`` residual quantizers of ``Msub`` x ``nbits`` bits on sub-spaces.

    Example:
        >>> import numpy as np, voisin
        >>> x = np.random.default_rng(0).random((3000, 16), dtype="float32")
        >>> prq = voisin.ProductResidualQuantizer(16, 2, 2, 5)
        >>> for q in prq.quantizers:
        ...     q.train_type = voisin.ResidualQuantizer.Train_default
        >>> prq.train(x)
        >>> prq.compute_codes(x[:3]).shape, prq.codebooks.shape
        ((3, 3), (128, 8))
    """

    def _make_sub(self, dsub: int, Msub: int, nbits: int) -> ResidualQuantizer:
        return ResidualQuantizer(dsub, Msub, nbits)


class ProductLocalSearchQuantizer(ProductAdditiveQuantizer):
    """``nsplits`` local search quantizers of ``Msub`` x ``nbits`` bits on sub-spaces
    (FAISS ``ProductLocalSearchQuantizer``).

    Example:
        >>> import numpy as np, voisin
        >>> x = np.random.default_rng(0).random((1000, 8), dtype="float32")
        >>> plsq = voisin.ProductLocalSearchQuantizer(8, 2, 2, 4)
        >>> for q in plsq.quantizers:
        ...     q.train_iters = 3
        >>> plsq.train(x)
        >>> plsq.compute_codes(x[:3]).shape
        (3, 2)
    """

    def _make_sub(self, dsub: int, Msub: int, nbits: int):
        from .lsq import LocalSearchQuantizer
        return LocalSearchQuantizer(dsub, Msub, nbits)
