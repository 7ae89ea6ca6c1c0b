"""Polysemous search of 8-bit PQ codes (FAISS's ``IndexPQ::search_core_polysemous``).

The query gets a code of its own: per sub-quantizer the centroid nearest to
it (the arg-min of its distance table). A stored code is scored by ADC only
when its Hamming distance to the query's code is below ``ht``; with
``generalized`` the distance counts the sub-codes (bytes) that differ
instead of the bits. Polysemous training orders each sub-quantizer's
centroids so that close centroids get close codes, which is what makes the
Hamming distance a useful pre-filter.

Costs are squared L2 (FAISS runs this search for METRIC_L2 only), summed
over m in order like FAISS's inner loop.
"""

import numpy as np
from numba import njit, prange

from ..metric import METRIC_L2
from .hamming import popcount
from .heap import finalize_heap, heap_init, heap_replace_top, heap_sort_inplace
from .ivfpq import ivfpq_list_table, ivfpq_query_tables
from .mt19937 import seed, word
from .pq import adc_cost_generic, compute_lut, lut_l2


@njit(cache=True, nogil=True)
def _query_code(lut, qcode):
    """Nearest centroid per sub-quantizer (the first minimum, as FAISS)."""
    M, ksub = lut.shape
    for m in range(M):
        best = 0
        bv = lut[m, 0]
        for c in range(1, ksub):
            if lut[m, c] < bv:
                bv = lut[m, c]
                best = c
        qcode[m] = best


@njit(cache=True, nogil=True)
def _distance(qw, codes_w, j, generalized):
    """Hamming distance (bits, or differing bytes) between the query's words and row j."""
    d = 0
    for w in range(qw.size):
        x = qw[w] ^ codes_w[j, w]
        if generalized:
            x |= x >> np.uint64(1)
            x |= x >> np.uint64(2)
            x |= x >> np.uint64(4)
            x &= np.uint64(0x0101010101010101)
        d += popcount(x)
    return d


@njit(cache=True, nogil=True)
def _search_one(q, codes, codes_w, n, cent_t, ht, generalized, mask, use_mask, lut, qcode, rd, ri):
    compute_lut(q, cent_t, 1, lut)
    _query_code(lut, qcode)
    M = lut.shape[0]
    nw = codes_w.shape[1]
    # the query code in the same words as the stored codes (zero padded)
    qb = np.zeros(nw * 8, dtype=np.uint8)
    qb[:M] = qcode
    qw = qb.view(np.uint64)
    heap_init(rd, ri)
    npass = 0
    for j in range(n):
        if _distance(qw, codes_w, j, generalized) < ht:
            npass += 1
            if use_mask and not mask[j]:
                continue
            c = np.float32(0.0)
            for m in range(M):
                c += lut[m, codes[j, m]]
            if c < rd[0]:
                heap_replace_top(rd, ri, c, j)
    heap_sort_inplace(rd, ri)
    return npass


@njit(parallel=True, cache=True, nogil=True)
def search(xq, codes, codes_w, n, cent_t, ht, generalized, mask, use_mask, hd, hi):
    """Polysemous k-NN of each query: hd/hi (nq, k) get sorted costs and row
    numbers (-1 when fewer than k codes pass). ``codes_w``: the codes as
    uint64 words, zero padded. Returns how many (query, code) pairs passed
    the Hamming filter (FAISS's ``indexPQ_stats.n_hamming_pass``)."""
    M, dsub, ksub = cent_t.shape
    nq = xq.shape[0]
    nchunks = min(nq, 64)
    passed = np.zeros(nchunks, dtype=np.int64)
    for ch in prange(nchunks):
        lut = np.empty((M, ksub), dtype=np.float32)
        qcode = np.empty(M, dtype=np.uint8)
        for i in range(ch, nq, nchunks):
            passed[ch] += _search_one(xq[i], codes, codes_w, n, cent_t, ht, generalized, mask, use_mask,
                                      lut, qcode, hd[i], hi[i])
    return passed.sum()


# --- polysemous training: simulated annealing of a centroid permutation ---------------
# (FAISS's PolysemousTraining with OT_ReproduceDistances_affine: the Hamming
# distance between the codes of two centroids should reproduce their L2
# distance, mapped affinely to the range of Hamming distances)

@njit(cache=True, nogil=True)
def _hd(a, b):
    return popcount(np.uint64(a ^ b))


