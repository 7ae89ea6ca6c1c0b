"""``index_factory``: FAISS's description strings turned into voisin objects.

Grammar (comma-separated tokens, outermost wrappers first)::

    description := [IDMap|IDMap2 ,] body [, IDMap|IDMap2]
    body        := body , RFlat | body , Refine(description)
                 | transform , body
                 | core
    transform   := PCA{n}[W][R] | OPQ{m}[_{d}] | L2norm | ITQ[{n}] | RR[{n}] | Pad{n}
    core        := Flat | RCQ{m}x{b}[_{m}x{b}...]
                 | (IVF{n}[k|M][_HNSW{M} | _NSG{R} | (description)] | IMI{M}x{b}) ,
                       (Flat | FlatDedup | SQ8 | SQ6 | SQ4 | SQfp16 | SQbf16 | PQ{m}[x{b}][np]
                        | PQ{m}x4fs[r][_{bbs}] | RQ{m}x{b}... | PRQ{n}x{m}x{b}... | LSQ{m}x{b}...)
                 | PQ{m}[x{b}][np] | PQ{m}x4fs[_{bbs}] | SQ8 | SQ6 | SQ4 | SQfp16 | SQbf16
                 | Residual{n}[x{b}] , PQ{m}[x{b}]
                 | RQ{m}x{b}... | LSQ{m}x{b}... | PRQ{n}x{m}x{b}... | PLSQ{n}x{m}x{b}...
                   (additive quantizers: voisin/factory_additive.py)
                 | HNSW{M}[,Flat | _Flat | _SQ8 | _PQ{m}[x8] | ,PQ{m}]
                 | HNSW{M}_{nlist}+PQ{m} | HNSW{M}_2x{b}+PQ{m}   (IndexHNSW2Level; "," also)
                 | NSG[{R}][,Flat | ,PQ{m}[x{b}][np] | ,SQ8|SQ6|SQ4|SQfp16|SQbf16|SQ8_direct]
                   (",": also "_"; NN-Descent has no factory string in FAISS)
                 | LSH[{nbits}][r][t]
                 | IVF{n} , (ITQ|PCA|PCAR)[{nbit}] , SH[{period}][g|c|m]

Refinement re-ranks on the original vectors, so ``Refine(...)``'s index is
built at the input dimension even when the base starts with a transform, as in
FAISS. Every error names the offending token and its position in the string.

Tokens whose classes live in modules written separately (PQ, OPQ, HNSW) are
imported lazily; when the module is not there yet the error says so.

Why it is past 500 lines: it is one recursive-descent parser over one grammar, whose
rules call each other; the families with sub-grammars of their own live in
factory_additive.py and factory_binary.py.

Example:
    >>> import voisin
    >>> index = voisin.index_factory(16, "IDMap,Flat")
    >>> type(index).__name__, type(index.index).__name__
    ('IndexIDMap', 'IndexFlat')
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any

from ._validate import check_dimension
from .index import Index
from .metric import METRIC_L2, check_metric


class FactoryError(ValueError):
    """A description string that ``index_factory`` cannot build."""


@dataclass(frozen=True)
class _Tok:
    text: str
    pos: int  # character offset in the full description


def _fail(desc: str, tok: _Tok | None, why: str) -> FactoryError:
    if tok is None:
        return FactoryError(f"index_factory({desc!r}): {why}")
    caret = " " * (tok.pos + len("index_factory('")) + "^" * max(1, len(tok.text))
    return FactoryError(f"index_factory: {why} -- token {tok.text!r} at position {tok.pos}\n"
                        f"  index_factory({desc!r})\n  {caret}")


def _split(desc: str, text: str, offset: int) -> list[_Tok]:
    """Split on top-level commas (those outside parentheses), keeping offsets."""
    toks: list[_Tok] = []
    depth = 0
    start = 0
    for i, ch in enumerate(text + ","):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise _fail(desc, _Tok(")", offset + i), "unbalanced ')'")
        elif ch == "," and depth == 0:
            raw = text[start:i]
            stripped = raw.strip()
            pos = offset + start + (len(raw) - len(raw.lstrip()))
            if not stripped:
                raise _fail(desc, _Tok(",", offset + min(i, len(text) - 1 if text else 0)),
                            "empty token (two commas in a row, or a leading/trailing comma)")
            toks.append(_Tok(stripped, pos))
            start = i + 1
    if depth != 0:
        raise _fail(desc, _Tok("(", offset + text.rfind("(")), "unbalanced '('")
    return toks


_RABITQ = ("RaBitQ's fast-scan forms (IndexRaBitQFastScan, IndexIVFRaBitQFastScan) are not "
           "implemented in voisin; use 'RaBitQ[{b}]' or 'IVF{n},RaBitQ[{b}]' (optionally ',RFlat'), or e.g. "
           "'IVF1024,PQ32x4fs,RFlat' (docs/file-format.md, Not implemented)")


def _load(module: str, name: str) -> Any:
    """A class or constant of voisin, imported when a description needs it (the
    factory itself stays cheap to import)."""
    return getattr(importlib.import_module(f"voisin.{module}"), name)


class _Parser:
    def __init__(self, desc: str, metric: int):
        self.desc = desc
        self.metric = metric

    def fail(self, tok: _Tok | None, why: str) -> FactoryError:
        return _fail(self.desc, tok, why)

    # --- description := [IDMap ,] body [, IDMap] -------------------------
    def description(self, d: int, toks: list[_Tok]) -> Index:
        if not toks:
            raise self.fail(None, "empty description")
        head, tail = toks[0].text, toks[-1].text
        if head in ("IDMap", "IDMap2") and len(toks) > 1:
            return self._idmap(head, self.description(d, toks[1:]))
        if tail in ("IDMap", "IDMap2") and len(toks) > 1:
            return self._idmap(tail, self.description(d, toks[:-1]))
        if head in ("IDMap", "IDMap2") or tail in ("IDMap", "IDMap2"):
            raise self.fail(toks[0], f"{head} needs an index to wrap, e.g. '{head},Flat'")
        return self.body(d, toks)

    def _idmap(self, which: str, inner: Index) -> Index:
        from .indexes.idmap import IndexIDMap, IndexIDMap2
        return (IndexIDMap2 if which == "IDMap2" else IndexIDMap)(inner)

    # --- body := body,RFlat | body,Refine(...) | transform,body | core ---------
    def body(self, d: int, toks: list[_Tok]) -> Index:
        last = toks[-1]
        if last.text == "RFlat":
            if len(toks) == 1:
                raise self.fail(last, "RFlat refines a base index, e.g. 'IVF100,PQ8,RFlat'")
            base = self.body(d, toks[:-1])
            cls = _load("indexes.refine", "IndexRefineFlat")
            return cls(base)
        m = re.fullmatch(r"Refine\((.*)\)", last.text, flags=re.S)
        if m:
            if len(toks) == 1:
                raise self.fail(last, "Refine(...) refines a base index, e.g. 'IVF100,PQ8,Refine(SQ8)'")
            base = self.body(d, toks[:-1])
            inner_off = last.pos + len("Refine(")
            inner_toks = _split(self.desc, m.group(1), inner_off)
            refine = self.description(d, inner_toks)
            cls = _load("indexes.refine", "IndexRefine")
            return cls(base, refine)
        transform = self.transform(d, toks[0])
        if transform is not None:
            if len(toks) == 1:
                raise self.fail(toks[0], "a transform must be followed by an index, e.g. 'PCA32,Flat'")
            chain = [transform]
            rest = toks[1:]
            dd = transform.d_out
            # consecutive transforms form one pre-transform chain, as in FAISS
            while len(rest) > 1:
                t = self.transform(dd, rest[0])
                if t is None:
                    break
                chain.append(t)
                dd = t.d_out
                rest = rest[1:]
            inner = self.body(dd, rest)
            cls = _load("indexes.pretransform", "IndexPreTransform")
            return cls(chain if len(chain) > 1 else chain[0], inner)
        return self.core(d, toks)

    # --- transforms ------------------------------------------------------
    def transform(self, d: int, tok: _Tok) -> Any | None:
        text = tok.text
        # FAISS writes PCAW64 / PCAR64 / PCAWR64; PCA64W / PCA64R / PCA64WR are accepted too
        m = re.fullmatch(r"PCA(W?)(R?)(\d+)", text) or re.fullmatch(r"PCA()()(\d+)(W?)(R?)", text)
        if m:
            groups = m.groups()
            w = groups[0] or (groups[3] if len(groups) > 3 else "")
            r = groups[1] or (groups[4] if len(groups) > 4 else "")
            n = int(groups[2])
            if not 0 < n <= d:
                raise self.fail(tok, f"PCA output dimension must be in [1, {d}], got {n}")
            cls = _load("transforms", "PCAMatrix")
            return cls(d, n, eigen_power=-0.5 if w else 0.0, random_rotation=bool(r))
        m = re.fullmatch(r"OPQ(\d+)(?:_(\d+))?", text)
        if m:
            M = int(m.group(1))
            d_out = int(m.group(2)) if m.group(2) else d
            if M <= 0 or d_out <= 0:
                raise self.fail(tok, "OPQ needs M >= 1 and an output dimension >= 1")
            if d_out > d:
                raise self.fail(tok, f"OPQ output dimension {d_out} exceeds the input dimension {d}")
            if d_out % M:
                raise self.fail(tok, f"OPQ{M}: output dimension {d_out} is not a multiple of M={M}")
            cls = _load("transforms_opq", "OPQMatrix")
            return cls(d, M, d_out)
        if text in ("L2norm", "L2Norm"):
            cls = _load("transforms", "NormalizationTransform")
            return cls(d)
        m = re.fullmatch(r"(ITQ|RR)(\d+)?", text)
        if m:
            n = int(m.group(2)) if m.group(2) else d
            if m.group(1) == "ITQ":
                if not 0 < n <= d:
                    raise self.fail(tok, f"ITQ output dimension must be in [1, {d}], got {n}")
                # FAISS: an explicit dimension means PCA first, even when it equals d
                return _load("transforms_itq", "ITQTransform")(d, n, m.group(2) is not None)
            if n <= 0:
                raise self.fail(tok, "RR needs an output dimension >= 1")
            return _load("transforms", "RandomRotationMatrix")(d, n)
        m = re.fullmatch(r"Pad(\d+)", text)
        if m:
            # FAISS: zeros appended up to n dimensions (nothing when d >= n)
            return _load("transforms", "RemapDimensionsTransform")(d, max(int(m.group(1)), d), False)
        if re.match(r"(PCA|OPQ)", text):
            raise self.fail(tok, "malformed transform; expected PCA{n}[W][R] or OPQ{m}[_{d}]")
        return None

    # --- core index ------------------------------------------------------
    def core(self, d: int, toks: list[_Tok]) -> Index:
        tok = toks[0]
        text = tok.text
        if text == "Flat":
            self._no_more(toks, 1)
            from .indexes.flat import IndexFlat
            return IndexFlat(d, self.metric)
        m = re.fullmatch(r"IVF(\d+)([kM]?)\((.+)\)", text)
        if m:
            # FAISS's nested coarse quantizer: IVF256(RCQ2x4), IVF1024(PQ32), IVF4096(IVF64,Flat)
            nlist = int(m.group(1)) * {"": 1, "k": 1 << 10, "M": 1 << 20}[m.group(2)]
            if nlist <= 0:
                raise self.fail(tok, "IVF needs nlist >= 1")
            inner = _Tok(m.group(3), tok.pos + text.index("(") + 1)
            if len(toks) < 2:
                raise self.fail(tok, f"{text} needs a codec after it, e.g. '{text},Flat'")
            self._no_more(toks, 2)
            if inner.text.startswith("RCQ"):
                quantizer = self._rcq(d, inner)
                ncent = 1 << sum(quantizer.rq.nbits)
                if ncent != nlist:
                    raise self.fail(tok, f"{inner.text} has {ncent} centroids, not nlist={nlist}")
            else:
                # any index holds the centroids; the IVF trains it on them (FAISS's
                # quantizer_trains_alone = 2: k-means with a flat assigner, then add)
                quantizer = self.description(d, _split(self.desc, inner.text, inner.pos))
            return self.ivf(d, nlist, tok, toks[1], quantizer=quantizer)
        if text.startswith("RCQ"):
            self._no_more(toks, 1)
            return self._rcq(d, tok)
        if text.startswith("RaBitQ"):
            self._no_more(toks, 1)
            nb_bits = self._rabitq_bits(tok)
            return _load("indexes.rabitq", "IndexRaBitQ")(d, self.metric, nb_bits)
        m = re.fullmatch(r"IVF(\d+)([kM]?)_NSG(\d+)", text)
        if m:
            # FAISS's IVF{n}_NSG{R}: an NSG graph over the centroids as the coarse quantizer
            nlist = int(m.group(1)) * {"": 1, "k": 1 << 10, "M": 1 << 20}[m.group(2)]
            R = int(m.group(3))
            if nlist <= 0 or R < 2:
                raise self.fail(tok, "IVF{n}_NSG{R} needs nlist >= 1 and R >= 2")
            if len(toks) < 2:
                raise self.fail(tok, f"{text} needs a codec after it, e.g. '{text},Flat'")
            self._no_more(toks, 2)
            quantizer = _load("indexes.graph_flat", "IndexNSGFlat")(d, R, self.metric)
            return self.ivf(d, nlist, tok, toks[1], quantizer=quantizer)
        m = re.fullmatch(r"IVF(\d+)([kM]?)(?:_HNSW(\d+))?", text)
        if m:
            # FAISS's suffixes: 3k = 3 * 1024 lists, 1M = 1024 * 1024
            nlist = int(m.group(1)) * {"": 1, "k": 1 << 10, "M": 1 << 20}[m.group(2)]
            if nlist <= 0:
                raise self.fail(tok, "IVF needs nlist >= 1")
            if len(toks) < 2:
                raise self.fail(tok, f"{text} needs a codec after it, e.g. '{text},Flat' or "
                                f"'{text},SQ8'")
            hnsw_m = int(m.group(3)) if m.group(3) else None
            if hnsw_m is not None and hnsw_m < 2:
                raise self.fail(tok, "the HNSW coarse quantizer needs M >= 2")
            if len(toks) == 3 and toks[2].text.startswith("SH"):
                return self.spectral_hash(d, nlist, hnsw_m, toks[1], toks[2])
            self._no_more(toks, 2)
            return self.ivf(d, nlist, tok, toks[1], hnsw_m)
        m = re.fullmatch(r"Residual(\d+)(?:x(\d+))?", text)
        if m:
            return self.two_layer(d, m, tok, toks)
        m = re.fullmatch(r"IMI(\d+)x(\d+)", text)
        if m:
            M, nbits = int(m.group(1)), int(m.group(2))
            if not (1 <= M <= 8 and 1 <= nbits <= 16 and M * nbits <= 30):
                raise self.fail(tok, "IMI{M}x{nbits} needs 1 <= M <= 8, nbits <= 16 and at most "
                                "2**30 lists, e.g. IMI2x8")
            if d % M:
                raise self.fail(tok, f"IMI{M}x{nbits}: dimension {d} is not a multiple of M={M}")
            if self.metric != METRIC_L2:
                raise self.fail(tok, "the inverted multi-index is L2 only")
            if len(toks) < 2:
                raise self.fail(tok, f"{text} needs a codec after it, e.g. '{text},PQ16'")
            self._no_more(toks, 2)
            quantizer = _load("indexes.imi", "MultiIndexQuantizer")(d, M, nbits)
            return self.ivf(d, 1 << (M * nbits), tok, toks[1], quantizer=quantizer)
        if text.startswith("IVF"):
            raise self.fail(tok, "malformed IVF token; expected IVF{nlist}[k|M][_HNSW{M}], e.g. "
                            "IVF1024, IVF64k or IVF65536_HNSW32")
        sq = self._sq_type(tok)
        if sq is not None:
            self._no_more(toks, 1)
            cls = _load("indexes.sq", "IndexScalarQuantizer")
            return cls(d, sq, self.metric)
        pq = self._pq_args(d, tok)
        if pq is not None:
            self._no_more(toks, 1)
            M, nbits, fast = pq
            if fast:
                cls = _load("indexes.fastscan", "IndexPQFastScan")
                return cls(d, M, nbits, self.metric, **self._fastscan_opts(tok, ivf=False))
            cls = _load("indexes.pq", "IndexPQ")
            return cls(d, M, nbits, self.metric)
        aq = self._aq_index(d, tok)
        if aq is not None:
            self._no_more(toks, 1)
            return aq
        m = re.fullmatch(r"HNSW(\d*)_(2x)?(\d+)\+PQ(\d+)", text)
        if m:
            self._no_more(toks, 1)
            return self.hnsw_2level(d, int(m.group(1) or 32), m, tok)
        m = re.fullmatch(r"HNSW(\d+)(?:_(\w+))?", text)
        if m:
            if len(toks) > 1 and re.fullmatch(r"(2x)?\d+\+PQ\d+", toks[1].text):
                # FAISS's comma form of HNSW{M}_{nlist}+PQ{m}
                self._no_more(toks, 2)
                m2 = re.fullmatch(r"(2x)?(\d+)\+PQ(\d+)", toks[1].text)
                return self.hnsw_2level(d, int(m.group(1)), (None, m.group(1)) + m2.groups(),
                                        toks[1])
            return self.hnsw(d, int(m.group(1)), m.group(2), tok, toks)
        m = re.fullmatch(r"NSG(\d*)(?:_(\w+))?", text)
        if m:
            return self.nsg(d, int(m.group(1) or 32), m.group(2), tok, toks)
        m = re.fullmatch(r"LSH(\d*)(r?)(t?)", text)
        if m:
            self._no_more(toks, 1)
            if self.metric != METRIC_L2:
                raise self.fail(tok, "IndexLSH searches by Hamming distance and takes METRIC_L2 only")
            nbits = int(m.group(1)) if m.group(1) else d
            try:
                return _load("indexes.lsh", "IndexLSH")(d, nbits, bool(m.group(2)), bool(m.group(3)))
            except ValueError as exc:
                raise self.fail(tok, str(exc)) from None
        raise self.fail(tok, "unknown token; expected Flat, IVF{n}, IMI{M}x{b}, PQ{m}, SQ8/SQ4/SQfp16, "
                        "RQ{m}x{b}, HNSW{M}, NSG{R}, LSH, or a transform (PCA{n}, OPQ{m}, L2norm, ITQ{n})")

    def two_layer(self, d: int, m: re.Match, tok: _Tok, toks: list[_Tok]) -> Index:
        """FAISS's ``Residual{nlist},PQ{m}[x{b}]`` (flat coarse quantizer) and
        ``Residual{M}x{b},PQ{m}[x{b}]`` (multi-index coarse quantizer): Index2Layer."""
        if self.metric != METRIC_L2:
            raise self.fail(tok, "Residual (Index2Layer) is L2 only, as in FAISS")
        if len(toks) < 2:
            raise self.fail(tok, f"{tok.text} needs a PQ after it, e.g. '{tok.text},PQ8'")
        self._no_more(toks, 2)
        pq = self._pq_args(d, toks[1])
        if pq is None or pq[2]:
            raise self.fail(toks[1], f"{tok.text} takes a PQ{{m}}[x{{b}}] after it")
        if m.group(2) is not None:
            M, nbits = int(m.group(1)), int(m.group(2))
            if not (1 <= M <= 8 and 1 <= nbits <= 16 and M * nbits <= 62) or d % M:
                raise self.fail(tok, f"Residual{{M}}x{{nbits}} needs 1 <= M <= 8 dividing d={d}, "
                                "1 <= nbits <= 16, e.g. Residual2x8")
            quantizer = _load("indexes.imi", "MultiIndexQuantizer")(d, M, nbits)
            nlist = 1 << (M * nbits)
        else:
            nlist = int(m.group(1))
            if nlist <= 0:
                raise self.fail(tok, "Residual needs nlist >= 1")
            from .indexes.flat import IndexFlat
            quantizer = IndexFlat(d, METRIC_L2)
        cls = _load("indexes.index2layer", "Index2Layer")
        return cls(quantizer, nlist, pq[0], pq[1], METRIC_L2)

    def _no_more(self, toks: list[_Tok], used: int) -> None:
        if len(toks) > used:
            raise self.fail(toks[used], f"unexpected token after {toks[used - 1].text!r}")

    _SQ_NAMES = {"SQ8": "QT_8bit", "SQ4": "QT_4bit", "SQfp16": "QT_fp16", "SQbf16": "QT_bf16",
                 "SQ6": "QT_6bit", "SQ8_direct": "QT_8bit_direct"}

    def _sq_type(self, tok: _Tok, text: str | None = None) -> int | None:
        name = self._SQ_NAMES.get(tok.text if text is None else text)
        return None if name is None else _load("codecs.sq", name)

    def _pq_args(self, d: int, tok: _Tok) -> tuple[int, int, bool] | None:
        # FAISS's "np" suffix: no polysemous training (voisin's default anyway)
        m = re.fullmatch(r"PQ(\d+)(?:x(\d+))?(fsr?(?:_\d+)?|np)?", tok.text)
        if not m:
            if tok.text.startswith("PQ"):
                raise self.fail(tok, "malformed PQ token; expected PQ{m}, PQ{m}x{bits}, PQ{m}np or "
                                "PQ{m}x4fs[r][_{bbs}]")
            return None
        M = int(m.group(1))
        nbits = int(m.group(2)) if m.group(2) else 8
        fast = bool(m.group(3)) and m.group(3).startswith("fs")
        if M <= 0:
            raise self.fail(tok, "PQ needs M >= 1 sub-quantizers")
        if d % M:
            raise self.fail(tok, f"PQ{M}: dimension {d} is not a multiple of M={M}")
        if fast and nbits != 4:
            raise self.fail(tok, "fast-scan PQ works on 4-bit codes only: PQ{m}x4fs")
        if not 1 <= nbits <= 16:
            raise self.fail(tok, f"PQ bits per code must be in [1, 16], got {nbits}")
        return M, nbits, fast

    def _fastscan_opts(self, tok: _Tok, ivf: bool) -> dict:
        """FAISS's fast-scan suffixes: ``r`` encodes residuals (IVF only; without it
        an IVF fast-scan index encodes the vectors themselves, as FAISS builds it) and
        ``_{bbs}`` sets the block size."""
        m = re.fullmatch(r"PQ\d+x4fs(r?)(?:_(\d+))?", tok.text)
        if m.group(1) and not ivf:
            raise self.fail(tok, "the r suffix (encode residuals) applies to IVF fast-scan only, "
                            "e.g. IVF256,PQ16x4fsr")
        bbs = int(m.group(2)) if m.group(2) else 32
        if bbs <= 0 or bbs % 32:
            raise self.fail(tok, f"fast-scan block size must be a positive multiple of 32, got {bbs}")
        return {"bbs": bbs, "by_residual": bool(m.group(1))} if ivf else {"bbs": bbs}

    # additive quantizers (RQ, LSQ, PRQ, PLSQ, RCQ): voisin/factory_additive.py
    def _aq_args(self, d: int, tok: _Tok) -> tuple | None:
        from . import factory_additive as FA
        return FA.parse_aq(tok.text, d, self.metric, lambda why: self.fail(tok, why))

    def _aq_index(self, d: int, tok: _Tok) -> Index | None:
        from . import factory_additive as FA
        parsed = self._aq_args(d, tok)
        return None if parsed is None else FA.build_flat(parsed, d, self.metric)

    def _rcq(self, d: int, tok: _Tok) -> Index:
        from . import factory_additive as FA
        return FA.build_rcq(tok.text, d, self.metric, lambda why: self.fail(tok, why))

    def ivf(self, d: int, nlist: int, ivf_tok: _Tok, codec: _Tok, hnsw_m: int | None = None,
            quantizer: Index | None = None) -> Index:
        if quantizer is not None:
            pass  # the multi-index's, or a residual coarse quantizer
        elif hnsw_m is None:
            from .indexes.flat import IndexFlat
            quantizer = IndexFlat(d, self.metric)
        else:
            # the standard coarse quantizer for a large nlist: an HNSW graph over the
            # centroids (its efSearch: ParameterSpace's quantizer_efSearch)
            from .indexes.hnsw import IndexHNSWFlat
            quantizer = IndexHNSWFlat(d, hnsw_m, self.metric)
        if codec.text == "Flat":
            from .indexes.ivf_flat import IndexIVFFlat
            return IndexIVFFlat(quantizer, d, nlist, self.metric)
        if codec.text == "FlatDedup":
            cls = _load("indexes.ivf_dedup", "IndexIVFFlatDedup")
            return cls(quantizer, d, nlist, self.metric)
        sq = self._sq_type(codec)
        if sq is not None:
            cls = _load("indexes.ivf_sq", "IndexIVFScalarQuantizer")
            return cls(quantizer, d, nlist, sq, self.metric)
        pq = self._pq_args(d, codec)
        if pq is not None:
            M, nbits, fast = pq
            if fast:
                cls = _load("indexes.fastscan", "IndexIVFPQFastScan")
                return cls(quantizer, d, nlist, M, nbits, self.metric,
                           **self._fastscan_opts(codec, ivf=True))
            cls = _load("indexes.ivfpq", "IndexIVFPQ")
            return cls(quantizer, d, nlist, M, nbits, self.metric)
        if codec.text.startswith("RaBitQ"):
            nb_bits = self._rabitq_bits(codec)
            cls = _load("indexes.ivf_rabitq", "IndexIVFRaBitQ")
            return cls(quantizer, d, nlist, self.metric, True, nb_bits)
        aq = self._aq_args(d, codec)
        if aq is not None:
            from . import factory_additive as FA
            return FA.build_ivf(aq, quantizer, d, nlist, self.metric)
        raise self.fail(codec, f"unknown IVF codec; expected Flat, FlatDedup, SQ8, SQ4, SQfp16, PQ{{m}}[x{{b}}] "
                        f"or PQ{{m}}x4fs after {ivf_tok.text}")

    def _rabitq_bits(self, tok: _Tok) -> int:
        """``RaBitQ[{b}]`` (FAISS's regex ``RaBitQ([0-9]+)?``): the bits per component."""
        m = re.fullmatch(r"RaBitQ(\d+)?", tok.text)
        if not m:
            raise self.fail(tok, _RABITQ)
        nb_bits = int(m.group(1) or 1)
        if not 1 <= nb_bits <= 9:
            raise self.fail(tok, f"RaBitQ{{b}} takes 1 <= b <= 9 bits, got {nb_bits}")
        return nb_bits

    def spectral_hash(self, d: int, nlist: int, hnsw_m: int | None, vt_tok: _Tok,
                      sh_tok: _Tok) -> Index:
        """FAISS's ``IVF{n},(ITQ|PCA|PCAR)[{nbit}],SH[{period}][g|c|m]``."""
        m = re.fullmatch(r"(ITQ|PCA|PCAR)(\d+)?", vt_tok.text)
        if not m:
            raise self.fail(vt_tok, "a spectral hash needs its transform here: ITQ{n}, PCA{n} or PCAR{n}")
        sh = re.fullmatch(r"SH([-0-9.e]+)?([gcm])?", sh_tok.text)
        if not sh:
            raise self.fail(sh_tok, "malformed spectral hash token; expected SH[{period}][g|c|m], "
                            "e.g. SH1.0m")
        if self.metric != METRIC_L2:
            raise self.fail(sh_tok, "IndexIVFSpectralHash searches by Hamming distance and takes "
                            "METRIC_L2 only")
        nbit = int(m.group(2)) if m.group(2) else d
        if not 0 < nbit <= d:
            raise self.fail(vt_tok, f"the number of bits must be in [1, {d}], got {nbit}")
        try:
            # FAISS: no period means -1e10, plain thresholding of the projections
            period = float(sh.group(1)) if sh.group(1) else -1e10
        except ValueError:
            raise self.fail(sh_tok, f"period {sh.group(1)!r} is not a number") from None
        if m.group(1) == "ITQ":
            vt = _load("transforms_itq", "ITQTransform")(d, nbit, nbit != d)
        else:
            vt = _load("transforms", "PCAMatrix")(d, nbit, 0.0, m.group(1) == "PCAR")
        if hnsw_m is None:
            from .indexes.flat import IndexFlat
            quantizer = IndexFlat(d, self.metric)
        else:
            from .indexes.hnsw import IndexHNSWFlat
            quantizer = IndexHNSWFlat(d, hnsw_m, self.metric)
        cls = _load("indexes.ivf_spectral_hash", "IndexIVFSpectralHash")
        try:
            index = cls(quantizer, d, nlist, nbit, period)
        except ValueError as exc:
            raise self.fail(sh_tok, str(exc)) from None
        index.replace_vt(vt)
        index.threshold_type = {"": 0, "g": 0, "c": 1, "m": 3}[sh.group(2) or ""]
        return index

    def hnsw(self, d: int, M: int, suffix: str | None, tok: _Tok, toks: list[_Tok]) -> Index:
        if M <= 1:
            raise self.fail(tok, "HNSW needs M >= 2")
        if suffix is not None and suffix.startswith("PQ"):
            self._no_more(toks, 1)
            return self._hnsw_pq(d, M, _Tok(suffix, tok.pos + tok.text.index("_") + 1))
        if suffix == "Flat":  # FAISS's spelling of HNSW32,Flat
            self._no_more(toks, 1)
            return _load("indexes.hnsw", "IndexHNSWFlat")(d, M, self.metric)
        if suffix is not None:
            sq = self._sq_type(tok, suffix)
            if sq is None:
                raise self.fail(tok, "unknown HNSW storage suffix; expected _SQ8 (8-bit codes) "
                                "or _PQ{m}[x8]")
            self._no_more(toks, 1)
            try:
                return _load("indexes.hnsw", "IndexHNSWSQ")(d, sq, M, self.metric)
            except NotImplementedError as exc:
                raise self.fail(tok, str(exc)) from None
        if len(toks) == 1 or toks[1].text == "Flat":
            self._no_more(toks, 1 if len(toks) == 1 else 2)
            cls = _load("indexes.hnsw", "IndexHNSWFlat")
            return cls(d, M, self.metric)
        if toks[1].text.startswith("PQ"):  # FAISS reads "HNSW32,PQ16" as "HNSW32_PQ16"
            self._no_more(toks, 2)
            return self._hnsw_pq(d, M, toks[1])
        raise self.fail(toks[1], "unknown HNSW storage; expected Flat, _SQ8 (HNSW32_SQ8) or "
                        "_PQ{m} (HNSW32_PQ16)")

    def nsg(self, d: int, R: int, suffix: str | None, tok: _Tok, toks: list[_Tok]) -> Index:
        """FAISS's ``NSG[{R}]`` (R = 32 by default) then, after ``,`` or ``_``, the storage:
        Flat (or nothing), ``PQ{m}[x{b}][np]`` (IndexNSGPQ, L2 whatever the metric, as
        FAISS builds it) or an SQ type (IndexNSGSQ)."""
        if R < 1:
            raise self.fail(tok, "NSG needs R >= 1")
        if suffix is not None:
            self._no_more(toks, 1)
            code = _Tok(suffix, tok.pos + tok.text.index("_") + 1)
        elif len(toks) > 1:
            self._no_more(toks, 2)
            code = toks[1]
        else:
            code = None
        if code is None or code.text == "Flat":
            return _load("indexes.graph_flat", "IndexNSGFlat")(d, R, self.metric)
        sq = self._sq_type(code)
        if sq is not None:
            return _load("indexes.nsg_codes", "IndexNSGSQ")(d, sq, R, self.metric)
        pq = self._pq_args(d, code) if code.text.startswith("PQ") else None
        if pq is not None and not pq[2]:
            return _load("indexes.nsg_codes", "IndexNSGPQ")(d, pq[0], R, pq[1])
        raise self.fail(code, "unknown NSG storage; expected Flat, PQ{m}[x{b}] or SQ8/SQ6/SQ4/"
                        "SQfp16/SQbf16/SQ8_direct, e.g. NSG32,PQ16")

    def hnsw_2level(self, d: int, M: int, m, tok: _Tok) -> Index:
        """FAISS's ``HNSW{M}_{nlist}+PQ{m}`` (flat coarse quantizer) and
        ``HNSW{M}_2x{nbits}+PQ{m}`` (multi-index coarse quantizer): IndexHNSW2Level."""
        multi, n, pq_m = m[2], int(m[3]), int(m[4])
        if M <= 1:
            raise self.fail(tok, "HNSW needs M >= 2")
        if self.metric != METRIC_L2:
            raise self.fail(tok, "IndexHNSW2Level (HNSW over Index2Layer codes) is L2 only, as "
                            "in FAISS")
        if pq_m < 1 or d % pq_m:
            raise self.fail(tok, f"PQ{pq_m}: dimension {d} is not a multiple of m={pq_m}")
        if multi:
            if not 1 <= n <= 16 or d % 2:
                raise self.fail(tok, f"2x{n}: a 2 x nbits multi-index needs 1 <= nbits <= 16 "
                                f"and an even dimension (d={d})")
            quantizer = _load("indexes.imi", "MultiIndexQuantizer")(d, 2, n)
            nlist = 1 << (2 * n)
        else:
            if n < 1:
                raise self.fail(tok, "HNSW{M}_{nlist}+PQ{m} needs nlist >= 1")
            from .indexes.flat import IndexFlat
            quantizer, nlist = IndexFlat(d, METRIC_L2), n
        index = _load("indexes.hnsw_2level", "IndexHNSW2Level")(quantizer, nlist, pq_m, M)
        if multi:
            index.storage.q1.quantizer_trains_alone = 1  # as FAISS's factory sets it
        return index

    def _hnsw_pq(self, d: int, M: int, tok: _Tok) -> Index:
        pq = self._pq_args(d, tok)
        if pq is None:
            raise self.fail(tok, "malformed PQ storage; expected PQ{m} or PQ{m}x8, e.g. HNSW32_PQ16")
        m, nbits, fast = pq
        if fast or nbits != 8:
            raise self.fail(tok, "IndexHNSWPQ walks 8-bit PQ codes: PQ{m} or PQ{m}x8")
        return _load("indexes.hnsw_pq", "IndexHNSWPQ")(d, m, M, 8, self.metric)


def index_factory(d: int, description: str, metric: int = METRIC_L2) -> Index:
    """Build an index from a FAISS description string such as ``"IVF1024,SQ8"``.

    Supported: ``Flat``, ``IDMap,<x>``, ``IDMap2,<x>``, ``PCA{n}[W][R],<x>``,
    ``OPQ{m}[_{d}],<x>``, ``L2norm,<x>``, ``IVF{n}[k|M][_HNSW{M}|(<quantizer>)],Flat|SQ8|SQ6|SQ4|SQfp16|PQ{m}[x{b}]|PQ{m}x4fs[r][_{bbs}]``,
    ``PQ{m}[x{b}]``, ``SQ8|SQ4|SQfp16``, ``<x>,RFlat``, ``<x>,Refine(<y>)``,
    ``HNSW{M}[,Flat|_SQ8|_PQ{m}]``. Raises :class:`FactoryError` (a ValueError)
    pointing at the offending token.

    Example:
        >>> import voisin
        >>> index = voisin.index_factory(64, "IVF256,Flat", voisin.METRIC_INNER_PRODUCT)
        >>> index.nlist
        256
    """
    d = check_dimension(d)
    metric = check_metric(metric, extra=True)  # the families that do not serve it refuse it
    if not isinstance(description, str):
        raise TypeError(f"description: expected a string such as 'IVF1024,Flat', got {description!r}")
    parser = _Parser(description, metric)
    return parser.description(d, _split(description, description, 0))
