"""Additive-quantizer fast-scan indexes (FAISS ``IndexResidualQuantizerFastScan``,
``IndexLocalSearchQuantizerFastScan``).

The codec is a residual or local-search quantizer of 4-bit codebooks. Under
L2 its search type must be ``ST_norm_rq2x4`` / ``ST_norm_lsq2x4``: the squared
norm of each reconstruction is two more 4-bit fields, so a vector is
``M + 2`` fast-scan sub-quantizers (FAISS's ``M``); under inner product the
search type is ``ST_LUT_nonorm`` and there is no norm. Codes are stored plain
(``code_size`` bytes, FAISS's bit stream) and packed into FAISS's blocks of 32
for the scan (``voisin.kernels.fastscan``); look-up tables are quantized to
uint8 per query, so distances are approximations, as FAISS's. Under L2 they
are ``||y||^2 - 2 <q, y>`` (FAISS adds no ``||q||^2``).

Training also estimates ``norm_scale`` (FAISS's ``estimate_norm_scale``): how
much wider the norm tables are than the others; the norm tables are divided
by it before quantization and their entries multiplied back in 16 bits.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

from .. import filtering
from .._validate import check_int
from ..codecs.additive import ST_LUT_nonorm, ST_norm_lsq2x4, ST_norm_rq2x4, AdditiveQuantizer
from ..index import Index
from ..kernels import aq_fastscan as K
from ..metric import METRIC_INNER_PRODUCT, METRIC_L2, check_metric, worst_distance
from ..rng import permutation
from .code_storage import PublishedCodes
from .fastscan import pack_codes

_NO_MASK = np.zeros(1, dtype=np.bool_)
#: queries whose float tables are built at a time
LUT_BLOCK = 4096


def subsample(x: np.ndarray, nmax: int, seed: int) -> np.ndarray:
    """FAISS's fvecs_maybe_subsample: ``nmax`` rows drawn by rand_perm(seed)."""
    if x.shape[0] <= nmax:
        return x
    return np.ascontiguousarray(x[permutation(x.shape[0], seed)[:nmax]])


def check_aq_fastscan(aq: AdditiveQuantizer, metric: int, bbs: int) -> int:
    """Validate codec, metric and block size; returns the fast-scan M."""
    if check_metric(metric) not in (METRIC_L2, METRIC_INNER_PRODUCT):
        raise ValueError(f"metric: additive-quantizer fast-scan supports METRIC_L2 and "
                         f"METRIC_INNER_PRODUCT, got {metric}")
    if any(b != 4 for b in aq.nbits):
        raise ValueError(f"nbits: fast-scan works on 4-bit codebooks only, got {aq.nbits}")
    bbs = check_int(bbs, "bbs", lo=32)
    if bbs % 32:
        raise ValueError(f"bbs: the block size must be a multiple of 32, got {bbs}")
    if metric == METRIC_INNER_PRODUCT:
        if aq.search_type != ST_LUT_nonorm:
            raise ValueError("search_type: must be ST_LUT_nonorm for METRIC_INNER_PRODUCT "
                             f"(got {aq.search_type})")
        return aq.M
    if aq.search_type not in (ST_norm_lsq2x4, ST_norm_rq2x4):
        raise ValueError("search_type: must be ST_norm_lsq2x4 or ST_norm_rq2x4 for METRIC_L2 "
                         f"(got {aq.search_type})")
    return aq.M + 2


def float_luts(aq: AdditiveQuantizer, x: np.ndarray, metric: int, norm_scale: int,
               rescale_norm: bool, centroid_ip: np.ndarray | None = None) -> np.ndarray:
    """FAISS's compute_float_LUT: (n, M, 16) tables of queries x."""
    n = x.shape[0]
    ip = x @ aq.full_codebooks().T
    if metric == METRIC_INNER_PRODUCT:
        return np.ascontiguousarray(ip, dtype=np.float32).reshape(n, aq.M, 16)
    out = np.empty((n, aq.M + 2, 16), dtype=np.float32)
    out[:, :aq.M] = (np.float32(-2.0) * ip.astype(np.float32)).reshape(n, aq.M, 16)
    tabs = np.asarray(aq.norm_tabs, dtype=np.float32)
    if tabs.size != 32:
        raise ValueError("aq: the quantizer has no 2x4-bit norm tables (is it trained?)")
    if rescale_norm and norm_scale > 1:
        tabs = tabs / np.float32(norm_scale)
    out[:, aq.M:] = tabs.reshape(2, 16)
    return out