@njit(cache=True, nogil=True)
def affine_target(dis, nbits, dis_weight_factor):
    """(target, weights) from the n x n centroid distances (float64, flat):
    distances standardised to mean nbits/2 and spread sqrt(nbits/4) (FAISS's
    integer divisions), weights exp(-factor * target)."""
    n2 = dis.size
    s = 0.0
    s2 = 0.0
    for i in range(n2):
        s += dis[i]
        s2 += dis[i] * dis[i]
    mean = s / n2
    std = np.sqrt(s2 / n2 - (s / n2) * (s / n2))
    target = np.empty(n2, dtype=np.float64)
    weights = np.empty(n2, dtype=np.float64)
    scale = np.sqrt(np.float64(nbits // 4))
    for i in range(n2):
        td = (dis[i] - mean) / std * scale + (nbits // 2)
        target[i] = td
        weights[i] = np.exp(-dis_weight_factor * td)
    return target, weights


@njit(cache=True, nogil=True)
def permutation_cost(perm, target, weights):
    n = perm.size
    c = 0.0
    for i in range(n):
        for j in range(n):
            e = target[i * n + j] - _hd(perm[i], perm[j])
            c += weights[i * n + j] * e * e
    return c


@njit(cache=True, nogil=True)
def _cost_update(perm, iw, jw, target, weights):
    """Change of the cost if entries iw and jw of the permutation were swapped (O(n))."""
    n = perm.size
    delta = 0.0
    for i in range(n):
        if i == iw or i == jw:
            other = perm[jw] if i == iw else perm[iw]
            for j in range(n):
                wanted = target[i * n + j]
                w = weights[i * n + j]
                e = wanted - _hd(perm[i], perm[j])
                delta -= w * e * e
                pj = perm[jw] if j == iw else (perm[iw] if j == jw else perm[j])
                e = wanted - _hd(other, pj)
                delta += w * e * e
        else:
            for j, nj in ((iw, jw), (jw, iw)):
                wanted = target[i * n + j]
                w = weights[i * n + j]
                e = wanted - _hd(perm[i], perm[j])
                delta -= w * e * e
                e = wanted - _hd(perm[i], perm[nj])
                delta += w * e * e
    return delta


@njit(cache=True, nogil=True)
def _rand_int(state, mx):
    return np.int64(word(state)) % mx


@njit(cache=True, nogil=True)
def _rand_float(state):
    return np.float32(word(state)) / np.float32(4294967296.0)


@njit(cache=True, nogil=True)
def anneal(target, weights, n, init_temperature, temperature_decay, n_iter, n_redo, seed_value,
           only_bit_flips, init_random, best_perm):
    """FAISS's SimulatedAnnealingOptimizer::run_optimization: ``n_redo`` runs
    from the identity (or a random shuffle), each ``n_iter`` proposed swaps
    accepted when they lower the cost or with probability ``temperature``;
    the lowest final cost wins. Returns (initial cost, best cost)."""
    state = np.empty(625, dtype=np.uint32)
    seed(state, seed_value)
    log2n = 0
    while not (n <= (1 << log2n)):
        log2n += 1
    min_cost = 1e30
    init_cost = 0.0
    perm = np.empty(n, dtype=np.int64)
    for it in range(n_redo):
        for i in range(n):
            perm[i] = i
        if init_random:
            for i in range(n):
                j = i + _rand_int(state, n - i)
                t = perm[i]
                perm[i] = perm[j]
                perm[j] = t
        cost = permutation_cost(perm, target, weights)
        init_cost = cost
        temperature = init_temperature
        for _ in range(n_iter):
            temperature = temperature * temperature_decay
            if only_bit_flips:
                iw = _rand_int(state, n)
                jw = iw ^ (1 << _rand_int(state, log2n))
            else:
                iw = _rand_int(state, n)
                jw = _rand_int(state, n - 1)
                if jw == iw:
                    jw += 1
            delta = _cost_update(perm, iw, jw, target, weights)
            if delta < 0 or _rand_float(state) < temperature:
                t = perm[iw]
                perm[iw] = perm[jw]
                perm[jw] = t
                cost += delta
        fcost = np.float32(cost)  # FAISS keeps a run's cost in a float
        if fcost < min_cost:
            best_perm[:] = perm
            min_cost = np.float64(fcost)
    return init_cost, min_cost


@njit(parallel=True, cache=True, nogil=True)
def anneal_many(targets, weights, n, init_temperature, temperature_decay, n_iter, n_redo, seed_value,
                only_bit_flips, init_random, perms, costs):
    """:func:`anneal` for each sub-quantizer (rows of targets/weights), in
    parallel; each starts its own random stream from ``seed_value`` (FAISS
    builds one optimizer per sub-quantizer). costs[m] = (initial, final)."""
    for m in prange(targets.shape[0]):
        a, b = anneal(targets[m], weights[m], n, init_temperature, temperature_decay, n_iter, n_redo,
                      seed_value, only_bit_flips, init_random, perms[m])
        costs[m, 0] = a
        costs[m, 1] = b


# --- code-to-code search (IndexPQ's ST_HE, ST_generalized_hamming, ST_SDC) -----------

INT_MAX = np.int32(2147483647)


@njit(parallel=True, cache=True, nogil=True)
def hamming_knn(qw, codes_w, n, generalized, mask, use_mask, hd, hi):
    """k-NN by Hamming distance (bits, or differing bytes) between the query
    codes and the stored codes, both as zero-padded uint64 words (FAISS's
    hammings_knn_hc / generalized_hammings_knn_hc): hd (nq, k) int32 sorted
    distances (INT_MAX when missing), hi the row numbers."""
    for i in prange(qw.shape[0]):
        rd = hd[i]
        ri = hi[i]
        for t in range(rd.size):
            rd[t] = INT_MAX
            ri[t] = -1
        q = qw[i]
        for j in range(n):
            if use_mask and not mask[j]:
                continue
            dist = np.int32(_distance(q, codes_w, j, generalized))
            if dist < rd[0]:
                heap_replace_top(rd, ri, dist, j)
        heap_sort_inplace(rd, ri)


@njit(parallel=True, cache=True, nogil=True)
def sdc_knn(qcodes, codes, n, sdc, mask, use_mask, hd, hi):
    """k-NN by symmetric distance: sum over m of sdc[m, query code, stored code]
    (8-bit codes), summed in order like FAISS's search_sdc."""
    M = sdc.shape[0]
    for i in prange(qcodes.shape[0]):
        rd = hd[i]
        ri = hi[i]
        heap_init(rd, ri)
        for j in range(n):
            if use_mask and not mask[j]:
                continue
            c = np.float32(0.0)
            for m in range(M):
                c += sdc[m, qcodes[i, m], codes[j, m]]
            if c < rd[0]:
                heap_replace_top(rd, ri, c, j)
        heap_sort_inplace(rd, ri)


# --- IVF-PQ list scans with the polysemous filter (FAISS's scan_list_polysemous) -----

@njit(cache=True, nogil=True)
def _byte_hamming(qcode, code):
    d = 0
    for t in range(code.shape[0]):
        d += popcount(np.uint64(qcode[t] ^ code[t]))
    return d


@njit(cache=True, nogil=True)
def _code_of(v, cent_t, tmp, qcode, nbits):
    """The PQ code of v (nearest centroid per sub-quantizer), packed like the stored codes."""
    from_lut = tmp
    lut_l2(v, cent_t, from_lut)  # squared distances: the arg-min is the encoding
    M, ksub = from_lut.shape
    for t in range(qcode.shape[0]):
        qcode[t] = 0
    for m in range(M):
        best = 0
        bv = from_lut[m, 0]
        for c in range(1, ksub):
            if from_lut[m, c] < bv:
                bv = from_lut[m, c]
                best = c
        pos = m * nbits
        val = np.uint32(best)
        got = 0
        while got < nbits:
            byte = (pos + got) >> 3
            off = (pos + got) & 7
            take = min(8 - off, nbits - got)
            qcode[byte] |= np.uint8(((val >> got) & ((1 << take) - 1)) << off)
            got += take


@njit(parallel=True, cache=True, nogil=True)
def ivfpq_search(xq, probes, pdist, codes, ids, offsets, sizes, cent, cent_t, nbits, metric, mode,
                 precomp, max_codes, mask, use_mask, ht, by_residual, worst, D, I):
    """IVF-PQ k-NN where a code is scored only when its Hamming distance to the
    query's code (the code of the query's residual to the list's centroid, or
    of the query without residuals) is below ``ht``. Returns the number of
    codes that passed."""
    nq = xq.shape[0]
    M, dsub, ksub = cent_t.shape
    cs = codes.shape[1]
    nchunks = min(nq, 256)
    passed = np.zeros(nchunks, dtype=np.int64)
    for ch in prange(nchunks):
        q_lut = np.empty((M, ksub), dtype=np.float32)
        lut = np.empty((M, ksub), dtype=np.float32)
        tmp = np.empty((M, ksub), dtype=np.float32)
        resid = np.empty(xq.shape[1], dtype=np.float32)
        qcode = np.empty(cs, dtype=np.uint8)
        for i in range(ch, nq, nchunks):
            q = xq[i]
            rd = D[i]
            ri = I[i]
            heap_init(rd, ri)
            ivfpq_query_tables(q, cent, cent_t, metric, mode, q_lut)
            if not by_residual:
                _code_of(q, cent_t, tmp, qcode, nbits)
            scanned = 0
            for p in range(probes.shape[1]):
                l = probes[i, p]
                if l < 0:
                    continue
                s = sizes[l]
                if s == 0:
                    continue
                pc = pdist[i, p] if metric == METRIC_L2 else -pdist[i, p]
                tab, bias = ivfpq_list_table(q, l, pc, cent, cent_t, metric, mode, precomp, q_lut, lut, resid)
                if by_residual:
                    for t in range(q.shape[0]):
                        resid[t] = q[t] - cent[l, t]
                    _code_of(resid, cent_t, tmp, qcode, nbits)
                o = offsets[l]
                for j in range(o, o + s):
                    if _byte_hamming(qcode, codes[j]) < ht:
                        passed[ch] += 1
                        if use_mask and not mask[j]:
                            continue
                        if nbits == 8:
                            c = bias
                            for m in range(M):
                                c += tab[m, codes[j, m]]
                        else:
                            c = bias + adc_cost_generic(tab, codes[j], M, nbits)
                        if c < rd[0]:
                            heap_replace_top(rd, ri, c, ids[j])
                scanned += s
                if max_codes > 0 and scanned >= max_codes:
                    break
            finalize_heap(rd, ri, metric, worst)
    return passed.sum()
