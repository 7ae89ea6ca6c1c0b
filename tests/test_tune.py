"""voisin.tune: the chosen setting reaches the target on fresh queries, is the cheapest that does
on the tuning queries, and is the one left set on the index; recall judged against numpy."""

from __future__ import annotations

import json
import statistics
import warnings

import numpy as np
import pytest

import voisin
from conftest import brute_force, distances_f64
from voisin.params import ParameterError

D = 24
N = 12_000


def clustered(n: int, seed: int) -> np.ndarray:
    """Gaussian clusters: the shape of real embeddings, where IVF and graphs have work to do."""
    rng = np.random.default_rng(1000)            # the same centres for every draw
    centres = rng.standard_normal((40, D)).astype(np.float32) * 3
    rng = np.random.default_rng(seed)
    return (centres[rng.integers(0, 40, n)] + rng.standard_normal((n, D))).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    return clustered(N, 1), clustered(300, 2), clustered(1000, 3)   # base, tuning queries, fresh queries


def numpy_recall(I: np.ndarray, xq: np.ndarray, xb: np.ndarray, k: int, metric: int = voisin.METRIC_L2,
                 ids: np.ndarray | None = None) -> np.ndarray:
    """Per-query recall@k counting ties: a returned id is right when its exact distance is within
    the k-th true one (numpy float64 brute force)."""
    dist = distances_f64(xq, xb, metric)
    cost = -dist if metric == voisin.METRIC_INNER_PRODUCT else dist
    kth = np.sort(cost, axis=1)[:, k - 1]
    row_of = {int(i): r for r, i in enumerate(ids)} if ids is not None else None
    hits = np.zeros(len(xq))
    for q in range(len(xq)):
        seen = set()
        for i in I[q, :k]:
            if i < 0 or i in seen:
                continue
            seen.add(i)
            r = row_of[int(i)] if row_of is not None else int(i)
            hits[q] += cost[q, r] <= kth[q] + 1e-6 * abs(kth[q])
    return hits / k


def built(desc: str, xb: np.ndarray):
    index = voisin.index_factory(D, desc)
    index.train(xb)
    index.add(xb)
    return index


def knobs(index) -> dict:
    """The index's current knob values, read from the structures themselves."""
    out = {}
    if isinstance(index, voisin.IndexRefine):
        out["k_factor_rf"] = float(index.k_factor)
        index = index.base_index
    if isinstance(index, voisin.IndexIDMap):
        index = index.index
    if isinstance(index, voisin.IndexIVF):
        out["nprobe"] = float(index.nprobe)
    if isinstance(index, voisin.IndexHNSW):
        out["efSearch"] = float(index.hnsw.efSearch)
    return out


@pytest.mark.parametrize("desc, target", [("IVF64,Flat", 0.9), ("HNSW16", 0.95), ("IVF64,PQ8x4fs,RFlat", 0.9)])
def test_chosen_setting_meets_the_target_on_fresh_queries(data, desc, target):
    xb, xq, fresh = data
    index = built(desc, xb)
    report = voisin.tune(index, xq, target_recall=target, k=10, min_time=0)
    assert report.met and report.chosen.recall_low >= target
    assert knobs(index) == report.setting                        # the choice is left set
    _, I = index.search(fresh, 10)
    assert numpy_recall(I, fresh, xb, 10).mean() >= target       # and holds on queries it never saw
    # the report's recall is numpy's on the tuning queries
    _, I = index.search(xq, 10)
    assert report.recall == pytest.approx(numpy_recall(I, xq, xb, 10).mean())
    assert report.chosen in report.points and all(p in report.points for p in report.frontier)


def test_the_choice_is_the_cheapest_setting_that_meets_the_target(data):
    xb, xq, _ = data
    index = built("IVF64,Flat", xb)
    report = voisin.tune(index, xq, target_recall=0.9, k=10, min_time=0)
    nprobe = index.nprobe
    z = statistics.NormalDist().inv_cdf(0.95)
    index.nprobe = nprobe - 1        # one list fewer: the bound on its mean recall falls short
    r = numpy_recall(index.search(xq, 10)[1], xq, xb, 10)
    assert r.mean() - z * r.std(ddof=1) / np.sqrt(r.size) < 0.9
    index.nprobe = nprobe
    r = numpy_recall(index.search(xq, 10)[1], xq, xb, 10)
    assert r.mean() - z * r.std(ddof=1) / np.sqrt(r.size) >= 0.9
    assert report.chosen.recall_low == pytest.approx(r.mean() - z * r.std(ddof=1) / np.sqrt(r.size))


def test_frontier_is_pareto_optimal(data):
    xb, xq, _ = data
    report = voisin.tune(built("HNSW16", xb), xq, target_recall=0.9, k=10, min_time=0)
    for p in report.frontier:
        assert not any(o.recall >= p.recall and o.qps > p.qps for o in report.points), p
    assert json.loads(json.dumps(report.as_dict()))["chosen"]["key"] == report.key


