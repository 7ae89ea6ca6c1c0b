"""Shared helpers of the binary-index tests: data and exact references."""

from __future__ import annotations

import numpy as np

INT_MAX = np.iinfo(np.int32).max


def random_codes(rng: np.random.Generator, n: int, code_size: int) -> np.ndarray:
    return rng.integers(0, 256, (n, code_size), dtype=np.uint8)


def clustered_codes(rng: np.random.Generator, n: int, code_size: int, ncenters: int = 20,
                    flip: float = 0.1) -> np.ndarray:
    """Codes near a few random centres (each bit flipped with probability ``flip``),
    so that approximate indexes have neighbourhoods to find."""
    d = code_size * 8
    centres = rng.integers(0, 2, (ncenters, d), dtype=np.uint8)
    bits = centres[rng.integers(0, ncenters, n)] ^ (rng.random((n, d)) < flip).astype(np.uint8)
    return np.packbits(bits, axis=1, bitorder="little")


def hamming_matrix(xq: np.ndarray, xb: np.ndarray) -> np.ndarray:
    """All pairwise Hamming distances by numpy unpackbits (the exact reference)."""
    bq = np.unpackbits(xq, axis=1).astype(np.int32)
    bb = np.unpackbits(xb, axis=1).astype(np.int32)
    return bq.shape[1] - (bq @ bb.T + (1 - bq) @ (1 - bb).T)


def brute_knn(xq: np.ndarray, xb: np.ndarray, k: int, allowed: np.ndarray | None = None):
    """Exact (D, I) in (distance, id) order; missing results (INT_MAX, -1)."""
    dist = hamming_matrix(xq, xb).astype(np.int64)
    if allowed is not None:
        dist[:, ~allowed] = np.iinfo(np.int64).max
    ids = np.broadcast_to(np.arange(xb.shape[0]), dist.shape)
    order = np.lexsort((ids, dist), axis=1)[:, :k]
    D = np.take_along_axis(dist, order, 1)
    I = order.astype(np.int64)
    miss = D == np.iinfo(np.int64).max
    pad = k - D.shape[1]
    D = np.where(miss, INT_MAX, D).astype(np.int32)
    I = np.where(miss, -1, I)
    if pad > 0:
        D = np.hstack([D, np.full((D.shape[0], pad), INT_MAX, np.int32)])
        I = np.hstack([I, np.full((I.shape[0], pad), -1, np.int64)])
    return D, I


def check_knn(D: np.ndarray, I: np.ndarray, xq: np.ndarray, xb: np.ndarray, k: int,
              allowed: np.ndarray | None = None) -> None:
    """Distances equal the exact ones and every id is at its reported distance
    (any tie choice is a correct answer)."""
    Dr, _ = brute_knn(xq, xb, k, allowed)
    assert D.dtype == np.int32 and I.dtype == np.int64
    np.testing.assert_array_equal(D, Dr)
    full = hamming_matrix(xq, xb)
    found = I >= 0
    rows = np.nonzero(found)[0]
    np.testing.assert_array_equal(full[rows, I[found]], D[found])
    if allowed is not None:
        assert allowed[I[found]].all()
    for row in I:
        got = row[row >= 0]
        assert np.unique(got).size == got.size


def recall(D: np.ndarray, Dgt: np.ndarray) -> float:
    """Tie-aware k-NN recall: the share of returned results at least as close as the
    true k-th neighbour. Hamming distances tie a lot, and among equally distant
    codes any choice is right, so ids are not compared."""
    return float((D <= Dgt[:, -1:]).mean())
