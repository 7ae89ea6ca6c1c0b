"""The additive-quantizer part of ``index_factory``'s grammar.

Tokens (FAISS's spellings, ``index_factory.cpp``):

    RQ{m}x{b}[_{m}x{b}...][_N{norm}]     residual quantizer, e.g. RQ8x8, RQ1x16_6x8
    LSQ{m}x{b}[_N{norm}]                 local search quantizer
    PRQ{n}x{m}x{b}[_N{norm}]             n sub-spaces, each an RQ of m x b bits
    PLSQ{n}x{m}x{b}[_N{norm}]            n sub-spaces, each an LSQ
    RQ{m}x4fs[r][_{bbs}][_N{norm}]       4-bit fast-scan (L2 needs _Nrq2x4; r: IVF residuals)
    LSQ{m}x4fs[r][_{bbs}][_N{norm}]
    PRQ{n}x{m}x4fs[r][_{bbs}][_N{norm}], PLSQ{n}x{m}x4fs...   product forms
    RCQ{m}x{b}[_{m}x{b}...]              residual coarse quantizer (IVF{2**bits}(RCQ...))
    norm := none | float | qint8 | qint4 | cqint8 | cqint4 | lsq2x4 | rq2x4

Without ``_N`` the search type is ST_decompress for L2 and ST_LUT_nonorm for
inner product, as FAISS. The parser (voisin/factory.py) hands each token here
with a ``fail(why)`` that builds its positioned error.
"""

from __future__ import annotations

import importlib
import re
from typing import Any, Callable

from .index import Index
from .metric import METRIC_L2

# FAISS's _N suffixes (aq_search_type), as AdditiveQuantizer search types
AQ_NORMS = {"none": 1, "float": 3, "qint8": 4, "qint4": 5, "cqint8": 6, "cqint4": 7,
            "lsq2x4": 8, "rq2x4": 9}

Fail = Callable[[str], Exception]

_FLAT = {"RQ": "IndexResidualQuantizer", "LSQ": "IndexLocalSearchQuantizer",
         "PRQ": "IndexProductResidualQuantizer", "PLSQ": "IndexProductLocalSearchQuantizer"}
_FLAT_FS = {"RQfs": "IndexResidualQuantizerFastScan", "LSQfs": "IndexLocalSearchQuantizerFastScan",
            "PRQfs": "IndexProductResidualQuantizerFastScan",
            "PLSQfs": "IndexProductLocalSearchQuantizerFastScan"}
_IVF = {"RQ": "IndexIVFResidualQuantizer", "LSQ": "IndexIVFLocalSearchQuantizer",
        "PRQ": "IndexIVFProductResidualQuantizer", "PLSQ": "IndexIVFProductLocalSearchQuantizer"}


def _stages(spec: str, what: str, fail: Fail) -> list[int]:
    """``8x8_1x16`` -> bits per stage."""
    bits: list[int] = []
    for part in spec.split("_"):
        M, b = (int(v) for v in part.split("x"))
        if M <= 0 or not 1 <= b <= 20:
            raise fail(f"{what} needs >= 1 stages of 1 to 20 bits, got {part}")
        bits += [b] * M
    return bits


def _norm(name: str | None, metric: int, fail: Fail) -> int:
    if name is None:
        # FAISS: exact distances for L2, a plain look-up table for inner product
        return 0 if metric == METRIC_L2 else 1
    st = AQ_NORMS.get(name)
    if st is None:
        raise fail(f"unknown norm encoding _N{name}; expected one of "
                   + ", ".join("_N" + k for k in AQ_NORMS))
    return st


def _parse_fastscan(text: str, d: int, metric: int, fail: Fail) -> tuple[str, Any, int] | None:
    """``RQ{m}x4fs[r][_{bbs}][_N{norm}]``, ``LSQ...``, ``PRQ{n}x{m}x4fs...``, ``PLSQ...``
    (FAISS's additive fast-scan indexes)."""
    f = re.fullmatch(r"(RQ|LSQ|PRQ|PLSQ)(\d+)(?:x(\d+))?x4fs(r?)(?:_(\d+))?(?:_N(\w+))?", text)
    if not f:
        if re.fullmatch(r"P?(RQ|LSQ)\d+(x\d+)?x\d+fs.*", text):
            raise fail("additive fast-scan works on 4-bit codebooks: RQ{m}x4fs[_{bbs}]_Nrq2x4, "
                       "LSQ{m}x4fs[_{bbs}]_Nlsq2x4, PRQ{n}x{m}x4fs..., PLSQ{n}x{m}x4fs...")
        return None
    kind = f.group(1)
    product = kind.startswith("P")
    if product != (f.group(3) is not None):
        raise fail(f"{kind} fast-scan: expected " + ("PRQ{n}x{m}x4fs" if product else
                                                     "RQ{m}x4fs / LSQ{m}x4fs"))
    nums = (int(f.group(2)), int(f.group(3))) if product else (int(f.group(2)),)
    bbs = int(f.group(5)) if f.group(5) else 32
    if min(nums) <= 0:
        raise fail(f"{kind} fast-scan needs at least one codebook")
    if product and d % nums[0]:
        raise fail(f"{kind}{nums[0]}: dimension {d} is not a multiple of {nums[0]}")
    if bbs <= 0 or bbs % 32:
        raise fail(f"fast-scan block size must be a positive multiple of 32, got {bbs}")
    st = _norm(f.group(6), metric, fail)
    if metric == METRIC_L2 and st not in (8, 9):
        raise fail(f"{kind} fast-scan under L2 stores the norm in 2x4 bits: add _Nrq2x4 or "
                   f"_Nlsq2x4, e.g. {text}_N{'lsq' if 'LSQ' in kind else 'rq'}2x4 (as FAISS)")
    return kind + "fs", (nums, bbs, bool(f.group(4))), st


