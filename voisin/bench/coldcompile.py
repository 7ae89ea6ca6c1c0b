"""True cold-start compilation time, measured in a fresh process with an empty numba cache.

The parent runs ``python -m voisin.bench.coldcompile '<json>'`` with
``NUMBA_CACHE_DIR`` pointing at a new empty directory, so every
``cache=True`` kernel is compiled from scratch. The child times the import of
the library, then the same tiny build-and-search cycle the runner uses for
``jit_s`` twice; the first minus the second is the cold compilation time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from .spec import IndexSpec, parse_spec


def measure_cold_compile(spec: IndexSpec, d: int, metric: int, n: int, k: int, threads: int,
                         timeout: float = 900.0) -> dict:
    """Run the cold cycle for ``spec`` in a subprocess; returns its timings or an ``error``."""
    args = {"spec": spec.text, "sweep": spec.sweep, "d": d, "metric": metric, "n": n, "k": k, "threads": threads}
    with tempfile.TemporaryDirectory(prefix="voisin-cold-numba-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([sys.executable, "-m", "voisin.bench.coldcompile", json.dumps(args)],
                                  capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s"}
        wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {proc.returncode}: {' | '.join(tail)}"}
    out = json.loads(lines[-1])
    out["process_wall_s"] = wall
    return out


def _child(argv: list[str]) -> None:
    t0 = time.perf_counter()
    args = json.loads(argv[0])
    import numpy as np
    from .adapters import MODULES
    from .runner import tiny_cycle
    spec = parse_spec(args["spec"])
    spec = IndexSpec(spec.text, spec.library, spec.description, spec.build_params,
                     {k: list(v) for k, v in args["sweep"].items()})
    __import__(MODULES[spec.library][0])
    import_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((args["n"], args["d"]), dtype=np.float32)
    xq = rng.standard_normal((16, args["d"]), dtype=np.float32)
    first = tiny_cycle(spec, xb, xq, args["metric"], args["k"], args["threads"])
    second = tiny_cycle(spec, xb, xq, args["metric"], args["k"], args["threads"])
    print(json.dumps({"cold_compile_s": max(0.0, first - second), "import_s": import_s,
                      "tiny_first_s": first, "tiny_second_s": second}))


if __name__ == "__main__":
    _child(sys.argv[1:])
