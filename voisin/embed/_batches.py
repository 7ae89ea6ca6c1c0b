"""Length-sorted batches of token ids, shared out to one encoder pipeline per core."""

from __future__ import annotations

import threading

import numba
import numpy as np

from .. import _blas
from .bert import Workspace, encode_batch
from .weights import BertWeights


def plan_batches(lengths: np.ndarray, batch_size: int, npipe: int) -> list[np.ndarray]:
    """Text indices grouped into batches of similar length, longest first.

    Longest first: the biggest arrays are allocated once, at the start, and
    the last batches to finish are the cheap ones, so the pipelines end
    together. Batches shrink when there are too few to give every core one.
    """
    n = lengths.shape[0]
    size = max(1, min(batch_size, -(-n // npipe)))
    order = np.argsort(-lengths, kind="stable")
    return [order[s:s + size] for s in range(0, n, size)]


def pad(ids: list[np.ndarray], batch: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(len(batch), longest) int64 token matrix; the padding id is never attended to."""
    tokens = np.zeros((batch.shape[0], int(lengths[batch].max())), dtype=np.int64)
    for row, i in enumerate(batch):
        tokens[row, :lengths[i]] = ids[i]
    return tokens


def run_batches(weights: BertWeights, ids: list[np.ndarray], batch_size: int, normalize: bool,
                out: np.ndarray, show_progress: bool) -> None:
    """Encode every text into its row of ``out``."""
    lengths = np.fromiter((x.shape[0] for x in ids), dtype=np.int64, count=len(ids))
    npipe = numba.get_num_threads() if _blas.available() else 1
    batches = plan_batches(lengths, batch_size, npipe)
    progress = None
    if show_progress:  # imported only when asked for: voisin.bench costs 50 ms to import
        from ..bench.progress import make_progress
        progress = make_progress(True)
        task = progress.add("encoding texts", total=len(ids))
    tick = threading.Lock()
    # the first batch is the largest in both sentences and length: size every workspace by it
    first = batches[0]
    longest = int(lengths[first].max())
    spaces = [Workspace(weights, first.shape[0] * longest, longest) for _ in range(min(npipe, len(batches)))]
    pooled = [np.empty((first.shape[0], weights.dim), dtype=np.float32) for _ in spaces]

    def work(p: int, b: int) -> None:
        batch = batches[b]
        res = pooled[p][:batch.shape[0]]
        encode_batch(weights, spaces[p], pad(ids, batch, lengths), lengths[batch], normalize, res)
        out[batch] = res
        if progress is not None:
            with tick:
                progress.advance(task, batch.shape[0])

    try:
        _blas.run_pipelines(range(len(batches)), work, min(npipe, len(batches)))
    finally:
        if progress is not None:
            progress.done(task)
            progress.close()