def parse_aq(text: str, d: int, metric: int, fail: Fail) -> tuple[str, Any, int] | None:
    """(kind, constructor arguments, search type) of an additive token, or None."""
    fs = _parse_fastscan(text, d, metric, fail)
    if fs is not None:
        return fs
    q = re.fullmatch(r"LSQ(\d+)x(\d+)(?:_N(\w+))?", text)
    if q:
        M, b = int(q.group(1)), int(q.group(2))
        if M <= 0 or not 1 <= b <= 16:
            raise fail("LSQ needs M >= 1 codebooks of 1 to 16 bits")
        return "LSQ", (M, b), _norm(q.group(3), metric, fail)
    p = re.fullmatch(r"P(RQ|LSQ)(\d+)x(\d+)x(\d+)(?:_N(\w+))?", text)
    if p:
        kind = "P" + p.group(1)
        nsplits, msub, b = (int(v) for v in p.groups()[1:4])
        if nsplits <= 0 or msub <= 0 or not 1 <= b <= 16:
            raise fail(f"{kind} needs nsplits >= 1, Msub >= 1 and 1 to 16 bits")
        if d % nsplits:
            raise fail(f"{kind}{nsplits}: dimension {d} is not a multiple of {nsplits}")
        return kind, (nsplits, msub, b), _norm(p.group(5), metric, fail)
    m = re.fullmatch(r"RQ(\d+x\d+(?:_\d+x\d+)*)(?:_N(\w+))?", text)
    if m:
        return "RQ", _stages(m.group(1), "RQ", fail), _norm(m.group(2), metric, fail)
    if re.match(r"LSQ\d", text):
        raise fail("malformed LSQ token; expected LSQ{m}x{b}, e.g. LSQ8x8")
    if re.match(r"P?RQ\d|PLSQ\d", text):
        raise fail("malformed RQ token; expected RQ{m}x{b} (RQ8x8, RQ1x16_6x8, RQ8x8_Nqint8), "
                   "PRQ{n}x{m}x{b} (PRQ2x4x8) or PLSQ{n}x{m}x{b}")
    return None


def _cls(module: str, name: str) -> Any:
    return getattr(importlib.import_module(f"voisin.{module}"), name)


def build_flat(parsed: tuple[str, Any, int], d: int, metric: int) -> Index:
    kind, args, st = parsed
    if kind in _FLAT_FS:
        nums, bbs, by_residual = args
        if by_residual:
            raise ValueError(f"{kind[:-2]}...x4fsr: the residual flag 'r' exists after IVF only "
                             "(IVF{n},RQ{m}x4fsr_Nrq2x4)")
        return _cls("indexes.aq_fastscan", _FLAT_FS[kind])(d, *nums, 4, metric, st, bbs)
    cls = _cls("indexes.additive", _FLAT[kind])
    return cls(d, args, metric, st) if kind == "RQ" else cls(d, *args, metric, st)


def build_ivf(parsed: tuple[str, Any, int], quantizer: Index, d: int, nlist: int,
              metric: int) -> Index:
    kind, args, st = parsed
    if kind in _FLAT_FS:
        nums, bbs, by_residual = args
        name = "IndexIVF" + _FLAT_FS[kind][len("Index"):]
        index = _cls("indexes.aq_fastscan", name)(quantizer, d, nlist, *nums, 4, metric, st, bbs)
        # FAISS's factory: residual codes only with the 'r' flag
        index.by_residual = by_residual
        return index
    cls = _cls("indexes.ivf_rq", _IVF[kind])
    if kind == "RQ":
        return cls(quantizer, d, nlist, args, metric, st)
    return cls(quantizer, d, nlist, *args, metric, st)


def build_rcq(text: str, d: int, metric: int, fail: Fail) -> Index:
    """``RCQ{m}x{b}[_{m}x{b}...]``: a ResidualCoarseQuantizer."""
    m = re.fullmatch(r"RCQ(\d+x\d+(?:_\d+x\d+)*)", text)
    if not m:
        raise fail("malformed RCQ token; expected RCQ{m}x{b}, e.g. RCQ2x8 or RCQ1x10_1x6")
    bits = _stages(m.group(1), "RCQ", fail)
    if sum(bits) > 30:
        raise fail(f"RCQ: 2**{sum(bits)} centroids are too many for an IVF")
    return _cls("indexes.rcq", "ResidualCoarseQuantizer")(d, bits, metric)
