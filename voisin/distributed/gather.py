"""Scatter calls over shard replicas and gather the answers, failing over.

Each call names a shard; it goes to one replica of that shard, chosen round
robin among the replicas not recently seen failing. A replica whose actor has
died or is restarting (Ray's RayActorError) is marked suspect for a while and
the call moves to the next replica; a shard none of whose replicas answers
before the deadline is reported missing. A failure of the call itself (a
RayTaskError: the index raised) is re-raised as the index's own exception.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Hashable, Sequence

from .cluster import import_ray, is_actor_failure, unwrap

#: seconds a replica that failed a call is passed over while others remain
SUSPECT_SECONDS = 5.0


class ShardUnavailableError(RuntimeError):
    """No replica of some shards answered; ``shards`` lists them.

    Raised by searches (unless ``allow_partial=True``) and by calls that need
    every shard (``ntotal``, ``save``). Writes are not refused for it: they
    are logged first and the shard applies them when a replica is back.
    """

    def __init__(self, shards: Sequence[int], what: str):
        self.shards = sorted(int(s) for s in shards)
        super().__init__(f"{what}: no replica of shard(s) {self.shards} answered (their actors are dead "
                         "or restarting); retry shortly, or search with allow_partial=True")


class Replicas:
    """The actor handles of every shard replica and their recent health."""

    def __init__(self, actors: list[list[Any]]):
        self.actors = actors
        self._suspect: dict[tuple[int, int], float] = {}
        self._turn = 0
        self._lock = threading.Lock()

    def order(self, shard: int) -> list[int]:
        """Replica numbers of ``shard`` to try, healthy ones first, rotating."""
        n = len(self.actors[shard])
        with self._lock:
            self._turn += 1
            start = self._turn % n
        now = time.monotonic()
        rot = [(start + i) % n for i in range(n)]
        return sorted(rot, key=lambda r: self._suspect.get((shard, r), 0.0) > now)

    def mark_failed(self, shard: int, replica: int) -> None:
        self._suspect[(shard, replica)] = time.monotonic() + SUSPECT_SECONDS

    def mark_ok(self, shard: int, replica: int) -> None:
        self._suspect.pop((shard, replica), None)


def scatter(replicas: Replicas, calls: Sequence[tuple[Hashable, int, Callable[[Any], Any]]],
            timeout: float) -> tuple[dict, set[int]]:
    """Run ``make(actor)`` for each ``(key, shard, make)`` on a replica of ``shard``.

    Returns ({key: result}, shards that could not answer). ``make`` returns
    the ObjectRef of one actor call.
    """
    ray = import_ray()
    deadline = time.monotonic() + timeout
    results: dict = {}
    missing: set[int] = set()
    inflight: dict = {}

    def submit(key, shard, make, todo):
        if not todo:
            missing.add(shard)
            return
        r = todo[0]
        inflight[make(replicas.actors[shard][r])] = (key, shard, make, r, todo[1:])

    for key, shard, make in calls:
        submit(key, shard, make, replicas.order(shard))
    while inflight:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _ = ray.wait(list(inflight), num_returns=1, timeout=left)
        for ref in ready:
            key, shard, make, r, todo = inflight.pop(ref)
            try:
                results[key] = ray.get(ref)
                replicas.mark_ok(shard, r)
            except Exception as exc:  # noqa: BLE001 - sorted into actor faults and index errors
                if not is_actor_failure(exc):
                    _cancel(ray, inflight)
                    raise unwrap(exc) from None
                replicas.mark_failed(shard, r)
                submit(key, shard, make, todo)
    for _, shard, *_rest in inflight.values():
        missing.add(shard)
    _cancel(ray, inflight)
    return results, missing


def _cancel(ray, refs) -> None:
    """Drop calls whose answer is no longer wanted (best effort: one that already
    runs finishes, and its result is ignored)."""
    for ref in refs:
        try:
            ray.cancel(ref)
        except Exception:  # noqa: BLE001 - cancelling is an optimisation only
            pass


def wait_all(refs: Sequence[Any], timeout: float) -> list:
    """Results of write calls sent to every replica: None for a replica that
    failed or did not answer in time (it catches up from the log); an error
    the index raised is re-raised."""
    ray = import_ray()
    if not refs:
        return []
    ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
    done = set(ready)
    out = []
    for ref in refs:
        if ref not in done:
            out.append(None)
            continue
        try:
            out.append(ray.get(ref))
        except Exception as exc:  # noqa: BLE001
            if not is_actor_failure(exc):
                raise unwrap(exc) from None
            out.append(None)
    return out
