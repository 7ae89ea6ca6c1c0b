"""HNSW construction: batched insertion on a thread pool (docs/hnsw.md, "Construction").

New nodes are inserted in batches. Phase 1 (:func:`~voisin.kernels.hnsw.link_new_nodes`)
gives each core a slice of the batch: every new node searches the graph as it was
before the batch and writes only its own lists. Phase 2
(:func:`~voisin.kernels.hnsw.apply_link_groups`) gives each core whole groups of
reverse links, one group per receiving list. Nothing is written by two threads, no
locks are needed, and the graph does not depend on the thread count (batch sizes
depend on the graph size only). Both phases are serial kernels run from Python
threads (GIL released): no parallel kernel to compile.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from .._blas import run_pipelines
from ..kernels import hnsw as K

# One node per batch (classic serial insertion) for the first nodes: batches
# need a graph worth searching.
SERIAL_PREFIX = 2048
# Batch size as a share of the current graph size, and its cap. New nodes of
# one batch do not see each other, so batches stay small relative to the graph.
BATCH_FRACTION = 0.01
MAX_BATCH = 1024
# Blocks per core in each insertion phase (dynamic balance against per-call cost).
PHASE_BLOCKS = 4


class Spaces(NamedTuple):
    """How an insertion sees the vectors: it walks ``walk`` (queries ``xw``),
    links and prunes in ``nodes`` (queries ``xe``), and with ``rescore``
    re-scores each level's walk results in ``nodes`` before pruning."""

    walk: tuple
    nodes: tuple
    rescore: bool


def insert(xw: np.ndarray, xe: np.ndarray, n0: int, graph: K.Graph, state: np.ndarray,
           spaces: Spaces, efc: int, M: int, metric: int) -> None:
    """Link nodes n0.. (rows of ``xw``/``xe``) into ``graph``, whose arrays already
    have room for them; ``state`` = [entry point, max level] is updated in place."""
    levels = graph.levels
    n1 = n0 + xw.shape[0]
    i = n0
    if state[0] < 0:
        # the first node becomes the entry point; it has nobody to link to
        state[0], state[1] = i, levels[i] - 1
        i += 1
    nthreads = numba.get_num_threads()
    visited = np.zeros((nthreads, n1), dtype=np.uint32)
    epochs = np.zeros(nthreads, dtype=np.int64)
    while i < n1:
        b = 1 if i < SERIAL_PREFIX else int(min(MAX_BATCH, i * BATCH_FRACTION))
        stop = min(n1, i + b)
        npipe = min(nthreads, stop - i)
        entry, max_level = int(state[0]), int(state[1])
        # several blocks per core: a core that finishes early takes another
        step = -(-(stop - i) // (PHASE_BLOCKS * npipe))

        def phase1(p: int, lo: int) -> None:
            K.link_new_nodes(xw, xe, n0, lo, min(stop, lo + step), spaces.walk, spaces.nodes,
                             spaces.rescore, graph, entry, max_level, efc, M, metric,
                             visited[p], epochs[p:p + 1])

        run_pipelines(range(i, stop, step), phase1, npipe)
        keys, srcs = K.reverse_link_keys(graph, i, stop, max_level)
        order, gstart = K.link_groups(keys)
        ngroups = gstart.size - 1
        gstep = max(1, -(-ngroups // (PHASE_BLOCKS * npipe)))

        def phase2(p: int, g0: int) -> None:
            K.apply_link_groups(spaces.nodes, graph, keys, srcs, order, gstart, g0,
                                min(ngroups, g0 + gstep), max_level + 1, metric)

        run_pipelines(range(0, ngroups, gstep), phase2, npipe)
        # the highest new node (the first one on ties) becomes the entry point
        top = levels[i:stop]
        j = int(np.argmax(top))
        if int(top[j]) - 1 > state[1]:
            state[0], state[1] = i + j, int(top[j]) - 1
        i = stop