def test_ground_truth_from_gt_from_xb_and_through_idmap(data):
    xb, xq, _ = data
    lossy = built("IVF64,PQ8", xb)
    with pytest.raises(ValueError, match="gt=.*xb="):
        voisin.tune(lossy, xq, 0.5, 10)
    with_xb = voisin.tune(lossy, xq, 0.5, 10, xb=xb, min_time=0)
    _, gt = brute_force(xq, xb, 10, voisin.METRIC_L2)
    with_gt = voisin.tune(lossy, xq, 0.5, 10, gt=gt, min_time=0)
    assert with_xb.met and with_gt.met and "ties counted" in with_xb.recall_definition
    assert "id overlap" in with_gt.recall_definition
    ids = np.arange(N, dtype=np.int64) * 5 + 11
    mapped = voisin.index_factory(D, "IDMap,HNSW16")
    mapped.add_with_ids(xb, ids)
    report = voisin.tune(mapped, xq, 0.9, 10, min_time=0)
    assert numpy_recall(mapped.search(xq, 10)[1], xq, xb, 10, ids=ids).mean() == pytest.approx(report.recall)


def test_ties_count_as_found():
    # every vector stored twice: an exact search may return either copy, and both are right
    rng = np.random.default_rng(4)
    base = rng.standard_normal((500, 8)).astype(np.float32)
    xb = np.concatenate([base, base])
    index = voisin.IndexFlatL2(8)
    index.add(xb)
    xq = rng.standard_normal((50, 8)).astype(np.float32)
    report = voisin.tune(index, xq, 1.0, 5, min_time=0)
    assert report.met and report.recall == 1.0 and report.key == ""     # exact, and nothing to tune
    # the other copy of each true neighbour: with 5 of them, one pair is split, so ids alone differ
    scrambled = index.search(xq, 5)[1]
    scrambled = np.where(scrambled < 500, scrambled + 500, scrambled - 500)
    assert voisin.tune(index, xq, 0.5, 5, gt=scrambled, min_time=0).recall < 1.0     # id overlap misses ties
    assert voisin.tune(index, xq, 0.5, 5, gt=scrambled, xb=xb, min_time=0).recall == 1.0   # distances do not


def test_an_unreachable_target_sets_the_best_and_says_so(data):
    xb, xq, _ = data
    index = built("IVF16,PQ4", xb)
    with pytest.warns(RuntimeWarning, match="no setting .* reaches recall@10 >= 0.999"):
        report = voisin.tune(index, xq, 0.999, 10, xb=xb, min_time=0)
    assert not report.met and "does NOT reach" in str(report)
    assert report.recall == max(p.recall for p in report.points) and index.nprobe == report.setting["nprobe"]


def test_single_query_mode_and_custom_ranges(data):
    xb, xq, _ = data
    index = built("IVF64,Flat", xb)
    report = voisin.tune(index, xq[:60], 0.8, 5, mode="single", ranges={"nprobe": [32, 2, 8]}, refine=False,
                         min_time=0)
    assert report.mode == "single" and report.setting["nprobe"] in (2.0, 8.0, 32.0)
    assert {p.setting["nprobe"] for p in report.points} <= {2.0, 8.0, 32.0}
    with pytest.raises(ParameterError, match="no parameter 'efSearch'"):
        voisin.tune(index, xq, 0.8, 5, ranges={"efSearch": [8, 16]})


@pytest.mark.parametrize("kwargs, match", [
    ({"target_recall": 0}, "target_recall: expected a recall in"),
    ({"target_recall": 1.5}, "target_recall: expected a recall in"),
    ({"k": 0}, "k: expected a positive integer"),
    ({"confidence": 0.3}, "confidence: expected a probability"),
    ({"mode": "fast"}, "mode: expected one of batch, single"),
    ({"gt": np.zeros((5, 10), np.int64)}, r"gt: expected integer ids of shape \(300, >= 10\)"),
    ({"gt": np.zeros((300, 10))}, "gt: expected integer ids"),
    ({"max_experiments": 0}, "max_experiments: expected an integer >= 1"),
])
def test_bad_arguments_are_refused(data, kwargs, match):
    xb, xq, _ = data
    index = voisin.IndexFlatL2(D)
    index.add(xb[:100])
    with pytest.raises((ValueError, TypeError), match=match):
        voisin.tune(index, xq, **{"target_recall": 0.9, **kwargs})
    with pytest.raises(ValueError, match="xq: expected vectors of dimension d=24"):
        voisin.tune(index, np.ones((5, 3), np.float32))
    with pytest.raises(ValueError, match="k: expected at most index.ntotal = 100"):
        voisin.tune(index, xq, k=101)


def test_plot_is_written(tmp_path, data):
    pytest.importorskip("matplotlib", reason="the plot needs matplotlib (bench extra)")
    xb, xq, _ = data
    report = voisin.tune(built("IVF64,Flat", xb), xq, 0.9, 10, min_time=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # matplotlib's own font cache notices
        report.plot(str(tmp_path / "tune.png"))
    assert (tmp_path / "tune.png").read_bytes()[:4] == b"\x89PNG"
