"""IndexPQ: every vector stored as a product-quantizer code, searched by ADC."""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from .. import filtering
from ..codecs.pq import ProductQuantizer
from ..index import Index
from ..kernels import pq as K
from ..metric import METRIC_L2, is_similarity, worst_distance
from ..search_params import SearchParametersPQ
from .code_storage import PublishedCodes


def finish_costs(hd: np.ndarray, hi: np.ndarray, metric: int, D: np.ndarray | None,
                 I: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Sorted heap costs -> FAISS distances; empty slots get FAISS's worst value."""
    if D is None:
        D = np.empty(hd.shape, dtype=np.float32)
    if I is None:
        I = hi
    elif I is not hi:
        I[:] = hi
    if is_similarity(metric):
        np.negative(hd, out=D)
    elif D is not hd:
        D[:] = hd
    missing = I < 0
    if missing.any():
        D[missing] = worst_distance(metric)
    return D, I


class IndexPQ(PublishedCodes, Index):
    """Product-quantized vectors, scanned exhaustively with look-up tables.

    ``M`` sub-quantizers of ``nbits`` bits: each vector costs
    ``ceil(M * nbits / 8)`` bytes. Distances are approximate (asymmetric:
    the query is exact, the database vectors are their reconstructions).
    Ids are positions 0..ntotal-1 (wrap in IndexIDMap for your own ids);
    ``remove_ids`` compacts, as FAISS does.

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.rand(5000, 32).astype("float32")
        >>> index = voisin.IndexPQ(32, 8, 8)
        >>> index.train(xb)
        >>> index.add(xb)
        >>> D, I = index.search(xb[:3], 5)
        >>> index.code_size
        8
    """

    #: FAISS's IndexPQ takes SearchParametersPQ (search_type, polysemous_ht, sel)
    params_type = SearchParametersPQ

    def __init__(self, d: int, M: int = 8, nbits: int = 8, metric: int = METRIC_L2):
        super().__init__(d, metric)
        self.pq = ProductQuantizer(self.d, M, nbits)
        self.code_size = self.pq.code_size
        self.is_trained = False
        self._codes = np.empty((0, self.code_size), dtype=np.uint8)

    @property
    def M(self) -> int:
        return self.pq.M

    @property
    def nbits(self) -> int:
        return self.pq.nbits

    def _train(self, x: np.ndarray) -> None:
        self.pq.train_validated(x)
        self.is_trained = True

    # --- standalone codec (FAISS sa_encode / sa_decode) ---------------------
    def sa_code_size(self) -> int:
        return self.code_size

    def sa_encode(self, x: Any) -> np.ndarray:
        self._check_trained()
        return self.pq.compute_codes(x)

    def sa_decode(self, codes: Any) -> np.ndarray:
        self._check_trained()
        return self.pq.decode(codes)

    # --- storage ---------------------------------------------------------
    def add_codes(self, codes: np.ndarray) -> None:
        """Append already-encoded vectors (n, code_size) uint8."""
        codes = self.pq._as_codes(codes)
        with self._write_lock:
            self._append(codes)

    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        if ids is not None:
            raise NotImplementedError(
                "IndexPQ numbers vectors by position and cannot take ids: "
                "wrap it, e.g. IndexIDMap(IndexPQ(d, M, nbits)).add_with_ids(x, ids)")
        self._append(self.pq.encode(x))

    def _search(self, x, k, params, D, I):
        got = self._scan_rows(params)
        if got is None:
            return filtering.no_results(x.shape[0], k, self.metric_type, D, I)
        codes, n, mask, use_mask, rows = got
        nq = x.shape[0]
        hd = np.empty((nq, k), dtype=np.float32)
        hi = np.empty((nq, k), dtype=np.int64) if I is None else I
        if nq == 1 or numba.get_num_threads() == 1:
            K.search_serial(x, codes, n, self.pq.cent_t, self.pq.nbits, self.metric_type,
                            mask, use_mask, hd, hi)
        else:
            K.search_parallel(x, codes, n, self.pq.cent_t, self.pq.nbits, self.metric_type,
                              mask, use_mask, hd, hi)
        if rows is not None:
            hi[:] = np.where(hi >= 0, rows[np.maximum(hi, 0)], -1)
        return finish_costs(hd, hi, self.metric_type, D, hi)

    def _range_search(self, x, radius, params):
        codes, n = self._snap
        mask, use_mask = self._mask(params, n)
        return K.range_search(x, codes, n, self.pq.cent_t, self.pq.nbits, self.metric_type,
                              np.float32(radius), mask, use_mask)

    def _decode_rows(self, rows: np.ndarray) -> np.ndarray:
        return self.pq.decode(rows)
