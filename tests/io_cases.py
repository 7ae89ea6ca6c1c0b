"""Index builders shared by the persistence tests (tests/test_io_*.py).

Each case builds the same index twice, once with voisin and once with
faiss-cpu, from the same seeded data, and knows how to set the search knobs
(nprobe, efSearch) identically on both. Cases whose voisin family is not in
this checkout yet are skipped with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest

import voisin

D = 16
NB = 1200
NQ = 20
K = 8


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(training/database vectors, queries, ids) with clustered structure."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(20, D)).astype(np.float32) * 3
    xb = (centers[rng.integers(0, 20, NB)] + rng.normal(size=(NB, D))).astype(np.float32)
    xq = (centers[rng.integers(0, 20, NQ)] + rng.normal(size=(NQ, D))).astype(np.float32)
    ids = rng.choice(10 * NB, NB, replace=False).astype(np.int64) + 5
    return xb, xq, ids


@dataclass
class Case:
    name: str
    build_voisin: Callable[[], Any]
    build_faiss: Callable[[], Any]
    #: sets search knobs on an index of either library (same values on both)
    tune: Callable[[Any], None] = lambda index: None
    #: same bytes from both libraries for the same content
    deterministic: bool = False
    #: mmap should give zero-copy storage for this type
    mappable: bool = True
    requires: tuple[str, ...] = field(default_factory=tuple)

    def voisin(self) -> Any:
        missing = [a for a in self.requires if not hasattr(voisin, a)]
        if missing:
            pytest.skip(f"{', '.join(missing)} not in this voisin build yet")
        return self.build_voisin()

    def faiss(self) -> Any:
        faiss = pytest.importorskip("faiss")
        missing = [a for a in self.requires if not hasattr(faiss, a)]
        if missing:  # pragma: no cover - faiss has all of them
            pytest.skip(f"faiss lacks {missing}")
        return self.build_faiss()


def _flat(lib: Any, metric: str) -> Any:
    xb, _, _ = data()
    index = lib.IndexFlatL2(D) if metric == "l2" else lib.IndexFlatIP(D)
    index.add(xb)
    return index


def _idmap(lib: Any, cls: str) -> Any:
    xb, _, ids = data()
    index = getattr(lib, cls)(lib.IndexFlatL2(D))
    index.add_with_ids(xb, ids)
    return index


def _faiss() -> Any:
    return pytest.importorskip("faiss")


CASES: list[Case] = [
    Case("flat_l2", lambda: _flat(voisin, "l2"), lambda: _flat(_faiss(), "l2"), deterministic=True),
    Case("flat_ip", lambda: _flat(voisin, "ip"), lambda: _flat(_faiss(), "ip"), deterministic=True),
    Case("idmap", lambda: _idmap(voisin, "IndexIDMap"), lambda: _idmap(_faiss(), "IndexIDMap"),
         deterministic=True),
    Case("idmap2", lambda: _idmap(voisin, "IndexIDMap2"), lambda: _idmap(_faiss(), "IndexIDMap2"),
         deterministic=True),
]

CASE_IDS = [c.name for c in CASES]


def search_both(index: Any, xq: np.ndarray, k: int = K) -> tuple[np.ndarray, np.ndarray]:
    D_, I_ = index.search(xq, k)
    return np.asarray(D_), np.asarray(I_)


def assert_same_search(a: Any, b: Any, xq: np.ndarray, k: int = K) -> None:
    """Two indexes (any mix of voisin and faiss) give the same (D, I) up to float rounding.

    Ids may differ only where the two distances tie; a different id at a
    non-tied rank is a real difference and fails.
    """
    from conftest import assert_same_results
    Da, Ia = search_both(a, xq, k)
    Db, Ib = search_both(b, xq, k)
    scale = np.abs(Da[Ia >= 0]).max() if (Ia >= 0).any() else 1.0
    assert_same_results(Da, Ia, Db, Ib, 1e-5 * (1.0 + scale))
