"""Benchmark harness: recall@10 (with ties) against QPS for voisin and its peers.

>>> import voisin.bench
>>> result = voisin.bench.run("siftsmall-128-euclidean", ["voisin:Flat", "faiss:Flat"],
...                           modes=("single", "batch"), queries=100)   # doctest: +SKIP

From the shell: ``voisin bench --dataset glove-50-angular --index voisin:Flat
--index faiss:Flat --mode single --mode batch --queries 1000`` (or
``python -m voisin.bench ...``). See docs/benchmarking.md in the repository.
"""

from .runner import MODES, run, summarize
from .spec import IndexSpec, default_sweep, parse_spec, resolve_sweeps

__all__ = ["run", "summarize", "parse_spec", "resolve_sweeps", "default_sweep", "IndexSpec", "MODES"]
