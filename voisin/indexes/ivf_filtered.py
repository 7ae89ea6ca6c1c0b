"""How an IVF index searches under a filter (the policy and cost model are in
voisin/filtering.py; this is the IVF side of it).

The selector is resolved once per inverted-lists snapshot into a plan (a mask
over slab rows, allowed entries per list); the plan picks, per call, an exact
scan of the allowed entries (gathered into a slab of their own when that is
small) or a probe list widened until each query has seen enough allowed
entries, and a query that still comes back short is finished exactly.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .. import exact, filtering
from ..kernels import filtered as KF
from ..metric import METRIC_L2, worst_distance
from ..selector import IDSelector
from .invlists import _NO_MASK, ScanContext

# Filtered exact strategy: the allowed entries are gathered into their own
# small slab unless that copy would exceed this; above it the lists holding
# allowed entries are scanned in place under the mask.
COMPACT_MAX_BYTES = 256 << 20
# Queries per block when every query probes the same (many) lists.
ALLOWED_BLOCK_QUERIES = 1024


class IVFFilteredSearch:
    """Mixin of :class:`voisin.indexes.ivf.IndexIVF`: the filtered search paths and
    the hooks a codec overrides to steer the cost model."""

    def _filter_plan(self, sel: IDSelector, snap: tuple) -> filtering.IVFFilterPlan:
        """The selector resolved over this snapshot, reused while both stay the same."""
        cache = self.__dict__.get("_filter_cache")
        if cache is None:
            cache = self.__dict__.setdefault("_filter_cache", filtering.PlanCache())
        plan = cache.get(sel, snap)
        if plan is None:
            lookup = None
            if filtering.uses_lookup(sel, int(snap[3].sum())):
                lookup = self._id_lookup(snap)
            plan = filtering.plan_ivf(sel, snap[1], snap[2], snap[3], lookup)
            cache.put(sel, snap, plan)
        return plan

    def _id_lookup(self, snap: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sorted ids of a snapshot with their rows and lists (one per snapshot)."""
        cache = self.__dict__.get("_lookup_cache")
        if cache is None:
            cache = self.__dict__.setdefault("_lookup_cache", filtering.PlanCache())
        key = snap[1:]
        got = cache.get(None, key)
        if got is None:
            got = filtering.id_lookup(snap[1], snap[2], snap[3])
            cache.put(None, key, got)
        return got

    def _list_overhead(self) -> float:
        """Cost of opening one list, in codes (a codec's per-list table or residual)."""
        return 0.0

    def _needs_probe_dists(self) -> bool:
        """Whether ``_search_preassigned`` reads the coarse distances."""
        return False

    def _exact_code_cost(self, x: np.ndarray, plan) -> float:
        """Cost of an exact-strategy code relative to a list-scan code (see filtering)."""
        return 1.0

    def _filter_strategy(self, plan, nprobe, k, max_codes, x=None) -> filtering.IVFStrategy:
        cost = 1.0 if x is None else self._exact_code_cost(x, plan)
        return filtering.choose_ivf_strategy(plan.allowed, plan.ntotal, self.nlist, nprobe, k,
                                             plan.lists_with_allowed, self._list_overhead(), max_codes,
                                             cost)

    def _search_filtered(self, x, k, nprobe, ctx, D, I):
        plan = ctx.plan
        if plan.allowed == 0 or x.shape[0] == 0:
            D.fill(worst_distance(self.metric_type))
            I.fill(-1)
            return D, I
        if plan.allowed == plan.ntotal:
            # everything allowed (IDSelectorAll, a range covering all ids): the
            # plain search, fused paths included
            return self._search_unfiltered(x, k, nprobe, replace(ctx, mask=_NO_MASK, use_mask=False, plan=None),
                                           D, I)
        strat = self._filter_strategy(plan, nprobe, k, ctx.max_codes, x)
        if strat.exact:
            return self._search_allowed(x, k, ctx, D, I)
        probes, pd = self._widened_probes(x, plan, strat)
        self._search_preassigned(x, k, probes, pd, replace(ctx, max_codes=strat.max_codes), D, I)
        # a query whose neighbourhood holds few allowed entries (or a max_codes
        # cap) may come back short: finish it with the exact strategy
        need = min(k, plan.allowed)
        short = np.flatnonzero(I[:, need - 1] < 0)
        if short.size:
            Ds = np.empty((short.size, k), dtype=np.float32)
            Is = np.empty((short.size, k), dtype=np.int64)
            self._search_allowed(np.ascontiguousarray(x[short]), k, ctx, Ds, Is)
            D[short] = Ds
            I[short] = Is
        return D, I

    def _widened_probes(self, x, plan, strat) -> tuple[np.ndarray, np.ndarray]:
        """Each query's lists in centroid order, cut once it has seen
        ``strat.target_allowed`` allowed entries (see voisin/filtering.py)."""
        Dq, Iq = self.coarse_assign(x, strat.nprobe_max)
        Iq = np.array(Iq, dtype=np.int64, order="C")
        kept = np.empty(Iq.shape[0], dtype=np.int64)
        KF.cut_probes(Iq, plan.list_allowed, np.int64(strat.target_allowed), kept)
        width = max(1, int(kept.max()) if kept.size else 1)
        return (np.ascontiguousarray(Iq[:, :width]),
                np.ascontiguousarray(np.asarray(Dq, dtype=np.float32)[:, :width]))

    def _allowed_slab(self, ctx) -> tuple[ScanContext, np.ndarray]:
        """(context, lists) that score exactly the allowed entries: the entries
        gathered into a small slab of their own (kept with the plan), or, when
        that copy is too large, the lists holding them scanned under the mask."""
        plan = ctx.plan
        got = plan.compact.get("slab")
        if got is not None:
            return got
        lists = np.flatnonzero(plan.list_allowed).astype(np.int64)
        if plan.allowed * max(1, self.code_size) <= COMPACT_MAX_BYTES:
            sizes = plan.list_allowed.copy()
            offsets = np.cumsum(sizes) - sizes
            cctx = ScanContext(np.ascontiguousarray(ctx.codes[plan.rows]), ctx.ids[plan.rows], offsets, sizes,
                               _NO_MASK, False, 0, None, {})
        else:
            cctx = replace(ctx, max_codes=0)
        plan.compact["slab"] = (cctx, lists)
        return cctx, lists

    def _probes_for(self, x, lists) -> tuple[np.ndarray, np.ndarray]:
        """Every query probes ``lists``; with their coarse distances when the codec reads them."""
        probes = np.ascontiguousarray(np.broadcast_to(lists, (x.shape[0], lists.size)))
        if not self._needs_probe_dists() or lists.size == 0:
            return probes, np.zeros(probes.shape, dtype=np.float32)
        flat = self._flat_centroids()
        cent = flat[0][lists] if flat is not None else self.quantizer.reconstruct_batch(lists)
        if self.metric_type == METRIC_L2:
            pd = exact.pairwise_distances(x, cent)
        else:
            pd = x @ cent.T
        return probes, np.ascontiguousarray(pd, dtype=np.float32)

    def _search_allowed(self, x, k, ctx, D, I):
        """k-NN over exactly the allowed entries, scored by the codec."""
        cctx, lists = self._allowed_slab(ctx)
        for q0 in range(0, x.shape[0], ALLOWED_BLOCK_QUERIES):
            q1 = min(x.shape[0], q0 + ALLOWED_BLOCK_QUERIES)
            probes, pd = self._probes_for(x[q0:q1], lists)
            self._search_preassigned(x[q0:q1], k, probes, pd, cctx, D[q0:q1], I[q0:q1])
        return D, I
