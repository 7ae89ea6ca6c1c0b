"""The durable half of voisin.distributed, without Ray: a shard replica rebuilds
itself from checkpoint + log, skips a write it already applied, fills gaps from
the log, survives a checkpoint pruning the log under it; knobs by FAISS names."""

from __future__ import annotations

import numpy as np
import pytest

import voisin
from voisin.distributed import hash_shards
from voisin.distributed.knobs import check_knobs, knobs_set
from voisin.distributed.replica import ShardReplica, make_shard_index
from voisin.distributed.store import MissingRecordError, ShardStore


@pytest.fixture
def vecs():
    rng = np.random.default_rng(5)
    return rng.standard_normal((300, 8), dtype=np.float32)


def _replica(home):
    return ShardReplica(str(home), 0, 0, "Flat", 8, voisin.METRIC_L2)


def test_replica_rebuilds_from_log_and_checkpoint(tmp_path, vecs):
    store = ShardStore(str(tmp_path), 0)
    store.append(1, "add", np.arange(100, dtype=np.int64), vecs[:100])
    store.append(2, "remove", np.arange(10, dtype=np.int64))
    a = _replica(tmp_path)
    assert a.stats()["ntotal"] == 90 and a.lsn == 2
    assert a.checkpoint(str(tmp_path), 2) == 2
    store.append(3, "add", np.arange(100, 200, dtype=np.int64), vecs[100:200])
    b = _replica(tmp_path)  # as after a crash: the checkpoint, then record 3
    assert b.stats()["ntotal"] == 190 and b.lsn == 3
    ref = voisin.IndexIDMap(voisin.IndexFlatL2(8))
    ref.add_with_ids(vecs[10:200], np.arange(10, 200))
    np.testing.assert_array_equal(b.search(vecs[:5], 4, {}, None, 3)[1], ref.search(vecs[:5], 4)[1])


def test_writes_are_idempotent_and_gaps_are_filled(tmp_path, vecs):
    store = ShardStore(str(tmp_path), 0)
    a = _replica(tmp_path)
    store.append(1, "add", np.arange(50, dtype=np.int64), vecs[:50])
    assert a.apply(1, "add", np.arange(50, dtype=np.int64), vecs[:50]) == 50
    # Ray retrying a call that ran: recognised by its LSN
    assert a.apply(1, "add", np.arange(50, dtype=np.int64), vecs[:50]) is None
    assert a.stats()["ntotal"] == 50
    # a replica that missed write 2 (it was down) reads it from the log before write 3
    store.append(2, "add", np.arange(50, 60, dtype=np.int64), vecs[50:60])
    store.append(3, "add", np.arange(60, 70, dtype=np.int64), vecs[60:70])
    assert a.apply(3, "add", np.arange(60, 70, dtype=np.int64), vecs[60:70]) == 10
    assert a.lsn == 3 and a.stats()["ntotal"] == 70
    # a search naming a newer state catches up first
    store.append(4, "remove", np.zeros(0, np.int64), sel=voisin.IDSelectorRange(0, 30))
    D, I = a.search(vecs[:3], 1, {}, None, 4)
    assert a.stats()["ntotal"] == 40 and (I[:, 0] == -1).sum() == 0 and (I >= 30).all()


def test_pruned_log_makes_a_reader_restart_from_the_newest_checkpoint(tmp_path, vecs):
    store = ShardStore(str(tmp_path), 0)
    a = _replica(tmp_path)
    for lsn in range(1, 6):
        store.append(lsn, "add", np.arange(lsn * 10, lsn * 10 + 10, dtype=np.int64), vecs[lsn * 10:lsn * 10 + 10])
        if lsn in (2, 4):
            a.checkpoint(str(tmp_path), lsn)  # the second one prunes records <= 2
    assert not (tmp_path / "shard-0000" / "wal-000000000001.npz").exists()
    with pytest.raises(MissingRecordError):
        list(store.records(0, 5))
    fresh = _replica(tmp_path)
    assert fresh.lsn == 5 and fresh.stats()["ntotal"] == 50
    stale = _replica(tmp_path)
    stale.lsn, stale.index = 0, make_shard_index("Flat", 8, voisin.METRIC_L2)  # as if it had read nothing
    stale.search(vecs[:1], 1, {}, None, 5)
    assert stale.lsn == 5 and stale.stats()["ntotal"] == 50


def test_hash_shards_are_even_and_stable():
    ids = np.arange(100_000, dtype=np.int64) * 8  # multiples of the shard count
    owners = hash_shards(ids, 8)
    counts = np.bincount(owners, minlength=8)
    assert counts.min() > 0.95 * 12_500 and counts.max() < 1.05 * 12_500
    np.testing.assert_array_equal(hash_shards(ids, 8), owners)


def test_knobs_by_faiss_names_reach_wrapped_indexes():
    ivf = voisin.index_factory(8, "IVF16,Flat")
    refine = voisin.index_factory(8, "IVF16,PQ4,RFlat")
    hnsw = make_shard_index("HNSW16", 8, voisin.METRIC_L2)  # inside an IDMap2
    assert check_knobs(ivf, {"nprobe": 4}) == {"nprobe": 4}
    with knobs_set(refine, {"nprobe": 8, "k_factor": 4}):
        assert refine.base_index.nprobe == 8 and refine.k_factor == 4
    assert refine.base_index.nprobe == 1 and refine.k_factor == 1
    with knobs_set(hnsw, {"efSearch": 99}):
        assert hnsw.index.hnsw.efSearch == 99
    assert hnsw.index.hnsw.efSearch == 16
    with pytest.raises(ValueError, match="params: expected knobs among"):
        check_knobs(ivf, {"nprob": 4})
    with pytest.raises(ValueError, match="'efSearch' does not apply"):
        check_knobs(ivf, {"efSearch": 4})
    with pytest.raises(ValueError, match="nprobe: expected an integer >= 1"):
        check_knobs(ivf, {"nprobe": 0})
    with pytest.raises(TypeError, match="params: expected a dict"):
        check_knobs(ivf, voisin.SearchParametersIVF(nprobe=3))
