"""Storage of flat-code indexes (PQ, SQ, additive quantizers): FAISS's
IndexFlatCodes, one row of bytes per vector, numbered by position."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import filtering
from ..selector import IDSelector, SearchParameters

_NO_MASK = np.zeros(1, dtype=np.bool_)


class ScanRows(NamedTuple):
    """What a search scans: ``n`` code rows, the filter's mask over them (or none),
    and ``rows``, the stored positions of gathered rows (None: row i is id i)."""

    codes: np.ndarray
    n: int
    mask: np.ndarray
    use_mask: bool
    rows: np.ndarray | None


class PublishedCodes:
    """Mixin for an :class:`~voisin.index.Index` whose vectors are rows of one code array.

    The storage is published as one ``(codes, count)`` tuple: a search reads both
    in one step, so a removal or a growth racing it cannot pair one array with
    the count of another (and scan past the end of the old array). A subclass
    says how rows decode (``_decode_rows``) and how wide a row is (``_row_width``,
    the code size unless it keeps more per vector).
    """

    _snap: tuple = (np.empty((0, 0), dtype=np.uint8), 0)

    @property
    def ntotal(self) -> int:
        return self._snap[1]

    @ntotal.setter
    def ntotal(self, n: int) -> None:
        self._snap = (self._snap[0], int(n))

    @property
    def _codes(self) -> np.ndarray:
        return self._snap[0]

    @_codes.setter
    def _codes(self, codes: np.ndarray) -> None:
        self._snap = (codes, self._snap[1])

    @property
    def codes(self) -> np.ndarray:
        """The stored codes, (ntotal, code_size) uint8 (read-only view)."""
        v = self._codes[:self.ntotal]
        v.flags.writeable = False
        return v

    def _row_width(self) -> int:
        return self.code_size

    def _decode_rows(self, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _append(self, rows: np.ndarray) -> None:
        old, n0 = self._snap
        need = n0 + rows.shape[0]
        if need > old.shape[0]:
            grown = np.empty((max(need, 2 * old.shape[0], 1024), self._row_width()), np.uint8)
            grown[:n0] = old[:n0]
            grown[n0:need] = rows
            self._snap = (grown, need)  # searches already running keep the old array
        else:
            old[n0:need] = rows  # past the published count: invisible until then
            self._snap = (old, need)

    def _mask(self, params: SearchParameters | None, n: int) -> tuple[np.ndarray, bool]:
        if params is None or params.sel is None:
            return _NO_MASK, False
        return np.ascontiguousarray(params.sel.mask_sequential(n), dtype=np.bool_), True

    def _scan_rows(self, params: SearchParameters | None) -> ScanRows | None:
        """The rows a k-NN search scores, or None when the filter allows none. A
        filter that allows few rows gets them gathered: a masked scan would still
        score every code."""
        codes, n = self._snap
        mask, use_mask = self._mask(params, n)
        if use_mask:
            allowed = int(np.count_nonzero(mask))
            if allowed == 0:
                return None
            if filtering.should_gather(allowed, n):
                rows = np.flatnonzero(mask).astype(np.int64)
                return ScanRows(np.ascontiguousarray(codes[rows]), allowed, _NO_MASK, False, rows)
        return ScanRows(codes, n, mask, use_mask, None)

    def _remove(self, sel: IDSelector) -> int:
        codes, n = self._snap
        gone = sel.mask_sequential(n)
        removed = int(np.count_nonzero(gone))
        if removed:
            kept = codes[:n][~gone]
            fresh = np.empty_like(codes)
            fresh[:kept.shape[0]] = kept
            self._snap = (fresh, int(kept.shape[0]))
        return removed

    def _reconstruct_keys(self, keys: np.ndarray) -> np.ndarray:
        codes, n = self._snap
        bad = (keys < 0) | (keys >= n)
        if bad.any():
            raise ValueError(f"key: id {int(keys[bad][0])} is out of range [0, {n})")
        return self._decode_rows(np.ascontiguousarray(codes[keys]))

    def _reset(self) -> None:
        self._snap = (np.empty((0, self._row_width()), dtype=np.uint8), 0)
