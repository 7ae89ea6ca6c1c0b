"""Additive quantizers (FAISS's ``AdditiveQuantizer``): the shared codec part.

A vector is approximated by the sum of M codewords, codeword ``c_m`` of
codebook m (``2**nbits[m]`` entries). ``codebooks`` is FAISS's table
(total_codebook_size, d): codebook m is rows ``codebook_offsets[m] ..
codebook_offsets[m+1]``. A code packs the M indices in FAISS's little-endian
bit stream, then, for the search types that store one, the squared norm of
the reconstruction (float32 bits, or 8/4-bit uniform or non-uniform
quantization), so that an L2 distance is computed from a look-up table of
inner products: ``||q - y||^2 = ||q||^2 + ||y||^2 - 2 sum_m <q, c_m>``.

Subclasses (ResidualQuantizer, ProductResidualQuantizer) learn the codebooks
and find the codes (:meth:`_encode_idx`); everything else lives here.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .._validate import as_matrix, check_dimension, check_int
from ..kernels import rq as K

# FAISS's AdditiveQuantizer::Search_type_t, same numbers
ST_decompress = 0
ST_LUT_nonorm = 1
ST_norm_from_LUT = 2
ST_norm_float = 3
ST_norm_qint8 = 4
ST_norm_qint4 = 5
ST_norm_cqint8 = 6
ST_norm_cqint4 = 7
ST_norm_lsq2x4 = 8
ST_norm_rq2x4 = 9
ST_count = 10

_NORM_BITS = {ST_norm_float: 32, ST_norm_qint8: 8, ST_norm_cqint8: 8, ST_norm_lsq2x4: 8,
              ST_norm_rq2x4: 8, ST_norm_qint4: 4, ST_norm_cqint4: 4}

# FAISS's default cap on beam-search scratch memory (max_mem_distances)
MAX_MEM_DISTANCES = 5 * (1 << 30)


def check_search_type(st: Any) -> int:
    """A search type of FAISS's list (ST_decompress .. ST_norm_rq2x4)."""
    return check_int(st, "search_type", lo=0, hi=ST_count - 1)


def as_nbits(M: int | None, nbits: int | Sequence[int]) -> list[int]:
    """FAISS's two constructor forms: (M, nbits) or a list of bits per codebook."""
    if isinstance(nbits, (list, tuple, np.ndarray)):
        bits = [check_int(b, "nbits", lo=1, hi=20) for b in nbits]
        if M is not None and M != len(bits):
            raise ValueError(f"nbits: {len(bits)} values for M={M} codebooks")
    else:
        M = check_int(M, "M", lo=1)
        bits = [check_int(nbits, "nbits", lo=1, hi=20)] * M
    if not bits:
        raise ValueError("nbits: an additive quantizer needs at least one codebook")
    return bits


