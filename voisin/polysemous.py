"""Polysemous training (FAISS's ``PolysemousTraining``).

A product quantizer's codes are arbitrary labels of its centroids. Polysemous
training relabels them, per sub-quantizer, so that the Hamming distance
between two labels reproduces the distance between the centroids: then the
Hamming distance between a query's code and a stored code is a cheap
estimate of their distance, and polysemous search (``IndexPQ.search_type =
ST_polysemous``) skips the codes farther than ``polysemous_ht`` bits before
computing the exact PQ distance.

FAISS's default objective, ``OT_ReproduceDistances_affine``, needs only the
centroids: the n x n squared distances of a sub-quantizer's centroids are
mapped affinely to mean nbits/2 and spread sqrt(nbits/4), weighted by
``exp(-dis_weight_factor * target)`` (reproducing small distances matters
most), and a simulated annealing over permutations minimises the weighted
squared difference to the Hamming distances (``n_redo`` runs of ``n_iter``
proposed swaps, temperature ``init_temperature`` decayed by
``temperature_decay`` each step, FAISS's mt19937 stream seeded with
``seed``). The centroids are then reordered: centroid i gets code perm[i].

voisin runs the same algorithm with the same random stream, and ends on
the same permutations as faiss-cpu (tests/test_polysemous.py). FAISS's
AVX-512 build sums the cost changes in another order (fused multiply-adds,
eight lanes), so a swap whose cost change is within rounding of zero could
be decided differently, and the runs part from there. ``OT_Ranking_weighted_diff`` (the
ranking objective, which needs training vectors) is not implemented.
"""

from __future__ import annotations

import math

import numpy as np

from ._validate import check_float, check_int

OT_None = 0
OT_ReproduceDistances_affine = 1
OT_Ranking_weighted_diff = 2


class SimulatedAnnealingParameters:
    """FAISS's simulated-annealing knobs, with its defaults."""

    def __init__(self) -> None:
        self.init_temperature = 0.7
        self.temperature_decay = math.pow(0.9, 1 / 500.0)
        self.n_iter = 500000
        self.n_redo = 2
        self.seed = 123
        self.verbose = 0
        self.only_bit_flips = False
        self.init_random = False


class PolysemousTraining(SimulatedAnnealingParameters):
    """Parameters and driver of polysemous training (FAISS's defaults).

    ``optimization_type`` (OT_None, OT_ReproduceDistances_affine = default),
    ``ntrain_permutation`` (training vectors kept for the ranking objective;
    0), ``dis_weight_factor`` (log 2), ``max_memory``.

    Example:
        >>> import numpy as np, voisin
        >>> x = np.random.default_rng(0).random((3000, 8), dtype="float32")
        >>> index = voisin.IndexPQ(8, 2, 8)
        >>> index.do_polysemous_training = True
        >>> index.polysemous_training.n_iter = 2000
        >>> index.train(x)
    """

    OT_None = OT_None
    OT_ReproduceDistances_affine = OT_ReproduceDistances_affine
    OT_Ranking_weighted_diff = OT_Ranking_weighted_diff

    def __init__(self) -> None:
        super().__init__()
        self.optimization_type = OT_ReproduceDistances_affine
        self.ntrain_permutation = 0
        self.dis_weight_factor = math.log(2)
        self.max_memory = 20 << 30
        self.log_pattern = ""

    def _check(self) -> None:
        check_int(self.optimization_type, "optimization_type", lo=0, hi=2)
        check_int(self.n_iter, "n_iter", lo=0)
        check_int(self.n_redo, "n_redo", lo=1)
        check_int(self.seed, "seed")
        check_int(self.ntrain_permutation, "ntrain_permutation", lo=0)
        check_float(self.init_temperature, "init_temperature")
        check_float(self.temperature_decay, "temperature_decay")
        check_float(self.dis_weight_factor, "dis_weight_factor")

    def memory_usage_per_thread(self, pq) -> int:
        n = pq.ksub
        return {OT_None: 0, OT_ReproduceDistances_affine: n * n * 8 * 3,
                OT_Ranking_weighted_diff: n * n * n * 4}[self.optimization_type]

    def optimize_reproduce_distances(self, pq) -> np.ndarray:
        """Reorder each sub-quantizer's centroids; returns the (M, ksub) permutations
        (centroid i of sub-quantizer m now has code perm[m, i])."""
        from .kernels import polysemous as KP
        self._check()
        if self.memory_usage_per_thread(pq) >= self.max_memory:
            raise ValueError(f"max_memory: polysemous training needs {self.memory_usage_per_thread(pq)} "
                             f"bytes, max_memory is {self.max_memory}")
        n = pq.ksub
        cent = pq.centroids
        targets = np.empty((pq.M, n * n), dtype=np.float64)
        weights = np.empty((pq.M, n * n), dtype=np.float64)
        for m in range(pq.M):
            # squared distances between the centroids, in float32 as FAISS's fvec_L2sqr
            c = cent[m]
            dis = ((c[:, None, :] - c[None, :, :]) ** 2).sum(-1, dtype=np.float32)
            targets[m], weights[m] = KP.affine_target(dis.astype(np.float64).ravel(), pq.nbits,
                                                      float(self.dis_weight_factor))
        perms = np.empty((pq.M, n), dtype=np.int64)
        costs = np.empty((pq.M, 2), dtype=np.float64)
        KP.anneal_many(targets, weights, n, float(self.init_temperature), float(self.temperature_decay),
                       int(self.n_iter), int(self.n_redo), int(self.seed), bool(self.only_bit_flips),
                       bool(self.init_random), perms, costs)
        for m in range(pq.M):
            if self.verbose > 0:
                print(f"SimulatedAnnealingOptimizer for m={m}: {costs[m, 0]:g} -> {costs[m, 1]:g}")
            new = np.empty_like(cent[m])
            new[perms[m]] = cent[m]
            cent[m] = new
        pq._cent_t = None
        return perms

    def optimize_pq_for_hamming(self, pq, x: np.ndarray | None = None) -> None:
        """FAISS's entry point: reorder ``pq``'s centroids for Hamming search."""
        if pq.nbits > 16:
            raise ValueError(f"pq: nbits={pq.nbits} too large for polysemous training")
        if self.optimization_type == OT_None:
            return
        if self.optimization_type == OT_ReproduceDistances_affine:
            self.optimize_reproduce_distances(pq)
            return
        raise NotImplementedError("optimization_type: OT_Ranking_weighted_diff is not implemented "
                                  "in voisin; use OT_ReproduceDistances_affine (FAISS's default)")
