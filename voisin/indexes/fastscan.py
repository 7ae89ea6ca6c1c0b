"""4-bit PQ fast-scan indexes: IndexPQFastScan and IndexIVFPQFastScan.

Codes are 4-bit PQ codes (``PQ{M}x4fs``). For scanning they are laid out in
FAISS's blocks of 32 vectors (``bbs = 32``, see ``voisin.kernels.fastscan``),
the look-up tables are quantized to uint8 and sums accumulate in 16 bits, so
the distances returned are approximations of the PQ distances (as in FAISS):
pair with ``IndexRefineFlat`` (``...,RFlat``) to re-rank on exact distances.

The plain per-vector codes stay the index's storage (what ``reconstruct``,
``remove_ids`` and the file format use); the block layout is derived from
them and rebuilt after a write, on the next search.
"""

from __future__ import annotations

import numba
import numpy as np

from .. import filtering
from .._validate import check_int
from ..index import Index
from ..kernels import fastscan as K
from ..metric import METRIC_L2, worst_distance
from .ivfpq import IndexIVFPQ
from .pq import IndexPQ

_NO_MASK = np.zeros(1, dtype=np.bool_)


def _check_fastscan(nbits: int, bbs: int) -> None:
    if nbits != 4:
        raise ValueError(f"nbits: fast-scan works on 4-bit codes only, got nbits={nbits}")
    bbs = check_int(bbs, "bbs", lo=32)
    if bbs % 32:
        raise ValueError(f"bbs: the block size must be a multiple of 32, got {bbs}")