class AdditiveQuantizer:
    """Base of the additive quantizers; see the module docstring.

    Attributes as FAISS: ``d``, ``M``, ``nbits`` (list), ``codebooks``
    (total_codebook_size, d) float32, ``codebook_offsets`` (M+1), ``code_size``,
    ``tot_bits``, ``norm_bits``, ``search_type``, ``norm_min`` / ``norm_max``,
    ``is_trained``, ``verbose``.
    """

    ST_decompress = ST_decompress
    ST_LUT_nonorm = ST_LUT_nonorm
    ST_norm_from_LUT = ST_norm_from_LUT
    ST_norm_float = ST_norm_float
    ST_norm_qint8 = ST_norm_qint8
    ST_norm_qint4 = ST_norm_qint4
    ST_norm_cqint8 = ST_norm_cqint8
    ST_norm_cqint4 = ST_norm_cqint4
    ST_norm_lsq2x4 = ST_norm_lsq2x4
    ST_norm_rq2x4 = ST_norm_rq2x4
    ST_count = ST_count

    def __init__(self, d: int, nbits: list[int], search_type: int = ST_decompress):
        self.d = check_dimension(d)
        self.nbits = list(nbits)
        self.M = len(self.nbits)
        self.search_type = check_search_type(search_type)
        self.verbose = False
        self.is_trained = False
        self.norm_min = np.float32(np.nan)
        self.norm_max = np.float32(np.nan)
        self.max_mem_distances = MAX_MEM_DISTANCES
        #: non-uniform norm levels (cqint8/cqint4/rq2x4: FAISS's qnorm) and the 2x4
        #: norm codebooks (rq2x4: FAISS's norm_tabs)
        self.qnorm = np.zeros(0, dtype=np.float32)
        self.norm_tabs = np.zeros(0, dtype=np.float32)
        self.set_derived_values()
        self.codebooks = np.zeros((self.total_codebook_size, self.codebook_dim), dtype=np.float32)
        self.centroid_norms = np.zeros(0, dtype=np.float32)
        self.codebook_cross_products = np.zeros(0, dtype=np.float32)

    def set_derived_values(self) -> None:
        """Recompute offsets, bit counts and code size from d, nbits and search_type."""
        self.M = len(self.nbits)
        sizes = [1 << b for b in self.nbits]
        self.codebook_offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.total_codebook_size = int(self.codebook_offsets[-1])
        self.only_8bit = all(b == 8 for b in self.nbits)
        self.norm_bits = _NORM_BITS.get(self.search_type, 0)
        self.tot_bits = sum(self.nbits) + self.norm_bits
        self.code_size = (self.tot_bits + 7) // 8
        self._widths = np.array(self.nbits, dtype=np.int64)
        self._fields = np.array(self.nbits + ([self.norm_bits] if self.norm_bits else []),
                                dtype=np.int64)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(d={self.d}, M={self.M}, nbits={self.nbits}, "
                f"search_type={self.search_type})")

    # --- codebooks ------------------------------------------------------------
    @property
    def codebook_dim(self) -> int:
        """Dimension of a codeword in ``codebooks`` (d; d / nsplits for product quantizers)."""
        return self.d

    def full_codebooks(self) -> np.ndarray:
        """Every codeword as a d-dimensional vector (total_codebook_size, d): what the
        kernels sum and the look-up tables multiply."""
        return self.codebooks

    def _codebooks_changed(self) -> None:
        """Hook: derived codebook data must be rebuilt."""

    def set_codebooks(self, codebooks: Any) -> None:
        """Install codebooks given as (total_codebook_size, codebook_dim) or FAISS's flat array."""
        c = np.ascontiguousarray(codebooks, dtype=np.float32)
        cd = self.codebook_dim
        if c.size != self.total_codebook_size * cd:
            raise ValueError(f"codebooks: expected {self.total_codebook_size} x {cd} values, "
                             f"got shape {c.shape}")
        if not np.isfinite(c).all():
            raise ValueError("codebooks: contains NaN or inf")
        self.codebooks = c.reshape(self.total_codebook_size, cd).copy()
        self._codebooks_changed()
        self.is_trained = True
        self.compute_codebook_tables()

    def get_codebook(self, m: int) -> np.ndarray:
        """Codebook ``m`` as a (2**nbits[m], d) view."""
        m = check_int(m, "m", lo=0, hi=self.M - 1)
        return self.codebooks[self.codebook_offsets[m]:self.codebook_offsets[m + 1]]

    def _full_codebook(self, m: int) -> np.ndarray:
        return self.full_codebooks()[self.codebook_offsets[m]:self.codebook_offsets[m + 1]]

    def compute_codebook_tables(self) -> None:
        """Squared norms of all codewords, and the cross products of each codebook
        with the ones before it (FAISS's layout), used by ST_norm_from_LUT."""
        cb = self.full_codebooks()
        self.centroid_norms = np.einsum("ij,ij->i", cb, cb).astype(np.float32)
        parts = []
        for m in range(1, self.M):
            o0, o1 = self.codebook_offsets[m], self.codebook_offsets[m + 1]
            parts.append((cb[:o0] @ cb[o0:o1].T).astype(np.float32).reshape(-1))
        self.codebook_cross_products = (np.concatenate(parts) if parts
                                        else np.zeros(0, dtype=np.float32))

    # --- norms ------------------------------------------------------------------
    def train_norm(self, norms: Any) -> None:
        """Learn how to encode the squared norms of reconstructions (FAISS's train_norm)."""
        norms = np.ascontiguousarray(norms, dtype=np.float32).reshape(-1)
        if norms.size == 0:
            raise ValueError("norms: need at least one norm to train on")
        self.norm_min = np.float32(norms.min())
        self.norm_max = np.float32(norms.max())
        st = self.search_type
        if st in (ST_norm_cqint8, ST_norm_cqint4):
            from ..clustering_faiss import Clustering1D
            clus = Clustering1D(256 if st == ST_norm_cqint8 else 16)
            clus.train_exact(norms.reshape(-1, 1))
            self.qnorm = np.asarray(clus.centroids.data(), dtype=np.float32).copy()
        elif st in (ST_norm_rq2x4, ST_norm_lsq2x4):
            # two 16-level codebooks on the norms themselves, as FAISS
            if st == ST_norm_rq2x4:
                from .rq import ResidualQuantizer
                nq = ResidualQuantizer(1, 2, 4)
            else:
                from .lsq import LocalSearchQuantizer
                nq = LocalSearchQuantizer(1, 2, 4)
            nq.train(norms.reshape(-1, 1))
            self.norm_tabs = nq.codebooks.reshape(-1).copy()
            c = self.norm_tabs
            # FAISS's flattened table: level i * 16 + j is c0[j] + c1[i]
            self.qnorm = np.ascontiguousarray((c[:16][None, :] + c[16:32][:, None]).reshape(-1),
                                              dtype=np.float32)

    def encode_norm(self, norms: Any) -> np.ndarray:
        """Norm fields (n,) int64 of squared norms, as the search type stores them."""
        x = np.asarray(norms, dtype=np.float32).reshape(-1)
        st = self.search_type
        if st == ST_norm_float:
            return x.view(np.uint32).astype(np.int64)
        if st in (ST_norm_qint8, ST_norm_qint4):
            levels = 256 if st == ST_norm_qint8 else 16
            lo, hi = np.float32(self.norm_min), np.float32(self.norm_max)
            with np.errstate(divide="ignore", invalid="ignore"):
                v = np.floor((x - lo) / (hi - lo) * np.float32(levels))
            v = np.nan_to_num(v, nan=0.0, posinf=levels - 1, neginf=0)
            return np.clip(v, 0, levels - 1).astype(np.int64)
        if st in (ST_norm_cqint8, ST_norm_cqint4, ST_norm_rq2x4, ST_norm_lsq2x4):
            if self.qnorm.size == 0:
                raise RuntimeError("the norm quantizer is not trained: train the quantizer first")
            return np.abs(x[:, None] - self.qnorm[None, :]).argmin(axis=1).astype(np.int64)
        return np.zeros(x.shape[0], dtype=np.int64)

    def decode_norm(self, fields: np.ndarray) -> np.ndarray:
        """Squared norms (n,) float32 from the stored norm fields."""
        f = np.asarray(fields, dtype=np.int64)
        st = self.search_type
        if st == ST_norm_float:
            return f.astype(np.uint32).view(np.float32)
        if st in (ST_norm_qint8, ST_norm_qint4):
            levels = 256 if st == ST_norm_qint8 else 16
            lo, hi = float(self.norm_min), float(self.norm_max)
            return ((f + 0.5) / levels * (hi - lo) + lo).astype(np.float32)
        if st in (ST_norm_cqint8, ST_norm_cqint4, ST_norm_rq2x4, ST_norm_lsq2x4):
            return self.qnorm[f]
        return np.zeros(f.shape[0], dtype=np.float32)

    # --- codes ------------------------------------------------------------------
    def _check_trained(self) -> None:
        if not self.is_trained:
            raise RuntimeError(f"{type(self).__name__} is not trained: call train(x) first")

    def _as_codes(self, codes: Any) -> np.ndarray:
        c = np.asarray(codes)
        if c.dtype != np.uint8:
            raise TypeError(f"codes: expected uint8 codes, got dtype {c.dtype}")
        if c.ndim == 1 and c.size == self.code_size:
            c = c.reshape(1, -1)
        if c.ndim != 2 or c.shape[1] != self.code_size:
            raise ValueError(f"codes: expected shape (n, {self.code_size}), got {c.shape}")
        return np.ascontiguousarray(c)

    def _encode_idx(self, x: np.ndarray) -> np.ndarray:
        """Codeword indices (n, M) int32 of validated vectors (the subclass's search)."""
        raise NotImplementedError

    def pack_codes(self, codes: Any, norms: Any = None, centroids: Any = None) -> np.ndarray:
        """Pack indices (n, M) into codes (n, code_size); the norm field (if any)
        is the squared norm of the reconstruction (+ ``centroids``) unless ``norms`` is given."""
        idx = np.ascontiguousarray(codes, dtype=np.int64)
        if idx.ndim != 2 or idx.shape[1] < self.M:
            raise ValueError(f"codes: expected (n, {self.M}) indices, got shape {idx.shape}")
        idx = np.ascontiguousarray(idx[:, :self.M])
        if idx.size and (idx.min() < 0 or (idx >= (1 << self._widths)[None, :]).any()):
            raise ValueError("codes: an index is out of range for its codebook")
        vals = idx
        if self.norm_bits:
            if norms is None or centroids is not None:
                y = self.decode_unpacked(idx)
                if centroids is not None:
                    y += as_matrix(centroids, self.d, "centroids")
                norms = np.einsum("ij,ij->i", y, y)
            vals = np.concatenate([idx, self.encode_norm(norms)[:, None]], axis=1)
        out = np.empty((idx.shape[0], self.code_size), dtype=np.uint8)
        if idx.shape[0]:
            K.pack_fields(np.ascontiguousarray(vals), self._fields, out)
        return out

    def unpack_codes(self, codes: Any) -> np.ndarray:
        """Codeword indices (n, M) int32 of packed codes."""
        c = self._as_codes(codes)
        out = np.empty((c.shape[0], self._fields.size), dtype=np.int64)
        if c.shape[0]:
            K.unpack_fields(c, self._fields, out)
        return out[:, :self.M].astype(np.int32)

    def _encode_idx_resid(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(indices, residuals x - reconstruction) of validated vectors."""
        idx = self._encode_idx(x)
        return idx, x - self.decode_unpacked(idx)

    def encode_rows(self, x: np.ndarray, centroids: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
        """(codes (n, code_size), exact squared norms of the reconstructions) of validated x."""
        idx, resid = self._encode_idx_resid(x)
        if centroids is None:
            # as FAISS: the reconstruction's norm is measured as ||x - residual||^2
            y = x - resid
        else:
            y = self.decode_unpacked(idx) + centroids
        norms = np.einsum("ij,ij->i", y, y).astype(np.float32)
        return self.pack_codes(idx, norms), norms

    def compute_codes(self, x: Any) -> np.ndarray:
        """Codes (n, code_size) uint8 of vectors ``x`` (n, d)."""
        self._check_trained()
        return self.encode_rows(as_matrix(x, self.d, "x"))[0]

    def compute_codes_add_centroids(self, x: Any, centroids: Any = None) -> np.ndarray:
        """Codes of ``x``; the stored norms are those of reconstruction + ``centroids``."""
        self._check_trained()
        x = as_matrix(x, self.d, "x")
        cent = None if centroids is None else as_matrix(centroids, self.d, "centroids")
        if cent is not None and cent.shape[0] != x.shape[0]:
            raise ValueError(f"centroids: expected {x.shape[0]} rows, got {cent.shape[0]}")
        return self.encode_rows(x, cent)[0]

    def decode(self, codes: Any) -> np.ndarray:
        """Reconstructions (n, d) float32 of codes (n, code_size)."""
        self._check_trained()
        return self.decode_rows(self._as_codes(codes))

    def decode_rows(self, rows: np.ndarray) -> np.ndarray:
        """Decode C-contiguous rows whose first code_size bytes are codes (no checks)."""
        out = np.empty((rows.shape[0], self.d), dtype=np.float32)
        if rows.shape[0]:
            K.decode_codes(rows, self._widths, self.codebook_offsets[:-1].copy(),
                           self.full_codebooks(), out)
        return out

    def decode_unpacked(self, codes: Any) -> np.ndarray:
        """Reconstructions from indices (n, M)."""
        idx = np.asarray(codes, dtype=np.int64)
        if idx.ndim != 2 or idx.shape[1] < self.M:
            raise ValueError(f"codes: expected (n, {self.M}) indices, got shape {idx.shape}")
        out = np.zeros((idx.shape[0], self.d), dtype=np.float32)
        cb = self.full_codebooks()
        for m in range(self.M):
            out += cb[idx[:, m] + self.codebook_offsets[m]]
        return out

    def search_norms(self, rows: np.ndarray) -> np.ndarray:
        """The squared norm an L2 search uses for each code (n,): the stored one,
        the exact one (ST_decompress, ST_norm_from_LUT), or 0. Always computed
        from the codes, so that an index read back from a file scores the same
        bits as the one that wrote it."""
        st = self.search_type
        if st == ST_LUT_nonorm:
            return np.zeros(rows.shape[0], dtype=np.float32)
        if self.norm_bits == 0:
            y = self.decode_rows(rows)
            return np.einsum("ij,ij->i", y, y).astype(np.float32)
        fields = np.empty((rows.shape[0], self._fields.size), dtype=np.int64)
        if rows.shape[0]:
            K.unpack_fields(rows, self._fields, fields)
        return self.decode_norm(fields[:, -1])

    # --- look-up tables -------------------------------------------------------
    def compute_LUT(self, x: Any, alpha: float = 1.0) -> np.ndarray:
        """alpha * inner products of each query with every codeword, (n, total_codebook_size)."""
        self._check_trained()
        x = as_matrix(x, self.d, "x")
        lut = x @ self.full_codebooks().T
        if alpha != 1.0:
            lut *= np.float32(alpha)
        return np.ascontiguousarray(lut, dtype=np.float32)

    def decode_64bit(self, n: int) -> np.ndarray:
        """The vector whose codes are the bits of integer ``n`` (FAISS's decode_64bit)."""
        n = int(n)
        out = np.zeros(self.d, dtype=np.float32)
        for m in range(self.M):
            idx = n & ((1 << self.nbits[m]) - 1)
            n >>= self.nbits[m]
            out += self.full_codebooks()[self.codebook_offsets[m] + idx]
        return out

    def all_centroids(self) -> np.ndarray:
        """Every reconstruction, ordered by its 64-bit code (2**tot_bits, d); for
        small coarse quantizers (RCQ)."""
        total = sum(self.nbits)
        if total > 24:
            raise ValueError(f"all_centroids: 2**{total} reconstructions are too many to list")
        acc = np.zeros((1, self.d), dtype=np.float32)
        for m in range(self.M):
            cb = self._full_codebook(m)
            # code bits of stage m sit above those of earlier stages
            acc = (cb[:, None, :] + acc[None, :, :]).reshape(-1, self.d)
        return np.ascontiguousarray(acc, dtype=np.float32)

    def compute_centroid_norms(self) -> np.ndarray:
        c = self.all_centroids()
        return np.einsum("ij,ij->i", c, c).astype(np.float32)
