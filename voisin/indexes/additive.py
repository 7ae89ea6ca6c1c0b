"""Flat indexes of additive-quantizer codes: IndexResidualQuantizer and kin.

Every vector is stored as its code, scanned with a look-up table of the
query's inner products with all codewords (one BLAS product per batch).
Storage rows are ``code_size`` code bytes padded to a multiple of 4, then one
float32 *side value*: the squared norm of the reconstruction the search type
prescribes (the stored quantized norm, the exact one for ST_decompress, 0 for
ST_LUT_nonorm). FAISS decodes every vector for ST_decompress; voisin keeps its
exact norm beside the code instead, which gives the same distances (up to
float rounding) at look-up-table speed, for 4 bytes of memory per vector.
Files hold the FAISS codes only; the side values are recomputed on load.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from .. import filtering
from ..codecs.additive import ST_LUT_nonorm, ST_decompress, AdditiveQuantizer
from ..codecs.rq import ResidualQuantizer
from ..index import Index
from ..kernels import rq as K
from ..metric import METRIC_INNER_PRODUCT, METRIC_L2, check_metric, worst_distance
from ..range_results import join_query_blocks
from .code_storage import PublishedCodes

_NO_IDS = np.zeros(1, dtype=np.int64)
# up to this many queries are scanned on the calling thread (no thread launch)
SERIAL_MAX_QUERIES = 4
# queries per look-up-table block (bounds the nq x total_codebook_size table)
LUT_BLOCK_BYTES = 64 << 20


def row_width(code_size: int) -> int:
    """Storage bytes per vector: the code padded to 4 bytes, then the float32 side value."""
    return (code_size + 3) // 4 * 4 + 4


def make_rows(codes: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Storage rows from FAISS codes (n, code_size) and side values (n,)."""
    n, cs = codes.shape
    rows = np.zeros((n, row_width(cs)), dtype=np.uint8)
    rows[:, :cs] = codes
    rows.view(np.float32)[:, -1] = side
    return rows


def ip_weight(aq: AdditiveQuantizer, metric: int) -> np.float32:
    """How many times an L2 scan subtracts the query-code inner product: twice,
    except under ST_LUT_nonorm where FAISS computes ``||q||^2 - <q, y>``."""
    return np.float32(1.0 if metric == METRIC_L2 and aq.search_type == ST_LUT_nonorm else 2.0)


