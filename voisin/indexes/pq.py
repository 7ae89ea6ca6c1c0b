"""IndexPQ: every vector stored as a product-quantizer code, searched by ADC,
optionally behind FAISS's polysemous Hamming pre-filter (``search_type =
ST_polysemous``, kernels/polysemous.py)."""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from .. import filtering
from ..codecs.pq import ProductQuantizer
from ..index import Index
from ..kernels import polysemous as KP
from ..kernels import pq as K
from ..metric import METRIC_L2, is_similarity, worst_distance
from ..search_params import (ST_PQ, ST_polysemous, ST_polysemous_generalize, SearchParametersPQ,
                             check_search_type)
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

    Polysemous search (FAISS's): with ``search_type = IndexPQ.ST_polysemous``
    (8-bit codes, L2, code size a multiple of 4 bytes) a code is scored only
    when its Hamming distance to the query's own code is below
    ``polysemous_ht`` (0 = M * nbits + 1: no filtering);
    ``ST_polysemous_generalize`` counts differing sub-codes instead of bits.
    ``SearchParametersPQ(search_type=..., polysemous_ht=...)`` sets both per
    call. The code-to-code types compare the query's own code with the stored
    ones: ``ST_HE`` / ``ST_generalized_hamming`` by Hamming distance (integer
    distances), ``ST_SDC`` by symmetric PQ distance. ``do_polysemous_training`` orders the centroids for it at train time
    (see voisin.polysemous).

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

    ST_PQ = 0
    ST_HE = 1
    ST_generalized_hamming = 2
    ST_SDC = 3
    ST_polysemous = 4
    ST_polysemous_generalize = 5

    # defaults for objects pickled before these settings existed
    _search_type = ST_PQ
    _polysemous_ht = 0
    encode_signs = False
    do_polysemous_training = False
    _polysemous_training = None
    n_hamming_pass = 0

    def __init__(self, d: int, M: int = 8, nbits: int = 8, metric: int = METRIC_L2):
        super().__init__(d, metric)
        self.pq = ProductQuantizer(self.d, M, nbits)
        self.code_size = self.pq.code_size
        self.is_trained = False
        self._codes = np.empty((0, self.code_size), dtype=np.uint8)
        # FAISS's defaults: ADC search, filtering off, no polysemous training
        # (the factory's "PQ{m}" turns it on, "PQ{m}np" leaves it off)
        self.search_type = ST_PQ
        self.polysemous_ht = self.pq.M * self.pq.nbits + 1
        self.encode_signs = False
        self.do_polysemous_training = False
        self._polysemous_training = None

    @property
    def search_type(self) -> int:
        return self._search_type

    @search_type.setter
    def search_type(self, value: int) -> None:
        self._search_type = check_search_type(value, "search_type", supported_only=False)

    @property
    def polysemous_ht(self) -> int:
        return self._polysemous_ht

    @polysemous_ht.setter
    def polysemous_ht(self, value: int) -> None:
        from .._validate import check_int
        self._polysemous_ht = check_int(value, "polysemous_ht", lo=0, hi=(1 << 31) - 1)

    @property
    def polysemous_training(self):
        """FAISS's ``PolysemousTraining`` parameters (created on first use)."""
        if self._polysemous_training is None:
            from ..polysemous import PolysemousTraining
            self._polysemous_training = PolysemousTraining()
        return self._polysemous_training

    @polysemous_training.setter
    def polysemous_training(self, value) -> None:
        from ..polysemous import PolysemousTraining
        if not isinstance(value, PolysemousTraining):
            raise TypeError(f"polysemous_training: expected a voisin.PolysemousTraining, got {value!r}")
        self._polysemous_training = value

    @property
    def M(self) -> int:
        return self.pq.M

    @property
    def nbits(self) -> int:
        return self.pq.nbits

    def _train(self, x: np.ndarray) -> None:
        if not self.do_polysemous_training:
            self.pq.train_validated(x)
        else:
            # FAISS: the last ntrain_permutation vectors (at most a quarter) are
            # kept for the permutation search, the rest trains the quantizer
            pt = self.polysemous_training
            nperm = min(pt.ntrain_permutation, x.shape[0] // 4)
            self.pq.train_validated(x[:x.shape[0] - nperm])
            pt.optimize_pq_for_hamming(self.pq, x[x.shape[0] - nperm:])
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
        search_type, ht = self.search_type, self.polysemous_ht
        if isinstance(params, SearchParametersPQ):
            # FAISS: the parameters' search type replaces the index's
            search_type, ht = params.search_type, params.polysemous_ht
        if search_type in (ST_polysemous, ST_polysemous_generalize):
            return self._search_polysemous(x, k, params, ht, search_type == ST_polysemous_generalize, D, I)
        if search_type != ST_PQ:
            return self._search_code_to_code(x, k, params, search_type, D, I)
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

    def _search_polysemous(self, x, k, params, ht, generalized, D, I):
        """FAISS's ``search_core_polysemous``: Hamming pre-filter, then ADC."""
        if self.metric_type != METRIC_L2:
            raise ValueError("search_type: polysemous search needs METRIC_L2 (FAISS's rule)")
        if self.pq.nbits != 8:
            raise ValueError(f"search_type: polysemous search needs 8-bit codes, the index has "
                             f"nbits={self.pq.nbits}")
        unit = 8 if generalized else 4
        if self.code_size % unit:
            raise ValueError(f"search_type: code size {self.code_size} not supported for polysemous "
                             f"search (a multiple of {unit} bytes is)")
        if ht == 0:
            ht = self.pq.M * self.pq.nbits + 1
        codes, n = self._snap
        mask, use_mask = self._mask(params, n)
        words = -(-self.code_size // 8)
        padded = np.zeros((n, 8 * words), dtype=np.uint8)
        padded[:, :self.code_size] = codes[:n]
        hd = np.empty((x.shape[0], k), dtype=np.float32)
        hi = np.empty((x.shape[0], k), dtype=np.int64) if I is None else I
        self.n_hamming_pass = int(KP.search(x, codes, padded.view(np.uint64), n, self.pq.cent_t, int(ht),
                                            generalized, mask, use_mask, hd, hi))
        return finish_costs(hd, hi, self.metric_type, D, hi)

    def _query_codes(self, x: np.ndarray) -> np.ndarray:
        """The queries' own codes: PQ encoding, or with ``encode_signs`` one bit per
        dimension set when it is positive (FAISS's rule, d == M * nbits)."""
        if not self.encode_signs:
            return self.pq.encode(x)
        if self.d != self.pq.M * self.pq.nbits:
            raise ValueError(f"encode_signs: needs d == M * nbits, got d={self.d}, "
                             f"M * nbits={self.pq.M * self.pq.nbits}")
        bits = (x > 0).astype(np.uint8)
        return np.packbits(bits, axis=1, bitorder="little")[:, :self.code_size]

    def _search_code_to_code(self, x, k, params, search_type, D, I):
        """FAISS's ST_HE / ST_generalized_hamming (integer Hamming distances, INT_MAX
        when missing) and ST_SDC (symmetric distances of the codes)."""
        from ..search_params import ST_SDC
        codes, n = self._snap
        mask, use_mask = self._mask(params, n)
        qcodes = self._query_codes(x)
        nq = x.shape[0]
        hi = np.empty((nq, k), dtype=np.int64) if I is None else I
        if search_type == ST_SDC:
            if self.pq.nbits != 8:
                raise ValueError(f"search_type: ST_SDC needs 8-bit codes, the index has nbits={self.pq.nbits}")
            c = self.pq.centroids
            sdc = np.ascontiguousarray(((c[:, :, None, :] - c[:, None, :, :]) ** 2).sum(-1, dtype=np.float32))
            hd = np.empty((nq, k), dtype=np.float32)
            KP.sdc_knn(np.ascontiguousarray(qcodes), codes, n, sdc, mask, use_mask, hd, hi)
            return finish_costs(hd, hi, METRIC_L2, D, hi)  # squared L2 between codes, whatever the metric
        if search_type == 2 and self.code_size % 8:
            # FAISS compares whole 8-byte words only (a 4-byte code: every distance 0)
            raise ValueError(f"search_type: ST_generalized_hamming needs a code size multiple of 8 "
                             f"bytes, the index has {self.code_size}")
        words = -(-self.code_size // 8)
        padded = np.zeros((n, 8 * words), dtype=np.uint8)
        padded[:, :self.code_size] = codes[:n]
        qpad = np.zeros((nq, 8 * words), dtype=np.uint8)
        qpad[:, :self.code_size] = qcodes
        hd = np.empty((nq, k), dtype=np.int32)
        KP.hamming_knn(qpad.view(np.uint64), padded.view(np.uint64), n, search_type == 2, mask, use_mask,
                       hd, hi)
        if D is None:
            D = np.empty((nq, k), dtype=np.float32)
        D[:] = hd
        return D, hi

    def _range_search(self, x, radius, params):
        codes, n = self._snap
        mask, use_mask = self._mask(params, n)
        return K.range_search(x, codes, n, self.pq.cent_t, self.pq.nbits, self.metric_type,
                              np.float32(radius), mask, use_mask)

    def _decode_rows(self, rows: np.ndarray) -> np.ndarray:
        return self.pq.decode(rows)