def pack_codes(codes: np.ndarray, M: int) -> np.ndarray:
    """FAISS block layout (nblocks, M2 // 2 * 32) of plain 4-bit codes (n, ceil(M/2))."""
    M2 = M + (M & 1)
    n = codes.shape[0]
    out = np.zeros(((n + 31) // 32, M2 // 2 * 32), dtype=np.uint8)
    if n:
        K.pack_rows(codes, np.arange(n, dtype=np.int64), M2, out, 0)
    return out


class IndexPQFastScan(IndexPQ):
    """Exhaustive 4-bit PQ search with quantized tables (FAISS ``IndexPQFastScan``).

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.rand(5000, 32).astype("float32")
        >>> index = voisin.IndexPQFastScan(32, 16, 4)
        >>> index.train(xb)
        >>> index.add(xb)
        >>> D, I = index.search(xb[:2], 5)
        >>> index.code_size
        8
    """

    def __init__(self, d: int, M: int = 8, nbits: int = 4, metric: int = METRIC_L2, bbs: int = 32):
        _check_fastscan(check_int(nbits, "nbits"), bbs)
        super().__init__(d, M, nbits, metric)
        self.bbs = int(bbs)
        self.M2 = self.pq.M + (self.pq.M & 1)
        self._packed: tuple | None = None

    def _blocks(self, codes: np.ndarray | None = None, n: int | None = None) -> np.ndarray:
        """Blocks of the first ``n`` rows of ``codes`` (default: the current storage).

        A search passes the one snapshot it took, so a removal landing mid-search
        cannot make the count it scans outrun the blocks it packed.
        """
        if codes is None or n is None:
            codes, n = self._snap
        cached = self._packed
        if cached is not None and cached[0] is codes and cached[1] == n:
            return cached[2]
        packed = pack_codes(codes[:n], self.pq.M)
        self._packed = (codes, n, packed)
        return packed

    @property
    def ntotal2(self) -> int:
        """Vectors rounded up to whole blocks (FAISS's attribute)."""
        return (self.ntotal + self.bbs - 1) // self.bbs * self.bbs

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
            # a masked scan scores every block: pack and scan only the allowed codes
            ids = np.flatnonzero(mask).astype(np.int64)
            packed = pack_codes(codes[ids], self.pq.M).reshape(-1)
            n = ids.size
            mask, use_mask = _NO_MASK, False
        else:
            packed = self._blocks(codes, n).reshape(-1)
            ids = np.arange(n, dtype=np.int64)
        worst = worst_distance(self.metric_type)
        if nq == 1 or numba.get_num_threads() == 1:
            K.pq_search_serial(x, packed, n, self.pq.cent_t, self.M2, self.metric_type, ids, mask,
                               use_mask, worst, D, I)
        else:
            K.pq_search(x, packed, n, self.pq.cent_t, self.M2, self.metric_type, ids, mask, use_mask,
                        worst, True, D, I)
        return D, I

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_packed"] = None
        return state


class IndexIVFPQFastScan(IndexIVFPQ):
    """IVF with 4-bit residual PQ codes scanned in blocks (FAISS ``IndexIVFPQFastScan``).

    ``IVF{nlist},PQ{M}x4fs`` in the factory; add ``,RFlat`` to re-rank the
    candidates on the raw vectors.

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).random((20000, 32), dtype="float32")
        >>> index = voisin.IndexIVFPQFastScan(voisin.IndexFlatL2(32), 32, 64, 16, 4)
        >>> index.train(xb)
        >>> index.add(xb)
        >>> index.nprobe = 8
        >>> D, I = index.search(xb[:2], 10)
    """

    _polysemous = False  # FAISS's IVF fast-scan has no polysemous filter

    def __init__(self, quantizer: Index | None = None, d: int | None = None, nlist: int = 1,
                 M: int = 8, nbits: int = 4, metric: int = METRIC_L2, bbs: int = 32,
                 by_residual: bool = True):
        _check_fastscan(check_int(nbits, "nbits"), bbs)
        super().__init__(quantizer, d, nlist, M, nbits, metric, by_residual)
        self.bbs = int(bbs)
        self.M2 = self.pq.M + (self.pq.M & 1)
        self._packed: tuple | None = None

    def _blocks(self, ctx) -> tuple[np.ndarray, np.ndarray]:
        """(packed blocks, first block of each list) for the snapshot in ``ctx``.

        A transient slab (the gathered entries of a filter, ``ctx.cache`` set)
        keeps its blocks in its own cache, not in the index's."""
        cached = self._packed if ctx.cache is None else ctx.cache.get("blocks")
        if cached is not None and cached[0] is ctx.sizes and cached[1] is ctx.codes:
            return cached[2], cached[3]
        sizes = ctx.sizes
        nblk = (sizes + 31) // 32
        blk_off = np.zeros(self.nlist + 1, dtype=np.int64)
        np.cumsum(nblk, out=blk_off[1:])
        packed = np.zeros((int(blk_off[-1]), self.M2 // 2 * 32), dtype=np.uint8)
        K.pack_lists(ctx.codes, ctx.offsets, sizes, blk_off, self.M2, packed)
        if ctx.cache is None:
            self._packed = (sizes, ctx.codes, packed, blk_off)
        else:
            ctx.cache["blocks"] = (sizes, ctx.codes, packed, blk_off)
        return packed, blk_off

    def _search_single(self, x, k, nprobe, ctx, D, I):
        flat = self._flat_centroids()
        if flat is None:
            return None
        cent, cnorm = flat
        packed, blk_off = self._blocks(ctx)
        packed = packed.reshape(-1)
        K.ivf_search_single(x, cent, cnorm, nprobe, packed, blk_off, ctx.offsets, ctx.sizes, ctx.ids,
                            self.pq.cent_t, self.M2, self.metric_type, self._mode(),
                            self.precomputed_table, ctx.max_codes, ctx.mask, ctx.use_mask,
                            worst_distance(self.metric_type), D, I)
        return D, I

    def _scan_gemm(self, x, G, cnorm, nprobe, ctx, D, I):
        packed, blk_off = self._blocks(ctx)
        K.ivf_search_gemm(x, G, cnorm, nprobe, packed.reshape(-1), blk_off, ctx.offsets, ctx.sizes,
                          ctx.ids, self._centroids(), self.pq.cent_t, self.M2, self.metric_type,
                          self._mode(), self.precomputed_table, ctx.max_codes, ctx.mask, ctx.use_mask,
                          worst_distance(self.metric_type), D, I)

    def _search_preassigned(self, x, k, probes, probe_dists, ctx, D, I):
        packed, blk_off = self._blocks(ctx)
        packed = packed.reshape(-1)
        # chunks of queries are handed out dynamically: list sizes vary, and on a
        # shared machine a static split waits for the slowest thread
        with numba.parallel_chunksize(1):
            K.ivf_search_batch(x, np.ascontiguousarray(probes, dtype=np.int64),
                               np.ascontiguousarray(probe_dists, dtype=np.float32), packed, blk_off,
                               ctx.offsets, ctx.sizes, ctx.ids, self._centroids(), self.pq.cent_t, self.M2,
                               self.metric_type, self._mode(), self.precomputed_table, ctx.max_codes,
                               ctx.mask, ctx.use_mask, worst_distance(self.metric_type), D, I)
        return D, I

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_packed"] = None
        return state
