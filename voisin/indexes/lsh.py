"""IndexLSH: float vectors hashed to sign bits, searched by Hamming distance.

FAISS's ``IndexLSH(d, nbits, rotate_data, train_thresholds)``: a vector is
(optionally) rotated by a random ``nbits x d`` matrix, (optionally) shifted
by per-bit thresholds (the training set's medians), and bit j of its code is
``y[j] >= 0``. Codes are packed as the binary indexes pack them (bit j in
bit ``j & 7`` of byte ``j >> 3``), so the storage is an
:class:`~voisin.indexes.binary_flat.IndexBinaryFlat` and the search runs its
popcount kernels. Distances are Hamming distances returned as float32, as
FAISS returns them; a missing result is ``(float(INT_MAX), -1)``.

What differs from FAISS (docs/lsh.md): ``SearchParameters(sel=...)`` filters
(FAISS refuses search parameters on this index), ``range_search`` is by
Hamming distance (< radius; FAISS's generic code compares the query with the
decoded +-1 vectors in L2), and ``sa_decode`` of codes shorter than ``d``
fills the dimensions past ``nbits`` with zeros (FAISS leaves them unset).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import as_codes, as_matrix, check_bool, check_int
from ..index import Index
from ..metric import METRIC_L2
from ..selector import IDSelector, SearchParameters
from ..transforms import LinearTransform, RandomRotationMatrix
from ..hamming import knn_codes
from .binary_flat import IndexBinaryFlat

#: what FAISS reports for a missing result: the int heap's INT_MAX, as a float
MISSING_DISTANCE = np.float32(np.iinfo(np.int32).max)

#: the seed FAISS's constructor gives the rotation
ROTATION_SEED = 5


def median_thresholds(y: np.ndarray) -> np.ndarray:
    """Per-column medians of ``y`` (n, nbits) as FAISS computes them in float32:
    the middle value, or the mean of the two middle values when n is even."""
    n = y.shape[0]
    cols = np.ascontiguousarray(y.T)
    kth = [n // 2] if n % 2 else [n // 2 - 1, n // 2]
    part = np.partition(cols, kth, axis=1)
    med = part[:, n // 2]
    if n % 2 == 0:
        med = (med + part[:, n // 2 - 1]) / np.float32(2)
    return np.ascontiguousarray(med, dtype=np.float32)


def pack_signs(y: np.ndarray) -> np.ndarray:
    """Bit j of row i is ``y[i, j] >= 0`` (FAISS's ``fvecs2bitvecs``), uint8 (n, ceil(nbits/8))."""
    return np.packbits(y >= 0, axis=1, bitorder="little")


def unpack_signs(codes: np.ndarray, nbits: int) -> np.ndarray:
    """+1 for a set bit, -1 for a clear one (FAISS's ``bitvecs2fvecs``), float32 (n, nbits)."""
    bits = np.unpackbits(codes, axis=1, count=nbits, bitorder="little")
    return bits.astype(np.float32) * np.float32(2) - np.float32(1)


class IndexLSH(Index):
    """Sign-bit hashing of float vectors (FAISS's ``IndexLSH``).

    ``rotate_data`` applies a random rotation to ``nbits`` dimensions first
    (FAISS's ``RandomRotationMatrix`` seeded with 5, so a voisin and a faiss
    index built alike give the same codes); without it the bits are the signs
    of the first ``nbits`` components (``nbits <= d``). ``train_thresholds``
    compares each component with its median on the training set instead of
    0, and then the index needs ``train``. Ids are positions, as in every
    flat-code index: ``remove_ids`` shifts the later vectors down.

    Example:
        >>> import numpy as np, voisin
        >>> xb = np.random.default_rng(0).normal(size=(1000, 32)).astype("float32")
        >>> index = voisin.IndexLSH(32, 64)
        >>> index.add(xb)
        >>> D, I = index.search(xb[:3], 1)
        >>> I.ravel().tolist(), D.ravel().tolist()
        ([0, 1, 2], [0.0, 0.0, 0.0])
    """

    def __init__(self, d: int, nbits: int, rotate_data: bool = True,
                 train_thresholds: bool = False):
        super().__init__(d, METRIC_L2)
        self.nbits = check_int(nbits, "nbits", lo=1, hi=1 << 24)
        self.rotate_data = check_bool(rotate_data, "rotate_data")
        self.train_thresholds = check_bool(train_thresholds, "train_thresholds")
        if not self.rotate_data and self.nbits > self.d:
            raise ValueError(f"nbits: without rotate_data the bits are the signs of the first "
                             f"nbits components, so nbits must be <= d={self.d}, got {self.nbits}")
        self.code_size = (self.nbits + 7) // 8
        self.rrot = RandomRotationMatrix(self.d, self.nbits)
        if self.rotate_data:
            self.rrot.init(ROTATION_SEED)
        self.thresholds = np.zeros(0, dtype=np.float32)
        self.is_trained = not self.train_thresholds
        self._store = IndexBinaryFlat(8 * self.code_size)

    # the count lives in the code storage
    @property  # type: ignore[override]
    def ntotal(self) -> int:
        store = self.__dict__.get("_store")
        return 0 if store is None else store.ntotal

    @ntotal.setter
    def ntotal(self, n: int) -> None:
        pass  # derived from the storage

    @property
    def codes(self) -> np.ndarray:
        """The stored codes, uint8 (ntotal, code_size), a read-only view."""
        return self._store.xb

    def set_codes(self, codes: np.ndarray) -> None:
        """Replace the storage by ``codes`` (uint8 (n, code_size), used in place)."""
        self._store.set_codes(np.asarray(codes, dtype=np.uint8).reshape(-1, self.code_size))

    def __repr__(self) -> str:
        return (f"IndexLSH(d={self.d}, nbits={self.nbits}, rotate_data={self.rotate_data}, "
                f"train_thresholds={self.train_thresholds}, ntotal={self.ntotal})")

    # --- the hash --------------------------------------------------------
    def _project(self, x: np.ndarray, thresholds: bool = True) -> np.ndarray:
        if self.rotate_data:
            y = self.rrot._apply(x)
        else:
            y = x[:, :self.nbits]
        if thresholds and self.train_thresholds:
            y = y - self.thresholds
        return np.ascontiguousarray(y, dtype=np.float32)

    def apply_preprocess(self, x: Any) -> np.ndarray:
        """The values whose signs are the bits: float32 (n, nbits) (FAISS's name)."""
        return self._project(as_matrix(x, self.d, "x"))

    def sa_code_size(self) -> int:
        return self.code_size

    def sa_encode(self, x: Any) -> np.ndarray:
        """The codes of ``x`` (n, d): uint8 (n, code_size)."""
        x = as_matrix(x, self.d, "x")
        self._check_trained()
        return self._encode(x)

    def _encode(self, x: np.ndarray) -> np.ndarray:
        return pack_signs(self._project(x))

    def sa_decode(self, codes: Any) -> np.ndarray:
        """Vectors whose codes are ``codes``: the +-1 signs (plus the thresholds),
        rotated back when the index rotates; float32 (n, d)."""
        codes = as_codes(codes, "codes", self.code_size)
        y = unpack_signs(codes, self.nbits)
        if self.train_thresholds:
            y += self.thresholds
        if self.rotate_data:
            return self.rrot._reverse(y)
        out = np.zeros((y.shape[0], self.d), dtype=np.float32)
        out[:, :self.nbits] = y
        return out

    def add_sa_codes(self, codes: Any, ids: Any = None) -> None:
        """Append codes made by ``sa_encode`` (FAISS's ``add_sa_codes``)."""
        if ids is not None:
            raise NotImplementedError("IndexLSH numbers vectors by position and cannot take ids: "
                                      "wrap it in IndexIDMap")
        codes = as_codes(codes, "codes", self.code_size)
        self._check_writable()
        with self._write_lock:
            self._store.add(codes)

    def transfer_thresholds(self, vt: LinearTransform) -> None:
        """Fold the thresholds into the bias of ``vt`` (a LinearTransform with
        ``d_out == nbits`` applied before this index) and stop using them here."""
        if not self.train_thresholds:
            return
        if not isinstance(vt, LinearTransform):
            raise TypeError(f"vt: expected a LinearTransform, got {type(vt).__name__}")
        if vt.d_out != self.nbits:
            raise ValueError(f"vt: outputs d={vt.d_out}, expected nbits={self.nbits}")
        if not vt.have_bias:
            vt.b = np.zeros(self.nbits, dtype=np.float32)
            vt.have_bias = True
        vt.b = np.ascontiguousarray(vt.b - self.thresholds, dtype=np.float32)
        self.train_thresholds = False
        self.thresholds = np.zeros(0, dtype=np.float32)

    # --- hooks -----------------------------------------------------------
    def _train(self, x: np.ndarray) -> None:
        if self.train_thresholds:
            self.thresholds = median_thresholds(self._project(x, thresholds=False))
        self.is_trained = True

    def _add(self, x: np.ndarray, ids: np.ndarray | None) -> None:
        if ids is not None:
            raise NotImplementedError(
                "IndexLSH numbers vectors by position and cannot take ids: wrap it, "
                "e.g. IndexIDMap(IndexLSH(d, nbits)).add_with_ids(x, ids)")
        self._store.add(self._encode(x))

    def search(self, x: Any, k: int, params: SearchParameters | None = None, *,
               D: np.ndarray | None = None, I: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        D, I = super().search(x, k, params, D=D, I=I)
        missing = I < 0
        if missing.any():  # the empty-index path fills FLT_MAX; FAISS reports INT_MAX
            D[missing] = MISSING_DISTANCE
        return D, I

    def _search_fast(self, x, k):
        # without it IndexPreTransform would apply its chain twice (once for the
        # fast path, once for the validated one); NaN/inf are refused here
        if self.ntotal == 0 or not self.is_trained or not np.isfinite(x).all():
            return None
        return self._search(x, k, None, None, None)

    def _search(self, x, k, params, D, I):
        codes = self._encode(x)
        if params is None or params.sel is None:
            # the codes are ours, already valid: the scan directly, on one
            # consistent snapshot of the storage
            Db, Ib = knn_codes(codes, self._store.codes_snapshot(), k)
        else:
            Db, Ib = self._store.search(codes, k, params)
        if D is None:
            D = Db.astype(np.float32)
        else:
            D[:] = Db
        if I is None:
            I = Ib
        else:
            I[:] = Ib
        return D, I

    def _range_search(self, x, radius, params):
        # integer distances: d < radius  <=>  d < ceil(radius)
        r = int(min(max(np.ceil(radius), -1), 1 << 30))
        lims, D, I = self._store.range_search(self._encode(x), r, params)
        return lims, D.astype(np.float32), I

    def _remove(self, sel: IDSelector) -> int:
        return self._store.remove_ids(sel)

    def _reconstruct_keys(self, keys: np.ndarray) -> np.ndarray:
        return self.sa_decode(self._store.reconstruct_batch(keys))

    def _reset(self) -> None:
        self._store.reset()
