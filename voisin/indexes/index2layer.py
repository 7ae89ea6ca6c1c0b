"""Index2Layer: a coarse quantizer and a PQ of the residual, as flat codes.

FAISS's ``Index2Layer``: every vector is stored as ``code_size_1`` bytes of
its coarse list number (little endian, FAISS's ``encode_listno``) followed by
the PQ code of its residual to that list's centroid. It is the codec of an
IVF-PQ without the inverted lists (``transfer_to_IVFPQ`` moves the codes
into one).

FAISS 1.15.1 stores, encodes, decodes, reconstructs and range-searches with
it, but its ``search`` raises "not implemented". voisin's ``search`` is the
exhaustive search over the decoded vectors (each code's distance computed
from its centroid and its PQ sub-centroids, as FAISS's distance computers
for range search do).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import filtering
from .._validate import as_matrix, check_int
from ..clustering import ClusteringParameters, Kmeans
from ..codecs.pq import ProductQuantizer
from ..index import Index
from ..kernels import index2layer as K
from ..metric import METRIC_L2, check_metric
from ..selector import IDSelector, SearchParameters
from .code_storage import PublishedCodes
from .pq import finish_costs

_NO_MASK = np.zeros(1, dtype=np.bool_)
# queries x codes costs computed at once by range search
RANGE_BLOCK_BYTES = 64 << 20


def coarse_code_size(nlist: int) -> int:
    """Bytes of a list number: the smallest b with 256**b >= nlist (FAISS's rule)."""
    b = 0
    while (1 << (8 * b)) < nlist:
        b += 1
    return b


class Level1Quantizer:
    """FAISS's ``Level1Quantizer``: the coarse ``quantizer``, ``nlist``,
    ``quantizer_trains_alone`` and ``cp`` (k-means parameters, niter=10)."""

    def __init__(self, quantizer: Index, nlist: int):
        self.quantizer = quantizer
        self.nlist = check_int(nlist, "nlist", lo=1)
        self.quantizer_trains_alone = 1 if getattr(quantizer, "_trains_alone", False) else 0
        self.cp = ClusteringParameters(niter=10)

    def train_q1(self, x: np.ndarray, verbose: bool = False) -> None:
        q = self.quantizer
        if q.is_trained and q.ntotal == self.nlist:
            if verbose:
                print("IVF quantizer does not need training.")
            return
        if self.quantizer_trains_alone == 1:
            q.train(x)
            if q.ntotal != self.nlist:
                raise ValueError(f"quantizer: trained alone it holds {q.ntotal} entries, nlist={self.nlist}")
            return
        if self.quantizer_trains_alone != 0:
            raise NotImplementedError("quantizer_trains_alone=2 is not implemented; use 0 or 1")
        if x.shape[0] < self.nlist:
            raise ValueError(f"x: training nlist={self.nlist} centroids needs at least {self.nlist} "
                             f"vectors, got {x.shape[0]}")
        km = Kmeans(q.d, self.nlist, **{**self.cp.as_kwargs(), "verbose": verbose, "update_index": False})
        km.train(x)
        q.reset()
        q.train(km.centroids)
        q.add(km.centroids)

    def encode_listno(self, list_nos: np.ndarray) -> np.ndarray:
        """(n, coarse_code_size) uint8 little-endian list numbers."""
        nb = coarse_code_size(self.nlist)
        le = np.ascontiguousarray(list_nos, dtype="<i8").view(np.uint8).reshape(-1, 8)
        return le[:, :nb]

    def decode_listno(self, codes: np.ndarray) -> np.ndarray:
        nb = coarse_code_size(self.nlist)
        buf = np.zeros((codes.shape[0], 8), dtype=np.uint8)
        buf[:, :nb] = codes[:, :nb]
        return buf.view("<i8").ravel().astype(np.int64)


class Index2Layer(PublishedCodes, Index):
    """Coarse list number + PQ code of the residual per vector (FAISS Index2Layer).

    ``Index2Layer(quantizer, nlist, M, nbits=8, metric=METRIC_L2)``; attributes
    ``q1`` (:class:`Level1Quantizer`), ``pq``, ``code_size_1`` (list number
    bytes), ``code_size_2`` (PQ code bytes), ``code_size``, ``codes``.

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).random((4000, 16), dtype="float32")
        >>> index = voisin.index_factory(16, "Residual32,PQ4x6")
        >>> index.train(xb); index.add(xb)
        >>> index.code_size_1, index.code_size_2, index.code_size
        (1, 3, 4)
        >>> D, I = index.search(xb[:2], 3)
    """

    def __init__(self, quantizer: Index | None = None, nlist: int = 1, M: int = 1, nbits: int = 8,
                 metric: int = METRIC_L2):
        if not isinstance(quantizer, Index):
            raise TypeError(f"quantizer: expected a voisin Index (e.g. IndexFlatL2(d)), got {quantizer!r}")
        super().__init__(quantizer.d, check_metric(metric))
        self.q1 = Level1Quantizer(quantizer, nlist)
        self.pq = ProductQuantizer(self.d, M, nbits)
        self.code_size_1 = coarse_code_size(self.q1.nlist)
        self.code_size_2 = self.pq.code_size
        self.code_size = self.code_size_1 + self.code_size_2
        self.is_trained = False
        self._codes = np.empty((0, self.code_size), dtype=np.uint8)
        self._rows = None  # (codes array, count, rows, coarse): the decoded list numbers

    # --- training -----------------------------------------------------------
    def _train(self, x: np.ndarray) -> None:
        self.q1.train_q1(x, self.verbose)
        # FAISS's fvecs_maybe_subsample: at most 256 * ksub vectors, drawn
        # with the PQ's seed, in the shuffle's order
        nmax = self.pq.max_points_per_centroid * self.pq.ksub
        if x.shape[0] > nmax:
            from ..rng import permutation
            x = x[permutation(x.shape[0], self.pq.seed)[:nmax]]
        list_nos = self._assign(x)
        self.pq.train_validated(self._residuals(x, list_nos))
        self.is_trained = True

    def _assign(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.q1.quantizer.assign(x, 1)[:, 0], dtype=np.int64)

    def _residuals(self, x: np.ndarray, list_nos: np.ndarray) -> np.ndarray:
        return (x - self.q1.quantizer.reconstruct_batch(list_nos)).astype(np.float32)

    # --- the codec ------------------------------------------------------------
    def sa_code_size(self) -> int:
        return self.code_size

    def _encode(self, x: np.ndarray) -> np.ndarray:
        out = np.empty((x.shape[0], self.code_size), dtype=np.uint8)
        if x.shape[0] == 0:
            return out
        list_nos = self._assign(x)
        if (list_nos < 0).any():
            raise ValueError("x: the coarse quantizer assigned no list to some vectors")
        out[:, :self.code_size_1] = self.q1.encode_listno(list_nos)
        out[:, self.code_size_1:] = self.pq.encode(self._residuals(x, list_nos))
        return out

    def _decode(self, codes: np.ndarray) -> np.ndarray:
        list_nos = self.q1.decode_listno(codes)
        if list_nos.size and (list_nos.min() < 0 or list_nos.max() >= self.q1.nlist):
            raise ValueError(f"codes: a list number is outside [0, {self.q1.nlist})")
        out = self.pq.decode(np.ascontiguousarray(codes[:, self.code_size_1:]))
        out += self.q1.quantizer.reconstruct_batch(list_nos)
        return out

    def sa_encode(self, x: Any) -> np.ndarray:
        x = as_matrix(x, self.d, "x")
        self._check_trained()
        return self._encode(x)

    def sa_decode(self, codes: Any) -> np.ndarray:
        self._check_trained()
        codes = np.asarray(codes)
        if codes.dtype != np.uint8 or codes.ndim != 2 or codes.shape[1] != self.code_size:
            raise ValueError(f"codes: expected a (n, {self.code_size}) uint8 array, got "
                             f"{codes.dtype} {codes.shape}")
        return self._decode(np.ascontiguousarray(codes))

    # --- storage --------------------------------------------------------------
    @property
    def codes(self) -> np.ndarray:
        v = self._codes[:self.ntotal]
        v.flags.writeable = False
        return v

    def add_sa_codes(self, codes: Any) -> None:
        """Append already-encoded vectors (n, code_size) uint8."""
        codes = np.asarray(codes)
        if codes.dtype != np.uint8 or codes.ndim != 2 or codes.shape[1] != self.code_size:
            raise ValueError(f"codes: expected a (n, {self.code_size}) uint8 array, got "
                             f"{codes.dtype} {codes.shape}")
        self._decode(codes[:0])
        lists = self.q1.decode_listno(codes)
        if lists.size and (lists.min() < 0 or lists.max() >= self.q1.nlist):
            raise ValueError(f"codes: a list number is outside [0, {self.q1.nlist})")
        with self._write_lock:
            self._append(np.ascontiguousarray(codes))

    def _append(self, codes: np.ndarray) -> None:
        n0, n = self.ntotal, codes.shape[0]
        need = n0 + n
        if need > self._codes.shape[0]:
            grown = np.empty((max(need, 2 * self._codes.shape[0], 1024), self.code_size), np.uint8)
            grown[:n0] = self._codes[:n0]
            grown[n0:need] = codes
            self._snap = (grown, need)
        else:
            self._codes[n0:need] = codes
            self.ntotal = need

    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        if ids is not None:
            raise NotImplementedError(
                "Index2Layer numbers vectors by position and cannot take ids: wrap it, e.g. "
                "IndexIDMap(index).add_with_ids(x, ids)")
        self._append(self._encode(x))

    def _layout(self, codes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, coarse): each code's centroid row in the gathered centroids."""
        got = self._rows
        if got is not None and got[0] is codes and got[1] == n:
            return got[2], got[3]
        lists = self.q1.decode_listno(codes[:n])
        used, rows = np.unique(lists, return_inverse=True)
        coarse = np.ascontiguousarray(self.q1.quantizer.reconstruct_batch(used), dtype=np.float32) \
            if used.size else np.zeros((1, self.d), dtype=np.float32)
        rows = np.ascontiguousarray(rows.ravel(), dtype=np.int64)
        self._rows = (codes, n, rows, coarse)
        return rows, coarse

    # --- search -----------------------------------------------------------------
    def _mask(self, params: SearchParameters | None, n: int) -> tuple[np.ndarray, bool]:
        if params is None or params.sel is None:
            return _NO_MASK, False
        return np.ascontiguousarray(params.sel.mask_sequential(n), dtype=np.bool_), True

    def _search(self, x, k, params, D, I):
        codes, n = self._snap
        mask, use_mask = self._mask(params, n)
        if use_mask and not mask.any():
            return filtering.no_results(x.shape[0], k, self.metric_type, D, I)
        rows, coarse = self._layout(codes, n)
        hd = np.empty((x.shape[0], k), dtype=np.float32)
        hi = np.empty((x.shape[0], k), dtype=np.int64) if I is None else I
        K.search(x, codes, n, rows, coarse, self.code_size_1, self.pq.centroids, self.pq.nbits,
                 self.metric_type, mask, use_mask, hd, hi)
        return finish_costs(hd, hi, self.metric_type, D, hi)

    def _range_search(self, x, radius, params):
        codes, n = self._snap
        mask, use_mask = self._mask(params, n)
        rows, coarse = self._layout(codes, n)
        block = max(1, RANGE_BLOCK_BYTES // (4 * max(1, n)))
        lims, Ds, Is = [0], [], []
        for q0 in range(0, x.shape[0], block):
            xb = x[q0:q0 + block]
            cost = np.empty((xb.shape[0], n), dtype=np.float32)
            K.all_costs(xb, codes, n, rows, coarse, self.code_size_1, self.pq.centroids, self.pq.nbits,
                        self.metric_type, cost)
            hit = cost < radius if self.metric_type == METRIC_L2 else -cost > radius
            if use_mask:
                hit &= mask[None, :n]
            qi, ji = np.nonzero(hit)
            for i in range(xb.shape[0]):
                lims.append(lims[-1] + int(np.count_nonzero(qi == i)))
            c = cost[qi, ji]
            Ds.append(c if self.metric_type == METRIC_L2 else -c)
            Is.append(ji.astype(np.int64))
        return (np.array(lims, dtype=np.int64), np.concatenate(Ds).astype(np.float32),
                np.concatenate(Is))

    # --- removal, reconstruction ----------------------------------------------
    def _remove(self, sel: IDSelector) -> int:
        n = self.ntotal
        gone = sel.mask_sequential(n)
        removed = int(np.count_nonzero(gone))
        if removed:
            kept = self._codes[:n][~gone]
            codes = np.empty_like(self._codes)
            codes[:kept.shape[0]] = kept
            self._snap = (codes, int(kept.shape[0]))
        return removed

    def _reconstruct_keys(self, keys: np.ndarray) -> np.ndarray:
        bad = (keys < 0) | (keys >= self.ntotal)
        if bad.any():
            raise ValueError(f"key: id {int(keys[bad][0])} is out of range [0, {self.ntotal})")
        return self._decode(self._codes[keys])

    def _reset(self) -> None:
        self._snap = (np.empty((0, self.code_size), dtype=np.uint8), 0)

    def transfer_to_IVFPQ(self, other) -> None:
        """Move the codes into an empty IndexIVFPQ with the same nlist and PQ code
        size (ids 0..ntotal-1), as FAISS does; ``other`` should share the
        quantizer and the PQ for its searches to mean anything."""
        from .ivfpq import IndexIVFPQ
        if not isinstance(other, IndexIVFPQ):
            raise TypeError(f"other: expected an IndexIVFPQ, got {type(other).__name__}")
        if other.nlist != self.q1.nlist:
            raise ValueError(f"other: nlist={other.nlist} differs from {self.q1.nlist}")
        if other.code_size != self.code_size_2:
            raise ValueError(f"other: code_size={other.code_size} differs from {self.code_size_2}")
        if other.ntotal != 0:
            raise ValueError("other: the IndexIVFPQ must be empty")
        codes, n = self._snap
        with other._write_lock:
            other.invlists.add_entries(self.q1.decode_listno(codes[:n]),
                                       np.ascontiguousarray(codes[:n, self.code_size_1:]),
                                       np.arange(n, dtype=np.int64))
            other.direct_map.invalidate()
            other.ntotal = n

    def __repr__(self) -> str:
        return (f"Index2Layer(d={self.d}, nlist={self.q1.nlist}, M={self.pq.M}, nbits={self.pq.nbits}, "
                f"ntotal={self.ntotal})")
