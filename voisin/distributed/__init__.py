"""voisin across a Ray cluster: a sharded, replicated index with the voisin API.

>>> import voisin.distributed as vd                          # doctest: +SKIP
>>> vd.init()                                                # local cluster on 127.0.0.1
>>> ix = vd.ShardedIndex("IVF256,Flat", d=64, shards=4, replicas=2)
>>> ix.train(sample); ix.add(xb)
>>> D, I = ix.search(xq, 10, params={"nprobe": 16})

Needs the ``ray`` extra (``pip install 'voisin[ray]'``); see docs/scale-out.md.
"""

from __future__ import annotations

from .cluster import init, shutdown
from .collection import (ShardedCollection, ShardedCollectionError, ShardedDatabase,
                         connect_sharded, restore_sharded)
from .gather import ShardUnavailableError
from .sharded import SearchResult, ShardedIndex, hash_shards

__all__ = ["init", "shutdown", "ShardedIndex", "ShardUnavailableError", "SearchResult", "hash_shards",
           "connect_sharded", "restore_sharded", "ShardedDatabase", "ShardedCollection",
           "ShardedCollectionError"]
