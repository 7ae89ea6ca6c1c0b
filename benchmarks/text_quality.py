"""Retrieval quality of `voisin demo --text`'s setup: TextEncoder + a collection, against exact search.

The questions are tests/data/stdlib_questions.json (hand-written, each with the
expected standard-library docstring); the documents are
voisin.embed.corpus.stdlib_documents (all of them by default, or --docs N spread
over the library, expected answers included). Reports recall@1, recall@10 and
MRR@10 for exact brute-force search over the stored vectors and for the
collection's own index (index="auto": HNSW from 4,096 points). Quality only: no
speed figure is claimed, so it may run on a busy machine.

    python benchmarks/text_quality.py [--docs N] [--index auto] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

import voisin
from voisin.embed import TextEncoder, corpus

QUESTIONS = Path(__file__).resolve().parent.parent / "tests" / "data" / "stdlib_questions.json"
K = 10


def scores(ranked: list[list[str]], expected: list[str]) -> dict:
    ranks = [row.index(e) + 1 if e in row else None for row, e in zip(ranked, expected)]
    return {"recall@1": float(np.mean([r == 1 for r in ranks])),
            f"recall@{K}": float(np.mean([r is not None for r in ranks])),
            f"mrr@{K}": float(np.mean([1.0 / r if r else 0.0 for r in ranks])),
            "missed": [e for e, r in zip(expected, ranks) if r is None]}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=None, help="documents (default: the whole corpus)")
    ap.add_argument("--index", default="auto", help="the collection's index (auto or a factory string)")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)

    pairs = json.loads(QUESTIONS.read_text(encoding="utf-8"))["pairs"]
    questions, expected = [p["question"] for p in pairs], [p["expected"] for p in pairs]
    docs = corpus.stdlib_documents()
    if args.docs is not None:
        docs = corpus.spread(docs, args.docs, keep=expected)
    enc = TextEncoder()
    t0 = time.perf_counter()
    with voisin.connect() as db:
        col = db.create_collection("stdlib", dim=enc.dim, metric="cosine", index=args.index, embedder=enc)
        col.upsert(list(range(len(docs))), documents=[d.text for d in docs])
        hits = col.search(texts=questions, k=K)
        X = np.stack([r.vector for r in col.get(list(range(len(docs))), with_payload=False,
                                                   with_vectors=True)]).astype(np.float64)
        description = col.index_description
    seconds = time.perf_counter() - t0
    Q = enc.encode(questions).astype(np.float64)
    exact = np.argsort(-(Q @ X.T), axis=1, kind="stable")[:, :K]
    result = {
        "python": platform.python_version(), "voisin": voisin.__version__, "encoder": enc.name,
        "questions": len(pairs), "documents": len(docs), "index": description,
        "exact": scores([[docs[i].name for i in row] for row in exact], expected),
        "collection": scores([[docs[i].name for i in h.ids] for h in hits], expected),
        "seconds_encode_index_search": round(seconds, 1),
    }
    print(json.dumps(result, indent=1))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