def estimate_norm_scale(aq: AdditiveQuantizer, x: np.ndarray) -> int:
    """FAISS's estimate_norm_scale on (at most 65536 of) the training vectors."""
    xs = subsample(x, 65536, 0x980903)
    total, n = 0.0, 0
    for i0 in range(0, xs.shape[0], LUT_BLOCK):
        luts = float_luts(aq, xs[i0:i0 + LUT_BLOCK], METRIC_L2, 1, False)
        total += K.norm_scale_ratio(luts, 2) * luts.shape[0]
        n += luts.shape[0]
    scale = max(total / max(n, 1), 1.0)
    return int(math.floor(scale + 0.5))


class IndexAdditiveQuantizerFastScan(PublishedCodes, Index):
    """Base of the flat additive-quantizer fast-scan indexes; the codec is ``self.aq``."""

    implem = 0
    qbs = 0

    def __init__(self, d: int, aq: AdditiveQuantizer, metric: int = METRIC_L2, bbs: int = 32):
        M = check_aq_fastscan(aq, metric, bbs)
        super().__init__(d, check_metric(metric))
        self.aq = aq
        self.M = M
        self.nbits = 4
        self.ksub = 16
        self.M2 = M + (M & 1)
        self.bbs = int(bbs)
        self.code_size = (M * 4 + 7) // 8
        if self.code_size != aq.code_size:
            raise ValueError(f"aq: code size {aq.code_size} differs from the fast-scan one "
                             f"{self.code_size}")
        self.rescale_norm = True
        self.norm_scale = 1
        self.max_train_points = 1024 * self.ksub * M
        self.is_trained = aq.is_trained
        self._packed: tuple | None = None
        self._reset()

    @property
    def ntotal2(self) -> int:
        """Vectors rounded up to whole blocks (FAISS's attribute)."""
        return (self.ntotal + self.bbs - 1) // self.bbs * self.bbs

    @property
    def search_type(self) -> int:
        return self.aq.search_type

    def _train(self, x: np.ndarray) -> None:
        xs = subsample(x, self.max_train_points, 0x12345)
        self.aq.train_validated(xs)
        if self.metric_type == METRIC_L2:
            self.norm_scale = estimate_norm_scale(self.aq, xs)
        self.is_trained = True

    # --- storage -------------------------------------------------------------------
    def _decode_rows(self, rows: np.ndarray) -> np.ndarray:
        return self.aq.decode_rows(np.ascontiguousarray(rows))

    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        if ids is not None:
            raise NotImplementedError(
                f"{type(self).__name__} numbers vectors by position and cannot take ids: wrap it, "
                f"e.g. IndexIDMap({type(self).__name__}(...)).add_with_ids(x, ids)")
        self._append(self.aq.encode_rows(x)[0])

    def add_codes(self, codes: Any) -> None:
        """Append already-encoded vectors (n, code_size) uint8."""
        self._check_trained()
        codes = self.aq._as_codes(codes)
        with self._write_lock:
            self._append(codes)

    def sa_code_size(self) -> int:
        return self.code_size

    def sa_encode(self, x: Any) -> np.ndarray:
        self._check_trained()
        return self.aq.compute_codes(x)

    def sa_decode(self, codes: Any) -> np.ndarray:
        self._check_trained()
        return self.aq.decode(codes)

    # --- search ------------------------------------------------------------------------
    def _blocks(self, codes: np.ndarray, n: int) -> np.ndarray:
        cached = self._packed
        if cached is not None and cached[0] is codes and cached[1] == n:
            return cached[2]
        packed = pack_codes(codes[:n], self.M)
        self._packed = (codes, n, packed)
        return packed

    def _search(self, x, k, params, D, I):
        codes, n = self._snap
        mask, use_mask = self._mask(params, n)
        nq = x.shape[0]
        D = np.empty((nq, k), dtype=np.float32) if D is None else D
        I = np.empty((nq, k), dtype=np.int64) if I is None else I
        allowed = int(np.count_nonzero(mask)) if use_mask else n
        if allowed == 0:
            return filtering.no_results(nq, k, self.metric_type, D, I)
        if use_mask and filtering.should_gather(allowed, n):
            ids = np.flatnonzero(mask).astype(np.int64)
            packed = pack_codes(codes[ids], self.M).reshape(-1)
            n = ids.size
            mask, use_mask = _NO_MASK, False
        else:
            packed = self._blocks(codes, n).reshape(-1)
            ids = np.arange(n, dtype=np.int64)
        worst = worst_distance(self.metric_type)
        scale = self.norm_scale if self.rescale_norm and self.norm_scale > 1 else 1
        for q0 in range(0, nq, LUT_BLOCK):
            q1 = min(nq, q0 + LUT_BLOCK)
            luts = float_luts(self.aq, x[q0:q1], self.metric_type, self.norm_scale,
                              self.rescale_norm)
            if q1 - q0 == 1 or numba.get_num_threads() == 1:
                K.aq_search_serial(luts, packed, n, self.M2, self.metric_type, scale, ids, mask,
                                   use_mask, worst, D[q0:q1], I[q0:q1])
            else:
                K.aq_search(luts, packed, n, self.M2, self.metric_type, scale, ids, mask, use_mask,
                            worst, True, D[q0:q1], I[q0:q1])
        return D, I

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_packed"] = None
        return state