def lut_blocks(aq: AdditiveQuantizer, x: np.ndarray):
    """(q0, q1, LUT) blocks of query x codeword inner products."""
    step = max(1, LUT_BLOCK_BYTES // (4 * aq.total_codebook_size))
    cbt = np.ascontiguousarray(aq.full_codebooks().T)
    for q0 in range(0, x.shape[0], step):
        q1 = min(x.shape[0], q0 + step)
        yield q0, q1, np.ascontiguousarray(x[q0:q1] @ cbt, dtype=np.float32)


def scan(aq: AdditiveQuantizer, x: np.ndarray, probes: np.ndarray, pbias: np.ndarray,
         rows: np.ndarray, ids: np.ndarray, use_ids: bool, offsets: np.ndarray, sizes: np.ndarray,
         metric: int, max_codes: int, mask: np.ndarray, use_mask: bool, D: np.ndarray,
         I: np.ndarray) -> None:
    """k-NN of x over the probed lists of a slab of storage rows (see kernels/rq.py)."""
    side = rows.view(np.float32)
    col = side.shape[1] - 1
    offs = np.ascontiguousarray(aq.codebook_offsets[:-1])
    w = ip_weight(aq, metric)
    serial = x.shape[0] <= SERIAL_MAX_QUERIES or numba.get_num_threads() == 1
    kernel = K.scan_lists_serial if serial else K.scan_lists
    for q0, q1, lut in lut_blocks(aq, x):
        kernel(lut, probes[q0:q1], pbias[q0:q1], rows, side, col, ids, use_ids, offsets, sizes,
                     offs, aq._widths, aq.only_8bit, metric, w, max_codes, mask, use_mask,
                     worst_distance(metric), D[q0:q1], I[q0:q1])


def range_scan(aq: AdditiveQuantizer, x: np.ndarray, probes: np.ndarray, pbias: np.ndarray,
               rows: np.ndarray, ids: np.ndarray, use_ids: bool, offsets: np.ndarray,
               sizes: np.ndarray, metric: int, radius: float, max_codes: int, mask: np.ndarray,
               use_mask: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    side = rows.view(np.float32)
    col = side.shape[1] - 1
    offs = np.ascontiguousarray(aq.codebook_offsets[:-1])
    parts = []
    for q0, q1, lut in lut_blocks(aq, x):
        parts.append(K.range_lists(lut, probes[q0:q1], pbias[q0:q1], rows, side, col, ids, use_ids,
                                   offsets, sizes, offs, aq._widths, aq.only_8bit, metric,
                                   ip_weight(aq, metric), np.float32(radius), max_codes, mask,
                                   use_mask))
    return join_query_blocks(parts)


class IndexAdditiveQuantizer(PublishedCodes, Index):
    """Base of the flat additive-quantizer indexes: the quantizer is ``self.aq``."""

    def __init__(self, d: int, aq: AdditiveQuantizer, metric: int = METRIC_L2):
        if check_metric(metric) not in (METRIC_L2, METRIC_INNER_PRODUCT):
            # as FAISS: look-up tables of inner products serve L2 and IP only
            raise ValueError(f"metric: additive quantizers support METRIC_L2 and "
                             f"METRIC_INNER_PRODUCT, got {metric}")
        super().__init__(d, check_metric(metric))
        self.aq = aq
        self.code_size = aq.code_size
        self.is_trained = aq.is_trained
        self._reset()

    @property
    def search_type(self) -> int:
        return self.aq.search_type

    def _set_aq(self, aq: AdditiveQuantizer) -> None:
        """Replace the codec (the ``rq`` / ``lsq`` / ... setters)."""
        if aq.code_size != self.code_size and self.ntotal:
            raise ValueError(f"{type(aq).__name__}: a quantizer with another code size cannot "
                             "replace the codec of a non-empty index")
        resize = aq.code_size != self.code_size
        self.aq = aq
        self.code_size = aq.code_size
        if resize:
            self._reset()

    @property
    def codes(self) -> np.ndarray:
        """Stored codes (ntotal, code_size), FAISS's bytes (read-only view)."""
        rows, n = self._snap
        v = rows[:n, :self.code_size]
        v.flags.writeable = False
        return v

    def _train(self, x: np.ndarray) -> None:
        self.aq.train_validated(x)
        self.is_trained = True

    # --- storage -------------------------------------------------------------------
    def _row_width(self) -> int:
        return row_width(self.code_size)

    def _decode_rows(self, rows: np.ndarray) -> np.ndarray:
        return self.aq.decode_rows(rows)

    def _side(self, rows: np.ndarray) -> np.ndarray:
        if self.metric_type != METRIC_L2:
            return np.zeros(rows.shape[0], dtype=np.float32)
        return self.aq.search_norms(rows)

    def _rows_of_codes(self, codes: np.ndarray) -> np.ndarray:
        rows = make_rows(codes, np.zeros(codes.shape[0], dtype=np.float32))
        rows.view(np.float32)[:, -1] = self._side(rows)
        return rows

    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        if ids is not None:
            raise NotImplementedError(
                f"{type(self).__name__} numbers vectors by position and cannot take ids: wrap it, "
                f"e.g. IndexIDMap({type(self).__name__}(...)).add_with_ids(x, ids)")
        self._append(self._rows_of_codes(self.aq.encode_rows(x)[0]))

    def add_codes(self, codes: Any) -> None:
        """Append already-encoded vectors (n, code_size) uint8 (FAISS's sa_decode inverse)."""
        self._check_trained()
        codes = self.aq._as_codes(codes)
        with self._write_lock:
            self._append(self._rows_of_codes(codes))

    def set_codes(self, codes: np.ndarray) -> None:
        """Replace the storage by these FAISS codes (n, code_size) (used by the file reader)."""
        codes = self.aq._as_codes(codes)
        self._snap = (self._rows_of_codes(codes), codes.shape[0])

    # --- standalone codec ------------------------------------------------------------
    def sa_code_size(self) -> int:
        return self.code_size

    def sa_encode(self, x: Any) -> np.ndarray:
        self._check_trained()
        return self.aq.compute_codes(x)

    def sa_decode(self, codes: Any) -> np.ndarray:
        self._check_trained()
        return self.aq.decode(codes)

    # --- search ------------------------------------------------------------------------
    def _one_list(self, x: np.ndarray, n: int) -> tuple:
        nq = x.shape[0]
        probes = np.zeros((nq, 1), dtype=np.int64)
        if self.metric_type == METRIC_L2:
            pbias = np.einsum("ij,ij->i", x, x).astype(np.float32).reshape(nq, 1)
        else:
            pbias = np.zeros((nq, 1), dtype=np.float32)
        return probes, pbias, np.zeros(1, dtype=np.int64), np.array([n], dtype=np.int64)

    def _search(self, x, k, params, D, I):
        nq = x.shape[0]
        D = np.empty((nq, k), dtype=np.float32) if D is None else D
        I = np.empty((nq, k), dtype=np.int64) if I is None else I
        got = self._scan_rows(params)
        if got is None:
            return filtering.no_results(nq, k, self.metric_type, D, I)
        rows, n, mask, use_mask, ids = got
        use_ids = ids is not None
        ids = _NO_IDS if ids is None else ids
        probes, pbias, offsets, sizes = self._one_list(x, n)
        scan(self.aq, x, probes, pbias, rows, ids, use_ids, offsets, sizes, self.metric_type, 0,
             mask, use_mask, D, I)
        return D, I

    def _range_search(self, x, radius, params):
        rows, n = self._snap
        mask, use_mask = self._mask(params, n)
        probes, pbias, offsets, sizes = self._one_list(x, n)
        return range_scan(self.aq, x, probes, pbias, rows, _NO_IDS, False, offsets, sizes,
                          self.metric_type, radius, 0, mask, use_mask)


class IndexResidualQuantizer(IndexAdditiveQuantizer):
    """Vectors stored as residual-quantizer codes (FAISS ``IndexResidualQuantizer``).

    ``IndexResidualQuantizer(d, M, nbits, metric=METRIC_L2, search_type=ST_decompress)``
    or ``IndexResidualQuantizer(d, [nbits...], metric, search_type)``; the codec
    is ``index.rq``. Each vector costs ``code_size`` bytes in files
    (``ceil((M * nbits + norm bits) / 8)``), plus 4 to 7 bytes in memory.

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).random((3000, 16), dtype="float32")
        >>> index = voisin.IndexResidualQuantizer(16, 2, 6)
        >>> index.rq.train_type = voisin.ResidualQuantizer.Train_default
        >>> index.train(xb)
        >>> index.add(xb)
        >>> D, I = index.search(xb[:2], 3)
        >>> index.code_size
        2
    """

    def __init__(self, d: int, M: Any = 1, nbits: Any = None, metric: int | None = None,
                 search_type: int | None = None):
        if isinstance(M, (list, tuple, np.ndarray)):
            # FAISS's (d, [nbits...], metric, search_type): the arguments shift by one
            if search_type is not None:
                raise TypeError("IndexResidualQuantizer(d, nbits_list, metric, search_type) "
                                "takes at most 4 arguments")
            metric, search_type = nbits, metric
            rq = ResidualQuantizer(d, list(M), ST_decompress if search_type is None else search_type)
        else:
            rq = ResidualQuantizer(d, M, 8 if nbits is None else nbits,
                                   ST_decompress if search_type is None else search_type)
        metric = METRIC_L2 if metric is None else metric
        super().__init__(d, rq, metric)

    @property
    def rq(self) -> ResidualQuantizer:
        return self.aq

    @rq.setter
    def rq(self, value: ResidualQuantizer) -> None:
        self._set_aq(value)


class IndexProductResidualQuantizer(IndexAdditiveQuantizer):
    """Vectors stored as product-residual-quantizer codes (FAISS
    ``IndexProductResidualQuantizer``): ``nsplits`` sub-spaces, each a residual
    quantizer of ``Msub`` stages of ``nbits``; the codec is ``index.prq``.

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).random((3000, 16), dtype="float32")
        >>> index = voisin.IndexProductResidualQuantizer(16, 2, 2, 5)
        >>> for q in index.prq.quantizers:
        ...     q.train_type = voisin.ResidualQuantizer.Train_default
        >>> index.train(xb)
        >>> index.add(xb)
        >>> D, I = index.search(xb[:2], 3)
        >>> index.code_size
        3
    """

    def __init__(self, d: int, nsplits: int = 1, Msub: int = 1, nbits: int = 8,
                 metric: int = METRIC_L2, search_type: int = ST_decompress):
        from ..codecs.prq import ProductResidualQuantizer
        super().__init__(d, ProductResidualQuantizer(d, nsplits, Msub, nbits, search_type), metric)

    @property
    def prq(self):
        return self.aq

    @prq.setter
    def prq(self, value) -> None:
        self._set_aq(value)


class IndexLocalSearchQuantizer(IndexAdditiveQuantizer):
    """Vectors stored as local-search-quantizer codes (FAISS ``IndexLocalSearchQuantizer``);
    the codec is ``index.lsq``.

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).random((1000, 8), dtype="float32")
        >>> index = voisin.IndexLocalSearchQuantizer(8, 2, 4)
        >>> index.lsq.train_iters = 4
        >>> index.train(xb)
        >>> index.add(xb)
        >>> index.code_size
        1
    """

    def __init__(self, d: int, M: int = 1, nbits: int = 8, metric: int = METRIC_L2,
                 search_type: int = ST_decompress):
        from ..codecs.lsq import LocalSearchQuantizer
        super().__init__(d, LocalSearchQuantizer(d, M, nbits, search_type), metric)

    @property
    def lsq(self):
        return self.aq

    @lsq.setter
    def lsq(self, value) -> None:
        self._set_aq(value)


class IndexProductLocalSearchQuantizer(IndexAdditiveQuantizer):
    """Vectors stored as product-local-search-quantizer codes (FAISS
    ``IndexProductLocalSearchQuantizer``); the codec is ``index.plsq``.

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).random((1000, 8), dtype="float32")
        >>> index = voisin.IndexProductLocalSearchQuantizer(8, 2, 1, 4)
        >>> for q in index.plsq.quantizers:
        ...     q.train_iters = 3
        >>> index.train(xb); index.add(xb)
        >>> index.code_size
        1
    """

    def __init__(self, d: int, nsplits: int = 1, Msub: int = 1, nbits: int = 8,
                 metric: int = METRIC_L2, search_type: int = ST_decompress):
        from ..codecs.prq import ProductLocalSearchQuantizer
        super().__init__(d, ProductLocalSearchQuantizer(d, nsplits, Msub, nbits, search_type),
                         metric)

    @property
    def plsq(self):
        return self.aq

    @plsq.setter
    def plsq(self, value) -> None:
        self._set_aq(value)
