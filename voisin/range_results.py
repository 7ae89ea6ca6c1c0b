"""Range-search results, FAISS's ``(lims, D, I)``: query i's results are
``D[lims[i]:lims[i+1]]``. Joining them is needed by every index that searches
in blocks of queries and by every wrapper that asks several shards.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def join_query_blocks(parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The results of consecutive query blocks (block 0's queries first) as one result."""
    if len(parts) == 1:
        return parts[0]
    lims, base = [np.zeros(1, dtype=np.int64)], 0
    for lm, _, _ in parts:
        lims.append(lm[1:].astype(np.int64) + base)
        base += int(lm[-1])
    return (np.concatenate(lims), np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]))


def concat_range_results(parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
                         nq: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Range results of several shards for the same queries, joined per query
    (results of shard 0 first, then shard 1, ...)."""
    counts = np.zeros(nq, dtype=np.int64)
    for lims, _, _ in parts:
        counts += np.diff(lims.astype(np.int64))
    out_lims = np.zeros(nq + 1, dtype=np.int64)
    np.cumsum(counts, out=out_lims[1:])
    total = int(out_lims[-1])
    D = np.empty(total, dtype=np.float32)
    I = np.empty(total, dtype=np.int64)
    fill = out_lims[:-1].copy()
    for lims, d, i in parts:
        lims = lims.astype(np.int64)
        c = np.diff(lims)
        # destination of each result: its query's next free slot
        q_of = np.repeat(np.arange(nq), c)
        within = np.arange(lims[-1]) - np.repeat(lims[:-1], c)
        dest = fill[q_of] + within
        D[dest] = d
        I[dest] = i
        fill += c
    return out_lims, D, I