class IndexResidualQuantizerFastScan(IndexAdditiveQuantizerFastScan):
    """Residual-quantizer codes scanned with 4-bit fast-scan (FAISS
    ``IndexResidualQuantizerFastScan``); the codec is ``index.rq``.

    ``RQ{M}x4fs[_{bbs}]_Nrq2x4`` in the factory (L2 needs the 2x4-bit norm),
    ``RQ{M}x4fs`` with METRIC_INNER_PRODUCT.

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).random((3000, 16), dtype="float32")
        >>> index = voisin.IndexResidualQuantizerFastScan(16, 4)
        >>> index.rq.train_type = voisin.ResidualQuantizer.Train_default
        >>> index.train(xb)
        >>> index.add(xb)
        >>> D, I = index.search(xb[:2], 3)
        >>> index.code_size
        3
    """

    def __init__(self, d: int, M: int = 1, nbits: int = 4, metric: int = METRIC_L2,
                 search_type: int = ST_norm_rq2x4, bbs: int = 32):
        from ..codecs.rq import ResidualQuantizer
        if check_int(nbits, "nbits") != 4:
            raise ValueError(f"nbits: fast-scan works on 4-bit codebooks only, got {nbits}")
        super().__init__(d, ResidualQuantizer(d, check_int(M, "M", lo=1), 4, search_type),
                         metric, bbs)

    @property
    def rq(self):
        return self.aq


class IndexLocalSearchQuantizerFastScan(IndexAdditiveQuantizerFastScan):
    """Local-search-quantizer codes scanned with 4-bit fast-scan (FAISS
    ``IndexLocalSearchQuantizerFastScan``); the codec is ``index.lsq``.

    ``LSQ{M}x4fs[_{bbs}]_Nlsq2x4`` in the factory.

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).random((2000, 8), dtype="float32")
        >>> index = voisin.IndexLocalSearchQuantizerFastScan(8, 2)
        >>> index.lsq.train_iters = 4
        >>> index.train(xb)
        >>> index.add(xb)
        >>> index.code_size
        2
    """

    def __init__(self, d: int, M: int = 1, nbits: int = 4, metric: int = METRIC_L2,
                 search_type: int = ST_norm_lsq2x4, bbs: int = 32):
        from ..codecs.lsq import LocalSearchQuantizer
        if check_int(nbits, "nbits") != 4:
            raise ValueError(f"nbits: fast-scan works on 4-bit codebooks only, got {nbits}")
        super().__init__(d, LocalSearchQuantizer(d, check_int(M, "M", lo=1), 4, search_type),
                         metric, bbs)

    @property
    def lsq(self):
        return self.aq


# --- IVF ------------------------------------------------------------------------------

from .ivf_rq import IndexIVFAdditiveQuantizer  # noqa: E402


