"""IndexIVFSpectralHash: an IVF whose lists hold binary hashes of the vectors.

FAISS's ``IndexIVFSpectralHash(quantizer, d, nlist, nbit, period)``: a vector
transform ``vt`` (a random rotation by default, PCA or ITQ from the factory)
maps a vector to ``nbit`` values ``y``; bit j of the code is the parity of
``floor((y[j] - c[j]) * 2 / period)``, with the thresholds ``c`` zero
(``Thresh_global``), the list's centroid through ``vt`` (``Thresh_centroid``,
minus period/4 for ``Thresh_centroid_half``) or the per-list medians of the
training set (``Thresh_median``). A query is hashed against each probed
list's thresholds and lists are scanned by Hamming distance with the popcount
kernels. Distances are float32; a missing result is ``(FLT_MAX, -1)``.

Differences from FAISS (docs/lsh.md): filters work (FAISS refuses an id
selector on this index) and a period of 0 is refused. Among equal Hamming
distances the entries of the nearer lists win, as in FAISS.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _blas
from .._validate import check_float, check_int
from ..hamming import as_words
from ..index import Index
from ..metric import METRIC_L2, worst_distance
from ..transforms import RandomRotationMatrix
from .ivf import IndexIVF, dimension_of

#: the seed FAISS's constructor gives the default rotation
ROTATION_SEED = 1234
#: queries per pipeline task of a batch search (as the binary flat scan)
_QUERIES_PER_TASK = 64


def _pipelines(nq: int) -> int:
    import numba
    return min(numba.get_num_threads(), -(-nq // _QUERIES_PER_TASK))


def _median_rows(y: np.ndarray) -> np.ndarray:
    """Column medians of ``y`` as FAISS's spectral hash takes them (float32:
    the middle value, or the mean of the two middle ones)."""
    n = y.shape[0]
    s = np.sort(y, axis=0)
    if n % 2:
        return s[n // 2].copy()
    return ((s[n // 2 - 1] + s[n // 2]) / np.float32(2)).astype(np.float32)


class IndexIVFSpectralHash(IndexIVF):
    """IVF over spectral-hash codes (FAISS's ``IndexIVFSpectralHash``).

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).normal(size=(5000, 32)).astype("float32")
        >>> index = voisin.IndexIVFSpectralHash(voisin.IndexFlatL2(32), 32, 16, 64, 1.0)
        >>> index.train(xb); index.add(xb); index.nprobe = 4
        >>> D, I = index.search(xb[:3], 1)
        >>> I.ravel().tolist()
        [0, 1, 2]
    """

    Thresh_global = 0
    Thresh_centroid = 1
    Thresh_centroid_half = 2
    Thresh_median = 3

    def __init__(self, quantizer: Index | None = None, d: int | None = None, nlist: int = 1,
                 nbit: int = 32, period: float = 1.0):
        d = dimension_of(quantizer, d, "IndexIVFSpectralHash")
        nbit = check_int(nbit, "nbit", lo=1, hi=1 << 20)
        super().__init__(quantizer, d, nlist, (nbit + 7) // 8, METRIC_L2)
        self.nbit = nbit
        self.period = check_float(period, "period")
        if self.period == 0 or not np.isfinite(self.period):
            raise ValueError(f"period: expected a finite non-zero number, got {period}")
        self.threshold_type = self.Thresh_global
        self.trained = np.zeros(0, dtype=np.float32)
        rr = RandomRotationMatrix(self.d, nbit)
        rr.init(ROTATION_SEED)
        self.vt: Any = rr
        self.by_residual = False
        # FAISS's index starts untrained even with a trained quantizer: train()
        # sets the thresholds
        self._codec_trained = False
        self.is_trained = False

    def __repr__(self) -> str:
        return (f"IndexIVFSpectralHash(d={self.d}, nlist={self.nlist}, nbit={self.nbit}, "
                f"period={self.period}, threshold_type={self.threshold_type}, "
                f"nprobe={self.nprobe}, ntotal={self.ntotal})")

    # --- the encoder ---------------------------------------------------------
    def replace_vt(self, vt: Any, own: bool = False) -> None:
        """Use ``vt`` (a transform d -> nbit, or an IndexPreTransform of one
        transform and a thresholds-free, rotation-free IndexLSH) as the encoder;
        the thresholds become global (FAISS's ``replace_vt``)."""
        from .lsh import IndexLSH
        from .pretransform import IndexPreTransform
        if isinstance(vt, IndexPreTransform):
            lsh = vt.index
            if len(vt.chain) != 1 or not isinstance(lsh, IndexLSH) or lsh.nbits != self.nbit \
                    or lsh.rotate_data or lsh.train_thresholds:
                raise ValueError(f"vt: expected one transform followed by IndexLSH({self.nbit} bits, "
                                 "no rotation, no thresholds)")
            vt = vt.chain[0]
        for attr in ("d_in", "d_out", "apply", "is_trained"):
            if not hasattr(vt, attr):
                raise TypeError(f"vt: expected a vector transform, got {type(vt).__name__}")
        if (vt.d_in, vt.d_out) != (self.d, self.nbit):
            raise ValueError(f"vt: maps {vt.d_in} -> {vt.d_out}, expected {self.d} -> {self.nbit}")
        self.vt = vt
        self.threshold_type = self.Thresh_global
        self._codec_trained = bool(vt.is_trained)
        self.is_trained = self._quantizer_ready() and self._codec_trained

    def _codec_is_trained(self) -> bool:
        vt = self.__dict__.get("vt")  # the base constructor asks before vt exists
        return self._codec_trained and vt is not None and bool(vt.is_trained)

    def _codec_needs_retrain(self) -> bool:
        return True  # the thresholds follow the centroids and the training set

    def _check_threshold_type(self) -> int:
        t = check_int(self.threshold_type, "threshold_type", lo=0, hi=3)
        return t

    def _train_codec(self, x: np.ndarray, list_nos: np.ndarray | None) -> None:
        if not self.vt.is_trained:
            self.vt.train(x)
        t = self._check_threshold_type()
        if t == self.Thresh_global:
            self.trained = np.zeros(0, dtype=np.float32)
        elif t in (self.Thresh_centroid, self.Thresh_centroid_half):
            c = self._transform(self.quantizer.reconstruct_n(0, self.nlist))
            if t == self.Thresh_centroid_half:
                c = (c.astype(np.float64) - 0.25 * float(np.float32(self.period))).astype(np.float32)
            self.trained = np.ascontiguousarray(c, dtype=np.float32).ravel()
        else:
            lists = self._assign1(x)
            y = self._transform(x)
            med = np.zeros((self.nlist, self.nbit), dtype=np.float32)
            order = np.argsort(lists, kind="stable")
            bounds = np.searchsorted(lists[order], np.arange(self.nlist + 1))
            for l in range(self.nlist):
                rows = order[bounds[l]:bounds[l + 1]]
                if rows.size:
                    med[l] = _median_rows(y[rows])
            self.trained = med.ravel()
        self._codec_trained = True

    def _transform(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.vt.apply(x), dtype=np.float32)

    def _freq(self) -> np.float32:
        # C++: float freq = 2.0 / period (a double division, rounded once)
        return np.float32(2.0 / float(np.float32(self.period)))

    def _binarize(self, y: np.ndarray, c: np.ndarray | None) -> np.ndarray:
        v = (y - c if c is not None else y) * self._freq()
        # the parity of floor(v): fmod keeps it exact for every float (FAISS
        # goes through int64, which agrees wherever that conversion is defined)
        with np.errstate(invalid="ignore"):
            bits = np.mod(np.floor(v), np.float32(2)) == 1
        return np.packbits(bits, axis=1, bitorder="little")

    def _thresholds(self, list_nos: np.ndarray) -> np.ndarray | None:
        if self.threshold_type == self.Thresh_global:
            return None
        table = self.trained.reshape(self.nlist, self.nbit)
        return table[np.maximum(list_nos, 0)]

    def _encode(self, x: np.ndarray, list_nos: np.ndarray) -> np.ndarray:
        if x.shape[0] == 0:
            return np.zeros((0, self.code_size), dtype=np.uint8)
        codes = self._binarize(self._transform(x), self._thresholds(list_nos))
        codes[list_nos < 0] = 0
        return codes

    def _decode(self, codes: np.ndarray, list_nos: np.ndarray) -> np.ndarray:
        raise NotImplementedError("IndexIVFSpectralHash stores hashes, which cannot be decoded "
                                  "into vectors (as in FAISS): reconstruct is not available")

    def _query_codes(self, x: np.ndarray, probes: np.ndarray) -> np.ndarray:
        """The code of query i against probe p, at row i * nprobe + p."""
        y = np.repeat(self._transform(x), probes.shape[1], axis=0)
        return as_words(self._binarize(y, self._thresholds(probes.ravel())))

    # --- search --------------------------------------------------------------
    def _search_preassigned(self, x, k, probes, probe_dists, ctx, D, I):
        from ..kernels.spectral_hash import sh_knn
        probes = np.ascontiguousarray(probes, dtype=np.int64)
        n = x.shape[0]
        hd = np.empty((n, k), dtype=np.int32)
        hi = np.empty((n, k), dtype=np.int64)
        if n:
            qc = self._query_codes(x, probes)
            codes = as_words(np.ascontiguousarray(ctx.codes))
            npr = probes.shape[1]

            def work(p: int, q0: int) -> None:
                q1 = min(n, q0 + _QUERIES_PER_TASK)
                sh_knn(qc[q0 * npr:q1 * npr], codes, ctx.ids, ctx.offsets, ctx.sizes,
                       probes[q0:q1], ctx.max_codes, ctx.mask, ctx.use_mask, hd[q0:q1], hi[q0:q1])

            _blas.run_pipelines(range(0, n, _QUERIES_PER_TASK), work, _pipelines(n))
        D[:] = np.where(hi < 0, np.float32(worst_distance(METRIC_L2)), hd.astype(np.float32))
        I[:] = hi
        return D, I

    def _range_preassigned(self, x, radius, probes, probe_dists, ctx):
        from ..kernels.spectral_hash import sh_range
        probes = np.ascontiguousarray(probes, dtype=np.int64)
        n = x.shape[0]
        r = int(min(max(np.ceil(radius), -1), 1 << 30))  # integer distances: d < radius
        counts = np.zeros(n, dtype=np.int64)
        lims = np.zeros(n + 1, dtype=np.int64)
        if n == 0:
            return lims, np.zeros(0, np.float32), np.zeros(0, np.int64)
        args = (self._query_codes(x, probes), as_words(np.ascontiguousarray(ctx.codes)), ctx.ids,
                ctx.offsets, ctx.sizes, probes, r, ctx.mask, ctx.use_mask, counts)
        D = np.empty(0, dtype=np.int32)
        I = np.empty(0, dtype=np.int64)
        sh_range(*args, lims, D, I, False)
        np.cumsum(counts, out=lims[1:])
        D = np.empty(int(lims[-1]), dtype=np.int32)
        I = np.empty(int(lims[-1]), dtype=np.int64)
        sh_range(*args, lims, D, I, True)
        return lims, D.astype(np.float32), I
