"""Storage of flat-code indexes (PQ, SQ): codes and count published together."""

from __future__ import annotations

import numpy as np


class PublishedCodes:
    """Mixin for an :class:`~voisin.index.Index` whose vectors are rows of one code array.

    The storage is published as one ``(codes, count)`` tuple: a search reads both
    in one step, so a removal or a growth racing it cannot pair one array with
    the count of another (and scan past the end of the old array).
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