class IndexIVFAdditiveQuantizerFastScan(IndexIVFAdditiveQuantizer):
    """IVF over 4-bit additive-quantizer codes scanned in blocks (FAISS
    ``IndexIVFAdditiveQuantizerFastScan``).

    As FAISS: ``by_residual`` by default; codes are those of ``x - c`` but the
    stored norm is that of the whole reconstruction ``c + r`` (the norm tables
    are retrained on those after the codebooks), so one query table serves
    every list and a list only adds ``-2 <q, c>`` (L2) or ``<q, c>`` (IP),
    quantized to 16 bits with the table (FAISS's quantize_LUT_and_bias).
    Distances under L2 are ``||x||^2 - 2 <q, x>`` (no ``||q||^2``), as FAISS.
    """

    implem = 0
    qbs = 0
    qbs2 = 0

    def __init__(self, aq: AdditiveQuantizer, quantizer: Index | None, d: int, nlist: int,
                 metric: int = METRIC_L2, bbs: int = 32):
        M = check_aq_fastscan(aq, metric, bbs)
        super().__init__(aq, quantizer, d, nlist, metric)
        self.M = M
        self.nbits = 4
        self.ksub = 16
        self.M2 = M + (M & 1)
        self.bbs = int(bbs)
        if (M * 4 + 7) // 8 != aq.code_size:
            raise ValueError(f"aq: code size {aq.code_size} differs from the fast-scan one")
        self.rescale_norm = True
        self.norm_scale = 1
        self.max_train_points = 1024 * self.ksub * M
        self.by_residual = True
        self._packed: tuple | None = None

    def train_encoder_num_vectors(self) -> int:
        return self.max_train_points

    def _train_codec(self, x: np.ndarray, list_nos: np.ndarray | None) -> None:
        cap = self.train_encoder_num_vectors()
        if x.shape[0] > cap:
            rows = permutation(x.shape[0], 0x12345)[:cap]
            x = x[rows]
            list_nos = list_nos[rows] if list_nos is not None else None
        if self.by_residual:
            x = np.ascontiguousarray(self._residuals(x, list_nos), dtype=np.float32)
        self.aq.train_validated(x)
        if self.by_residual and self.metric_type == METRIC_L2:
            # FAISS: the norm tables encode ||c + r||^2, retrained on those
            y = self.aq.decode(self.aq.compute_codes(x)) + self._centroid_rows(list_nos)
            self.aq.train_norm(np.einsum("ij,ij->i", y, y).astype(np.float32))
        if self.metric_type == METRIC_L2:
            self.norm_scale = estimate_norm_scale(self.aq, x)

    def _encode(self, x: np.ndarray, list_nos: np.ndarray) -> np.ndarray:
        if not self.by_residual:
            return self.rows_of_codes(self.aq.encode_rows(x)[0], list_nos)
        cent = self._centroid_rows(list_nos)
        resid = np.ascontiguousarray(x - cent, dtype=np.float32)
        return self.rows_of_codes(self.aq.encode_rows(resid, cent)[0], list_nos)

    def _side(self, rows: np.ndarray, list_nos: np.ndarray) -> np.ndarray:
        # the fast-scan tables hold the norms: no side value is used
        return np.zeros(rows.shape[0], dtype=np.float32)

    def _decode(self, codes: np.ndarray, list_nos: np.ndarray) -> np.ndarray:
        out = self.aq.decode_rows(np.ascontiguousarray(codes))
        if self.by_residual and out.shape[0]:
            out += self._centroid_rows(list_nos)
        return out

    def _blocks(self, ctx) -> tuple[np.ndarray, np.ndarray]:
        from ..kernels import fastscan as FK
        cached = self._packed if ctx.cache is None else ctx.cache.get("blocks")
        if cached is not None and cached[0] is ctx.sizes and cached[1] is ctx.codes:
            return cached[2], cached[3]
        sizes = ctx.sizes
        blk_off = np.zeros(self.nlist + 1, dtype=np.int64)
        np.cumsum((sizes + 31) // 32, out=blk_off[1:])
        packed = np.zeros((int(blk_off[-1]), self.M2 // 2 * 32), dtype=np.uint8)
        FK.pack_lists(ctx.codes, ctx.offsets, sizes, blk_off, self.M2, packed)
        entry = (sizes, ctx.codes, packed, blk_off)
        if ctx.cache is None:
            self._packed = entry
        else:
            ctx.cache["blocks"] = entry
        return packed, blk_off

    def _search_preassigned(self, x, k, probes, probe_dists, ctx, D, I):
        nq = x.shape[0]
        probes = np.ascontiguousarray(probes, dtype=np.int64)
        D = np.empty((nq, k), dtype=np.float32) if D is None else D
        I = np.empty((nq, k), dtype=np.int64) if I is None else I
        packed, blk_off = self._blocks(ctx)
        packed = packed.reshape(-1)
        scale = self.norm_scale if self.rescale_norm and self.norm_scale > 1 else 1
        coef = np.float32(-2.0 if self.metric_type == METRIC_L2 else 1.0)
        for q0 in range(0, nq, LUT_BLOCK):
            q1 = min(nq, q0 + LUT_BLOCK)
            xs = x[q0:q1]
            pr = probes[q0:q1]
            luts = float_luts(self.aq, xs, self.metric_type, self.norm_scale, self.rescale_norm)
            if self.by_residual:
                cent = self._centroid_rows(np.maximum(pr, 0).reshape(-1)).reshape(
                    pr.shape[0], pr.shape[1], self.d)
                biases = (coef * np.einsum("qpd,qd->qp", cent, xs)).astype(np.float32)
            else:
                biases = np.zeros(pr.shape, dtype=np.float32)
            with numba.parallel_chunksize(1):
                K.ivf_aq_search(luts, pr, np.ascontiguousarray(biases), self.by_residual, packed,
                                blk_off, ctx.offsets, ctx.sizes, ctx.ids, self.M2,
                                self.metric_type, scale, ctx.max_codes, ctx.mask, ctx.use_mask,
                                worst_distance(self.metric_type), D[q0:q1], I[q0:q1])
        return D, I

    def _range_preassigned(self, x, radius, probes, probe_dists, ctx):
        raise NotImplementedError(f"{type(self).__name__}: range_search is not implemented")

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_packed"] = None
        return state


class IndexIVFResidualQuantizerFastScan(IndexIVFAdditiveQuantizerFastScan):
    """IVF + residual-quantizer fast-scan (FAISS ``IndexIVFResidualQuantizerFastScan``),
    ``IVF{n},RQ{M}x4fs[r]_Nrq2x4`` in the factory; the codec is ``index.rq``."""

    def __init__(self, quantizer: Index | None = None, d: int | None = None, nlist: int = 1,
                 M: int = 1, nbits: int = 4, metric: int = METRIC_L2,
                 search_type: int = ST_norm_lsq2x4, bbs: int = 32):
        # FAISS's IVF fast-scan constructors all default to ST_norm_lsq2x4
        from ..codecs.rq import ResidualQuantizer
        from .ivf import dimension_of
        if check_int(nbits, "nbits") != 4:
            raise ValueError(f"nbits: fast-scan works on 4-bit codebooks only, got {nbits}")
        d = dimension_of(quantizer, d, "IndexIVFResidualQuantizerFastScan")
        super().__init__(ResidualQuantizer(d, check_int(M, "M", lo=1), 4, search_type), quantizer,
                         d, nlist, metric, bbs)

    @property
    def rq(self):
        return self.aq


class IndexIVFLocalSearchQuantizerFastScan(IndexIVFAdditiveQuantizerFastScan):
    """IVF + local-search-quantizer fast-scan (FAISS
    ``IndexIVFLocalSearchQuantizerFastScan``), ``IVF{n},LSQ{M}x4fs[r]_Nlsq2x4``."""

    def __init__(self, quantizer: Index | None = None, d: int | None = None, nlist: int = 1,
                 M: int = 1, nbits: int = 4, metric: int = METRIC_L2,
                 search_type: int = ST_norm_lsq2x4, bbs: int = 32):
        from ..codecs.lsq import LocalSearchQuantizer
        from .ivf import dimension_of
        if check_int(nbits, "nbits") != 4:
            raise ValueError(f"nbits: fast-scan works on 4-bit codebooks only, got {nbits}")
        d = dimension_of(quantizer, d, "IndexIVFLocalSearchQuantizerFastScan")
        super().__init__(LocalSearchQuantizer(d, check_int(M, "M", lo=1), 4, search_type),
                         quantizer, d, nlist, metric, bbs)

    @property
    def lsq(self):
        return self.aq


# --- product quantizers ---------------------------------------------------------------

def _product_codec(cls_name: str, d: int, nsplits: int, Msub: int, nbits: int, st: int):
    from ..codecs import prq
    if check_int(nbits, "nbits") != 4:
        raise ValueError(f"nbits: fast-scan works on 4-bit codebooks only, got {nbits}")
    return getattr(prq, cls_name)(d, check_int(nsplits, "nsplits", lo=1),
                                  check_int(Msub, "Msub", lo=1), 4, st)


class IndexProductResidualQuantizerFastScan(IndexAdditiveQuantizerFastScan):
    """Product-residual-quantizer codes with fast-scan (FAISS
    ``IndexProductResidualQuantizerFastScan``), ``PRQ{n}x{m}x4fs_Nrq2x4``;
    the codec is ``index.prq``."""

    def __init__(self, d: int, nsplits: int = 1, Msub: int = 1, nbits: int = 4,
                 metric: int = METRIC_L2, search_type: int = ST_norm_rq2x4, bbs: int = 32):
        super().__init__(d, _product_codec("ProductResidualQuantizer", d, nsplits, Msub, nbits,
                                           search_type), metric, bbs)

    @property
    def prq(self):
        return self.aq


class IndexProductLocalSearchQuantizerFastScan(IndexAdditiveQuantizerFastScan):
    """Product-local-search-quantizer codes with fast-scan (FAISS
    ``IndexProductLocalSearchQuantizerFastScan``, whose default search type is
    also ST_norm_rq2x4), ``PLSQ{n}x{m}x4fs_Nlsq2x4``; the codec is ``index.plsq``."""

    def __init__(self, d: int, nsplits: int = 1, Msub: int = 1, nbits: int = 4,
                 metric: int = METRIC_L2, search_type: int = ST_norm_rq2x4, bbs: int = 32):
        super().__init__(d, _product_codec("ProductLocalSearchQuantizer", d, nsplits, Msub, nbits,
                                           search_type), metric, bbs)

    @property
    def plsq(self):
        return self.aq


class IndexIVFProductResidualQuantizerFastScan(IndexIVFAdditiveQuantizerFastScan):
    """IVF + product-residual-quantizer fast-scan (FAISS
    ``IndexIVFProductResidualQuantizerFastScan``), ``IVF{n},PRQ{s}x{m}x4fs[r]_N...``."""

    def __init__(self, quantizer: Index | None = None, d: int | None = None, nlist: int = 1,
                 nsplits: int = 1, Msub: int = 1, nbits: int = 4, metric: int = METRIC_L2,
                 search_type: int = ST_norm_lsq2x4, bbs: int = 32):
        from .ivf import dimension_of
        d = dimension_of(quantizer, d, "IndexIVFProductResidualQuantizerFastScan")
        super().__init__(_product_codec("ProductResidualQuantizer", d, nsplits, Msub, nbits,
                                        search_type), quantizer, d, nlist, metric, bbs)

    @property
    def prq(self):
        return self.aq


class IndexIVFProductLocalSearchQuantizerFastScan(IndexIVFAdditiveQuantizerFastScan):
    """IVF + product-local-search-quantizer fast-scan (FAISS
    ``IndexIVFProductLocalSearchQuantizerFastScan``), ``IVF{n},PLSQ{s}x{m}x4fs[r]_N...``."""

    def __init__(self, quantizer: Index | None = None, d: int | None = None, nlist: int = 1,
                 nsplits: int = 1, Msub: int = 1, nbits: int = 4, metric: int = METRIC_L2,
                 search_type: int = ST_norm_lsq2x4, bbs: int = 32):
        from .ivf import dimension_of
        d = dimension_of(quantizer, d, "IndexIVFProductLocalSearchQuantizerFastScan")
        super().__init__(_product_codec("ProductLocalSearchQuantizer", d, nsplits, Msub, nbits,
                                        search_type), quantizer, d, nlist, metric, bbs)

    @property
    def plsq(self):
        return self.aq
