"""Scalar quantizer: each component of a vector stored on 8, 4 or 16 bits.

Mirrors FAISS's ``ScalarQuantizer`` field by field (``qtype``, ``rangestat``,
``rangestat_arg``, ``d``, ``code_size``, ``trained``) so index files map 1:1,
and encodes bit-for-bit as faiss-cpu does:

* SQ8 / SQ4 (non-uniform): per dimension a range ``[vmin, vmin + vdiff]`` is
  learnt; ``trained = [vmin_0..vmin_{d-1}, vdiff_0..vdiff_{d-1}]``; a component
  is coded ``floor(K * clip((x - vmin) / vdiff, 0, 1))`` with K = 255 or 15
  and decoded at the bucket centre ``vmin + (c + 0.5) / K * vdiff``. SQ4 packs
  two components per byte, the even one in the low nibble.
* the ``_uniform`` variants learn one range for all dimensions (``trained`` =
  [vmin, vdiff]).
* fp16 is IEEE half precision (round to nearest even), bf16 keeps the top 16
  bits of the float32; neither needs training.
* 8bit_direct stores ``uint8(int(x))`` (values meant to be in 0..255).

Example:
    >>> import numpy as np
    >>> from voisin.codecs.sq import ScalarQuantizer, QT_8bit
    >>> x = np.random.default_rng(0).random((1000, 8), dtype="float32")
    >>> sq = ScalarQuantizer(8, QT_8bit)
    >>> sq.train(x)
    >>> codes = sq.compute_codes(x)
    >>> codes.shape, bool(np.abs(sq.decode(codes) - x).max() <= 0.5 / 255 + 1e-6)
    ((1000, 8), True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import as_matrix, check_dimension, check_float, check_int
from ..kernels import sq as K

# FAISS's enum values (ScalarQuantizer::QuantizerType / RangeStat)
QT_8bit = 0
QT_4bit = 1
QT_8bit_uniform = 2
QT_4bit_uniform = 3
QT_fp16 = 4
QT_8bit_direct = 5
QT_6bit = 6
QT_bf16 = 7

RS_minmax = 0
RS_meanstd = 1
RS_quantiles = 2
RS_optim = 3

_NAMES = {QT_8bit: "SQ8", QT_4bit: "SQ4", QT_8bit_uniform: "SQ8_uniform", QT_4bit_uniform: "SQ4_uniform",
          QT_fp16: "SQfp16", QT_8bit_direct: "SQ8_direct", QT_bf16: "SQbf16", QT_6bit: "SQ6"}
_SUPPORTED = (QT_8bit, QT_4bit, QT_8bit_uniform, QT_4bit_uniform, QT_fp16, QT_8bit_direct, QT_bf16,
              QT_6bit)
# bits per component of the trained (level) types
_LEVEL_BITS = {QT_8bit: 8, QT_8bit_uniform: 8, QT_6bit: 6, QT_4bit: 4, QT_4bit_uniform: 4}


def _half_lut() -> np.ndarray:
    return np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)


def _bf16_lut() -> np.ndarray:
    return (np.arange(65536, dtype=np.uint32) << 16).view(np.float32)


_LUTS: dict[int, np.ndarray] = {}


def _lut(kind: int) -> np.ndarray:
    if kind not in _LUTS:
        _LUTS[kind] = _half_lut() if kind == K.KIND_FP16 else _bf16_lut()
    return _LUTS[kind]


_EMPTY_LUT = np.zeros(1, dtype=np.float32)


def _encode_fp16(x: np.ndarray) -> np.ndarray:
    """float32 -> IEEE half bits with FAISS's rounding: ties round away from
    zero (numpy rounds them to even). Half-subnormal magnitudes use numpy's
    conversion; overflow saturates to infinity."""
    h = x.astype(np.float16).view(np.uint16).copy()
    bits = x.view(np.uint32)
    mag = bits & np.uint32(0x7FFFFFFF)
    normal = (mag >= np.uint32(113 << 23)) & (mag < np.uint32(143 << 23))
    tie = normal & ((mag & np.uint32(0x1FFF)) == np.uint32(0x1000))
    if tie.any():
        h[tie] = (((mag[tie] - np.uint32(112 << 23)) + np.uint32(0x1000)) >> np.uint32(13)).astype(np.uint16) \
            | ((bits[tie] >> np.uint32(16)) & np.uint32(0x8000)).astype(np.uint16)
    return h


def qtype_name(qtype: int) -> str:
    return _NAMES.get(qtype, f"qtype {qtype}")


class ScalarQuantizer:
    """Per-component quantizer (FAISS's ``ScalarQuantizer``); see the module docstring.

    Example:
        >>> import numpy as np
        >>> sq = ScalarQuantizer(4, QT_fp16)
        >>> sq.decode(sq.compute_codes(np.array([[1.0, 2.5, -3.0, 0.1]]))).round(3).tolist()
        [[1.0, 2.5, -3.0, 0.1]]
    """

    QT_8bit, QT_4bit, QT_8bit_uniform, QT_4bit_uniform = QT_8bit, QT_4bit, QT_8bit_uniform, QT_4bit_uniform
    QT_fp16, QT_8bit_direct, QT_6bit, QT_bf16 = QT_fp16, QT_8bit_direct, QT_6bit, QT_bf16
    RS_minmax, RS_meanstd, RS_quantiles, RS_optim = RS_minmax, RS_meanstd, RS_quantiles, RS_optim

    def __init__(self, d: int, qtype: int = QT_8bit, rangestat: int = RS_minmax,
                 rangestat_arg: float = 0.0):
        self.d = check_dimension(d)
        qtype = check_int(qtype, "qtype")
        if qtype not in _SUPPORTED:
            raise ValueError(f"qtype: {qtype_name(qtype)} is not supported; use QT_8bit, QT_4bit, "
                             "QT_8bit_uniform, QT_4bit_uniform, QT_6bit, QT_fp16, QT_bf16 or QT_8bit_direct")
        self.qtype = qtype
        self.rangestat = check_int(rangestat, "rangestat", lo=0, hi=3)
        self.rangestat_arg = check_float(rangestat_arg, "rangestat_arg")
        self.trained = np.zeros(0, dtype=np.float32)
        self.code_size = self._code_size()
        self._tables: tuple[int, np.ndarray, np.ndarray, np.ndarray] | None = None

    def _code_size(self) -> int:
        if self.qtype in (QT_4bit, QT_4bit_uniform):
            return (self.d + 1) // 2
        if self.qtype == QT_6bit:
            return (6 * self.d + 7) // 8
        if self.qtype in (QT_fp16, QT_bf16):
            return 2 * self.d
        return self.d

    @property
    def is_trained(self) -> bool:
        return not self.needs_training() or self.trained.size > 0

    def needs_training(self) -> bool:
        return self.qtype in _LEVEL_BITS

    def __repr__(self) -> str:
        return f"ScalarQuantizer(d={self.d}, {qtype_name(self.qtype)}, code_size={self.code_size})"

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_tables"] = None
        return state

    # --- training -------------------------------------------------------
    def _range(self, x: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
        rs, arg = self.rangestat, self.rangestat_arg
        if rs == RS_minmax:
            vmin = x.min(axis=axis).astype(np.float64)
            vmax = x.max(axis=axis).astype(np.float64)
            exp = (vmax - vmin) * arg
            vmin, vmax = vmin - exp, vmax + exp
        elif rs == RS_meanstd:
            mean = x.mean(axis=axis, dtype=np.float64)
            std = x.std(axis=axis, dtype=np.float64)
            vmin, vmax = mean - std * arg, mean + std * arg
        elif rs == RS_quantiles:
            vals = np.sort(x if axis == 0 else x.reshape(-1), axis=0)
            n = vals.shape[0]
            o = min(max(int(arg * n), 0), (n - 1) // 2)
            vmin, vmax = vals[o].astype(np.float64), vals[n - 1 - o].astype(np.float64)
        else:
            raise NotImplementedError("rangestat RS_optim is not implemented; use RS_minmax, RS_meanstd "
                                      "or RS_quantiles")
        return np.asarray(vmin), np.asarray(vmax - vmin)

    def train(self, x: Any) -> None:
        """Learn the ranges (SQ8/SQ6/SQ4); fp16/bf16/direct need nothing."""
        x = as_matrix(x, self.d, "x")
        if x.shape[0] == 0:
            raise ValueError("x: training needs at least one vector, got 0")
        if self.qtype in (QT_8bit, QT_6bit, QT_4bit):
            vmin, vdiff = self._range(x, 0)
            self.trained = np.concatenate([vmin, vdiff]).astype(np.float32)
        elif self.qtype in (QT_8bit_uniform, QT_4bit_uniform):
            vmin, vdiff = self._range(x, None)
            self.trained = np.array([vmin, vdiff], dtype=np.float32)
        self._tables = None

    # --- coding ------------------------------------------------------------
    def _vmin_vdiff(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.is_trained:
            raise RuntimeError(f"ScalarQuantizer {qtype_name(self.qtype)} is not trained: call train(x) first")
        if self.qtype in (QT_8bit_uniform, QT_4bit_uniform):
            return (np.full(self.d, self.trained[0], np.float32), np.full(self.d, self.trained[1], np.float32))
        return self.trained[:self.d], self.trained[self.d:]

    def tables(self) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
        """(kind, a, b, lut) for the kernels: component = a + b * c, or lut[c]."""
        if self._tables is None:
            d = self.d
            lut = _EMPTY_LUT
            if self.qtype in _LEVEL_BITS:
                bits = _LEVEL_BITS[self.qtype]
                levels = float((1 << bits) - 1)
                vmin, vdiff = self._vmin_vdiff()
                b = (vdiff.astype(np.float64) / levels)
                a = vmin.astype(np.float64) + 0.5 * b
                kind = {8: K.KIND_8BIT, 6: K.KIND_6BIT, 4: K.KIND_4BIT}[bits]
            elif self.qtype == QT_8bit_direct:
                a, b, kind = np.zeros(d), np.ones(d), K.KIND_8BIT
            else:
                kind = K.KIND_FP16 if self.qtype == QT_fp16 else K.KIND_BF16
                a, b = np.zeros(d), np.ones(d)
                lut = _lut(kind)
            self._tables = (kind, np.ascontiguousarray(a, dtype=np.float32),
                            np.ascontiguousarray(b, dtype=np.float32), lut)
        return self._tables

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Codes of validated float32 rows, (n, code_size) uint8."""
        n = x.shape[0]
        out = np.zeros((n, self.code_size), dtype=np.uint8)
        if self.qtype in _LEVEL_BITS:
            vmin, vdiff = self._vmin_vdiff()
            bits = _LEVEL_BITS[self.qtype]
            K.encode_levels(x, vmin, vdiff, float((1 << bits) - 1), bits, out)
        elif self.qtype == QT_fp16:
            out[:] = _encode_fp16(x).view(np.uint8).reshape(n, self.code_size)
        elif self.qtype == QT_bf16:
            # round half away from zero on the dropped 16 bits, as FAISS does
            bits = x.view(np.uint32).astype(np.uint64)
            out[:] = ((bits + 0x8000) >> 16).astype(np.uint16).view(np.uint8).reshape(n, self.code_size)
        else:  # 8bit_direct: C's (uint8_t)(int)x, wrapping like FAISS
            out[:] = (np.trunc(x).astype(np.int64) & 0xFF).astype(np.uint8)
        return out

    def compute_codes(self, x: Any) -> np.ndarray:
        """FAISS's name: codes of ``x`` (n, d) as (n, code_size) uint8."""
        return self.encode(as_matrix(x, self.d, "x"))

    def decode(self, codes: Any) -> np.ndarray:
        """Vectors back from codes, (n, d) float32."""
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        if codes.ndim != 2 or codes.shape[1] != self.code_size:
            raise ValueError(f"codes: expected shape (n, {self.code_size}), got {codes.shape}")
        kind, a, b, lut = self.tables()
        out = np.empty((codes.shape[0], self.d), dtype=np.float32)
        if codes.shape[0]:
            K.decode(codes, kind, a, b, lut, out)
        return out
