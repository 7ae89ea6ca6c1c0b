"""IndexIVFResidualQuantizer: inverted lists of residual-quantizer codes.

With ``by_residual`` (FAISS's default for additive quantizers) a vector in
list l is stored as the code of ``r = x - c_l``. FAISS builds one look-up
table per (query, list) from ``q - c_l``; voisin needs only the query's table,
through the decomposition

    ||q - c - r||^2 = ||q - c||^2  +  (||r||^2 + 2 <c, r>)  -  2 <q, r>
                      coarse dist.      side value of the code   LUT

where the side value is computed once when the vector is added (with the
norm the search type prescribes for ``||r||^2``) and kept in the last 4 bytes
of the vector's slab row (see voisin/indexes/additive.py). For inner product
``<q, c + r> = <q, c> + <q, r>``: the coarse score plus the LUT. The
distances are FAISS's up to float rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..codecs.additive import ST_decompress, AdditiveQuantizer
from ..codecs.rq import ResidualQuantizer
from ..index import Index
from ..metric import METRIC_INNER_PRODUCT, METRIC_L2, check_metric
from .additive import ip_weight, make_rows, range_scan, row_width, scan
from .invlists import InvertedLists
from .ivf import IndexIVF, dimension_of


def _codec_alias(name: str) -> property:
    """FAISS's name of the codec (``index.rq``, ``index.lsq``, ...) for ``index.aq``.
    A replacement keeps the code size of a non-empty index (its lists hold codes)."""
    def get(self):
        return self.aq

    def set_(self, value) -> None:
        if value.code_size != self.aq.code_size and self.ntotal:
            raise ValueError(f"{name}: a quantizer with another code size cannot replace the codec "
                             "of a non-empty index")
        self.aq = value
        self.code_size = value.code_size
        if self.ntotal == 0:
            self.invlists = InvertedLists(self.nlist, row_width(value.code_size))
    return property(get, set_)


class IndexIVFAdditiveQuantizer(IndexIVF):
    """Base of the IVF additive-quantizer indexes; the codec is ``self.aq``."""

    def __init__(self, aq: AdditiveQuantizer, quantizer: Index | None, d: int, nlist: int,
                 metric: int = METRIC_L2):
        if check_metric(metric) not in (METRIC_L2, METRIC_INNER_PRODUCT):
            # as FAISS: look-up tables of inner products serve L2 and IP only
            raise ValueError(f"metric: additive quantizers support METRIC_L2 and "
                             f"METRIC_INNER_PRODUCT, got {metric}")
        self.aq = aq  # IndexIVF.__init__ asks whether the codec is trained
        super().__init__(quantizer, d, nlist, row_width(aq.code_size), check_metric(metric))
        # the slab rows carry a side value; code_size is FAISS's (files, sa_encode)
        self.code_size = aq.code_size
        self.by_residual = True
        #: kept for FAISS's file layout; voisin never needs per-list tables
        self.use_precomputed_table = 0
        self._codec_trained = aq.is_trained
        self.is_trained = self._quantizer_ready() and self._codec_is_trained()

    # --- training -----------------------------------------------------------------
    def train_encoder_num_vectors(self) -> int:
        """Training vectors the quantizer sees (FAISS: 1024 * 2**nbits[0], times M for LSQ)."""
        from ..codecs.lsq import LocalSearchQuantizer
        per = self.aq.M if isinstance(self.aq, LocalSearchQuantizer) else 1
        return 1024 * per * (1 << self.aq.nbits[0])

    def _codec_is_trained(self) -> bool:
        return bool(self.aq.is_trained)

    def _train_codec(self, x: np.ndarray, list_nos: np.ndarray | None) -> None:
        n = x.shape[0]
        cap = self.train_encoder_num_vectors()
        if n > cap:
            rows = np.sort(np.random.default_rng(self.cp.seed).permutation(n)[:cap])
            x = x[rows]
            list_nos = list_nos[rows] if list_nos is not None else None
        if self.by_residual:
            x = self._residuals(x, list_nos)
        self.aq.train_validated(np.ascontiguousarray(x, dtype=np.float32))

    def _centroid_rows(self, list_nos: np.ndarray) -> np.ndarray:
        flat = self._flat_centroids()
        if flat is not None:
            return flat[0][list_nos]
        return self.quantizer.reconstruct_batch(list_nos)

    # --- codec ------------------------------------------------------------------------
    def _side(self, rows: np.ndarray, list_nos: np.ndarray) -> np.ndarray:
        if self.metric_type != METRIC_L2:
            return np.zeros(rows.shape[0], dtype=np.float32)
        side = self.aq.search_norms(rows)
        if self.by_residual and rows.shape[0]:
            r = self.aq.decode_rows(rows)
            c = self._centroid_rows(list_nos)
            side = side + ip_weight(self.aq, self.metric_type) * np.einsum("ij,ij->i", c, r)
        return np.ascontiguousarray(side, dtype=np.float32)

    def rows_of_codes(self, codes: np.ndarray, list_nos: np.ndarray) -> np.ndarray:
        """Slab rows (codes + side values) of FAISS codes stored in the given lists."""
        rows = make_rows(codes, np.zeros(codes.shape[0], dtype=np.float32))
        rows.view(np.float32)[:, -1] = self._side(rows, list_nos)
        return rows

    def _encode(self, x: np.ndarray, list_nos: np.ndarray) -> np.ndarray:
        if self.by_residual:
            x = np.ascontiguousarray(self._residuals(x, list_nos), dtype=np.float32)
        return self.rows_of_codes(self.aq.encode_rows(x)[0], list_nos)

    def _decode(self, codes: np.ndarray, list_nos: np.ndarray) -> np.ndarray:
        out = self.aq.decode_rows(np.ascontiguousarray(codes))
        if self.by_residual and out.shape[0]:
            out += self._centroid_rows(list_nos)
        return out

    def encode_vectors(self, x: Any, list_nos: Any) -> np.ndarray:
        """FAISS codes (n, code_size) of ``x`` for the given lists."""
        return np.ascontiguousarray(super().encode_vectors(x, list_nos)[:, :self.code_size])

    def decode_vectors(self, codes: np.ndarray, list_nos: Any) -> np.ndarray:
        codes = self.aq._as_codes(codes)
        lists = np.ascontiguousarray(list_nos, dtype=np.int64)
        return self._decode(make_rows(codes, np.zeros(codes.shape[0], np.float32)), lists)

    def sa_code_size(self) -> int:
        return self.code_size

    # --- search ----------------------------------------------------------------------
    def _needs_probe_dists(self) -> bool:
        return True

    def _probe_bias(self, x: np.ndarray, probe_dists: np.ndarray) -> np.ndarray:
        if self.by_residual:
            # L2: the codes are relative to ||q - c||^2; IP: they add to <q, c>
            return np.ascontiguousarray(probe_dists, dtype=np.float32)
        if self.metric_type == METRIC_L2:
            qn = np.einsum("ij,ij->i", x, x).astype(np.float32)
            return np.ascontiguousarray(np.broadcast_to(qn[:, None], probe_dists.shape))
        return np.zeros(probe_dists.shape, dtype=np.float32)

    def _search_preassigned(self, x, k, probes, probe_dists, ctx, D, I):
        probes = np.ascontiguousarray(probes, dtype=np.int64)
        pbias = self._probe_bias(x, np.asarray(probe_dists, dtype=np.float32))
        scan(self.aq, x, probes, pbias, ctx.codes, ctx.ids, True, ctx.offsets, ctx.sizes,
             self.metric_type, ctx.max_codes, ctx.mask, ctx.use_mask, D, I)
        return D, I

    def _range_preassigned(self, x, radius, probes, probe_dists, ctx):
        probes = np.ascontiguousarray(probes, dtype=np.int64)
        pbias = self._probe_bias(x, np.asarray(probe_dists, dtype=np.float32))
        return range_scan(self.aq, x, probes, pbias, ctx.codes, ctx.ids, True, ctx.offsets,
                          ctx.sizes, self.metric_type, radius, ctx.max_codes, ctx.mask,
                          ctx.use_mask)

    # --- loading -----------------------------------------------------------------------
    def install_lists(self, il: InvertedLists) -> None:
        """Take inverted lists of FAISS codes (code_size bytes per entry) and widen
        them into slab rows with side values."""
        n = il.codes.shape[0]
        lists = np.repeat(np.arange(self.nlist, dtype=np.int64), il.sizes)
        used = np.concatenate([np.arange(o, o + s) for o, s in zip(il.offsets, il.sizes)]) \
            if n else np.zeros(0, dtype=np.int64)
        wide = InvertedLists(self.nlist, row_width(self.code_size))
        rows = np.zeros((n, wide.code_size), dtype=np.uint8)
        if used.size:
            rows[used] = self.rows_of_codes(np.ascontiguousarray(il.codes[used, :self.code_size]),
                                            lists)
        wide.codes, wide.ids = rows, il.ids
        wide.offsets, wide.sizes, wide.capacity = il.offsets, il.sizes, il.capacity
        self.invlists = wide

    def faiss_lists(self) -> InvertedLists:
        """The inverted lists as FAISS stores them (code_size bytes per entry)."""
        il = self.invlists
        out = InvertedLists(self.nlist, self.code_size)
        out.codes = np.ascontiguousarray(il.codes[:, :self.code_size])
        out.ids, out.offsets, out.sizes, out.capacity = il.ids, il.offsets, il.sizes, il.capacity
        return out


class IndexIVFResidualQuantizer(IndexIVFAdditiveQuantizer):
    """IVF over residual-quantizer codes (FAISS ``IndexIVFResidualQuantizer``).

    ``IndexIVFResidualQuantizer(quantizer, d, nlist, M, nbits, metric=METRIC_L2,
    search_type=ST_decompress)`` or with a list of bits per stage in place of
    ``M, nbits``. The codec is ``index.rq``; residuals to the list centroid
    are encoded (``by_residual``, as FAISS).

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).random((4000, 16), dtype="float32")
        >>> index = voisin.IndexIVFResidualQuantizer(voisin.IndexFlatL2(16), 16, 16, 2, 6)
        >>> index.rq.train_type = voisin.ResidualQuantizer.Train_default
        >>> index.train(xb)
        >>> index.add(xb)
        >>> index.nprobe = 4
        >>> D, I = index.search(xb[:2], 3)
        >>> index.code_size
        2
    """

    def __init__(self, quantizer: Index | None = None, d: int | None = None, nlist: int = 1,
                 M: Any = 1, nbits: Any = None, metric: int | None = None,
                 search_type: int | None = None):
        d = dimension_of(quantizer, d, "IndexIVFResidualQuantizer")
        if isinstance(M, (list, tuple, np.ndarray)):
            # FAISS's (quantizer, d, nlist, [nbits...], metric, search_type)
            if search_type is not None:
                raise TypeError("IndexIVFResidualQuantizer(quantizer, d, nlist, nbits_list, "
                                "metric, search_type) takes at most 6 arguments")
            metric, search_type = nbits, metric
            rq = ResidualQuantizer(d, list(M), ST_decompress if search_type is None else search_type)
        else:
            rq = ResidualQuantizer(d, M, 8 if nbits is None else nbits,
                                   ST_decompress if search_type is None else search_type)
        super().__init__(rq, quantizer, d, nlist, METRIC_L2 if metric is None else metric)

    rq = _codec_alias("rq")


class IndexIVFProductResidualQuantizer(IndexIVFAdditiveQuantizer):
    """IVF over product-residual-quantizer codes of the residuals (FAISS
    ``IndexIVFProductResidualQuantizer``); the codec is ``index.prq``.

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).random((4000, 16), dtype="float32")
        >>> index = voisin.IndexIVFProductResidualQuantizer(voisin.IndexFlatL2(16), 16, 8, 2, 2, 5)
        >>> for q in index.prq.quantizers:
        ...     q.train_type = voisin.ResidualQuantizer.Train_default
        >>> index.train(xb); index.add(xb)
        >>> index.code_size
        3
    """

    def __init__(self, quantizer: Index | None = None, d: int | None = None, nlist: int = 1,
                 nsplits: int = 1, Msub: int = 1, nbits: int = 8, metric: int = METRIC_L2,
                 search_type: int = ST_decompress):
        from ..codecs.prq import ProductResidualQuantizer
        d = dimension_of(quantizer, d, "IndexIVFProductResidualQuantizer")
        super().__init__(ProductResidualQuantizer(d, nsplits, Msub, nbits, search_type), quantizer,
                         d, nlist, metric)

    prq = _codec_alias("prq")


class IndexIVFLocalSearchQuantizer(IndexIVFAdditiveQuantizer):
    """IVF over local-search-quantizer codes of the residuals (FAISS
    ``IndexIVFLocalSearchQuantizer``); the codec is ``index.lsq``.

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).random((2000, 8), dtype="float32")
        >>> index = voisin.IndexIVFLocalSearchQuantizer(voisin.IndexFlatL2(8), 8, 4, 2, 4)
        >>> index.lsq.train_iters = 4
        >>> index.train(xb); index.add(xb)
        >>> index.code_size
        1
    """

    def __init__(self, quantizer: Index | None = None, d: int | None = None, nlist: int = 1,
                 M: int = 1, nbits: int = 8, metric: int = METRIC_L2,
                 search_type: int = ST_decompress):
        from ..codecs.lsq import LocalSearchQuantizer
        d = dimension_of(quantizer, d, "IndexIVFLocalSearchQuantizer")
        super().__init__(LocalSearchQuantizer(d, M, nbits, search_type), quantizer, d, nlist,
                         metric)

    lsq = _codec_alias("lsq")


class IndexIVFProductLocalSearchQuantizer(IndexIVFAdditiveQuantizer):
    """IVF over product-local-search-quantizer codes of the residuals (FAISS
    ``IndexIVFProductLocalSearchQuantizer``); the codec is ``index.plsq``.

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).random((2000, 8), dtype="float32")
        >>> index = voisin.IndexIVFProductLocalSearchQuantizer(voisin.IndexFlatL2(8), 8, 4, 2, 1, 4)
        >>> for q in index.plsq.quantizers:
        ...     q.train_iters = 3
        >>> index.train(xb); index.add(xb)
        >>> index.code_size
        1
    """

    def __init__(self, quantizer: Index | None = None, d: int | None = None, nlist: int = 1,
                 nsplits: int = 1, Msub: int = 1, nbits: int = 8, metric: int = METRIC_L2,
                 search_type: int = ST_decompress):
        from ..codecs.prq import ProductLocalSearchQuantizer
        d = dimension_of(quantizer, d, "IndexIVFProductLocalSearchQuantizer")
        super().__init__(ProductLocalSearchQuantizer(d, nsplits, Msub, nbits, search_type),
                         quantizer, d, nlist, metric)

    plsq = _codec_alias("plsq")
