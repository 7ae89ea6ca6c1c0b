"""IndexHNSWSQ: the HNSW graph over 8-bit scalar-quantizer codes (FAISS's IndexHNSWSQ),
and the padded SQ8 code rows the graph kernels walk (also the temporary codes an
IndexHNSWFlat bulk build walks)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _aligned
from .._validate import check_int
from ..kernels import hnsw_search as KS
from ..kernels.hnsw_space import SQ8Space
from ..metric import METRIC_L2
from .hnsw import IndexHNSW

# SQ8 code rows are padded to a multiple of this many bytes in memory (files hold
# d bytes, as FAISS's): whole 32-byte rows vectorise without a remainder loop and
# a 50-d row sits in one cache line (docs/hnsw-levers.md)
SQ8_ROW_ALIGN = 32


def sq8_params(sq: Any, width: int) -> np.ndarray:
    """(3, width) float32 (cell start, step, step^2) of an 8-bit ScalarQuantizer,
    0 past column d (padded code columns then add nothing to a distance)."""
    _, a, b, _ = sq.tables()
    out = np.zeros((3, width), dtype=np.float32)
    out[:, :a.size] = np.stack([a - 0.5 * b, b, b * b])
    return out


def sq8_padded(sq: Any, x: np.ndarray, width: int) -> np.ndarray:
    """Codes of float rows ``x`` under ``sq``, in cache-aligned rows of ``width`` bytes."""
    out = _aligned.zeros((x.shape[0], width), np.uint8)
    for a in range(0, x.shape[0], 65536):  # bounds the float temporaries of the encoder
        out[a:a + 65536, :sq.code_size] = sq.encode(x[a:a + 65536])
    return out


def padded_width(d: int) -> int:
    """Bytes of an SQ8 code row in memory: d rounded up to SQ8_ROW_ALIGN."""
    return -(-d // SQ8_ROW_ALIGN) * SQ8_ROW_ALIGN


class IndexHNSWSQ(IndexHNSW):
    """HNSW graph over 8-bit scalar-quantizer codes (FAISS's ``IndexHNSWSQ``).

    4x less vector memory than :class:`IndexHNSWFlat`; needs ``train`` (the
    per-dimension ranges, FAISS's ScalarQuantizer) before ``add``; distances are
    those of the decoded codes. Wrapped in ``IndexRefineFlat`` (factory
    ``"HNSW32_SQ8,RFlat"``) the walk runs on the codes and the candidates are
    re-scored exactly inside it: the fastest HNSW voisin has (docs/hnsw.md).
    qtype: ``QT_8bit`` (default), ``QT_8bit_uniform`` or ``QT_8bit_direct``.

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.rand(2000, 16).astype("float32")
        >>> index = voisin.IndexHNSWSQ(16, voisin.ScalarQuantizer.QT_8bit, 16)
        >>> index.train(xb); index.add(xb)
        >>> D, I = index.search(xb[:2], 3)
        >>> fast = voisin.IndexRefineFlat(voisin.IndexHNSWSQ(16, 0, 16), 4)  # = "HNSW16_SQ8,RFlat"
        >>> fast.train(xb); fast.add(xb)
        >>> fast.search(xb[:2], 1)[1].ravel().tolist()
        [0, 1]
    """

    _search_kernel = staticmethod(KS.search_sq8)

    def __init__(self, d: int, qtype: int = 0, M: int = 32, metric: int = METRIC_L2, *,
                 seed: int = 12345, **gone: Any):
        from ..codecs.sq import QT_8bit, QT_8bit_direct, QT_8bit_uniform, ScalarQuantizer
        if gone:
            raise TypeError(
                f"IndexHNSWSQ: {', '.join(sorted(gone))} is gone: the exact re-rank is FAISS's "
                "IndexRefineFlat(IndexHNSWSQ(d, qtype, M), k_factor) (factory 'HNSW32_SQ8,RFlat')")
        if check_int(qtype, "qtype") not in (QT_8bit, QT_8bit_uniform, QT_8bit_direct):
            raise NotImplementedError(f"qtype: IndexHNSWSQ walks 8-bit codes (QT_8bit, "
                                      f"QT_8bit_uniform, QT_8bit_direct), got {qtype}")
        self.sq = ScalarQuantizer(d, qtype)
        self._width = padded_width(d)
        self._sqp = np.zeros((3, self._width), dtype=np.float32)
        super().__init__(d, M, metric, seed=seed)
        self.is_trained = not self.sq.needs_training

    def set_quantizer(self, sq: Any) -> None:
        """Install a trained ScalarQuantizer (file readers); the index must be empty."""
        if self.ntotal:
            raise RuntimeError("set_quantizer: the index already holds vectors")
        self.sq = sq
        self._sqp = sq8_params(sq, self._width) if sq.is_trained else self._sqp
        self.is_trained = bool(sq.is_trained)

    def _train(self, x: np.ndarray) -> None:
        self.sq.train(x)
        self._sqp = sq8_params(self.sq, self._width)
        self.is_trained = True

    def _empty_storage(self) -> np.ndarray:
        return _aligned.zeros((0, self._width), np.uint8)

    def _encode(self, x: np.ndarray) -> np.ndarray:
        return sq8_padded(self.sq, x, self._width)

    def _decode(self, rows: np.ndarray) -> np.ndarray:
        return self.sq.decode(rows[:, :self.sq.code_size])

    def _storage_from_rows(self, rows: np.ndarray) -> np.ndarray:
        out = _aligned.zeros((rows.shape[0], self._width), np.uint8)
        out[:, :rows.shape[1]] = rows
        return out

    def storage_rows(self) -> np.ndarray:
        """The codes (ntotal, code_size) in id order (FAISS's storage codes)."""
        return super().storage_rows()[:, :self.sq.code_size]

    def _space(self, X: np.ndarray) -> tuple:
        return SQ8Space(X, self._sqp)

    def _walk_fields(self, X: np.ndarray) -> tuple:
        return (X, self._sqp)
